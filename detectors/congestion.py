"""Base-station congestion: a site whose outgoing load jumps far above its own past, and who drives it.

Signal. Per physical site (`site_key`, all carriers' cells together) and local hour of the night, the
outgoing calls and SMS are compared with the site's baseline: every hour of the earlier days in the
window (`night.history`, up to `baseline_days`), hours without outgoing traffic counted as 0,
summarised robustly by the median and the MAD x 1.4826 (the normal-consistent scale), the scale never
below the Poisson noise sqrt(max(median, 1)) so that a quiet site with MAD 0 does not turn a handful of
calls into "z = infinity"; a site never busy before is Poisson(1). An hour is *congested* when its
robust z >= `min_robust_z` and it carries at least `min_hour_calls` outgoing events. With fewer than
`min_baseline_days` days of history nothing is flagged and `note` says so.

Why all hours, not the same hour of earlier days: a den works the same shift every day, so a
same-hour baseline is made of the den itself from its second day on and the den vanishes into it (on
the simulated week: z -0.9..1.7 at every den site once it had been there before, against 14..385 with
the all-hours baseline). Over all 24 hours of a day a den's 4-10 shift hours are a minority, and the
median and MAD (breakdown point 50 %) only move up a little as long as a den works fewer than 12 of 24
hours. The price: a site whose traffic is all in office hours (a business block) has a median near its
night level, so on weekdays its ordinary busy hours can pass `min_robust_z`; such sites come out
crowd-like with a score near 0.

Who drives it, over the site's congested hours: distinct SIMs placing outgoing events, the share of
the 5 busiest SIMs, the share of *heavy* SIMs (averaging >= `heavy_sim_calls_per_hour` outgoing events
per congested hour they were active in: a box or an operator, never a person at a concert), the share
from SIMs that earlier detectors flagged (`night.earlier_flags`, msisdn; None = no flags), and the
site's outgoing share of all its events in those hours. A crowd is hundreds of people making a few
calls each and receiving calls; a den is a handful of outgoing-only SIMs making dozens an hour each.

Score = lift x concentration, both 0..1:
* lift = min(1, z / `full_robust_z`), z of the mean congested hour (how far above baseline);
* concentration = 1 - (1 - heavy share)(1 - flagged share): either many calls per SIM or SIMs already
  flagged make the load den-like; a crowd has neither and scores ~0. The heavy share is scaled by
  min(1, heavy SIMs / `min_heavy_sims`): one very busy person at an office block is not a den.
Evidence calls the site "den-like" when concentration >= 0.5, else "crowd-like"; the top-5 and
outgoing shares are shown for the analyst but do not enter the score.

Flags: one row per cell (`entity_type` cell, the carrier's `cell_id`, so each carrier's field data
matches) of a congested site that carried its drivers' (heavy or flagged SIMs') outgoing events in
the congested hours, or every cell with outgoing events there when the site has no drivers (a crowd),
each with the site's score and evidence and what that cell carried, and the site's `site_key` and
congested span (`window_start`: the first congested hour's start, `window_end`: the last one's end).
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from detectors.base import Detector, Night, local_time
from detectors.history import located_site_hours
from detectors.rules.congestion import DEN_LIKE, MAD_SCALE, MIN_POISSON_MEAN, TOP_SIMS

SITE_COLUMNS = ("n_hours", "median", "sigma", "hours", "first_hour", "last_hour")  # a congested site's, on each row


class CellCongestion(Detector):
    name = "congestion"

    def flags(self, night: Night) -> DataFrame:
        """The cells of tonight's congested sites, each with its site's score and evidence."""
        s = self.settings
        located = night.cdr.where(F.col("site_key").isNotNull()).withColumn("hour", F.hour("start_time"))
        site_hours = congested_hours(located, self._baseline_window(night.earlier().site_hours, night), s)
        # every event at a congested site in its congested hours, with the site's hours and baseline on it;
        # one shuffle by site: every aggregate and window below groups by the site (and more), so Spark
        # keeps them in that partitioning instead of shuffling again
        events = (
            located.join(F.broadcast(site_hours), "site_key")
            .where(F.array_contains("hour_list", F.col("hour")))
            .drop("hour_list")
            .repartition("site_key")
        )
        sims = self._sim_cells(events, night.earlier_flags)
        cells = self._cells(sims)
        return cells.select(
            F.lit("cell").alias("entity_type"),
            F.col("cell_id").alias("entity_id"),
            F.col("score").cast("double").alias("score"),
            self._evidence().alias("evidence"),
            "site_key",
            local_time(night.day, F.col("first_hour") * 60).alias("window_start"),
            local_time(night.day, (F.col("last_hour") + 1) * 60).alias("window_end"),
        )

    def note(self, night: Night) -> str | None:
        """Says so when the history is too short for a baseline (and nothing could be flagged)."""
        have = self._baseline_window(night.earlier().days(), night).count()
        need = self.settings.min_baseline_days
        if have >= need:
            return None
        return f"no baseline yet ({have} of {need} days of history): no cell flagged"

    def _baseline_window(self, earlier: DataFrame, night: Night) -> DataFrame:
        """The rows of `earlier` (daily aggregates) inside the baseline window (the `baseline_days`
        days before the night)."""
        first = night.day - dt.timedelta(days=self.settings.baseline_days)
        return earlier.where((F.col("date") >= F.lit(first)) & (F.col("date") < F.lit(night.day)))

    def _sim_cells(self, events: DataFrame, earlier_flags: DataFrame | None) -> DataFrame:
        """One row per SIM and cell at a congested site: its outgoing and incoming events there, and of
        the SIM as a whole: calls, rank among the site's SIMs, heavy (calls per congested hour it was
        active in, so a SIM working one shift of two still counts), flagged by an earlier detector,
        driver (heavy or flagged), first_row (counts the SIM once)."""
        per_cell = events.groupBy("site_key", "msisdn", "cell_id").agg(
            F.count_if(F.col("direction") == "out").alias("out"),
            F.count_if(F.col("direction") == "in").alias("in"),
            F.collect_set(F.when(F.col("direction") == "out", F.col("hour"))).alias("out_hours"),
            F.min("site_label").alias("site_label"),
            *(F.max(c).alias(c) for c in SITE_COLUMNS),
        )
        sim = Window.partitionBy("site_key", "msisdn")
        busiest = Window.partitionBy("site_key").orderBy(F.desc("calls"), "msisdn")
        active = F.size(F.array_distinct(F.flatten(F.collect_list("out_hours").over(sim))))
        return (
            per_cell.withColumn("calls", F.sum("out").over(sim))
            .withColumn("active_hours", active)
            .join(F.broadcast(flagged_msisdns(earlier_flags, events.sparkSession)), "msisdn", "left")
            .withColumn("flagged", F.coalesce(F.col("flagged"), F.lit(False)))
            .withColumn(
                "heavy",
                (F.col("calls") > 0)
                & (F.col("calls") >= self.settings.heavy_sim_calls_per_hour * F.col("active_hours")),
            )
            .withColumn("driver", F.col("heavy") | F.col("flagged"))
            .withColumn("first_row", F.row_number().over(sim.orderBy("cell_id")) == 1)
            .withColumn("rank", F.dense_rank().over(busiest))
        )

    def _cells(self, sims: DataFrame) -> DataFrame:
        """Per cell what it carried, per site the drivers' shares and the score; keeps the cells that
        carried the drivers' outgoing events (every busy cell of a site without drivers)."""
        s = self.settings
        once = F.col("first_row") & (F.col("calls") > 0)
        cells = sims.groupBy("site_key", "cell_id").agg(
            F.sum("out").alias("cell_out"),
            F.sum(F.col("out") + F.col("in")).alias("cell_events"),
            F.sum(F.when(F.col("driver"), F.col("out")).otherwise(0)).alias("cell_driver_out"),
            F.sum(F.when(F.col("heavy"), F.col("out")).otherwise(0)).alias("cell_heavy_out"),
            F.sum(F.when(F.col("flagged"), F.col("out")).otherwise(0)).alias("cell_flagged_out"),
            F.count_if(once).alias("cell_sims"),
            F.count_if(once & F.col("heavy")).alias("cell_heavy_sims"),
            F.sum(F.when(once & (F.col("rank") <= TOP_SIMS), F.col("calls")).otherwise(0)).alias("cell_top"),
            F.min("site_label").alias("site_label"),
            *(F.max(c).alias(c) for c in SITE_COLUMNS),
        )
        site = Window.partitionBy("site_key")
        for total, part in (
            ("n_out", "cell_out"),
            ("n_events", "cell_events"),
            ("n_sims", "cell_sims"),
            ("heavy_calls", "cell_heavy_out"),
            ("n_heavy", "cell_heavy_sims"),
            ("flagged_calls", "cell_flagged_out"),
            ("driver_calls", "cell_driver_out"),
            ("top_calls", "cell_top"),
        ):
            cells = cells.withColumn(total, F.sum(part).over(site))
        has_drivers = F.col("driver_calls") > 0
        return (
            cells.where(F.col("cell_out") > 0)
            .where(~has_drivers | (F.col("cell_driver_out") > 0))
            .withColumn("has_drivers", has_drivers)
            .withColumn("cell_carried", F.when(has_drivers, F.col("cell_driver_out")).otherwise(F.col("cell_out")))
            .withColumn("z", (F.col("n_out") / F.col("n_hours") - F.col("median")) / F.col("sigma"))
            .withColumn(
                "heavy_share",
                F.col("heavy_calls") / F.col("n_out") * F.least(F.lit(1.0), F.col("n_heavy") / s.min_heavy_sims),
            )
            .withColumn("flagged_share", F.col("flagged_calls") / F.col("n_out"))
            .withColumn("concentration", 1 - (1 - F.col("heavy_share")) * (1 - F.col("flagged_share")))
            .withColumn("score", F.least(F.lit(1.0), F.col("z") / s.full_robust_z) * F.col("concentration"))
        )

    def _evidence(self) -> Column:
        den_like = F.col("concentration") >= DEN_LIKE
        return F.format_string(
            "%s: %s outgoing calls/SMS %s at %s (baseline %s/h, robust z %s) from %s SIMs, avg %s each; "
            "busiest %d SIMs %d%%, %s SIM(s) at %s+ calls/h making %d%%, flagged SIMs %d%%, %d%% of the site's "
            "traffic outgoing; this cell carried %s of %s",
            F.when(den_like, "den-like").otherwise("crowd-like"),
            F.format_number("n_out", 0),
            F.col("hours"),
            F.col("site_label"),
            F.format_number("median", 0),
            F.format_number("z", 0),
            F.format_number("n_sims", 0),
            F.format_number(F.col("n_out") / F.col("n_sims"), 1),
            F.lit(TOP_SIMS),
            percent(F.col("top_calls") / F.col("n_out")),
            F.format_number("n_heavy", 0),
            F.format_number(F.lit(self.settings.heavy_sim_calls_per_hour), 0),
            percent(F.col("heavy_calls") / F.col("n_out")),
            percent(F.col("flagged_share")),
            percent(F.col("n_out") / F.col("n_events")),
            F.format_number("cell_carried", 0),
            F.when(F.col("has_drivers"), "those SIMs' calls").otherwise("them"),
        )


def congested_hours(located: DataFrame, counts: DataFrame, settings) -> DataFrame:
    """Tonight's events (with `hour`) and the baseline window's `hourly_counts` -> one row per
    congested site: n_hours, hour_list, hours (text), first_hour, last_hour, median, sigma. Nothing
    when the counts have < min_baseline_days days."""
    hourly = (
        located.where(F.col("direction") == "out")
        .groupBy("site_key", "hour")
        .agg(F.count("*").alias("calls"))
        .where(F.col("calls") >= settings.min_hour_calls)
    )
    enough = (
        counts.agg(F.countDistinct("date").alias("n_days"))
        .where(F.col("n_days") >= settings.min_baseline_days)
        .select()
    )
    baseline = site_baseline(counts)
    return (
        hourly.crossJoin(F.broadcast(enough))
        .join(F.broadcast(baseline), "site_key", "left")
        .fillna({"median": 0.0, "sigma": MIN_POISSON_MEAN**0.5})  # never busy before: Poisson(1)
        .where((F.col("calls") - F.col("median")) / F.col("sigma") >= settings.min_robust_z)
        .groupBy("site_key")
        .agg(
            F.count("*").alias("n_hours"),
            F.sort_array(F.collect_list("hour")).alias("hour_list"),
            F.max("median").alias("median"),
            F.max("sigma").alias("sigma"),
        )
        .withColumn("hours", hour_ranges(F.col("hour_list")))
        .withColumn("first_hour", F.array_min("hour_list"))
        .withColumn("last_hour", F.array_max("hour_list"))
    )


def hourly_counts(history: DataFrame) -> DataFrame:
    """site_key, date, hour, n: outgoing events per site and local hour of each earlier day, from raw
    located rows (what the lake's `cell_hour` aggregate gives `detect` without reading them)."""
    return located_site_hours(history).select("site_key", "date", "hour", "n")


def site_baseline(counts: DataFrame) -> DataFrame:
    """hourly_counts -> site_key, median, sigma over every hour of every day in `counts`, the hours a
    site had no outgoing event counted as 0 (they are not in `counts`)."""
    n_days = counts.agg(F.countDistinct("date").alias("n_days"))
    per_site = counts.groupBy("site_key").agg(F.collect_list("n").alias("busy")).crossJoin(F.broadcast(n_days))
    silent_hours = (24 * F.col("n_days") - F.size("busy")).cast("int")
    every_hour = F.array_sort(F.concat(F.array_repeat(F.lit(0), silent_hours), F.col("busy")))
    return (
        per_site.withColumn("n", every_hour)
        .withColumn("median", middle(F.col("n")))
        .withColumn("mad", middle(F.array_sort(F.transform("n", lambda x: F.abs(x - F.col("median"))))))
        .select(
            "site_key",
            "median",
            F.greatest(F.col("mad") * MAD_SCALE, F.sqrt(F.greatest("median", F.lit(MIN_POISSON_MEAN)))).alias("sigma"),
        )
    )


def middle(ordered: Column) -> Column:
    """The median of a sorted array: its middle element, or the mean of the two middle ones."""
    n = F.size(ordered)
    low, high = F.floor((n + 1) / 2).cast("int"), (F.floor(n / 2) + 1).cast("int")
    return (F.element_at(ordered, low) + F.element_at(ordered, high)) / 2


def hour_ranges(hours: Column) -> Column:
    """A sorted array of hours -> "09:00–12:00, 14:00–18:00": each run of consecutive hours starts at an
    hour whose predecessor is missing and ends at the first hour from there whose successor is missing."""
    starts = F.filter(hours, lambda h: ~F.array_contains(hours, h - 1))
    return F.array_join(
        F.transform(
            starts,
            lambda start: F.format_string(
                "%02d:00–%02d:00",
                start,
                F.array_min(F.filter(hours, lambda h: (h >= start) & ~F.array_contains(hours, h + 1))) + 1,
            ),
        ),
        ", ",
    )


def flagged_msisdns(earlier_flags: DataFrame | None, spark) -> DataFrame:
    """msisdn, flagged=True for every SIM an earlier detector flagged tonight (none when there are none)."""
    if earlier_flags is None:
        return spark.createDataFrame([], "msisdn string, flagged boolean")
    return (
        earlier_flags.where(F.col("entity_type") == "msisdn")
        .select(F.col("entity_id").alias("msisdn"))
        .distinct()
        .withColumn("flagged", F.lit(True))
    )


def percent(share: Column) -> Column:
    return F.round(share * 100).cast("int")
