"""Caller-ID spoofing (改号): incoming legs that no carrier placed.

A call between two local subscribers is recorded twice: the caller's carrier writes the outgoing
leg, the callee's carrier the incoming one. An overseas gateway or a VoIP line that presents a
resident's number (or 110, a court's, a bank's 955xx) reaches the receiver's carrier only: its
incoming leg has no outgoing twin anywhere. No single carrier can see this; the lake holds all of
them. `judge_incoming` sorts the night's incoming legs that present a local subscriber's number
(`LegInputs.subscribers`) or a protected one into:

* `matched`: an outgoing leg of the presented number to the receiver, same service, started within
  `tolerance_s` (carriers' clocks disagree), durations consistent (they round differently);
* not judged, with the reason: the presented number's carrier delivered a missing, partial or
  suspect night; the leg is near midnight and the neighbouring day of that carrier is not in the
  lake; or a line that carrier quarantined mentions both numbers, or only one of them (the
  outgoing leg may be that line, cut or emptied). Missing data is never an alarm;
* `spoofed`: the rest, and every protected number on a mobile's incoming leg (for the services the
  list names), whatever its history.

The presented number's owner is a victim of impersonation, never a suspect: flags are of entity
type `presented` (dens link only msisdn and imei flags), one per presented number.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from detectors.base import Detector, Night, local_time
from detectors.history import sim_days
from detectors.rules.spoofing import (  # noqa: F401  (the reasons are this module's vocabulary too)
    CARRIER_NOT_COMPLETE,
    JUDGED_COLUMNS,
    MOBILE,
    NATIONAL_MOBILE,
    NEAR_MIDNIGHT,
    QUARANTINED,
    TOO_MANY_UNMATCHED,
    WHITELISTED,
    guard_pairs,
)


@dataclass(frozen=True)
class LegInputs:
    """What judging a night's incoming legs needs beyond the night's own rows.

    `outgoing`: outgoing legs (msisdn, other_party, service, start_time, duration_s) that may pair
    with tonight's incoming ones: tonight's, and those of the neighbouring days (and lake/routed)
    within the tolerance of midnight. `subscribers`: (msisdn, carrier) of local subscribers, carrier
    null when unknown (aggregates older than the column). `incomplete`: carrier -> why its night is
    missing, partial or suspect. `previous_day`, `next_day`: carriers whose neighbouring day is in the
    lake. `mentions`: (carrier, key) of the carriers' quarantined lines (`quarantine_mentions`).
    `whitelist`: numbers never judged (registered call centres)."""

    outgoing: DataFrame
    subscribers: DataFrame
    incomplete: dict[str, str] = field(default_factory=dict)
    previous_day: frozenset[str] = frozenset()
    next_day: frozenset[str] = frozenset()
    mentions: DataFrame | None = None


def night_inputs(night: Night) -> LegInputs:
    """Inputs from the night alone (a notebook's night): tonight's outgoing legs, tonight's and the
    earlier days' subscribers; neighbouring days unknown, so legs near midnight are not judged."""
    earlier = night.past.sims if night.past is not None else sim_days(night.history)
    subscribers = night.cdr.select("msisdn", "carrier").unionByName(earlier.select("msisdn", "carrier"))
    return LegInputs(outgoing=outgoing_legs(night.cdr), subscribers=subscribers)


def owner_carrier() -> Column:
    """The presented number's carriers joined by '+' (`cm`, `cm+cu` for a number ported tonight);
    null for a protected number nobody local holds."""
    return F.when(F.size("owners") > 0, F.array_join("owners", "+"))


def outgoing_legs(cdr: DataFrame) -> DataFrame:
    return cdr.where(F.col("direction") == "out").select("msisdn", "other_party", "service", "start_time", "duration_s")


def protected_name(presented: Column, service: Column, protected) -> Column:
    """The protected entry's name when `presented` is one of `protected` (conf entries with `number`,
    'x' any digit, `name`, `services`) for this service, else null: one CASE, no join."""
    name = F.lit(None).cast("string")
    for entry in reversed(list(protected)):
        pattern = "^" + entry.number.replace("x", "[0-9]") + "$"
        name = F.when(presented.rlike(pattern) & service.isin(list(entry.services)), F.lit(entry.name)).otherwise(name)
    return name


def candidates(night: Night, inputs: LegInputs, protected) -> DataFrame:
    """Tonight's incoming legs presenting a local subscriber's or a protected number: the in leg's
    columns, `receiver`, `presented`, `protected` (name), `owners` (sorted carriers of the presented
    number's subscriber, empty for a protected one) and `owner_unknown` (a carrier of it unknown)."""
    owners = (
        inputs.subscribers.where(F.col("msisdn").rlike(MOBILE))
        .groupBy(F.col("msisdn").alias("presented"))
        .agg(
            F.array_sort(F.collect_set("carrier")).alias("owners"),
            F.max(F.col("carrier").isNull().cast("int")).cast("boolean").alias("owner_unknown"),
        )
    )
    incoming = night.cdr.where((F.col("direction") == "in") & F.col("other_party").isNotNull()).select(
        "record_id",
        "carrier",
        F.col("msisdn").alias("receiver"),
        F.col("other_party").alias("presented"),
        "service",
        "start_time",
        "duration_s",
        "cell_id",
        "district",
        protected_name(F.col("other_party"), F.col("service"), protected).alias("protected"),
    )
    local = incoming.where(F.col("protected").isNull() & F.col("presented").rlike(MOBILE)).join(owners, "presented")
    named = incoming.where(F.col("protected").isNotNull()).select(
        "*", F.array().cast("array<string>").alias("owners"), F.lit(False).alias("owner_unknown")
    )
    return local.unionByName(named)


def judge_incoming(night: Night, inputs: LegInputs, settings) -> DataFrame:
    """`candidates` with `verdict` (matched | spoofed | not_judged) and `reason` (why not judged).
    A leg presenting a whitelisted subscriber's number is not judged (its own records are not read);
    a protected number is spoofed outright, whitelisted (a bank's registered line) or not."""
    legs = candidates(night, inputs, settings.protected)
    listed = F.broadcast(night.whitelist.select(F.col("number").alias("presented"), F.lit(True).alias("listed")))
    legs = legs.join(listed, "presented", "left")
    incomplete = list(inputs.incomplete)
    not_complete = (
        (F.exists("owners", lambda c: c.isin(incomplete)) | (F.col("owner_unknown") & F.lit(bool(incomplete))))
        if incomplete
        else F.lit(False)
    )
    before = F.when(F.col("listed") & F.col("protected").isNull(), F.lit(WHITELISTED)).when(
        F.col("protected").isNull() & not_complete, F.lit(CARRIER_NOT_COMPLETE)
    )
    legs = legs.withColumn("reason", before)

    to_match = legs.where(F.col("reason").isNull() & F.col("protected").isNull())
    unmatched = to_match.alias("i").join(inputs.outgoing.alias("o"), _pairs(settings), "left_anti")
    matched = to_match.join(
        unmatched.select("record_id", "carrier", F.lit(True).alias("unmatched")), ["record_id", "carrier"], "left"
    )
    judged = matched.withColumn("verdict", F.when(F.col("unmatched"), F.lit("spoofed")).otherwise(F.lit("matched")))
    judged = _excused(night.day, judged, inputs, settings)
    rest = legs.where(F.col("reason").isNotNull() | F.col("protected").isNotNull()).withColumn(
        "verdict", F.when(F.col("reason").isNotNull(), F.lit("not_judged")).otherwise(F.lit("spoofed"))
    )
    return judged.drop("unmatched").unionByName(rest).select(*JUDGED_COLUMNS)


def _pairs(settings) -> Column:
    """An outgoing leg `o` that is the twin of an incoming leg: the presented number placed it to
    the receiver, same service, close in time, durations consistent."""
    seconds = F.abs(F.unix_timestamp("i.start_time") - F.unix_timestamp("o.start_time"))
    longer = F.greatest(F.col("i.duration_s"), F.col("o.duration_s"))
    slack = F.greatest(F.lit(settings.duration_tolerance_s), longer * settings.duration_tolerance_share)
    return (
        (F.col("i.presented") == F.col("o.msisdn"))
        & (F.col("i.receiver") == F.col("o.other_party"))
        & (F.col("i.service") == F.col("o.service"))
        & (seconds <= settings.tolerance_s)
        & (F.abs(F.col("i.duration_s") - F.col("o.duration_s")) <= slack)
    )


def _excused(day: dt.date, judged: DataFrame, inputs: LegInputs, settings) -> DataFrame:
    """Unmatched legs whose twin may simply not be in the lake become not judged: near midnight
    without the owner's neighbouring day, or a quarantined line of the owner mentioning either party."""
    tolerance = settings.tolerance_s

    def have_all(carriers: frozenset[str]) -> Column:
        known = list(carriers)
        covered = F.forall("owners", lambda c: c.isin(known)) if known else F.size("owners") == 0
        return covered & ~F.col("owner_unknown")

    start = local_time(day, F.lit(0))
    end = local_time(day + dt.timedelta(days=1), F.lit(0))
    early = F.col("start_time") < F.timestamp_add("SECOND", F.lit(tolerance), start)
    late = F.col("start_time") >= F.timestamp_add("SECOND", F.lit(-tolerance), end)
    near = (early & ~have_all(inputs.previous_day)) | (late & ~have_all(inputs.next_day))
    spoofed = F.col("verdict") == "spoofed"
    judged = judged.withColumn("reason", F.when(spoofed & near, F.lit(NEAR_MIDNIGHT)).otherwise(F.col("reason")))
    if inputs.mentions is not None:
        mentions = F.broadcast(inputs.mentions.select(F.col("carrier").alias("m_carrier"), "key"))
        p, r = F.substring("presented", 4, 11), F.substring("receiver", 4, 11)  # +8613912345678 -> 13912345678
        keys = [p, r, F.concat_ws("|", F.least(p, r), F.greatest(p, r))]
        mentioned = (
            judged.where(spoofed & F.col("reason").isNull())
            .join(
                mentions,
                F.col("key").isin(*keys) & (F.array_contains("owners", F.col("m_carrier")) | F.col("owner_unknown")),
                "left_semi",
            )
            .select("record_id", "carrier", F.lit(True).alias("mentioned"))
        )
        judged = (
            judged.join(mentioned, ["record_id", "carrier"], "left")
            .withColumn("reason", F.when(F.col("mentioned"), F.lit(QUARANTINED)).otherwise(F.col("reason")))
            .drop("mentioned")
        )
    return judged.withColumn(
        "verdict", F.when(F.col("reason").isNotNull(), F.lit("not_judged")).otherwise(F.col("verdict"))
    )


def quarantine_mentions(quarantine: DataFrame) -> DataFrame:
    """(carrier, key) for every quarantined line that may be a lost leg between two local mobiles: the
    key is the two national numbers it mentions ('a|b', sorted) when it mentions several (every pair),
    or the one it mentions when the other was cut off or emptied. Numbers in any written form
    (13912345678, 86…, +86…, 0086…)."""
    runs = F.regexp_extract_all(F.coalesce(F.col("raw"), F.lit("")), F.lit(r"([0-9]{11,})"), 1)
    nationals = F.filter(
        F.array_distinct(F.transform(runs, lambda run: F.substring(run, -11, 11))),
        lambda n: n.rlike(NATIONAL_MOBILE),
    )
    lines = quarantine.select("carrier", F.array_sort(nationals).alias("ns")).where(F.size("ns") > 0)
    singles = lines.where(F.size("ns") == 1).select("carrier", F.col("ns")[0].alias("key"))
    pairs = (
        lines.where(F.size("ns") > 1)
        .select("carrier", "ns", F.explode("ns").alias("a"))
        .select("carrier", "a", F.explode("ns").alias("b"))
        .where(F.col("a") < F.col("b"))
        .select("carrier", F.concat_ws("|", "a", "b").alias("key"))
    )
    return singles.unionByName(pairs).distinct()


def in_pairs(pairs) -> Column:
    """Whether a leg's (carrier, owner_carrier) is one of `pairs`."""
    condition = F.lit(False)
    for carrier, owners in pairs:
        condition = condition | ((F.col("carrier") == carrier) & (F.col("owner_carrier") == owners))
    return condition


def flags_of(spoofed: DataFrame, long_call_s: int) -> DataFrame:
    """One flag per presented number from its spoofed legs: more receivers, more answered calls, a
    protected number -> higher. The owner of a subscriber's number is named as the one impersonated."""
    answered = (F.col("service") == "voice") & (F.col("duration_s") > 0)
    per = spoofed.groupBy("presented").agg(
        F.count("*").alias("legs"),
        F.countDistinct("receiver").alias("receivers"),
        F.count_if(answered).alias("answered"),
        F.count_if(answered & (F.col("duration_s") >= long_call_s)).alias("long"),
        F.first("protected", ignorenulls=True).alias("protected"),
        F.first("owner_carrier", ignorenulls=True).alias("owner"),
        F.min("start_time").alias("window_start"),
        F.max("start_time").alias("window_end"),
        F.array_sort(F.collect_set("campaign_id")).alias("campaigns"),
    )
    base = F.when(F.col("protected").isNotNull(), F.lit(0.9)).otherwise(F.lit(0.5))
    score = base + 0.05 * F.least(F.col("receivers") - 1, F.lit(4)) + 0.05 * F.least(F.col("long"), F.lit(2))
    whose = F.when(
        F.col("protected").isNotNull(), F.concat(F.lit("protected number ("), F.col("protected"), F.lit(")"))
    ).otherwise(
        F.concat(
            F.lit("the number of a local subscriber of "),
            F.col("owner"),
            F.lit(", who did not place these calls: a victim of impersonation, not a suspect"),
        )
    )
    evidence = F.format_string(
        "shown to %d receiver(s) on %d incoming leg(s) (%d answered, %d long) that no carrier placed (campaign %s): %s",
        "receivers",
        "legs",
        "answered",
        "long",
        F.array_join("campaigns", ", "),
        whose,
    )
    return per.select(
        F.lit("presented").alias("entity_type"),
        F.col("presented").alias("entity_id"),
        score.alias("score"),
        evidence.alias("evidence"),
        "window_start",
        "window_end",
    )


class CallerIdSpoofing(Detector):
    """Presented numbers of incoming legs that no carrier placed (see the module docstring).

    `detect` judges the night once (`jobs.spoofing.judge_night`: it needs the lake around the night,
    and groups the legs into campaigns) and hands the spoofed legs over as `night.spoofed`; a night
    built in a notebook without them is judged here from its own rows."""

    name = "spoofing"

    def flags(self, night: Night) -> DataFrame:
        spoofed = night.spoofed
        if spoofed is None:
            judged = judge_incoming(night, night_inputs(night), self.settings)
            spoofed = guarded(judged.withColumn("owner_carrier", owner_carrier()), self.settings).withColumn(
                "campaign_id", F.lit("")
            )
        return flags_of(spoofed, self.settings.long_call_s)


def guarded(judged: DataFrame, settings) -> DataFrame:
    """The spoofed legs of `judged`, without those of the carrier pairs `guard_pairs` would drop
    (the same rule, in Spark)."""
    per = (
        judged.where(F.col("protected").isNull() & (F.col("verdict") != "not_judged"))
        .groupBy("carrier", "owner_carrier")
        .agg(F.count("*").alias("judged"), F.count_if(F.col("verdict") == "spoofed").alias("unmatched"))
    )
    lost = per.where(
        (F.col("unmatched") >= settings.guard_min_legs)
        & (F.col("unmatched") > settings.max_unmatched_share * F.col("judged"))
    )
    spoofed = judged.where(F.col("verdict") == "spoofed")
    return spoofed.where(F.col("protected").isNotNull()).unionByName(
        spoofed.where(F.col("protected").isNull()).join(
            lost.select("carrier", "owner_carrier"), ["carrier", "owner_carrier"], "left_anti"
        )
    )
