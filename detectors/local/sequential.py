"""Sequential dialling on Polars: the port of `detectors.sequential` (read its docstring for the
ranges, sweeps, swept SIMs, the score and the evidence). The same flags, column for column: the
differential tests run both on the same nights."""

from __future__ import annotations

from datetime import datetime, time

import polars as pl

from detectors.local.base import Detector, LocalNight, local, spark_round
from detectors.local.text import clock
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

c = pl.col
SIM_WINDOW = ["msisdn", "window_start"]
SITE_WINDOW = ["site", "segment", "window_start"]
# Spark's rlike is Java's find: its `$` also matches before one line terminator ending the text
JAVA_END = r"(?:\r\n|[\n\r\x{85}\x{2028}\x{2029}])?$"


class SequentialDialling(Detector):
    """Flags SIMs (msisdn) that sweep a number segment, in order or in shuffled blocks."""

    name = "sequential"

    def flags(self, night: LocalNight) -> pl.DataFrame:
        s = self.settings
        outgoing = night.cdr.filter(c("direction") == "out").with_columns(
            _window_start(c("start_time"), s.window_minutes, night.timezone)
        )
        calls = with_ranges(dialled_mobiles(with_home_site(outgoing)), s.max_gap)
        per_window = swept_sims(sweeps(calls, s), s)
        return strongest_window(per_window, s.window_minutes, night).collect()


def _window_start(start_time: pl.Expr, minutes: int, timezone: str) -> pl.Expr:
    """Minute of the local day at which the call's window opens (windows aligned to midnight)."""
    wall = local(start_time, timezone)
    minute_of_day = wall.dt.hour().cast(pl.Int32) * 60 + wall.dt.minute().cast(pl.Int32)
    return (minute_of_day // minutes * minutes).alias("window_start")


def with_home_site(outgoing: pl.LazyFrame) -> pl.LazyFrame:
    """`site`, `site_label`, `home_site_key` (the SIM's busiest site in the window, then the
    largest name: Spark's max of the struct) and `out_calls` (all its outgoing calls there)."""
    cell = pl.concat_str(pl.lit("cell"), c("carrier"), c("cell_id"), separator=":", ignore_nulls=True)
    keyed = outgoing.with_columns(
        pl.coalesce(c("site_key"), cell, pl.lit("unknown")).alias("own_site"),
        pl.coalesce(c("site_label"), c("cell_id"), pl.lit("an unknown cell")).alias("own_label"),
    ).with_columns(
        pl.len().over(*SIM_WINDOW, "own_site").alias("site_calls"),
        pl.len().over(SIM_WINDOW).cast(pl.Int64).alias("out_calls"),
    )
    home = (
        keyed.group_by(SIM_WINDOW)
        .agg(
            pl.struct(
                c("own_site").alias("site"), c("own_label").alias("site_label"), c("site_key").alias("home_site_key")
            )
            .sort_by("site_calls", "own_site", "own_label", "site_key", nulls_last=False)
            .last()
            .alias("home")
        )
        .unnest("home")
    )
    return keyed.drop("site_label", "own_site", "own_label", "site_calls").join(home, on=SIM_WINDOW, how="left")


def dialled_mobiles(outgoing: pl.LazyFrame) -> pl.LazyFrame:
    """Outgoing calls/SMS to mobiles with the callee's segment (7 digits after +86) and suffix."""
    callee = c("other_party")
    return outgoing.filter(callee.str.contains(MOBILE_CALLEE.removesuffix("$") + JAVA_END)).select(
        "msisdn",
        "start_time",
        "window_start",
        "site",
        "site_label",
        "home_site_key",
        "out_calls",
        callee.str.slice(3, 7).alias("segment"),
        callee.str.slice(10, 4).cast(pl.Int32).alias("suffix"),
    )


def with_ranges(calls: pl.LazyFrame, max_gap: int) -> pl.LazyFrame:
    """`range_id` (1, 2, … in suffix order): dense stretches of suffixes per (site, segment, window),
    split at gaps > max_gap. Rows that tie in Spark's order have the same suffix: the same range."""
    gap = c("suffix").diff().over(SITE_WINDOW)
    return (
        calls.sort(*SITE_WINDOW, "suffix", "start_time", "msisdn")
        .with_columns((gap.is_null() | (gap > max_gap)).cast(pl.Int64).alias("_new"))
        .with_columns(c("_new").cum_sum().over(SITE_WINDOW).alias("range_id"))
        .drop("_new")
    )


def _count_up(step: pl.Expr, most: pl.Expr) -> pl.Expr:
    """Steps that go up by 1..most."""
    return ((step > 0) & (step <= most)).fill_null(False).cast(pl.Int64).sum()


def _ratio(part: pl.Expr, whole: pl.Expr) -> pl.Expr:
    """coalesce(try_divide(part, whole), 0.0)."""
    return pl.when(whole != 0).then(part / whole).otherwise(pl.lit(0.0))


def sweeps(calls: pl.LazyFrame, s) -> pl.LazyFrame:
    """One row per SIM and range that is a sweep (see `detectors.sequential.sweeps`). One sort by
    (start_time, suffix, msisdn) gives each of Spark's orders within its partition; rows that tie in
    it are the same SIM dialling the same suffix, so the sums per SIM do not depend on the tie."""
    stepped = calls.sort(*RANGE, "start_time", "suffix", "msisdn").with_columns(
        c("suffix").diff().over(RANGE).alias("step"),
        c("suffix").diff().over(*RANGE, "msisdn").alias("sim_step"),
        (pl.int_range(pl.len()).over(*RANGE, "suffix") == 0).alias("first_dial"),
        c("msisdn").n_unique().over(RANGE).cast(pl.Int64).alias("range_sims"),
    )
    per_sim = stepped.group_by(*RANGE, "msisdn").agg(
        pl.len().cast(pl.Int64).alias("sim_calls"),
        c("out_calls").max(),
        c("first_dial").cast(pl.Int64).sum().alias("new_numbers"),
        c("suffix").min().alias("sim_lo"),
        c("suffix").max().alias("sim_hi"),
        _count_up(c("step"), pl.lit(s.max_step)).alias("group_up"),
        c("step").count().cast(pl.Int64).alias("group_steps"),
        _count_up(c("sim_step"), c("range_sims") * s.max_step).alias("sim_up"),
        c("sim_step").count().cast(pl.Int64).alias("sim_steps"),
        c("start_time").min().alias("sim_first"),
        c("start_time").max().alias("sim_last"),
        c("site_label").min(),
        c("home_site_key").min().alias("site_key"),
    )

    def total(name: str) -> pl.Expr:
        return c(name).sum().over(RANGE)

    return (
        per_sim.with_columns(
            total("new_numbers").alias("distinct"),
            c("sim_lo").min().over(RANGE).alias("lo"),
            c("sim_hi").max().over(RANGE).alias("hi"),
        )
        .with_columns((c("distinct") / (c("hi") - c("lo") + 1)).alias("coverage"))
        .filter((c("distinct") >= s.min_run) & (c("coverage") >= s.min_coverage))
        .with_columns(
            _ratio(total("group_up"), total("group_steps")).alias("group_order"),
            _ratio(total("sim_up"), total("sim_steps")).alias("sim_order"),
            c("sim_first").min().over(RANGE).alias("first_call"),
            c("sim_last").max().over(RANGE).alias("last_call"),
            c("site_label").min().over(RANGE),
        )
        .with_columns(pl.max_horizontal("group_order", "sim_order").alias("order"))
    )


def swept_sims(per_sim: pl.LazyFrame, s) -> pl.LazyFrame:
    """One row per SIM and window in which its calls went mostly into sweeps: its main sweep (most
    calls, then the smallest RANGE key: one row per RANGE and SIM, so no ties), mode and score."""
    mode = (
        pl.when((c("group_order") >= s.min_order) & (c("dialling_sims") > 1))
        .then(pl.lit("round_robin"))
        .when(c("order") >= s.min_order)
        .then(pl.lit("per_sim"))
        .otherwise(pl.lit("shuffled"))
    )
    volume = pl.min_horizontal(pl.lit(1.0), c("swept_calls") / FULL_VOLUME_CALLS)
    score = W_COVERAGE * c("coverage") + W_ORDER * c("order") + W_SHARE * c("share") + W_VOLUME * volume
    return (
        per_sim.with_columns(c("sim_calls").sum().over(SIM_WINDOW).alias("swept_calls"))
        .with_columns((c("swept_calls") / c("out_calls")).alias("share"))
        .with_columns(((c("swept_calls") >= s.min_sim_calls) & (c("share") >= s.min_sim_share)).alias("swept"))
        .with_columns(c("swept").cast(pl.Int64).sum().over(RANGE).alias("dialling_sims"))
        .filter(c("swept"))
        .sort(*SIM_WINDOW, "sim_calls", *RANGE, descending=[False, False, True, *[False] * len(RANGE)])
        .unique(subset=SIM_WINDOW, keep="first", maintain_order=True)
        .with_columns(mode.alias("mode"), pl.len().over("site", "window_start").cast(pl.Int64).alias("site_sims"))
        .with_columns(spark_round(score, 3).alias("score"))
    )


def strongest_window(per_window: pl.LazyFrame, window_minutes: int, night: LocalNight) -> pl.LazyFrame:
    """One flag per SIM: its highest-scoring window (the earliest on a tie), with the day's swept
    calls in all windows, and its main sweep's columns in that window (FLAG's details)."""
    best = (
        per_window.with_columns(
            c("swept_calls").sum().over("msisdn").alias("total_swept"),
            pl.len().over("msisdn").cast(pl.Int64).alias("windows"),
        )
        .sort("msisdn", "score", "window_start", descending=[False, True, False])
        .unique(subset="msisdn", keep="first", maintain_order=True)
    )

    def number(suffix: str) -> pl.Expr:
        return pl.concat_str(pl.lit("+86"), c("segment"), _digits(c(suffix), 4))

    return best.select(
        pl.lit("msisdn").alias("entity_type"),
        c("msisdn").alias("entity_id"),
        c("score").cast(pl.Float64),
        _evidence(window_minutes, night.timezone).alias("evidence"),
        "site_key",
        "segment",
        number("lo").alias("range_lo"),
        number("hi").alias("range_hi"),
        _dialling().alias("pattern"),
        _local_time(night, c("window_start")).alias("window_start"),
        _local_time(night, _window_end(window_minutes)).alias("window_end"),
    )


def _local_time(night: LocalNight, minutes: pl.Expr) -> pl.Expr:
    """`detectors.base.local_time`: local midnight of the day (as an instant) + `minutes`."""
    midnight = pl.lit(datetime.combine(night.day, time()), pl.Datetime("us")).dt.replace_time_zone(
        night.timezone, ambiguous="earliest"
    )
    return (midnight.dt.convert_time_zone("UTC") + pl.duration(minutes=minutes)).cast(pl.Datetime("us", "UTC"))


def _digits(n: pl.Expr, width: int) -> pl.Expr:
    """Java's `%0<width>d` of a non-negative integer."""
    return n.cast(pl.String).str.zfill(width)


def _clock(minute_of_day: pl.Expr) -> pl.Expr:
    """'09:00' for minute 540 of the day ('24:00' for the last window's end)."""
    return pl.format("{}:{}", _digits(minute_of_day // 60, 2), _digits(minute_of_day % 60, 2))


def _dialling() -> pl.Expr:
    """How the range was dialled (the `pattern` column)."""
    sims, mode = c("dialling_sims"), c("mode")
    return (
        pl.when(mode == "round_robin")
        .then(pl.format("in ascending order round-robin by {} SIMs", sims))
        .when((mode == "per_sim") & (sims <= 1))
        .then(pl.lit("in ascending order by this SIM alone"))
        .when(mode == "per_sim")
        .then(pl.format("in ascending order, each of {} SIMs its own run", sims))
        .when(sims <= 1)
        .then(pl.lit("in shuffled blocks by this SIM alone"))
        .otherwise(pl.format("in shuffled blocks by {} SIMs", sims))
    )


def _window_end(window_minutes: int) -> pl.Expr:
    """Minute of the day at which the window closes (the last one closes at midnight)."""
    return pl.min_horizontal(c("window_start") + window_minutes, pl.lit(MINUTES_PER_DAY))


def _plural(n: pl.Expr) -> pl.Expr:
    return pl.when(n == 1).then(pl.lit("")).otherwise(pl.lit("s"))


def _evidence(window_minutes: int, timezone: str) -> pl.Expr:
    """The sentence of `detectors.sequential._evidence`, character for character."""
    return pl.format(
        "{} of the {} numbers {}-{}-{}…{} dialled {} {}–{} at {} ({} SIM{} swept there {}–{}); "
        "this SIM placed {} of the calls, {}% of its outgoing calls in that window; "
        "{} swept calls in {} window{} today",
        c("distinct"),
        c("hi") - c("lo") + 1,
        c("segment").str.slice(0, 3),
        c("segment").str.slice(3, 4),
        _digits(c("lo"), 4),
        _digits(c("hi"), 4),
        _dialling(),
        clock(c("first_call"), timezone),
        clock(c("last_call"), timezone),
        c("site_label"),
        c("site_sims"),
        _plural(c("site_sims")),
        _clock(c("window_start")),
        _clock(_window_end(window_minutes)),
        c("sim_calls"),
        spark_round(c("share") * 100).cast(pl.Int32),
        c("total_swept"),
        c("windows"),
        _plural(c("windows")),
    )
