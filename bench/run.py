"""`make bench`: time cdrwatch on both engines on cached datasets, beside a DuckDB reference, and hold
it against issue 26's targets.

Datasets (simulated once, cached in `.bench/<name>/`): `1M` and `10M` CDR rows (2 and 4 nights), and
`7x150k`, a small city over 7 nights (~150 k rows a night), the backfill case. Steps, each a child
process whose wall time and peak RSS of its whole process tree (Python, and the JVM on Spark) this
process measures:

- `simulate`, `ingest`, `detect`, `dens`, `export`: one step over all dates on the local engine;
- `nightly` / `nightly_spark`: the whole `cdrwatch nightly --from --to --engine local|spark` through
  the CLI, each into a lake of its own (also as seconds per night);
- `detect_n2_vs_n7` / `detect_n2_vs_n7_spark` (7-night datasets, after the same engine's nightly):
  `detect` alone for night 2 and night 7 on that lake, timed in one process after a warm-up run:
  history must not slow it;
- `engines`: the detectors alone on the last night, Spark (warm) vs local (fresh process);
- `duckdb`: bench/duckdb_reference.py (ingest + the detectors' daily aggregates in DuckDB) on the
  same landing, so each engine's nightly / DuckDB ratio is printed side by side;
- `spark_floor` (dev-only, in no dataset's default steps): bench/spark_floor.py, the least a Spark
  ingest of the same landing costs (read, split lines into fields, write sorted Parquet).

Prints a table per step, the nightly-vs-DuckDB ratios and the targets table (met / not met / not
measured), each from this run or else from `.bench/bench.json`, which keeps the latest measure of
every (dataset, step). Nothing here is asserted: speed is measured, not tested.

    python bench/run.py [--sizes 1M,10M,7x150k] [--steps nightly,nightly_spark,duckdb,...]
    python bench/run.py --sizes smoke   # 1,000 subscribers x 7 nights, cached (with its bench.json) under /tmp
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import date, timedelta
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".bench"
SMOKE_CACHE = Path(tempfile.gettempdir()) / "cdrwatch-bench-smoke"
START = date(2026, 11, 20)
# In pipeline order: each step reads what the previous wrote. "nightly" is the whole `cdrwatch nightly`
# over the dataset's dates through the real CLI, into a lake and outbox of its own; detect_n2_vs_n7
# reads that lake; duckdb writes to a folder of its own.
STEPS = (
    "simulate",
    "ingest",
    "detect",
    "dens",
    "export",
    "nightly",
    "nightly_spark",
    "detect_n2_vs_n7",
    "detect_n2_vs_n7_spark",
    "engines",
    "duckdb",
    "spark_floor",
)
BACKFILL_STEPS = (
    "simulate",
    "nightly",
    "nightly_spark",
    "detect_n2_vs_n7",
    "detect_n2_vs_n7_spark",
    "engines",
    "duckdb",
)
# the engine a step runs on: the `_spark` twins run the same thing with `--engine spark`
ENGINE_OF = {step: "spark" if step.endswith("_spark") else "local" for step in STEPS}


@dataclass(frozen=True)
class Dataset:
    subscribers: int
    days: int
    steps: tuple[str, ...]  # what a bench of it runs unless --steps says otherwise


# The simulator's behaviour sets the rows: 25,000 subscribers make ~0.5 M rows a night, 5,300 ~150 k
# (130-170 k; dens and their victims add a fixed part; 20,000 subscribers are ~420 k a night since #13).
DATASETS = {
    "1M": Dataset(25_000, 2, STEPS[:7] + ("duckdb",)),
    "10M": Dataset(125_000, 4, ("simulate", "nightly", "nightly_spark", "duckdb")),
    "7x150k": Dataset(5_300, 7, BACKFILL_STEPS),
}
# Smoke sizes try every code path in minutes; they are cached (and their bench.json kept) under
# SMOKE_CACHE, never in .bench, and are not among the targets.
SMOKE = {"smoke": Dataset(1_000, 7, BACKFILL_STEPS)}
SMALL = "7x150k"  # the dataset of the small-night and detect-growth targets
console = Console(width=None if sys.stdout.isatty() else 140)  # a log file gets whole tables


@dataclass
class Measure:
    dataset: str
    step: str
    rows: int
    seconds: float
    peak_rss_mb: float
    nights: int = 0  # the nights it covered (0: not recorded)
    extra: dict = field(default_factory=dict)  # step-specific numbers (per night, ratio, ...)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    @classmethod
    def load(cls, saved: dict) -> "Measure":
        """From bench.json, whose older entries lack the later fields and carry `rows_per_s`."""
        return cls(**{f.name: saved[f.name] for f in fields(cls) if f.name in saved})


def run_measured(argv: list[str], quiet: bool = False, capture: bool = False) -> tuple[float, float, str]:
    """Run a command; return (wall seconds, peak RSS in MB of its process tree, sampled every 0.2 s,
    its stdout if `capture` else "")."""
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        child = psutil.Popen(argv, cwd=ROOT, stdout=out if capture else subprocess.DEVNULL if quiet else None)
        peak = peak_pss = 0
        while child.poll() is None:
            try:
                tree = [child, *child.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
                peak_pss = max(peak_pss, sum(_pss(p) for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.2)
        PEAK_PSS_MB[tuple(argv)] = peak_pss / 2**20
        seconds = time.perf_counter() - started
        out.seek(0)
        text = out.read() if capture else ""
    if child.returncode != 0:
        raise SystemExit(f"bench: {' '.join(argv[:4])} ... failed with exit code {child.returncode}")
    return seconds, peak / 2**20, text


# argv -> peak PSS (MB) of its tree: RSS counts the pages that forked Python workers share with
# their daemon once per process; PSS splits them, so it is what the tree really holds. Printed
# beside the RSS, which is what the targets use (the stricter of the two).
PEAK_PSS_MB: dict[tuple[str, ...], float] = {}


def _pss(process: psutil.Process) -> int:
    try:
        return process.memory_full_info().pss
    except (psutil.AccessDenied, AttributeError):
        return process.memory_info().rss


def last_json(text: str) -> dict:
    """The last line of a child's stdout that is a JSON object (its result)."""
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise SystemExit(f"bench: no JSON result line in the child's output: {text[-500:]!r}")


def simulator_fingerprint() -> str:
    """The simulator's code that writes a city (the evaluator aside, and the product's number rules it
    uses): a cached dataset is simulated again when it changes."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "simulator").rglob("*.py")):
        if path.name != "evaluate.py":
            digest.update(path.read_bytes())
    digest.update((ROOT / "jobs" / "numbers.py").read_bytes())
    return digest.hexdigest()[:16]


def dataset(name: str, cache: Path) -> tuple[Path, list[date], Measure | None]:
    """The cached landing zone of a dataset; simulated (and measured) when absent or stale."""
    spec = {**DATASETS, **SMOKE}[name]
    folder = cache / name
    stamp = folder / "stamp.json"
    key = {
        "subscribers": spec.subscribers,
        "days": spec.days,
        "start": START.isoformat(),
        "simulator": simulator_fingerprint(),
    }
    dates = [START + timedelta(days=i) for i in range(spec.days)]
    if stamp.exists() and json.loads(stamp.read_text())["key"] == key:
        cached = json.loads(stamp.read_text())["measure"]
        return folder / "landing", dates, Measure.load(cached)
    subprocess.run(["rm", "-rf", str(folder)], check=True)
    folder.mkdir(parents=True)
    seconds, peak, _ = run_measured(
        [
            sys.executable,
            "-m",
            "jobs.cli",
            "simulate",
            "--out",
            str(folder / "landing"),
            "--start",
            START.isoformat(),
            "--days",
            str(spec.days),
            "--subscribers",
            str(spec.subscribers),
        ]
    )
    measure = Measure(name, "simulate", landing_rows(folder / "landing"), seconds, peak, len(dates))
    stamp.write_text(json.dumps({"key": key, "measure": asdict(measure)}))
    return folder / "landing", dates, measure


def landing_rows(landing: Path, day: date | None = None) -> int:
    """Rows the carriers delivered (all dates, or one), from the simulator's own counts."""
    import polars as pl

    counts = pl.read_csv(landing / "truth" / "counts.csv")
    if day is not None:
        counts = counts.filter(pl.col("date") == day.isoformat())
    return int(counts["rows"].sum())


def bench_step(name: str, step: str, landing: Path, dates: list[date], cache: Path) -> Measure:
    lake = cache / name / "lake"
    argv = [
        sys.executable,
        str(Path(__file__)),
        "--child",
        step,
        "--landing",
        str(landing),
        "--lake",
        str(lake),
        "--outbox",
        str(cache / name / "outbox"),
        "--dates",
        ",".join(d.isoformat() for d in dates),
    ]
    seconds, peak, _ = run_measured(argv)
    return Measure(name, step, landing_rows(landing), seconds, peak, len(dates))


def bench_nightly(name: str, landing: Path, dates: list[date], cache: Path, step: str = "nightly") -> Measure:
    """The whole `cdrwatch nightly --from --to` through the CLI on the step's engine, into a lake and
    outbox of its own (`.bench/<name>/<step>/`)."""
    folder = cache / name / step
    subprocess.run(["rm", "-rf", str(folder)], check=True)
    argv = [
        sys.executable,
        "-m",
        "jobs.cli",
        "nightly",
        "--engine",
        ENGINE_OF[step],
        "--from",
        dates[0].isoformat(),
        "--to",
        dates[-1].isoformat(),
        "--landing",
        str(landing),
        "--lake",
        str(folder / "lake"),
        "--outbox",
        str(folder / "outbox"),
    ]
    seconds, peak, _ = run_measured(argv, quiet=True)
    return Measure(
        name,
        step,
        landing_rows(landing),
        seconds,
        peak,
        len(dates),
        {
            "engine": ENGINE_OF[step],
            "seconds_per_night": round(seconds / len(dates), 2),
            "peak_pss_mb": round(PEAK_PSS_MB.get(tuple(argv), 0.0)),
        },
    )


def bench_detect_growth(
    name: str, landing: Path, dates: list[date], cache: Path, step: str = "detect_n2_vs_n7"
) -> Measure | None:
    """detect for night 2 and night 7 on the same engine's nightly lake, timed in one process after a
    warm-up run (Spark: one warmed-up session)."""
    nightly = "nightly_spark" if ENGINE_OF[step] == "spark" else "nightly"
    folder = cache / name / nightly
    if len(dates) < 7 or not (folder / "lake").exists():
        console.print(
            f"[yellow]{name}: {step} needs 7 nights and this dataset's {nightly} lake "
            f"(run --steps {nightly} first): skipped[/]"
        )
        return None
    night2, night7 = dates[1], dates[6]
    argv = [
        sys.executable,
        str(Path(__file__)),
        "--child",
        step,
        "--landing",
        str(landing),
        "--lake",
        str(folder / "lake"),
        "--outbox",
        str(folder / "outbox"),
        "--dates",
        f"{night2.isoformat()},{night7.isoformat()}",
    ]
    wall, peak, out = run_measured(argv, capture=True)
    timed = last_json(out)
    return Measure(
        name,
        step,
        landing_rows(landing, night7),
        timed["night7_s"],
        peak,
        1,
        {
            **timed,
            "engine": ENGINE_OF[step],
            "wall_s": round(wall, 2),
            "night2": night2.isoformat(),
            "night7": night7.isoformat(),
        },
    )


def bench_engines(name: str, landing: Path, dates: list[date], cache: Path) -> Measure | None:
    """The detectors ported to the local engine on the last night of the nightly's lake: Spark (warm
    session, second run) and local (Polars, a fresh process), each in a process of its own."""
    folder = cache / name / "nightly"
    if not (folder / "lake").exists():
        console.print(f"[yellow]{name}: engines needs this dataset's nightly lake (run --steps nightly first)[/]")
        return None
    night = dates[-1]
    timed = {}
    for engine in ("spark", "local"):
        argv = [
            sys.executable,
            str(ROOT / "bench" / "engines.py"),
            "--landing",
            str(landing),
            "--date",
            night.isoformat(),
            "--engine",
            engine,
            "--lake",
            str(folder / "lake"),
            "--outbox",
            str(folder / "outbox"),
        ]
        wall, peak, out = run_measured(argv, capture=True)
        result = last_json(out)
        timed[engine] = {
            "seconds": result["seconds"],
            "wall_s": round(wall, 2),
            "peak_mb": round(peak),
            "flags": result["flags"],
        }
    if timed["spark"]["flags"] != timed["local"]["flags"]:
        console.print(
            f"[red]{name}: engines: the two engines flagged {timed['spark']['flags']} vs {timed['local']['flags']}[/]"
        )
    extra = {
        "detectors": result["detectors"],
        "night": night.isoformat(),
        **{f"{e}_{k}": v for e, t in timed.items() for k, v in t.items()},
    }
    return Measure(
        name, "engines", landing_rows(landing, night), timed["local"]["seconds"], timed["local"]["peak_mb"], 1, extra
    )


def bench_script(
    name: str, step: str, script: str, keys: tuple[str, ...], landing: Path, dates: list[date], cache: Path
) -> Measure:
    """bench/<script> on the same landing, in a scratch folder of its own; `seconds` is its wall time
    (as nightly's), `extra` keeps `keys` of what it measured inside (its last JSON line)."""
    out = cache / name / step
    subprocess.run(["rm", "-rf", str(out)], check=True)
    argv = [
        sys.executable,
        str(ROOT / "bench" / script),
        "--landing",
        str(landing),
        "--from",
        dates[0].isoformat(),
        "--to",
        dates[-1].isoformat(),
        "--out",
        str(out),
    ]
    seconds, peak, text = run_measured(argv, capture=True)
    result = last_json(text)
    return Measure(
        name, step, landing_rows(landing), seconds, peak, len(dates), {k: result[k] for k in keys if k in result}
    )


SCRIPTS = {  # step -> the script it runs and what of its JSON is kept (spark_floor's floor: sorted_write_s)
    "duckdb": (
        "duckdb_reference.py",
        ("rows", "accepted", "seconds", "gbk_decode_seconds", "peak_rss_mb", "duckdb", "threads", "memory_limit"),
    ),
    "spark_floor": (
        "spark_floor.py",
        ("scan_s", "split_write_s", "sorted_write_s", "rows", "dates", "warmup_s", "session_s"),
    ),
}


def child(step: str, landing: str, lake: str, outbox: str, dates: str) -> None:
    """Run one step over all dates in this process on the step's engine (Spark: one session), or, for
    detect_n2_vs_n7[_spark], detect for the two dates: the first once to warm up, then both timed
    (prints a JSON line)."""
    from jobs import pipeline
    from jobs.config import load_config

    engine = ENGINE_OF.get(step, "local")
    config = load_config(overrides=[f"engine={engine}"]).with_paths(landing=landing, lake=lake, outbox=outbox)
    run = pipeline.Run()
    if engine == "spark":
        from jobs.spark import spark_session

        run = pipeline.Run(spark=spark_session(config))
    days = [date.fromisoformat(d) for d in dates.split(",")]
    if step.startswith("detect_n2_vs_n7"):
        seconds = []
        for day in (days[0], *days):
            started = time.perf_counter()
            pipeline.run_step("detect", config, day, run=run)
            seconds.append(time.perf_counter() - started)
        warmup, night2, night7 = seconds
        print(
            json.dumps(
                {
                    "warmup_s": round(warmup, 3),
                    "night2_s": round(night2, 3),
                    "night7_s": round(night7, 3),
                    "ratio": round(night7 / night2, 3),
                }
            ),
            flush=True,
        )
        return
    if step not in pipeline.STEPS:
        raise SystemExit(f"bench: unknown step {step}")
    for day in days:
        pipeline.run_step(step, config, day, run=run)


def run_one(name: str, step: str, landing: Path, dates: list[date], cache: Path) -> Measure | None:
    if step.startswith("nightly"):
        return bench_nightly(name, landing, dates, cache, step)
    if step.startswith("detect_n2_vs_n7"):
        return bench_detect_growth(name, landing, dates, cache, step)
    if step == "engines":
        return bench_engines(name, landing, dates, cache)
    if step in SCRIPTS:
        return bench_script(name, step, *SCRIPTS[step], landing, dates, cache)
    return bench_step(name, step, landing, dates, cache)


def say(m: Measure) -> None:
    """One line as soon as a step is measured (a 10M bench runs for many minutes)."""
    line = f"  {m.dataset} {m.step}: {m.seconds:.1f} s, {m.rows_per_s:,.0f} rows/s, peak {m.peak_rss_mb:,.0f} MB"
    if m.step.startswith("nightly") and m.nights:
        line += f", {m.seconds / m.nights:.1f} s a night over {m.nights} nights"
    if m.step == "engines":
        e = m.extra
        line += (
            f": {e['detectors']} on night {e['night']}: spark {e['spark_seconds']:.1f} s (warm; process "
            f"{e['spark_wall_s']:.1f} s, {e['spark_peak_mb']:,} MB), local {e['local_seconds']:.1f} s (process "
            f"{e['local_wall_s']:.1f} s, {e['local_peak_mb']:,} MB), {e['spark_flags']} / {e['local_flags']} flags"
        )
    if m.step.startswith("detect_n2_vs_n7"):
        line += (
            f": detect night 2 {m.extra['night2_s']:.1f} s, night 7 {m.extra['night7_s']:.1f} s, "
            f"night7/night2 {m.extra['ratio']:.2f} (warm-up {m.extra['warmup_s']:.1f} s)"
        )
    if m.step == "duckdb" and "seconds" in m.extra:
        line += f" (inside DuckDB {m.extra['seconds']:.1f} s, {m.extra.get('accepted', 0):,} rows accepted)"
    if m.step == "spark_floor" and "sorted_write_s" in m.extra:
        line += (
            f" (inside Spark over {m.extra['dates']} dates: scan {m.extra['scan_s']:.1f} s, split+write "
            f"{m.extra['split_write_s']:.1f} s, split+sorted write {m.extra['sorted_write_s']:.1f} s; "
            f"session start {m.extra['session_s']:.1f} s)"
        )
    console.print(line)


def save(out: Path, measures: list[Measure]) -> dict[tuple[str, str], Measure]:
    """Merge into bench.json (the latest measure of every (dataset, step) run so far); return all of it."""
    saved = {
        (m["dataset"], m["step"]): m for m in map(_engine_named, json.loads(out.read_text()) if out.exists() else [])
    }
    saved.update({(m.dataset, m.step): {**asdict(m), "rows_per_s": round(m.rows_per_s)} for m in measures})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([saved[k] for k in sorted(saved, key=lambda k: (k[0], _order(k[1])))], indent=2))
    return {k: Measure.load(v) for k, v in saved.items()}


def _engine_named(saved: dict) -> dict:
    """A measure saved before the local engine (#26) was Spark's: its nightly and detect growth are
    the `_spark` steps now."""
    if saved["step"] in ("nightly", "detect_n2_vs_n7") and "engine" not in saved.get("extra", {}):
        return {**saved, "step": saved["step"] + "_spark", "extra": {**saved.get("extra", {}), "engine": "spark"}}
    return saved


def steps_table(measures: list[Measure]) -> Table:
    table = Table(title="cdrwatch bench (2-core machine: compare runs on the same machine only)")
    for column in ("dataset", "step", "rows", "seconds", "rows/s", "peak RSS MB", "s/night"):
        table.add_column(column, justify="right")
    for m in measures:
        per_night = (
            f"{m.seconds / m.nights:.1f}" if m.nights and m.step in ("nightly", "nightly_spark", "duckdb") else ""
        )
        table.add_row(
            m.dataset,
            m.step,
            f"{m.rows:,}",
            f"{m.seconds:.1f}",
            f"{m.rows_per_s:,.0f}",
            f"{m.peak_rss_mb:,.0f}",
            per_night,
        )
    return table


def ratio_table(everything: dict[tuple[str, str], Measure], fresh: set[tuple[str, str]]) -> Table | None:
    """Each engine's nightly seconds / DuckDB seconds per dataset where both were measured (now or before)."""
    pairs = sorted(
        {(d, s) for d, s in everything if s in ("nightly", "nightly_spark") and (d, "duckdb") in everything},
        key=lambda k: (list(DATASETS).index(k[0]) if k[0] in DATASETS else len(DATASETS), k[1]),
    )
    if not pairs:
        return None
    table = Table(title="nightly vs the DuckDB reference (same landing; local target: <= 1.5x DuckDB at 10M)")
    for column in ("dataset", "engine", "rows", "nightly s", "DuckDB s", "nightly / DuckDB", "from"):
        table.add_column(column, justify="right")
    for name, step in pairs:
        nightly, duck = everything[(name, step)], everything[(name, "duckdb")]
        source = ", ".join(sorted({"this run" if (name, s) in fresh else "bench.json" for s in (step, "duckdb")}))
        if nightly.rows != duck.rows:
            source += f" [yellow](rows differ: {nightly.rows:,} vs {duck.rows:,})[/]"
        table.add_row(
            name,
            ENGINE_OF[step],
            f"{nightly.rows:,}",
            f"{nightly.seconds:.1f}",
            f"{duck.seconds:.1f}",
            f"{nightly.seconds / duck.seconds:.1f}x" if duck.seconds else "-",
            source,
        )
    return table


def floor_lines(everything: dict[tuple[str, str], Measure], fresh: set[tuple[str, str]]) -> list[str]:
    """Per dataset with both: the nightly's seconds over the Spark floor's (read + split + sorted
    write, summed over the dates inside one session, JVM start not counted)."""
    lines = []
    for (name, step), floor in sorted(everything.items()):
        nightly = everything.get((name, "nightly_spark"))
        seconds = floor.extra.get("sorted_write_s") if step == "spark_floor" else None
        if nightly is None or not seconds:
            continue
        source = ", ".join(
            sorted({"this run" if (name, s) in fresh else "bench.json" for s in ("nightly_spark", "spark_floor")})
        )
        lines.append(
            f"Spark floor (read+split+sorted write) vs the spark engine's nightly, {name}: floor {seconds:.1f} s "
            f"(+ {floor.extra.get('session_s', 0):.1f} s session start), nightly {nightly.seconds:.1f} s "
            f"= {nightly.seconds / seconds:.1f}x ({source})"
        )
    return lines


Target = tuple[str, str, str, str, list[tuple[str, str]]]  # case, target, measured, status, measures used


# What the Spark engine measured before the local engine (issue 26's "now" column): it must not get slower.
SPARK_BEFORE = {"7x150k s/night": 154.0, "10M s": 1334.0}


def targets(everything: dict[tuple[str, str], Measure]) -> list[Target]:
    """Issue 26's targets with the measured value and met / not met / not measured: the local engine's,
    then the Spark engine's "not slower than before"."""
    rows: list[Target] = []

    def add(case: str, target: str, keys: list[tuple[str, str]], value, shown, limit: float, most: bool = True):
        """`value(*measures)` and `shown(value)` run only when every measure in `keys` exists."""
        got = [everything.get(k) for k in keys]
        number = value(*got) if all(got) else None
        if number is None:
            rows.append((case, target, "-", "not measured", keys))
            return
        met = number <= limit if most else number >= limit
        rows.append((case, target, shown(number), "[green]met[/]" if met else "[red]not met[/]", keys))

    def per_night(m: Measure) -> float:
        return m.seconds / (m.nights or DATASETS[m.dataset].days)

    big, base, duck = ("10M", "nightly"), ("1M", "nightly"), ("10M", "duckdb")
    small, growth = (SMALL, "nightly"), (SMALL, "detect_n2_vs_n7")
    add(f"local: {SMALL}, whole nightly", "<= 5 s a night", [small], per_night, lambda v: f"{v:.1f} s a night", 5)
    add(
        "local: 10M (4 nights), whole nightly",
        "<= 1.5x DuckDB",
        [big, duck],
        lambda m, d: m.seconds / d.seconds if d.seconds else None,
        lambda v: f"{v:.2f}x ({everything[big].seconds:,.1f} s vs {everything[duck].seconds:,.1f} s)",
        1.5,
    )
    add(
        "local: 10M peak memory (process tree)",
        "<= 3 GiB",
        [big],
        lambda m: m.peak_rss_mb / 1024,
        lambda v: f"{v:.2f} GiB",
        3,
    )
    add(
        "local: 10M time / 1M time",
        "<= 11",
        [big, base],
        lambda m, b: m.seconds / b.seconds if b.seconds else None,
        lambda v: f"{v:.1f}",
        11,
    )
    add(
        f"local: detect night 7 / night 2 ({SMALL})",
        "<= 1.2",
        [growth],
        lambda g: g.extra.get("ratio"),
        lambda v: (
            f"{v:.2f} ({everything[growth].extra['night7_s']:.2f} s / {everything[growth].extra['night2_s']:.2f} s)"
        ),
        1.2,
    )
    before = SPARK_BEFORE["7x150k s/night"]
    add(
        f"spark: {SMALL}, whole nightly",
        f"<= {before:.0f} s a night",
        [(SMALL, "nightly_spark")],
        per_night,
        lambda v: f"{v:.1f} s a night",
        before,
    )
    before = SPARK_BEFORE["10M s"]
    add(
        "spark: 10M (4 nights), whole nightly",
        f"<= {before:,.0f} s",
        [("10M", "nightly_spark")],
        lambda m: m.seconds,
        lambda v: f"{v:,.1f} s",
        before,
    )
    add(
        f"spark: detect night 7 / night 2 ({SMALL})",
        "<= 1.2",
        [(SMALL, "detect_n2_vs_n7_spark")],
        lambda g: g.extra.get("ratio"),
        lambda v: f"{v:.2f}",
        1.2,
    )
    return rows


def targets_table(everything: dict[tuple[str, str], Measure], fresh: set[tuple[str, str]]) -> Table:
    table = Table(title="targets (machine otherwise idle; each value from this run, else bench.json)")
    for column in ("case", "target", "measured", "status", "from"):
        table.add_column(column)
    for case, target, shown, status, keys in targets(everything):
        origin = "" if shown == "-" else ", ".join(sorted({"this run" if k in fresh else "bench.json" for k in keys}))
        table.add_row(case, target, shown, status, origin)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default=",".join(DATASETS),
        help=f"datasets to run (default {','.join(DATASETS)}; smoke sizes: {','.join(SMOKE)})",
    )
    parser.add_argument(
        "--steps",
        help="steps to run on every size (default: each dataset's own: "
        + "; ".join(f"{n}: {','.join(d.steps)}" for n, d in DATASETS.items())
        + ")",
    )
    parser.add_argument(
        "--cache", type=Path, help=f"where datasets and bench.json live (default .bench; {SMOKE_CACHE} for smoke sizes)"
    )
    parser.add_argument("--child")
    parser.add_argument("--landing"), parser.add_argument("--lake"), parser.add_argument("--outbox")
    parser.add_argument("--dates")
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.landing, args.lake, args.outbox, args.dates)

    sizes = args.sizes.split(",")
    unknown = [s for s in sizes if s not in DATASETS and s not in SMOKE]
    if unknown:
        parser.error(f"unknown size(s) {','.join(unknown)} (sizes: {','.join([*DATASETS, *SMOKE])})")
    smoke = [s for s in sizes if s in SMOKE]
    if smoke and len(smoke) != len(sizes):
        parser.error("run smoke sizes on their own (they keep a bench.json of their own)")
    wanted = args.steps.split(",") if args.steps else None
    if wanted and set(wanted) - set(STEPS):
        parser.error(f"unknown step(s) {','.join(sorted(set(wanted) - set(STEPS)))} (steps: {','.join(STEPS)})")
    cache = args.cache or (SMOKE_CACHE if smoke else CACHE)
    out = cache / "bench.json"

    measures = []
    for name in sizes:
        spec = {**DATASETS, **SMOKE}[name]
        steps = sorted(wanted or spec.steps, key=_order)
        console.print(f"[bold]{name}[/]: preparing dataset ({spec.subscribers:,} subscribers, {spec.days} nights)")
        landing, dates, simulated = dataset(name, cache)
        for step in steps:
            if step == "simulate":
                measure = simulated
            else:
                console.print(f"[bold]{name}[/]: {step}")
                measure = run_one(name, step, landing, dates, cache)
            if measure is not None:
                measures.append(measure)
                say(measure)
                save(out, measures)  # after every step, so a failure later keeps what was measured
    everything = save(out, measures)
    fresh = {(m.dataset, m.step) for m in measures}
    console.print(steps_table(measures))
    ratios = ratio_table(everything, fresh)
    if ratios is not None:
        console.print(ratios)
    for line in floor_lines(everything, fresh):
        console.print(line)
    console.print(targets_table(everything, fresh))
    console.print(f"saved {out}")


def _order(step: str) -> int:
    return STEPS.index(step) if step in STEPS else len(STEPS)


if __name__ == "__main__":
    main()
