"""Low-and-slow call rooms on Polars: the port of `detectors.low_slow` (read its docstring for the
room, its thresholds, the score and the evidence). The same flags, column for column: the
differential tests run both on the same nights."""

from __future__ import annotations

import polars as pl

from detectors.local.base import Detector, LocalNight, spark_round
from detectors.local.sequential import JAVA_END
from detectors.local.text import clock
from detectors.rules.low_slow import (
    ENDINGS,
    FULL_ROOM_SIMS,
    FULL_SHARED_CALLEES,
    PAIR,
    SIM_COLUMNS,
    W_BIMODAL,
    W_OVERLAP,
    W_SILENCE,
    W_SIZE,
    W_STRANGERS,
    _duration,
)
from detectors.rules.sequential import MOBILE_CALLEE

c = pl.col
# Spark's rlike is Java's find: `$` also matches before a final line terminator
MOBILE = MOBILE_CALLEE.removesuffix("$") + JAVA_END


class LowSlowRoom(Detector):
    """Flags the SIMs (msisdn) of low-and-slow call rooms; see `detectors.low_slow`."""

    name = "low_slow"

    def flags(self, night: LocalNight) -> pl.DataFrame:
        """One flag per member of every room tonight (one collect: the members' pairs are shared by
        the room's aggregates)."""
        s = self.settings
        earlier = night.earlier()
        rows = busy_rows(night.cdr, s.min_calls)
        suspects = at_shared_sites(
            with_sim_profile(callee_pairs(rows, s), home_sites(rows), s)
            .filter(c("room_like"))
            .join(_enough_history(earlier.sims, s.min_history_days), how="cross")
            .drop("_days"),
            s.min_sims,
        )
        contacts = earlier_contacts(earlier.contacts, suspects)
        members = at_shared_sites(
            with_strangers(suspects, contacts).filter(c("n_strangers") >= s.min_stranger_share * c("n_calls")),
            s.min_sims,
        ).cache()
        rooms = room_stats(members, shared_callees(members, contacts), s)
        flagged = members.select(*SIM_COLUMNS, "n_strangers").unique().join(rooms, on="site_key")
        return flagged.select(
            pl.lit("msisdn").alias("entity_type"),
            c("msisdn").alias("entity_id"),
            c("score").cast(pl.Float64),
            evidence(s, night.timezone).alias("evidence"),
            c("site_key"),
            c("room_first").alias("window_start"),
            c("room_last").alias("window_end"),
        ).collect()

    def note(self, night: LocalNight) -> str | None:
        """Says so when there is too little history to tell strangers from contacts."""
        have = night.earlier().sims.select(c("date").n_unique()).collect().item()
        need = self.settings.min_history_days
        if have >= need:
            return None
        return (
            f"no history yet ({have} of {need} days): strangers cannot be told from contacts without "
            f"earlier days, no room flagged"
        )


def _enough_history(sims: pl.LazyFrame, min_days: int) -> pl.LazyFrame:
    """One row (`_days`) when the history has >= `min_days` days, else none (cross-joined: lazy)."""
    return sims.select(c("date").n_unique().alias("_days")).filter(c("_days") >= min_days)


# --- tonight ------------------------------------------------------------------------------------


def _out_call() -> pl.Expr:
    return (
        (c("direction") == "out")
        & (c("service") == "voice")
        & c("other_party").str.contains(MOBILE).fill_null(pl.lit(False))
    )


def busy_rows(cdr: pl.LazyFrame, min_calls: int) -> pl.LazyFrame:
    """Tonight's rows of SIMs with >= `min_calls` outgoing voice calls to mobiles (`out_call`), with the
    SIM's events (`n_events`) and its events at the row's site (`site_events`)."""
    return (
        cdr.with_columns(_out_call().alias("out_call"))
        .with_columns(c("out_call").cast(pl.Int64).sum().over("msisdn").alias("sim_calls"))
        .filter(c("sim_calls") >= min_calls)
        .with_columns(
            pl.len().over("msisdn").cast(pl.Int64).alias("n_events"),
            pl.len().over("msisdn", "site_key").cast(pl.Int64).alias("site_events"),
        )
        .drop("sim_calls")
    )


def home_sites(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Per SIM its home (msisdn, home_events, site_key, site_label): Spark's max of struct(site_events,
    site_key, site_label) over the rows of its pairs (other party known) with a site, nulls smallest."""
    sited = rows.filter(c("other_party").is_not_null() & c("site_key").is_not_null())
    order = ["site_events", "site_key", "site_label"]
    return sited.group_by("msisdn").agg(
        c(name).sort_by(order, nulls_last=False).last().alias(alias)
        for name, alias in zip(order, ("home_events", "site_key", "site_label"), strict=True)
    )


def _count_if(condition: pl.Expr) -> pl.Expr:
    """Spark's count_if: rows where the condition is true (null is not)."""
    return condition.fill_null(False).cast(pl.Int64).sum()


def callee_pairs(rows: pl.LazyFrame, s) -> pl.LazyFrame:
    """One row per SIM and number it called or heard from tonight (see `detectors.low_slow.callee_pairs`;
    its home is `home_sites`)."""
    call = c("out_call")
    answered = call & (c("duration_s") > 0)
    hangup = answered & (c("duration_s") <= s.hangup_s)
    long = call & (c("duration_s") >= s.long_call_s)
    first_call = pl.when(call).then(c("start_time")).min()
    return (
        rows.filter(c("other_party").is_not_null())
        .group_by(PAIR)
        .agg(
            _count_if(call).alias("calls"),
            _count_if(answered).alias("answered"),
            _count_if(hangup).alias("hangups"),
            _count_if(long).alias("long"),
            _count_if(answered & ~hangup & ~long).alias("middle"),
            # min of struct(start_time, record_id, out_call): lexicographic, nulls first
            call.sort_by(["start_time", "record_id", "out_call"], nulls_last=False).first().alias("first_is_call"),
            first_call.alias("first_call"),
            pl.when(call).then(c("start_time")).max().alias("last_call"),
            (pl.when(c("direction") == "in").then(c("start_time")).max() > first_call)
            .fill_null(False)
            .alias("called_back"),
            c("n_events").max(),
        )
    )


def with_sim_profile(pairs: pl.LazyFrame, home: pl.LazyFrame, s) -> pl.LazyFrame:
    """Each pair with its SIM's night (`SIM_COLUMNS`) and `room_like` (see
    `detectors.low_slow.with_sim_profile`)."""
    sims = (
        pairs.group_by("msisdn")
        .agg(
            c("calls").sum().alias("n_calls"),
            _count_if(c("calls") > 0).alias("n_callees"),
            _count_if(c("called_back")).alias("n_callbacks"),
            *(c(e).sum().alias(f"n_{e}") for e in ENDINGS),
            c("first_call").min().alias("first_call_sim"),
            c("last_call").max().alias("last_call_sim"),
        )
        .join(home, on="msisdn", how="left")
    )
    room_like = (
        c("site_key").is_not_null()
        & (c("home_events") >= s.min_home_share * c("n_events"))
        & (c("n_callbacks") <= s.max_callback_ratio * c("n_callees"))
        & (c("n_answered") > 0)
        & (c("n_middle") <= s.max_middle_share * c("n_answered"))
        & (c("n_hangups") >= s.min_hangup_share * c("n_answered"))
    )
    return (
        pairs.drop("first_call", "last_call")
        .join(sims, on="msisdn")
        .rename({"first_call_sim": "first_call", "last_call_sim": "last_call"})
        .with_columns(room_like.fill_null(False).alias("room_like"))
    )


def at_shared_sites(pairs: pl.LazyFrame, min_sims: int) -> pl.LazyFrame:
    """The pairs of SIMs whose home site has >= `min_sims` SIMs among `pairs`."""
    return pairs.filter(c("msisdn").n_unique().over("site_key") >= min_sims)


# --- strangers and shared lists -----------------------------------------------------------------


def earlier_contacts(contacts: pl.LazyFrame, suspects: pl.LazyFrame) -> pl.LazyFrame:
    """(msisdn, other_party, called_before) for every number a suspect had any event with in the
    history days."""
    return (
        contacts.join(suspects.select("msisdn").unique(), on="msisdn", how="semi")
        .group_by(PAIR)
        .agg(c("called").max().alias("called_before"))
    )


def with_strangers(suspects: pl.LazyFrame, contacts: pl.LazyFrame) -> pl.LazyFrame:
    """The suspects' pairs with a call, `stranger` and the SIM's `n_strangers`."""
    known = contacts.select(*PAIR, pl.lit(True).alias("known"))
    return (
        suspects.filter(c("calls") > 0)
        .join(known, on=PAIR, how="left")
        .with_columns((c("first_is_call") & c("known").is_null()).alias("stranger"))
        .drop("known")
        .with_columns(_count_if(c("stranger")).over("msisdn").alias("n_strangers"))
    )


def shared_callees(members: pl.LazyFrame, contacts: pl.LazyFrame) -> pl.LazyFrame:
    """site_key, n_shared: the room's strangers tonight whom 2+ of its members called, tonight or in
    the history days."""
    home = members.select("msisdn", "site_key").unique()
    listed = members.filter(c("stranger").fill_null(False)).select("site_key", "other_party").unique()
    before = contacts.filter(c("called_before").fill_null(False)).join(home, on="msisdn").select("site_key", *PAIR)
    by_many = (
        pl.concat([members.select("site_key", *PAIR), before])
        .unique()
        .group_by("site_key", "other_party")
        .agg(pl.len().cast(pl.Int64).alias("callers"))
        .filter(c("callers") >= 2)
    )
    return (
        by_many.join(listed, on=["site_key", "other_party"], how="semi")
        .group_by("site_key")
        .agg(pl.len().cast(pl.Int64).alias("n_shared"))
    )


# --- the room -----------------------------------------------------------------------------------


def room_stats(members: pl.LazyFrame, shared: pl.LazyFrame, s) -> pl.LazyFrame:
    """Per room: its size, totals, span and score (see `detectors.low_slow.room_stats`)."""
    rooms = members.group_by("site_key").agg(
        c("msisdn").drop_nulls().n_unique().cast(pl.Int64).alias("room_sims"),
        c("calls").sum().alias("room_calls"),
        _count_if(c("stranger")).alias("room_strangers"),
        pl.len().cast(pl.Int64).alias("room_callees"),
        _count_if(c("called_back")).alias("room_callbacks"),
        *(c(e).sum().alias(f"room_{e}") for e in ENDINGS),
        c("first_call").min().alias("room_first"),
        c("last_call").max().alias("room_last"),
        c("site_label").min().alias("room_label"),
    )
    callback_ratio = c("room_callbacks") / c("room_callees")
    silence = (
        pl.lit(1.0)
        if s.max_callback_ratio == 0
        else pl.max_horizontal(pl.lit(0.0), 1 - callback_ratio / s.max_callback_ratio)
    )
    score = (
        W_SIZE * pl.min_horizontal(pl.lit(1.0), c("room_sims") / FULL_ROOM_SIMS)
        + W_STRANGERS * c("room_strangers") / c("room_calls")
        + W_BIMODAL * (1 - c("room_middle") / c("room_answered"))
        + W_OVERLAP * pl.min_horizontal(pl.lit(1.0), c("n_shared") / FULL_SHARED_CALLEES)
        + W_SILENCE * silence
    )
    return (
        rooms.join(shared, on="site_key")
        .filter(c("n_shared") >= s.min_shared_callees)
        .with_columns(spark_round(score, 2).alias("score"))
    )


def _plural(n: pl.Expr) -> pl.Expr:
    return pl.when(n == 1).then(pl.lit("")).otherwise(pl.lit("s"))


def evidence(s, timezone: str) -> pl.Expr:
    """The sentence of `detectors.low_slow.evidence`, character for character."""
    template = (
        "Low-and-slow room: {} SIMs at {} {}–{}, calls to {} strangers ({} % of {} calls), {} call-back{}, "
        "{} conversation{} of "
        + _duration(s.long_call_s)
        + " or more, {} hang-up{} within "
        + str(s.hangup_s)
        + " s; {} residents called by 2+ of these SIMs; this SIM: {} calls, {} to strangers"
    )
    return pl.format(
        template,
        c("room_sims"),
        c("room_label").fill_null("null"),
        clock(c("room_first"), timezone),
        clock(c("room_last"), timezone),
        c("room_strangers"),
        spark_round(c("room_strangers") * 100 / c("room_calls")).cast(pl.Int32),
        c("room_calls"),
        c("room_callbacks"),
        _plural(c("room_callbacks")),
        c("room_long"),
        _plural(c("room_long")),
        c("room_hangups"),
        _plural(c("room_hangups")),
        c("n_shared"),
        c("n_calls"),
        c("n_strangers"),
    )
