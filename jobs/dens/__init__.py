"""`cdrwatch dens --date D`: lake/flags + lake/cdr of D (+ lake/dens of earlier nights) ->
lake/dens/date=D and lake/victims/date=D, on either engine: `jobs.dens.spark.dens_date` (Spark) or
`jobs.dens.local.dens_date_local` (Polars, in-process), which write the same rows.

extract (the located night, the night's flags, earlier dens) -> transform (`graph.suspect_edges`,
or `graph_local`'s twin, bounded by `collect_edges`: dens.min_edge_weight, dens.min_together,
dens.max_degree, dens.max_edges; `cluster.den_groups` in networkx; groups of one place, time and
list merged (`step.merged_groups`, `core.merge_plan`); each den's small facts gathered by the engine
(`describe`, `describe_local`); `core.describe_dens` scores, places, words and names them
(`identity.assign_ids`) in plain Python; `field.with_field_history` adds what the field found: last
visit, "seen again after the raid", suppression of cleared groups) -> load (`replace_date` of the
engine's lake adapter, atomic). See the modules for the choices.

Deterministic: whatever is collected is sorted before it decides anything, and Louvain sees
canonical graphs, so PYTHONHASHSEED and spark.sql.shuffle.partitions change nothing in the output.

This package imports no engine: `jobs.dens.spark` (and `graph`, `describe`) import pyspark,
`jobs.dens.local` (and `graph_local`, `describe_local`) Polars. The Spark step's names are
reachable from here (`from jobs.dens import dens_date`), imported on first use.
"""

from __future__ import annotations

from jobs.dens.step import DensResult

_SPARK_NAMES = ("Found", "dens_date", "earlier_dens", "find_dens", "flags_of", "night_facts", "suspect_groups")

__all__ = ["DensResult", *_SPARK_NAMES]


def __getattr__(name: str):
    if name in _SPARK_NAMES:
        from jobs.dens import spark

        return getattr(spark, name)
    raise AttributeError(f"module 'jobs.dens' has no attribute {name!r}")
