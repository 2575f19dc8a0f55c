"""What an officer needs to know about each den, aggregated in Spark over its members' CDRs.

Position: the members' site positions weighted by their calls there; `radius_m` the call-weighted
mean distance of those sites from the position (at least `MIN_RADIUS_M`); district: that of the
site nearest the position. Victims: residents (not members, not whitelisted) who had an answered
voice call of at least `warning_min_call_s` with a member. Only per-den aggregates are collected.

Spark returns collected rows in an order that changes with the number of shuffle partitions, and
float sums depend on that order: `describe` sorts what it collects (sites by key, SIMs by number)
so that position, radius and score are computed from the same sequence every run.
"""
from __future__ import annotations

import re

from collections import Counter, defaultdict

import numpy as np
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from detectors.sites import distance_m
from jobs.dens.graph import IMEI_NODE, segment_of

MIN_RADIUS_M = 100.0
ACTIVE_HOUR_SHARE = 0.1     # an hour is "active" with at least this share of the den's busiest hour
SEGMENT_SHARE = 0.05        # a segment is the den's when it takes this share of its calls (and >= 20)
MAX_CELLS = 30


def membership(spark: SparkSession, groups: list[list[str]]) -> DataFrame:
    """`msisdn, den_key` for the SIM members of each group (den_key `k01`, `k02`, ...)."""
    rows = [(n, key_of(i)) for i, g in enumerate(groups) for n in g if not n.startswith(IMEI_NODE)]
    return spark.createDataFrame(rows, "msisdn string, den_key string")


def key_of(i: int) -> str:
    return f"k{i + 1:03d}"


def weighted_position(lat, lon, weight) -> tuple[float, float, float]:
    """(lat, lon, radius_m) of sites weighted by calls: the weighted mean position and the weighted
    mean distance of the sites from it, at least MIN_RADIUS_M."""
    lat, lon, weight = (np.asarray(x, dtype=float) for x in (lat, lon, weight))
    w = weight / weight.sum()
    plat, plon = float((lat * w).sum()), float((lon * w).sum())
    spread = float((distance_m(plat, plon, lat, lon) * w).sum())
    return plat, plon, max(MIN_RADIUS_M, spread)


def active_hours(counts: dict[int, int]) -> str:
    """{hour: events} -> `09-12;14-18` (each range's end hour exclusive)."""
    if not counts:
        return ""
    floor = ACTIVE_HOUR_SHARE * max(counts.values())
    hours = sorted(h for h, n in counts.items() if n >= floor)
    ranges, start, prev = [], hours[0], hours[0]
    for h in hours[1:]:
        if h != prev + 1:
            ranges.append((start, prev + 1))
            start = h
        prev = h
    ranges.append((start, prev + 1))
    return ";".join(f"{a:02d}-{b:02d}" for a, b in ranges)


def victims(cdr: DataFrame, members: DataFrame, whitelist: DataFrame, min_call_s: int) -> DataFrame:
    """`den_key, number, district, first_contact, longest_call_s, n_calls` (district null when the
    resident has no located rows tonight)."""
    calls = (cdr.join(F.broadcast(members), "msisdn").where(F.col("service") == "voice")
             .where(F.col("other_party").isNotNull())
             .select("den_key", F.col("other_party").alias("number"), "start_time", "duration_s"))
    calls = (calls.join(F.broadcast(members.select(F.col("msisdn").alias("number"))), "number", "left_anti")
             .join(F.broadcast(whitelist.select(F.col("number"))), "number", "left_anti"))
    per = (calls.groupBy("den_key", "number")
           .agg(F.min("start_time").alias("first_contact"), F.max("duration_s").alias("longest_call_s"),
                F.count("*").alias("n_calls"))
           .where(F.col("longest_call_s") >= min_call_s))
    homes = (cdr.join(per.select(F.col("number").alias("msisdn")).distinct(), "msisdn")
             .where(F.col("district").isNotNull()).groupBy("msisdn", "site_key", "district").count()
             .withColumn("r", F.row_number().over(Window.partitionBy("msisdn")
                                                  .orderBy(F.desc("count"), "site_key", "district")))
             .where(F.col("r") == 1).select(F.col("msisdn").alias("number"), "district"))
    return per.join(homes, "number", "left").select("den_key", "number", "district", "first_contact",
                                                    F.col("longest_call_s").cast("int"), "n_calls")


def describe(cdr: DataFrame, members: DataFrame) -> dict[str, dict]:
    """den_key -> raw facts: sites (key, lat, lon, label, district, calls), cells, hours, sims
    (msisdn -> carrier), imeis, n_calls (outgoing calls and SMS), n_sms, n_distinct_callees,
    segments (segment -> calls)."""
    rows = cdr.join(F.broadcast(members), "msisdn")
    out = rows.where(F.col("direction") == "out")
    facts: dict[str, dict] = defaultdict(lambda: {"sites": [], "cells": Counter(), "hours": {}, "sims": {},
                                                  "imeis": Counter(), "segments": Counter(), "n_calls": 0,
                                                  "n_distinct_callees": 0, "n_sms": 0})
    for r in (rows.where(F.col("site_key").isNotNull())
              .groupBy("den_key", "site_key", "site_lat", "site_lon", "site_label", "district").count().collect()):
        facts[r.den_key]["sites"].append((r.site_key, r.site_lat, r.site_lon, r.site_label, r.district, r["count"]))
    for r in rows.where(F.col("cell_id").isNotNull()).groupBy("den_key", "cell_id").count().collect():
        facts[r.den_key]["cells"][r.cell_id] = r["count"]
    for r in out.groupBy("den_key", F.hour("start_time").alias("h")).count().collect():
        facts[r.den_key]["hours"][r.h] = r["count"]
    for r in rows.groupBy("den_key", "msisdn").agg(F.min("carrier").alias("carrier")).collect():  # not first()
        facts[r.den_key]["sims"][r.msisdn] = r.carrier
    for r in rows.where(F.col("imei").isNotNull()).groupBy("den_key", "imei").count().collect():
        facts[r.den_key]["imeis"][r.imei] = r["count"]
    for r in (out.select("den_key", segment_of(F.col("other_party")).alias("seg")).where(F.col("seg").isNotNull())
              .groupBy("den_key", "seg").count().collect()):
        facts[r.den_key]["segments"][r.seg] = r["count"]
    totals = out.groupBy("den_key").agg(F.count("*").alias("n"), F.countDistinct("other_party").alias("d"),
                                        F.sum(F.when(F.col("service") == "sms", 1).otherwise(0)).alias("sms"))
    for r in totals.collect():
        facts[r.den_key].update(n_calls=r.n, n_distinct_callees=r.d, n_sms=r.sms)
    for fact in facts.values():   # collect order follows the partitioning: make it canonical
        fact["sites"].sort(key=lambda site: tuple("" if v is None else str(v) for v in site[:5]))
        fact["sims"] = dict(sorted(fact["sims"].items()))
        fact["hours"] = dict(sorted(fact["hours"].items()))
        for name in ("cells", "imeis", "segments"):
            fact[name] = Counter(dict(sorted(fact[name].items())))
    return dict(sorted(facts.items()))


def place(facts: dict, sites: list[tuple[float, float, str]]) -> dict:
    """Position, radius, nearest site's district, cells and site names of one den."""
    located = facts["sites"]
    result = {"lat": None, "lon": None, "radius_m": None, "district": None, "site_names": [], "main_site": None}
    if located:
        lat, lon, radius = weighted_position([s[1] for s in located], [s[2] for s in located],
                                             [s[5] for s in located])
        result.update(lat=lat, lon=lon, radius_m=radius)
        if sites:
            d = distance_m(lat, lon, np.array([s[0] for s in sites]), np.array([s[1] for s in sites]))
            result["district"] = sites[int(np.argmin(d))][2]
        by_calls = sorted(located, key=lambda s: (-s[5], s[0]))
        result["site_names"] = list(dict.fromkeys(s[3] for s in by_calls if s[3]))
        result["main_site"] = by_calls[0][3]
    result["cells"] = [c for c, _ in sorted(facts["cells"].items(), key=lambda kv: (-kv[1], kv[0]))][:MAX_CELLS]
    return result


def main_segments(segments: Counter, n_calls: int) -> list[str]:
    floor = max(20, SEGMENT_SHARE * n_calls)
    return sorted(s for s, n in segments.items() if n >= floor)


def den_score(member_scores: list[float], n_sims: int) -> float:
    """0.7 x best member score + 0.3 x mean member score (unflagged members count 0), plus up to
    0.1 for size (0.01 per SIM): a big den of moderately suspicious SIMs outranks a lone box SIM."""
    if not member_scores:
        return 0.0
    base = 0.7 * max(member_scores) + 0.3 * sum(member_scores) / len(member_scores)
    return round(min(1.0, base + min(0.1, 0.01 * n_sims)), 3)


# The sequential detector's evidence: "398 of the 412 numbers 139-1234-0000…0411 dialled in ascending
# order round-robin by 13 SIMs 09:02–11:58 at …" -> the range and the way it was dialled.
_SWEEP = re.compile(r"numbers (\d{3}-\d{4}-\d{4}…\d{4}) dialled (.+?) \d{2}:\d{2}–\d{2}:\d{2} ")


def dialling_pattern(sequential_evidence: str | None) -> str | None:
    """'139-1234-0000…0411 in ascending order round-robin by 13 SIMs', from a sequential flag's
    evidence (None if it is not one)."""
    match = _SWEEP.search(sequential_evidence or "")
    return f"{match.group(1)} {match.group(2)}" if match else None


def evidence(*, sims: dict[str, str], n_boxes: int, n_handsets: int, main_site: str | None, radius_m: float | None,
             hours: str, n_calls: int, n_callees: int, top_segment: str | None, n_victims: int,
             min_call_s: int, n_sms: int = 0, pattern: str | None = None) -> str:
    """One sentence for the field unit: who (SIMs by carrier, devices), where, when, what, harm."""
    carriers = Counter(sims.values())
    by_carrier = ", ".join(f"{c} {n}" for c, n in sorted(carriers.items(), key=lambda kv: (-kv[1], kv[0])))
    text = f"{len(sims)} SIM{'s' if len(sims) != 1 else ''} ({by_carrier})"
    devices = []
    if n_boxes:
        devices.append(f"{n_boxes} GOIP device{'s' if n_boxes > 1 else ''}")
    if n_handsets:
        devices.append(f"{n_handsets} handset{'s' if n_handsets > 1 else ''}")
    if devices:
        text += " and " + " and ".join(devices)
    if main_site:
        text += f" at {main_site} (±{radius_m:,.0f} m)"
    if hours:
        text += f", {hours}"
    sent = [f"{n:,} {what}" for n, what in ((n_calls - n_sms, "calls"), (n_sms, "SMS")) if n] or ["0 calls"]
    text += f", {' and '.join(sent)} to {n_callees:,} numbers"
    if pattern:
        text += f", dialling {pattern}"
    elif top_segment:
        text += f", most to {top_segment[:3]}-{top_segment[3:]}-xxxx"
    minutes = min_call_s / 60
    text += f"; {n_victims} resident{'s' if n_victims != 1 else ''} talked over {minutes:g} min"
    return text
