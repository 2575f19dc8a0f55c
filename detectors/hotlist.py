"""What the field found, seen again: numbers, devices and sites of raided or confirmed dens.

Police practice after a raid (断卡) is to follow the den's cards and devices: a seized GOIP box is
often re-deployed with fresh SIMs, a confirmed den's numbers keep calling, and a broken-up crew
sets up again a few streets away. `night.hotlist` holds the entries of lake/hotlist that apply
tonight (visited before tonight, not expired: `jobs.feedback.store.read_hotlist`). Per SIM, the
strongest of:

| match        | condition                                                              | score |
|--------------|------------------------------------------------------------------------|-------|
| `device`     | the SIM used a hotlisted IMEI tonight (a known box with new SIMs)      | 0.95  |
| `number`     | a hotlisted number placed calls or SMS tonight                         | 0.90  |
| `near_site`  | >= `min_near_sims` SIMs flagged by the other detectors tonight sit      | 0.70  |
|              | within `near_site_m` of a hotlisted site (a new group where one was)    |       |

The flag names the den it matched (`related_den`, and in the evidence with the outcome and its
day), so `dens` can link tonight's den to it and say so on the lead. A night without a hotlist
flags nothing.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from detectors.base import Detector, Night
from detectors.rules.hotlist import EARTH_RADIUS_M, SCORES


class HotlistMatch(Detector):
    """SIMs on the devices, numbers and sites of dens the field found (see the module docstring)."""

    name = "hotlist"

    def flags(self, night: Night) -> DataFrame:
        spark = night.cdr.sparkSession
        empty = spark.createDataFrame(
            [],
            "entity_type string, entity_id string, score double, evidence string, "
            "site_key string, window_start timestamp, window_end timestamp, "
            "related_den string",
        )
        if night.hotlist is None:
            return empty
        hotlist = F.broadcast(night.hotlist)
        outgoing = night.cdr.where(F.col("direction") == "out")
        matches = [self._on_devices(night.cdr, hotlist), self._numbers(outgoing, hotlist)]
        if night.earlier_flags is not None:
            matches.append(self._near_sites(night, hotlist))
        best = Window.partitionBy("entity_id").orderBy(F.desc("score"), F.col("related_den"))
        matched = matches[0].unionByName(matches[1])
        for more in matches[2:]:
            matched = matched.unionByName(more)
        return (
            matched.withColumn("rank", F.row_number().over(best))
            .where(F.col("rank") == 1)
            .select(
                F.lit("msisdn").alias("entity_type"),
                F.col("entity_id"),
                F.col("score"),
                F.col("evidence"),
                "site_key",
                "window_start",
                "window_end",
                "related_den",
            )
        )

    @staticmethod
    def _on_devices(cdr: DataFrame, hotlist: DataFrame) -> DataFrame:
        on = _entries_of(cdr, hotlist, "imei").withColumn("detail", F.col("imei"))
        return _per_sim(
            on,
            "device",
            lambda m, n: F.format_string(
                "on device %s of den %s (%s on %s): a known box or handset with another SIM",
                m["detail"],
                m["den_id"],
                m["outcome"],
                m["since"].cast("string"),
            ),
        )

    @staticmethod
    def _numbers(outgoing: DataFrame, hotlist: DataFrame) -> DataFrame:
        on = _entries_of(outgoing, hotlist, "msisdn").withColumn("detail", F.lit(""))
        return _per_sim(
            on,
            "number",
            lambda m, n: F.format_string(
                "number of den %s (%s on %s) active again: %d outgoing calls/SMS tonight",
                m["den_id"],
                m["outcome"],
                m["since"].cast("string"),
                n,
            ),
        )

    def _near_sites(self, night: Night, hotlist: DataFrame) -> DataFrame:
        settings = self.settings
        sites = hotlist.where(F.col("kind") == "site").select(
            "den_id", "outcome", "since", F.col("lat").alias("den_lat"), F.col("lon").alias("den_lon")
        )
        positions = night.cdr.where(F.col("site_key").isNotNull()).select("site_key", "site_lat", "site_lon").distinct()
        flagged = (
            night.earlier_flags.where((F.col("entity_type") == "msisdn") & F.col("site_key").isNotNull())
            .select(F.col("entity_id").alias("msisdn"), "site_key")
            .distinct()
            .join(positions, "site_key")
        )
        near = (
            flagged.crossJoin(sites)
            .withColumn(
                "distance_m", distance_m(F.col("site_lat"), F.col("site_lon"), F.col("den_lat"), F.col("den_lon"))
            )
            .where(F.col("distance_m") <= settings.near_site_m)
        )
        sims = near.groupBy("den_id").agg(F.countDistinct("msisdn").alias("sims"))
        near = (
            near.join(sims, "den_id")
            .where(F.col("sims") >= settings.min_near_sims)
            .select(
                "msisdn",
                "den_id",
                "outcome",
                "since",
                F.format_string("one of %d flagged SIMs within %.0f m", F.col("sims"), F.col("distance_m")).alias(
                    "detail"
                ),
            )
        )
        on = night.cdr.where(F.col("direction") == "out").join(near, "msisdn")
        return _per_sim(
            on,
            "near_site",
            lambda m, n: F.format_string(
                "%s of the site of den %s (%s on %s): a new group where one was",
                m["detail"],
                m["den_id"],
                m["outcome"],
                m["since"].cast("string"),
            ),
        )


def _entries_of(rows: DataFrame, hotlist: DataFrame, kind: str) -> DataFrame:
    """`rows` whose column `kind` (imei, msisdn) is a hotlisted entity of that kind, with its entry."""
    entries = hotlist.where(F.col("kind") == kind).select(F.col("entity_id").alias(kind), "den_id", "outcome", "since")
    return rows.join(entries, kind)


def _per_sim(rows: DataFrame, match: str, evidence) -> DataFrame:
    """One row per SIM of the matched records (`msisdn, den_id, outcome, since, detail` and the CDR's
    columns): its main site, first/last event, and the matched den — the first by id when several
    match, so every run names the same — with `evidence(match struct, n records)`."""
    sites = (
        rows.where(F.col("site_key").isNotNull())
        .groupBy("msisdn", "site_key")
        .count()
        .withColumn(
            "rank", F.row_number().over(Window.partitionBy("msisdn").orderBy(F.desc("count"), F.col("site_key")))
        )
        .where(F.col("rank") == 1)
        .select("msisdn", "site_key")
    )
    per_sim = rows.groupBy("msisdn").agg(
        F.min(F.struct("den_id", "outcome", "since", "detail")).alias("m"),
        F.count("*").alias("n"),
        F.min("start_time").alias("window_start"),
        F.max("start_time").alias("window_end"),
    )
    return per_sim.join(sites, "msisdn", "left").select(
        F.col("msisdn").alias("entity_id"),
        F.lit(SCORES[match]).alias("score"),
        evidence(F.col("m"), F.col("n")).alias("evidence"),
        "site_key",
        "window_start",
        "window_end",
        F.col("m.den_id").alias("related_den"),
    )


def distance_m(lat1: Column, lon1: Column, lat2: Column, lon2: Column) -> Column:
    """Great-circle distance in metres (haversine), as a Spark expression."""
    p1, p2 = F.radians(lat1), F.radians(lat2)
    a = F.pow(F.sin((p2 - p1) / 2), 2) + F.cos(p1) * F.cos(p2) * F.pow(F.sin(F.radians(lon2 - lon1) / 2), 2)
    return F.lit(2 * EARTH_RADIUS_M) * F.asin(F.sqrt(a))
