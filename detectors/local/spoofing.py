"""Caller-ID spoofing on Polars: the port of `detectors.spoofing` (read its docstring for the verdicts,
the reasons a leg is not judged and the flags). The same judged legs and flags, column for column:
the differential tests run both engines on the same nights.

Spark's semantics kept here: `unix_timestamp` counts whole seconds, `collect_set` leaves nulls out,
`format_string` writes a null as "null", and a leg near midnight is near the carriers' local midnight."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import polars as pl

from detectors.local.base import Detector, LocalNight
from detectors.rules.spoofing import (
    CARRIER_NOT_COMPLETE,
    JUDGED_COLUMNS,
    MOBILE,
    NATIONAL_MOBILE,
    NEAR_MIDNIGHT,
    QUARANTINED,
    WHITELISTED,
)

c = pl.col
UTC = pl.Datetime("us", "UTC")
OUTGOING = ("msisdn", "other_party", "service", "start_time", "duration_s")


@dataclass(frozen=True)
class LegInputs:
    """`detectors.spoofing.LegInputs` on Polars: `outgoing` (OUTGOING columns) and `subscribers`
    (msisdn, carrier) lazy, `mentions` (carrier, key) from `quarantine_mentions`."""

    outgoing: pl.LazyFrame
    subscribers: pl.LazyFrame
    incomplete: dict[str, str] = field(default_factory=dict)
    previous_day: frozenset[str] = frozenset()
    next_day: frozenset[str] = frozenset()
    mentions: pl.LazyFrame | None = None


def night_inputs(night: LocalNight) -> LegInputs:
    """Inputs from the night alone (a notebook's night): tonight's outgoing legs, tonight's and the
    earlier days' subscribers; neighbouring days unknown, so legs near midnight are not judged."""
    subscribers = pl.concat([night.cdr.select("msisdn", "carrier"), night.earlier().sims.select("msisdn", "carrier")])
    return LegInputs(outgoing=outgoing_legs(night.cdr), subscribers=subscribers)


def owner_carrier() -> pl.Expr:
    """The presented number's carriers joined by '+'; null for a protected number nobody local holds."""
    return pl.when(c("owners").list.len() > 0).then(c("owners").list.join("+"))


def outgoing_legs(cdr: pl.LazyFrame) -> pl.LazyFrame:
    return cdr.filter(c("direction") == "out").select(OUTGOING)


def protected_name(presented: pl.Expr, service: pl.Expr, protected) -> pl.Expr:
    """The protected entry's name when `presented` is one of `protected` for this service, else null
    (the first entry that matches, as Spark's CASE)."""
    name = pl.lit(None, pl.String)
    for entry in reversed(list(protected)):
        pattern = "^" + entry.number.replace("x", "[0-9]") + "$"
        name = (
            pl.when(presented.str.contains(pattern) & service.is_in(list(entry.services)))
            .then(pl.lit(entry.name))
            .otherwise(name)
        )
    return name


def candidates(night: LocalNight, inputs: LegInputs, protected) -> pl.LazyFrame:
    """Tonight's incoming legs presenting a local subscriber's or a protected number (see
    `detectors.spoofing.candidates`)."""
    owners = (
        inputs.subscribers.filter(c("msisdn").str.contains(MOBILE))
        .group_by(c("msisdn").alias("presented"))
        .agg(
            c("carrier").drop_nulls().unique().sort().alias("owners"),
            c("carrier").is_null().any().alias("owner_unknown"),
        )
    )
    incoming = night.cdr.filter((c("direction") == "in") & c("other_party").is_not_null()).select(
        "record_id",
        "carrier",
        c("msisdn").alias("receiver"),
        c("other_party").alias("presented"),
        "service",
        "start_time",
        "duration_s",
        "cell_id",
        "district",
        protected_name(c("other_party"), c("service"), protected).alias("protected"),
    )
    local = incoming.filter(c("protected").is_null() & c("presented").str.contains(MOBILE)).join(
        owners, on="presented", how="inner"
    )
    named = incoming.filter(c("protected").is_not_null()).with_columns(
        pl.lit(pl.Series([[]], dtype=pl.List(pl.String))).alias("owners"), pl.lit(False).alias("owner_unknown")
    )
    return pl.concat([local, named.select(local.collect_schema().names())])


def judge_incoming(night: LocalNight, inputs: LegInputs, settings) -> pl.LazyFrame:
    """`candidates` with `verdict` (matched | spoofed | not_judged) and `reason` (see
    `detectors.spoofing.judge_incoming`)."""
    legs = candidates(night, inputs, settings.protected)
    listed = night.whitelist.lazy().select(c("number").alias("presented"), pl.lit(True).alias("listed"))
    legs = legs.join(listed, on="presented", how="left")
    incomplete = list(inputs.incomplete)
    not_complete = (
        c("owners").list.eval(pl.element().is_in(incomplete)).list.any() | c("owner_unknown")
        if incomplete
        else pl.lit(False)
    )
    before = (
        pl.when(c("listed") & c("protected").is_null())
        .then(pl.lit(WHITELISTED))
        .when(c("protected").is_null() & not_complete)
        .then(pl.lit(CARRIER_NOT_COMPLETE))
        .otherwise(pl.lit(None, pl.String))
    )
    legs = legs.with_columns(before.alias("reason"))

    to_match = legs.filter(c("reason").is_null() & c("protected").is_null())
    twinned = _twinned(to_match, inputs.outgoing, settings)
    judged = to_match.join(twinned, on=["record_id", "carrier"], how="left").with_columns(
        pl.when(c("twinned")).then(pl.lit("matched")).otherwise(pl.lit("spoofed")).alias("verdict")
    )
    judged = _excused(night, judged, inputs, settings)
    rest = legs.filter(c("reason").is_not_null() | c("protected").is_not_null()).with_columns(
        pl.when(c("reason").is_not_null()).then(pl.lit("not_judged")).otherwise(pl.lit("spoofed")).alias("verdict")
    )
    return pl.concat([judged.select(JUDGED_COLUMNS), rest.select(JUDGED_COLUMNS)])


def _twinned(legs: pl.LazyFrame, outgoing: pl.LazyFrame, settings) -> pl.LazyFrame:
    """(record_id, carrier, twinned) of the legs with an outgoing twin: the presented number placed it
    to the receiver, same service, close in time (whole seconds, as Spark's `unix_timestamp`),
    durations consistent."""
    out = outgoing.select(
        c("msisdn").alias("presented"),
        c("other_party").alias("receiver"),
        "service",
        c("start_time").alias("o_start"),
        c("duration_s").alias("o_duration"),
    )
    seconds = (c("start_time").dt.epoch("s") - c("o_start").dt.epoch("s")).abs()
    longer = pl.max_horizontal(c("duration_s"), c("o_duration"))
    slack = pl.max_horizontal(pl.lit(float(settings.duration_tolerance_s)), longer * settings.duration_tolerance_share)
    close = (seconds <= settings.tolerance_s) & ((c("duration_s") - c("o_duration")).abs() <= slack)
    return (
        legs.select("record_id", "carrier", "presented", "receiver", "service", "start_time", "duration_s")
        .join(out, on=["presented", "receiver", "service"], how="inner")
        .filter(close)
        .select("record_id", "carrier")
        .unique()
        .with_columns(pl.lit(True).alias("twinned"))
    )


def local_instant(day: dt.date, timezone: str, seconds: int = 0) -> pl.Expr:
    """Local midnight of `day` plus `seconds` (as an instant: Spark's `timestamp_add`), in UTC."""
    midnight = dt.datetime.combine(day, dt.time(), ZoneInfo(timezone)).astimezone(dt.timezone.utc)
    return pl.lit(midnight + dt.timedelta(seconds=seconds), UTC)


def _excused(night: LocalNight, judged: pl.LazyFrame, inputs: LegInputs, settings) -> pl.LazyFrame:
    """Unmatched legs whose twin may simply not be in the lake become not judged (see
    `detectors.spoofing._excused`)."""
    tolerance, day, tz = settings.tolerance_s, night.day, night.timezone

    def have_all(carriers: frozenset[str]) -> pl.Expr:
        covered = c("owners").list.eval(pl.element().is_in(list(carriers))).list.all()
        return covered & ~c("owner_unknown")

    early = c("start_time") < local_instant(day, tz, tolerance)
    late = c("start_time") >= local_instant(day + dt.timedelta(days=1), tz, -tolerance)
    near = (early & ~have_all(inputs.previous_day)) | (late & ~have_all(inputs.next_day))
    spoofed = c("verdict") == "spoofed"
    judged = judged.with_columns(
        pl.when(spoofed & near).then(pl.lit(NEAR_MIDNIGHT)).otherwise(c("reason")).alias("reason")
    )
    if inputs.mentions is not None:
        p, r = c("presented").str.slice(3, 11), c("receiver").str.slice(3, 11)  # +8613912345678 -> 13912345678
        pair = pl.when(p <= r).then(pl.concat_str(p, pl.lit("|"), r)).otherwise(pl.concat_str(r, pl.lit("|"), p))
        mentions = inputs.mentions.select(c("carrier").alias("m_carrier"), "key")
        mentioned = (
            judged.filter(spoofed & c("reason").is_null())
            .select("record_id", "carrier", "owners", "owner_unknown", pl.concat_list(p, r, pair).alias("key"))
            .explode("key")
            .join(mentions, on="key", how="inner")
            .filter(c("owners").list.contains(c("m_carrier")) | c("owner_unknown"))
            .select("record_id", "carrier")
            .unique()
            .with_columns(pl.lit(True).alias("mentioned"))
        )
        judged = (
            judged.join(mentioned, on=["record_id", "carrier"], how="left")
            .with_columns(pl.when(c("mentioned")).then(pl.lit(QUARANTINED)).otherwise(c("reason")).alias("reason"))
            .drop("mentioned")
        )
    return judged.with_columns(
        pl.when(c("reason").is_not_null()).then(pl.lit("not_judged")).otherwise(c("verdict")).alias("verdict")
    )


def quarantine_mentions(quarantine: pl.LazyFrame) -> pl.LazyFrame:
    """(carrier, key) for every quarantined line that may be a lost leg between two local mobiles (see
    `detectors.spoofing.quarantine_mentions`)."""
    nationals = (
        c("raw")
        .fill_null("")
        .str.extract_all(r"[0-9]{11,}")
        .list.eval(pl.element().str.slice(-11, 11))
        .list.unique()
        .list.eval(pl.element().filter(pl.element().str.contains(NATIONAL_MOBILE)))
        .list.sort()
    )
    lines = quarantine.select("carrier", nationals.alias("ns")).filter(c("ns").list.len() > 0)
    singles = lines.filter(c("ns").list.len() == 1).select("carrier", c("ns").list.first().alias("key"))
    pairs = (
        lines.filter(c("ns").list.len() > 1)
        .select("carrier", "ns", c("ns").alias("a"))
        .explode("a")
        .select("carrier", "a", c("ns").alias("b"))
        .explode("b")
        .filter(c("a") < c("b"))
        .select("carrier", pl.concat_str("a", pl.lit("|"), "b").alias("key"))
    )
    return pl.concat([singles, pairs]).unique()


def guarded(judged: pl.LazyFrame, settings) -> pl.LazyFrame:
    """The spoofed legs of `judged` (with `owner_carrier`), without those of the carrier pairs
    `guard_pairs` would drop (see `detectors.spoofing.guarded`)."""
    per = (
        judged.filter(c("protected").is_null() & (c("verdict") != "not_judged"))
        .group_by("carrier", "owner_carrier")
        .agg(pl.len().alias("judged"), (c("verdict") == "spoofed").sum().alias("unmatched"))
    )
    lost = per.filter(
        (c("unmatched") >= settings.guard_min_legs) & (c("unmatched") > settings.max_unmatched_share * c("judged"))
    )
    spoofed = judged.filter(c("verdict") == "spoofed")
    return pl.concat(
        [
            spoofed.filter(c("protected").is_not_null()),
            spoofed.filter(c("protected").is_null()).join(
                lost.select("carrier", "owner_carrier"), on=["carrier", "owner_carrier"], how="anti"
            ),
        ]
    )


def flags_of(spoofed: pl.LazyFrame, long_call_s: int) -> pl.DataFrame:
    """One flag per presented number from its spoofed legs (see `detectors.spoofing.flags_of`)."""
    answered = (c("service") == "voice") & (c("duration_s") > 0)
    per = (
        spoofed.sort("start_time", "carrier", "record_id")
        .group_by("presented")
        .agg(
            pl.len().cast(pl.Int64).alias("legs"),
            c("receiver").drop_nulls().n_unique().cast(pl.Int64).alias("receivers"),
            answered.sum().cast(pl.Int64).alias("answered"),
            (answered & (c("duration_s") >= long_call_s)).sum().cast(pl.Int64).alias("long"),
            c("protected").drop_nulls().first().alias("protected"),
            c("owner_carrier").drop_nulls().first().alias("owner"),
            c("start_time").min().alias("window_start"),
            c("start_time").max().alias("window_end"),
            c("campaign_id").drop_nulls().unique().sort().alias("campaigns"),
        )
    )
    base = pl.when(c("protected").is_not_null()).then(pl.lit(0.9)).otherwise(pl.lit(0.5))
    score = (
        base
        + 0.05 * pl.min_horizontal(c("receivers") - 1, pl.lit(4, pl.Int64))
        + 0.05 * pl.min_horizontal(c("long"), pl.lit(2, pl.Int64))
    )
    whose = (
        pl.when(c("protected").is_not_null())
        .then(pl.concat_str(pl.lit("protected number ("), c("protected"), pl.lit(")")))
        .otherwise(
            pl.concat_str(
                pl.lit("the number of a local subscriber of "),
                c("owner"),
                pl.lit(", who did not place these calls: a victim of impersonation, not a suspect"),
            )
        )
        .fill_null("null")  # Spark's format_string writes a null argument as "null"
    )
    evidence = pl.format(
        "shown to {} receiver(s) on {} incoming leg(s) ({} answered, {} long) that no carrier placed (campaign {}): {}",
        "receivers",
        "legs",
        "answered",
        "long",
        c("campaigns").list.join(", "),
        whose,
    )
    return per.select(
        pl.lit("presented").alias("entity_type"),
        c("presented").alias("entity_id"),
        score.alias("score"),
        evidence.alias("evidence"),
        "window_start",
        "window_end",
    ).collect()


class CallerIdSpoofing(Detector):
    """Presented numbers of incoming legs that no carrier placed (see `detectors.spoofing`).

    `detect` judges the night once (`jobs.spoofing_local.judge_night_local`) and hands the spoofed legs
    over as `night.spoofed`; a night without them is judged here from its own rows."""

    name = "spoofing"

    def flags(self, night: LocalNight) -> pl.DataFrame:
        if night.spoofed is not None:
            spoofed = night.spoofed.lazy()
        else:
            judged = judge_incoming(night, night_inputs(night), self.settings)
            spoofed = guarded(judged.with_columns(owner_carrier().alias("owner_carrier")), self.settings).with_columns(
                pl.lit("").alias("campaign_id")
            )
        return flags_of(spoofed, self.settings.long_call_s)
