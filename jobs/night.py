"""One night, loaded and located for every step and the notebook: the night's CDRs with their sites,
the earlier days (as the daily aggregates detect stores, or from raw CDRs where those are missing
or stale), the cell sites, the whitelist and the hotlist.

`load_night` builds the `detectors.base.Night` that detect, dens and export read; `NightCache`
hands the located rows from one step to the next of a run, passed explicitly by the runner.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import replace

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.storagelevel import StorageLevel

from detectors.base import Night, prepare_night
from detectors.history import DailyHistory, cell_hours, contact_days, device_days, sim_days, site_hours
from detectors.sites import cell_sites
from jobs.config import Config
from jobs.errors import CdrwatchError
from jobs.io import daily, files, inventory, lake_spark, layout
from jobs.io.daily import cdr_fingerprint, history_days
from jobs.numbers import TELEPHONE, spark_e164
from schemas.tables import CDR, CELL, CELL_HOUR, CONTACT_DAY, DEVICE_DAY, HOTLIST, SIM_DAY


def read_cells(config: Config, spark: SparkSession, warnings: list[str] | None = None) -> DataFrame:
    """Every configured carrier's inventory `landing/cells/<carrier>.csv`, with a `carrier` column:
    read by header and checked in `jobs.io.inventory` (small: built on the driver). Its warnings (exact
    duplicate rows dropped, cells abroad) are appended to `warnings`."""
    cells = inventory.read_cells(config)
    if warnings is not None:
        warnings += cells.warnings
    return spark.createDataFrame(cells.tuples(tuple(CELL.names)), CELL.spark())


def read_whitelist(config: Config, spark: SparkSession, warnings: list[str] | None = None) -> DataFrame:
    """landing/whitelist.csv (optional) as one column `number`, normalised to E.164 by the same Spark
    expression as the CDRs. Entries that are no telephone number after it (they could never match a
    call) are left out and listed in `warnings` with file, line and value."""
    path = layout.whitelist_path(config)
    entries = inventory.read_whitelist_entries(path)
    if not entries:
        return spark.createDataFrame([], "number string")
    number = spark_e164(F.col("raw"))
    readable = F.coalesce(number.rlike(TELEPHONE), F.lit(False))
    rows = (
        spark.createDataFrame(entries, "line int, raw string")
        .select("line", "raw", number.alias("number"), readable.alias("readable"))
        .orderBy("line")
        .collect()
    )
    if warnings is not None:
        warnings += [
            f"{path}:{r.line}: whitelist number {r.raw!r} is not a telephone number; it matches no call"
            for r in rows
            if not r.readable
        ]
    return spark.createDataFrame(sorted({(r.number,) for r in rows if r.readable}), "number string")


def load_night(
    config: Config,
    spark: SparkSession,
    day: dt.date,
    warnings: list[str] | None = None,
    notes: list[str] | None = None,
    cache: NightCache | None = None,
) -> Night:
    """Everything the detectors need for `day`, ready for `run_detectors`; the inventory's and the
    whitelist's warnings are appended to `warnings`, how the earlier days were read to `notes`. The
    located rows come from `cache` when an earlier step of the run kept them."""
    if not layout.partition_path(config, CDR, day).is_dir():
        raise CdrwatchError(f"{layout.partition_path(config, CDR, day)}: no CDRs for {day} (run cdrwatch ingest first)")
    cdr = lake_spark.read_partition(config, spark, CDR, day)
    first = day - dt.timedelta(days=history_days(config))
    history = lake_spark.read_range(config, spark, CDR, first, day - dt.timedelta(days=1))
    whitelist = read_whitelist(config, spark, warnings)  # small: built in memory
    sites = cell_sites(read_cells(config, spark, warnings))
    night = prepare_night(day, cdr, history, sites, whitelist)
    past = earlier_days(config, spark, day, first, sites, whitelist, notes)
    # every detector reads the night several times: keep the located rows instead of re-reading Parquet
    located = (cache.get(config, spark, day) if cache is not None else None) or night.cdr.persist(
        StorageLevel.MEMORY_AND_DISK
    )
    return replace(night, cdr=located, past=past, hotlist=read_hotlist(config, spark, day))


def read_hotlist(config: Config, spark: SparkSession, day: dt.date) -> DataFrame | None:
    """lake/hotlist's entries that apply to `day` (small: built on the driver), None when none do."""
    from jobs.feedback.store import read_hotlist as entries

    hotlist = entries(config, day)
    if hotlist.is_empty():
        return None
    return spark.createDataFrame([tuple(r) for r in hotlist.select(HOTLIST.names).iter_rows()], HOTLIST.spark())


# ---------------------------------------------------------------- one located night, detect -> dens


class NightCache:
    """The located night of one run, handed from detect to dens: a night's chain in one process
    (`cdrwatch nightly`, the one-task DAG) then reads and locates the night's CDRs once. Holds at
    most one night; keyed by what the night is made of, so a changed input is never served stale.
    The runner makes one per run and passes it to the steps; a step run alone gets none."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._located: DataFrame | None = None

    @staticmethod
    def key(config: Config, spark: SparkSession, day: dt.date) -> tuple:
        """The session, the lake, the day, the CDR partition's files and the cell inventories' and
        the whitelist's contents (small files, hashed)."""
        inputs = hashlib.sha256()
        for path in [*(layout.cells_path(config, c) for c in sorted(config.carriers)), layout.whitelist_path(config)]:
            inputs.update(str(path).encode() + (path.read_bytes() if path.is_file() else b"<absent>"))
        return (
            id(spark),
            str(layout.lake_root(config).resolve()),
            day,
            cdr_fingerprint(config, day),
            inputs.hexdigest(),
        )

    def get(self, config: Config, spark: SparkSession, day: dt.date) -> DataFrame | None:
        if self._located is None or self._key != self.key(config, spark, day):
            return None
        return self._located

    def keep(self, config: Config, spark: SparkSession, day: dt.date, located: DataFrame) -> None:
        """Keep `located` for the next step; a night kept before is released (one night at a time)."""
        if self._located is not None and self._located is not located:
            self._located.unpersist()
        self._key, self._located = self.key(config, spark, day), located

    def release(self, located: DataFrame) -> None:
        """Uncache the located night, and forget it if it is the one kept."""
        if self._located is located:
            self._key, self._located = None, None
        located.unpersist()


def release_night(located: DataFrame, cache: NightCache | None = None) -> None:
    """Uncache a located night (and drop it from `cache`)."""
    if cache is not None:
        cache.release(located)
    else:
        located.unpersist()


# ---------------------------------------------------------------- the earlier days, as daily aggregates


def write_daily(config: Config, day: dt.date, cdr: DataFrame) -> None:
    """Tonight's daily aggregates (schemas.tables.DAILY) from its located, whitelist-free rows, each
    replaced atomically; the marker naming the CDR partition they summarise is written last (and
    removed first), so aggregates without a matching marker are never read."""
    marker = layout.daily_marker_path(config, day)
    marker.unlink(missing_ok=True)
    for table, frame, order in (
        (SIM_DAY, sim_days(cdr), ("msisdn",)),
        (DEVICE_DAY, device_days(cdr), ("imei", "msisdn", "sim")),
        (CELL_HOUR, cell_hours(cdr), ("carrier", "cell_id", "hour")),
        (CONTACT_DAY, contact_days(cdr), ("msisdn", "other_party")),
    ):
        lake_spark.replace_date(config, table, day, frame.withColumn("date", F.lit(day)), sort_by=order)
    files.write_json(marker, {"date": day.isoformat(), "cdr": cdr_fingerprint(config, day)})


def earlier_days(
    config: Config,
    spark: SparkSession,
    day: dt.date,
    first: dt.date,
    sites: DataFrame,
    whitelist: DataFrame,
    notes: list[str] | None = None,
) -> DailyHistory:
    """The days first..day-1 as `DailyHistory`: each day's aggregates from the lake where `detect`
    wrote them for its CDRs as they are now, else computed from that day's raw CDRs (a lake from
    before the aggregates, or a day re-ingested since). The whitelist as it is tonight applies to
    every number; a cell's hourly count keeps the numbers it had when its day was detected."""
    days = daily.earlier_days(config, day)
    stored = [d for d in days if daily.has_daily(config, d)]
    raw_days = [d for d in days if d not in stored]
    if (note := daily.history_note(raw_days)) and notes is not None:
        notes.append(note)
    listed = [F.lit(d) for d in stored]

    def aggregate(table) -> DataFrame:
        frame = lake_spark.read_range(config, spark, table, first, day - dt.timedelta(days=1))
        return frame.where(F.col("date").isin(listed) if listed else F.lit(False))

    listed_numbers = F.broadcast(whitelist.select(F.col("number").alias("msisdn")))
    raw = (
        lake_spark.read_range(config, spark, CDR, first, day - dt.timedelta(days=1))
        .where(F.col("date").isin([F.lit(d) for d in raw_days]) if raw_days else F.lit(False))
        .join(listed_numbers, "msisdn", "left_anti")
    )  # before aggregating: cell counts cannot drop them later

    def both(table, from_raw: DataFrame) -> DataFrame:
        return aggregate(table).select(*table.names).unionByName(from_raw.select(*table.names))

    return DailyHistory(
        sims=both(SIM_DAY, sim_days(raw)).join(listed_numbers, "msisdn", "left_anti"),
        devices=both(DEVICE_DAY, device_days(raw)).join(listed_numbers, "msisdn", "left_anti"),
        site_hours=site_hours(both(CELL_HOUR, cell_hours(raw)), sites),
        contacts=both(CONTACT_DAY, contact_days(raw)).join(listed_numbers, "msisdn", "left_anti"),
    )
