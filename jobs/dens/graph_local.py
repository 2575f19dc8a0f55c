"""The suspect graph's edges on Polars: the local engine's twin of `jobs.dens.graph` (read its module
doc for the kinds of link, their weights and why), giving the same edges, weights and bounds.

Hours are the carriers' local time (`timezone`), as Spark's session clock makes them; a colocation's
hour is the local wall-clock hour, as Spark's `date_trunc('hour')` text is. Weights are rounded as
Spark rounds a double (`spark_round`) before any threshold or order sees them.
"""

from __future__ import annotations

import polars as pl

from detectors.local.base import spark_round
from detectors.local.history import local_hour
from detectors.local.sequential import JAVA_END
from jobs.dens.links import (
    CHINESE_MOBILE,
    KINDS,
    MUTUAL_CALL_WEIGHT,
    SATURATE,
    WEIGHT_DECIMALS,
    edges_cut_warning,
)

EDGE_SCHEMA = {"a": pl.String, "b": pl.String, "weight": pl.Float64, **{k: pl.Float64 for k in KINDS}}
# Spark's rlike is Java's find: its `$` also matches before one final line terminator
CHINESE_MOBILE_JAVA = CHINESE_MOBILE.removesuffix("$") + JAVA_END


def _lazy(frame: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    return frame.lazy() if isinstance(frame, pl.DataFrame) else frame


def suspect_sims(cdr: pl.DataFrame | pl.LazyFrame, flags: pl.DataFrame) -> pl.DataFrame:
    """`msisdn, flagged`: SIMs flagged tonight plus the SIMs seen in a flagged device."""
    flagged = flags.filter(pl.col("entity_type") == "msisdn").select(pl.col("entity_id").alias("msisdn")).unique()
    devices = flags.filter(pl.col("entity_type") == "imei").select(pl.col("entity_id").alias("imei")).unique()
    tied = _lazy(cdr).join(devices.lazy(), on="imei", how="semi").select("msisdn").unique().collect()
    return pl.concat(
        [
            flagged.with_columns(pl.lit(True).alias("flagged")),
            tied.join(flagged, on="msisdn", how="anti").with_columns(pl.lit(False).alias("flagged")),
        ]
    )


def suspect_rows(cdr: pl.DataFrame | pl.LazyFrame, flags: pl.DataFrame) -> pl.DataFrame:
    """The suspect SIMs' own rows of the night (`suspect_sims`), collected: every edge and every den
    fact is an aggregate of these alone."""
    suspects = suspect_sims(cdr, flags).select("msisdn")
    return _lazy(cdr).join(suspects.lazy(), on="msisdn", how="semi").collect()


def segment_of(number: pl.Expr) -> pl.Expr:
    """The 7 digits after +86 of a Chinese mobile number (`+8613912345678` -> `1391234`), else null."""
    return pl.when(number.str.contains(CHINESE_MOBILE_JAVA)).then(number.str.slice(3, 7))


def _overlaps(keyed: pl.LazyFrame) -> pl.LazyFrame:
    """keyed (msisdn, kind, key) -> (a, b, kind, weight) for every kind at once (see `graph._overlaps`)."""
    keyed = keyed.unique()
    sizes = keyed.group_by("msisdn", "kind").agg(pl.len().alias("n"))
    shared = (
        keyed.rename({"msisdn": "a"})
        .join(keyed.rename({"msisdn": "b"}), on=["kind", "key"])
        .filter(pl.col("a") < pl.col("b"))
        .group_by("a", "b", "kind")
        .agg(pl.len().alias("shared"))
        .join(sizes.rename({"msisdn": "a", "n": "na"}), on=["a", "kind"])
        .join(sizes.rename({"msisdn": "b", "n": "nb"}), on=["b", "kind"])
    )
    saturate = pl.col("kind").replace_strict({k: float(v) for k, v in SATURATE.items()}, default=None)
    n = pl.col("shared").cast(pl.Float64)
    overlap = (n / pl.min_horizontal("na", "nb").cast(pl.Float64)) * pl.min_horizontal(pl.lit(1.0), n / saturate)
    weight = pl.when(pl.col("kind") == "shared_id").then(pl.lit(1.0)).otherwise(overlap)
    return shared.select("a", "b", "kind", weight.cast(pl.Float64).alias("weight"))


def suspect_edges(cdr: pl.DataFrame | pl.LazyFrame, flags: pl.DataFrame, timezone: str) -> pl.DataFrame:
    """One row per linked pair `a < b`: `a, b, weight` and each kind's share (`graph.suspect_edges`).
    `cdr` is a night's located rows (`LocalNight.cdr`, or `suspect_rows`); `flags` the night's FLAG
    rows; `timezone` the carriers' local time."""
    suspects = suspect_sims(cdr, flags).select("msisdn").lazy()
    rows = _lazy(cdr).join(suspects, on="msisdn", how="semi")  # a no-op on `suspect_rows`
    out = rows.filter(pl.col("direction") == "out")

    def keyed(frame: pl.LazyFrame, kind: str, key: pl.Expr) -> pl.LazyFrame:
        return frame.select("msisdn", pl.lit(kind).alias("kind"), key.cast(pl.String).alias("key")).filter(
            pl.col("key").is_not_null()
        )

    place = pl.coalesce(
        "site_key",
        pl.concat_str([pl.lit("cell"), pl.col("carrier"), pl.col("cell_id")], separator=":", ignore_nulls=True),
    )
    hour = pl.col("start_time").dt.convert_time_zone(timezone).dt.strftime("%Y-%m-%d %H")
    window = (local_hour(timezone) // 3).cast(pl.String)
    overlaps = _overlaps(
        pl.concat(
            [
                keyed(rows, "shared_id", pl.concat_str([pl.lit("e"), pl.col("imei")])),
                keyed(rows, "shared_id", pl.concat_str([pl.lit("s"), pl.col("imsi")])),
                keyed(rows, "colocation", pl.concat_str([place, pl.lit("|"), hour])),
                keyed(out, "segment", pl.concat_str([segment_of(pl.col("other_party")), pl.lit("|"), window])),
                keyed(out, "callees", pl.col("other_party")),
            ]
        )
    )
    lesser = pl.col("msisdn") < pl.col("other_party")
    called = (
        rows.join(suspects.rename({"msisdn": "other_party"}), on="other_party", how="semi")
        .filter(pl.col("msisdn") != pl.col("other_party"))
        .select(
            pl.when(lesser).then("msisdn").otherwise("other_party").alias("a"),
            pl.when(lesser).then("other_party").otherwise("msisdn").alias("b"),
        )
        .unique()
        .select("a", "b", pl.lit("mutual_call").alias("kind"), pl.lit(MUTUAL_CALL_WEIGHT).alias("weight"))
    )
    wide = (
        pl.concat([overlaps, called])
        .group_by("a", "b")
        .agg([pl.col("weight").filter(pl.col("kind") == k).max().fill_null(0.0).alias(k) for k in KINDS])
        .join(_flagged_at_one_site(flags).lazy(), on=["a", "b"], how="left")
        .with_columns(pl.col("flagged_here").fill_null(False))
    )
    work = (pl.col("shared_id") + pl.col("segment") + pl.col("mutual_call") + pl.col("callees")) > 0
    wide = wide.with_columns(
        pl.when(work | pl.col("flagged_here")).then(pl.col("colocation")).otherwise(pl.lit(0.0)).alias("colocation")
    )
    weight = pl.col(KINDS[0])
    for kind in KINDS[1:]:  # summed in Spark's order: float sums depend on it
        weight = weight + pl.col(kind)
    return wide.select("a", "b", weight.alias("weight"), *KINDS).collect().cast(EDGE_SCHEMA)


def _flagged_at_one_site(flags: pl.DataFrame) -> pl.DataFrame:
    """`a, b, flagged_here`: pairs of SIMs (a < b) whose flags name a site in common."""
    sites = (
        flags.filter((pl.col("entity_type") == "msisdn") & pl.col("site_key").is_not_null())
        .select(pl.col("entity_id").alias("msisdn"), "site_key")
        .unique()
    )
    pairs = sites.rename({"msisdn": "a"}).join(sites.rename({"msisdn": "b"}), on="site_key")
    return (
        pairs.filter(pl.col("a") < pl.col("b"))
        .select("a", "b")
        .unique()
        .with_columns(pl.lit(True).alias("flagged_here"))
    )


def strong_edges(edges: pl.DataFrame, min_edge_weight: float, min_together: float = 0.0) -> pl.DataFrame:
    """`graph.strong_edges`: weights rounded as Spark rounds them, at least `min_edge_weight`, between
    SIMs that were together (`colocation` >= `min_together`, or a shared device or SIM id)."""
    strong = edges.with_columns(spark_round(pl.col("weight"), WEIGHT_DECIMALS).alias("weight")).filter(
        pl.col("weight") >= float(min_edge_weight)
    )
    if min_together <= 0:
        return strong
    together = (spark_round(pl.col("colocation"), WEIGHT_DECIMALS) >= float(min_together)) | (pl.col("shared_id") > 0)
    return strong.filter(together)


def cap_degree(edges: pl.DataFrame, max_degree: int) -> pl.DataFrame:
    """`graph.cap_degree`: the edges among the `max_degree` heaviest of at least one of their ends
    (ties: the other end's id)."""
    ends = pl.concat(
        [
            edges.select(pl.col("a").alias("node"), pl.col("b").alias("other"), "a", "b", "weight"),
            edges.select(pl.col("b").alias("node"), pl.col("a").alias("other"), "a", "b", "weight"),
        ]
    )
    ranked = ends.sort(["node", "weight", "other"], descending=[False, True, False]).with_columns(
        pl.int_range(1, pl.len() + 1).over("node").alias("rank")
    )
    kept = ranked.filter(pl.col("rank") <= max_degree).select("a", "b").unique()
    return edges.join(kept, on=["a", "b"], how="semi")


def heaviest(edges: pl.DataFrame, n: int) -> pl.DataFrame:
    """The `n` heaviest edges (ties: by `a`, then `b`)."""
    return edges.sort(["weight", "a", "b"], descending=[True, False, False]).head(n)


def collect_edges(
    edges: pl.DataFrame, *, min_edge_weight: float, max_degree: int, max_edges: int, min_together: float = 0.0
) -> tuple[list[tuple[str, str, float]], list[str]]:
    """`graph.collect_edges`: the bounded edge list, heaviest first, and the warnings."""
    capped = cap_degree(strong_edges(edges, min_edge_weight, min_together), max_degree)
    rows = heaviest(capped, max_edges + 1).select("a", "b", "weight").rows()
    warnings = []
    if len(rows) > max_edges:
        warnings.append(edges_cut_warning(capped.height, max_degree, max_edges))
        rows = rows[:max_edges]
    return rows, warnings
