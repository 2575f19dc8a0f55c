"""The ported detectors on one night of a lake, on one engine: `spark` (load_night + run_detectors in a
warmed-up session: the second run is timed) or `local` (load_local_night + run_detectors on Polars, in
a fresh process: what a night costs there). Prints one JSON line: engine, seconds, flags.

    python bench/engines.py --landing L --lake K --outbox O --date D --engine spark|local
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detectors import DETECTORS  # noqa: E402  (after the repo root is on sys.path)
from detectors import local as local_engine  # noqa: E402
from jobs.config import load_config  # noqa: E402


def spark_run(config, day: date) -> tuple[float, int]:
    from detectors.base import run_detectors
    from jobs.night import load_night, release_night
    from jobs.spark import spark_session

    spark = spark_session(config)
    detectors = [DETECTORS[name](getattr(config.detectors, name)) for name in local_engine.DETECTORS]
    for _warm_up_then_timed in range(2):
        started = time.perf_counter()
        night = load_night(config, spark, day)
        flags = run_detectors(detectors, night).count()
        release_night(night.cdr)
        seconds = time.perf_counter() - started
    return seconds, flags


def local_run(config, day: date) -> tuple[float, int]:
    from detectors.local.base import run_detectors
    from jobs.night_local import load_local_night

    started = time.perf_counter()
    detectors = [cls(getattr(config.detectors, name)) for name, cls in local_engine.DETECTORS.items()]
    flags = run_detectors(detectors, load_local_night(config, day)).height
    return time.perf_counter() - started, flags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--landing", "--lake", "--outbox", "--date", "--engine"):
        parser.add_argument(name, required=True)
    args = parser.parse_args()
    config = load_config().with_paths(landing=args.landing, lake=args.lake, outbox=args.outbox)
    run = spark_run if args.engine == "spark" else local_run
    seconds, flags = run(config, date.fromisoformat(args.date))
    detectors = ",".join(local_engine.DETECTORS)
    print(json.dumps({"engine": args.engine, "seconds": round(seconds, 3), "flags": flags, "detectors": detectors}))


if __name__ == "__main__":
    main()
