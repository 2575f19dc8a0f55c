"""Hard negatives: honest subscribers who look a bit like a den to a naive detector.

* couriers make dozens of short calls to strangers every day, but they move and get called back;
* the registered telemarketing office dials a sorted customer list from one site, but it is
  whitelisted, uses ordinary phones and keeps its SIMs;
* a crowd event congests a stadium's cell with hundreds of ordinary subscribers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jobs.simulate.city import DISTRICTS, GRID, OFFICE_DISTRICT, STADIUM_DISTRICT, City
from jobs.simulate.events import Calls, Crowd, World
from jobs.simulate.residents import HOUR, KIND_RESIDENT, Population

RESIDENTS_PER_COURIER = 300
MIN_COURIERS = 5
OFFICE_SIMS = 10
OFFICE_SESSIONS = ((9 * HOUR, 12 * HOUR), (13 * HOUR + 1800, 17 * HOUR + 1800))
CROWD_SHARE = 0.08
MIN_CROWD = 150
CROWD_HOURS = (19, 22)


def stadium_site(city: City) -> int:
    """The centre site of 成华区."""
    return int(city.sites_of(DISTRICTS.index(STADIUM_DISTRICT))[GRID * GRID // 2])


def office_site(city: City) -> int:
    """The busiest business site of 高新区."""
    sites = city.sites_of(DISTRICTS.index(OFFICE_DISTRICT))
    return int(sites[np.argmax(city.business[sites])])


# --- couriers -----------------------------------------------------------------------------------

def hire_couriers(rng: np.random.Generator, population: Population) -> np.ndarray:
    """Some residents deliver parcels; marks them in the population and returns their indices."""
    n = population.n_residents
    count = min(n, max(MIN_COURIERS, n // RESIDENTS_PER_COURIER))
    who = np.sort(rng.choice(n, count, replace=False))
    population.courier[who] = np.arange(count)
    return who


class CourierRoutes:
    """Each courier's round of the day: 8-15 sites in one or two neighbouring districts, walked 9-19 h."""

    def __init__(self, rng: np.random.Generator, city: City, n_couriers: int):
        district = rng.integers(0, len(DISTRICTS), n_couriers)
        neighbour = np.where(district % 4 < 3, district + 1, district - 1)
        two = rng.random(n_couriers) < 0.5
        per_district = GRID * GRID
        # candidate sites: the 49 of the first district, then (if two) the 49 of the neighbour
        candidates = np.concatenate([district[:, None] * per_district + np.arange(per_district),
                                     np.where(two, neighbour, district)[:, None] * per_district
                                     + np.arange(per_district)], axis=1)
        keys = rng.random(candidates.shape)
        keys[~two, per_district:] = 2.0                      # one district only: never pick the copy
        self.length = rng.integers(8, 16, n_couriers)
        picked = np.take_along_axis(candidates, np.argsort(keys, axis=1)[:, :15], axis=1)
        # walk them west to east so consecutive stops are near each other
        rank = np.where(np.arange(15) < self.length[:, None], city.site_lon[picked], np.inf)
        self.sites = np.take_along_axis(picked, np.argsort(rank, axis=1), axis=1)

    def __call__(self, courier: np.ndarray, sod: np.ndarray) -> np.ndarray:
        length = self.length[courier]
        stop = np.clip((sod - 9 * HOUR) * length // (10 * HOUR), 0, length - 1)
        return self.sites[courier, stop]


def courier_day(world: World, couriers: np.ndarray, rng: np.random.Generator) -> Calls:
    """30-70 short calls to distinct customers along the route; 20-40 % of them call back."""
    n_res = world.population.n_residents
    per = rng.integers(30, 71, couriers.size)
    courier = np.repeat(np.arange(couriers.size), per)
    callee = rng.integers(0, n_res - 1, courier.size)
    callee = callee + (callee >= couriers[courier])
    _, first = np.unique(courier.astype(np.int64) * n_res + callee, return_index=True)
    first = np.sort(first)
    courier, callee = courier[first], callee[first]
    sod = rng.integers(9 * HOUR, 19 * HOUR, courier.size)
    dur = np.where(rng.random(courier.size) < 0.85, rng.integers(10, 61, courier.size), 0)
    rounds = world.calls(rng, a_sim=couriers[courier], b_sim=callee, svc=0, sod=sod, dur=dur)

    back_share = rng.uniform(0.2, 0.4, couriers.size)
    back = rng.random(courier.size) < back_share[courier]
    back_sod = sod[back] + dur[back] + 60 + rng.exponential(25 * 60, int(back.sum())).astype(np.int64)
    keep = back_sod < world.day_len
    n = int(keep.sum())
    callbacks = world.calls(rng, a_sim=callee[back][keep], b_sim=couriers[courier[back][keep]], svc=0,
                            sod=back_sod[keep], dur=np.where(rng.random(n) < 0.9, rng.integers(10, 91, n), 0))
    return Calls.concat([rounds, callbacks])


# --- the telemarketing office -------------------------------------------------------------------

@dataclass
class Office:
    """A registered call centre: ordinary phones at one site, dialling a sorted customer list."""

    site: int
    sims: np.ndarray             # population indices
    customers: np.ndarray        # residents' numbers, ascending
    pointer: int = 0


def office_day(world: World, office: Office, rng: np.random.Generator) -> Calls:
    """Office hours 9-12 and 13:30-17:30; the next free agent takes the next customer on the list."""
    parts_sim, parts_sod, parts_dur = [], [], []
    for start, end in OFFICE_SESSIONS:
        most = (end - start) // 20 + 10
        shape = (office.sims.size, most)
        answered = rng.random(shape) < 0.45
        dur = np.where(answered, rng.integers(30, 241, shape), 0)
        busy = np.where(answered, dur, rng.integers(15, 36, shape)) + rng.integers(10, 41, shape)
        sod = start + rng.integers(0, 300, (office.sims.size, 1)) + np.cumsum(busy, axis=1) - busy
        keep = sod < end - 30
        parts_sim.append(np.broadcast_to(office.sims[:, None], shape)[keep])
        parts_sod.append(sod[keep])
        parts_dur.append(dur[keep])
    sim, sod, dur = (np.concatenate(p) for p in (parts_sim, parts_sod, parts_dur))
    order = np.lexsort((sim, sod))
    sim, sod, dur = sim[order], sod[order], dur[order]
    dialled = office.customers[(office.pointer + np.arange(sim.size)) % office.customers.size]
    office.pointer += sim.size
    return world.calls(rng, a_sim=sim, b_sim=world.reachable(dialled), b_num=dialled, svc=0, sod=sod, dur=dur)


# --- the crowd event ----------------------------------------------------------------------------

def gather_crowd(rng: np.random.Generator, population: Population, site: int) -> Crowd:
    """~8 % of residents (at least 150) at the stadium 19-22 h."""
    residents = np.flatnonzero(population.kind == KIND_RESIDENT)
    count = min(residents.size, max(MIN_CROWD, round(CROWD_SHARE * population.n_residents)))
    members = np.zeros(population.size, dtype=bool)
    members[rng.choice(residents, count, replace=False)] = True
    return Crowd(members, site, CROWD_HOURS[0] * HOUR, CROWD_HOURS[1] * HOUR)
