"""The suspect graph's edges, built in Spark from one night of located CDRs and that night's flags.

Nodes are the flagged SIMs (`msisdn` flags), the flagged devices (`imei` flags, node id
`imei:<IMEI>`) and the unflagged SIMs strongly tied to them (seen tonight in a flagged device).
Two nodes are linked by the evidence that they work together; each kind of evidence gives a weight
in 0..1, and an edge's `weight` is their sum:

| kind          | between             | weight                                                            |
|---------------|---------------------|-------------------------------------------------------------------|
| `device`      | SIM - flagged IMEI  | 1 when the SIM used the device tonight                            |
| `shared_id`   | SIM - SIM           | 1 when they share an IMEI or an IMSI tonight                      |
| `colocation`  | SIM - SIM           | shared (site, hour)s / the smaller SIM's, x min(1, shared/3)      |
| `segment`     | SIM - SIM           | shared (segment, 3-hour window)s / the smaller SIM's, x min(1, shared/3) |

(a segment: the 7 digits after +86 of a callee, `+8613912345678` -> `1391234`.)
| `mutual_call` | SIM - SIM           | 0.5 when one called or texted the other                           |
| `callees`     | SIM - SIM           | shared distinct callees / the smaller SIM's, x min(1, shared/5)   |

The "x min(1, shared/k)" factor keeps one coincidence (two strangers in the same cell for an hour)
from counting like a night spent side by side. Everything is a Spark SQL aggregation over the
suspects' own rows; only the edge list (suspects squared at most) is small enough to collect.
"""
from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

KINDS = ("device", "shared_id", "colocation", "segment", "mutual_call", "callees")
IMEI_NODE = "imei:"
EDGE_COLUMNS = ("a", "b", "weight", *KINDS)
WEIGHT_DECIMALS = 9   # float sums may differ in the last bits with the summation order: compare rounded


def suspect_sims(cdr: DataFrame, flags: DataFrame) -> DataFrame:
    """`msisdn, flagged`: SIMs flagged tonight plus the SIMs seen in a flagged device."""
    flagged = flags.where(F.col("entity_type") == "msisdn").select(F.col("entity_id").alias("msisdn")).distinct()
    devices = flags.where(F.col("entity_type") == "imei").select(F.col("entity_id").alias("imei")).distinct()
    tied = cdr.join(F.broadcast(devices), "imei").select("msisdn").distinct()
    return (flagged.withColumn("flagged", F.lit(True))
            .unionByName(tied.join(flagged, "msisdn", "left_anti").withColumn("flagged", F.lit(False))))


def _pairs(keyed: DataFrame, key: list[str], kind: str, saturate: int) -> DataFrame:
    """keyed (msisdn, *key) distinct -> (a, b, kind, weight): overlap coefficient of the key sets,
    damped by min(1, shared/saturate)."""
    keyed = keyed.select("msisdn", *key).distinct()
    sizes = keyed.groupBy("msisdn").agg(F.count("*").alias("n"))
    left = keyed.withColumnRenamed("msisdn", "a")
    right = keyed.withColumnRenamed("msisdn", "b")
    shared = (left.join(right, key).where(F.col("a") < F.col("b"))
              .groupBy("a", "b").agg(F.count("*").alias("shared")))
    shared = (shared.join(sizes.select(F.col("msisdn").alias("a"), F.col("n").alias("na")), "a")
              .join(sizes.select(F.col("msisdn").alias("b"), F.col("n").alias("nb")), "b"))
    weight = (F.col("shared") / F.least("na", "nb")) * F.least(F.lit(1.0), F.col("shared") / F.lit(float(saturate)))
    return shared.select("a", "b", F.lit(kind).alias("kind"), weight.cast("double").alias("weight"))


def segment_of(number: Column) -> Column:
    """The 7 digits after +86 of a Chinese mobile number (`+8613912345678` -> `1391234`), else null."""
    return F.when(number.rlike(r"^\+861[0-9]{10}$"), F.substring(number, 4, 7))


def suspect_edges(cdr: DataFrame, flags: DataFrame) -> DataFrame:
    """One row per linked pair `a < b`: `a, b, weight` and each kind's share (see the module doc).
    `cdr` is a night's located rows (`detectors.base.Night.cdr`); `flags` the night's FLAG rows."""
    suspects = suspect_sims(cdr, flags)
    rows = cdr.join(F.broadcast(suspects.select("msisdn")), "msisdn")
    out = rows.where(F.col("direction") == "out")
    devices = flags.where(F.col("entity_type") == "imei").select(F.col("entity_id").alias("imei")).distinct()

    device = (rows.join(F.broadcast(devices), "imei").select("msisdn", "imei").distinct()
              .select(F.col("msisdn").alias("a"), F.concat(F.lit(IMEI_NODE), F.col("imei")).alias("b"),
                      F.lit("device").alias("kind"), F.lit(1.0).alias("weight")))
    ids = (rows.where(F.col("imei").isNotNull()).select("msisdn", F.concat(F.lit("e"), "imei").alias("id"))
           .unionByName(rows.where(F.col("imsi").isNotNull())
                        .select("msisdn", F.concat(F.lit("s"), "imsi").alias("id"))))
    shared_id = _pairs(ids, ["id"], "shared_id", 1).withColumn("weight", F.lit(1.0))
    colocation = _pairs(rows.where(F.col("site_key").isNotNull())
                        .select("msisdn", "site_key", F.date_trunc("hour", "start_time").alias("hour")),
                        ["site_key", "hour"], "colocation", 3)
    segment = _pairs(out.select("msisdn", segment_of(F.col("other_party")).alias("segment"),
                                F.floor(F.hour("start_time") / 3).alias("window"))
                     .where(F.col("segment").isNotNull()), ["segment", "window"], "segment", 3)
    callees = _pairs(out.where(F.col("other_party").isNotNull()).select("msisdn", "other_party"),
                     ["other_party"], "callees", 5)
    called = (rows.join(F.broadcast(suspects.select(F.col("msisdn").alias("other_party"))), "other_party")
              .where(F.col("msisdn") != F.col("other_party"))
              .select(F.least("msisdn", "other_party").alias("a"), F.greatest("msisdn", "other_party").alias("b"))
              .distinct().select("a", "b", F.lit("mutual_call").alias("kind"), F.lit(0.5).alias("weight")))

    long = reduce(DataFrame.unionByName, [device, shared_id, colocation, segment, called, callees])
    wide = long.groupBy("a", "b").pivot("kind", list(KINDS)).agg(F.max("weight")).na.fill(0.0, list(KINDS))
    return wide.select("a", "b", reduce(lambda x, y: x + y, [F.col(k) for k in KINDS]).alias("weight"), *KINDS)


def strong_edges(edges: DataFrame, min_edge_weight: float) -> DataFrame:
    """Edges with `weight` rounded to WEIGHT_DECIMALS and at least `min_edge_weight`: the threshold
    and every later ordering then see the same number however Spark summed it."""
    rounded = edges.withColumn("weight", F.round("weight", WEIGHT_DECIMALS))
    return rounded.where(F.col("weight") >= F.lit(float(min_edge_weight)))


def cap_degree(edges: DataFrame, max_degree: int) -> DataFrame:
    """The edges that are among the `max_degree` heaviest of at least one of their ends (ties: the
    other end's id). A hub (a box with a thousand SIMs, a busy tower's crowd) keeps its strongest
    links and every small node keeps its own, so the graph has at most max_degree x nodes edges."""
    ends = (edges.select(F.col("a").alias("node"), F.col("b").alias("other"), "a", "b", "weight")
            .unionByName(edges.select(F.col("b").alias("node"), F.col("a").alias("other"), "a", "b", "weight")))
    rank = F.row_number().over(Window.partitionBy("node").orderBy(F.desc("weight"), "other"))
    kept = ends.withColumn("rank", rank).where(F.col("rank") <= max_degree).select("a", "b").distinct()
    return edges.join(kept, ["a", "b"], "left_semi")


def heaviest(edges: DataFrame, n: int) -> DataFrame:
    """The `n` heaviest edges (ties: by `a`, then `b`): a total order, so the same `n` every run."""
    return edges.orderBy(F.desc("weight"), "a", "b").limit(n)


def collect_edges(edges: DataFrame, *, min_edge_weight: float, max_degree: int,
                  max_edges: int) -> tuple[list[tuple[str, str, float]], list[str]]:
    """The bounded edge list on the driver, heaviest first, and the warnings: `strong_edges`,
    `cap_degree`, then at most `max_edges` (one more row is fetched to learn whether the cap cut)."""
    capped = cap_degree(strong_edges(edges, min_edge_weight), max_degree)
    rows = [(r.a, r.b, r.weight) for r in heaviest(capped, max_edges + 1).select("a", "b", "weight").collect()]
    warnings = []
    if len(rows) > max_edges:
        warnings.append(f"suspect graph: {capped.count():,} links after the degree cap (dens.max_degree "
                        f"{max_degree}), only the {max_edges:,} heaviest kept (dens.max_edges); "
                        f"dens may be cut short")
        rows = rows[:max_edges]
    return rows, warnings
