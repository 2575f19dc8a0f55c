"""Where a night's time goes: run the nightly steps in one process and one Spark session, and print
per step its wall seconds, the CPU seconds of the JVM and of Python (a cost measure that a busy
machine disturbs far less than wall time), the classes Spark generated and compiled and the JVM's
peak memory so far; with
`--events`, also the Spark jobs, stages and tasks of each step (from Spark's event log), and with
`--profile STEP` the driver's top Python functions (cProfile).

    python bench/profile_night.py --landing L --lake K --outbox O --from D --to D [--steps ...]
        [--set key=value ...] [--events [--jobs]] [--profile detect [--profile-filter REGEX]]

Spark jobs are tagged with their step through a local property (`cdrwatch.step`), so the event
log says which step ran which job. Dev-only: nothing in the pipeline imports this.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import json
import os
import pstats
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", required=True)
    parser.add_argument("--lake", required=True)
    parser.add_argument("--outbox", required=True)
    parser.add_argument("--from", dest="first", required=True)
    parser.add_argument("--to", dest="last", required=True)
    parser.add_argument("--steps", default="ingest,validate,feedback,detect,dens,export,report")
    parser.add_argument("--set", action="append", default=[], help="conf override key=value")
    parser.add_argument("--events", action="store_true", help="count Spark jobs per step from Spark's event log")
    parser.add_argument("--jobs", action="store_true", help="with --events: list every Spark job (call site, seconds)")
    parser.add_argument("--profile", default="", help="steps to run under cProfile, e.g. detect,dens")
    parser.add_argument("--profile-filter", default="", help="regex: the cProfile lines to show (default: the top)")
    args = parser.parse_args()

    from jobs import pipeline
    from jobs.config import load_config
    from jobs.spark import spark_session

    events = Path(tempfile.mkdtemp(prefix="cdrwatch-events-"))
    overrides = [
        *(
            [
                "spark.extra.spark.eventLog.enabled=true",
                f"spark.extra.spark.eventLog.dir={events}",
                "spark.extra.spark.eventLog.compress=false",
                "spark.extra.spark.eventLog.rolling.enabled=false",
            ]
            if args.events
            else []
        ),
        *args.set,
    ]
    config = load_config(overrides=overrides).with_paths(landing=args.landing, lake=args.lake, outbox=args.outbox)
    started = time.perf_counter()
    spark = spark_session(config)
    print(f"session: {time.perf_counter() - started:.1f} s", flush=True)
    sc = spark.sparkContext
    jvm = sc._jvm.java.lang.ProcessHandle.current().pid()
    codegen = sc._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME()
    profiled = set(filter(None, args.profile.split(",")))
    wall: dict[tuple[str, str], float] = {}
    day = dt.date.fromisoformat(args.first)
    while day <= dt.date.fromisoformat(args.last):
        for step in args.steps.split(","):
            sc.setLocalProperty("cdrwatch.step", f"{day} {step}")
            profile = cProfile.Profile() if step in profiled else None
            t0, cpu0, compiled0 = time.perf_counter(), _cpu(jvm), codegen.getCount()
            if profile:
                profile.enable()
            pipeline.run_step(step, config, day, spark=spark)
            if profile:
                profile.disable()
            wall[(str(day), step)] = time.perf_counter() - t0
            jvm_s, py_s = (b - a for a, b in zip(cpu0, _cpu(jvm)))
            print(
                f"{day} {step}: {wall[(str(day), step)]:.1f} s wall, cpu: jvm {jvm_s:.1f} s + python {py_s:.1f} s,"
                f" {codegen.getCount() - compiled0} classes compiled, JVM peak RSS so far {_peak_gb(jvm):.2f} GB",
                flush=True,
            )
            if profile:
                out = io.StringIO()
                pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(
                    *([args.profile_filter, 60] if args.profile_filter else [45])
                )
                print(f"---- cProfile {day} {step}\n{out.getvalue()}", flush=True)
        day += dt.timedelta(days=1)
    sc.setLocalProperty("cdrwatch.step", None)
    spark.stop()
    if args.events:
        _summarise(events, wall, args.jobs)
    shutil.rmtree(events, ignore_errors=True)


def _cpu(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) so far of the JVM and of this Python process."""
    ticks = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = os.times()
    return (int(fields[11]) + int(fields[12])) / ticks, own.user + own.system


def _peak_gb(pid: int) -> float:
    """The JVM's peak resident memory since it started (VmHWM), GB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024**2
    return float("nan")


def _summarise(events: Path, wall: dict[tuple[str, str], float], list_jobs: bool) -> None:
    """Jobs, stages (that ran), tasks and seconds inside jobs per step, from the event log."""
    jobs: dict[int, dict] = {}
    stages: dict[int, dict] = {}
    for log in sorted(p for p in events.rglob("*") if p.is_file() and not p.name.startswith(".")):
        for line in log.read_text().splitlines():
            e = json.loads(line)
            kind = e["Event"]
            if kind == "SparkListenerJobStart":
                props = e.get("Properties") or {}
                jobs[e["Job ID"]] = {
                    "step": props.get("cdrwatch.step", "?"),
                    "start": e["Submission Time"],
                    "stages": e["Stage IDs"],
                    "site": props.get("callSite.short", ""),
                }
            elif kind == "SparkListenerJobEnd":
                jobs[e["Job ID"]]["end"] = e["Completion Time"]
            elif kind == "SparkListenerStageCompleted":
                info = e["Stage Info"]
                stages[info["Stage ID"]] = {"tasks": info["Number of Tasks"], "ran": "Submission Time" in info}
    per = defaultdict(lambda: {"jobs": 0, "stages": 0, "tasks": 0, "job_s": 0.0})
    for job_id, job in sorted(jobs.items()):
        p = per[job["step"]]
        p["jobs"] += 1
        ran = [stages[s] for s in job["stages"] if s in stages and stages[s]["ran"]]
        p["stages"] += len(ran)
        p["tasks"] += sum(s["tasks"] for s in ran)
        seconds = (job.get("end", job["start"]) - job["start"]) / 1000
        p["job_s"] += seconds
        if list_jobs:
            print(f"job {job_id:4d} {job['step']:22s} {seconds:6.2f} s  stages {len(ran)}  {job['site']}")
    print(f"{'night step':24s} {'wall s':>7s} {'jobs':>5s} {'stages':>6s} {'tasks':>6s} {'in jobs s':>9s}")
    for (day, step), seconds in wall.items():
        p = per[f"{day} {step}"]
        print(
            f"{day + ' ' + step:24s} {seconds:7.1f} {p['jobs']:5d} {p['stages']:6d} {p['tasks']:6d} {p['job_s']:9.1f}"
        )


if __name__ == "__main__":
    main()
