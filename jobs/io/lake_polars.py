"""The lake read with Polars, for the small tables and lazy scans of steps that start no Spark session
(the report, evaluate). Schemas derive from `schemas.tables`, paths from `jobs.io.layout`, so a
table is laid out and typed in one place whichever engine reads it.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from jobs.config import Config
from jobs.io.files import write_atomic
from jobs.io.layout import partition_path, table_path
from schemas.table import Table


def polars_schema(table: Table, columns: list[str] | None = None) -> dict[str, pl.DataType]:
    """The table's columns (or `columns` of them) as a Polars schema, partition columns excluded."""
    return table.polars(columns or [c.name for c in table.columns if c.name not in table.partition_by])


def has_day(config: Config, table: Table, day: dt.date) -> bool:
    """Whether a run wrote `day` of the table (its partition folder exists, perhaps without rows)."""
    return partition_path(config, table, day).is_dir()


def read_day(config: Config, table: Table, day: dt.date, columns: list[str] | None = None) -> pl.DataFrame:
    """One date of a small table partitioned by date alone (flags, dens, victims), typed by its
    schema; empty, with the table's columns, when the partition is missing or holds no file. A
    column the table gained after the partition was written reads as null, as Spark reads it."""
    schema = polars_schema(table, columns)
    files = sorted(partition_path(config, table, day).glob("*.parquet"))
    if not files:
        return pl.DataFrame(schema=schema)
    written = pl.read_parquet_schema(files[0])  # one run wrote the partition: its files share a schema
    frame = pl.read_parquet(files, columns=[name for name in schema if name in written])
    return (
        frame.with_columns(pl.lit(None, dtype).alias(name) for name, dtype in schema.items() if name not in written)
        .select(list(schema))
        .cast(schema)
    )


def read_days(config: Config, table: Table, days: list[dt.date] | None, columns: list[str]) -> pl.DataFrame:
    """`read_day` of each of `days` that the lake has (None: every date it has), each with its `date`
    last: one frame of a small table over several nights (dens, victims, flags)."""
    if days is None:
        days = sorted(
            dt.date.fromisoformat(p.name.removeprefix("date=")) for p in table_path(config, table).glob("date=*")
        )
    frames = [
        read_day(config, table, day, columns).with_columns(pl.lit(day).alias("date"))
        for day in days
        if has_day(config, table, day)
    ]
    return pl.concat(frames) if frames else pl.DataFrame(schema={**polars_schema(table, columns), "date": pl.Date})


def scan_days(config: Config, table: Table, days: list[dt.date]) -> pl.LazyFrame | None:
    """A lazy scan of the table over the given dates only, its partition columns (`date`, `carrier`)
    taken from the folder names; None when none of the dates is in the lake."""
    below = "".join(f"{name}=*/" for name in table.partition_by[1:])
    files = sorted(str(f) for day in days for f in partition_path(config, table, day).glob(f"{below}*.parquet"))
    if not files:
        return None
    return pl.scan_parquet(files, hive_partitioning=True, hive_schema=table.polars(list(table.partition_by)))


def read_files(table: Table, files: list[Path]) -> pl.DataFrame:
    """Whole-table Parquet files of a small table kept outside date partitions (feedback, hotlist),
    typed by its schema; empty, with its columns, when there are none."""
    schema = polars_schema(table)
    if not files:
        return pl.DataFrame(schema=schema)
    return pl.read_parquet(files).select(list(schema)).cast(schema)


def write_file(path: Path, frame: pl.DataFrame, table: Table) -> Path:
    """`frame` as one Parquet file of `table` (its Arrow schema), written atomically."""
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(frame.to_dicts(), schema=table.arrow()), buffer)
    return write_atomic(path, buffer.getvalue())
