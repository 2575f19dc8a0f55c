"""Physical sites from cell positions, engine-free: the Spark (`detectors.sites`) and Polars
(`detectors.local.sites`) `cell_sites` both place cells with `site_of_cells`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import networkx as nx
import numpy as np

EARTH_RADIUS_M = 6_371_000.0
SITE_RADIUS_M = 60.0  # cells this close are one physical site, wherever sites are drawn (detect, dens, report)


def distance_m(lat1, lon1, lat2, lon2):
    """Great-circle distance in metres (numpy arrays or scalars)."""
    lat1, lon1, lat2, lon2 = map(np.radians, (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(a))


class CellSite(NamedTuple):
    """The site one cell belongs to."""

    site: int  # sites numbered 0, 1, ... in the order of their first cell by (carrier, cell_id)
    site_key: str  # "S<lat>,<lon>" of the site's mean position, 4 decimals: the join key across carriers
    site_lat: float  # the mean position of the site's cells
    site_lon: float
    site_label: str  # the site name of its first cell by (carrier, cell_id), else that cell's id


def site_of_cells(
    cells: Sequence[tuple[str, str, float, float, str | None]], radius_m: float = SITE_RADIUS_M
) -> list[CellSite]:
    """cells as (carrier, cell_id, lat, lon, site_name) -> each one's `CellSite`, in the same order:
    cells within `radius_m` of each other (directly or through others) are one site."""
    lat = np.array([c[2] for c in cells], dtype=float)
    lon = np.array([c[3] for c in cells], dtype=float)
    graph = nx.Graph()
    graph.add_nodes_from(range(len(cells)))
    order = np.argsort(lat, kind="stable")
    sorted_lat = lat[order]
    band = radius_m / 111_000.0  # degrees of latitude within the radius: compare only neighbours in a band
    for pos, i in enumerate(order):
        near = order[pos + 1 : np.searchsorted(sorted_lat, lat[i] + band, side="right")]
        close = near[distance_m(lat[i], lon[i], lat[near], lon[near]) <= radius_m]
        graph.add_edges_from((int(i), int(k)) for k in close)
    components = [
        sorted(component, key=lambda n: (cells[n][0], cells[n][1])) for component in nx.connected_components(graph)
    ]
    components.sort(key=lambda members: (cells[members[0]][0], cells[members[0]][1]))
    site_of: dict[int, CellSite] = {}
    for number, members in enumerate(components):
        key = f"S{np.mean(lat[members]):.4f},{np.mean(lon[members]):.4f}"
        first = cells[members[0]]
        site = CellSite(number, key, float(np.mean(lat[members])), float(np.mean(lon[members])), first[4] or first[1])
        for n in members:
            site_of[n] = site
    return [site_of[n] for n in range(len(cells))]
