"""The lake on disk: where a table's partition lives, reading it, and replacing it atomically.

A day's output is written by Spark into `lake/_staging/<uuid>/`, checked there, and only then
swapped into place directory by directory (old aside, new in, old deleted). A failure before or
during the swap leaves every previous partition as it was; readers never see a half-written one.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from jobs.config import Config
from schemas.table import Table
from schemas.tables import TABLES

STAGING = "_staging"
RUNS = "_runs"


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


def files_for(rows: int, rows_per_file: int) -> int:
    """How many Parquet files `rows` rows are written to (at least one)."""
    return max(1, math.ceil(rows / rows_per_file))


class DayWrite:
    """One date's output of one job, staged then committed: use as a context manager.

    `write` puts a table's rows for the date into the staging area (partitioned by carrier,
    `files` files, sorted within each file), `staged` reads them back for checks, `commit` swaps
    the staged carrier partitions into the lake. Leaving the block removes the staging area,
    whatever happened; nothing in the lake changes unless `commit` finished.
    """

    def __init__(self, config: Config, day: dt.date):
        self.config = config
        self.day = day
        self.root = Path(config.paths.lake) / STAGING / uuid.uuid4().hex
        self._tables: list[Table] = []

    def __enter__(self) -> DayWrite:
        self.root.mkdir(parents=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        try:
            self.root.parent.rmdir()  # lake/_staging, unless another run is staging too
        except OSError:
            pass

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
        _swap(swaps, self.root / "old")


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write a small JSON document atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(document, ensure_ascii=False, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def run_summary_path(config: Config, job: str, day: dt.date) -> Path:
    return Path(config.paths.lake) / RUNS / job / f"date={day.isoformat()}" / "summary.json"


def _swap(swaps: list[tuple[Path, Path]], aside_root: Path) -> None:
    done: list[tuple[Path, Path | None, bool]] = []  # (target, where the old one went, new moved in)
    try:
        aside_root.mkdir(parents=True, exist_ok=True)
        for i, (new, target) in enumerate(swaps):
            aside = None
            if target.exists():
                aside = aside_root / str(i)
                os.rename(target, aside)
            done.append((target, aside, False))
            if new.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.rename(new, target)
                done[-1] = (target, aside, True)
    except BaseException:
        for target, aside, moved_in in reversed(done):
            if moved_in:
                shutil.rmtree(target)
            if aside is not None:
                os.rename(aside, target)
        raise
    for _, aside, _ in done:
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)


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
    root = Path(config.paths.lake) / STAGING / uuid.uuid4().hex
    staged = root / "new"
    try:
        frame.select(*data).coalesce(files).sortWithinPartitions(*sort_by).write.mode("errorifexists") \
            .parquet(str(staged))
        rows = frame.sparkSession.read.parquet(str(staged)).count()
        _swap([(staged, partition_path(config, table, day))], root / "old")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows
