"""Physical sites from the carriers' cell inventories.

Every carrier names its cells differently and places the same mast a few metres apart, so
anything that joins across carriers joins on `site_key`: cells within `radius_m` of each other are
one site (connected components of the "closer than radius_m" graph). The inventory is small (a
few thousand cells), so this runs on the driver; the result is a Spark DataFrame to join CDRs on.
"""
from __future__ import annotations

import networkx as nx
import numpy as np
from pyspark.sql import DataFrame

EARTH_RADIUS_M = 6_371_000.0


def distance_m(lat1, lon1, lat2, lon2):
    """Great-circle distance in metres (numpy arrays or scalars)."""
    lat1, lon1, lat2, lon2 = map(np.radians, (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(a))


def cell_sites(cells: DataFrame, radius_m: float = 60.0) -> DataFrame:
    """cells (cell_id, lat, lon, site_name, district, carrier) -> the same rows plus `site_key`,
    `site_lat`, `site_lon` (the mean position of the site's cells) and `site_label` (a site name)."""
    rows = cells.select("carrier", "cell_id", "lat", "lon", "site_name", "district").orderBy("carrier", "cell_id") \
        .collect()
    spark = cells.sparkSession
    if not rows:
        return spark.createDataFrame([], cells.schema.add("site_key", "string").add("site_lat", "double")
                                     .add("site_lon", "double").add("site_label", "string"))
    lat = np.array([r.lat for r in rows])
    lon = np.array([r.lon for r in rows])
    graph = nx.Graph()
    graph.add_nodes_from(range(len(rows)))
    order = np.argsort(lat, kind="stable")
    sorted_lat = lat[order]
    band = radius_m / 111_000.0  # degrees of latitude within the radius: compare only neighbours in a band
    for pos, i in enumerate(order):
        near = order[pos + 1:np.searchsorted(sorted_lat, lat[i] + band, side="right")]
        close = near[distance_m(lat[i], lon[i], lat[near], lon[near]) <= radius_m]
        graph.add_edges_from((int(i), int(k)) for k in close)
    site_of = {}
    for component in nx.connected_components(graph):
        members = sorted(component, key=lambda n: (rows[n].carrier, rows[n].cell_id))
        key = f"S{np.mean(lat[members]):.4f},{np.mean(lon[members]):.4f}"
        label = rows[members[0]].site_name or rows[members[0]].cell_id
        for n in members:
            site_of[n] = (key, float(np.mean(lat[members])), float(np.mean(lon[members])), label)
    data = [(r.carrier, r.cell_id, float(r.lat), float(r.lon), r.site_name, r.district, *site_of[n])
            for n, r in enumerate(rows)]
    return spark.createDataFrame(
        data, "carrier string, cell_id string, lat double, lon double, site_name string, district string, "
              "site_key string, site_lat double, site_lon double, site_label string")
