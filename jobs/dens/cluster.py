"""Dens from the suspect graph: networkx on the driver (the graph is the flagged few, not the city).

Why this order: connected components over the strong edges (weight >= `min_edge_weight`) are
exact and parameter-free, and on a real night most dens are already one component each, far from
the next. Two dens in the same building or dialling the same list can touch, so a component with
at least `split_min_nodes` nodes is split by Louvain modularity (weighted, `seed` from conf so the
same night gives the same dens); a small component is never split. Groups with fewer than
`min_sims` SIMs are not dens (one flagged courier is a flag, not a place to visit).

Determinism: Louvain is seeded, but its result also depends on the order it visits nodes and
edges. A networkx subgraph view iterates the component's node *set* (an order that changes with
PYTHONHASHSEED), so each component is rebuilt as a fresh graph from its sorted nodes and sorted
edges before Louvain sees it, and the graph itself is built the same way from sorted input.
"""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

from jobs.dens.links import IMEI_NODE, WEIGHT_DECIMALS


def canonical_graph(nodes: Iterable[str], edges: Iterable[tuple[str, str, float]]) -> nx.Graph:
    """A graph whose node and adjacency orders depend only on its content: sorted nodes first,
    then sorted `(a < b, weight)` edges (a pair given twice keeps its heaviest weight)."""
    weight: dict[tuple[str, str], float] = {}
    for a, b, w in edges:
        pair = (min(a, b), max(a, b))
        weight[pair] = max(weight.get(pair, w), w)
    graph = nx.Graph()
    graph.add_nodes_from(sorted({*nodes, *(n for pair in weight for n in pair)}))
    graph.add_weighted_edges_from((a, b, w) for (a, b), w in sorted(weight.items()))
    return graph


def suspect_graph(
    edges: Iterable[tuple[str, str, float]], nodes: Iterable[str] = (), min_edge_weight: float = 0.5
) -> nx.Graph:
    """The strong-edge graph (weights rounded as in Spark, see `graph.strong_edges`), canonical."""
    rounded = ((a, b, round(float(w), WEIGHT_DECIMALS)) for a, b, w in edges)
    return canonical_graph(nodes, [(a, b, w) for a, b, w in rounded if w >= min_edge_weight])


def _component(graph: nx.Graph, nodes: list[str]) -> nx.Graph:
    """The component as a canonical graph, not a subgraph view (whose order follows a set)."""
    inside = set(nodes)
    return canonical_graph(
        nodes, [(a, b, data["weight"]) for a in nodes for b, data in graph.adj[a].items() if a < b and b in inside]
    )


def den_groups(graph: nx.Graph, *, seed: int, split_min_nodes: int = 20, min_sims: int = 3) -> list[list[str]]:
    """Member node lists (sorted), one per den, in a deterministic order (by first member)."""
    groups: list[list[str]] = []
    for component in sorted((sorted(c) for c in nx.connected_components(graph)), key=lambda c: c[0]):
        if len(component) >= split_min_nodes:
            parts = nx.community.louvain_communities(_component(graph, component), weight="weight", seed=seed)
            groups.extend(sorted(p) for p in parts)
        else:
            groups.append(component)
    dens = [g for g in groups if sum(not n.startswith(IMEI_NODE) for n in g) >= min_sims]
    return sorted(dens, key=lambda g: g[0])
