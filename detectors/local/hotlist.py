"""What the field found, seen again, on Polars: the port of `detectors.hotlist` (read its docstring
for the matches and their scores). The same flags, column for column: the differential tests run
both on the same nights."""

from __future__ import annotations

import math

import polars as pl

from detectors.local.base import Detector, LocalNight, flag_frame
from detectors.local.text import fixed
from detectors.rules.hotlist import EARTH_RADIUS_M, SCORES

c = pl.col
OUT = c("direction") == "out"
MATCH = ("den_id", "outcome", "since", "detail")  # a SIM's den: the least of these, in this order (Spark's struct min)
SIM_FLAG_DETAILS = {
    "site_key": pl.String,
    "window_start": pl.Datetime("us", "UTC"),
    "window_end": pl.Datetime("us", "UTC"),
    "related_den": pl.String,
}
DEGREES = math.pi / 180.0  # Java's Math.toRadians factor


class HotlistMatch(Detector):
    """SIMs on the devices, numbers and sites of dens the field found (see `detectors.hotlist`)."""

    name = "hotlist"

    def flags(self, night: LocalNight) -> pl.DataFrame:
        if night.hotlist is None:
            return flag_frame(SIM_FLAG_DETAILS)
        hotlist = night.hotlist.lazy()
        devices = _entries_of(night.cdr, hotlist, "imei").with_columns(c("imei").alias("detail"))
        numbers = _entries_of(night.cdr.filter(OUT), hotlist, "msisdn").with_columns(pl.lit("").alias("detail"))
        matches = [_per_sim(devices, "device"), _per_sim(numbers, "number")]
        if night.earlier_flags is not None:
            matches.append(_per_sim(self._near_sites(night, hotlist), "near_site"))
        matched = pl.concat(matches).collect()
        # the best match per SIM: the highest score, then the first den by id
        best = (
            matched.sort("entity_id", "score", "related_den", descending=[False, True, False])
            .group_by("entity_id", maintain_order=True)
            .first()
        )
        return best.select(
            pl.lit("msisdn").alias("entity_type"),
            "entity_id",
            c("score").cast(pl.Float64),
            _evidence().alias("evidence"),
            "site_key",
            "window_start",
            "window_end",
            "related_den",
        )

    def _near_sites(self, night: LocalNight, hotlist: pl.LazyFrame) -> pl.LazyFrame:
        """Tonight's outgoing records of SIMs that earlier detectors flagged at a site within
        `near_site_m` of a hotlisted site with >= `min_near_sims` such SIMs, with its entry."""
        settings = self.settings
        sites = hotlist.filter(c("kind") == "site").select(
            "den_id", "outcome", "since", c("lat").alias("den_lat"), c("lon").alias("den_lon")
        )
        positions = night.cdr.filter(c("site_key").is_not_null()).select("site_key", "site_lat", "site_lon").unique()
        flagged = (
            night.earlier_flags.lazy()
            .filter((c("entity_type") == "msisdn") & c("site_key").is_not_null())
            .select(c("entity_id").alias("msisdn"), "site_key")
            .unique()
            .join(positions, on="site_key")
        )
        near = (
            flagged.join(sites, how="cross")
            .with_columns(distance_m(c("site_lat"), c("site_lon"), c("den_lat"), c("den_lon")).alias("distance_m"))
            .filter(c("distance_m") <= settings.near_site_m)
        )
        sims = near.group_by("den_id").agg(c("msisdn").n_unique().cast(pl.Int64).alias("sims"))
        # flagged SIMs near hotlisted sites: a small frame, its detail text written per value
        near = (
            near.join(sims, on="den_id")
            .filter(c("sims") >= settings.min_near_sims)
            .collect()
            .select(
                "msisdn",
                "den_id",
                "outcome",
                "since",
                pl.format("one of {} flagged SIMs within {} m", c("sims"), fixed(c("distance_m"), 0)).alias("detail"),
            )
        )
        return night.cdr.filter(OUT).join(near.lazy(), on="msisdn")


def _entries_of(rows: pl.LazyFrame, hotlist: pl.LazyFrame, kind: str) -> pl.LazyFrame:
    """`rows` whose column `kind` (imei, msisdn) is a hotlisted entity of that kind, with its entry."""
    entries = hotlist.filter(c("kind") == kind).select(c("entity_id").alias(kind), "den_id", "outcome", "since")
    return rows.join(entries, on=kind)


def _per_sim(rows: pl.LazyFrame, match: str) -> pl.LazyFrame:
    """One row per SIM of the matched records (`msisdn` and the entry's `den_id, outcome, since,
    detail` on the CDR's columns): its main site, first/last event, the matched den (the least entry
    by den id, outcome, day, detail: every run names the same) and `n` records; `match` names it."""
    sites = (
        rows.filter(c("site_key").is_not_null())
        .group_by("msisdn", "site_key")
        .agg(pl.len().alias("count"))
        .sort("msisdn", "count", "site_key", descending=[False, True, False])
        .group_by("msisdn", maintain_order=True)
        .agg(c("site_key").first())
    )
    per_sim = (
        rows.sort("msisdn", *MATCH)
        .group_by("msisdn", maintain_order=True)
        .agg(
            *(c(name).first() for name in MATCH),
            pl.len().cast(pl.Int64).alias("n"),
            c("start_time").min().alias("window_start"),
            c("start_time").max().alias("window_end"),
        )
    )
    return per_sim.join(sites, on="msisdn", how="left").select(
        c("msisdn").alias("entity_id"),
        pl.lit(SCORES[match], pl.Float64).alias("score"),
        pl.lit(match).alias("match"),
        *MATCH,
        "n",
        "site_key",
        "window_start",
        "window_end",
        c("den_id").alias("related_den"),
    )


def _evidence() -> pl.Expr:
    """The sentence of the SIM's best match (the Spark detector's format strings)."""
    entry = pl.format("den {} ({} on {})", c("den_id"), c("outcome"), c("since").cast(pl.String))
    match = c("match")
    return (
        pl.when(match == "device")
        .then(pl.format("on device {} of {}: a known box or handset with another SIM", c("detail"), entry))
        .when(match == "number")
        .then(pl.format("number of {} active again: {} outgoing calls/SMS tonight", entry, c("n")))
        .otherwise(pl.format("{} of the site of {}: a new group where one was", c("detail"), entry))
    )


def distance_m(lat1: pl.Expr, lon1: pl.Expr, lat2: pl.Expr, lon2: pl.Expr) -> pl.Expr:
    """Great-circle distance in metres (haversine), as `detectors.hotlist.distance_m` computes it."""
    p1, p2 = lat1 * DEGREES, lat2 * DEGREES
    a = ((p2 - p1) / 2).sin().pow(2) + p1.cos() * p2.cos() * (((lon2 - lon1) * DEGREES) / 2).sin().pow(2)
    return pl.lit(2 * EARTH_RADIUS_M) * a.sqrt().arcsin()
