"""The physical city: 8 Chengdu districts, a grid of base-station sites, and each carrier's cells.

Every carrier has cells at every site, but names and numbers them its own way and surveys the
site a few metres apart from the others, so anything joining carriers must join by position.
Cells are addressed internally by one *global cell index* (cm cells, then cu, then ct); the
writers turn it into the carrier's own cell key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

CARRIERS = ("cm", "cu", "ct")
"""Carrier codes; internally a carrier is its index in this tuple (0 cm, 1 cu, 2 ct)."""
SECTORS = np.array([3, 2, 1])
"""Cells (sectors) per site, per carrier."""

DISTRICTS = ("锦江区", "青羊区", "金牛区", "武侯区", "成华区", "高新区", "龙泉驿区", "双流区")
GRID = 7  # sites per side of a district's square grid
SITE_SPACING_KM = 1.0
SURVEY_JITTER_M = 7.0  # a carrier's site coordinates vs the true site
BLOCK_SPACING_KM = 8.0  # district centres: a 4 x 2 arrangement, 8 km apart
CENTRE = (30.57, 104.06)
KM_LAT = 1 / 111.32
KM_LON = 1 / (111.32 * np.cos(np.radians(CENTRE[0])))
ROADS = (
    "人民南路",
    "春熙路",
    "蜀都大道",
    "天府大道",
    "建设路",
    "一环路",
    "二环路",
    "双楠路",
    "光华大道",
    "驷马桥路",
    "府青路",
    "高新大道",
    "科华北路",
    "玉林路",
    "沙湾路",
)
STADIUM_DISTRICT = "成华区"
OFFICE_DISTRICT = "高新区"


@dataclass
class City:
    """Sites (index = global site number) and the three carriers' cell inventories."""

    site_lat: np.ndarray
    site_lon: np.ndarray
    site_district: np.ndarray  # index into DISTRICTS
    site_local: np.ndarray  # 0..48 within the district
    residential: np.ndarray  # relative weight of homes at the site
    business: np.ndarray  # relative weight of workplaces at the site
    cell_site: np.ndarray  # per global cell index
    cell_carrier: np.ndarray
    cell_id: pl.Series  # the carrier's cell key, per global cell index
    inventories: dict[str, pl.DataFrame]

    @property
    def n_sites(self) -> int:
        return len(self.site_lat)

    @property
    def cell_base(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(SECTORS * self.n_sites)[:-1]])

    def cell(self, carrier: np.ndarray, site: np.ndarray, slot: np.ndarray) -> np.ndarray:
        """Global cell index of a subscriber's sector `slot` (0..2, reduced per carrier) at `site`."""
        carrier = np.asarray(carrier)
        return (
            self.cell_base[carrier] + np.asarray(site) * SECTORS[carrier] + np.asarray(slot) % SECTORS[carrier]
        ).astype(np.int32)

    def neighbour(self, site: int) -> int:
        """The next site along the grid row (or the previous one at the row's end), same district."""
        local = int(self.site_local[site])
        return site + 1 if local % GRID < GRID - 1 else site - 1

    def sites_of(self, district: int) -> np.ndarray:
        return np.flatnonzero(self.site_district == district)

    def site_cells(self, site: int) -> list[str]:
        """Every carrier's cell keys at one site, e.g. a congested stadium."""
        return sorted(self.cell_id.gather(np.flatnonzero(self.cell_site == site)).to_list())

    def cell_ids(self, cells: np.ndarray) -> list[str]:
        return sorted(set(self.cell_id.gather(np.unique(cells)).to_list()))


def build_city(rng: np.random.Generator) -> City:
    n_district = len(DISTRICTS)
    k = np.repeat(np.arange(n_district), GRID * GRID)
    local = np.tile(np.arange(GRID * GRID), n_district)
    row, col = local // GRID, local % GRID
    block_x = (k % 4 - 1.5) * BLOCK_SPACING_KM
    block_y = (0.5 - k // 4) * BLOCK_SPACING_KM
    x = block_x + (col - (GRID - 1) / 2) * SITE_SPACING_KM + rng.uniform(-0.15, 0.15, k.size)
    y = block_y - (row - (GRID - 1) / 2) * SITE_SPACING_KM + rng.uniform(-0.15, 0.15, k.size)
    site_lat = CENTRE[0] + y * KM_LAT
    site_lon = CENTRE[1] + x * KM_LON
    residential = rng.gamma(2.0, 1.0, k.size)
    business = rng.gamma(0.7, 1.0, k.size) * np.where(np.isin(k, [0, 5]), 3.0, 1.0)  # 锦江, 高新: offices

    sites = np.arange(k.size)
    cell_site, cell_carrier, ids, frames = [], [], [], {}
    for c, code in enumerate(CARRIERS):
        n_sec = int(SECTORS[c])
        site = np.repeat(sites, n_sec)
        sector = np.tile(np.arange(n_sec), k.size)
        kk, loc = k[site], local[site]
        district = [DISTRICTS[i] for i in kk]
        if code == "cm":
            cell = [f"{4100 + a}-{20000 + s * 3 + b}" for a, s, b in zip(kk, site, sector)]
            name = [f"{d}{n:03d}号基站" for d, n in zip(district, loc)]
        elif code == "cu":
            cell = [f"460-01-{23000 + a}-{100 + s * 2 + b}" for a, s, b in zip(kk, site, sector)]
            name = [f"联通{d}{ROADS[s % len(ROADS)]}{n:02d}号宏站" for d, s, n in zip(district, site, loc)]
        else:
            cell = [f"ct{1000 + s * 5:05d}" for s in site]
            name = [f"电信{d[:-1]}片区站点{n:03d}" for d, n in zip(district, loc)]
        # each carrier surveyed the site on its own: within 7 m of it, so at most ~15 m from each other
        radius = SURVEY_JITTER_M * np.sqrt(rng.random(k.size))
        angle = rng.uniform(0, 2 * np.pi, k.size)
        jitter_lat = (radius * np.sin(angle))[site] / 1000 * KM_LAT
        jitter_lon = (radius * np.cos(angle))[site] / 1000 * KM_LON
        frames[code] = pl.DataFrame(
            {
                "cell_id": cell,
                "lat": np.round(site_lat[site] + jitter_lat, 6),
                "lon": np.round(site_lon[site] + jitter_lon, 6),
                "site_name": name,
                "district": district,
            }
        )
        cell_site.append(site)
        cell_carrier.append(np.full(site.size, c))
        ids.extend(cell)
    return City(
        site_lat,
        site_lon,
        k,
        local,
        residential,
        business,
        np.concatenate(cell_site),
        np.concatenate(cell_carrier),
        pl.Series("cell_id", ids),
        frames,
    )
