"""The lake read and written with Spark: a table's partitions in, a day's output staged and swapped in.

A day's output is written by Spark into `lake/_staging/date=D/<uuid>/`, checked there, and only
then swapped into place directory by directory (`jobs.io.swap`): old aside, new in, old deleted.
Paths come from `jobs.io.layout`; the date's lock and the repair of a killed run from
`jobs.io.repair`. The Polars adapter (`jobs.io.lake_polars`) reads the same tables.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.config import Config
from jobs.io.layout import journal_dir, lake_table, partition_path, staging_root, table_path
from jobs.io.repair import drop_staging, makedirs, staging_folder
from jobs.io.swap import swap_dirs
from schemas.table import Table


def read_partition(
    config: Config, spark: SparkSession, table: Table | str, day: dt.date, carrier: str | None = None
) -> DataFrame:
    """The rows of one date (and optionally one carrier) of a lake table, with the table's columns
    in its declared order; an empty DataFrame if nothing was written there."""
    table = lake_table(table)
    path = partition_path(config, table, day, carrier)
    if not path.is_dir():
        return spark.createDataFrame([], table.spark())
    frame = spark.read.schema(table.spark()).option("basePath", str(table_path(config, table))).parquet(str(path))
    return frame.select(*table.names)


def read_range(config: Config, spark: SparkSession, table: Table | str, first: dt.date, last: dt.date) -> DataFrame:
    """The rows of a lake table with first <= date <= last, with its columns in declared order
    (partition pruning: only those dates are read); empty when there are none."""
    table = lake_table(table)
    root = table_path(config, table)
    if not root.is_dir() or last < first:
        return spark.createDataFrame([], table.spark())
    return (
        spark.read.schema(table.spark())
        .parquet(str(root))
        .where(F.col("date").between(F.lit(first), F.lit(last)))
        .select(*table.names)
    )


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
        makedirs(self.root)
        return self

    def __exit__(self, *exc: Any) -> None:
        drop_staging(self.config, self.day, self.root)

    def _staged_path(self, table: Table) -> Path:
        return self.root / "new" / table.name / f"date={self.day.isoformat()}"

    def write(
        self, table: Table, frame: DataFrame, files: int, sort_by: tuple[str, ...], max_rows_per_file: int
    ) -> None:
        """Stage `frame` (the table's columns; all rows of `self.day`) in about `files` files
        (a range of the sort order each; at most `max_rows_per_file` rows per file), sorted by
        (carrier, *sort_by) within and across the files of a carrier."""
        order = ("carrier", *sort_by)
        data = [name for name in table.names if name not in ("date",)]
        (
            frame.select(*data)
            .repartitionByRange(files, *order)
            .sortWithinPartitions(*order)
            .write.mode("errorifexists")
            .option("maxRecordsPerFile", max_rows_per_file)
            .partitionBy("carrier")
            .parquet(str(self._staged_path(table)))
        )
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
        swaps = [
            (self._staged_path(t) / f"carrier={c}", partition_path(self.config, t, self.day, c))
            for t in self._tables
            for c in carriers
        ]
        swap_dirs(swaps, self.root / "old", journal_dir(self.config, self.day))


def replace_date(
    config: Config, table: Table | str, day: dt.date, frame: DataFrame, sort_by: tuple[str, ...], files: int = 1
) -> int:
    """Write `frame` (the table's rows of `day`) as `lake/<table>/date=D/` atomically: staged aside,
    then swapped in whole; a rerun replaces it, a failure leaves the previous one. Returns rows."""
    table = lake_table(table)
    data = [name for name in table.names if name != "date"]
    root = staging_folder(config, day)
    staged = root / "new"
    try:
        frame.select(*data).coalesce(files).sortWithinPartitions(*sort_by).write.mode("errorifexists").parquet(
            str(staged)
        )
        rows = frame.sparkSession.read.parquet(str(staged)).count()
        swap_dirs([(staged, partition_path(config, table, day))], root / "old", journal_dir(config, day))
    finally:
        drop_staging(config, day, root)
    return rows
