"""Running cdrwatch: the step registry (`STEPS`, the one definition of the steps and their order),
one step for one night (`run_step`), or every step of a night in order (`run_night`, `run_nights`).
The CLI, the Airflow DAG, the report's renderers, the tests and the bench all take the steps from here.

A step's logic lives in its own module (`jobs/ingest.py`, ...) and returns what it did; its runner
here turns that into the one result type, `StepResult`. This module holds the date's lock around a
step, times it and logs one line per step (`logging`, logger `jobs.pipeline`: step, date, status,
counts). It prints nothing: the CLI renders results (`jobs/render.py`, by each step's `view`),
Airflow's task log shows the log lines.

Errors: a `CdrwatchError` is a problem of configuration or input that a retry cannot fix (the
Airflow tasks turn it into a failure without retries); anything else may be transient.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from jobs.config import Config
from jobs.dates import nights
from jobs.errors import CdrwatchError

log = logging.getLogger(__name__)

Progress = Callable[[str, float, float], None]  # (what, done, total)


@dataclass
class StepResult:
    """What one step did for one night. `counts` and `paths` are for people and logs; `detail` is
    the step's own result (an IngestReport, a DetectResult, ...) for the step's view."""

    step: str
    day: dt.date
    status: str = "ok"  # ok | partial
    counts: dict[str, int] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    detail: Any = None

    def line(self) -> str:
        """`detect 2026-11-20 ok in 4.2 s: flags=123` (the log line, and Airflow's)."""
        counts = " ".join(f"{k}={v}" for k, v in self.counts.items())
        return f"{self.step} {self.day} {self.status} in {self.seconds:.1f} s" + (f": {counts}" if counts else "")


@dataclass
class Run:
    """What a run hands each of its steps: the Spark session (None: a step that needs one makes it),
    a progress callback, and the located night that detect leaves for dens (Spark's `NightCache`,
    made on first use so that steps without Spark never import it; the `local` engine's night, kept
    with the CDR partition it was read from, so a changed partition is never served stale)."""

    spark: Any = None
    progress: Progress | None = None
    _night_cache: Any = None
    _local_night: tuple[tuple, Any] | None = None

    def night_cache(self):
        if self._night_cache is None:
            from jobs.night import NightCache

            self._night_cache = NightCache()
        return self._night_cache

    def keep_local_night(self, config: Config, day: dt.date, night: Any) -> None:
        self._local_night = (_night_key(config, day), night)

    def local_night(self, config: Config, day: dt.date) -> Any:
        """The night detect located in this run, if it is still the lake's; else None. Handed over
        once: the run lets go of it, so that a night's rows are not held through the next ingest."""
        kept, self._local_night = self._local_night, None
        if kept is None or kept[0] != _night_key(config, day):
            return None
        return kept[1]


def _night_key(config: Config, day: dt.date) -> tuple:
    from jobs.io import layout
    from jobs.io.daily import cdr_fingerprint

    return (str(layout.lake_root(config).resolve()), day, cdr_fingerprint(config, day))


@dataclass(frozen=True)
class Step:
    """One step, declared once: the runner, the CLI, the DAG and the renderers pick it up from here.
    `reads`/`writes` name its inputs and outputs (for `--help`, docs and people); `view` is the
    function of `jobs.render` that shows its result; `command` is whether it has its own
    `cdrwatch <name> --date D`; a `driver_only` step reads only small files and is never submitted
    to a cluster."""

    name: str
    run: Callable[[Config, dt.date, Run], StepResult]
    reads: str
    writes: str
    view: str
    command: bool = True
    driver_only: bool = False

    @property
    def help(self) -> str:
        return f"{self.reads} -> {self.writes}"


# ---------------------------------------------------------------- the runners


def _ingest(config: Config, day: dt.date, run: Run) -> StepResult:
    if config.engine == "local":
        from jobs.ingest_local import ingest_date_local

        report = ingest_date_local(config, day, progress=run.progress)
    else:
        from jobs.ingest import ingest_date

        report = ingest_date(config, day, spark=run.spark, progress=run.progress)
    totals = report.as_dict()["carriers"]
    counts = {
        name: sum(c[name] for c in totals.values())
        for name in ("read", "accepted", "quarantined", "duplicates", "conflicts", "routed")
    }
    failed = [
        f"{carrier}: validation {verdict}"
        for carrier, verdict in sorted(report.validation.items())
        if verdict != "passed"
    ]
    return StepResult(
        "ingest",
        day,
        "partial" if report.partial else "ok",
        counts,
        {"summary": str(_summary_path(config, "ingest", day))},
        [*report.warnings, *failed, *(f"partial night: {r}" for r in report.partial_reasons)],
        detail=report,
    )


def _validate(config: Config, day: dt.date, run: Run) -> StepResult:
    from jobs.validate import night_verdict

    lines, passed, failed = night_verdict(config, day)
    if not passed:
        raise CdrwatchError(
            f"validation: no carrier's data for {day} passed "
            f"({'; '.join(l.strip() for l in lines if 'FAILED' in l) or 'no carrier validated'})"
        )
    return StepResult(
        "validate",
        day,
        "partial" if failed else "ok",
        {"carriers_passed": len(passed), "carriers_failed": len(failed)},
        {},
        [],
        detail=lines,
    )


def _feedback(config: Config, day: dt.date, run: Run) -> StepResult:
    from jobs.feedback.store import import_files, pending_files

    done = import_files(config, pending_files(config))
    counts = {
        "files": len(done),
        "visits": sum(f.new_visits for f in done),
        "rejected": sum(len(f.problems) for f in done),
    }
    return StepResult("feedback", day, "ok", counts, {}, [p for f in done for p in f.problems], detail=done)


def _detect(config: Config, day: dt.date, run: Run) -> StepResult:
    if config.engine == "local":
        from jobs.detect_local import detect_date_local

        result, night = detect_date_local(config, day)
        run.keep_local_night(config, day, night)
    else:
        from jobs.detect import detect_date

        result = detect_date(config, day, spark=run.spark, cache=run.night_cache())
    counts = {"flags": result.flags}
    for detector, _entity, n, _mean in result.by_detector:
        counts[f"flags_{detector}"] = counts.get(f"flags_{detector}", 0) + n
    return StepResult(
        "detect", day, "ok", counts, {"flags": str(result.path)}, [*result.warnings, *result.notes], detail=result
    )


def _dens(config: Config, day: dt.date, run: Run) -> StepResult:
    if config.engine == "local":
        from jobs.dens.local import dens_date_local

        result = dens_date_local(config, day, night=run.local_night(config, day))
    else:
        from jobs.dens import dens_date

        result = dens_date(config, day, spark=run.spark, cache=run.night_cache())
    return StepResult(
        "dens",
        day,
        "ok",
        {"dens": len(result.rows), "victims": result.victims},
        {"dens": str(result.path)},
        [f"dens {day}: {w}" for w in result.warnings],
        detail=result,
    )


def _export(config: Config, day: dt.date, run: Run) -> StepResult:
    from jobs.export import export_date

    summary = export_date(config, day)
    reasons = summary.get("partial_reasons") or []
    return StepResult(
        "export",
        day,
        "partial" if reasons else "ok",
        {
            "dens": sum(summary["dens"].values()),
            "unlocated": summary["unlocated"],
            "suppressed": summary["suppressed"],
            "warnings": summary["warnings"],
        },
        {"outbox": summary["outbox"]},
        [],
        detail=summary,
    )


def _report(config: Config, day: dt.date, run: Run) -> StepResult:
    from jobs.report import write_report

    written = write_report(config, day)
    numbers = written.numbers
    return StepResult(
        "report",
        day,
        "partial" if numbers.partial else "ok",
        {"rows": numbers.rows_ingested, "flags": numbers.n_flags, "dens": numbers.dens.height},
        {"report": str(written.path)},
        [],
        detail=written,
    )


# The nightly order. `validate` reads back the Great Expectations results ingest saved and stops
# the night when no carrier's data passed; `feedback` imports the field units' files waiting in
# landing/feedback/ (and rebuilds the hotlist) before detect reads them.
STEPS: dict[str, Step] = {
    step.name: step
    for step in (
        Step("ingest", _ingest, "landing/<carrier>/D/", "lake/cdr, lake/quarantine (validated)", "ingest_view"),
        Step(
            "validate",
            _validate,
            "lake/_runs/ingest (GX results)",
            "the night's verdict",
            "validate_view",
            command=False,
            driver_only=True,
        ),
        Step(
            "feedback",
            _feedback,
            "landing/feedback/",
            "lake/feedback, lake/hotlist",
            "feedback_view",
            command=False,
            driver_only=True,
        ),
        Step("detect", _detect, "lake/cdr", "lake/flags, lake/spoofed", "detect_view"),
        Step("dens", _dens, "lake/flags", "lake/dens, lake/victims", "dens_view"),
        Step(
            "export",
            _export,
            "lake/dens",
            "outbox/D/leads/<district>.csv, warnings.csv",
            "export_view",
            driver_only=True,
        ),
        Step("report", _report, "lake, outbox/D", "outbox/D/report.html", "report_view"),
    )
}
NIGHTLY = tuple(STEPS)
DRIVER_ONLY = frozenset(name for name, step in STEPS.items() if step.driver_only)


def _summary_path(config: Config, job: str, day: dt.date):
    from jobs.io.layout import run_summary_path

    return run_summary_path(config, job, day)


# ---------------------------------------------------------------- running them


def run_step(
    step: str, config: Config, day: dt.date, *, spark=None, progress: Progress | None = None, run: Run | None = None
) -> StepResult:
    """Run one step for one night with the date's lock held (taking it repairs what a killed run of
    the date left; a second process on the same date fails at once, naming the first). `run`
    carries what the steps of one run share (else `spark` and `progress` make one)."""
    from jobs.io import repair

    if step not in STEPS:
        raise CdrwatchError(f"no step {step!r} (steps: {', '.join(NIGHTLY)})")
    run = run or Run(spark=spark)
    run = replace(run, progress=progress) if progress is not None else run
    with repair.date_lock(config, day, step, report=lambda line: log.warning("repair: %s", line)):
        started = time.monotonic()
        result = STEPS[step].run(config, day, run)
    result.seconds = time.monotonic() - started
    log.info(
        result.line(),
        extra={
            "step": step,
            "date": day.isoformat(),
            "status": result.status,
            "counts": result.counts,
            "seconds": round(result.seconds, 3),
        },
    )
    for warning in result.warnings:
        log.warning(warning, extra={"step": step, "date": day.isoformat()})
    return result


def run_night(
    config: Config,
    day: dt.date,
    *,
    spark=None,
    steps: tuple[str, ...] = NIGHTLY,
    progress: Progress | None = None,
    on_step: Callable[[StepResult], None] | None = None,
) -> list[StepResult]:
    """Every step of one night in order, the date's lock held throughout (so no other run slips in
    between two steps). Stops at the first failure (it is raised). `progress(what, i, n)` hears of
    each step before it runs, `on_step(result)` after."""
    from jobs.io import repair

    results = []
    run = Run(spark=spark)
    with repair.date_lock(config, day, "nightly", report=lambda line: log.warning("repair: %s", line)):
        for step in steps:
            if progress is not None:
                progress(f"{day} {step}", len(results), len(steps))
            results.append(run_step(step, config, day, run=run))
            if on_step is not None:
                on_step(results[-1])
    return results


def run_nights(
    config: Config,
    first: dt.date,
    last: dt.date,
    *,
    spark=None,
    progress: Progress | None = None,
    on_step: Callable[[StepResult], None] | None = None,
) -> dict[dt.date, list[StepResult]]:
    """`run_night` for every night from `first` to `last`, in order (a night uses the earlier
    ones: baselines, den ids). `progress(what, done, total)` counts steps over all nights."""
    days = nights(first, last)
    done: dict[dt.date, list[StepResult]] = {}
    for n, day in enumerate(days):
        tell = None
        if progress is not None:

            def tell(what, i, total, n=n):
                progress(what, n * len(NIGHTLY) + min(i, len(NIGHTLY)), len(days) * len(NIGHTLY))

        done[day] = run_night(config, day, spark=spark, progress=tell, on_step=on_step)
    return done
