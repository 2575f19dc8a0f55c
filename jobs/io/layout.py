"""Where everything lives on disk: the landing zone, the lake's tables and run files, the outbox.

Plain paths, no engine: the Spark and Polars adapters, the steps, the report and the DAG take
their paths from here, so a folder is named once and a change of layout is made in one place.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from jobs.config import Config
from schemas.table import Table
from schemas.tables import TABLES

# ---------------------------------------------------------------- landing zone


def landing_root(config: Config) -> Path:
    return Path(config.paths.landing)


def delivery_folder(config: Config, carrier: str, day: dt.date) -> Path:
    """`landing/<carrier>/<D>/`: one carrier's delivery for one night."""
    return landing_root(config) / carrier / day.isoformat()


def cells_path(config: Config, carrier: str) -> Path:
    return landing_root(config) / "cells" / f"{carrier}.csv"


def whitelist_path(config: Config) -> Path:
    return landing_root(config) / "whitelist.csv"


def protected_path(config: Config) -> Path:
    return landing_root(config) / "protected_numbers.csv"


def feedback_landing(config: Config) -> Path:
    """`landing/feedback/`: the field units' returned lead files waiting to be imported."""
    return landing_root(config) / "feedback"


# ---------------------------------------------------------------- the lake

STAGING = "_staging"
JOURNAL = "_journal"
LOCKS = "_locks"
RUNS = "_runs"


def lake_root(config: Config) -> Path:
    return Path(config.paths.lake)


def lake_table(table: Table | str) -> Table:
    """A table of `schemas.tables` by itself or by its name; an unknown name is a ValueError."""
    if isinstance(table, Table):
        return table
    try:
        return TABLES[table]
    except KeyError:
        raise ValueError(f"no lake table {table!r} (known: {', '.join(sorted(TABLES))})") from None


def table_path(config: Config, table: Table | str) -> Path:
    return lake_root(config) / lake_table(table).name


def partition_path(config: Config, table: Table | str, day: dt.date, carrier: str | None = None) -> Path:
    """`lake/<table>/date=D[/carrier=C]`."""
    path = table_path(config, table) / f"date={day.isoformat()}"
    return path / f"carrier={carrier}" if carrier is not None else path


def staging_root(config: Config, day: dt.date) -> Path:
    """`lake/_staging/date=D`: per date, so that the date's lock covers everything staged in it."""
    return lake_root(config) / STAGING / f"date={day.isoformat()}"


def journal_dir(config: Config, day: dt.date) -> Path:
    """`lake/_journal/date=D`: journals of the date's interrupted partition swaps."""
    return lake_root(config) / JOURNAL / f"date={day.isoformat()}"


def lock_path(config: Config, day: dt.date) -> Path:
    return lake_root(config) / LOCKS / f"date={day.isoformat()}.lock"


def run_dir(config: Config, job: str, day: dt.date) -> Path:
    """`lake/_runs/<job>/date=D`: a step's summary and whatever else its run keeps (GX results)."""
    return lake_root(config) / RUNS / job / f"date={day.isoformat()}"


def run_summary_path(config: Config, job: str, day: dt.date) -> Path:
    return run_dir(config, job, day) / "summary.json"


SPOOFING_FILE = "spoofing.json"  # detect's judgement of the night's incoming legs
DAILY_MARKER = "daily_aggregates.json"  # which CDR partition detect's daily aggregates summarise


def spoofing_path(config: Config, day: dt.date) -> Path:
    return run_dir(config, "detect", day) / SPOOFING_FILE


def daily_marker_path(config: Config, day: dt.date) -> Path:
    return run_dir(config, "detect", day) / DAILY_MARKER


def feedback_file(config: Config, sha256: str) -> Path:
    """`lake/feedback/<sha>.parquet`: the visits of one imported file, named by its content."""
    return table_path(config, "feedback") / f"{sha256[:16]}.parquet"


def hotlist_path(config: Config) -> Path:
    """`lake/hotlist/hotlist.parquet`: rebuilt whole from lake/feedback at every import."""
    return table_path(config, "hotlist") / "hotlist.parquet"


def feedback_runs(config: Config) -> Path:
    """`lake/_runs/feedback`: which returned files were imported (not per date: a file is imported once)."""
    return lake_root(config) / RUNS / "feedback"


# ---------------------------------------------------------------- the outbox

OUTBOX_JOURNAL = ".journal"  # journals of swaps outside the lake (the outbox): beside the aside folder
LEADS_DIR = "leads"
ANALYSTS_DIR = "analysts"
WARNINGS_FILE = "warnings.csv"
PARTIAL_FILE = "PARTIAL.txt"
REPORT_FILE = "report.html"


def outbox_root(config: Config) -> Path:
    return Path(config.paths.outbox)


def outbox_day(config: Config, day: dt.date) -> Path:
    """`outbox/<D>/`: everything a night sends out, replaced whole by export."""
    return outbox_root(config) / day.isoformat()


def report_path(config: Config, day: dt.date) -> Path:
    return outbox_day(config, day) / REPORT_FILE
