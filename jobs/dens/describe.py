"""The Spark side of describing dens: per-den aggregates over the members' CDRs, and the victims.

Only per-den aggregates reach the driver (`DenFacts`); what they mean for an officer (score, place,
evidence) is `core.describe_dens`, without Spark. Victims: residents (not members, not whitelisted)
who had an answered voice call of at least `warning_min_call_s` with a member.

Spark returns collected rows in an order that changes with the number of shuffle partitions, and
float sums depend on that order: `describe` sorts what it collects (sites by key, SIMs by number)
so that position, radius and score are computed from the same sequence every run.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.dens.core import DenFacts, key_of
from jobs.dens.graph import IMEI_NODE, segment_of


def membership(spark: SparkSession, groups: list[list[str]]) -> DataFrame:
    """`msisdn, den_key` for the SIM members of each group (den_key `k01`, `k02`, ...)."""
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
    """den_key -> the den's aggregates (see `DenFacts`), each sorted, by den_key."""
    rows = cdr.join(F.broadcast(members), "msisdn")
    out = rows.where(F.col("direction") == "out")
    facts: dict[str, dict] = defaultdict(
        lambda: {
            "sites": Counter(),
            "site_hours": {},
            "cells": Counter(),
            "hours": {},
            "sims": {},
            "imeis": Counter(),
            "segments": Counter(),
            "n_calls": 0,
            "n_distinct_callees": 0,
            "n_sms": 0,
        }
    )
    site = ("site_key", "site_lat", "site_lon", "site_label", "district")
    for r in (
        rows.where(F.col("site_key").isNotNull())
        .groupBy("den_key", *site, F.hour("start_time").alias("h"))
        .count()
        .collect()
    ):
        facts[r.den_key]["sites"][tuple(r[c] for c in site)] += r["count"]
        hours = facts[r.den_key]["site_hours"]
        hours[(r.h, r.site_key)] = hours.get((r.h, r.site_key), 0) + r["count"]
    for r in rows.where(F.col("cell_id").isNotNull()).groupBy("den_key", "cell_id").count().collect():
        facts[r.den_key]["cells"][r.cell_id] = r["count"]
    for r in out.groupBy("den_key", F.hour("start_time").alias("h")).count().collect():
        facts[r.den_key]["hours"][r.h] = r["count"]
    for r in rows.groupBy("den_key", "msisdn").agg(F.min("carrier").alias("carrier")).collect():  # not first()
        facts[r.den_key]["sims"][r.msisdn] = r.carrier
    for r in rows.where(F.col("imei").isNotNull()).groupBy("den_key", "imei").count().collect():
        facts[r.den_key]["imeis"][r.imei] = r["count"]
    for r in (
        out.select("den_key", segment_of(F.col("other_party")).alias("seg"))
        .where(F.col("seg").isNotNull())
        .groupBy("den_key", "seg")
        .count()
        .collect()
    ):
        facts[r.den_key]["segments"][r.seg] = r["count"]
    totals = out.groupBy("den_key").agg(
        F.count("*").alias("n"),
        F.countDistinct("other_party").alias("d"),
        F.sum(F.when(F.col("service") == "sms", 1).otherwise(0)).alias("sms"),
    )
    for r in totals.collect():
        facts[r.den_key].update(n_calls=r.n, n_distinct_callees=r.d, n_sms=r.sms)
    for fact in facts.values():  # collect order follows the partitioning: make it canonical
        fact["sites"] = sorted(
            ((*key, n) for key, n in fact["sites"].items()),
            key=lambda site: tuple("" if v is None else str(v) for v in site[:5]),
        )
        for name in ("sims", "hours", "site_hours", "cells", "imeis", "segments"):
            fact[name] = dict(sorted(fact[name].items()))
    return {key: DenFacts(**fact) for key, fact in sorted(facts.items())}
