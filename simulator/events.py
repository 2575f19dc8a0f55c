"""Calls between parties, and how one call becomes one or two carrier records.

Generators only say who calls whom, when, how long. `World.calls` then fills in what the network
knows (numbers, the cell each modelled side is on, at a den, on a car's road, or wherever a
`Placement` says) and `to_records` splits every call into the
rows carriers write: the caller's carrier records it outgoing, the callee's carrier incoming;
a party outside the modelled city leaves no record of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date
from typing import Callable

import numpy as np
import polars as pl

from simulator.city import City

SECOND_CELL_SHARE = 0.15  # a den's calls that go out through its second cell


@dataclass
class SimRegistry:
    """Every SIM that ever appears: the population's first (same index), then den SIMs as issued."""

    msisdn: np.ndarray
    carrier: np.ndarray
    imsi: np.ndarray
    imei: np.ndarray

    def add(self, msisdn: np.ndarray, carrier: np.ndarray, imsi: np.ndarray, imei: np.ndarray) -> np.ndarray:
        start = self.msisdn.size
        self.msisdn = np.r_[self.msisdn, msisdn].astype(np.int64)
        self.carrier = np.r_[self.carrier, carrier].astype(np.int8)
        self.imsi = np.r_[self.imsi, imsi].astype(np.int64)
        self.imei = np.r_[self.imei, imei].astype(np.int64)
        return np.arange(start, self.msisdn.size)

    @property
    def size(self) -> int:
        return self.msisdn.size


@dataclass
class Crowd:
    members: np.ndarray  # bool over the population
    site: int
    start: int  # seconds of day
    end: int


@dataclass
class Placement:
    """SIMs that are neither residents nor stationed at a den (a call centre's phones, a shop's new
    SIMs): `locate(sims, sod, world)` says at which site and sector each is at second-of-day `sod`."""

    sims: np.ndarray  # sorted registry indices
    locate: Callable[[np.ndarray, np.ndarray, "World"], tuple[np.ndarray, np.ndarray]]


@dataclass
class Calls:
    """One row per call or SMS; -1 in *_sim / *_cell for a party outside the modelled city."""

    a_sim: np.ndarray
    a_num: np.ndarray
    b_sim: np.ndarray
    b_num: np.ndarray
    svc: np.ndarray  # 0 voice, 1 sms
    sod: np.ndarray  # start, seconds since local midnight
    dur: np.ndarray
    a_cell: np.ndarray
    b_cell: np.ndarray
    b_lag: np.ndarray  # the callee's switch stamps the call 0..1 s later
    a_imei: np.ndarray  # the device of this very call when not the SIM's registered one (0: registered);
    b_imei: np.ndarray  # a box that changes its IMEI on every call (改串号) shows a new one each time

    @property
    def size(self) -> int:
        return self.sod.size

    @classmethod
    def concat(cls, parts: list["Calls"]) -> "Calls":
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})

    def take(self, index: np.ndarray) -> "Calls":
        return Calls(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


class World:
    """One simulated day: the network's view of where every modelled SIM is and who is reachable."""

    def __init__(
        self, day: date, index: int, day_start: int, day_len: int, city: City, population, registry: SimRegistry
    ):
        self.date, self.index, self.day_start, self.day_len = day, index, day_start, day_len
        self.weekday = day.weekday() < 5
        self.city, self.population, self.registry = city, population, registry
        self.crowd: Crowd | None = None
        self.courier_sites: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
        self.den_primary = np.full(0, -1, dtype=np.int32)
        self.den_secondary = np.full(0, -1, dtype=np.int32)
        self._hourly: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # moving dens: cells per hour
        self.placements: list[Placement] = []
        # where a resident is instead of home/work at some hours (an estate agent on their round):
        # f(who, sod, site) -> site
        self.person_overrides: list[Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = []
        self._active = np.arange(population.size)
        self._lookup: tuple[np.ndarray, np.ndarray] | None = None

    def station_den_sims(self, sims: np.ndarray, primary: np.ndarray, secondary: np.ndarray) -> None:
        """Today's den SIMs: where they sit, and that a dialled number reaches them."""
        size = self.registry.size
        for name in ("den_primary", "den_secondary"):
            old = getattr(self, name)
            setattr(self, name, np.r_[old, np.full(size - old.size, -1, dtype=np.int32)])
        self.den_primary[sims] = primary
        self.den_secondary[sims] = secondary
        self._activate(sims[sims >= self.population.size])  # SIMs bought from residents are reachable already

    def station_moving_den(self, sims: np.ndarray, primary: np.ndarray, secondary: np.ndarray) -> None:
        """Den SIMs in a vehicle: `primary`/`secondary` are (SIM, hour of day) cells."""
        self.station_den_sims(sims, primary[:, 0], secondary[:, 0])
        old = self._hourly or (np.zeros(0, np.int64), np.zeros((0, 24), np.int32), np.zeros((0, 24), np.int32))
        every = np.r_[old[0], sims]
        order = np.argsort(every, kind="stable")
        self._hourly = (every[order], np.r_[old[1], primary][order], np.r_[old[2], secondary][order])

    def place(self, placement: Placement, reachable: np.ndarray | None = None) -> None:
        """SIMs that live outside the population and the dens, located by `placement`; dialling their
        number reaches them (all of them, or only `reachable`: a SIM sold today is not in service yet)."""
        self.placements.append(placement)
        self._activate(placement.sims if reachable is None else reachable)

    def _activate(self, sims: np.ndarray) -> None:
        self._active = np.r_[self._active, sims]
        self._lookup = None

    def stationed(self, sim: np.ndarray) -> np.ndarray:
        """Whether each SIM sits at a den today (also a resident's SIM sold to a den)."""
        out = np.zeros(sim.size, dtype=bool)
        inside = (sim >= 0) & (sim < self.den_primary.size)
        out[inside] = self.den_primary[sim[inside]] >= 0
        return out

    def reachable(self, number: np.ndarray) -> np.ndarray:
        """SIM index of each number among SIMs in service today, -1 for numbers nobody modelled holds."""
        if self._lookup is None:
            numbers = self.registry.msisdn[self._active]
            order = np.argsort(numbers, kind="stable")
            self._lookup = (numbers[order], self._active[order])
        keys, sims = self._lookup
        at = np.minimum(np.searchsorted(keys, number), keys.size - 1)
        return np.where(keys[at] == number, sims[at], -1)

    def cells_of(self, sim: np.ndarray, sod: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The cell each SIM is on at `sod` (-1 for parties outside the city)."""
        out = np.full(sim.size, -1, dtype=np.int32)
        den = self.stationed(sim)
        people = (sim >= 0) & (sim < self.population.size) & ~den
        who = sim[people]
        site = self.population.sites_at(who, sod[people], self)
        out[people] = self.city.cell(self.registry.carrier[who], site, self.population.slot(who, site))
        for placement in self.placements:  # no random draws here: the dens' draws stay as they were
            if not placement.sims.size:
                continue
            at = np.minimum(np.searchsorted(placement.sims, sim), placement.sims.size - 1)
            mine = (sim >= self.population.size) & ~den & (placement.sims[at] == sim)
            if mine.any():
                site, slot = placement.locate(sim[mine], sod[mine], self)
                out[mine] = self.city.cell(self.registry.carrier[sim[mine]], site, slot)
        if den.any():
            second = rng.random(int(den.sum())) < SECOND_CELL_SHARE
            cell = np.where(second, self.den_secondary[sim[den]], self.den_primary[sim[den]])
            if self._hourly is not None:
                sims, primary, secondary = self._hourly
                at = np.minimum(np.searchsorted(sims, sim[den]), sims.size - 1)
                moving = sims[at] == sim[den]
                hour = np.clip(sod[den][moving] // 3600, 0, 23)
                cell[moving] = np.where(second[moving], secondary[at[moving], hour], primary[at[moving], hour])
            out[den] = cell
        return out

    def calls(
        self, rng: np.random.Generator, *, a_sim, b_sim, svc, sod, dur, a_num=None, b_num=None, a_imei=0, b_imei=0
    ) -> Calls:
        """Complete calls with numbers, cells and the callee's lag; scalars broadcast."""
        sod = np.asarray(sod, dtype=np.int32)
        n = sod.size
        a_sim = np.broadcast_to(np.asarray(a_sim, dtype=np.int64), n).copy()
        b_sim = np.broadcast_to(np.asarray(b_sim, dtype=np.int64), n).copy()
        a_num = self._numbers(a_sim, a_num, n)
        b_num = self._numbers(b_sim, b_num, n)
        b_lag = np.where(b_sim >= 0, rng.integers(0, 2, n), 0).astype(np.int8)
        return Calls(
            a_sim=a_sim,
            a_num=a_num,
            b_sim=b_sim,
            b_num=b_num,
            svc=np.broadcast_to(np.asarray(svc, dtype=np.int8), n).copy(),
            sod=sod,
            dur=np.broadcast_to(np.asarray(dur, dtype=np.int32), n).copy(),
            a_cell=self.cells_of(a_sim, sod, rng),
            b_cell=self.cells_of(b_sim, np.minimum(sod + b_lag, self.day_len - 1), rng),
            b_lag=b_lag,
            a_imei=np.broadcast_to(np.asarray(a_imei, dtype=np.int64), n).copy(),
            b_imei=np.broadcast_to(np.asarray(b_imei, dtype=np.int64), n).copy(),
        )

    def _numbers(self, sim: np.ndarray, given, n: int) -> np.ndarray:
        number = (
            np.zeros(n, dtype=np.int64)
            if given is None
            else np.broadcast_to(np.asarray(given, dtype=np.int64), n).copy()
        )
        modelled = sim >= 0
        number[modelled] = self.registry.msisdn[sim[modelled]]
        return number


def on_the_clock(working: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Seconds of working time (the shifts `starts`/`lengths` laid end to end) -> seconds of day."""
    ends = np.cumsum(lengths)
    shift = np.minimum(np.searchsorted(ends, working, side="right"), lengths.size - 1)
    return (starts[shift] + working - (ends[shift] - lengths[shift])).astype(np.int64)


def one_after_another(
    rng: np.random.Generator, per: np.ndarray, busy: np.ndarray, total: float, shape: float, least_gap: float
) -> tuple[np.ndarray, np.ndarray]:
    """Working-time starts of each phone's calls (rows of `busy`, the seconds each call keeps the phone),
    one after the other with human (gamma) pauses sized so that `per[i]` calls fill `total` seconds,
    squeezed when a day of long talks would run over. Returns (starts, which of them are calls)."""
    valid = np.arange(busy.shape[1])[None, :] < per[:, None]
    busy = np.where(valid, busy, 0)
    spare = total - busy.sum(axis=1)
    gaps = rng.gamma(shape, np.maximum(spare / (per + 1), least_gap)[:, None] / shape, busy.shape)
    gaps = np.where(valid, gaps, 0)
    squeeze = np.clip(0.98 * spare / np.maximum(gaps.sum(axis=1), 1.0), 0.0, 1.0)
    gaps = gaps * squeeze[:, None]
    start = np.cumsum(gaps, axis=1) + np.cumsum(busy, axis=1) - busy
    return start, valid & (start < total)


def incoming_sod(calls: Calls, day_len: int) -> np.ndarray:
    """The second of day at which the callee's switch stamps each call (its lag after the caller's), within the day."""
    return np.minimum(calls.sod + calls.b_lag, day_len - 1)


def to_records(calls: Calls, registry: SimRegistry, day_len: int) -> pl.DataFrame:
    """The carrier rows of a day's calls: one per modelled side."""
    out = calls.a_sim >= 0
    inc = calls.b_sim >= 0
    sim = np.r_[calls.a_sim[out], calls.b_sim[inc]]
    device = np.r_[calls.a_imei[out], calls.b_imei[inc]]
    return pl.DataFrame(
        {
            "carrier": registry.carrier[sim],
            "msisdn": registry.msisdn[sim],
            "peer": np.r_[calls.b_num[out], calls.a_num[inc]],
            "dir": np.r_[np.zeros(out.sum(), np.int8), np.ones(inc.sum(), np.int8)],
            "svc": np.r_[calls.svc[out], calls.svc[inc]],
            "sod": np.r_[calls.sod[out], incoming_sod(calls, day_len)[inc]].astype(np.int32),
            "dur": np.r_[calls.dur[out], calls.dur[inc]],
            "imsi": registry.imsi[sim],
            "imei": np.where(device != 0, device, registry.imei[sim]),
            "cell": np.r_[calls.a_cell[out], calls.b_cell[inc]],
        }
    )
