"""The Spark side of describing dens: per-den aggregates over the members' CDRs, and the victims.

Only per-den aggregates reach the driver (`DenFacts`); what they mean for an officer (score, place,
evidence) is `core.describe_dens`, without Spark. Victims: residents (not members, not whitelisted)
who had an answered voice call of at least `warning_min_call_s` with a member.

Spark returns collected rows in an order that changes with the number of shuffle partitions, and
float sums depend on that order: `describe` sorts what it collects (sites by key, SIMs by number)
so that position, radius and score are computed from the same sequence every run (`step.den_facts`,
shared with the local engine's twin `describe_local`).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.dens.core import DenFacts, key_of
from jobs.dens.graph import segment_of
from jobs.dens.links import IMEI_NODE
from jobs.dens.step import den_facts


def membership(spark: SparkSession, groups: list[list[str]]) -> DataFrame:
    """`msisdn, den_key` for the SIM members of each group (den_key `k001`, `k002`, ...)."""
    rows = [(n, key_of(i)) for i, g in enumerate(groups) for n in g if not n.startswith(IMEI_NODE)]
    return spark.createDataFrame(rows, "msisdn string, den_key string")


def victims(cdr: DataFrame, members: DataFrame, whitelist: DataFrame, min_call_s: int) -> DataFrame:
    """`den_key, number, district, first_contact, longest_call_s, n_calls` (district null when the
    resident has no located rows tonight)."""
    calls = (
        cdr.join(F.broadcast(members), "msisdn")
        .where(F.col("service") == "voice")
        .where(F.col("other_party").isNotNull())
        .select("den_key", F.col("other_party").alias("number"), "start_time", "duration_s")
    )
    calls = calls.join(F.broadcast(members.select(F.col("msisdn").alias("number"))), "number", "left_anti").join(
        F.broadcast(whitelist.select(F.col("number"))), "number", "left_anti"
    )
    per = (
        calls.groupBy("den_key", "number")
        .agg(
            F.min("start_time").alias("first_contact"),
            F.max("duration_s").alias("longest_call_s"),
            F.count("*").alias("n_calls"),
        )
        .where(F.col("longest_call_s") >= min_call_s)
    )
    homes = (
        cdr.join(per.select(F.col("number").alias("msisdn")).distinct(), "msisdn")
        .where(F.col("district").isNotNull())
        .groupBy("msisdn", "site_key", "district")
        .count()
        .withColumn(
            "r", F.row_number().over(Window.partitionBy("msisdn").orderBy(F.desc("count"), "site_key", "district"))
        )
        .where(F.col("r") == 1)
        .select(F.col("msisdn").alias("number"), "district")
    )
    return per.join(homes, "number", "left").select(
        "den_key", "number", "district", "first_contact", F.col("longest_call_s").cast("int"), "n_calls"
    )


def describe(cdr: DataFrame, members: DataFrame) -> dict[str, DenFacts]:
    """den_key -> the den's aggregates (see `DenFacts`), each sorted, by den_key (`step.den_facts`)."""
    rows = cdr.join(F.broadcast(members), "msisdn")
    out = rows.where(F.col("direction") == "out")
    site = ("site_key", "site_lat", "site_lon", "site_label", "district")
    sites = (
        rows.where(F.col("site_key").isNotNull())
        .groupBy("den_key", *site, F.hour("start_time").alias("h"))
        .count()
        .collect()
    )
    totals = out.groupBy("den_key").agg(
        F.count("*").alias("n"),
        F.countDistinct("other_party").alias("d"),
        F.sum(F.when(F.col("service") == "sms", 1).otherwise(0)).alias("sms"),
    )
    segments = (
        out.select("den_key", segment_of(F.col("other_party")).alias("seg"))
        .where(F.col("seg").isNotNull())
        .groupBy("den_key", "seg")
        .count()
    )
    return den_facts(
        sites=[(r.den_key, tuple(r[c] for c in site), r.h, r["count"]) for r in sites],
        cells=[
            tuple(r) for r in rows.where(F.col("cell_id").isNotNull()).groupBy("den_key", "cell_id").count().collect()
        ],
        hours=[tuple(r) for r in out.groupBy("den_key", F.hour("start_time").alias("h")).count().collect()],
        sims=[tuple(r) for r in rows.groupBy("den_key", "msisdn").agg(F.min("carrier")).collect()],  # not first()
        imeis=[tuple(r) for r in rows.where(F.col("imei").isNotNull()).groupBy("den_key", "imei").count().collect()],
        segments=[tuple(r) for r in segments.collect()],
        totals=[tuple(r) for r in totals.collect()],
    )
