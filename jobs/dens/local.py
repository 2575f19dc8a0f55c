"""The dens step on the local engine: `jobs.dens.spark`'s twin on Polars, in-process, no JVM.

The night from `jobs.night_local.load_local_night` (or the one detect left), the night's flags and
the earlier nights' dens read with `jobs.io.lake_polars`; the suspects' edges and facts from
`graph_local` and `describe_local`; then the same plain Python as Spark's step (`step`, `core`,
`cluster`, `identity`, `field`), and lake/dens and lake/victims written with
`lake_polars.replace_date`, sorted as Spark sorts them. The rows equal Spark's (tests/test_engines_dens.py).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, NamedTuple

import polars as pl

from jobs.config import Config
from jobs.dens.core import DenFacts, MemberFlag, NightFacts, describe_dens
from jobs.dens.describe_local import describe, membership, victims
from jobs.dens.graph_local import collect_edges, suspect_edges, suspect_rows, suspect_sims
from jobs.dens.step import DensResult, group_facts, groups_from, merged_groups, require_flags, with_history
from jobs.io import lake_polars, layout
from schemas.tables import DEN, FLAG, VICTIMS

if TYPE_CHECKING:
    from detectors.local.base import LocalNight

log = logging.getLogger("jobs.dens")


def earlier_dens(config: Config, day: dt.date) -> list[dict]:
    """Rows of lake/dens for the `lookback_nights` nights before `day` (DEN's columns, as dicts)."""
    days = [day - dt.timedelta(days=back) for back in range(1, config.dens.lookback_nights + 1)]
    columns = [c.name for c in DEN.columns if c.name != "date"]
    return lake_polars.read_days(config, DEN, days, columns).to_dicts()


class Found(NamedTuple):
    """What `find_dens` found: den rows (dicts in DEN's columns), the victims (VICTIMS' columns) and warnings."""

    rows: list[dict]
    victims: pl.DataFrame
    warnings: list[str]


def flags_of(flags: pl.DataFrame, facts: dict[str, DenFacts]) -> list[MemberFlag]:
    """The night's flags on the dens' own SIMs, devices and cells (`spark.flags_of`), sorted by every column."""
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
    keys = pl.DataFrame(wanted, schema={"entity_type": pl.String, "entity_id": pl.String}, orient="row")
    columns = list(MemberFlag.__dataclass_fields__)
    on_members = flags.join(keys, on=["entity_type", "entity_id"], how="semi").select(columns)
    return [MemberFlag(**r) for r in on_members.sort(columns, nulls_last=False).to_dicts()]


def night_sites(cdr: pl.LazyFrame) -> list[tuple[float, float, str | None]]:
    """(lat, lon, district) of every located site of the night, in `spark.night_sites`' order."""
    order = ["site_key", "site_lat", "site_lon", "district"]
    sites = cdr.filter(pl.col("site_key").is_not_null()).select(order).unique().sort(order, nulls_last=False)
    return sites.select("site_lat", "site_lon", "district").collect().rows()


def suspect_groups(rows: pl.DataFrame, flags: pl.DataFrame, settings, timezone: str):
    """The night's den groups (SIMs) and the bounds' warnings, from the suspects' rows."""
    edges, warnings = collect_edges(
        suspect_edges(rows, flags, timezone),
        min_edge_weight=settings.min_edge_weight,
        max_degree=settings.max_degree,
        max_edges=settings.max_edges,
        min_together=settings.min_together,
    )

    def lone_sims(n: int) -> list[str]:
        return suspect_sims(rows, flags).get_column("msisdn").sort().head(n).to_list()

    return groups_from(edges, warnings, lone_sims, settings)


def find_dens(config: Config, night: LocalNight, flags: pl.DataFrame, earlier: list[dict]) -> Found:
    """The transform (`spark.find_dens`): the same groups, facts, ids and victims."""
    cdr = night.cdr.lazy()  # lazy, or the located rows detect collected
    rows = suspect_rows(cdr, flags)
    groups, warnings = suspect_groups(rows, flags, config.dens, night.timezone)
    groups, described_groups = merged_groups(
        groups, lambda groups: describe(rows, membership(groups), night.timezone), config.dens
    )
    found = victims(cdr, membership(groups), night.whitelist, config.export.warning_min_call_s)
    dens = group_facts(groups, described_groups)
    n_victims = dict(found.group_by("den_key").agg(pl.len()).rows())
    facts = NightFacts(dens=dens, flags=flags_of(flags, dens), n_victims=n_victims, sites=night_sites(cdr))
    described = describe_dens(facts, earlier, config.dens, min_call_s=config.export.warning_min_call_s, day=night.day)
    id_map = pl.DataFrame(
        [(k, described[k]["den_id"], described[k]["district"]) for k in facts.dens],
        schema={"den_key": pl.String, "den_id": pl.String, "den_district": pl.String},
        orient="row",
    )
    victim_rows = found.join(id_map, on="den_key").select(
        "number",
        pl.coalesce("district", "den_district").alias("district"),
        "den_id",
        "first_contact",
        "longest_call_s",
        "n_calls",
        pl.lit(night.day).alias("date"),
    )
    return Found(list(described.values()), victim_rows, warnings)


def dens_date_local(config: Config, day: dt.date, night: LocalNight | None = None) -> DensResult:
    """The `cdrwatch dens` step for `day` on the local engine: lake/dens/date=D and lake/victims/date=D,
    the same rows as `jobs.dens.spark.dens_date`. `night`: the located night when detect left it."""
    require_flags(config, day)
    if night is None:
        from jobs.night_local import load_local_night

        night = load_local_night(config, day)
    flags = lake_polars.read_day(config, FLAG, day)
    result = find_dens(config, night, flags, earlier_dens(config, day))
    rows = with_history(config, day, result.rows)
    frame = pl.DataFrame([{c: r[c] for c in DEN.names} for r in rows], schema=DEN.polars())
    count = lake_polars.replace_date(config, DEN, day, frame, sort_by=("den_id",))
    n_victims = lake_polars.replace_date(config, VICTIMS, day, result.victims, sort_by=("den_id", "number"))
    log.info("dens %s: %d dens, %d victims", day, count, n_victims)
    return DensResult(day, rows, n_victims, layout.partition_path(config, DEN, day), list(result.warnings))
