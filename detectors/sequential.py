"""Sequential dialling: SIMs that sweep a number segment, number after number.

A den buys or guesses a number segment (139-1234-xxxx) and works through it: each SIM dialling
its own run 0000, 0001, 0002 … (per-SIM), a den's SIMs dealing one list round-robin (each SIM
steps by the number of SIMs, the group by 1), or blocks of 50–200 consecutive numbers shuffled and
dealt out (the order is gone, the density is not). Ordinary subscribers never call a dense block of
strangers' numbers: their callees are a few numbers scattered over the city's segments, and even a
sorted customer list skips the many numbers that are not customers.

Looked at: outgoing calls and SMS to mobiles (+861…); segment = the 7 digits after +86, suffix = the
last 4. The night is cut into windows of `window_minutes` from local midnight; a SIM's calls in a
window count at its home site (where it placed most of them), so a den SIM that sends some calls
through the neighbouring mast stays with its den, and SIMs of all carriers meet on one `site_key`.

1. **ranges** – per (site, segment, window) the callees sorted by suffix, split wherever two
   neighbours are more than `max_gap` apart: every dense stretch of dialled numbers is a range (a
   per-SIM den leaves one range per SIM and window; a resident's odd call is a range of one).
2. **sweeps** – ranges with at least `min_run` distinct callees and coverage (distinct callees /
   numbers in the span) of at least `min_coverage`. How it was dialled: round-robin when at least
   `min_order` of the range's steps in time order go up by 1..`max_step` and two or more swept SIMs
   (step 3) dialled it; per-SIM when at least `min_order` of each SIM's own steps go up by
   1..`max_step` × the range's SIM count; otherwise shuffled blocks.
3. **swept SIMs** – a SIM whose calls into the window's sweeps are at least `min_sim_calls` and at
   least `min_sim_share` of all its outgoing calls in that window. Both keep out residents living
   at a den's site who call a number inside the swept range (one or two calls, among others).

Score of a swept SIM in a window (each part in 0..1, rounded to 3 decimals):

    0.3 × coverage of its main sweep (the one it put most calls into)
  + 0.2 × order of that sweep (the larger of the round-robin and per-SIM in-order shares)
  + 0.3 × share of its outgoing calls in the window that went into sweeps
  + 0.2 × min(1, its swept calls in the window / 100)

On the simulated week a den SIM dialling in order scores 0.97–1.0, one dealing shuffled blocks
0.6–0.7. A SIM swept in several windows gets one flag: its highest-scoring window (the earliest on a
tie), with the day's swept calls over all its windows. Its evidence names the segment, how many of
the span's numbers were dialled, how, when, at which site, by how many SIMs, and this SIM's part;
its columns carry what the dens step needs: `site_key` (the home site, null when its cell is not in
the inventory), `segment`, `range_lo`/`range_hi` (E.164), `pattern` (how it was dialled, the
evidence's words) and the window (`window_start`, `window_end`).
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from detectors.base import Detector, Night, local_time
from detectors.rules.sequential import (
    FULL_VOLUME_CALLS,
    MINUTES_PER_DAY,
    MOBILE_CALLEE,
    RANGE,
    W_COVERAGE,
    W_ORDER,
    W_SHARE,
    W_VOLUME,
)


class SequentialDialling(Detector):
    """Flags SIMs (msisdn) that sweep a number segment, in order or in shuffled blocks."""

    name = "sequential"

    def flags(self, night: Night) -> DataFrame:
        s = self.settings
        calls = (
            night.cdr.where(F.col("direction") == "out")
            .withColumn("window_start", _window_start(F.col("start_time"), s.window_minutes))
            .transform(with_home_site)
            .transform(dialled_mobiles)
            .transform(lambda df: with_ranges(df, s.max_gap))
        )
        return strongest_window(swept_sims(sweeps(calls, s), s), s.window_minutes, night.day)


def _window_start(start_time: Column, minutes: int) -> Column:
    """Minute of the local day at which the call's window opens (windows aligned to midnight)."""
    minute_of_day = F.hour(start_time) * 60 + F.minute(start_time)
    return (F.floor(minute_of_day / minutes) * minutes).cast("int")


def with_home_site(outgoing: DataFrame) -> DataFrame:
    """`site`, `site_label`, `home_site_key`: where the SIM placed most of its outgoing calls in the
    window; `out_calls`: all of them. A den's SIM on a single-sector carrier sends some calls out
    through the neighbouring mast; counting them at its home site keeps the den's range whole. An
    unknown cell is its own site (`home_site_key` null: it is no physical site)."""
    sim_window = Window.partitionBy("msisdn", "window_start")
    own_site = F.coalesce("site_key", F.concat_ws(":", F.lit("cell"), "carrier", "cell_id"), F.lit("unknown"))
    # busiest, then by name; site_key follows from own_site, so it never decides
    home = F.max(F.struct("site_calls", "own_site", "own_label", "site_key")).over(sim_window)
    return (
        outgoing.withColumn("own_site", own_site)
        .withColumn("own_label", F.coalesce("site_label", "cell_id", F.lit("an unknown cell")))
        .withColumn("site_calls", F.count("*").over(Window.partitionBy("msisdn", "window_start", "own_site")))
        .withColumn("out_calls", F.count("*").over(sim_window))
        .withColumn("home", home)
        .withColumn("site", F.col("home.own_site"))
        .withColumn("site_label", F.col("home.own_label"))
        .withColumn("home_site_key", F.col("home.site_key"))
        .drop("own_site", "own_label", "site_calls", "home")
    )


def dialled_mobiles(outgoing: DataFrame) -> DataFrame:
    """Outgoing calls/SMS to mobiles with the callee's segment (7 digits after +86) and suffix."""
    return outgoing.where(F.col("other_party").rlike(MOBILE_CALLEE)).select(
        "msisdn",
        "start_time",
        "window_start",
        "site",
        "site_label",
        "home_site_key",
        "out_calls",
        F.substring("other_party", 4, 7).alias("segment"),
        F.substring("other_party", 11, 4).cast("int").alias("suffix"),
    )


def with_ranges(calls: DataFrame, max_gap: int) -> DataFrame:
    """`range_id`: dense stretches of suffixes per (site, segment, window), split at gaps > max_gap."""
    by_suffix = Window.partitionBy("site", "segment", "window_start").orderBy("suffix", "start_time", "msisdn")
    gap = F.col("suffix") - F.lag("suffix").over(by_suffix)
    starts = F.when(gap.isNull() | (gap > max_gap), 1).otherwise(0)
    return (
        calls.withColumn("_new", starts)
        .withColumn("range_id", F.sum("_new").over(by_suffix.rowsBetween(Window.unboundedPreceding, 0)))
        .drop("_new")
    )


def sweeps(calls: DataFrame, s) -> DataFrame:
    """One row per SIM and range that is a sweep: the SIM's calls into it, and the range's size,
    span, coverage and in-order shares. (All windows here are partitioned within one
    (site, segment, window), so the call rows are shuffled once.)"""
    in_range = Window.partitionBy(*RANGE)
    stepped = (
        calls.withColumn(
            "step", F.col("suffix") - F.lag("suffix").over(in_range.orderBy("start_time", "suffix", "msisdn"))
        )
        .withColumn(
            "sim_step",
            F.col("suffix")
            - F.lag("suffix").over(Window.partitionBy(*RANGE, "msisdn").orderBy("start_time", "suffix")),
        )
        .withColumn(
            "first_dial", F.row_number().over(Window.partitionBy(*RANGE, "suffix").orderBy("start_time", "msisdn")) == 1
        )
        .withColumn("range_sims", F.max(F.dense_rank().over(in_range.orderBy("msisdn"))).over(in_range))
    )
    per_sim = stepped.groupBy(*RANGE, "msisdn").agg(
        F.count("*").alias("sim_calls"),
        F.max("out_calls").alias("out_calls"),
        F.sum(F.col("first_dial").cast("int")).alias("new_numbers"),
        F.min("suffix").alias("sim_lo"),
        F.max("suffix").alias("sim_hi"),
        _count_up(F.col("step"), F.lit(s.max_step)).alias("group_up"),
        F.count("step").alias("group_steps"),
        _count_up(F.col("sim_step"), F.col("range_sims") * s.max_step).alias("sim_up"),
        F.count("sim_step").alias("sim_steps"),
        F.min("start_time").alias("sim_first"),
        F.max("start_time").alias("sim_last"),
        F.min("site_label").alias("site_label"),
        F.min("home_site_key").alias("site_key"),
    )
    total = lambda column: F.sum(column).over(in_range)  # noqa: E731
    return (
        per_sim.withColumn("distinct", total("new_numbers"))
        .withColumn("lo", F.min("sim_lo").over(in_range))
        .withColumn("hi", F.max("sim_hi").over(in_range))
        .withColumn("coverage", F.col("distinct") / (F.col("hi") - F.col("lo") + 1))
        .where((F.col("distinct") >= s.min_run) & (F.col("coverage") >= s.min_coverage))
        .withColumn("group_order", F.coalesce(F.try_divide(total("group_up"), total("group_steps")), F.lit(0.0)))
        .withColumn("sim_order", F.coalesce(F.try_divide(total("sim_up"), total("sim_steps")), F.lit(0.0)))
        .withColumn("order", F.greatest("group_order", "sim_order"))
        .withColumn("first_call", F.min("sim_first").over(in_range))
        .withColumn("last_call", F.max("sim_last").over(in_range))
        .withColumn("site_label", F.min("site_label").over(in_range))
    )


def _count_up(step: Column, most: Column) -> Column:
    """Steps that go up by 1..most."""
    return F.sum(F.when((step > 0) & (step <= most), 1).otherwise(0))


def swept_sims(per_sim: DataFrame, s) -> DataFrame:
    """One row per SIM and window in which the SIM's calls went mostly into sweeps, with its score
    and its main sweep (the one it put most calls into)."""
    sim_window = Window.partitionBy("msisdn", "window_start")
    per_sim = (
        per_sim.withColumn("swept_calls", F.sum("sim_calls").over(sim_window))
        .withColumn("share", F.col("swept_calls") / F.col("out_calls"))
        .withColumn("swept", (F.col("swept_calls") >= s.min_sim_calls) & (F.col("share") >= s.min_sim_share))
    )
    # the SIMs that swept a range: a resident's odd calls into it do not make it round-robin
    per_sim = per_sim.withColumn("dialling_sims", F.sum(F.col("swept").cast("int")).over(Window.partitionBy(*RANGE)))
    mode = (
        F.when((F.col("group_order") >= s.min_order) & (F.col("dialling_sims") > 1), F.lit("round_robin"))
        .when(F.col("order") >= s.min_order, F.lit("per_sim"))
        .otherwise(F.lit("shuffled"))
    )
    volume = F.least(F.lit(1.0), F.col("swept_calls") / FULL_VOLUME_CALLS)
    return (
        per_sim.where("swept")
        .withColumn("_rank", F.row_number().over(sim_window.orderBy(F.desc("sim_calls"), *RANGE)))
        .where(F.col("_rank") == 1)
        .drop("_rank")
        .withColumn("mode", mode)
        .withColumn("site_sims", F.count("*").over(Window.partitionBy("site", "window_start")))
        .withColumn(
            "score",
            F.round(
                W_COVERAGE * F.col("coverage")
                + W_ORDER * F.col("order")
                + W_SHARE * F.col("share")
                + W_VOLUME * volume,
                3,
            ),
        )
    )


def strongest_window(per_window: DataFrame, window_minutes: int, day: date) -> DataFrame:
    """One flag per SIM: its highest-scoring window, with the day's swept calls in all windows, and
    the columns of its main sweep in that window (FLAG's details)."""
    sim = Window.partitionBy("msisdn")
    best = (
        per_window.withColumn("total_swept", F.sum("swept_calls").over(sim))
        .withColumn("windows", F.count("*").over(sim))
        .withColumn("_rank", F.row_number().over(sim.orderBy(F.desc("score"), "window_start")))
        .where(F.col("_rank") == 1)
    )
    number = lambda suffix: F.format_string("+86%s%04d", F.col("segment"), F.col(suffix))  # noqa: E731
    return best.select(
        F.lit("msisdn").alias("entity_type"),
        F.col("msisdn").alias("entity_id"),
        F.col("score").cast("double").alias("score"),
        _evidence(window_minutes).alias("evidence"),
        "site_key",
        "segment",
        number("lo").alias("range_lo"),
        number("hi").alias("range_hi"),
        _dialling().alias("pattern"),
        local_time(day, F.col("window_start")).alias("window_start"),
        local_time(day, _window_end(window_minutes)).alias("window_end"),
    )


def _clock(minute_of_day: Column) -> Column:
    """'09:00' for minute 540 of the day."""
    return F.format_string("%02d:%02d", F.floor(minute_of_day / 60).cast("int"), (minute_of_day % 60).cast("int"))


def _dialling() -> Column:
    """How the range was dialled: 'in ascending order round-robin by 13 SIMs' (the `pattern` column)."""
    sims = F.col("dialling_sims")
    return (
        F.when(F.col("mode") == "round_robin", F.format_string("in ascending order round-robin by %d SIMs", sims))
        .when((F.col("mode") == "per_sim") & (sims <= 1), F.lit("in ascending order by this SIM alone"))
        .when(F.col("mode") == "per_sim", F.format_string("in ascending order, each of %d SIMs its own run", sims))
        .when(sims <= 1, F.lit("in shuffled blocks by this SIM alone"))
        .otherwise(F.format_string("in shuffled blocks by %d SIMs", sims))
    )


def _window_end(window_minutes: int) -> Column:
    """Minute of the day at which the window closes (the last one closes at midnight)."""
    return F.least(F.col("window_start") + window_minutes, F.lit(MINUTES_PER_DAY))


def _evidence(window_minutes: int) -> Column:
    """'398 of the 412 numbers 139-1234-0000…0411 dialled in ascending order round-robin by 13 SIMs
    09:02–11:58 at 锦江区128号基站 (13 SIMs swept there 09:00–12:00); this SIM placed 31 of the calls,
    94% of its outgoing calls in that window; 187 swept calls in 3 windows today'"""
    how, window_end = _dialling(), _window_end(window_minutes)
    return F.format_string(
        "%d of the %d numbers %s-%s-%04d…%04d dialled %s %s–%s at %s (%d SIM%s swept there %s–%s); "
        "this SIM placed %d of the calls, %d%% of its outgoing calls in that window; "
        "%d swept calls in %d window%s today",
        F.col("distinct"),
        F.col("hi") - F.col("lo") + 1,
        F.substring("segment", 1, 3),
        F.substring("segment", 4, 4),
        F.col("lo"),
        F.col("hi"),
        how,
        F.date_format("first_call", "HH:mm"),
        F.date_format("last_call", "HH:mm"),
        F.col("site_label"),
        F.col("site_sims"),
        F.when(F.col("site_sims") == 1, "").otherwise("s"),
        _clock(F.col("window_start")),
        _clock(window_end),
        F.col("sim_calls"),
        F.round(F.col("share") * 100).cast("int"),
        F.col("total_swept"),
        F.col("windows"),
        F.when(F.col("windows") == 1, "").otherwise("s"),
    )
