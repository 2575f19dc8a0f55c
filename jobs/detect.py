"""`cdrwatch detect --date D`: lake/cdr (D and the days before) -> lake/flags/date=D.

extract (`load_night`: the night's CDRs, the baseline days, the cells' sites, the whitelist) ->
transform (`detectors.run_detectors`, pure) -> load (`lake.replace_date`, atomic).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.storagelevel import StorageLevel

from detectors import DETECTORS
from detectors.base import Night, prepare_night, run_detectors
from detectors.history import DailyHistory, cell_hours, contact_days, device_days, site_hours, sim_days
from detectors.sites import cell_sites
from jobs.io import files, inventory, lake, summaries
from jobs import normalise as N
from jobs import spoofing
from jobs.config import Config
from jobs.errors import CdrwatchError
from jobs.normalise import e164
from schemas.tables import CDR, CELL, CELL_HOUR, CONTACT_DAY, DAILY, DEVICE_DAY, FLAG, HOTLIST, SIM_DAY

log = logging.getLogger(__name__)


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
    path = inventory.whitelist_path(config)
    entries = inventory.read_whitelist_entries(path)
    if not entries:
        return spark.createDataFrame([], "number string")
    number = e164(F.col("raw"))
    readable = F.coalesce(number.rlike(N._INTERNATIONAL_PLUS) | number.rlike(N._SERVICE), F.lit(False))
    rows = (spark.createDataFrame(entries, "line int, raw string")
            .select("line", "raw", number.alias("number"), readable.alias("readable")).orderBy("line").collect())
    if warnings is not None:
        warnings += [f"{path}:{r.line}: whitelist number {r.raw!r} is not a telephone number; it matches no call"
                     for r in rows if not r.readable]
    return spark.createDataFrame(sorted({(r.number,) for r in rows if r.readable}), "number string")


SIM_AGE_DAYS = 7   # how far back a SIM's first appearance is looked for


def history_days(config: Config) -> int:
    """Earlier days a night needs: the congestion baseline and the SIM-age look-back."""
    return max(config.detectors.congestion.baseline_days, SIM_AGE_DAYS)


def load_night(config: Config, spark: SparkSession, day: dt.date, warnings: list[str] | None = None,
               notes: list[str] | None = None) -> Night:
    """Everything the detectors need for `day`, ready for `run_detectors`; the inventory's and the
    whitelist's warnings are appended to `warnings`, how the earlier days were read to `notes`."""
    if not lake.partition_path(config, CDR, day).is_dir():
        raise CdrwatchError(f"{lake.partition_path(config, CDR, day)}: no CDRs for {day} (run cdrwatch ingest first)")
    cdr = lake.read_partition(config, spark, CDR, day)
    first = day - dt.timedelta(days=history_days(config))
    history = lake.read_range(config, spark, CDR, first, day - dt.timedelta(days=1))
    whitelist = read_whitelist(config, spark, warnings)  # small: built in memory
    sites = cell_sites(read_cells(config, spark, warnings))
    night = prepare_night(day, cdr, history, sites, whitelist)
    past = earlier_days(config, spark, day, first, sites, whitelist, notes)
    # every detector reads the night several times: keep the located rows instead of re-reading Parquet
    located = _kept_night(config, spark, day) or night.cdr.persist(StorageLevel.MEMORY_AND_DISK)
    return replace(night, cdr=located, past=past, hotlist=read_hotlist(config, spark, day))


def read_hotlist(config: Config, spark: SparkSession, day: dt.date) -> DataFrame | None:
    """lake/hotlist's entries that apply to `day` (small: built on the driver), None when none do."""
    from jobs.feedback.store import read_hotlist as entries

    hotlist = entries(config, day)
    if hotlist.is_empty():
        return None
    return spark.createDataFrame([tuple(r) for r in hotlist.select(HOTLIST.names).iter_rows()], HOTLIST.spark())


# ---------------------------------------------------------------- one located night, detect -> dens

_KEPT: dict[tuple, DataFrame] = {}   # at most one: (session, lake, day, its inputs) -> the cached located rows


def _night_key(config: Config, spark: SparkSession, day: dt.date) -> tuple:
    """What the located night is made of: the CDR partition's files, and the cell inventories'
    and the whitelist's contents (small files, hashed)."""
    inputs = hashlib.sha256()
    for path in [*(inventory.cells_path(config, c) for c in sorted(config.carriers)), inventory.whitelist_path(config)]:
        inputs.update(str(path).encode() + (path.read_bytes() if path.is_file() else b"<absent>"))
    return (spark.sparkContext.applicationId, str(Path(config.paths.lake).resolve()), day,
            cdr_fingerprint(config, day), inputs.hexdigest())


def _kept_night(config: Config, spark: SparkSession, day: dt.date) -> DataFrame | None:
    return _KEPT.get(_night_key(config, spark, day))


def keep_night(config: Config, spark: SparkSession, day: dt.date, located: DataFrame) -> None:
    """Hand the cached located night to the next step of the same session (`dens` reads the same
    rows): a night's chain in one process (`cdrwatch nightly`, the one-task DAG) then reads and
    locates the night's CDRs once. Any other night kept is released: one night's rows at a time."""
    key = _night_key(config, spark, day)
    for other in [k for k in _KEPT if k != key]:
        _KEPT.pop(other).unpersist()
    _KEPT[key] = located


def release_night(located: DataFrame) -> None:
    """Uncache the located night, and forget it if it was kept."""
    for key in [k for k, frame in _KEPT.items() if frame is located]:
        del _KEPT[key]
    located.unpersist()


# ---------------------------------------------------------------- the earlier days, as daily aggregates

_DAILY_MARKER = "daily_aggregates.json"


def cdr_fingerprint(config: Config, day: dt.date) -> str:
    """What lake/cdr/date=D holds, by its files' names and sizes: every write of the partition (a
    rerun of ingest) makes new file names, so aggregates of an older version no longer match."""
    root = lake.partition_path(config, CDR, day)
    files = sorted((p.relative_to(root).as_posix(), p.stat().st_size) for p in root.rglob("*.parquet"))
    return hashlib.sha256(json.dumps(files).encode()).hexdigest()


def write_daily(config: Config, day: dt.date, cdr: DataFrame) -> None:
    """Tonight's daily aggregates (schemas.tables.DAILY) from its located, whitelist-free rows, each
    replaced atomically; the marker naming the CDR partition they summarise is written last (and
    removed first), so aggregates without a matching marker are never read."""
    marker = summaries.run_dir(config, "detect", day) / _DAILY_MARKER
    marker.unlink(missing_ok=True)
    for table, frame, order in ((SIM_DAY, sim_days(cdr), ("msisdn",)),
                                (DEVICE_DAY, device_days(cdr), ("imei", "msisdn", "sim")),
                                (CELL_HOUR, cell_hours(cdr), ("carrier", "cell_id", "hour")),
                                (CONTACT_DAY, contact_days(cdr), ("msisdn", "other_party"))):
        lake.replace_date(config, table, day, frame.withColumn("date", F.lit(day)), sort_by=order)
    files.write_json(marker, {"date": day.isoformat(), "cdr": cdr_fingerprint(config, day)})


def _has_daily(config: Config, day: dt.date) -> bool:
    marker = summaries.run_dir(config, "detect", day) / _DAILY_MARKER
    if not marker.is_file() or not all(lake.partition_path(config, t, day).is_dir() for t in DAILY):
        return False
    return json.loads(marker.read_text(encoding="utf-8")).get("cdr") == cdr_fingerprint(config, day)


def earlier_days(config: Config, spark: SparkSession, day: dt.date, first: dt.date, sites: DataFrame,
                 whitelist: DataFrame, notes: list[str] | None = None) -> DailyHistory:
    """The days first..day-1 as `DailyHistory`: each day's aggregates from the lake where `detect`
    wrote them for its CDRs as they are now, else computed from that day's raw CDRs (a lake from
    before the aggregates, or a day re-ingested since). The whitelist as it is tonight applies to
    every number; a cell's hourly count keeps the numbers it had when its day was detected."""
    days = [first + dt.timedelta(days=k) for k in range((day - first).days)]
    days = [d for d in days if lake.partition_path(config, CDR, d).is_dir()]
    stored = [d for d in days if _has_daily(config, d)]
    raw_days = [d for d in days if d not in stored]
    if raw_days and notes is not None:
        notes.append(f"history: {len(raw_days)} earlier day(s) read from raw CDRs, no current daily aggregates "
                     f"({', '.join(d.isoformat() for d in raw_days)}); rerun detect for them to store them")
    listed = [F.lit(d) for d in stored]

    def aggregate(table) -> DataFrame:
        frame = lake.read_range(config, spark, table, first, day - dt.timedelta(days=1))
        return frame.where(F.col("date").isin(listed) if listed else F.lit(False))

    listed_numbers = F.broadcast(whitelist.select(F.col("number").alias("msisdn")))
    raw = (lake.read_range(config, spark, CDR, first, day - dt.timedelta(days=1))
           .where(F.col("date").isin([F.lit(d) for d in raw_days]) if raw_days else F.lit(False))
           .join(listed_numbers, "msisdn", "left_anti"))   # before aggregating: cell counts cannot drop them later

    def both(table, from_raw: DataFrame) -> DataFrame:
        return aggregate(table).select(*table.names).unionByName(from_raw.select(*table.names))

    return DailyHistory(
        sims=both(SIM_DAY, sim_days(raw)).join(listed_numbers, "msisdn", "left_anti"),
        devices=both(DEVICE_DAY, device_days(raw)).join(listed_numbers, "msisdn", "left_anti"),
        site_hours=site_hours(both(CELL_HOUR, cell_hours(raw)), sites),
        contacts=both(CONTACT_DAY, contact_days(raw)).join(listed_numbers, "msisdn", "left_anti"))


@dataclass
class DetectResult:
    """What `detect_date` wrote: flags in all, (detector, entity_type, flags, mean score) rows, the
    detectors' notes (why one could not look properly) and the inputs' warnings."""

    day: dt.date
    flags: int
    path: Path
    by_detector: list[tuple[str, str, int, float]]
    notes: list[str]
    warnings: list[str]


def detect_date(config: Config, day: dt.date, *, spark: SparkSession | None = None) -> DetectResult:
    """The `cdrwatch detect` step: flags of every detector for `day`, written to lake/flags/date=D."""
    from jobs.spark import spark_session

    spark = spark or spark_session(config)
    warnings: list[str] = []
    history_notes: list[str] = []
    night = load_night(config, spark, day, warnings, history_notes)
    judgement = spoofing.judge_night(config, spark, night, warnings)   # needs the lake around the night: judged here
    night = replace(night, spoofed=judgement.legs)
    detectors = [cls(getattr(config.detectors, name)) for name, cls in DETECTORS.items()]
    flags = run_detectors(detectors, night).persist()
    try:
        rows = lake.replace_date(config, FLAG, day, flags, sort_by=("detector", "entity_type", "entity_id"))
        write_daily(config, day, night.cdr)
        spoofing.write_judgement(config, day, judgement)
        summary = flags.groupBy("detector", "entity_type").agg(F.count("*").alias("flags"),
                                                              F.round(F.avg("score"), 2).alias("mean_score")) \
            .orderBy("detector", "entity_type").collect()
        notes = [f"{detector.name}: {note}" for detector in detectors if (note := detector.note(night))]
        notes += [f"spoofing: {line}"] if (line := spoofing.note(judgement.summary)) else []
        notes += history_notes
    finally:
        flags.unpersist()
        keep_night(config, spark, day, night.cdr)   # dens reads the same located rows next
        night.history.unpersist()
    log.info("detect %s: %d flags", day, rows)
    return DetectResult(day, rows, lake.partition_path(config, FLAG, day),
                        [(r.detector, r.entity_type, r.flags, r.mean_score) for r in summary], notes, warnings)
