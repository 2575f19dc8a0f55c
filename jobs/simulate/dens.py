"""Fraud dens: SIM boxes and call rooms dialling the city's number segments in order.

What a den leaves in the CDRs is exactly what the detectors look for: ascending callees in the
residents' segments, many SIMs on one or two cells, shared or fresh IMEIs, shift hours, short
unanswered calls, very few call-backs, and a handful of victims who talk for a long time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from jobs.simulate.city import KM_LAT, KM_LON, SECTORS, City
from jobs.simulate.events import Calls, World
from jobs.simulate.numbers import BOX_TACS, PHONE_TACS, Identities, NumberPlan
from jobs.simulate.residents import HOUR, KIND_RESIDENT

KINDS = ("goip_shared", "goip_fresh", "room", "sms_blaster")
PATTERNS = ("per_sim", "round_robin", "shuffled_blocks")
DAY_SHIFTS = (((9, 12), (14, 18)), ((10, 13), (15, 21)))
NIGHT_SHIFTS = ((20, 24),)
NIGHT_DEN = 2                     # the third den works nights
SIM_CARRIER_P = np.array([0.4, 0.3, 0.3])
ANSWERED = 0.25
CALLBACK = 0.03
MAX_OFFSET_M = 200.0


@dataclass
class DenProfile:
    sims: tuple[int, int]         # SIMs (or operators) per den, inclusive range
    rate: tuple[float, float]     # calls per SIM per hour
    regular: bool                 # machine-regular gaps (boxes) or human ones (rooms)


PROFILES = {
    "goip_shared": DenProfile((8, 16), (30, 50), True),
    "goip_fresh": DenProfile((8, 16), (30, 50), True),
    "room": DenProfile((5, 12), (12, 25), False),
    "sms_blaster": DenProfile((8, 16), (120, 250), True),
}


@dataclass
class Den:
    den_id: str
    kind: str
    pattern: str
    shifts: tuple[tuple[int, int], ...]
    sites: tuple[int, int]            # before and after the move (the same when it never moves)
    offsets_m: tuple[tuple[float, float], tuple[float, float]]   # true position: (east, north) from the site
    move_day: int | None
    slot: int                         # its primary sector at the site
    n_sims: int
    rate: float
    gap_sd: float
    pointer: int                      # next position in the dial list; continues across days
    block_order: np.ndarray | None    # shuffled_blocks: the list's order
    sim_carriers: np.ndarray | None = None   # per SIM slot; every carrier is represented
    box_imei: int | None = None
    phone_imeis: np.ndarray | None = None    # room: one handset per operator, kept across swaps
    swap_every: np.ndarray | None = None     # room: days between an operator's SIM swaps
    sims: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))   # today's SIMs

    @property
    def is_sms(self) -> bool:
        return self.kind == "sms_blaster"

    def moved(self, day: int) -> bool:
        return self.move_day is not None and day >= self.move_day

    def site(self, day: int) -> int:
        return self.sites[1] if self.moved(day) else self.sites[0]

    def position(self, day: int, city: City) -> tuple[float, float]:
        """The den's true (lat, lon): its site's position plus up to 200 m."""
        east, north = self.offsets_m[1] if self.moved(day) else self.offsets_m[0]
        site = self.site(day)
        return (round(float(city.site_lat[site] + north / 1000 * KM_LAT), 6),
                round(float(city.site_lon[site] + east / 1000 * KM_LON), 6))

    @property
    def hours(self) -> str:
        return ";".join(f"{a:02d}-{b:02d}" for a, b in self.shifts)


def found_dens(rng: np.random.Generator, city: City, count: int, days: int, dial_size: int,
               ids: Identities, avoid: set[int]) -> list[Den]:
    """`count` dens at residential sites; kinds and dialling patterns cycle, den 1 moves mid-run."""
    residential = np.argsort(-city.residential, kind="stable")[: city.n_sites // 3]
    candidates = [int(s) for s in rng.permutation(residential) if int(s) not in avoid]
    dens = []
    for i in range(count):
        kind, pattern = KINDS[i % len(KINDS)], PATTERNS[i % len(PATTERNS)]
        profile = PROFILES[kind]
        site = candidates.pop(0)
        moved_to, move_day = site, None
        if i == 0 and days >= 2:
            elsewhere = [s for s in candidates if city.site_district[s] != city.site_district[site]]
            moved_to, move_day = elsewhere[0], days // 2
            candidates.remove(moved_to)
        n_sims = int(rng.integers(profile.sims[0], profile.sims[1] + 1))
        block_order = None
        if pattern == "shuffled_blocks":
            block = np.repeat(np.arange(dial_size), rng.integers(50, 201, dial_size))[:dial_size]
            block_order = np.lexsort((rng.random(dial_size), block))
        den = Den(
            den_id=f"den{i + 1:02d}", kind=kind, pattern=pattern,
            shifts=NIGHT_SHIFTS if i == NIGHT_DEN else DAY_SHIFTS[i % 2],
            sites=(site, moved_to), offsets_m=(_offset(rng), _offset(rng)), move_day=move_day,
            slot=int(rng.integers(0, 6)), n_sims=n_sims, rate=float(rng.uniform(*profile.rate)),
            gap_sd=float(rng.uniform(1.5, 4.0)),
            pointer=int(i * dial_size // max(count, 1) + rng.integers(0, 5000)),
            block_order=block_order,
        )
        # SIMs bought from all three carriers; a swapped-in SIM is of the same carrier as its slot's last one
        den.sim_carriers = rng.permutation(np.r_[np.arange(3), rng.choice(3, n_sims - 3, p=SIM_CARRIER_P)]).astype(
            np.int8)
        if kind in ("goip_shared", "sms_blaster"):
            den.box_imei = int(ids.imei(1, BOX_TACS)[0])
        if kind == "room":
            den.phone_imeis = ids.imei(n_sims, PHONE_TACS)
            den.swap_every = rng.integers(2, 4, n_sims)
        dens.append(den)
    return dens


def _offset(rng: np.random.Generator) -> tuple[float, float]:
    radius, angle = MAX_OFFSET_M * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
    return radius * math.cos(angle), radius * math.sin(angle)


def open_den(den: Den, world: World, numbers: NumberPlan, ids: Identities, rng: np.random.Generator) -> None:
    """Put today's SIMs in the box / phones (swapping as the kind does) and station them at the den."""
    day = world.index
    if den.kind == "room" and den.sims.size:
        swap = (day % den.swap_every) == 0            # each operator on their own 2- or 3-day rhythm
    else:
        swap = np.ones(den.n_sims, dtype=bool)        # boxes get fresh SIMs every day
    sims = den.sims.copy() if den.sims.size else np.zeros(den.n_sims, dtype=np.int64)
    new = np.flatnonzero(swap)
    carrier = den.sim_carriers[new]
    if den.kind == "goip_fresh":
        imei = ids.imei(new.size, random_tac=True)
    elif den.kind == "room":
        imei = den.phone_imeis[new]
    else:
        imei = np.full(new.size, den.box_imei, dtype=np.int64)
    sims[new] = world.registry.add(numbers.draw_mixed(carrier), carrier, ids.imsi(carrier), imei)
    den.sims = sims

    carrier = world.registry.carrier[sims]
    site = den.site(day)
    primary = world.city.cell(carrier, site, np.full(sims.size, den.slot))
    secondary = np.where(SECTORS[carrier] > 1, world.city.cell(carrier, site, np.full(sims.size, den.slot + 1)),
                         world.city.cell(carrier, world.city.neighbour(site), np.zeros(sims.size, int)))
    world.station_den_sims(sims, primary, secondary)


@dataclass
class DenDay:
    """What happened at one den on one day, for the calls and for truth/."""

    calls: Calls
    den_calls: int                   # the first den_calls rows of `calls` are the den's own dialling
    victims: np.ndarray              # indices into calls of the long conversations


def den_day(den: Den, world: World, numbers: NumberPlan, rng: np.random.Generator) -> DenDay:
    slot, sod = _shift_times(den, world.day_len, rng)
    dialled = numbers.dial_number(_dial_positions(den, slot, sod))
    callee = world.reachable(dialled)
    population = world.population
    person = (callee >= 0) & (callee < population.size)
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
    if den.is_sms:                   # an SMS den's victims are the ones who call and stay on the line
        reached = np.flatnonzero(resident)
        hooked = rng.choice(reached, min(reached.size, int(rng.integers(2, 6))), replace=False)
        back[hooked] = True
        back_dur[hooked] = rng.integers(300, 2401, hooked.size)
    back_sod = sod + dur + 120 + rng.exponential(45 * 60, sod.size).astype(np.int64)
    back &= back_sod < world.day_len
    idx = np.flatnonzero(back)
    callbacks = world.calls(rng, a_sim=callee[idx], b_sim=den.sims[slot[idx]], svc=0, sod=back_sod[idx],
                            dur=back_dur[idx])
    if den.is_sms:
        victims = out.size + np.flatnonzero(back_dur[idx] >= 300)
    return DenDay(Calls.concat([out, callbacks]), out.size, victims)


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
    if den.pattern == "per_sim":                       # each SIM works through its own run
        order = np.lexsort((sod, slot))
        counts = np.bincount(slot, minlength=den.n_sims)
        run_start = np.r_[0, np.cumsum(counts)[:-1]]
        rank_in_sim = np.arange(slot.size) - run_start[slot[order]]
        position = np.empty(slot.size, dtype=np.int64)
        position[order] = run_start[slot[order]] + rank_in_sim
    else:                                              # one list dealt to the SIMs in time order
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
