"""Judge a night's incoming legs for caller-ID spoofing with the lake around it, and group the
spoofed legs into campaigns (`cdrwatch detect` runs this before the detectors).

extract (`leg_inputs`: outgoing legs of the night and of the neighbouring days near midnight, local
subscribers of the last `subscriber_days`, which carriers' nights are incomplete, the quarantined
lines' numbers) -> transform (`detectors.spoofing.judge_incoming`, pure Spark) -> campaigns (the
spoofed legs are few: a graph on the driver) -> load (lake/spoofed/date=D, and the counts in
lake/_runs/detect/date=D/spoofing.json). The engine-free half (incomplete carriers, protected
numbers, campaigns, the counts, the note) lives in `jobs.spoofing_judgement`, shared with the `local`
engine's `jobs.spoofing_local`.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.storagelevel import StorageLevel

from detectors.base import Night, local_time
from detectors.spoofing import (
    LegInputs,
    guard_pairs,
    in_pairs,
    judge_incoming,
    outgoing_legs,
    owner_carrier,
    quarantine_mentions,
)
from jobs.config import Config
from jobs.io import lake_spark, layout
from jobs.io.files import write_json
from jobs.spoofing_judgement import (  # noqa: F401  (engine-free, re-exported: callers import them from here)
    LEG_ORDER,
    Judgement,
    campaign_ids,
    carriers_on,
    incomplete_carriers,
    note,
    settings_with_protected,
    summary_of,
)
from schemas.tables import CDR, QUARANTINE, ROUTED, SIM_DAY, SPOOFED

log = logging.getLogger(__name__)


def leg_inputs(config: Config, spark: SparkSession, night: Night) -> LegInputs:
    """What judging `night`'s incoming legs needs from the lake around it (see `LegInputs`)."""
    day, settings = night.day, config.detectors.spoofing
    before, after = day - dt.timedelta(days=1), day + dt.timedelta(days=1)
    near = F.col("start_time").between(
        F.timestamp_add("SECOND", F.lit(-settings.tolerance_s), local_time(day, F.lit(0))),
        F.timestamp_add("SECOND", F.lit(settings.tolerance_s), local_time(after, F.lit(0))),
    )
    neighbours = lake_spark.read_range(config, spark, CDR, before, after).where(F.col("date") != F.lit(day))
    routed = lake_spark.read_range(config, spark, ROUTED, before, after)
    outgoing = (
        outgoing_legs(night.cdr)
        .unionByName(outgoing_legs(neighbours.where(near)))
        .unionByName(outgoing_legs(routed.where(near)))
    )
    first = day - dt.timedelta(days=settings.subscriber_days)
    subscribers = (
        night.cdr.select("msisdn", "carrier")
        .unionByName(night.earlier().sims.select("msisdn", "carrier"))
        .unionByName(lake_spark.read_range(config, spark, SIM_DAY, first, before).select("msisdn", "carrier"))
        .distinct()
    )

    mentions = quarantine_mentions(lake_spark.read_range(config, spark, QUARANTINE, before, after))
    return LegInputs(
        outgoing=outgoing,
        subscribers=subscribers,
        incomplete=incomplete_carriers(config, day),
        previous_day=carriers_on(config, before),
        next_day=carriers_on(config, after),
        mentions=mentions,
    )


def judge_night(config: Config, spark: SparkSession, night: Night, warnings: list[str] | None = None) -> Judgement:
    """Judge the night's incoming legs, drop carriers whose unmatched share says their outgoing
    records are missing or whose clocks are too far apart (`guard_pairs`), and name the campaigns."""
    settings = settings_with_protected(config, warnings)
    inputs = leg_inputs(config, spark, night)
    judged = (
        judge_incoming(night, inputs, settings)
        .withColumn("owner_carrier", owner_carrier())
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        counts = (
            judged.groupBy(
                "carrier",
                F.col("owner_carrier").alias("owners"),
                "verdict",
                "reason",
                F.col("protected").isNotNull().alias("is_protected"),
            )
            .agg(F.count("*").alias("n"))
            .collect()
        )
        guarded = guard_pairs([r for r in counts if not r.is_protected], settings)
        spoofed = judged.where((F.col("verdict") == "spoofed") & (F.col("protected").isNotNull() | ~in_pairs(guarded)))
        rows = [
            r.asDict()
            for r in spoofed.select(*[c for c in SPOOFED.names if c not in ("campaign_id", "date")])
            .orderBy(*LEG_ORDER)
            .collect()
        ]
    finally:
        judged.unpersist()
    ids = campaign_ids(rows, settings.campaign_gap_minutes, night.day)
    legs = spark.createDataFrame(
        [tuple({**r, "campaign_id": i, "date": night.day}[c] for c in SPOOFED.names) for r, i in zip(rows, ids)],
        SPOOFED.spark(),
    )
    return Judgement(legs, summary_of(night.day, settings, counts, guarded, inputs.incomplete, rows, ids))


def write_judgement(config: Config, day: dt.date, judgement: Judgement) -> Path:
    """lake/spoofed/date=D (atomic) and the counts beside detect's other run files."""
    lake_spark.replace_date(config, SPOOFED, day, judgement.legs, sort_by=LEG_ORDER)
    return write_json(layout.spoofing_path(config, day), judgement.summary)
