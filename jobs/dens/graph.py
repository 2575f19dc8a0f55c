"""The suspect graph's edges, built in Spark from one night of located CDRs and that night's flags.

Nodes are SIMs only: the flagged SIMs (`msisdn` flags) and the unflagged SIMs strongly tied to
them (seen tonight in a flagged device). Device evidence is collapsed onto the SIMs before any
clustering: two SIMs in one device are linked (`shared_id`), a device is never a node. (With device
nodes, a box that changes its IMEI on every call turned into hundreds of one-SIM stars and the
community split left no group of 3 SIMs: a den vanished because it showed more evidence.) So the
graph has at most as many nodes as suspect SIMs, however many IMEIs they show.

Two SIMs are linked by the evidence that they work together; each kind gives a weight in 0..1,
and an edge's `weight` is their sum:

| kind          | weight                                                                          |
|---------------|---------------------------------------------------------------------------------|
| `shared_id`   | 1 when they share an IMEI or an IMSI tonight                                    |
| `colocation`  | shared (place, hour)s / the smaller SIM's, x min(1, shared/3); place = the site |
|               | (the cell itself when it is not in the inventory)                               |
| `segment`     | shared (segment, 3-hour window)s / the smaller SIM's, x min(1, shared/3)        |
| `mutual_call` | 0.5 when one called or texted the other                                         |
| `callees`     | shared distinct callees / the smaller SIM's, x min(1, shared/5)                 |

(a segment: the 7 digits after +86 of a callee, `+8613912345678` -> `1391234`.)

The "x min(1, shared/k)" factor keeps one coincidence (two strangers in the same cell for an hour)
from counting like a night spent side by side. A den is a place: an edge only counts when the two
SIMs were together (`colocation` >= `dens.min_together`) or share a device or SIM id. A list or a
segment alone does not make a den: estate agents cold-calling one segment from wherever they walk,
each on their own, are not a room. Nor does a place alone: two flagged SIMs that only share hours
at a site (no device, SIM id, segment, callee or call between them) are linked only when their
flags name that same site (a room's operators, flagged there); a resident of the den's block who
is flagged for what he did elsewhere (an estate agent sweeping a segment across town) is not made
one of the den's numbers by living there. Everything is a Spark SQL aggregation over the suspects' own
rows; only the edge list (suspects squared at most) is small enough to collect.

The local engine's twin, on Polars, is `graph_local`; the kinds and constants both read are in `links`.
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.dens.links import CHINESE_MOBILE, KINDS, MUTUAL_CALL_WEIGHT, SATURATE, WEIGHT_DECIMALS, edges_cut_warning


def suspect_sims(cdr: DataFrame, flags: DataFrame) -> DataFrame:
    """`msisdn, flagged`: SIMs flagged tonight plus the SIMs seen in a flagged device."""
    flagged = flags.where(F.col("entity_type") == "msisdn").select(F.col("entity_id").alias("msisdn")).distinct()
    devices = flags.where(F.col("entity_type") == "imei").select(F.col("entity_id").alias("imei")).distinct()
    tied = cdr.join(F.broadcast(devices), "imei").select("msisdn").distinct()
    return flagged.withColumn("flagged", F.lit(True)).unionByName(
        tied.join(flagged, "msisdn", "left_anti").withColumn("flagged", F.lit(False))
    )


def _local(small: DataFrame) -> DataFrame:
    """`small` (as many rows as the night's flags, at most) computed once and held as a local
    relation: every branch of a plan that reads it then reads rows, not the plan that found them."""
    return small.sparkSession.createDataFrame(small.collect(), small.schema)


def suspect_rows(cdr: DataFrame, flags: DataFrame) -> DataFrame:
    """The suspect SIMs' own rows of the night (`suspect_sims`). Every edge and every den fact is an
    aggregate of these alone, so the dens step materialises them once instead of letting each
    aggregate re-plan the whole night's join (hundreds of Spark stages on a big night)."""
    return cdr.join(F.broadcast(_local(suspect_sims(cdr, flags).select("msisdn"))), "msisdn")


def _overlaps(keyed: DataFrame) -> DataFrame:
    """keyed (msisdn, kind, key) -> (a, b, kind, weight) for every kind at once: per kind the overlap
    coefficient of the two SIMs' key sets, damped by min(1, shared/SATURATE[kind]); a shared device
    or SIM id weighs 1. One self-join for all kinds keeps the night's Spark stages few."""
    keyed = keyed.distinct()
    sizes = keyed.groupBy("msisdn", "kind").agg(F.count("*").alias("n"))
    left = keyed.withColumnRenamed("msisdn", "a")
    right = keyed.withColumnRenamed("msisdn", "b")
    shared = (
        left.join(right, ["kind", "key"])
        .where(F.col("a") < F.col("b"))
        .groupBy("a", "b", "kind")
        .agg(F.count("*").alias("shared"))
    )
    shared = shared.join(sizes.select(F.col("msisdn").alias("a"), "kind", F.col("n").alias("na")), ["a", "kind"]).join(
        sizes.select(F.col("msisdn").alias("b"), "kind", F.col("n").alias("nb")), ["b", "kind"]
    )
    saturate = F.coalesce(*[F.when(F.col("kind") == kind, F.lit(float(k))) for kind, k in SATURATE.items()])
    overlap = (F.col("shared") / F.least("na", "nb")) * F.least(F.lit(1.0), F.col("shared") / saturate)
    weight = F.when(F.col("kind") == "shared_id", F.lit(1.0)).otherwise(overlap)
    return shared.select("a", "b", "kind", weight.cast("double").alias("weight"))


def segment_of(number: Column) -> Column:
    """The 7 digits after +86 of a Chinese mobile number (`+8613912345678` -> `1391234`), else null."""
    return F.when(number.rlike(CHINESE_MOBILE), F.substring(number, 4, 7))


def suspect_edges(cdr: DataFrame, flags: DataFrame) -> DataFrame:
    """One row per linked pair `a < b`: `a, b, weight` and each kind's share (see the module doc).
    `cdr` is a night's located rows (`detectors.base.Night.cdr`); `flags` the night's FLAG rows."""
    suspects = _local(suspect_sims(cdr, flags).select("msisdn"))
    rows = cdr.join(F.broadcast(suspects), "msisdn")  # a no-op on `suspect_rows`
    out = rows.where(F.col("direction") == "out")

    def keyed(frame: DataFrame, kind: str, key: Column) -> DataFrame:
        return frame.select("msisdn", F.lit(kind).alias("kind"), key.cast("string").alias("key")).where(
            F.col("key").isNotNull()
        )

    place = F.coalesce("site_key", F.concat_ws(":", F.lit("cell"), "carrier", "cell_id"))
    overlaps = _overlaps(
        reduce(
            DataFrame.unionByName,
            [
                keyed(rows, "shared_id", F.concat(F.lit("e"), "imei")),
                keyed(rows, "shared_id", F.concat(F.lit("s"), "imsi")),
                keyed(
                    rows, "colocation", F.concat(place, F.lit("|"), F.date_trunc("hour", "start_time").cast("string"))
                ),
                keyed(
                    out,
                    "segment",
                    F.concat(
                        segment_of(F.col("other_party")), F.lit("|"), F.floor(F.hour("start_time") / 3).cast("string")
                    ),
                ),
                keyed(out, "callees", F.col("other_party")),
            ],
        )
    )
    called = (
        rows.join(F.broadcast(suspects.select(F.col("msisdn").alias("other_party"))), "other_party")
        .where(F.col("msisdn") != F.col("other_party"))
        .select(F.least("msisdn", "other_party").alias("a"), F.greatest("msisdn", "other_party").alias("b"))
        .distinct()
        .select("a", "b", F.lit("mutual_call").alias("kind"), F.lit(MUTUAL_CALL_WEIGHT).alias("weight"))
    )

    long = overlaps.unionByName(called)
    wide = long.groupBy("a", "b").pivot("kind", list(KINDS)).agg(F.max("weight")).na.fill(0.0, list(KINDS))
    work = reduce(lambda x, y: x + y, [F.col(k) for k in KINDS if k != "colocation"]) > 0
    colocation = F.when(work | F.col("flagged_here"), F.col("colocation")).otherwise(F.lit(0.0))
    wide = (
        wide.join(_flagged_at_one_site(flags), ["a", "b"], "left")
        .withColumn("flagged_here", F.coalesce("flagged_here", F.lit(False)))
        .withColumn("colocation", colocation)
    )
    return wide.select("a", "b", reduce(lambda x, y: x + y, [F.col(k) for k in KINDS]).alias("weight"), *KINDS)


def _flagged_at_one_site(flags: DataFrame) -> DataFrame:
    """`a, b, flagged_here`: pairs of SIMs (a < b) whose flags name a site in common."""
    sites = (
        flags.where((F.col("entity_type") == "msisdn") & F.col("site_key").isNotNull())
        .select(F.col("entity_id").alias("msisdn"), "site_key")
        .distinct()
    )
    pairs = (
        sites.withColumnRenamed("msisdn", "a")
        .join(sites.withColumnRenamed("msisdn", "b"), "site_key")
        .where(F.col("a") < F.col("b"))
    )
    return pairs.select("a", "b").distinct().withColumn("flagged_here", F.lit(True))


def strong_edges(edges: DataFrame, min_edge_weight: float, min_together: float = 0.0) -> DataFrame:
    """Edges with `weight` rounded to WEIGHT_DECIMALS and at least `min_edge_weight` between SIMs
    that were together (`colocation` >= `min_together`, or a shared device or SIM id): the
    threshold and every later ordering then see the same number however Spark summed it."""
    rounded = edges.withColumn("weight", F.round("weight", WEIGHT_DECIMALS))
    strong = rounded.where(F.col("weight") >= F.lit(float(min_edge_weight)))
    if min_together <= 0:
        return strong
    together = (F.round("colocation", WEIGHT_DECIMALS) >= F.lit(float(min_together))) | (F.col("shared_id") > 0)
    return strong.where(together)


def cap_degree(edges: DataFrame, max_degree: int) -> DataFrame:
    """The edges that are among the `max_degree` heaviest of at least one of their ends (ties: the
    other end's id). A hub (a box with a thousand SIMs, a busy tower's crowd) keeps its strongest
    links and every small node keeps its own, so the graph has at most max_degree x nodes edges."""
    ends = edges.select(F.col("a").alias("node"), F.col("b").alias("other"), "a", "b", "weight").unionByName(
        edges.select(F.col("b").alias("node"), F.col("a").alias("other"), "a", "b", "weight")
    )
    rank = F.row_number().over(Window.partitionBy("node").orderBy(F.desc("weight"), "other"))
    kept = ends.withColumn("rank", rank).where(F.col("rank") <= max_degree).select("a", "b").distinct()
    return edges.join(kept, ["a", "b"], "left_semi")


def heaviest(edges: DataFrame, n: int) -> DataFrame:
    """The `n` heaviest edges (ties: by `a`, then `b`): a total order, so the same `n` every run."""
    return edges.orderBy(F.desc("weight"), "a", "b").limit(n)


def collect_edges(
    edges: DataFrame, *, min_edge_weight: float, max_degree: int, max_edges: int, min_together: float = 0.0
) -> tuple[list[tuple[str, str, float]], list[str]]:
    """The bounded edge list on the driver, heaviest first, and the warnings: `strong_edges`,
    `cap_degree`, then at most `max_edges` (one more row is fetched to learn whether the cap cut)."""
    capped = cap_degree(strong_edges(edges, min_edge_weight, min_together), max_degree)
    rows = [(r.a, r.b, r.weight) for r in heaviest(capped, max_edges + 1).select("a", "b", "weight").collect()]
    warnings = []
    if len(rows) > max_edges:
        warnings.append(edges_cut_warning(capped.count(), max_degree, max_edges))
        rows = rows[:max_edges]
    return rows, warnings
