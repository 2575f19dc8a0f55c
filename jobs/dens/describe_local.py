"""Describing dens on Polars: the local engine's twin of `jobs.dens.describe` (per-den aggregates over
the members' rows, and the victims), giving the same `DenFacts` and victims. Hours are the carriers'
local time (`timezone`), as Spark's session clock makes them."""

from __future__ import annotations

import polars as pl

from detectors.local.history import local_hour
from jobs.dens.core import DenFacts, key_of
from jobs.dens.graph_local import segment_of
from jobs.dens.links import IMEI_NODE
from jobs.dens.step import den_facts

SITE = ("site_key", "site_lat", "site_lon", "site_label", "district")
VICTIM_SCHEMA = {
    "den_key": pl.String,
    "number": pl.String,
    "district": pl.String,
    "first_contact": pl.Datetime("us", "UTC"),
    "longest_call_s": pl.Int32,
    "n_calls": pl.Int64,
}


def membership(groups: list[list[str]]) -> pl.DataFrame:
    """`msisdn, den_key` for the SIM members of each group (den_key `k001`, `k002`, ...)."""
    rows = [(n, key_of(i)) for i, g in enumerate(groups) for n in g if not n.startswith(IMEI_NODE)]
    return pl.DataFrame(rows, schema={"msisdn": pl.String, "den_key": pl.String}, orient="row")


def victims(cdr: pl.LazyFrame, members: pl.DataFrame, whitelist: pl.DataFrame, min_call_s: int) -> pl.DataFrame:
    """`den_key, number, district, first_contact, longest_call_s, n_calls` (district null when the
    resident has no located rows tonight): `describe.victims`."""
    calls = (
        cdr.join(members.lazy(), on="msisdn")
        .filter((pl.col("service") == "voice") & pl.col("other_party").is_not_null())
        .select("den_key", pl.col("other_party").alias("number"), "start_time", "duration_s")
        .join(members.lazy().select(pl.col("msisdn").alias("number")), on="number", how="anti")
        .join(whitelist.lazy().select("number"), on="number", how="anti")
    )
    per = (
        calls.group_by("den_key", "number")
        .agg(
            pl.col("start_time").min().alias("first_contact"),
            pl.col("duration_s").max().alias("longest_call_s"),
            pl.len().alias("n_calls"),
        )
        .filter(pl.col("longest_call_s") >= min_call_s)
        .collect()
    )
    residents = per.select(pl.col("number").alias("msisdn")).unique().lazy()
    homes = (
        cdr.join(residents, on="msisdn", how="semi")
        .filter(pl.col("district").is_not_null())
        .group_by("msisdn", "site_key", "district")
        .agg(pl.len().alias("count"))
        .sort(["msisdn", "count", "site_key", "district"], descending=[False, True, False, False], nulls_last=False)
        .group_by("msisdn", maintain_order=True)
        .first()
        .select(pl.col("msisdn").alias("number"), "district")
        .collect()
    )
    return (
        per.join(homes, on="number", how="left")
        .select("den_key", "number", "district", "first_contact", "longest_call_s", "n_calls")
        .cast(VICTIM_SCHEMA)
    )


def describe(rows: pl.DataFrame, members: pl.DataFrame, timezone: str) -> dict[str, DenFacts]:
    """den_key -> the den's aggregates (see `DenFacts`), each sorted, by den_key: `describe.describe`
    on the suspects' rows (`graph_local.suspect_rows`)."""
    rows = rows.join(members, on="msisdn").with_columns(local_hour(timezone).alias("h"))
    out = rows.filter(pl.col("direction") == "out")

    def counted(frame: pl.DataFrame, *keys: str) -> list[tuple]:
        return frame.group_by(*keys).agg(pl.len()).rows()

    located = rows.filter(pl.col("site_key").is_not_null())
    totals = out.group_by("den_key").agg(
        pl.len(),
        pl.col("other_party").drop_nulls().n_unique(),
        (pl.col("service") == "sms").sum(),
    )
    segments = out.select("den_key", segment_of(pl.col("other_party")).alias("seg")).filter(pl.col("seg").is_not_null())
    return den_facts(
        sites=[(r[0], tuple(r[1:6]), r[6], r[7]) for r in counted(located, "den_key", *SITE, "h")],
        cells=counted(rows.filter(pl.col("cell_id").is_not_null()), "den_key", "cell_id"),
        hours=counted(out, "den_key", "h"),
        sims=rows.group_by("den_key", "msisdn").agg(pl.col("carrier").min()).rows(),  # not first()
        imeis=counted(rows.filter(pl.col("imei").is_not_null()), "den_key", "imei"),
        segments=counted(segments, "den_key", "seg"),
        totals=totals.rows(),
    )
