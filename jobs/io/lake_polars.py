"""The lake read and written with Polars: the `local` engine's storage, and the small tables and lazy
scans of steps that start no Spark session (the report, evaluate).

Writes are the twins of `jobs.io.lake_spark`'s: staged in `lake/_staging/date=D/<uuid>/`, then swapped
in by `jobs.io.swap` (journaled, rolled forward or back by `jobs.io.repair`), with the same
partition folders and Parquet schemas (the table's Arrow schema, timestamps as UTC microseconds),
so either engine reads what the other wrote. Schemas derive from `schemas.tables`, paths from `jobs.io.layout`, so a
table is laid out and typed in one place whichever engine reads it.
"""

from __future__ import annotations

import datetime as dt
import io
import uuid
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from jobs.config import Config
from jobs.io.files import sync_dir, write_atomic
from jobs.io.layout import journal_dir, lake_table, partition_path, staging_root, table_path
from jobs.io.repair import drop_staging, makedirs, staging_folder
from jobs.io.swap import swap_dirs
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


def _arrow(frame: pl.DataFrame, table: Table, columns: list[str]) -> pa.Table:
    """`frame`'s `columns` as Arrow with exactly the table's types and nullability."""
    schema = pa.schema([table.arrow().field(name) for name in columns])
    return frame.select(columns).cast(table.polars(columns)).to_arrow().cast(schema)


def _write_parts(folder: Path, frame: pl.DataFrame, table: Table, columns: list[str], max_rows: int) -> None:
    """`frame` (already sorted) as `part-NNNNN.parquet` files of at most `max_rows` rows each, in order."""
    makedirs(folder)
    data = _arrow(frame, table, columns)
    token = uuid.uuid4().hex  # a rewrite makes new names, as Spark's do (`daily.cdr_fingerprint` relies on it)
    for n, start in enumerate(range(0, max(data.num_rows, 1), max_rows)):
        name = f"part-{n:05d}-{token}.snappy.parquet"
        pq.write_table(data.slice(start, max_rows), folder / name, compression="snappy")
    sync_dir(folder)


def replace_date(
    config: Config, table: Table | str, day: dt.date, frame: pl.DataFrame, sort_by: tuple[str, ...]
) -> int:
    """Write `frame` (the table's rows of `day`) as `lake/<table>/date=D/` atomically, as
    `lake_spark.replace_date` does: staged aside, then swapped in whole. Returns rows."""
    table = lake_table(table)
    data = [name for name in table.names if name != "date"]
    root = staging_folder(config, day)
    staged = root / "new"
    try:
        _write_parts(staged, frame.sort(list(sort_by), nulls_last=False), table, data, max(frame.height, 1))
        rows = pl.scan_parquet(str(staged / "*.parquet")).select(pl.len()).collect().item()
        swap_dirs([(staged, partition_path(config, table, day))], root / "old", journal_dir(config, day))
    finally:
        drop_staging(config, day, root)
    return rows


class DayWrite:
    """One date's output partitioned by carrier, staged then committed (`lake_spark.DayWrite`'s twin):
    `write` stages a table's rows (each carrier's rows sorted by `sort_by`, at most
    `max_rows_per_file` rows a file), `staged_counts` reads back rows per (carrier, source_file),
    `commit` swaps the staged carrier partitions in."""

    def __init__(self, config: Config, day: dt.date):
        self.config = config
        self.day = day
        self.root = staging_root(config, day) / uuid.uuid4().hex
        self._tables: list[Table] = []

    def __enter__(self) -> DayWrite:
        makedirs(self.root)
        return self

    def __exit__(self, *exc) -> None:
        drop_staging(self.config, self.day, self.root)

    def _staged_path(self, table: Table) -> Path:
        return self.root / "new" / table.name / f"date={self.day.isoformat()}"

    def write(
        self, table: Table, frame: pl.DataFrame | pl.LazyFrame, sort_by: tuple[str, ...], max_rows_per_file: int
    ) -> None:
        """Stage `frame`'s rows of `table`, a carrier at a time (only one carrier's rows in memory)."""
        data = [name for name in table.names if name not in ("date", "carrier")]
        frame = frame.lazy()
        for carrier in frame.select(pl.col("carrier").unique().sort()).collect().to_series().to_list():
            rows = frame.filter(pl.col("carrier") == carrier).sort(list(sort_by), nulls_last=False).collect()
            _write_parts(self._staged_path(table) / f"carrier={carrier}", rows, table, data, max_rows_per_file)
        if table not in self._tables:
            self._tables.append(table)

    def staged_counts(self, table: Table) -> dict[tuple[str, str], int]:
        """(carrier, source_file) -> rows staged for `table`, one carrier folder at a time: the staged
        path holds `date=` twice (`_staging/date=D/<run>/new/<table>/date=D/carrier=C/`), which
        Polars' hive reading refuses, so the carrier comes from the folder's name."""
        counts: dict[tuple[str, str], int] = {}
        for folder in sorted(self._staged_path(table).glob("carrier=*")):
            files = sorted(str(f) for f in folder.glob("*.parquet"))
            if not files:
                continue
            carrier = folder.name.removeprefix("carrier=")
            grouped = pl.scan_parquet(files, hive_partitioning=False).group_by("source_file").len().collect()
            counts.update({(carrier, name): n for name, n in grouped.iter_rows()})
        return counts

    def commit(self, carriers: list[str]) -> None:
        swaps = [
            (self._staged_path(t) / f"carrier={c}", partition_path(self.config, t, self.day, c))
            for t in self._tables
            for c in carriers
        ]
        swap_dirs(swaps, self.root / "old", journal_dir(self.config, self.day))
