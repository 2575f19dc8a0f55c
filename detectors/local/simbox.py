"""GOIP / SIM-box gateways on Polars: the port of `detectors.simbox` (read its docstring for the
indicators, their weights and the evidence). The same flags, column for column: the differential
tests run both on the same nights."""

from __future__ import annotations

from functools import reduce

import polars as pl

from detectors.local.base import Detector, LocalNight, flag_frame, local, spark_round
from detectors.local.text import count_text, fixed, span_text
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

c = pl.col
OUT = c("direction") == "out"
SIM_FLAG_DETAILS = {
    "site_key": pl.String,
    "window_start": pl.Datetime("us", "UTC"),
    "window_end": pl.Datetime("us", "UTC"),
}
DEVICE_FIELDS = ("imsis", "records", "imei", "week_imsis", "tac", "tac_devices", "rare_tac", "luhn_ok", "fake")


class SimBox(Detector):
    """SIMs (msisdn) and devices (imei) of GOIP / SIM-box gateways."""

    name = "goip"

    def flags(self, night: LocalNight) -> pl.DataFrame:
        features, devices = _features(night, self.settings)
        flagged = score_sims(features, self.settings).filter(c("score") >= self.settings.min_score)
        sim_flags = flagged.select(
            pl.lit("msisdn").alias("entity_type"),
            c("msisdn").alias("entity_id"),
            "score",
            sim_evidence(self.settings, night.timezone).alias("evidence"),
            c("main_site_key").alias("site_key"),
            c("first_out").alias("window_start"),
            c("last_out").alias("window_end"),
        )
        return pl.concat([sim_flags, device_flags(flagged, devices, self.settings, night.timezone)])


# --- devices ------------------------------------------------------------------------------------


def luhn_valid(imei: pl.Expr) -> pl.Expr:
    """True when `imei` is 15 digits whose last is the Luhn check digit of the first 14."""

    def digit(position: int) -> pl.Expr:
        return imei.str.slice(position - 1, 1).cast(pl.Int32, strict=False)

    def term(position: int) -> pl.Expr:
        if position % 2:
            return digit(position)
        doubled = digit(position) * 2
        return pl.when(doubled > 9).then(doubled - 9).otherwise(doubled)

    total = reduce(lambda a, b: a + b, (term(p) for p in range(1, 16)))
    return (imei.str.contains(IMEI_PATTERN) & (total % 10 == 0)).fill_null(False)


def device_stats(night: LocalNight, settings) -> pl.LazyFrame:
    """Per IMEI: IMSIs tonight and over the week, devices sharing its TAC, and whether it looks invented."""
    tonight = night.cdr.filter(c("imei").is_not_null()).select(
        "imei", pl.coalesce("imsi", "msisdn").alias("imsi"), pl.lit(True).alias("tonight")
    )
    earlier = night.earlier().devices.select("imei", c("sim").alias("imsi"), pl.lit(False).alias("tonight"))
    week = pl.concat([tonight, earlier]).group_by("imei", "imsi").agg(c("tonight").max())
    per_device = week.group_by("imei").agg(
        c("tonight").cast(pl.Int64).sum().alias("imsis"), pl.len().cast(pl.Int64).alias("week_imsis")
    )
    return (
        per_device.with_columns(c("imei").str.slice(0, TAC_DIGITS).alias("tac"))
        .with_columns(pl.len().over("tac").cast(pl.Int64).alias("tac_devices"), luhn_valid(c("imei")).alias("luhn_ok"))
        .with_columns((c("tac_devices") <= settings.rare_tac_devices).alias("rare_tac"))
        .with_columns((c("rare_tac") | ~c("luhn_ok")).alias("fake"))
    )


# --- SIM features -------------------------------------------------------------------------------


def _distinct(column: pl.Expr) -> pl.Expr:
    """Distinct non-null values in the group (Spark's size(collect_set(...)))."""
    return column.drop_nulls().n_unique().cast(pl.Int32)


def _quantile(column: pl.Expr, q: float) -> pl.Expr:
    """Spark's percentile_approx on exact summaries: the value at rank ceil(q * n) of the non-null values."""
    values = column.drop_nulls().sort()
    rank = (values.len() * q).ceil().cast(pl.Int64)
    return pl.when(values.len() > 0).then(values.get(pl.max_horizontal(rank - 1, pl.lit(0))))


def _features(night: LocalNight, settings) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the scored SIMs' features, their devices: one row per msisdn and imei it used tonight)."""
    rows = _scored_rows(night.cdr, settings.min_calls).collect()
    voice_out = OUT & (c("service") == "voice")
    sms_out = OUT & (c("service") == "sms")
    hour = local(c("start_time"), night.timezone).dt.hour()
    sited = rows.filter(c("site_key").is_not_null())
    main_site = (
        sited.sort("msisdn", "site_events", "site_key", "site_label")
        .group_by("msisdn", maintain_order=True)
        .agg(c("site_label").last().alias("main_site"), c("site_key").last().alias("main_site_key"))
    )
    gap = pl.when(OUT).then(c("gap"))
    counts = rows.group_by("msisdn").agg(
        OUT.cast(pl.Int64).sum().alias("n_out"),
        (~OUT).cast(pl.Int64).sum().alias("n_in"),
        voice_out.cast(pl.Int64).sum().alias("n_voice_out"),
        sms_out.cast(pl.Int64).sum().alias("n_sms_out"),
        _distinct(pl.when(OUT).then(c("other_party"))).alias("n_callees"),
        _distinct(pl.when(sms_out).then(c("other_party"))).alias("n_sms_callees"),
        (voice_out & (c("duration_s") == 0)).cast(pl.Int64).sum().alias("n_unanswered"),
        (voice_out & c("duration_s").is_between(1, settings.short_call_s)).cast(pl.Int64).sum().alias("n_short"),
        _distinct(pl.when(c("called_back")).then(c("other_party"))).alias("n_callbacks"),
        _distinct(c("site_key")).alias("n_sites"),
        _distinct(c("imei")).alias("n_imeis"),
        pl.when(OUT).then(c("start_time")).min().alias("first_out"),
        pl.when(OUT).then(c("start_time")).max().alias("last_out"),
        _distinct(pl.when(OUT).then(hour)).alias("active_hours"),
        _quantile(gap, 0.25).alias("q1"),
        _quantile(gap, 0.5).alias("median_gap"),
        _quantile(gap, 0.75).alias("q3"),
    )
    counts = counts.join(main_site, on="msisdn", how="left").with_columns(
        pl.when(c("median_gap") > 0).then((c("q3") - c("q1")) / (IQR_PER_SD * c("median_gap"))).alias("gap_cv")
    )
    devices = (
        rows.filter(c("imei").is_not_null())
        .group_by("msisdn", "imei")
        .agg(
            pl.len().cast(pl.Int64).alias("records"),
            OUT.cast(pl.Int64).sum().alias("out_events"),
            pl.when(OUT).then(c("start_time")).min().alias("first_out"),
            pl.when(OUT).then(c("start_time")).max().alias("last_out"),
        )
        .join(device_stats(night, settings).collect(), on="imei")
    )
    # the SIM's most box-like IMEI: most IMSIs tonight, then most records, then the highest IMEI
    device_of_sim = (
        devices.sort("msisdn", "imsis", "records", "imei")
        .group_by("msisdn", maintain_order=True)
        .agg(c(name).last() for name in DEVICE_FIELDS if name != "records")
    )
    sims = night.earlier().sims
    first_seen = sims.group_by("msisdn").agg(c("date").min().alias("first_seen")).collect()
    history_from = sims.select(c("date").min()).collect().item()
    features = (
        counts.join(device_of_sim, on="msisdn", how="left")
        .join(first_seen, on="msisdn", how="left")
        .with_columns(pl.lit(history_from, pl.Date).alias("history_from"))
    )
    return features, devices


def _scored_rows(cdr: pl.LazyFrame, min_calls: int) -> pl.LazyFrame:
    """The night's rows of SIMs with >= `min_calls` outgoing events, each with the seconds since the
    SIM's previous outgoing event (`gap`), whether it is a call-back, and its site's events."""
    seconds = c("start_time").dt.epoch("s")
    first_called = pl.when(OUT).then(c("start_time")).min().over("msisdn", "other_party")
    return (
        cdr.with_columns(OUT.cast(pl.Int64).sum().over("msisdn").alias("sim_out"))
        .filter(c("sim_out") >= min_calls)
        .sort("msisdn", "start_time", "record_id")
        .with_columns(
            pl.when(OUT).then(seconds - pl.when(OUT).then(seconds).shift(1).forward_fill().over("msisdn")).alias("gap"),
            (~OUT & (c("start_time") > first_called)).alias("called_back"),
            pl.len().over("msisdn", "site_key").cast(pl.Int64).alias("site_events"),
        )
    )


# --- score and evidence -------------------------------------------------------------------------


def indicators(settings) -> dict[str, pl.Expr]:
    shared = c("imsis") >= settings.shared_imsis
    return {
        "shared_device": shared,
        "fake_imei": c("fake"),
        "hopping_sim": c("n_imeis") >= settings.shared_imsis,
        "swapped_device": ~shared & (c("week_imsis") >= SWAP_IMSIS),
        "regular_gaps": c("gap_cv") <= settings.max_gap_cv,
        "stationary": c("n_sites").is_between(1, settings.max_sites),
        "outgoing_only": c("n_out") >= MIN_OUT_SHARE * (c("n_out") + c("n_in")),
        "many_callees": c("n_callees") >= MIN_CALLEE_RATIO * c("n_out"),
        "brief_calls": (c("n_voice_out") > 0)
        & (c("n_unanswered") + c("n_short") >= MIN_BRIEF_SHARE * c("n_voice_out")),
        "no_callbacks": (c("n_callees") >= settings.min_calls)
        & (c("n_callbacks") <= settings.max_callback_ratio * c("n_callees")),
        "sms_blast": c("n_sms_callees") >= settings.min_sms_callees,
        "new_sim": c("history_from").is_not_null() & c("first_seen").is_null(),
    }


def score_sims(features: pl.DataFrame, settings) -> pl.DataFrame:
    """`features` plus one boolean `is_<indicator>` per indicator and the capped `score`."""
    fired = {name: cond.fill_null(False) for name, cond in indicators(settings).items()}
    scored = features.with_columns(cond.alias(f"is_{name}") for name, cond in fired.items())
    total = reduce(lambda a, b: a + b, (pl.when(c(f"is_{n}")).then(pl.lit(WEIGHTS[n])).otherwise(0.0) for n in fired))
    return scored.with_columns(spark_round(pl.min_horizontal(pl.lit(1.0), total), 2).alias("score"))


def _percent(part: str, whole: str) -> pl.Expr:
    return spark_round(c(part) * 100 / c(whole)).cast(pl.Int32)


def _invented_text() -> pl.Expr:
    others = (
        pl.when(c("tac_devices") <= 1)
        .then(pl.lit("no other device"))
        .otherwise(pl.format("only {} devices", c("tac_devices")))
    )
    return pl.concat_str(
        pl.when(c("rare_tac")).then(pl.format("TAC {} on {} in the city", c("tac"), others)),
        pl.when(~c("luhn_ok")).then(pl.lit("invalid check digit")),
        separator=", ",
        ignore_nulls=True,
    )


def _traffic(timezone: str) -> pl.Expr:
    what = pl.concat_str(
        pl.when(c("n_voice_out") > 0).then(count_text(c("n_voice_out"), "outgoing call")),
        pl.when(c("n_sms_out") > 0).then(pl.format("{} outgoing SMS", c("n_sms_out"))),
        separator=" and ",
        ignore_nulls=True,
    )
    return pl.concat_str(
        what,
        pl.format(" to {} numbers ", c("n_callees")),
        span_text(c("first_out"), c("last_out"), timezone),
        pl.lit(" ("),
        count_text(c("active_hours"), "active hour"),
        pl.format("), {} incoming", c("n_in")),
    )


def sim_evidence(settings, timezone: str) -> pl.Expr:
    """One sentence: its device, what the SIM did tonight, then the indicators that fired, with values."""

    def fired(name: str, text: pl.Expr) -> pl.Expr:
        return pl.when(c(f"is_{name}")).then(text)

    invented = pl.concat_str(pl.lit(" ("), _invented_text(), pl.lit(")"))
    parts = [
        fired(
            "shared_device",
            pl.concat_str(
                pl.format("{} SIMs share IMEI {}", c("imsis"), c("imei")),
                pl.when(c("is_fake_imei")).then(invented).otherwise(pl.lit("")),
            ),
        ),
        pl.when(~c("is_shared_device") & c("is_fake_imei")).then(
            pl.concat_str(pl.lit("IMEI "), c("imei"), pl.lit(" looks invented"), invented)
        ),
        fired("hopping_sim", pl.format("SIM seen in {} devices tonight", c("n_imeis"))),
        fired("swapped_device", pl.format("its handset {} carried {} SIMs this week", c("imei"), c("week_imsis"))),
        _traffic(timezone),
        fired(
            "brief_calls",
            pl.format(
                "{}% of calls unanswered, {}% answered <= {} s",
                _percent("n_unanswered", "n_voice_out"),
                _percent("n_short", "n_voice_out"),
                pl.lit(settings.short_call_s),
            ),
        ),
        fired("no_callbacks", pl.format("called back by {} of {} callees", c("n_callbacks"), c("n_callees"))),
        fired("regular_gaps", pl.format("gaps regular (every {} s, CV {})", c("median_gap"), fixed(c("gap_cv"), 2))),
        fired(
            "stationary",
            pl.concat_str(
                count_text(c("n_sites"), "site"),
                pl.lit(" ("),
                pl.when(c("n_sites") > 1).then(pl.lit("mostly ")).otherwise(pl.lit("")),
                c("main_site"),
                pl.lit(")"),
            ),
        ),
        fired("sms_blast", pl.format("SMS blast to {} numbers", c("n_sms_callees"))),
        fired("new_sim", pl.lit("SIM first seen today")),
    ]
    return pl.concat_str(
        pl.format("GOIP-like SIM (score {}): ", fixed(c("score"), 2)),
        pl.concat_str(*parts, separator="; ", ignore_nulls=True),
    )


def device_flags(flagged_sims: pl.DataFrame, devices: pl.DataFrame, settings, timezone: str) -> pl.DataFrame:
    """Devices (imei) that carry a flagged SIM and look like a box themselves."""
    on_device = devices.join(
        flagged_sims.select("msisdn", "score", "main_site", "main_site_key", "n_imeis"), on="msisdn"
    )
    hopping = c("n_imeis") >= settings.shared_imsis
    box_like = (
        (c("imsis") >= settings.shared_imsis) | (c("week_imsis") >= settings.shared_imsis) | (c("fake") & ~hopping)
    )
    candidates = on_device.filter(box_like)
    if candidates.is_empty():
        return flag_frame(SIM_FLAG_DETAILS)
    best = (
        candidates.sort("imei", "score", "main_site", "main_site_key", nulls_last=False)
        .group_by("imei", maintain_order=True)
        .agg(
            c("score").last().alias("best_score"),
            c("main_site").last().alias("best_site"),
            c("main_site_key").last().alias("best_site_key"),
        )
    )
    suspects = (
        candidates.group_by("imei")
        .agg(
            pl.len().cast(pl.Int64).alias("n_flagged"),
            c("out_events").sum().alias("n_events"),
            c("first_out").min(),
            c("last_out").max(),
            *(c(name).first() for name in ("imsis", "week_imsis", "tac", "tac_devices", "rare_tac", "luhn_ok", "fake")),
        )
        .join(best, on="imei")
    )
    evidence = pl.concat_str(
        pl.format("Suspect device: IMEI {} carried ", c("imei")),
        count_text(c("imsis"), "SIM"),
        pl.format(" tonight ({} flagged GOIP-like, best score {})", c("n_flagged"), fixed(c("best_score"), 2)),
        pl.when(c("week_imsis") > c("imsis"))
        .then(pl.format(" and {} this week", c("week_imsis")))
        .otherwise(pl.lit("")),
        pl.when(c("fake")).then(pl.concat_str(pl.lit("; "), _invented_text())).otherwise(pl.lit("")),
        pl.when(c("n_events") > 0)
        .then(
            pl.concat_str(
                pl.format("; {} outgoing events of flagged SIMs ", c("n_events")),
                span_text(c("first_out"), c("last_out"), timezone),
                pl.lit(" at "),
                c("best_site"),
            )
        )
        .otherwise(pl.lit("")),
    )
    return suspects.select(
        pl.lit("imei").alias("entity_type"),
        c("imei").alias("entity_id"),
        c("best_score").alias("score"),
        evidence.alias("evidence"),
        c("best_site_key").alias("site_key"),
        c("first_out").alias("window_start"),
        c("last_out").alias("window_end"),
    )
