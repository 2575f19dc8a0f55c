"""Fraud dens: SIM boxes and call rooms dialling the city's number segments in order, and the
evasive ones that learnt what the detectors look for.

What a classic den leaves in the CDRs is exactly what the detectors look for: ascending callees in
the residents' segments, many SIMs on one or two cells, shared or fresh IMEIs, shift hours, short
unanswered calls, very few call-backs, and a handful of victims who talk for a long time.

The evasive kinds (`KINDS[4:]`) each hide one of those: a box that shows a new IMEI on every call
(改串号); a low-and-slow room of phones with SIMs bought from residents, calling a leaked list of
residents at a person's pace; two boxes in one room sharing one number list; a box in a car that
changes mast every hour along a road. They draw from their own streams and identities, so the four
classic dens make exactly the calls they made before the evasive ones existed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simulator.city import DISTRICTS, GRID, KM_LAT, KM_LON, SECTORS, City
from simulator.events import Calls, World, on_the_clock, one_after_another
from simulator.numbers import BOX_TACS, PHONE_TACS, Identities, NumberPlan
from simulator.residents import HOUR, KIND_RESIDENT, Population

KINDS = ("goip_shared", "goip_fresh", "room", "sms_blaster", "goip_hopping", "low_slow", "twin_boxes", "goip_car")
CLASSIC = KINDS[:4]
PATTERNS = ("per_sim", "round_robin", "shuffled_blocks")
FIXED_PATTERNS = {"goip_hopping": "round_robin", "low_slow": "leaked_list", "twin_boxes": "round_robin"}
DAY_SHIFTS = (((9, 12), (14, 18)), ((10, 13), (15, 21)))
NIGHT_SHIFTS = ((20, 24),)
NIGHT_DEN = 2  # the third den works nights
SIM_CARRIER_P = np.array([0.4, 0.3, 0.3])
ANSWERED = 0.25
CALLBACK = 0.03
MAX_OFFSET_M = 200.0
# low_slow: a room of ordinary phones with SIMs bought from residents, calling a leaked list of residents
LOW_SLOW_START = 2  # its first day (when the run has >= LOW_SLOW_MIN_DAYS days), so SIMs have a past
LOW_SLOW_MIN_DAYS = 4
LOW_SLOW_CALLS = (20, 45)  # voice calls per SIM per day, inclusive
LOW_SLOW_GAP_SHAPE = 2.0  # gamma shape of the pause between two calls (a person's pace)
LOW_SLOW_LEAKED = (0.30, 0.40)  # share of the residents on the leaked list ...
LOW_SLOW_LEAKED_MAX = 5000  # ... at most this many
LOW_SLOW_ANSWERED = 0.35
LOW_SLOW_LONG = 0.25  # of the answered: a victim talks 300-2400 s; the others hang up in 2-15 s
LOW_SLOW_HANG_UP_S = (2, 15)
LOW_SLOW_CALLBACK = 0.015
VICTIM_TALK_S = (300, 2400)
ROUTE_SITES = (5, 7)  # goip_car: consecutive sites of one grid row or column (a district is 7 wide)


@dataclass
class DenProfile:
    sims: tuple[int, int]  # SIMs (or operators) per den, inclusive range
    rate: tuple[float, float]  # calls per SIM per hour
    regular: bool  # machine-regular gaps (boxes) or human ones (rooms)


PROFILES = {
    "goip_shared": DenProfile((8, 16), (30, 50), True),
    "goip_fresh": DenProfile((8, 16), (30, 50), True),
    "room": DenProfile((5, 12), (12, 25), False),
    "sms_blaster": DenProfile((8, 16), (120, 250), True),
    "goip_hopping": DenProfile((8, 16), (30, 50), True),
    "low_slow": DenProfile((6, 10), (2, 6), False),  # rate unused: LOW_SLOW_CALLS per day
    "twin_boxes": DenProfile((8, 12), (30, 50), True),  # per box; two boxes
    "goip_car": DenProfile((8, 12), (30, 50), True),
}


@dataclass
class Den:
    den_id: str
    kind: str
    pattern: str
    shifts: tuple[tuple[int, int], ...]
    sites: tuple[int, int]  # before and after the move (the same when it never moves)
    offsets_m: tuple[tuple[float, float], tuple[float, float]]  # true position: (east, north) from the site
    move_day: int | None
    slot: int  # its primary sector at the site
    n_sims: int
    rate: float
    gap_sd: float
    pointer: int  # next position in the dial list; continues across days
    block_order: np.ndarray | None  # shuffled_blocks: the list's order
    sim_carriers: np.ndarray | None = None  # per SIM slot; every carrier is represented
    box_imei: int | None = None
    phone_imeis: np.ndarray | None = None  # room: one handset per operator, kept across swaps
    swap_every: np.ndarray | None = None  # room: days between an operator's SIM swaps
    sims: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # today's SIMs
    start_day: int = 0  # low_slow: its first day
    box_imeis: np.ndarray | None = None  # twin_boxes: each SIM slot's box
    route: np.ndarray | None = None  # goip_car: the road's sites in driving order
    leaked: np.ndarray | None = None  # low_slow: residents on the leaked list
    walks: np.ndarray | None = None  # low_slow: each SIM's own shuffled copy of the list ...
    walked: np.ndarray | None = None  # ... and how far along it the SIM is
    raided_on: int | None = None  # raided (see raids.py): the day it places no calls ...
    back_site: int | None = None  # ... and where its box works from the next day on
    back_offset_m: tuple[float, float] = (0.0, 0.0)

    @property
    def is_sms(self) -> bool:
        return self.kind == "sms_blaster"

    def active(self, day: int) -> bool:
        return day >= self.start_day and day != self.raided_on

    def back(self, day: int) -> bool:
        """Working again, from its new place, after the raid."""
        return self.raided_on is not None and day > self.raided_on

    def moved(self, day: int) -> bool:
        return (self.move_day is not None and day >= self.move_day) or self.back(day)

    def site(self, day: int) -> int:
        if self.back(day):
            return self.back_site
        return self.sites[1] if self.moved(day) else self.sites[0]

    def position(self, day: int, city: City) -> tuple[float, float]:
        """The den's true (lat, lon): its site's position plus up to 200 m."""
        if self.back(day):
            east, north = self.back_offset_m
        else:
            east, north = self.offsets_m[1] if self.moved(day) else self.offsets_m[0]
        site = self.site(day)
        return (
            round(float(city.site_lat[site] + north / 1000 * KM_LAT), 6),
            round(float(city.site_lon[site] + east / 1000 * KM_LON), 6),
        )

    @property
    def hours(self) -> str:
        return ";".join(f"{a:02d}-{b:02d}" for a, b in self.shifts)

    def hour_sites(self, day: int) -> np.ndarray:
        """goip_car: the site it is at in each hour of the day. Every working hour one site further along
        the road, there and back, starting from the other end on odd days; parked between shifts."""
        working = np.array([h for a, b in self.shifts for h in range(a, b)])
        step = np.clip(np.searchsorted(working, np.arange(24), side="right") - 1, 0, working.size - 1)
        period = 2 * (self.route.size - 1)
        at = step % period
        road = self.route if day % 2 == 0 else self.route[::-1]
        return road[np.where(at < self.route.size, at, period - at)]


def found_dens(
    rng: np.random.Generator,
    city: City,
    count: int,
    days: int,
    dial_size: int,
    ids: Identities,
    avoid: set[int],
    population: Population | None = None,
    new_ids: Identities | None = None,
    exclude: np.ndarray | None = None,
) -> list[Den]:
    """`count` dens at residential sites; kinds and dialling patterns cycle, den 1 moves mid-run.
    The evasive kinds take their devices from `new_ids` and a low_slow room buys its SIMs from
    `population`'s residents (never those in `exclude`)."""
    residential = np.argsort(-city.residential, kind="stable")[: city.n_sites // 3]
    candidates = [int(s) for s in rng.permutation(residential) if int(s) not in avoid]
    dens = []
    sold = np.zeros(0, dtype=np.int64) if exclude is None else np.asarray(exclude, dtype=np.int64)
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        pattern = FIXED_PATTERNS.get(kind, PATTERNS[i % len(PATTERNS)])
        profile = PROFILES[kind]
        road = None
        if kind == "goip_car":
            taken = (
                set(avoid)
                | {s for d in dens for s in d.sites}
                | {int(s) for d in dens if d.route is not None for s in d.route}
            )
            road = _road(rng, city, taken)
            candidates = [s for s in candidates if s not in taken | set(road.tolist())]
            site = int(road[0])
        else:
            site = candidates.pop(0)
        moved_to, move_day = site, None
        if i == 0 and days >= 2:
            elsewhere = [s for s in candidates if city.site_district[s] != city.site_district[site]]
            moved_to, move_day = elsewhere[0], days // 2
            candidates.remove(moved_to)
        n_sims = int(rng.integers(profile.sims[0], profile.sims[1] + 1))
        boxes = None
        if kind == "twin_boxes":
            boxes = np.array([n_sims, int(rng.integers(profile.sims[0], profile.sims[1] + 1))])
            n_sims = int(boxes.sum())
        block_order = None
        if pattern == "shuffled_blocks":
            block = np.repeat(np.arange(dial_size), rng.integers(50, 201, dial_size))[:dial_size]
            block_order = np.lexsort((rng.random(dial_size), block))
        den = Den(
            den_id=f"den{i + 1:02d}",
            kind=kind,
            pattern=pattern,
            shifts=NIGHT_SHIFTS if i == NIGHT_DEN else DAY_SHIFTS[i % 2],
            sites=(site, moved_to),
            offsets_m=(true_offset(rng), true_offset(rng)),
            move_day=move_day,
            slot=int(rng.integers(0, 6)),
            n_sims=n_sims,
            rate=float(rng.uniform(*profile.rate)),
            gap_sd=float(rng.uniform(1.5, 4.0)),
            pointer=int(i * dial_size // max(count, 1) + rng.integers(0, 5000)),
            block_order=block_order,
        )
        # SIMs bought from all three carriers; a swapped-in SIM is of the same carrier as its slot's last one
        den.sim_carriers = rng.permutation(np.r_[np.arange(3), rng.choice(3, n_sims - 3, p=SIM_CARRIER_P)]).astype(
            np.int8
        )
        if kind in ("goip_shared", "sms_blaster"):
            den.box_imei = int(ids.imei(1, BOX_TACS)[0])
        if kind == "room":
            den.phone_imeis = ids.imei(n_sims, PHONE_TACS)
            den.swap_every = rng.integers(2, 4, n_sims)
        if kind not in CLASSIC:
            _evasive(den, rng, new_ids, boxes, road, population, days, sold)
            if den.kind == "low_slow":
                sold = np.r_[sold, den.sims]
        dens.append(den)
    return dens


def _evasive(
    den: Den,
    rng: np.random.Generator,
    ids: Identities,
    boxes: np.ndarray | None,
    road: np.ndarray | None,
    population: Population,
    days: int,
    sold: np.ndarray,
) -> None:
    """What the evasive kinds have beyond a classic den: devices, a road, a room's bought SIMs and list."""
    if den.kind == "twin_boxes":
        den.box_imeis = np.repeat(ids.imei(2, BOX_TACS), boxes)
    elif den.kind == "goip_car":
        den.box_imei = int(ids.imei(1, BOX_TACS)[0])
        den.route = road
    elif den.kind == "low_slow":
        den.start_day = LOW_SLOW_START if days >= LOW_SLOW_MIN_DAYS else 0
        residents = np.flatnonzero(population.kind[: population.n_residents] == KIND_RESIDENT)
        residents = residents[~np.isin(residents, sold)]
        den.sims = np.sort(rng.choice(residents, den.n_sims, replace=False)).astype(np.int64)
        den.phone_imeis = ids.imei(den.n_sims, PHONE_TACS)  # one new handset per SIM, kept
        rest = residents[~np.isin(residents, den.sims)]
        size = min(rest.size, LOW_SLOW_LEAKED_MAX, round(rng.uniform(*LOW_SLOW_LEAKED) * population.n_residents))
        den.leaked = np.sort(rng.choice(rest, size, replace=False))
        den.walks = np.stack([rng.permutation(den.leaked) for _ in range(den.n_sims)])
        den.walked = np.zeros(den.n_sims, dtype=np.int64)


def _road(rng: np.random.Generator, city: City, taken: set[int]) -> np.ndarray:
    """5-7 consecutive sites along one grid row or column of a district, none of them `taken`."""
    for _ in range(1000):
        district = int(rng.integers(0, len(DISTRICTS)))
        length = int(rng.integers(ROUTE_SITES[0], ROUTE_SITES[1] + 1))
        line, first = int(rng.integers(0, GRID)), int(rng.integers(0, GRID - length + 1))
        along = first + np.arange(length)
        local = line * GRID + along if rng.random() < 0.5 else along * GRID + line
        road = city.sites_of(district)[local]
        if not taken & set(road.tolist()):
            return road.astype(np.int64)
    raise ValueError("simulate: no free road for a goip_car den")


def sims_per_day(count: int) -> int:
    """At most how many new SIMs the first `count` dens take in one day (room swaps and bought SIMs
    are older ones), never fewer than the 16 a den was always allowed."""
    need = {"twin_boxes": 2 * PROFILES["twin_boxes"].sims[1], "low_slow": 0}
    return sum(max(16, need.get(KINDS[i % len(KINDS)], PROFILES[KINDS[i % len(KINDS)]].sims[1])) for i in range(count))


def true_offset(rng: np.random.Generator) -> tuple[float, float]:
    """(east, north) metres of a den's true position from its site: up to 200 m."""
    radius, angle = MAX_OFFSET_M * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
    return radius * math.cos(angle), radius * math.sin(angle)


def open_den(den: Den, world: World, numbers: NumberPlan, ids: Identities, rng: np.random.Generator) -> None:
    """Put today's SIMs in the box / phones (swapping as the kind does) and station them at the den."""
    day = world.index
    if den.kind == "low_slow":
        if day == den.start_day:  # the bought SIMs go into the room's handsets
            world.registry.imei[den.sims] = den.phone_imeis
        _station(den, world, den.sims, day)
        return
    if den.kind == "room" and den.sims.size:
        swap = (day % den.swap_every) == 0  # each operator on their own 2- or 3-day rhythm
    else:
        swap = np.ones(den.n_sims, dtype=bool)  # boxes get fresh SIMs every day
    sims = den.sims.copy() if den.sims.size else np.zeros(den.n_sims, dtype=np.int64)
    new = np.flatnonzero(swap)
    carrier = den.sim_carriers[new]
    if den.kind in ("goip_fresh", "goip_hopping"):  # hopping: the IMEI of each SIM's first call today
        imei = ids.imei(new.size, random_tac=True)
    elif den.kind == "room":
        imei = den.phone_imeis[new]
    elif den.kind == "twin_boxes":
        imei = den.box_imeis[new]
    else:
        imei = np.full(new.size, den.box_imei, dtype=np.int64)
    sims[new] = world.registry.add(numbers.draw_mixed(carrier), carrier, ids.imsi(carrier), imei)
    den.sims = sims
    _station(den, world, sims, day)


def _station(den: Den, world: World, sims: np.ndarray, day: int) -> None:
    """A den's SIMs are on its sector of its site (and sometimes the next cell); a car's, hour by hour."""
    carrier = world.registry.carrier[sims]
    if den.route is not None:
        city, sites = world.city, den.hour_sites(day)
        carrier = carrier[:, None]
        primary = city.cell(carrier, sites[None, :], np.full((sims.size, 24), den.slot))
        nearby = np.array([city.neighbour(int(s)) for s in sites])
        secondary = np.where(
            SECTORS[carrier] > 1,
            city.cell(carrier, sites[None, :], np.full(primary.shape, den.slot + 1)),
            city.cell(carrier, nearby[None, :], np.zeros(primary.shape, int)),
        )
        world.station_moving_den(sims, primary, secondary)
        return
    site = den.site(day)
    primary = world.city.cell(carrier, site, np.full(sims.size, den.slot))
    secondary = np.where(
        SECTORS[carrier] > 1,
        world.city.cell(carrier, site, np.full(sims.size, den.slot + 1)),
        world.city.cell(carrier, world.city.neighbour(site), np.zeros(sims.size, int)),
    )
    world.station_den_sims(sims, primary, secondary)


@dataclass
class DenDay:
    """What happened at one den on one day, for the calls and for truth/."""

    calls: Calls
    den_calls: int  # the first den_calls rows of `calls` are the den's own dialling
    victims: np.ndarray  # indices into calls of the long conversations


def den_day(
    den: Den, world: World, numbers: NumberPlan, rng: np.random.Generator, ids: Identities | None = None
) -> DenDay:
    """A den's dialling, answers, victims and call-backs of one day; `ids` gives a hopping box its IMEIs."""
    if den.kind == "low_slow":
        return _low_slow_day(den, world, rng)
    slot, sod = _shift_times(den, world.day_len, rng)
    dialled = numbers.dial_number(_dial_positions(den, slot, sod))
    callee = world.reachable(dialled)
    population = world.population
    person = (callee >= 0) & (callee < population.size) & ~world.stationed(callee)  # not a bought den SIM
    resident = person & (population.kind[np.where(person, callee, 0)] == KIND_RESIDENT)

    dur = np.zeros(sod.size, dtype=np.int64)
    victims = np.zeros(0, dtype=np.int64)
    if not den.is_sms:
        answered = person & (rng.random(sod.size) < ANSWERED)
        dur[answered] = rng.integers(5, 41, int(answered.sum()))
        pool = np.flatnonzero(answered & resident)
        victims = np.sort(rng.choice(pool, min(pool.size, int(rng.integers(2, 6))), replace=False))
        dur[victims] = rng.integers(300, 2401, victims.size)
        keep = _busy_with_victims(slot, sod, dur, victims)
        victims = victims[keep[victims]]
        slot, sod, dialled, callee, dur, resident = (a[keep] for a in (slot, sod, dialled, callee, dur, resident))
        victims = np.searchsorted(np.flatnonzero(keep), victims)
    out = world.calls(rng, a_sim=den.sims[slot], b_sim=callee, b_num=dialled, svc=int(den.is_sms), sod=sod, dur=dur)

    # call-backs: a few curious residents ring the number back the same day
    back = resident & (rng.random(sod.size) < CALLBACK)
    back_dur = np.where(rng.random(sod.size) < 0.5, rng.integers(5, 61, sod.size), 0)
    if den.is_sms:  # an SMS den's victims are the ones who call and stay on the line
        reached = np.flatnonzero(resident)
        hooked = rng.choice(reached, min(reached.size, int(rng.integers(2, 6))), replace=False)
        back[hooked] = True
        back_dur[hooked] = rng.integers(300, 2401, hooked.size)
    back_sod = sod + dur + 120 + rng.exponential(45 * 60, sod.size).astype(np.int64)
    back &= back_sod < world.day_len
    idx = np.flatnonzero(back)
    callbacks = world.calls(
        rng, a_sim=callee[idx], b_sim=den.sims[slot[idx]], svc=0, sod=back_sod[idx], dur=back_dur[idx]
    )
    if den.is_sms:
        victims = out.size + np.flatnonzero(back_dur[idx] >= 300)
    if den.kind == "goip_hopping":
        out.a_imei[:] = _hopping_imeis(slot, out.sod, ids)
        callbacks.b_imei[:] = _last_imei(slot, out.sod, out.a_imei, slot[idx], callbacks.sod)
    return DenDay(Calls.concat([out, callbacks]), out.size, victims)


def _hopping_imeis(slot: np.ndarray, sod: np.ndarray, ids: Identities) -> np.ndarray:
    """改串号: each SIM's first call of the day shows its registered IMEI (0), every later one a new one."""
    order = np.lexsort((sod, slot))
    first = np.r_[True, slot[order][1:] != slot[order][:-1]]
    imei = np.zeros(slot.size, dtype=np.int64)
    imei[order[~first]] = ids.imei(int((~first).sum()), random_tac=True)
    return imei


def _last_imei(
    slot: np.ndarray, sod: np.ndarray, imei: np.ndarray, at_slot: np.ndarray, at_sod: np.ndarray
) -> np.ndarray:
    """The IMEI each SIM showed on its latest call started by `at_sod` (0: the registered one)."""
    key = slot.astype(np.int64) * 2**20 + sod
    order = np.argsort(key, kind="stable")
    at = np.searchsorted(key[order], at_slot.astype(np.int64) * 2**20 + at_sod, side="right") - 1
    found = (at >= 0) & (slot[order][np.maximum(at, 0)] == at_slot)
    return np.where(found, imei[order][np.maximum(at, 0)], 0)


def _low_slow_day(den: Den, world: World, rng: np.random.Generator) -> DenDay:
    """Each SIM: 20-45 calls at a person's pace through the shifts, to residents of the leaked list it has
    not called yet; 35 % answered, a quarter of those by victims who talk for many minutes."""
    n, most = den.n_sims, LOW_SLOW_CALLS[1]
    starts = np.array([a * HOUR for a, _ in den.shifts])
    lengths = np.array([min(b * HOUR, world.day_len) - a * HOUR for a, b in den.shifts])
    per = rng.integers(LOW_SLOW_CALLS[0], LOW_SLOW_CALLS[1] + 1, n)
    shape = (n, most)
    valid = np.arange(most)[None, :] < per[:, None]
    answered = valid & (rng.random(shape) < LOW_SLOW_ANSWERED)
    long = answered & (rng.random(shape) < LOW_SLOW_LONG)
    dur = np.where(
        long,
        rng.integers(VICTIM_TALK_S[0], VICTIM_TALK_S[1] + 1, shape),
        np.where(answered, rng.integers(LOW_SLOW_HANG_UP_S[0], LOW_SLOW_HANG_UP_S[1] + 1, shape), 0),
    )
    virtual, keep = one_after_another(rng, per, dur, lengths.sum(), LOW_SLOW_GAP_SHAPE, 60.0)  # one call at a time
    slot = np.broadcast_to(np.arange(n)[:, None], shape)[keep]
    sod = on_the_clock(virtual[keep], starts, lengths)
    dur, long = dur[keep], long[keep]
    callee = np.empty(slot.size, dtype=np.int64)
    for s in range(n):
        mine = slot == s
        callee[mine] = _next_on_list(den, s, int(mine.sum()), rng)
    out = world.calls(rng, a_sim=den.sims[slot], b_sim=callee, svc=0, sod=sod, dur=dur)

    back = rng.random(slot.size) < LOW_SLOW_CALLBACK
    back_sod = sod + dur + 120 + rng.exponential(45 * 60, slot.size).astype(np.int64)
    back_dur = np.where(rng.random(slot.size) < 0.5, rng.integers(5, 61, slot.size), 0)
    idx = np.flatnonzero(back & (back_sod < world.day_len))
    callbacks = world.calls(
        rng, a_sim=callee[idx], b_sim=den.sims[slot[idx]], svc=0, sod=back_sod[idx], dur=back_dur[idx]
    )
    return DenDay(Calls.concat([out, callbacks]), out.size, np.flatnonzero(long))


def _next_on_list(den: Den, s: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """The next `k` residents on SIM `s`'s own walk through the leaked list; a new shuffle when done."""
    out = []
    while k > 0:
        take = min(k, den.walks.shape[1] - int(den.walked[s]))
        out.append(den.walks[s, den.walked[s] : den.walked[s] + take])
        den.walked[s] += take
        k -= take
        if den.walked[s] == den.walks.shape[1]:
            den.walks[s] = rng.permutation(den.leaked)
            den.walked[s] = 0
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def whereabouts(den: Den, result: DenDay, day: int, city: City) -> tuple[float, float, str | None, int]:
    """(lat, lon, route, route_radius_m) for truth: a car is at the call-weighted centroid of the
    sites it used today ("lat,lon;..." in order of first use); any other den at its true position."""
    if den.route is None:
        return (*den.position(day, city), None, 0)
    sod = result.calls.sod[: result.den_calls]
    site = den.hour_sites(day)[np.clip(sod // HOUR, 0, 23)] if sod.size else den.hour_sites(day)
    used, first, count = np.unique(site, return_index=True, return_counts=True)
    order = np.argsort(first)
    used, count = used[order], count[order]
    lat = round(float(np.average(city.site_lat[used], weights=count)), 6)
    lon = round(float(np.average(city.site_lon[used], weights=count)), 6)
    north = (city.site_lat[used] - lat) / KM_LAT * 1000
    east = (city.site_lon[used] - lon) / KM_LON * 1000
    route = ";".join(f"{city.site_lat[s]:.6f},{city.site_lon[s]:.6f}" for s in used)
    return lat, lon, route, int(round(float(np.hypot(north, east).max())))


def _shift_times(den: Den, day_len: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Start times of every SIM's calls in every shift: (SIM slot, second of day), unsorted."""
    slots, times = [], []
    for start_h, end_h in den.shifts:
        start, end = start_h * HOUR, min(end_h * HOUR, day_len)
        rate = den.rate * rng.uniform(0.9, 1.1, den.n_sims)[:, None]
        mean_gap = HOUR / rate
        most = int((end - start) / HOUR * den.rate * 1.3) + 5
        shape = (den.n_sims, most)
        if PROFILES[den.kind].regular:
            gaps = np.maximum(rng.normal(mean_gap, den.gap_sd, shape), 1.0)
            first = rng.uniform(0, 90, (den.n_sims, 1))
        else:
            gaps = rng.gamma(1.5, mean_gap / 1.5, shape)
            first = rng.uniform(0, 600, (den.n_sims, 1))
        sod = (start + first + np.cumsum(gaps, axis=1) - gaps[:, :1]).astype(np.int64)
        keep = sod < end
        slots.append(np.broadcast_to(np.arange(den.n_sims)[:, None], shape)[keep])
        times.append(sod[keep])
    return np.concatenate(slots), np.concatenate(times)


def _dial_positions(den: Den, slot: np.ndarray, sod: np.ndarray) -> np.ndarray:
    """Positions in the dial list, dealt by the den's pattern; the list goes on tomorrow."""
    if den.pattern == "per_sim":  # each SIM works through its own run
        order = np.lexsort((sod, slot))
        counts = np.bincount(slot, minlength=den.n_sims)
        run_start = np.r_[0, np.cumsum(counts)[:-1]]
        rank_in_sim = np.arange(slot.size) - run_start[slot[order]]
        position = np.empty(slot.size, dtype=np.int64)
        position[order] = run_start[slot[order]] + rank_in_sim
    else:  # one list dealt to the SIMs in time order
        order = np.lexsort((slot, sod))
        position = np.empty(slot.size, dtype=np.int64)
        position[order] = np.arange(slot.size)
    position += den.pointer
    den.pointer += slot.size
    if den.block_order is not None:
        position = den.block_order[position % den.block_order.size]
    return position


def _busy_with_victims(slot: np.ndarray, sod: np.ndarray, dur: np.ndarray, victims: np.ndarray) -> np.ndarray:
    """A SIM on a long call with a victim places no other calls meanwhile: those are dropped."""
    keep = np.ones(sod.size, dtype=bool)
    for v in victims[np.argsort(sod[victims], kind="stable")]:
        if keep[v]:
            keep &= ~((slot == slot[v]) & (sod > sod[v]) & (sod <= sod[v] + dur[v]))
    return keep
