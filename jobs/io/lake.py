"""The lake on disk: where a table's partition lives, reading it, and replacing it atomically.

A day's output is written by Spark into `lake/_staging/date=D/<uuid>/`, checked there, and only
then swapped into place directory by directory (old aside, new in, old deleted). An error during
the swap undoes it; a process killed during it leaves a journal (`lake/_journal/date=D/`) from
which the next run of that date rolls the swap forward before it starts (`repair`). Every CLI step
holds the date's lock (`date_lock`), so two runs never write or repair the same date at once.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.io import files, locks
from jobs.io.summaries import run_summary_path  # noqa: F401  (re-exported: run summaries live in jobs.io.summaries)
from jobs.config import Config
from schemas.table import Table
from schemas.tables import TABLES

STAGING = "_staging"
JOURNAL = "_journal"
LOCKS = "_locks"
OUTBOX_JOURNAL = ".journal"  # journals of swaps outside the lake (the outbox): beside the aside folder
FAULT_KILL_AFTER_RENAME = "CDRWATCH_FAULT_KILL_AFTER_RENAME"  # tests: SIGKILL this process after the k-th rename
LEGACY_STAGING_AGE_S = 3600


def table_path(config: Config, table: Table | str) -> Path:
    return Path(config.paths.lake) / _table(table).name


def partition_path(config: Config, table: Table | str, day: dt.date, carrier: str | None = None) -> Path:
    """`lake/<table>/date=D[/carrier=C]`."""
    path = table_path(config, table) / f"date={day.isoformat()}"
    return path / f"carrier={carrier}" if carrier is not None else path


def read_partition(config: Config, spark: SparkSession, table: Table | str, day: dt.date,
                   carrier: str | None = None) -> DataFrame:
    """The rows of one date (and optionally one carrier) of a lake table, with the table's columns
    in its declared order; an empty DataFrame if nothing was written there."""
    table = _table(table)
    path = partition_path(config, table, day, carrier)
    if not path.is_dir():
        return spark.createDataFrame([], table.spark())
    frame = spark.read.schema(table.spark()).option("basePath", str(table_path(config, table))).parquet(str(path))
    return frame.select(*table.names)


def read_range(config: Config, spark: SparkSession, table: Table | str, first: dt.date, last: dt.date) -> DataFrame:
    """The rows of a lake table with first <= date <= last, with its columns in declared order
    (partition pruning: only those dates are read); empty when there are none."""
    table = _table(table)
    root = table_path(config, table)
    if not root.is_dir() or last < first:
        return spark.createDataFrame([], table.spark())
    return (spark.read.schema(table.spark()).parquet(str(root))
            .where(F.col("date").between(F.lit(first), F.lit(last))).select(*table.names))


def files_for(rows: int, rows_per_file: int) -> int:
    """How many Parquet files `rows` rows are written to (at least one)."""
    return max(1, math.ceil(rows / rows_per_file))


class DayWrite:
    """One date's output of one job, staged then committed: use as a context manager.

    `write` puts a table's rows for the date into the staging area (partitioned by carrier,
    `files` files, sorted within each file), `staged` reads them back for checks, `commit` swaps
    the staged carrier partitions into the lake. Leaving the block removes the staging area
    (a killed process leaves it to the next run's `repair`); nothing in the lake changes unless
    `commit` finished, or was killed mid-swap and is then rolled forward by `repair`.
    """

    def __init__(self, config: Config, day: dt.date):
        self.config = config
        self.day = day
        self.root = staging_root(config, day) / uuid.uuid4().hex
        self._tables: list[Table] = []

    def __enter__(self) -> DayWrite:
        _makedirs(self.root)
        return self

    def __exit__(self, *exc: Any) -> None:
        _drop_staging(self.config, self.day, self.root)

    def _staged_path(self, table: Table) -> Path:
        return self.root / "new" / table.name / f"date={self.day.isoformat()}"

    def write(self, table: Table, frame: DataFrame, files: int, sort_by: tuple[str, ...],
              max_rows_per_file: int) -> None:
        """Stage `frame` (the table's columns; all rows of `self.day`) in about `files` files
        (a range of the sort order each; at most `max_rows_per_file` rows per file), sorted by
        (carrier, *sort_by) within and across the files of a carrier."""
        order = ("carrier", *sort_by)
        data = [name for name in table.names if name not in ("date",)]
        (frame.select(*data)
         .repartitionByRange(files, *order)
         .sortWithinPartitions(*order)
         .write.mode("errorifexists")
         .option("maxRecordsPerFile", max_rows_per_file)
         .partitionBy("carrier")
         .parquet(str(self._staged_path(table))))
        self._tables.append(table)

    def staged(self, spark: SparkSession, table: Table) -> DataFrame:
        """The rows staged for `table`, as `read_partition` would return them after the commit."""
        path = self._staged_path(table)
        if not path.is_dir():
            return spark.createDataFrame([], table.spark())
        frame = spark.read.schema(table.spark()).option("basePath", str(path.parent)).parquet(str(path))
        return frame.select(*table.names)

    def commit(self, carriers: list[str]) -> None:
        """Replace `date=D/carrier=C` of every written table, for each of `carriers`, by the staged
        one (or by nothing, if no row was staged for it). All or nothing: if a rename fails, the
        ones already done are undone before the error is raised."""
        swaps = [(self._staged_path(t) / f"carrier={c}", partition_path(self.config, t, self.day, c))
                 for t in self._tables for c in carriers]
        swap_dirs(swaps, self.root / "old", journal_dir(self.config, self.day))


def staging_root(config: Config, day: dt.date) -> Path:
    """`lake/_staging/date=D`: per date, so that the date's lock covers everything staged in it."""
    return Path(config.paths.lake) / STAGING / f"date={day.isoformat()}"


def journal_dir(config: Config, day: dt.date) -> Path:
    return Path(config.paths.lake) / JOURNAL / f"date={day.isoformat()}"


def lock_path(config: Config, day: dt.date) -> Path:
    return Path(config.paths.lake) / LOCKS / f"date={day.isoformat()}.lock"


@contextmanager
def date_lock(config: Config, day: dt.date, step: str,
              report: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold `day`'s lock while `step` runs: another process running that date makes this raise
    `locks.LockHeld` at once, naming it. Whoever takes the lock first (not a re-entry from the
    same process) repairs what a killed run of the date left (`repair`), telling `report`."""
    with locks.hold(lock_path(config, day), f"date {day.isoformat()}", step) as first:
        if first:
            for line in repair(config, day):
                if report is not None:
                    report(line)
        yield


def repair(config: Config, day: dt.date) -> list[str]:
    """Finish what a killed run of `day` left behind: roll its interrupted swaps (lake and outbox)
    forward, then delete its staging folders. Only safe with the date's lock held. Returns one
    line per swap repaired."""
    messages = recover_swaps(journal_dir(config, day))
    outbox = Path(config.paths.outbox)
    outbox_day = os.path.abspath(outbox / day.isoformat())
    messages += recover_swaps(outbox / OUTBOX_JOURNAL,
                              belongs=lambda doc: all(p["target"] == outbox_day for p in doc["pairs"]))
    staging = staging_root(config, day)
    if staging.is_dir():
        for child in staging.iterdir():
            shutil.rmtree(child, ignore_errors=True)
    _drop_empty(staging, staging.parent, journal_dir(config, day))
    if outbox.is_dir():  # export's own staging of outbox/D (jobs.export.write_outbox_day), killed before its swap
        for leftover in outbox.glob(f".{day.isoformat()}.*"):
            if leftover.suffix in (".new", ".old") and leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
    _drop_legacy_staging(Path(config.paths.lake) / STAGING)
    return messages


def recover_swaps(journal_dir: Path, belongs: Callable[[dict[str, Any]], bool] | None = None) -> list[str]:
    """Roll forward every interrupted swap journaled in `journal_dir` (those `belongs` accepts):
    each target ends as the new folder, or as nothing when the swap's new state had none; a new
    folder that is gone (deleted after an error) leaves the previous one in place instead. Then
    the journal is deleted. Idempotent, so a repair that is itself killed is simply run again."""
    if not journal_dir.is_dir():
        return []
    messages = []
    for tmp in journal_dir.glob(".*.tmp"):  # a journal never completed: its swap never started
        try:
            if time.time() - tmp.stat().st_mtime > 60:
                tmp.unlink()
        except FileNotFoundError:
            pass
    for path in sorted(journal_dir.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if belongs is not None and not belongs(doc):
            continue
        done = [line for line in (_roll_forward(pair) for pair in doc["pairs"]) if line]
        shutil.rmtree(doc["aside_root"], ignore_errors=True)
        _forget(path)
        messages.append(f"repaired a swap interrupted at {doc['created']} (pid {doc['pid']} on {doc['host']}): "
                        + ("; ".join(done) if done else "nothing left to do"))
    return messages


def swap_dirs(swaps: list[tuple[Path, Path]], aside_root: Path, journal_dir: Path | None = None) -> None:
    """Replace each `(new, target)`'s target folder by `new` (by nothing, if `new` does not exist):
    old target to `aside_root/<i>`, new one in, old ones deleted. An exception undoes the renames
    done. Against a kill, a journal of every (new, target, aside) is written and fsynced in
    `journal_dir` before the first rename and deleted after the last step; `recover_swaps(journal_dir)`
    rolls an interrupted swap forward. The lake passes `lake/_journal/date=D` (where `repair` looks);
    by default it is `<aside_root's folder>/.journal`: a folder outside the lake (the outbox's
    `outbox/D`, aside in `outbox/.D.<token>.old`) is journaled in `outbox/.journal`."""
    journal_dir = Path(journal_dir) if journal_dir is not None else aside_root.parent / OUTBOX_JOURNAL
    pairs = [{"new": os.path.abspath(new), "target": os.path.abspath(target),
              "aside": os.path.abspath(aside_root / str(i)), "has_new": new.exists()}
             for i, (new, target) in enumerate(swaps)]
    journal = _write_journal(journal_dir, {
        "pid": os.getpid(), "host": socket.gethostname(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "aside_root": os.path.abspath(aside_root), "pairs": pairs})
    _fault_point(0)
    try:
        aside_root.mkdir(parents=True, exist_ok=True)
        for pair, (new, target) in zip(pairs, swaps):
            if target.exists():
                _rename(target, Path(pair["aside"]))
            if new.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                _rename(new, target)
    except BaseException:
        for pair in reversed(pairs):
            _roll_back(pair)
        _forget(journal)
        raise
    _sync_dirs({target.parent for _, target in swaps})
    for pair in pairs:
        shutil.rmtree(pair["aside"], ignore_errors=True)
    _forget(journal)


def _roll_back(pair: dict[str, Any]) -> None:
    """Undo one pair, judged by what is on disk (so an interrupt between a rename and its
    bookkeeping cannot mislead it): a moved-in new folder goes back to staging, the old one back."""
    new, target, aside = Path(pair["new"]), Path(pair["target"]), Path(pair["aside"])
    if aside.exists():
        if target.exists():
            new.parent.mkdir(parents=True, exist_ok=True)
            os.rename(target, new)
        os.rename(aside, target)
    elif pair["has_new"] and target.exists() and not new.exists():
        os.rename(target, new)


def _roll_forward(pair: dict[str, Any]) -> str | None:
    """One pair of an interrupted swap to its new state, whichever rename the kill came after."""
    new, target, aside = Path(pair["new"]), Path(pair["target"]), Path(pair["aside"])
    action = None
    if pair["has_new"] and new.exists():
        if target.exists():
            if aside.exists():
                shutil.rmtree(target)
            else:
                aside.parent.mkdir(parents=True, exist_ok=True)
                _rename(target, aside)
        target.parent.mkdir(parents=True, exist_ok=True)
        _rename(new, target)
        action = "new one moved in"
    elif pair["has_new"] and not target.exists() and aside.exists():
        _rename(aside, target)
        action = "the new one is gone: previous one put back"
    elif not pair["has_new"] and target.exists() and not aside.exists():
        aside.parent.mkdir(parents=True, exist_ok=True)
        _rename(target, aside)
        action = "removed (the new state has none)"
    if aside.exists():
        shutil.rmtree(aside)
    return f"{target}: {action}" if action else None


_renames = 0


def _rename(src: Path, dst: Path) -> None:
    global _renames
    os.rename(src, dst)
    _renames += 1
    _fault_point(_renames)


def _fault_point(renames: int) -> None:
    """Fault injection for the tests: die like kill -9 right after the k-th rename (0: after the
    journal is written, before any rename) when CDRWATCH_FAULT_KILL_AFTER_RENAME=k."""
    if os.environ.get(FAULT_KILL_AFTER_RENAME) == str(renames):
        os.kill(os.getpid(), signal.SIGKILL)


def _write_journal(folder: Path, document: dict[str, Any]) -> Path:
    """Atomically and durably (its temporary file is a `.*.tmp` that `recover_swaps` clears when
    stale); retried if another swap removes the empty folder meanwhile."""
    path = folder / f"{uuid.uuid4().hex}.json"
    text = json.dumps(document, ensure_ascii=False, indent=1) + "\n"
    for attempt in range(5):
        try:
            return files.write_atomic(path, text)   # makes the folder first
        except FileNotFoundError:
            if attempt == 4:
                raise


def _forget(journal: Path) -> None:
    journal.unlink(missing_ok=True)
    _sync_dirs([journal.parent])
    _drop_empty(journal.parent)


def _sync_dirs(folders) -> None:
    """fsync folders, so that renames in them reach the disk before the journal is deleted."""
    for folder in folders:
        files.sync_dir(folder)


def _makedirs(path: Path) -> None:
    """mkdir -p that survives another run removing an empty parent (`lake/_staging`) meanwhile."""
    for attempt in range(5):
        try:
            path.mkdir(parents=True, exist_ok=True)
            return
        except FileNotFoundError:
            if attempt == 4:
                raise


def _drop_staging(config: Config, day: dt.date, root: Path) -> None:
    """Delete a finished run's staging folder, unless a journal left by a swap that could not be
    undone still needs what is in it (then the next run's `repair` does)."""
    journals = journal_dir(config, day)
    prefix = os.path.abspath(root) + os.sep
    needed = journals.is_dir() and any(
        p["new"].startswith(prefix) or p["aside"].startswith(prefix)
        for j in journals.glob("*.json") for p in json.loads(j.read_text(encoding="utf-8"))["pairs"])
    if not needed:
        shutil.rmtree(root, ignore_errors=True)
    _drop_empty(root.parent, root.parent.parent, journals)


def _drop_empty(*folders: Path) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            pass


def _drop_legacy_staging(staging: Path) -> None:
    """Staging folders of versions before per-date staging (`lake/_staging/<uuid>`), once stale."""
    if not staging.is_dir():
        return
    for child in staging.iterdir():
        try:
            stale = not child.name.startswith("date=") and time.time() - child.stat().st_mtime > LEGACY_STAGING_AGE_S
        except FileNotFoundError:
            continue
        if stale:
            shutil.rmtree(child, ignore_errors=True)

def _table(table: Table | str) -> Table:
    if isinstance(table, Table):
        return table
    try:
        return TABLES[table]
    except KeyError:
        raise ValueError(f"no lake table {table!r} (known: {', '.join(sorted(TABLES))})") from None


def replace_date(config: Config, table: Table | str, day: dt.date, frame: DataFrame, sort_by: tuple[str, ...],
                 files: int = 1) -> int:
    """Write `frame` (the table's rows of `day`) as `lake/<table>/date=D/` atomically: staged aside,
    then swapped in whole; a rerun replaces it, a failure leaves the previous one. Returns rows."""
    table = _table(table)
    data = [name for name in table.names if name != "date"]
    root = staging_root(config, day) / uuid.uuid4().hex
    staged = root / "new"
    _makedirs(root)
    try:
        frame.select(*data).coalesce(files).sortWithinPartitions(*sort_by).write.mode("errorifexists") \
            .parquet(str(staged))
        rows = frame.sparkSession.read.parquet(str(staged)).count()
        swap_dirs([(staged, partition_path(config, table, day))], root / "old", journal_dir(config, day))
    finally:
        _drop_staging(config, day, root)
    return rows
