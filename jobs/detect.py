"""`cdrwatch detect --date D`: lake/cdr (D and the days before) -> lake/flags/date=D.

extract (`load_night`: the night's CDRs, the baseline days, the cells' sites, the whitelist) ->
transform (`detectors.run_detectors`, pure) -> load (`lake_spark.replace_date`, atomic).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from detectors import DETECTORS
from detectors.base import run_detectors
from jobs import spoofing
from jobs.config import Config
from jobs.detect_result import DetectResult
from jobs.io import lake_spark, layout
from jobs.night import NightCache, load_night, write_daily
from schemas.tables import FLAG

log = logging.getLogger(__name__)


def detect_date(
    config: Config, day: dt.date, *, spark: SparkSession | None = None, cache: NightCache | None = None
) -> DetectResult:
    """The `cdrwatch detect` step: flags of every detector for `day`, written to lake/flags/date=D;
    the located night is left in `cache` for dens (else uncached)."""
    from jobs.spark import spark_session

    spark = spark or spark_session(config)
    warnings: list[str] = []
    history_notes: list[str] = []
    night = load_night(config, spark, day, warnings, history_notes, cache)
    judgement = spoofing.judge_night(config, spark, night, warnings)  # needs the lake around the night: judged here
    night = replace(night, spoofed=judgement.legs)
    detectors = [cls(getattr(config.detectors, name)) for name, cls in DETECTORS.items()]
    flags = run_detectors(detectors, night).persist()
    try:
        rows = lake_spark.replace_date(config, FLAG, day, flags, sort_by=("detector", "entity_type", "entity_id"))
        write_daily(config, day, night.cdr)
        spoofing.write_judgement(config, day, judgement)
        summary = (
            flags.groupBy("detector", "entity_type")
            .agg(F.count("*").alias("flags"), F.round(F.avg("score"), 2).alias("mean_score"))
            .orderBy("detector", "entity_type")
            .collect()
        )
        notes = [f"{detector.name}: {note}" for detector in detectors if (note := detector.note(night))]
        notes += [f"spoofing: {line}"] if (line := spoofing.note(judgement.summary)) else []
        notes += history_notes
    finally:
        flags.unpersist()
        if cache is not None:
            cache.keep(config, spark, day, night.cdr)  # dens reads the same located rows next
        else:
            night.cdr.unpersist()
        night.history.unpersist()
    log.info("detect %s: %d flags", day, rows)
    return DetectResult(
        day,
        rows,
        layout.partition_path(config, FLAG, day),
        [(r.detector, r.entity_type, r.flags, r.mean_score) for r in summary],
        notes,
        warnings,
    )
