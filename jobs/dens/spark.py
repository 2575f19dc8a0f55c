"""The dens step on Spark (see `jobs.dens` for the step, `jobs.dens.step` for its engine-free half):
the night's located CDRs and flags in Spark, the suspects' aggregates (`graph`, `describe`) collected,
then plain Python, then lake/dens and lake/victims written with `lake_spark.replace_date`."""

from __future__ import annotations

import datetime as dt
import logging
from typing import NamedTuple

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.config import Config
from jobs.dens.core import DenFacts, MemberFlag, NightFacts, describe_dens
from jobs.dens.describe import describe, membership, victims
from jobs.dens.graph import collect_edges, suspect_edges, suspect_rows, suspect_sims
from jobs.dens.step import DensResult, group_facts, groups_from, merged_groups, require_flags, with_history
from jobs.io import lake_spark, layout
from jobs.night import NightCache, load_night, release_night
from schemas.tables import DEN, FLAG, VICTIMS

log = logging.getLogger("jobs.dens")


def earlier_dens(config: Config, spark: SparkSession, day: dt.date) -> list[dict]:
    """Rows of lake/dens for the `lookback_nights` nights before `day` (small: collected)."""
    rows = []
    for back in range(1, config.dens.lookback_nights + 1):
        earlier = day - dt.timedelta(days=back)
        if layout.partition_path(config, DEN, earlier).is_dir():
            rows.extend(r.asDict() for r in lake_spark.read_partition(config, spark, DEN, earlier).collect())
    return rows


class Found(NamedTuple):
    """What `find_dens` found: den rows (dicts in DEN's columns), the victims DataFrame (VICTIMS'
    columns), the persisted per-den victims frame (unpersist when written) and warnings."""

    rows: list[dict]
    victims: DataFrame
    found: DataFrame
    warnings: list[str]


def flags_of(flags_df: DataFrame, facts: dict[str, DenFacts]) -> list[MemberFlag]:
    """The night's flags on the dens' own SIMs, devices and cells: only what the description needs
    reaches the driver, however many entities the detectors flagged."""
    spark = flags_df.sparkSession
    wanted = sorted(
        {
            (kind, e)
            for f in facts.values()
            for kind, entities in (("msisdn", f.sims), ("imei", f.imeis), ("cell", f.cells))
            for e in entities
        }
    )
    if not wanted:
        return []
    keys = spark.createDataFrame(wanted, "entity_type string, entity_id string")
    columns = list(MemberFlag.__dataclass_fields__)
    on_members = flags_df.join(F.broadcast(keys), ["entity_type", "entity_id"], "left_semi")
    return [MemberFlag(**r.asDict()) for r in on_members.select(*columns).orderBy(*columns).collect()]


def suspect_groups(rows: DataFrame, flags_df: DataFrame, settings) -> tuple[list[list[str]], list[str]]:
    """The night's den groups (SIMs) and the bounds' warnings, from the suspects' rows (`suspect_rows`)."""
    edges, warnings = collect_edges(
        suspect_edges(rows, flags_df),
        min_edge_weight=settings.min_edge_weight,
        max_degree=settings.max_degree,
        max_edges=settings.max_edges,
        min_together=settings.min_together,
    )

    def lone_sims(n: int) -> list[str]:
        return [r.msisdn for r in suspect_sims(rows, flags_df).select("msisdn").orderBy("msisdn").limit(n).collect()]

    return groups_from(edges, warnings, lone_sims, settings)


def night_sites(cdr: DataFrame) -> list[tuple[float, float, str | None]]:
    """(lat, lon, district) of every located site of the night, by site_key (then position and
    district: a site whose cells lie in two districts is listed once for each, in a fixed order)."""
    return [
        (r.site_lat, r.site_lon, r.district)
        for r in cdr.where(F.col("site_key").isNotNull())
        .select("site_key", "site_lat", "site_lon", "district")
        .distinct()
        .orderBy("site_key", "site_lat", "site_lon", "district")
        .collect()
    ]


def night_facts(
    night, flags_df: DataFrame, groups: list[list[str]], facts: dict[str, DenFacts], found: DataFrame
) -> NightFacts:
    """The small facts `describe_dens` needs, collected: each group's aggregates (`describe`, in
    group order), the flags on their members, victims per den, and every located site of the night."""
    dens = group_facts(groups, facts)
    n_victims = {r.den_key: r["count"] for r in found.groupBy("den_key").count().collect()}
    return NightFacts(dens=dens, flags=flags_of(flags_df, dens), n_victims=n_victims, sites=night_sites(night.cdr))


def find_dens(config: Config, night, flags_df, earlier: list[dict]) -> Found:
    """The transform. Bounded (see `graph.collect_edges`) and deterministic: everything collected
    is sorted before it decides anything, so the same night gives the same dens whatever
    PYTHONHASHSEED or the number of shuffle partitions."""
    spark = night.cdr.sparkSession
    rows = suspect_rows(night.cdr, flags_df).localCheckpoint(eager=True)  # small: read by every aggregate below
    groups, warnings = suspect_groups(rows, flags_df, config.dens)
    groups, described_groups = merged_groups(
        groups, lambda groups: describe(rows, membership(spark, groups)), config.dens
    )
    members = membership(spark, groups)
    found = victims(night.cdr, members, night.whitelist, config.export.warning_min_call_s).persist()
    facts = night_facts(night, flags_df, groups, described_groups, found)
    described = describe_dens(facts, earlier, config.dens, min_call_s=config.export.warning_min_call_s, day=night.day)
    id_map = spark.createDataFrame(
        [(k, described[k]["den_id"], described[k]["district"]) for k in facts.dens],
        "den_key string, den_id string, den_district string",
    )
    victim_rows = found.join(F.broadcast(id_map), "den_key").select(
        "number",
        F.coalesce("district", "den_district").alias("district"),
        "den_id",
        "first_contact",
        "longest_call_s",
        "n_calls",
        F.lit(night.day).alias("date"),
    )
    return Found(list(described.values()), victim_rows, found, warnings)


def dens_date(
    config: Config, day: dt.date, *, spark: SparkSession | None = None, cache: NightCache | None = None
) -> DensResult:
    """The `cdrwatch dens` step for `day` on Spark: lake/dens/date=D and lake/victims/date=D (the
    located night taken from `cache` when detect left it there)."""
    from jobs.spark import spark_session

    spark = spark or spark_session(config)
    require_flags(config, day)
    night = load_night(config, spark, day, cache=cache)
    flags = lake_spark.read_partition(config, spark, FLAG, day)
    result = None
    try:
        result = find_dens(config, night, flags, earlier_dens(config, spark, day))
        rows = with_history(config, day, result.rows)
        frame = spark.createDataFrame([tuple(r[c] for c in DEN.names) for r in rows], DEN.spark())
        count = lake_spark.replace_date(config, DEN, day, frame, sort_by=("den_id",))
        n_victims = lake_spark.replace_date(config, VICTIMS, day, result.victims, sort_by=("den_id", "number"))
    finally:
        if result is not None:
            result.found.unpersist()
        release_night(night.cdr, cache)
        night.history.unpersist()
    log.info("dens %s: %d dens, %d victims", day, count, n_victims)
    return DensResult(day, rows, n_victims, layout.partition_path(config, DEN, day), list(result.warnings))
