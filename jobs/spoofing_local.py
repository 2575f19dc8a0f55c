"""The spoofing judgement on the `local` engine: the twin of `jobs.spoofing` on Polars, in-process.

extract (`leg_inputs`: the same lake around the night as Spark's, read with `jobs.io.lake_polars`)
-> transform (`detectors.local.spoofing.judge_incoming`) -> campaigns and counts
(`jobs.spoofing_judgement`, shared with Spark) -> load (lake/spoofed/date=D and spoofing.json,
written as the Spark step writes them).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import polars as pl

from detectors.local.base import LocalNight
from detectors.local.spoofing import (
    LegInputs,
    judge_incoming,
    local_instant,
    outgoing_legs,
    owner_carrier,
    quarantine_mentions,
)
from detectors.rules.spoofing import guard_pairs
from jobs.config import Config
from jobs.io import lake_polars, layout
from jobs.io.files import write_json
from jobs.spoofing_judgement import (  # noqa: F401  (engine-free; detect_local reads `note` from here)
    LEG_ORDER,
    Judgement,
    campaign_ids,
    carriers_on,
    incomplete_carriers,
    note,
    settings_with_protected,
    summary_of,
)
from schemas.table import Table
from schemas.tables import CDR, QUARANTINE, ROUTED, SIM_DAY, SPOOFED

c = pl.col


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def _scan(config: Config, table: Table, days: list[dt.date]) -> pl.LazyFrame:
    """The table's rows of `days` (its declared columns), empty when the lake has none of them."""
    frame = lake_polars.scan_days(config, table, days) if days else None
    return pl.LazyFrame(schema=table.polars()) if frame is None else frame.select(table.names)


def leg_inputs(config: Config, night: LocalNight) -> LegInputs:
    """What judging `night`'s incoming legs needs from the lake around it (`jobs.spoofing.leg_inputs`)."""
    day, settings = night.day, config.detectors.spoofing
    before, after = day - dt.timedelta(days=1), day + dt.timedelta(days=1)
    near = c("start_time").is_between(
        local_instant(day, night.timezone, -settings.tolerance_s),
        local_instant(after, night.timezone, settings.tolerance_s),
        closed="both",
    )
    neighbours = _scan(config, CDR, [before, after])
    routed = _scan(config, ROUTED, [before, after, day])
    outgoing = pl.concat(
        [
            outgoing_legs(night.cdr),
            outgoing_legs(neighbours.filter(near)),
            outgoing_legs(routed.filter(near)),
        ]
    )
    first = day - dt.timedelta(days=settings.subscriber_days)
    earlier = lake_polars.read_days(config, SIM_DAY, _days(first, before), ["msisdn", "carrier"])
    subscribers = pl.concat(
        [
            night.cdr.select("msisdn", "carrier"),
            night.earlier().sims.select("msisdn", "carrier"),
            earlier.lazy().select("msisdn", "carrier"),
        ]
    ).unique()
    quarantine = _scan(config, QUARANTINE, [before, day, after]).select("carrier", "raw")
    return LegInputs(
        outgoing=outgoing,
        subscribers=subscribers,
        incomplete=incomplete_carriers(config, day),
        previous_day=carriers_on(config, before),
        next_day=carriers_on(config, after),
        mentions=quarantine_mentions(quarantine),
    )


def judge_night_local(config: Config, night: LocalNight, warnings: list[str] | None = None) -> Judgement:
    """Judge the night's incoming legs, drop the carrier pairs `guard_pairs` names, and name the
    campaigns (`jobs.spoofing.judge_night`): `legs` is a Polars DataFrame of SPOOFED's columns."""
    settings = settings_with_protected(config, warnings)
    inputs = leg_inputs(config, night)
    judged = judge_incoming(night, inputs, settings).with_columns(owner_carrier().alias("owner_carrier")).collect()
    counts = [
        SimpleNamespace(**row)
        for row in judged.group_by(
            "carrier",
            c("owner_carrier").alias("owners"),
            "verdict",
            "reason",
            c("protected").is_not_null().alias("is_protected"),
        )
        .agg(pl.len().cast(pl.Int64).alias("n"))
        .iter_rows(named=True)
    ]
    guarded = guard_pairs([r for r in counts if not r.is_protected], settings)
    in_guarded = pl.lit(False)
    for carrier, owners in guarded:
        in_guarded = in_guarded | ((c("carrier") == carrier) & (c("owner_carrier") == owners))
    spoofed = judged.filter((c("verdict") == "spoofed") & (c("protected").is_not_null() | ~in_guarded))
    columns = [name for name in SPOOFED.names if name not in ("campaign_id", "date")]
    legs = spoofed.select(columns).sort(list(LEG_ORDER))
    rows = legs.to_dicts()
    ids = campaign_ids(rows, settings.campaign_gap_minutes, night.day)
    legs = legs.with_columns(
        pl.Series("campaign_id", ids, dtype=pl.String), pl.lit(night.day, pl.Date).alias("date")
    ).select(SPOOFED.names)
    return Judgement(
        legs.cast(SPOOFED.polars()), summary_of(night.day, settings, counts, guarded, inputs.incomplete, rows, ids)
    )


def write_judgement(config: Config, day: dt.date, judgement: Judgement) -> Path:
    """lake/spoofed/date=D (atomic) and the counts beside detect's other run files, as Spark writes them."""
    lake_polars.replace_date(config, SPOOFED, day, judgement.legs, sort_by=LEG_ORDER)
    return write_json(layout.spoofing_path(config, day), judgement.summary)
