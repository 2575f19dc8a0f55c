"""`make bench`: time each pipeline step on cached 1 M and 10 M CDR-row datasets.

Every step runs in a child process (one Spark session for all its dates) while this process samples
the resident memory of the child's whole process tree (Python + the Spark JVM). Prints a table of
rows/s and peak RSS per step and saves it as JSON. Nothing here is asserted: speed is measured, not
tested.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".bench"
START = date(2026, 11, 20)
# name -> (subscribers, days): about 1 M and 10 M CDR rows with the simulator's default behaviour
DATASETS = {"1M": (25_000, 2), "10M": (125_000, 4)}
# In pipeline order: each step reads what the previous wrote. "nightly" is the whole `cdrwatch nightly`
# over the dataset's dates through the real CLI, into a lake and outbox of its own.
STEPS = ("simulate", "ingest", "detect", "dens", "export", "nightly")
console = Console()


@dataclass
class Measure:
    dataset: str
    step: str
    rows: int
    seconds: float
    peak_rss_mb: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def run_measured(argv: list[str], quiet: bool = False) -> tuple[float, float]:
    """Run a command; return (wall seconds, peak RSS in MB of its process tree, sampled every 0.2 s)."""
    started = time.perf_counter()
    child = psutil.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL if quiet else None)
    peak = 0
    while child.poll() is None:
        try:
            tree = [child, *child.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.2)
    if child.returncode != 0:
        raise SystemExit(f"bench: {' '.join(argv[:4])} ... failed with exit code {child.returncode}")
    return time.perf_counter() - started, peak / 2**20


def simulator_fingerprint() -> str:
    digest = hashlib.sha256()
    for path in sorted((ROOT / "jobs" / "simulate").rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def dataset(name: str) -> tuple[Path, list[date], Measure | None]:
    """The cached landing zone of a dataset; simulated (and measured) when absent or stale."""
    subscribers, days = DATASETS[name]
    folder = CACHE / name
    stamp = folder / "stamp.json"
    key = {"subscribers": subscribers, "days": days, "start": START.isoformat(), "simulator": simulator_fingerprint()}
    dates = [START + timedelta(days=i) for i in range(days)]
    if stamp.exists() and json.loads(stamp.read_text())["key"] == key:
        cached = json.loads(stamp.read_text())["measure"]
        return folder / "landing", dates, Measure(**cached)
    subprocess.run(["rm", "-rf", str(folder)], check=True)
    folder.mkdir(parents=True)
    seconds, peak = run_measured([sys.executable, "-m", "jobs.cli", "simulate", "--out", str(folder / "landing"),
                                  "--start", START.isoformat(), "--days", str(days),
                                  "--subscribers", str(subscribers)])
    measure = Measure(name, "simulate", landing_rows(folder / "landing"), seconds, peak)
    stamp.write_text(json.dumps({"key": key, "measure": asdict(measure)}))
    return folder / "landing", dates, measure


def landing_rows(landing: Path) -> int:
    """Rows the carriers delivered, from the simulator's own counts."""
    import polars as pl

    return int(pl.read_csv(landing / "truth" / "counts.csv")["rows"].sum())


def bench_step(name: str, step: str, landing: Path, dates: list[date]) -> Measure:
    lake = CACHE / name / "lake"
    argv = [sys.executable, str(Path(__file__)), "--child", step, "--landing", str(landing), "--lake", str(lake),
            "--outbox", str(CACHE / name / "outbox"), "--dates", ",".join(d.isoformat() for d in dates)]
    seconds, peak = run_measured(argv)
    return Measure(name, step, landing_rows(landing), seconds, peak)


def bench_nightly(name: str, landing: Path, dates: list[date]) -> Measure:
    folder = CACHE / name / "nightly"
    subprocess.run(["rm", "-rf", str(folder)], check=True)
    argv = [sys.executable, "-m", "jobs.cli", "nightly", "--from", dates[0].isoformat(), "--to", dates[-1].isoformat(),
            "--landing", str(landing), "--lake", str(folder / "lake"), "--outbox", str(folder / "outbox")]
    seconds, peak = run_measured(argv, quiet=True)
    return Measure(name, "nightly", landing_rows(landing), seconds, peak)


def child(step: str, landing: str, lake: str, outbox: str, dates: str) -> None:
    """Run one step over all dates in this process, with one Spark session."""
    from jobs.config import load_config
    from jobs.spark import spark_session

    config = load_config().with_paths(landing=landing, lake=lake, outbox=outbox)
    spark = spark_session(config)
    from jobs import pipeline

    if step not in pipeline.RUNNERS:
        raise SystemExit(f"bench: unknown step {step}")
    for day in (date.fromisoformat(d) for d in dates.split(",")):
        pipeline.run_step(step, config, day, spark=spark)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(DATASETS), help="datasets to run, e.g. 1M")
    parser.add_argument("--steps", default=",".join(STEPS))
    parser.add_argument("--child")
    parser.add_argument("--landing"), parser.add_argument("--lake"), parser.add_argument("--outbox")
    parser.add_argument("--dates")
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.landing, args.lake, args.outbox, args.dates)

    measures = []
    for name in args.sizes.split(","):
        console.print(f"[bold]{name}[/]: preparing dataset")
        landing, dates, simulated = dataset(name)
        if "simulate" in args.steps:
            measures.append(simulated)
        for step in args.steps.split(","):
            if step != "simulate":
                console.print(f"[bold]{name}[/]: {step}")
                measures.append(bench_nightly(name, landing, dates) if step == "nightly"
                                else bench_step(name, step, landing, dates))
    table = Table(title="cdrwatch bench (2-core machine: compare runs on the same machine only)")
    for column in ("dataset", "step", "rows", "seconds", "rows/s", "peak RSS MB"):
        table.add_column(column, justify="right")
    for m in measures:
        table.add_row(m.dataset, m.step, f"{m.rows:,}", f"{m.seconds:.1f}", f"{m.rows_per_s:,.0f}",
                      f"{m.peak_rss_mb:,.0f}")
    console.print(table)
    out = CACHE / "bench.json"   # the latest measure of every (dataset, step) run so far
    saved = {(m["dataset"], m["step"]): m for m in (json.loads(out.read_text()) if out.exists() else [])}
    saved.update({(m.dataset, m.step): {**asdict(m), "rows_per_s": round(m.rows_per_s)} for m in measures})
    out.write_text(json.dumps([saved[k] for k in sorted(saved, key=lambda k: (k[0], _order(k[1])))], indent=2))
    console.print(f"saved {out}")


def _order(step: str) -> int:
    return STEPS.index(step) if step in STEPS else len(STEPS)


if __name__ == "__main__":
    main()
