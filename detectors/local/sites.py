"""Physical sites of the cell inventory, on Polars: the twin of `detectors.sites.cell_sites`, built
on the same clustering (`site_of_cells`), so both engines and the report see the same sites."""

from __future__ import annotations

import polars as pl

from detectors.rules.sites import SITE_RADIUS_M, site_of_cells

CELL_SCHEMA = {
    "carrier": pl.String,
    "cell_id": pl.String,
    "lat": pl.Float64,
    "lon": pl.Float64,
    "site_name": pl.String,
    "district": pl.String,
}
SITE_SCHEMA = {
    "site": pl.Int64,
    "site_key": pl.String,
    "site_lat": pl.Float64,
    "site_lon": pl.Float64,
    "site_label": pl.String,
}


def cell_sites(cells: pl.DataFrame, radius_m: float = SITE_RADIUS_M) -> pl.DataFrame:
    """The cells (sorted by carrier, cell_id) with their site: a `site` number, `site_key`, the site's
    mean `site_lat`, `site_lon` and `site_label` (the name of its first cell by carrier and cell id)."""
    cells = cells.sort("carrier", "cell_id")
    sites = site_of_cells(cells.select("carrier", "cell_id", "lat", "lon", "site_name").rows(), radius_m)
    return pl.concat([cells, pl.DataFrame(sites, schema=SITE_SCHEMA, orient="row")], how="horizontal")
