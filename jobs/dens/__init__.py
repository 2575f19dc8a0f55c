"""`cdrwatch dens --date D`: lake/flags + lake/cdr of D (+ lake/dens of earlier nights) ->
lake/dens/date=D and lake/victims/date=D.

extract (`load_night`, the night's flags, earlier dens) -> transform (`graph.suspect_edges` in
Spark, bounded there by `graph.collect_edges`: dens.min_edge_weight, dens.max_degree, dens.max_edges;
`cluster.den_groups` in networkx, `describe` in Spark, `identity.assign_ids`) -> load
(`lake.replace_date`, atomic). See the modules for the choices.

Deterministic: whatever is collected is sorted before it decides anything, and Louvain sees
canonical graphs, so PYTHONHASHSEED and spark.sql.shuffle.partitions change nothing in the output.
"""
from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import lake
from jobs.config import Config
from jobs.dens.cluster import den_groups, suspect_graph
from jobs.dens.describe import (active_hours, den_score, describe, dialling_pattern, evidence, key_of, main_segments,
                                membership, place, victims)
from jobs.dens.graph import collect_edges, suspect_edges, suspect_sims
from jobs.dens.identity import DenSketch, assign_ids, latest_per_den
from jobs.errors import CdrwatchError
from schemas.tables import DEN, FLAG, VICTIMS


def earlier_dens(config: Config, spark: SparkSession, day: dt.date) -> list[dict]:
    """Rows of lake/dens for the `lookback_nights` nights before `day` (small: collected)."""
    rows = []
    for back in range(1, config.dens.lookback_nights + 1):
        earlier = day - dt.timedelta(days=back)
        if lake.partition_path(config, DEN, earlier).is_dir():
            rows.extend(r.asDict() for r in lake.read_partition(config, spark, DEN, earlier).collect())
    return rows


class Found(NamedTuple):
    """What `find_dens` found: den rows (dicts in DEN's columns), the victims DataFrame (VICTIMS'
    columns), the persisted per-den victims frame (unpersist when written) and warnings."""

    rows: list[dict]
    victims: DataFrame
    found: DataFrame
    warnings: list[str]


def flags_of(flags_df: DataFrame, facts: dict[str, dict]) -> list[dict]:
    """The night's flags on the dens' own SIMs, devices and cells: only what the description needs
    reaches the driver, however many entities the detectors flagged."""
    spark = flags_df.sparkSession
    wanted = sorted({(kind, e) for f in facts.values()
                     for kind, entities in (("msisdn", f["sims"]), ("imei", f["imeis"]), ("cell", f["cells"]))
                     for e in entities})
    if not wanted:
        return []
    keys = spark.createDataFrame(wanted, "entity_type string, entity_id string")
    return [r.asDict() for r in flags_df.join(F.broadcast(keys), ["entity_type", "entity_id"], "left_semi")
            .orderBy("entity_type", "entity_id", "detector", "score", "evidence").collect()]


def find_dens(config: Config, night, flags_df, earlier: list[dict]) -> Found:
    """The transform. Bounded (see `graph.collect_edges`) and deterministic: everything collected
    is sorted before it decides anything, so the same night gives the same dens whatever
    PYTHONHASHSEED or the number of shuffle partitions."""
    spark = night.cdr.sparkSession
    settings = config.dens
    edges, warnings = collect_edges(suspect_edges(night.cdr, flags_df), min_edge_weight=settings.min_edge_weight,
                                    max_degree=settings.max_degree, max_edges=settings.max_edges)
    nodes: list[str] = []
    if settings.min_sims <= 1:   # only then can a SIM without a strong link be a den on its own
        nodes = [r.msisdn for r in suspect_sims(night.cdr, flags_df).select("msisdn").orderBy("msisdn")
                 .limit(settings.max_edges + 1).collect()]
        if len(nodes) > settings.max_edges:
            warnings.append(f"suspect graph: more than {settings.max_edges:,} suspect SIMs, only the first "
                            f"{settings.max_edges:,} by number kept as lone nodes (dens.max_edges)")
            nodes = nodes[:settings.max_edges]
    graph = suspect_graph(edges, nodes, settings.min_edge_weight)
    groups = den_groups(graph, seed=settings.seed, split_min_nodes=settings.split_min_nodes,
                        min_sims=settings.min_sims)
    members = membership(spark, groups)
    facts = describe(night.cdr, members)
    flags = flags_of(flags_df, facts)
    found = victims(night.cdr, members, night.whitelist, config.export.warning_min_call_s).persist()
    n_victims = {r.den_key: r["count"] for r in found.groupBy("den_key").count().collect()}
    sites = [(r.site_lat, r.site_lon, r.district) for r in night.cdr.where(F.col("site_key").isNotNull())
             .select("site_key", "site_lat", "site_lon", "district").distinct().orderBy("site_key").collect()]

    score_of: dict[tuple[str, str], float] = {}
    detectors_of: dict[tuple[str, str], set[str]] = {}
    sweep_of: dict[str, tuple[float, str]] = {}      # msisdn -> (score, evidence) of its sequential flag
    for f in flags:
        key = (f["entity_type"], f["entity_id"])
        score_of[key] = max(score_of.get(key, 0.0), f["score"])
        detectors_of.setdefault(key, set()).add(f["detector"])
        if f["detector"] == "sequential" and f["entity_type"] == "msisdn":   # the best, not the last
            sweep_of[f["entity_id"]] = max(sweep_of.get(f["entity_id"], (f["score"], f["evidence"] or "")),
                                           (f["score"], f["evidence"] or ""))

    sketches, described = [], {}
    for i, group in enumerate(groups):
        key = key_of(i)
        fact = facts.get(key)
        if fact is None:
            continue
        sims = fact["sims"]
        imeis = [e for e, _ in sorted(fact["imeis"].items(), key=lambda kv: (-kv[1], kv[0]))]
        where = place(fact, sites)
        member_scores = [score_of.get(("msisdn", s), 0.0) for s in sims]
        signals = set()
        for s in sims:
            signals |= detectors_of.get(("msisdn", s), set())
        for e in imeis:
            signals |= detectors_of.get(("imei", e), set())
        for c in where["cells"]:
            signals |= detectors_of.get(("cell", c), set())
        boxes = sum(("imei", e) in score_of for e in imeis)
        segments = main_segments(fact["segments"], fact["n_calls"])
        top = max(sorted(fact["segments"].items()), key=lambda kv: kv[1])[0] if fact["segments"] else None
        hours = active_hours(fact["hours"])
        score = den_score(member_scores, len(sims))
        swept = sorted((-sweep_of[s][0], s) for s in sims if s in sweep_of)   # the best-scoring sweeper's
        pattern = dialling_pattern(sweep_of[swept[0][1]][1]) if swept else None
        described[key] = dict(
            score=score,
            priority="high" if score >= settings.priority_high else "medium" if score >= settings.priority_medium
            else "low",
            district=where["district"], lat=where["lat"], lon=where["lon"], radius_m=where["radius_m"],
            numbers=sorted(sims), imeis=imeis, cells=where["cells"], site_names=where["site_names"],
            active_hours=hours, n_calls=fact["n_calls"], n_distinct_callees=fact["n_distinct_callees"],
            n_victims=n_victims.get(key, 0), signals=sorted(signals), segments=segments,
            evidence=evidence(sims=sims, n_boxes=boxes, n_handsets=len(imeis) - boxes,
                              main_site=where["main_site"], radius_m=where["radius_m"], hours=hours,
                              n_calls=fact["n_calls"], n_callees=fact["n_distinct_callees"], top_segment=top,
                              n_victims=n_victims.get(key, 0), min_call_s=config.export.warning_min_call_s,
                              n_sms=fact["n_sms"], pattern=pattern))
        sketches.append(DenSketch(key=key, numbers=frozenset(sims), imeis=frozenset(imeis),
                                  segments=frozenset(segments), lat=where["lat"], lon=where["lon"], score=score))

    ids = assign_ids(night.day, sketches, latest_per_den(earlier), min_overlap=settings.match_min_overlap,
                     max_distance_m=settings.match_max_distance_m)
    rows = []
    for key, den in described.items():
        den_id, first_seen, nights = ids[key]
        rows.append({**den, "den_id": den_id, "first_seen": first_seen, "last_seen": night.day,
                     "nights_active": nights, "date": night.day})
    rows.sort(key=lambda r: r["den_id"])
    id_map = spark.createDataFrame([(k, ids[k][0], described[k]["district"]) for k in described],
                                   "den_key string, den_id string, den_district string")
    victim_rows = (found.join(F.broadcast(id_map), "den_key")
                   .select("number", F.coalesce("district", "den_district").alias("district"), "den_id",
                           "first_contact", "longest_call_s", "n_calls", F.lit(night.day).alias("date")))
    return Found(rows, victim_rows, found, warnings)


def den_table(rows: list[dict], title: str):
    """The step's summary table. Data (paths, districts, site names in the evidence) is escaped:
    a `[/]` in a site name is text, not rich markup."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title))
    for name in ("den", "priority", "score", "district", "SIMs", "IMEIs", "calls", "victims", "seen", "evidence"):
        table.add_column(name, justify="right" if name in ("score", "SIMs", "IMEIs", "calls", "victims") else "left")
    for r in rows:
        table.add_row(escape(r["den_id"]), escape(r["priority"]), f"{r['score']:.2f}", escape(r["district"] or ""),
                      str(len(r["numbers"])), str(len(r["imeis"])), f"{r['n_calls']:,}", str(r["n_victims"]),
                      f"{r['first_seen']}..{r['last_seen']} ({r['nights_active']})", escape(r["evidence"]))
    return table


def dens_date(config: Config, day: dt.date, *, spark: SparkSession | None = None, console=None) -> int:
    """The `cdrwatch dens` step for `day`; returns the number of dens written."""
    from rich.console import Console
    from rich.markup import escape

    from jobs.detect import load_night
    from jobs.spark import spark_session

    console = console or Console()
    spark = spark or spark_session(config)
    if not lake.partition_path(config, FLAG, day).is_dir():
        raise CdrwatchError(f"{lake.partition_path(config, FLAG, day)}: no flags for {day} (run cdrwatch detect first)")
    night = load_night(config, spark, day)
    flags = lake.read_partition(config, spark, FLAG, day)
    result = None
    try:
        result = find_dens(config, night, flags, earlier_dens(config, spark, day))
        rows = result.rows
        frame = spark.createDataFrame([tuple(r[c] for c in DEN.names) for r in rows], DEN.spark())
        count = lake.replace_date(config, DEN, day, frame, sort_by=("den_id",))
        n_victims = lake.replace_date(config, VICTIMS, day, result.victims, sort_by=("den_id", "number"))
    finally:
        if result is not None:
            result.found.unpersist()
        night.cdr.unpersist()
        night.history.unpersist()
    # data (districts, site names in the evidence, paths) is escaped: a `[/]` in a name is not markup
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] dens {day}: {escape(warning)}")
    console.print(den_table(rows, f"dens {day}: {count} dens, {n_victims} victims -> "
                                  f"{lake.partition_path(config, DEN, day)}"))
    return count
