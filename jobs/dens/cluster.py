"""Dens from the suspect graph: networkx on the driver (the graph is the flagged few, not the city).

Why this order: connected components over the strong edges (weight >= `min_edge_weight`) are
exact and parameter-free, and on a real night most dens are already one component each, far from
the next. Two dens in the same building or dialling the same list can touch, so a component with
at least `split_min_nodes` nodes is split by Louvain modularity (weighted, `seed` from conf so the
same night gives the same dens); a small component is never split. Groups with fewer than
`min_sims` SIMs are not dens (one flagged courier is a flag, not a place to visit).
"""
from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

from jobs.dens.graph import IMEI_NODE


def suspect_graph(edges: Iterable[tuple[str, str, float]], nodes: Iterable[str] = (),
                  min_edge_weight: float = 0.5) -> nx.Graph:
    """The strong-edge graph, built in sorted order so that every run sees the same graph."""
    graph = nx.Graph()
    graph.add_nodes_from(sorted(set(nodes)))
    graph.add_weighted_edges_from(sorted((min(a, b), max(a, b), float(w)) for a, b, w in edges
                                         if w >= min_edge_weight))
    return graph


def den_groups(graph: nx.Graph, *, seed: int, split_min_nodes: int = 20, min_sims: int = 3) -> list[list[str]]:
    """Member node lists (sorted), one per den, in a deterministic order (by first member)."""
    groups: list[list[str]] = []
    for component in sorted((sorted(c) for c in nx.connected_components(graph)), key=lambda c: c[0]):
        if len(component) >= split_min_nodes:
            parts = nx.community.louvain_communities(graph.subgraph(component), weight="weight", seed=seed)
            groups.extend(sorted(p) for p in parts)
        else:
            groups.append(component)
    dens = [g for g in groups if sum(not n.startswith(IMEI_NODE) for n in g) >= min_sims]
    return sorted(dens, key=lambda g: g[0])
