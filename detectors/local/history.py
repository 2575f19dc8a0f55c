"""The earlier days as small daily aggregates, on Polars (see `detectors.history`: the same tables,
the same rows). Hours are the carriers' local hours, so the time zone is passed in."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

OUT = pl.col("direction") == "out"


@dataclass(frozen=True)
class DailyHistory:
    """Earlier days, per day: `sims` (date, msisdn, n_out, n_in, carrier), `devices` (date, imei,
    msisdn, sim), `site_hours` (date, site_key, hour, n), `contacts` (date, msisdn, other_party, called)."""

    sims: pl.LazyFrame
    devices: pl.LazyFrame
    site_hours: pl.LazyFrame
    contacts: pl.LazyFrame


def local_hour(timezone: str) -> pl.Expr:
    return pl.col("start_time").dt.convert_time_zone(timezone).dt.hour().cast(pl.Int32)


def sim_days(rows: pl.LazyFrame) -> pl.LazyFrame:
    return rows.group_by("date", "msisdn").agg(
        OUT.sum().cast(pl.Int64).alias("n_out"), (~OUT).sum().cast(pl.Int64).alias("n_in"), pl.col("carrier").min()
    )


def device_days(rows: pl.LazyFrame) -> pl.LazyFrame:
    """(IMEI, SIM) pairs; the SIM is its IMSI, or its number when the carrier gave no IMSI."""
    return (
        rows.filter(pl.col("imei").is_not_null())
        .select("date", "imei", "msisdn", pl.coalesce("imsi", "msisdn").alias("sim"))
        .unique()
    )


def cell_hours(rows: pl.LazyFrame, timezone: str) -> pl.LazyFrame:
    """Outgoing events per (carrier, cell, local hour)."""
    return (
        rows.filter(OUT & pl.col("cell_id").is_not_null())
        .group_by("date", "carrier", "cell_id", local_hour(timezone).alias("hour"))
        .agg(pl.len().cast(pl.Int64).alias("n_out"))
    )


def site_hours(cells: pl.LazyFrame, sites: pl.DataFrame) -> pl.LazyFrame:
    """`cell_hours` located by the cell inventory's sites -> (date, site_key, hour, n)."""
    return (
        cells.join(sites.lazy().select("carrier", "cell_id", "site_key"), on=["carrier", "cell_id"])
        .filter(pl.col("site_key").is_not_null())
        .group_by("date", "site_key", "hour")
        .agg(pl.col("n_out").sum().alias("n"))
    )


def contact_days(rows: pl.LazyFrame) -> pl.LazyFrame:
    """(subscriber, other party) with any event that day; `called`: the subscriber placed a voice call."""
    called = OUT & (pl.col("service") == "voice")
    return (
        rows.filter(pl.col("other_party").is_not_null())
        .group_by("date", "msisdn", "other_party")
        .agg(called.any().alias("called"))
    )


def located_site_hours(rows: pl.LazyFrame, timezone: str) -> pl.LazyFrame:
    """`site_hours` straight from located raw rows (they carry `site_key`)."""
    return (
        rows.filter(OUT & pl.col("site_key").is_not_null())
        .group_by("date", "site_key", local_hour(timezone).alias("hour"))
        .agg(pl.len().cast(pl.Int64).alias("n"))
    )


def daily_history(rows: pl.LazyFrame, timezone: str) -> DailyHistory:
    """The aggregates of located raw rows (CDR columns, `date` and `site_key`, as in `LocalNight.history`)."""
    return DailyHistory(
        sims=sim_days(rows),
        devices=device_days(rows),
        site_hours=located_site_hours(rows, timezone),
        contacts=contact_days(rows),
    )
