"""Physical sites from the carriers' cell inventories.

Every carrier names its cells differently and places the same mast a few metres apart, so
anything that joins across carriers joins on `site_key`: cells within `radius_m` of each other are
one site (connected components of the "closer than radius_m" graph). The inventory is small (a
few thousand cells), so `site_of_cells` is plain Python/numpy; detect wraps it in a Spark DataFrame
to join CDRs on (`cell_sites`), the local engine and the report in a Polars frame
(`detectors.local.sites.cell_sites`); the clustering itself is `detectors.rules.sites`.
"""

from __future__ import annotations

from pyspark.sql import DataFrame

from detectors.rules.sites import EARTH_RADIUS_M, SITE_RADIUS_M, CellSite, distance_m, site_of_cells  # noqa: F401  (their home before the split)


def cell_sites(cells: DataFrame, radius_m: float = SITE_RADIUS_M) -> DataFrame:
    """cells (cell_id, lat, lon, site_name, district, carrier) -> the same rows plus `site_key`,
    `site_lat`, `site_lon` (the mean position of the site's cells) and `site_label` (a site name)."""
    rows = (
        cells.select("carrier", "cell_id", "lat", "lon", "site_name", "district")
        .orderBy("carrier", "cell_id")
        .collect()
    )
    spark = cells.sparkSession
    if not rows:
        return spark.createDataFrame(
            [],
            cells.schema.add("site_key", "string")
            .add("site_lat", "double")
            .add("site_lon", "double")
            .add("site_label", "string"),
        )
    sites = site_of_cells([(r.carrier, r.cell_id, r.lat, r.lon, r.site_name) for r in rows], radius_m)
    data = [
        (r.carrier, r.cell_id, float(r.lat), float(r.lon), r.site_name, r.district, *site[1:])
        for r, site in zip(rows, sites)
    ]
    return spark.createDataFrame(
        data,
        "carrier string, cell_id string, lat double, lon double, site_name string, district string, "
        "site_key string, site_lat double, site_lon double, site_label string",
    )
