"""`cdrwatch dens --date D`: lake/flags + lake/cdr of D (+ lake/dens of earlier nights) ->
lake/dens/date=D and lake/victims/date=D.

extract (`load_night`, the night's flags, earlier dens) -> transform (`graph.suspect_edges` in
Spark, bounded there by `graph.collect_edges`: dens.min_edge_weight, dens.min_together,
dens.max_degree, dens.max_edges; `cluster.den_groups` in networkx; groups of one place, time and
list merged (`merged_groups`, `core.merge_plan`); `night_facts` gathers each den's small facts in
Spark (`describe`);
`core.describe_dens` scores, places, words and names them (`identity.assign_ids`) in plain Python;
`field.with_field_history` adds what the field found: last visit, "seen again after the raid",
suppression of cleared groups) -> load (`lake_spark.replace_date`, atomic). See the modules for the choices.

Deterministic: whatever is collected is sorted before it decides anything, and Louvain sees
canonical graphs, so PYTHONHASHSEED and spark.sql.shuffle.partitions change nothing in the output.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import NamedTuple

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.config import Config
from jobs.dens.cluster import den_groups, suspect_graph
from jobs.dens.core import DenFacts, MemberFlag, NightFacts, describe_dens, key_of, merge_plan
from jobs.dens.describe import describe, membership, victims
from jobs.dens.field import with_field_history
from jobs.dens.graph import collect_edges, suspect_edges, suspect_rows, suspect_sims
from jobs.errors import CdrwatchError
from jobs.feedback.store import field_history
from jobs.io import lake_spark, layout
from jobs.night import NightCache, load_night, release_night
from schemas.tables import DEN, FLAG, VICTIMS

log = logging.getLogger(__name__)


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
    nodes: list[str] = []
    if settings.min_sims <= 1:  # only then can a SIM without a strong link be a den on its own
        nodes = [
            r.msisdn
            for r in suspect_sims(rows, flags_df)
            .select("msisdn")
            .orderBy("msisdn")
            .limit(settings.max_edges + 1)
            .collect()
        ]
        if len(nodes) > settings.max_edges:
            warnings.append(
                f"suspect graph: more than {settings.max_edges:,} suspect SIMs, only the first "
                f"{settings.max_edges:,} by number kept as lone nodes (dens.max_edges)"
            )
            nodes = nodes[: settings.max_edges]
    graph = suspect_graph(edges, nodes, settings.min_edge_weight)
    groups = den_groups(graph, seed=settings.seed, split_min_nodes=settings.split_min_nodes, min_sims=settings.min_sims)
    return groups, warnings


def merged_groups(rows: DataFrame, groups: list[list[str]], settings) -> tuple[list[list[str]], dict[str, DenFacts]]:
    """The groups with those of one place, time and list merged (`core.merge_plan`), and their
    facts (`describe` of the suspects' `rows`); described a second time only when something merged."""
    spark = rows.sparkSession
    facts = describe(rows, membership(spark, groups))
    plan = merge_plan({key_of(i): facts[key_of(i)] for i in range(len(groups)) if key_of(i) in facts}, settings)
    if all(len(keys) == 1 for keys in plan):
        return groups, facts
    index = {key_of(i): i for i in range(len(groups))}
    merged = sorted((sorted({n for key in keys for n in groups[index[key]]}) for keys in plan), key=lambda g: g[0])
    log.info("dens: %d groups of one place merged into %d", len(groups), len(merged))
    return merged, describe(rows, membership(spark, merged))


def night_facts(
    night, flags_df: DataFrame, groups: list[list[str]], facts: dict[str, DenFacts], found: DataFrame
) -> NightFacts:
    """The small facts `describe_dens` needs, collected: each group's aggregates (`describe`, in
    group order), the flags on their members, victims per den, and every located site of the night."""
    dens = {key_of(i): facts[key_of(i)] for i in range(len(groups)) if key_of(i) in facts}
    n_victims = {r.den_key: r["count"] for r in found.groupBy("den_key").count().collect()}
    sites = [
        (r.site_lat, r.site_lon, r.district)
        for r in night.cdr.where(F.col("site_key").isNotNull())
        .select("site_key", "site_lat", "site_lon", "district")
        .distinct()
        .orderBy("site_key")
        .collect()
    ]
    return NightFacts(dens=dens, flags=flags_of(flags_df, dens), n_victims=n_victims, sites=sites)


def find_dens(config: Config, night, flags_df, earlier: list[dict]) -> Found:
    """The transform. Bounded (see `graph.collect_edges`) and deterministic: everything collected
    is sorted before it decides anything, so the same night gives the same dens whatever
    PYTHONHASHSEED or the number of shuffle partitions."""
    spark = night.cdr.sparkSession
    rows = suspect_rows(night.cdr, flags_df).localCheckpoint(eager=True)  # small: read by every aggregate below
    groups, warnings = suspect_groups(rows, flags_df, config.dens)
    groups, described_groups = merged_groups(rows, groups, config.dens)
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


class DensResult(NamedTuple):
    """What `dens_date` wrote: the den rows (DEN's columns), victims, where, and warnings."""

    day: dt.date
    rows: list[dict]
    victims: int
    path: Path
    warnings: list[str]


def dens_date(
    config: Config, day: dt.date, *, spark: SparkSession | None = None, cache: NightCache | None = None
) -> DensResult:
    """The `cdrwatch dens` step for `day`: lake/dens/date=D and lake/victims/date=D (the located
    night taken from `cache` when detect left it there)."""
    from jobs.spark import spark_session

    spark = spark or spark_session(config)
    if not layout.partition_path(config, FLAG, day).is_dir():
        raise CdrwatchError(
            f"{layout.partition_path(config, FLAG, day)}: no flags for {day} (run cdrwatch detect first)"
        )
    night = load_night(config, spark, day, cache=cache)
    flags = lake_spark.read_partition(config, spark, FLAG, day)
    result = None
    try:
        result = find_dens(config, night, flags, earlier_dens(config, spark, day))
        visits, cleared = field_history(config, day)
        rows = with_field_history(result.rows, visits, cleared, day, min_overlap=config.feedback.suppress_min_overlap)
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
