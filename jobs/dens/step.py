"""The dens step's engine-free half, shared by the Spark step (`jobs.dens.spark`) and the local one
(`jobs.dens.local`): the result type, the check that detect ran, the groups from the collected
edges (`cluster`), the merge of groups of one place (`core.merge_plan`) and what the field found
(`field`). Each engine brings only its aggregates: edges, lone suspect SIMs, each group's facts."""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

from jobs.config import Config
from jobs.dens.cluster import den_groups, suspect_graph
from jobs.dens.core import DenFacts, key_of, merge_plan
from jobs.dens.field import with_field_history
from jobs.errors import CdrwatchError
from jobs.feedback.store import field_history
from jobs.io import layout
from schemas.tables import FLAG

log = logging.getLogger("jobs.dens")


class DensResult(NamedTuple):
    """What `dens_date` wrote: the den rows (DEN's columns), victims, where, and warnings."""

    day: dt.date
    rows: list[dict]
    victims: int
    path: Path
    warnings: list[str]


def require_flags(config: Config, day: dt.date) -> None:
    """The dens step reads the night's flags: none written (detect did not run) is an error."""
    if not layout.partition_path(config, FLAG, day).is_dir():
        raise CdrwatchError(
            f"{layout.partition_path(config, FLAG, day)}: no flags for {day} (run cdrwatch detect first)"
        )


def groups_from(
    edges: list[tuple[str, str, float]], warnings: list[str], lone_sims: Callable[[int], list[str]], settings
) -> tuple[list[list[str]], list[str]]:
    """The night's den groups (SIMs) from the bounded edge list (`collect_edges`), and the warnings.
    `lone_sims(n)`: the first `n` suspect SIMs by number, asked for only when `dens.min_sims` <= 1
    (only then can a SIM without a strong link be a den on its own)."""
    nodes: list[str] = []
    if settings.min_sims <= 1:
        nodes = lone_sims(settings.max_edges + 1)
        if len(nodes) > settings.max_edges:
            warnings.append(
                f"suspect graph: more than {settings.max_edges:,} suspect SIMs, only the first "
                f"{settings.max_edges:,} by number kept as lone nodes (dens.max_edges)"
            )
            nodes = nodes[: settings.max_edges]
    graph = suspect_graph(edges, nodes, settings.min_edge_weight)
    groups = den_groups(graph, seed=settings.seed, split_min_nodes=settings.split_min_nodes, min_sims=settings.min_sims)
    return groups, warnings


def merged_groups(
    groups: list[list[str]], describe: Callable[[list[list[str]]], dict[str, DenFacts]], settings
) -> tuple[list[list[str]], dict[str, DenFacts]]:
    """The groups with those of one place, time and list merged (`core.merge_plan`), and their
    facts (`describe(groups)`); described a second time only when something merged."""
    facts = describe(groups)
    plan = merge_plan({key_of(i): facts[key_of(i)] for i in range(len(groups)) if key_of(i) in facts}, settings)
    if all(len(keys) == 1 for keys in plan):
        return groups, facts
    index = {key_of(i): i for i in range(len(groups))}
    merged = sorted((sorted({n for key in keys for n in groups[index[key]]}) for keys in plan), key=lambda g: g[0])
    log.info("dens: %d groups of one place merged into %d", len(groups), len(merged))
    return merged, describe(merged)


def group_facts(groups: list[list[str]], facts: dict[str, DenFacts]) -> dict[str, DenFacts]:
    """den_key -> facts of the groups that have any, in group order."""
    return {key_of(i): facts[key_of(i)] for i in range(len(groups)) if key_of(i) in facts}


def with_history(config: Config, day: dt.date, rows: list[dict]) -> list[dict]:
    """Tonight's den rows with what the field found (`field.with_field_history`, lake/feedback)."""
    visits, cleared = field_history(config, day)
    return with_field_history(rows, visits, cleared, day, min_overlap=config.feedback.suppress_min_overlap)


Site = tuple  # (site_key, site_lat, site_lon, site_label, district)


def den_facts(
    *,
    sites: Iterable[tuple[str, Site, int, int]],
    cells: Iterable[tuple[str, str, int]],
    hours: Iterable[tuple[str, int, int]],
    sims: Iterable[tuple[str, str, str]],
    imeis: Iterable[tuple[str, str, int]],
    segments: Iterable[tuple[str, str, int]],
    totals: Iterable[tuple[str, int, int, int]],
) -> dict[str, DenFacts]:
    """den_key -> `DenFacts`, each sorted, by den_key, from an engine's collected aggregates (any
    order): `sites` (den_key, site, local hour, events) of located rows, `cells` (den_key, cell_id,
    events), `hours` (den_key, local hour, outgoing events), `sims` (den_key, msisdn, carrier),
    `imeis` (den_key, imei, events), `segments` (den_key, callee segment, outgoing events), `totals`
    (den_key, outgoing events, distinct callees, SMS)."""
    facts: dict[str, dict] = defaultdict(
        lambda: {
            "sites": Counter(),
            "site_hours": {},
            "cells": Counter(),
            "hours": {},
            "sims": {},
            "imeis": Counter(),
            "segments": Counter(),
            "n_calls": 0,
            "n_distinct_callees": 0,
            "n_sms": 0,
        }
    )
    for key, site, hour, n in sites:
        facts[key]["sites"][site] += n
        site_hours = facts[key]["site_hours"]
        site_hours[(hour, site[0])] = site_hours.get((hour, site[0]), 0) + n
    for key, cell, n in cells:
        facts[key]["cells"][cell] = n
    for key, hour, n in hours:
        facts[key]["hours"][hour] = n
    for key, msisdn, carrier in sims:
        facts[key]["sims"][msisdn] = carrier
    for key, imei, n in imeis:
        facts[key]["imeis"][imei] = n
    for key, segment, n in segments:
        facts[key]["segments"][segment] = n
    for key, n, distinct, sms in totals:
        facts[key].update(n_calls=n, n_distinct_callees=distinct, n_sms=sms)
    for fact in facts.values():  # collect order follows the partitioning: make it canonical
        fact["sites"] = sorted(
            ((*site, n) for site, n in fact["sites"].items()),
            key=lambda site: tuple("" if v is None else str(v) for v in site[:5]),
        )
        for name in ("sims", "hours", "site_hours", "cells", "imeis", "segments"):
            fact[name] = dict(sorted(fact[name].items()))
    return {key: DenFacts(**fact) for key, fact in sorted(facts.items())}
