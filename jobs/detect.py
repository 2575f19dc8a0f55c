"""`cdrwatch detect --date D`: lake/cdr (D and the days before) -> lake/flags/date=D.

extract (`load_night`: the night's CDRs, the baseline days, the cells' sites, the whitelist) ->
transform (`detectors.run_detectors`, pure) -> load (`lake.replace_date`, atomic).
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.storagelevel import StorageLevel

from detectors import DETECTORS
from detectors.base import Night, prepare_night, run_detectors
from detectors.sites import cell_sites
from jobs.io import inventory, lake
from jobs import normalise as N
from jobs.config import Config
from jobs.errors import CdrwatchError
from jobs.normalise import e164
from schemas.tables import CDR, CELL, FLAG

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


def load_night(config: Config, spark: SparkSession, day: dt.date, warnings: list[str] | None = None) -> Night:
    """Everything the detectors need for `day`, ready for `run_detectors`; the inventory's and the
    whitelist's warnings are appended to `warnings`."""
    if not lake.partition_path(config, CDR, day).is_dir():
        raise CdrwatchError(f"{lake.partition_path(config, CDR, day)}: no CDRs for {day} (run cdrwatch ingest first)")
    cdr = lake.read_partition(config, spark, CDR, day)
    history = lake.read_range(config, spark, CDR, day - dt.timedelta(days=history_days(config)),
                              day - dt.timedelta(days=1))
    whitelist = read_whitelist(config, spark, warnings)  # small: built in memory
    night = prepare_night(day, cdr, history, cell_sites(read_cells(config, spark, warnings)), whitelist)
    # every detector reads the night several times: keep the located rows instead of re-reading Parquet
    return replace(night, cdr=night.cdr.persist(StorageLevel.MEMORY_AND_DISK),
                   history=night.history.persist(StorageLevel.MEMORY_AND_DISK))


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
    night = load_night(config, spark, day, warnings)
    detectors = [cls(getattr(config.detectors, name)) for name, cls in DETECTORS.items()]
    flags = run_detectors(detectors, night).persist()
    try:
        rows = lake.replace_date(config, FLAG, day, flags, sort_by=("detector", "entity_type", "entity_id"))
        summary = flags.groupBy("detector", "entity_type").agg(F.count("*").alias("flags"),
                                                              F.round(F.avg("score"), 2).alias("mean_score")) \
            .orderBy("detector", "entity_type").collect()
        notes = [f"{detector.name}: {note}" for detector in detectors if (note := detector.note(night))]
    finally:
        flags.unpersist()
        night.cdr.unpersist()
        night.history.unpersist()
    log.info("detect %s: %d flags", day, rows)
    return DetectResult(day, rows, lake.partition_path(config, FLAG, day),
                        [(r.detector, r.entity_type, r.flags, r.mean_score) for r in summary], notes, warnings)
