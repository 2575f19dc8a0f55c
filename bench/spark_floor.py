"""The Spark floor for `make bench`: the least a Spark ingest of the bench's landing can cost on this
machine, so bench/run.py can say how far cdrwatch's own ingest is from what Spark itself can do (issue 14).

Why: the nightly's ingest also parses every format, validates, dedups, counts and reconciles every
line and writes the lake sorted; none of that can make it faster than reading the same files,
cutting each line into fields and writing them sorted to Parquet in the same SparkSession. That is
measured here, so "nightly vs floor" separates what Spark costs from what cdrwatch adds, beside
"nightly vs DuckDB" (what one box can do at all). Dev-only: nothing in jobs/ imports it.

One SparkSession (the pipeline's own `jobs.spark.spark_session`, conf/default.yaml); for each date
of --from..--to, all carriers' files of that date (not `_MANIFEST.csv` or other `_`/`.` files),
read through links with plain names (`NNNNN.gz` when the bytes are gzip, else `NNNNN.txt`), as
jobs/ingest.py `link_inputs` does, so Spark decompresses by name. After one untimed warm-up
`count()` of the first date (with files), timed in order:

1. `scan`: text lines split on '\\n', counted (read + decompress + split lines);
2. `split_write`: each line cut on ',' or '|' into 10 string columns c1..c10 (a JSON line stays
   one field: a floor, not a parser), written to Parquet;
3. `sorted_write`: the same, `repartitionByRange(4, c1).sortWithinPartitions(c1)` before the
   write (the lake is written sorted): the floor to compare an ingest with.

No damaged-gzip rescue (the simulator delivers none) and no GBK decoding (lines are read as they
are). Prints one JSON line: `scan_s`, `split_write_s`, `sorted_write_s` (summed over the dates),
`rows` (lines counted by step 1, headers included), `dates`, `warmup_s`, `session_s` (start of
the SparkSession) and `per_day`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jobs.config import load_config  # noqa: E402  (after the repo root is on sys.path)
from jobs.spark import spark_session  # noqa: E402

COLUMNS = 10


def link_day(landing: Path, carriers: list[str], day: date, folder: Path) -> list[str]:
    """Links to all carriers' files of `day` in `folder`, named by content (`.gz` if gzip)."""
    folder.mkdir(parents=True)
    links = []
    for carrier in carriers:
        delivery = landing / carrier / day.isoformat()
        files = (
            sorted(p for p in delivery.iterdir() if p.is_file() and p.name[0] not in "_.") if delivery.is_dir() else []
        )
        for path in files:
            with open(path, "rb") as handle:
                gzip = handle.read(2) == b"\x1f\x8b"
            target = folder / f"{len(links):05d}.{'gz' if gzip else 'txt'}"
            os.symlink(path.resolve(), target)
            links.append(str(target))
    return links


def split(spark, paths: list[str]):
    """Each line as 10 string columns c1..c10, cut on ',' or '|' (missing fields are null)."""
    from pyspark.sql import functions as F

    parts = F.split(F.col("value"), "[,|]")
    return (
        spark.read.option("lineSep", "\n")
        .text(paths)
        .select(*[F.get(parts, i).alias(f"c{i + 1}") for i in range(COLUMNS)])
    )


def timed(run) -> tuple[float, object]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--landing", type=Path, required=True)
    p.add_argument("--from", dest="first", type=date.fromisoformat, required=True)
    p.add_argument("--to", dest="last", type=date.fromisoformat, required=True)
    p.add_argument("--out", type=Path, required=True, help="a scratch folder (links and Parquet; emptied after)")
    p.add_argument("--conf", type=Path, help="cdrwatch conf file (carriers, spark); default conf/default.yaml")
    args = p.parse_args(argv)

    config = load_config(args.conf).with_paths(landing=args.landing, lake=args.out / "lake", outbox=args.out / "outbox")
    carriers = list(config.carriers)
    days = [args.first + timedelta(days=i) for i in range((args.last - args.first).days + 1)]
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".spark_floor_", dir=args.out) as tmp:
        session_s, spark = timed(lambda: spark_session(config))
        inputs = {day: link_day(args.landing, carriers, day, Path(tmp) / "links" / day.isoformat()) for day in days}
        if not any(inputs.values()):
            raise SystemExit(f"spark_floor: no landing files in {args.landing} for {days[0]}..{days[-1]}")
        first = next(paths for paths in inputs.values() if paths)
        warmup_s, _ = timed(lambda: spark.read.option("lineSep", "\n").text(first).count())
        per_day = {}
        for day in days:
            paths = inputs[day]
            if not paths:  # nothing delivered that date: nothing to time
                continue
            scan_s, rows = timed(lambda: spark.read.option("lineSep", "\n").text(paths).count())
            split_s, _ = timed(lambda: split(spark, paths).write.mode("overwrite").parquet(f"{tmp}/split"))
            sorted_s, _ = timed(
                lambda: (
                    split(spark, paths)
                    .repartitionByRange(4, "c1")
                    .sortWithinPartitions("c1")
                    .write.mode("overwrite")
                    .parquet(f"{tmp}/sorted")
                )
            )
            per_day[day.isoformat()] = {
                "rows": rows,
                "files": len(paths),
                "scan_s": round(scan_s, 3),
                "split_write_s": round(split_s, 3),
                "sorted_write_s": round(sorted_s, 3),
            }
        total = {
            k: round(sum(d[k] for d in per_day.values()), 3) for k in ("scan_s", "split_write_s", "sorted_write_s")
        }
        print(
            json.dumps(
                {
                    **total,
                    "rows": sum(d["rows"] for d in per_day.values()),
                    "dates": len(per_day),
                    "warmup_s": round(warmup_s, 3),
                    "session_s": round(session_s, 3),
                    "per_day": per_day,
                }
            ),
            flush=True,
        )
        spark.stop()


if __name__ == "__main__":
    main()
