"""GOIP / SIM-box gateways: many SIMs in one box (or one room), dialling strangers all day.

A box holds 8-64 SIMs behind one IMEI (or invents a fresh IMEI per SIM), never moves, places
almost only outgoing, short or unanswered calls (or SMS) to numbers it never called before, is
hardly ever called back, and fires its calls at machine-regular intervals; its SIMs are bought
the same day. Each of these is weak alone (a courier also calls strangers, a rare phone model has
a rare TAC), so a SIM's score is the capped sum of the indicators it shows:

| indicator        | condition (per SIM, over the night)                                          | weight |
|------------------|------------------------------------------------------------------------------|--------|
| `shared_device`  | its IMEI carries >= `shared_imsis` IMSIs tonight                             | 0.30   |
| `fake_imei`      | its IMEI's TAC (first 8 digits) is on <= `rare_tac_devices` devices in the   | 0.20   |
|                  | city (tonight and the history days), or the IMEI fails the Luhn check digit  |        |
| `hopping_sim`    | its IMSI shows >= `shared_imsis` different IMEIs tonight                     | 0.20   |
| `swapped_device` | its IMEI is not shared tonight but carried >= 2 IMSIs over the week (a      | 0.10   |
|                  | handset kept across SIM swaps, as in a call room)                            |        |
| `regular_gaps`   | robust CV of the gaps between its consecutive outgoing events <= `max_gap_cv`| 0.20   |
| `stationary`     | all its events on <= `max_sites` sites                                       | 0.10   |
| `outgoing_only`  | >= 90 % of its events outgoing                                               | 0.10   |
| `many_callees`   | distinct numbers called >= 80 % of its outgoing events                       | 0.10   |
| `brief_calls`    | >= 80 % of its outgoing calls unanswered (0 s) or answered <= `short_call_s` | 0.10   |
| `no_callbacks`   | >= `min_calls` distinct callees, and the numbers that rang or texted it back | 0.10   |
|                  | after it called them <= `max_callback_ratio` x its distinct callees          |        |
| `sms_blast`      | outgoing SMS to >= `min_sms_callees` distinct numbers                        | 0.10   |
| `new_sim`        | the number never appears in the history days (only when there is history)    | 0.10   |

score = min(1, sum of the weights of the indicators that fired); a SIM is flagged at >= `min_score`.
Only SIMs with at least `min_calls` outgoing events (calls and SMS) tonight are scored: below that
the rates above mean nothing, and a box SIM makes hundreds. The robust CV is
(p75 - p25) / (1.349 x median) of the gaps (the standard deviation a normal distribution with that
interquartile range would have, over the median), so a lunch break or one long victim call does
not hide the box's clock; a person's gaps have a CV near 1, a box's a few hundredths.

Behaviour alone (regular, stationary, outgoing-only, many callees, brief calls, no call-backs)
adds up to 0.7, so a box with a clean-looking IMEI is still caught; the device indicators make a
box certain. A courier calls strangers too but moves across many sites and is called back by
its customers (about 0.1-0.2); a call room's operators (human gaps, ordinary phones) reach
0.6-0.7 only when they are stationary, new or swapping SIMs.

A device (`imei`) is flagged when at least one of its SIMs is flagged and the device itself looks
like a box: >= `shared_imsis` IMSIs tonight or over the week, a TAC on <= `rare_tac_devices`
devices, or an invalid check digit. Its score is its best SIM's score. The one-SIM IMEIs of a SIM
that hops through >= `shared_imsis` IMEIs (a box inventing an IMEI per call) are not flagged one by
one: the SIM's own flag says it (`hopping_sim`), and a night's flags stay one per SIM, not per call.

Besides the evidence, a flag carries `site_key` (the SIM's main site; a device's: that of its best
SIM) and `window_start`, `window_end` (the first and last outgoing event of the SIM, or of the
device's flagged SIMs on it).
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from detectors.base import Detector, Night
from detectors.rules.simbox import (
    IMEI_PATTERN,
    IQR_PER_SD,
    MIN_BRIEF_SHARE,
    MIN_CALLEE_RATIO,
    MIN_OUT_SHARE,
    SWAP_IMSIS,
    TAC_DIGITS,
    WEIGHTS,
)


class SimBox(Detector):
    """SIMs (msisdn) and devices (imei) of GOIP / SIM-box gateways; see the module docstring."""

    name = "goip"

    def flags(self, night: Night) -> DataFrame:
        features, devices = _features(night, self.settings)
        # both are small (a row per scored SIM; per scored SIM and device) and both branches below
        # read them: computed once, not once per branch (a third of goip's time on a 2 M-row night)
        features, devices = features.localCheckpoint(eager=True), devices.localCheckpoint(eager=True)
        flagged = score_sims(features, self.settings).where(F.col("score") >= self.settings.min_score)
        sim_flags = flagged.select(
            F.lit("msisdn").alias("entity_type"),
            F.col("msisdn").alias("entity_id"),
            "score",
            sim_evidence(self.settings).alias("evidence"),
            F.col("main_site_key").alias("site_key"),
            F.col("first_out").alias("window_start"),
            F.col("last_out").alias("window_end"),
        )
        return sim_flags.unionByName(device_flags(flagged, devices, self.settings))


# --- devices ------------------------------------------------------------------------------------


def luhn_valid(imei: Column) -> Column:
    """True when `imei` is 15 digits whose last is the Luhn check digit of the first 14."""

    def digit(position: int) -> Column:
        return F.substring(imei, position, 1).try_cast("int")

    def term(position: int) -> Column:  # every second digit from the check digit leftwards is doubled
        if position % 2:
            return digit(position)
        doubled = digit(position) * 2
        return F.when(doubled > 9, doubled - 9).otherwise(doubled)

    total = reduce(lambda a, b: a + b, (term(p) for p in range(1, 16)))
    return F.coalesce(imei.rlike(IMEI_PATTERN) & (total % 10 == 0), F.lit(False))


def device_stats(night: Night, settings) -> DataFrame:
    """Per IMEI: IMSIs tonight and over the week, devices sharing its TAC in the city (tonight and
    the history days), and whether it looks invented (rare TAC, bad check digit, not 15 digits)."""
    tonight = night.cdr.where(F.col("imei").isNotNull()).select(
        "imei", F.coalesce("imsi", "msisdn").alias("imsi"), F.lit(True).alias("tonight")
    )
    earlier = night.earlier().devices.select("imei", F.col("sim").alias("imsi"), F.lit(False).alias("tonight"))
    week = tonight.unionByName(earlier).groupBy("imei", "imsi").agg(F.max("tonight").alias("tonight"))
    per_device = week.groupBy("imei").agg(
        F.sum(F.col("tonight").cast("int")).alias("imsis"), F.count("*").alias("week_imsis")
    )
    tac = F.substring("imei", 1, TAC_DIGITS)
    return (
        per_device.withColumn("tac", tac)
        .withColumn("tac_devices", F.count("*").over(Window.partitionBy("tac")))
        .withColumn("luhn_ok", luhn_valid(F.col("imei")))
        .withColumn("rare_tac", F.col("tac_devices") <= settings.rare_tac_devices)
        .withColumn("fake", F.col("rare_tac") | ~F.col("luhn_ok"))
    )


# --- SIM features -------------------------------------------------------------------------------


def sim_features(night: Night, settings) -> DataFrame:
    """One row per SIM with >= `min_calls` outgoing events tonight and everything the score and the
    evidence need (counts, shares, gap regularity, call-backs, its device, age, main site)."""
    return _features(night, settings)[0]


def _features(night: Night, settings) -> tuple[DataFrame, DataFrame]:
    """(`sim_features`, the scored SIMs' devices: one row per msisdn and imei it used tonight)."""
    rows = _scored_rows(night.cdr, settings.min_calls)
    c = F.col
    outgoing = c("direction") == "out"
    voice_out = outgoing & (c("service") == "voice")
    sms_out = outgoing & (c("service") == "sms")
    site = F.when(c("site_key").isNotNull(), F.struct(c("site_events"), c("site_key"), c("site_label")))
    counts = rows.groupBy("msisdn").agg(
        F.sum(outgoing.cast("int")).alias("n_out"),
        F.sum((~outgoing).cast("int")).alias("n_in"),
        F.sum(voice_out.cast("int")).alias("n_voice_out"),
        F.sum(sms_out.cast("int")).alias("n_sms_out"),
        _distinct(F.when(outgoing, c("other_party"))).alias("n_callees"),
        _distinct(F.when(sms_out, c("other_party"))).alias("n_sms_callees"),
        F.sum((voice_out & (c("duration_s") == 0)).cast("int")).alias("n_unanswered"),
        F.sum((voice_out & c("duration_s").between(1, settings.short_call_s)).cast("int")).alias("n_short"),
        _distinct(F.when(c("called_back"), c("other_party"))).alias("n_callbacks"),
        _distinct(c("site_key")).alias("n_sites"),
        F.max(site)["site_label"].alias("main_site"),
        F.max(site)["site_key"].alias("main_site_key"),
        _distinct(c("imei")).alias("n_imeis"),
        F.min(F.when(outgoing, c("start_time"))).alias("first_out"),
        F.max(F.when(outgoing, c("start_time"))).alias("last_out"),
        _distinct(F.when(outgoing, F.hour("start_time"))).alias("active_hours"),
        F.percentile_approx(F.when(outgoing, c("gap")), [0.25, 0.5, 0.75]).alias("gap_quartiles"),
    )
    median = c("gap_quartiles")[1]
    counts = counts.withColumn("median_gap", median).withColumn(
        "gap_cv", F.when(median > 0, (c("gap_quartiles")[2] - c("gap_quartiles")[0]) / (IQR_PER_SD * median))
    )

    devices = (
        rows.where(c("imei").isNotNull())
        .groupBy("msisdn", "imei")
        .agg(
            F.count("*").alias("records"),
            F.sum(outgoing.cast("int")).alias("out_events"),
            F.min(F.when(outgoing, c("start_time"))).alias("first_out"),
            F.max(F.when(outgoing, c("start_time"))).alias("last_out"),
        )
        .join(device_stats(night, settings), "imei")
    )
    # the SIM's most box-like IMEI: most IMSIs tonight, then most records
    device = F.max(
        F.struct("imsis", "records", "imei", "week_imsis", "tac", "tac_devices", "rare_tac", "luhn_ok", "fake")
    ).alias("device")
    device_of_sim = devices.groupBy("msisdn").agg(device).select("msisdn", "device.*").drop("records")
    features = (
        counts.drop("gap_quartiles")
        .join(device_of_sim, "msisdn", "left")
        .join(_sim_age(night), "msisdn", "left")
        .withColumn("history_from", _history_from(night))
    )
    return features, devices


def _scored_rows(cdr: DataFrame, min_calls: int) -> DataFrame:
    """The night's rows of SIMs with >= `min_calls` outgoing events, each with what only its SIM's
    other rows tell: seconds since the SIM's previous outgoing event (`gap`, outgoing rows only),
    whether it is a call-back (an incoming event from a number the SIM had called earlier), and
    how many of the SIM's events were on its site (to name the main site). One shuffle by msisdn."""
    c = F.col
    outgoing = c("direction") == "out"
    sim = Window.partitionBy("msisdn")
    in_order = sim.orderBy("start_time", "record_id")
    seconds = c("start_time").cast("long")
    previous_out = F.last(F.when(outgoing, seconds), ignorenulls=True).over(
        in_order.rowsBetween(Window.unboundedPreceding, -1)
    )
    first_called = F.min(F.when(outgoing, c("start_time"))).over(Window.partitionBy("msisdn", "other_party"))
    return (
        cdr.withColumn("sim_out", F.sum(outgoing.cast("int")).over(sim))
        .where(c("sim_out") >= min_calls)
        .withColumn("gap", F.when(outgoing, seconds - previous_out))
        .withColumn("called_back", ~outgoing & (c("start_time") > first_called))
        .withColumn("site_events", F.count("*").over(Window.partitionBy("msisdn", "site_key")))
    )


def _distinct(column: Column) -> Column:
    """Distinct non-null values in the group (collect_set: one pass, no Expand of the rows per
    distinct column as several count(DISTINCT) would need)."""
    return F.size(F.collect_set(column))


def _sim_age(night: Night) -> DataFrame:
    """The first history day each number appears on."""
    return night.earlier().sims.groupBy("msisdn").agg(F.min("date").alias("first_seen"))


def _history_from(night: Night) -> Column:
    """The first history day (null when there is no history: then no SIM can be called new)."""
    return night.earlier().sims.select(F.min("date")).scalar()


# --- score and evidence -------------------------------------------------------------------------


def indicators(settings) -> dict[str, Column]:
    """Each named indicator of the module docstring as a boolean column over `sim_features`."""
    c = F.col
    shared = c("imsis") >= settings.shared_imsis
    return {
        "shared_device": shared,
        "fake_imei": c("fake"),
        "hopping_sim": c("n_imeis") >= settings.shared_imsis,
        "swapped_device": ~shared & (c("week_imsis") >= SWAP_IMSIS),
        "regular_gaps": c("gap_cv") <= settings.max_gap_cv,
        "stationary": c("n_sites").between(1, settings.max_sites),
        "outgoing_only": c("n_out") >= MIN_OUT_SHARE * (c("n_out") + c("n_in")),
        "many_callees": c("n_callees") >= MIN_CALLEE_RATIO * c("n_out"),
        "brief_calls": (c("n_voice_out") > 0)
        & (c("n_unanswered") + c("n_short") >= MIN_BRIEF_SHARE * c("n_voice_out")),
        # the ratio means nothing for a SIM that calls a handful of numbers (an alarm panel, a fax)
        "no_callbacks": (c("n_callees") >= settings.min_calls)
        & (c("n_callbacks") <= settings.max_callback_ratio * c("n_callees")),
        "sms_blast": c("n_sms_callees") >= settings.min_sms_callees,
        "new_sim": c("history_from").isNotNull() & c("first_seen").isNull(),
    }


def score_sims(features: DataFrame, settings) -> DataFrame:
    """`features` plus one boolean column `is_<indicator>` per indicator and the capped `score`."""
    fired = {name: F.coalesce(cond, F.lit(False)) for name, cond in indicators(settings).items()}
    scored = features.select("*", *(cond.alias(f"is_{name}") for name, cond in fired.items()))
    total = reduce(lambda a, b: a + b, (F.when(F.col(f"is_{n}"), F.lit(WEIGHTS[n])).otherwise(0.0) for n in fired))
    return scored.withColumn("score", F.round(F.least(F.lit(1.0), total), 2))


def _percent(part: str, whole: str) -> Column:
    return F.round(F.col(part) * 100 / F.col(whole)).cast("int")


def _count(n: Column, noun: str) -> Column:
    """'1 SIM', '3 SIMs'."""
    return F.format_string(f"%d {noun}%s", n, F.when(n == 1, F.lit("")).otherwise(F.lit("s")))


def _span(first: str, last: str) -> Column:
    return F.concat(F.date_format(first, "HH:mm"), F.lit("–"), F.date_format(last, "HH:mm"))


def _invented_text() -> Column:
    """Why an IMEI looks invented: its TAC is (nearly) unique in the city, its check digit is wrong."""
    others = F.when(F.col("tac_devices") <= 1, F.lit("no other device")).otherwise(
        F.format_string("only %d devices", F.col("tac_devices"))
    )
    return F.concat_ws(
        ", ",
        F.when(F.col("rare_tac"), F.format_string("TAC %s on %s in the city", F.col("tac"), others)),
        F.when(~F.col("luhn_ok"), F.lit("invalid check digit")),
    )


def _traffic() -> Column:
    """'612 outgoing calls to 598 numbers 09:02–17:58 (8 active hours), 0 incoming' (calls, SMS or both)."""
    c = F.col
    what = F.concat_ws(
        " and ",
        F.when(c("n_voice_out") > 0, _count(c("n_voice_out"), "outgoing call")),
        F.when(c("n_sms_out") > 0, F.format_string("%d outgoing SMS", c("n_sms_out"))),
    )
    return F.concat(
        what,
        F.format_string(" to %d numbers ", c("n_callees")),
        _span("first_out", "last_out"),
        F.lit(" ("),
        _count(c("active_hours"), "active hour"),
        F.format_string("), %d incoming", c("n_in")),
    )


def sim_evidence(settings) -> Column:
    """One sentence: its device, what the SIM did tonight, then the indicators that fired, with values."""
    c = F.col

    def fired(name: str, text: Column) -> Column:
        return F.when(c(f"is_{name}"), text)

    invented = F.concat(F.lit(" ("), _invented_text(), F.lit(")"))
    parts = [
        fired(
            "shared_device",
            F.concat(
                F.format_string("%d SIMs share IMEI %s", c("imsis"), c("imei")),
                F.when(c("is_fake_imei"), invented).otherwise(F.lit("")),
            ),
        ),
        F.when(
            ~c("is_shared_device") & c("is_fake_imei"),
            F.concat(F.lit("IMEI "), c("imei"), F.lit(" looks invented"), invented),
        ),
        fired("hopping_sim", F.format_string("SIM seen in %d devices tonight", c("n_imeis"))),
        fired(
            "swapped_device", F.format_string("its handset %s carried %d SIMs this week", c("imei"), c("week_imsis"))
        ),
        _traffic(),
        fired(
            "brief_calls",
            F.format_string(
                "%d%% of calls unanswered, %d%% answered <= %d s",
                _percent("n_unanswered", "n_voice_out"),
                _percent("n_short", "n_voice_out"),
                F.lit(settings.short_call_s),
            ),
        ),
        fired("no_callbacks", F.format_string("called back by %d of %d callees", c("n_callbacks"), c("n_callees"))),
        fired("regular_gaps", F.format_string("gaps regular (every %d s, CV %.2f)", c("median_gap"), c("gap_cv"))),
        fired(
            "stationary",
            F.concat(
                _count(c("n_sites"), "site"),
                F.lit(" ("),
                F.when(c("n_sites") > 1, F.lit("mostly ")).otherwise(F.lit("")),
                c("main_site"),
                F.lit(")"),
            ),
        ),
        fired("sms_blast", F.format_string("SMS blast to %d numbers", c("n_sms_callees"))),
        fired("new_sim", F.lit("SIM first seen today")),
    ]
    return F.concat(F.format_string("GOIP-like SIM (score %.2f): ", c("score")), F.concat_ws("; ", *parts))


def device_flags(flagged_sims: DataFrame, devices: DataFrame, settings) -> DataFrame:
    """Devices (imei) that carry a flagged SIM and look like a box themselves; `devices` is one row
    per scored SIM and IMEI it used tonight, with `device_stats`."""
    c = F.col
    on_device = devices.join(flagged_sims.select("msisdn", "score", "main_site", "main_site_key", "n_imeis"), "msisdn")
    # a SIM hopping through IMEIs (a box inventing one per call) shows hundreds of one-SIM "devices":
    # they are the SIM's evidence (`hopping_sim`), not devices to seize, so they are not flagged one by one
    hopping = c("n_imeis") >= settings.shared_imsis
    box_like = (
        (c("imsis") >= settings.shared_imsis) | (c("week_imsis") >= settings.shared_imsis) | (c("fake") & ~hopping)
    )
    suspects = (
        on_device.where(box_like)
        .groupBy("imei")
        .agg(
            F.count("*").alias("n_flagged"),
            F.max(F.struct("score", "main_site", "main_site_key")).alias("best"),
            F.sum("out_events").alias("n_events"),
            F.min("first_out").alias("first_out"),
            F.max("last_out").alias("last_out"),
            *(
                F.first(name).alias(name)
                for name in ("imsis", "week_imsis", "tac", "tac_devices", "rare_tac", "luhn_ok", "fake")
            ),
        )
    )
    evidence = F.concat(
        F.format_string("Suspect device: IMEI %s carried ", c("imei")),
        _count(c("imsis"), "SIM"),
        F.format_string(" tonight (%d flagged GOIP-like, best score %.2f)", c("n_flagged"), c("best.score")),
        F.when(c("week_imsis") > c("imsis"), F.format_string(" and %d this week", c("week_imsis"))).otherwise(""),
        F.when(c("fake"), F.concat(F.lit("; "), _invented_text())).otherwise(""),
        F.when(
            c("n_events") > 0,
            F.concat(
                F.format_string("; %d outgoing events of flagged SIMs ", c("n_events")),
                _span("first_out", "last_out"),
                F.lit(" at "),
                c("best.main_site"),
            ),
        ).otherwise(""),
    )
    return suspects.select(
        F.lit("imei").alias("entity_type"),
        c("imei").alias("entity_id"),
        c("best.score").alias("score"),
        evidence.alias("evidence"),
        c("best.main_site_key").alias("site_key"),
        c("first_out").alias("window_start"),
        c("last_out").alias("window_end"),
    )
