"""The earlier days as small daily aggregates: what the detectors' baselines and look-backs need.

A night's detectors compare tonight with the days before (a SIM's age, the SIMs a device held over
the week, a site's usual hourly load, whether a callee is a stranger). Reading those days' raw CDRs
every night made detect grow with the look-back; instead `detect` writes, for its own night, four
aggregates (lake tables `sim_day`, `device_day`, `cell_hour`, `contact_day`, see schemas/tables.py)
and later nights read those. `daily_history(rows)` computes the same aggregates from raw rows, so a
notebook or a test can still hand a `Night` raw history days and get identical answers.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


@dataclass(frozen=True)
class DailyHistory:
    """Earlier days, per day: `sims` (date, msisdn, n_out, n_in), `devices` (date, imei, msisdn, sim),
    `site_hours` (date, site_key, hour, n: outgoing events per site and local hour), `contacts`
    (date, msisdn, other_party, called)."""

    sims: DataFrame
    devices: DataFrame
    site_hours: DataFrame
    contacts: DataFrame

    def days(self) -> DataFrame:
        """One row per date with any event."""
        return self.sims.select("date").distinct()


def sim_days(rows: DataFrame) -> DataFrame:
    out = F.col("direction") == "out"
    return rows.groupBy("date", "msisdn").agg(
        F.count_if(out).alias("n_out"), F.count_if(~out).alias("n_in"), F.min("carrier").alias("carrier")
    )


def device_days(rows: DataFrame) -> DataFrame:
    """(IMEI, SIM) pairs; the SIM is its IMSI, or its number when the carrier gave no IMSI."""
    return (
        rows.where(F.col("imei").isNotNull())
        .select("date", "imei", "msisdn", F.coalesce("imsi", "msisdn").alias("sim"))
        .distinct()
    )


def cell_hours(rows: DataFrame) -> DataFrame:
    """Outgoing events per (carrier, cell, local hour): what `site_hours` sums once sites are known."""
    return (
        rows.where((F.col("direction") == "out") & F.col("cell_id").isNotNull())
        .groupBy("date", "carrier", "cell_id", F.hour("start_time").cast("int").alias("hour"))
        .agg(F.count("*").alias("n_out"))
    )


def site_hours(cells: DataFrame, sites: DataFrame) -> DataFrame:
    """`cell_hours` located by the cell inventory's sites -> (date, site_key, hour, n)."""
    return (
        cells.join(F.broadcast(sites.select("carrier", "cell_id", "site_key")), ["carrier", "cell_id"])
        .where(F.col("site_key").isNotNull())
        .groupBy("date", "site_key", "hour")
        .agg(F.sum("n_out").alias("n"))
    )


def contact_days(rows: DataFrame) -> DataFrame:
    """(subscriber, other party) with any event that day; `called`: the subscriber placed a voice call."""
    called = (F.col("direction") == "out") & (F.col("service") == "voice")
    return (
        rows.where(F.col("other_party").isNotNull())
        .groupBy("date", "msisdn", "other_party")
        .agg(F.max(called).alias("called"))
    )


def located_site_hours(rows: DataFrame) -> DataFrame:
    """`site_hours` straight from located raw rows (they carry `site_key`)."""
    return (
        rows.where((F.col("direction") == "out") & F.col("site_key").isNotNull())
        .groupBy("date", "site_key", F.hour("start_time").cast("int").alias("hour"))
        .agg(F.count("*").alias("n"))
    )


def daily_history(rows: DataFrame) -> DailyHistory:
    """The aggregates of located raw rows (CDR columns plus `site_key`, as in `Night.history`)."""
    return DailyHistory(
        sims=sim_days(rows), devices=device_days(rows), site_hours=located_site_hours(rows), contacts=contact_days(rows)
    )
