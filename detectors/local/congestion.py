"""Base-station congestion on Polars: the port of `detectors.congestion` (read its docstring for the
all-hours baseline, the drivers and the score). The same flags, column for column: the differential
tests run both on the same nights."""

from __future__ import annotations

import datetime as dt
import math
from decimal import ROUND_HALF_EVEN, Decimal

import polars as pl

from detectors.local.base import Detector, LocalNight, flag_frame, spark_round
from detectors.local.history import local_hour
from detectors.rules.congestion import DEN_LIKE, MAD_SCALE, MIN_POISSON_MEAN, TOP_SIMS

c = pl.col
OUT = c("direction") == "out"
IN = c("direction") == "in"
CELL_FLAG_DETAILS = {
    "site_key": pl.String,
    "window_start": pl.Datetime("us", "UTC"),
    "window_end": pl.Datetime("us", "UTC"),
}


class CellCongestion(Detector):
    name = "congestion"

    def flags(self, night: LocalNight) -> pl.DataFrame:
        """The cells of tonight's congested sites, each with its site's score and evidence."""
        located = night.cdr.filter(c("site_key").is_not_null()).with_columns(local_hour(night.timezone).alias("hour"))
        hours, sites = congested_hours(located, self._baseline_window(night.earlier().site_hours, night), self.settings)
        # every event at a congested site in its congested hours
        events = located.join(hours, on=["site_key", "hour"])
        cells = self._cells(self._sim_cells(events, night.earlier_flags)).join(sites, on="site_key").collect()
        if cells.is_empty():
            return flag_frame(CELL_FLAG_DETAILS)
        scored = self._scored(cells)
        return scored.select(
            pl.lit("cell").alias("entity_type"),
            c("cell_id").alias("entity_id"),
            c("score").cast(pl.Float64).alias("score"),
            self._evidence().alias("evidence"),
            "site_key",
            local_time(night.day, c("first_hour") * 60, night.timezone).alias("window_start"),
            local_time(night.day, (c("last_hour") + 1) * 60, night.timezone).alias("window_end"),
        )

    def note(self, night: LocalNight) -> str | None:
        """Says so when the history is too short for a baseline (and nothing could be flagged)."""
        days = night.earlier().sims.select("date").unique()
        have = self._baseline_window(days, night).select(pl.len()).collect().item()
        need = self.settings.min_baseline_days
        if have >= need:
            return None
        return f"no baseline yet ({have} of {need} days of history): no cell flagged"

    def _baseline_window(self, earlier: pl.LazyFrame, night: LocalNight) -> pl.LazyFrame:
        """The rows of `earlier` (daily aggregates) inside the baseline window (the `baseline_days`
        days before the night)."""
        first = night.day - dt.timedelta(days=self.settings.baseline_days)
        return earlier.filter((c("date") >= pl.lit(first)) & (c("date") < pl.lit(night.day)))

    def _sim_cells(self, events: pl.LazyFrame, earlier_flags: pl.DataFrame | None) -> pl.LazyFrame:
        """One row per SIM and cell at a congested site (see `detectors.congestion`): its out and in
        events and site label there, and of the SIM at the site: calls, rank among the site's SIMs,
        heavy, flagged, driver, first_row (its first cell by cell_id, so the SIM counts once)."""
        per_cell = events.group_by("site_key", "msisdn", "cell_id").agg(
            OUT.sum().cast(pl.Int64).alias("out"),
            IN.sum().cast(pl.Int64).alias("in"),
            c("site_label").min(),
        )
        per_sim = (
            events.group_by("site_key", "msisdn")
            .agg(
                OUT.sum().cast(pl.Int64).alias("calls"),
                c("hour").filter(OUT).n_unique().cast(pl.Int64).alias("active_hours"),
                c("cell_id").min().alias("first_cell"),
            )
            # Spark's dense_rank over the site by calls desc, msisdn: one SIM per rank
            .sort("site_key", "calls", "msisdn", descending=[False, True, False])
            .with_columns((pl.int_range(pl.len()).over("site_key") + 1).alias("rank"))
            .join(flagged_msisdns(earlier_flags).lazy(), on="msisdn", how="left")
            .with_columns(c("flagged").fill_null(False))
            .with_columns(
                ((c("calls") > 0) & (c("calls") >= self.settings.heavy_sim_calls_per_hour * c("active_hours"))).alias(
                    "heavy"
                )
            )
            .with_columns((c("heavy") | c("flagged")).alias("driver"))
        )
        return per_cell.join(per_sim, on=["site_key", "msisdn"]).with_columns(
            (c("cell_id") == c("first_cell")).alias("first_row")
        )

    @staticmethod
    def _cells(sims: pl.LazyFrame) -> pl.LazyFrame:
        """Per cell what it carried, per site the drivers' totals; keeps the cells that carried the
        drivers' outgoing events (every busy cell of a site without drivers)."""
        once = c("first_row") & (c("calls") > 0)

        def total(condition: pl.Expr, value: str) -> pl.Expr:
            return pl.when(condition).then(c(value)).otherwise(0).sum().cast(pl.Int64)

        cells = sims.group_by("site_key", "cell_id").agg(
            c("out").sum().alias("cell_out"),
            (c("out") + c("in")).sum().alias("cell_events"),
            total(c("driver"), "out").alias("cell_driver_out"),
            total(c("heavy"), "out").alias("cell_heavy_out"),
            total(c("flagged"), "out").alias("cell_flagged_out"),
            once.sum().cast(pl.Int64).alias("cell_sims"),
            (once & c("heavy")).sum().cast(pl.Int64).alias("cell_heavy_sims"),
            total(once & (c("rank") <= TOP_SIMS), "calls").alias("cell_top"),
            c("site_label").min(),
        )
        cells = cells.with_columns(
            c(part).sum().over("site_key").alias(name)
            for name, part in (
                ("n_out", "cell_out"),
                ("n_events", "cell_events"),
                ("n_sims", "cell_sims"),
                ("heavy_calls", "cell_heavy_out"),
                ("n_heavy", "cell_heavy_sims"),
                ("flagged_calls", "cell_flagged_out"),
                ("driver_calls", "cell_driver_out"),
                ("top_calls", "cell_top"),
            )
        )
        has_drivers = c("driver_calls") > 0
        return (
            cells.filter(c("cell_out") > 0)
            .filter(~has_drivers | (c("cell_driver_out") > 0))
            .with_columns(has_drivers.alias("has_drivers"))
            .with_columns(
                pl.when(c("has_drivers")).then(c("cell_driver_out")).otherwise(c("cell_out")).alias("cell_carried")
            )
        )

    def _scored(self, cells: pl.DataFrame) -> pl.DataFrame:
        """z of the mean congested hour, the heavy and flagged shares, concentration and score."""
        s = self.settings
        return (
            cells.with_columns(
                ((c("n_out") / c("n_hours") - c("median")) / c("sigma")).alias("z"),
                (c("heavy_calls") / c("n_out") * pl.min_horizontal(pl.lit(1.0), c("n_heavy") / s.min_heavy_sims)).alias(
                    "heavy_share"
                ),
                (c("flagged_calls") / c("n_out")).alias("flagged_share"),
            )
            .with_columns((1 - (1 - c("heavy_share")) * (1 - c("flagged_share"))).alias("concentration"))
            .with_columns(
                (pl.min_horizontal(pl.lit(1.0), c("z") / s.full_robust_z) * c("concentration")).alias("score")
            )
        )

    def _evidence(self) -> pl.Expr:
        den_like = c("concentration") >= DEN_LIKE
        return pl.format(
            "{}: {} outgoing calls/SMS {} at {} (baseline {}/h, robust z {}) from {} SIMs, avg {} each; "
            "busiest {} SIMs {}%, {} SIM(s) at {}+ calls/h making {}%, flagged SIMs {}%, {}% of the site's "
            "traffic outgoing; this cell carried {} of {}",
            pl.when(den_like).then(pl.lit("den-like")).otherwise(pl.lit("crowd-like")),
            format_number(c("n_out"), 0),
            c("hours"),
            c("site_label").fill_null("null"),
            format_number(c("median"), 0),
            format_number(c("z"), 0),
            format_number(c("n_sims"), 0),
            format_number(c("n_out") / c("n_sims"), 1),
            pl.lit(str(TOP_SIMS)),
            percent(c("top_calls") / c("n_out")),
            format_number(c("n_heavy"), 0),
            pl.lit(java_format_number(float(self.settings.heavy_sim_calls_per_hour), 0)),
            percent(c("heavy_calls") / c("n_out")),
            percent(c("flagged_share")),
            percent(c("n_out") / c("n_events")),
            format_number(c("cell_carried"), 0),
            pl.when(c("has_drivers")).then(pl.lit("those SIMs' calls")).otherwise(pl.lit("them")),
        )


def congested_hours(located: pl.LazyFrame, counts: pl.LazyFrame, settings) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Tonight's events (with `hour`) and the baseline window's hourly counts -> (site_key, hour of
    every congested hour; one row per congested site: n_hours, hours (text), first_hour, last_hour,
    median, sigma). Nothing when the counts have < min_baseline_days days."""
    hourly = (
        located.filter(OUT)
        .group_by("site_key", "hour")
        .agg(pl.len().cast(pl.Int64).alias("calls"))
        .filter(c("calls") >= settings.min_hour_calls)
    )
    enough = counts.select(c("date").n_unique().alias("n_days")).filter(c("n_days") >= settings.min_baseline_days)
    hours = (
        hourly.join(enough, how="cross")
        .join(site_baseline(counts), on="site_key", how="left")
        .with_columns(c("median").fill_null(0.0), c("sigma").fill_null(MIN_POISSON_MEAN**0.5))  # Poisson(1)
        .filter((c("calls") - c("median")) / c("sigma") >= settings.min_robust_z)
        .select("site_key", "hour", "median", "sigma")
    )
    runs = (
        hours.sort("site_key", "hour")
        .with_columns((c("hour") != c("hour").shift(1).over("site_key") + 1).fill_null(True).alias("starts"))
        .with_columns(c("starts").cum_sum().over("site_key").alias("run"))
        .group_by("site_key", "run")
        .agg(c("hour").min().alias("start"), (c("hour").max() + 1).alias("end"))
        .with_columns(pl.format("{}:00–{}:00", two_digits(c("start")), two_digits(c("end"))).alias("text"))
        .group_by("site_key")
        .agg(c("text").sort_by("start").str.join(", ").alias("hours"))
    )
    sites = (
        hours.group_by("site_key")
        .agg(
            pl.len().cast(pl.Int64).alias("n_hours"),
            c("median").max(),
            c("sigma").max(),
            c("hour").min().alias("first_hour"),
            c("hour").max().alias("last_hour"),
        )
        .join(runs, on="site_key")
    )
    return hours.select("site_key", "hour"), sites


def site_baseline(counts: pl.LazyFrame) -> pl.LazyFrame:
    """Hourly counts (site_key, date, hour, n) -> site_key, median, sigma over every hour of every day
    in `counts`, the hours a site had no outgoing event counted as 0 (they are not in `counts`)."""
    n_days = counts.select(c("date").n_unique().cast(pl.Int64).alias("n_days"))
    silent = (
        counts.group_by("site_key")
        .agg(pl.len().cast(pl.Int64).alias("busy"))
        .join(n_days, how="cross")
        .select("site_key", pl.int_ranges(0, 24 * c("n_days") - c("busy")).alias("zero"))
        .explode("zero")
        .filter(c("zero").is_not_null())
        .select("site_key", pl.lit(0, pl.Int64).alias("n"))
    )
    every_hour = pl.concat([counts.select("site_key", c("n").cast(pl.Int64)), silent])
    medians = every_hour.group_by("site_key").agg(middle(c("n")).alias("median"))
    mads = (
        every_hour.join(medians, on="site_key")
        .group_by("site_key")
        .agg(c("median").first(), middle((c("n") - c("median")).abs()).alias("mad"))
    )
    return mads.select(
        "site_key",
        "median",
        pl.max_horizontal(c("mad") * MAD_SCALE, pl.max_horizontal(c("median"), pl.lit(MIN_POISSON_MEAN)).sqrt()).alias(
            "sigma"
        ),
    )


def middle(values: pl.Expr) -> pl.Expr:
    """The median of a group as Spark's `middle`: its middle element, or the mean of the two middle ones."""
    ordered = values.sort()
    n = ordered.len()
    return (ordered.get((n + 1) // 2 - 1) + ordered.get(n // 2)) / 2


def two_digits(hour: pl.Expr) -> pl.Expr:
    """%02d of a non-negative number."""
    return hour.cast(pl.String).str.zfill(2)


def flagged_msisdns(earlier_flags: pl.DataFrame | None) -> pl.DataFrame:
    """msisdn, flagged=True for every SIM an earlier detector flagged tonight (none when there are none)."""
    if earlier_flags is None:
        return pl.DataFrame(schema={"msisdn": pl.String, "flagged": pl.Boolean})
    return (
        earlier_flags.filter(c("entity_type") == "msisdn")
        .select(c("entity_id").alias("msisdn"))
        .unique()
        .with_columns(pl.lit(True).alias("flagged"))
    )


def local_time(day: dt.date, minutes: pl.Expr, timezone: str) -> pl.Expr:
    """The instant (UTC) `minutes` after local midnight of `day` (`detectors.base.local_time`)."""
    midnight = pl.lit(dt.datetime.combine(day, dt.time()), pl.Datetime("us")).dt.replace_time_zone(timezone)
    return (midnight + pl.duration(minutes=minutes)).dt.convert_time_zone("UTC")


def percent(share: pl.Expr) -> pl.Expr:
    return spark_round(share * 100).cast(pl.Int32)


def java_format_number(value: float | int | None, digits: int) -> str | None:
    """Spark's `format_number`: Java's DecimalFormat `#,##0.<digits zeros>` (US symbols), which rounds
    the double's exact binary value half to even."""
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("-∞" if value < 0 else "∞")
    number = Decimal(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_EVEN)
    return f"{number:,f}"


def format_number(value: pl.Expr, digits: int) -> pl.Expr:
    """`java_format_number` of a column (flag-sized frames only: it runs per value)."""
    return value.map_elements(lambda v: java_format_number(v, digits), return_dtype=pl.String, skip_nulls=True)
