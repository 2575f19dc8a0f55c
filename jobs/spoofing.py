"""Judge a night's incoming legs for caller-ID spoofing with the lake around it, and group the
spoofed legs into campaigns (`cdrwatch detect` runs this before the detectors).

extract (`leg_inputs`: outgoing legs of the night and of the neighbouring days near midnight, local
subscribers of the last `subscriber_days`, which carriers' nights are incomplete, the quarantined
lines' numbers) -> transform (`detectors.spoofing.judge_incoming`, pure Spark) -> campaigns (the
spoofed legs are few: a graph on the driver) -> load (lake/spoofed/date=D, and the counts in
lake/_runs/detect/date=D/spoofing.json).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.storagelevel import StorageLevel

from detectors.base import Night, local_time
from detectors.spoofing import (
    TOO_MANY_UNMATCHED,
    LegInputs,
    guard_pairs,
    in_pairs,
    judge_incoming,
    outgoing_legs,
    owner_carrier,
    quarantine_mentions,
)
from jobs.config import Config
from jobs.io import inventory, lake_spark, layout, summaries
from jobs.io.files import write_json
from schemas.tables import CDR, QUARANTINE, ROUTED, SIM_DAY, SPOOFED

log = logging.getLogger(__name__)


def incomplete_carriers(config: Config, day: dt.date) -> dict[str, str]:
    """Carrier -> why its delivery for `day` is missing, partial or suspect, from ingest's run summary
    (`partial_carriers`: the reasons by carrier). Without a summary nothing is known to be whole:
    every carrier is listed."""
    summary = summaries.read_summary(config, "ingest", day)
    if summary is None:
        return {c: f"no ingest summary for {day.isoformat()}" for c in sorted(config.carriers)}
    reasons: dict[str, list[str]] = {}
    for carrier in summary.get("missing_carriers", []):
        reasons.setdefault(carrier, []).append(f"no files for {day.isoformat()}")
    by_carrier = summary.get("partial_carriers")
    if by_carrier is None:  # a summary written before ingest kept its reasons by carrier
        by_carrier = {}
        for line in summary.get("partial_reasons", []):
            carrier, _, why = line.partition(": ")
            by_carrier.setdefault(carrier, []).append(why)
    for carrier, whys in by_carrier.items():
        for why in whys:
            if carrier in config.carriers and why not in reasons.get(carrier, []):
                reasons.setdefault(carrier, []).append(why)
    return {c: "; ".join(why) for c, why in sorted(reasons.items())}


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

    def carriers_on(other: dt.date) -> frozenset[str]:
        return frozenset(c for c in config.carriers if layout.partition_path(config, CDR, other, c).is_dir())

    mentions = quarantine_mentions(lake_spark.read_range(config, spark, QUARANTINE, before, after))
    return LegInputs(
        outgoing=outgoing,
        subscribers=subscribers,
        incomplete=incomplete_carriers(config, day),
        previous_day=carriers_on(before),
        next_day=carriers_on(after),
        mentions=mentions,
    )


@dataclass
class Judgement:
    """Tonight's spoofed legs (SPOOFED columns, small, on the driver's Spark) and the counts."""

    legs: DataFrame
    summary: dict


def settings_with_protected(config: Config, warnings: list[str] | None = None):
    """`detectors.spoofing` with landing/protected_numbers.csv's entries after conf's; the file's
    warnings (rows that are no number pattern) are appended to `warnings`."""
    from jobs.config import ProtectedNumber

    settings = config.detectors.spoofing
    extra, problems = inventory.read_protected_numbers(layout.protected_path(config))
    if warnings is not None:
        warnings += problems
    if not extra:
        return settings
    return settings.model_copy(update={"protected": [*settings.protected, *(ProtectedNumber(**e) for e in extra)]})


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
            .orderBy("start_time", "carrier", "record_id")
            .collect()
        ]
    finally:
        judged.unpersist()
    ids = campaign_ids(rows, settings.campaign_gap_minutes, night.day)
    legs = spark.createDataFrame(
        [tuple({**r, "campaign_id": i, "date": night.day}[c] for c in SPOOFED.names) for r, i in zip(rows, ids)],
        SPOOFED.spark(),
    )
    return Judgement(legs, _summary(night.day, settings, counts, guarded, inputs.incomplete, rows, ids))


def _summary(
    day: dt.date,
    settings,
    counts: list,
    guarded: dict[tuple[str, str], str],
    incomplete: dict[str, str],
    rows: list[dict],
    ids: list[str],
) -> dict:
    not_judged: dict[str, int] = {}
    for r in counts:
        if r.verdict == "not_judged":
            not_judged[r.reason] = not_judged.get(r.reason, 0) + r.n
        elif r.verdict == "spoofed" and not r.is_protected and (r.carrier, r.owners) in guarded:
            not_judged[TOO_MANY_UNMATCHED] = not_judged.get(TOO_MANY_UNMATCHED, 0) + r.n
    matched = sum(r.n for r in counts if r.verdict == "matched")
    return {
        "date": day.isoformat(),
        "tolerance_s": settings.tolerance_s,
        "incoming_legs": sum(r.n for r in counts),
        "judged": matched + len(rows),
        "matched": matched,
        "spoofed": len(rows),
        "not_judged": dict(sorted(not_judged.items())),
        "unjudged_carriers": {**incomplete, **_by_owner(guarded)},
        "campaigns": len(set(ids)),
    }


def _by_owner(guarded: dict[tuple[str, str], str]) -> dict[str, str]:
    """The guarded pairs as carrier -> why, one line per presented numbers' carrier."""
    lines: dict[str, list[str]] = {}
    for (_carrier, owners), why in sorted(guarded.items()):
        lines.setdefault(owners, []).append(why)
    return {owners: "; ".join(why) for owners, why in lines.items()}


def campaign_ids(legs: list[dict], gap_minutes: int, day: dt.date) -> list[str]:
    """`S<date>-<nn>` per leg (legs in time order): one campaign is the legs linked by a subscriber's
    number they show, or by receivers in one number segment (7 digits after +86) called within
    `gap_minutes` of each other; numbered by first call. A protected number links nothing by itself:
    every gang shows 110."""
    graph = nx.Graph()
    graph.add_nodes_from(range(len(legs)))
    last: dict[tuple, tuple[int, dt.datetime]] = {}
    for i, leg in enumerate(legs):
        keys = [("segment", leg["receiver"][3:10])] + ([] if leg["protected"] else [("presented", leg["presented"])])
        for key in keys:
            if key in last:
                j, when = last[key]
                if key[0] == "presented" or (leg["start_time"] - when).total_seconds() <= gap_minutes * 60:
                    graph.add_edge(i, j)
            last[key] = (i, leg["start_time"])
    groups = sorted((sorted(c) for c in nx.connected_components(graph)), key=lambda c: c[0])
    ids = [""] * len(legs)
    for k, members in enumerate(groups, start=1):
        for i in members:
            ids[i] = f"S{day:%Y%m%d}-{k:02d}"
    return ids


def write_judgement(config: Config, day: dt.date, judgement: Judgement) -> Path:
    """lake/spoofed/date=D (atomic) and the counts beside detect's other run files."""
    lake_spark.replace_date(config, SPOOFED, day, judgement.legs, sort_by=("start_time", "carrier", "record_id"))
    return write_json(layout.spoofing_path(config, day), judgement.summary)


def note(summary: dict) -> str | None:
    """One line for detect's output when some legs could not be judged."""
    if not summary["not_judged"]:
        return None
    parts = ", ".join(f"{n:,} {why}" for why, n in summary["not_judged"].items())
    unjudged = "; ".join(f"{c}: {why}" for c, why in summary["unjudged_carriers"].items())
    return f"{sum(summary['not_judged'].values()):,} incoming leg(s) not judged ({parts})" + (
        f"; carriers: {unjudged}" if unjudged else ""
    )
