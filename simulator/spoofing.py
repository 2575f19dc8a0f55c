"""Caller-ID spoofing (改号, issue 16): gateways abroad ringing residents while showing a number not theirs.

A call between two local subscribers leaves two legs: the caller's carrier records it outgoing, the
callee's carrier incoming. A spoofing gateway (a VoIP platform overseas, reaching the city over an
international trunk) is nobody's subscriber: only the receiver's carrier records an incoming leg,
showing whatever number the gateway chose to present, and no carrier has the outgoing leg to match.

Gateways alternate between two kinds. `mobile` presents local residents' own mobile numbers (another
owner every call or every few calls; the owners never placed those calls and keep their own traffic)
and also texts; `protected` presents 110, 96110, 12345, 12368 or a bank's 95xxx line, voice only.
A gateway works most days, one session of 1-4 h, sweeping the residents of one or two of the city's
number segments in ascending order (numbers that reach nobody leave no record); once in a run it
works late, from 23:20-23:40 until past local midnight, so its legs fall on two dates. About 35 % of its
calls are answered: mostly a hang-up after 3-20 s, and 5-8 % of all calls are long talks (victims).
Every gateway draws from its own streams, so a run without spoofers is the run it always was.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from simulator.events import Calls, World
from simulator.numbers import MOBILE_BASE, SEGMENT_SIZE
from simulator.residents import HOUR, Population

KINDS = ("mobile", "protected")
"""Gateway k (from 0) is of kind KINDS[k % 2]."""
ACTIVE_SHARE = 0.85  # of the days a gateway works (always its first and its late night)
SESSION_HOURS = (1, 4)  # a day session lasts this long ...
SESSION_WINDOW = (9 * HOUR, 22 * HOUR)  # ... within these hours
NIGHT_START = (23 * HOUR + 20 * 60, 23 * HOUR + 40 * 60)  # the late session starts 23:20-23:40 ...
NIGHT_HOURS = (1, 2)  # ... and runs on 1-2 h, past midnight
CALLS_PER_DAY = (60, 200)  # per gateway and day, at REFERENCE_RESIDENTS ...
REFERENCE_RESIDENTS = 1500  # ... scaled by the square root of the city's size
MIN_CALLS = 10
SEGMENTS_SWEPT = 2  # a sweep starts inside one segment and may run into the next
ANSWERED = 0.35
HANG_UP_S = (3, 20)
LONG_SHARE = (0.05, 0.08)  # of all calls: the victims who talk
LONG_S = (200, 1500)
SMS_SHARE = 0.20  # of a mobile gateway's legs
SAME_NUMBER_RUN = (1, 4)  # calls in a row showing the same presented number
PRESENTED_PROTECTED = np.array([110, 96110, 12345, 12368, 95588, 95533, 95555, 95599, 95566])
PRESENTED_WEIGHTS = np.array([30, 10, 8, 6, 14, 10, 10, 6, 6], dtype=float)


@dataclass
class Legs:
    """Spoofed calls as planned: second of day, receiving resident, presented number, service, duration."""

    sod: np.ndarray
    receiver: np.ndarray
    presented: np.ndarray
    svc: np.ndarray
    dur: np.ndarray

    @classmethod
    def concat(cls, parts: list["Legs"]) -> "Legs":
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})

    def take(self, index: np.ndarray) -> "Legs":
        return Legs(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


@dataclass
class SpoofingGateway:
    """One overseas gateway: whom it can ring (residents by ascending number) and whose numbers it may show."""

    campaign: str  # G1, G2, ...: truth/spoofed_legs.csv's campaign
    kind: str  # see KINDS
    targets: np.ndarray  # resident indices, ascending by number
    position: np.ndarray  # each target's place in the city's dial list (NumberPlan.dial_number)
    segments: int  # local segments in the dial list
    calls_per_day: tuple[int, int]
    night: int | None  # the day index of its late session (None in a one-day run)
    after_midnight: Legs | None = field(default=None)  # last night's legs that fall on today

    @property
    def protected(self) -> bool:
        return self.kind == "protected"


def open_spoofers(
    rng: np.random.Generator, count: int, days: int, population: Population, prefixes: np.ndarray, exclude: np.ndarray
) -> list[SpoofingGateway]:
    """`count` gateways ringing residents (none of `exclude`: SIMs sold to a den live at the den), each with
    its late night on a day before the last, so the legs after midnight are in the run."""
    residents = np.arange(population.n_residents)
    residents = residents[~np.isin(residents, exclude)]
    targets = residents[np.argsort(population.msisdn[residents], kind="stable")]
    local = population.msisdn[targets] - MOBILE_BASE
    position = np.searchsorted(prefixes, local // SEGMENT_SIZE) * SEGMENT_SIZE + local % SEGMENT_SIZE
    scale = np.sqrt(population.n_residents / REFERENCE_RESIDENTS)
    per_day = (max(MIN_CALLS, round(CALLS_PER_DAY[0] * scale)), max(MIN_CALLS, round(CALLS_PER_DAY[1] * scale)))
    nights = [int(d) for d in rng.integers(0, days - 1, count)] if days >= 2 else [None] * count
    return [
        SpoofingGateway(f"G{k + 1}", KINDS[k % len(KINDS)], targets, position, prefixes.size, per_day, night)
        for k, night in enumerate(nights)
    ]


def spoofer_day(world: World, gateway: SpoofingGateway, rng: np.random.Generator) -> Calls:
    """The incoming legs the gateway leaves today (a_sim -1: no carrier saw the call leave): last night's
    legs after midnight, then today's session; a late session's legs after today's midnight wait for tomorrow."""
    legs = _session(world, gateway, rng)
    later = legs.sod >= world.day_len
    today = Legs.concat([p for p in (gateway.after_midnight, legs.take(np.flatnonzero(~later))) if p is not None])
    gateway.after_midnight = legs.take(np.flatnonzero(later)) if later.any() else None
    if gateway.after_midnight is not None:
        gateway.after_midnight.sod -= world.day_len
    return world.calls(
        rng, a_sim=-1, a_num=today.presented, b_sim=today.receiver, svc=today.svc, sod=today.sod, dur=today.dur
    )


def _session(world: World, gateway: SpoofingGateway, rng: np.random.Generator) -> Legs:
    """Today's session (empty on a day off); a late session's seconds run past the day's end."""
    works = rng.random() < ACTIVE_SHARE or world.index in (0, gateway.night)
    if world.index == gateway.night:
        start = int(rng.integers(*NIGHT_START))
        length = int(rng.integers(NIGHT_HOURS[0] * HOUR, NIGHT_HOURS[1] * HOUR + 1))
    else:
        length = int(rng.integers(SESSION_HOURS[0] * HOUR, SESSION_HOURS[1] * HOUR + 1))
        start = int(rng.integers(SESSION_WINDOW[0], SESSION_WINDOW[1] - length + 1))
    first = int(rng.integers(0, max(1, gateway.segments - SEGMENTS_SWEPT + 1))) * SEGMENT_SIZE + int(
        rng.integers(0, SEGMENT_SIZE)
    )
    end = (first // SEGMENT_SIZE + SEGMENTS_SWEPT) * SEGMENT_SIZE
    swept = np.flatnonzero((gateway.position >= first) & (gateway.position < end))
    n = min(int(rng.integers(gateway.calls_per_day[0], gateway.calls_per_day[1] + 1)), swept.size) if works else 0
    receiver = gateway.targets[swept[:n]]
    sod = start + np.sort(rng.integers(0, length, n))

    run = np.repeat(np.arange(n), rng.integers(SAME_NUMBER_RUN[0], SAME_NUMBER_RUN[1] + 1, n))[:n]
    if gateway.protected:
        presented = rng.choice(PRESENTED_PROTECTED, n, p=PRESENTED_WEIGHTS / PRESENTED_WEIGHTS.sum())[run]
        svc = np.zeros(n, dtype=np.int8)
    else:  # a resident's number, never the receiver's own
        owner = rng.integers(0, gateway.targets.size, n)[run]
        owner = np.where(gateway.targets[owner] == receiver, (owner + 1) % gateway.targets.size, owner)
        presented = world.population.msisdn[gateway.targets[owner]]
        svc = (rng.random(n) < SMS_SHARE).astype(np.int8)
    u = rng.random(n)
    long_share = rng.uniform(*LONG_SHARE)
    talk = np.where(
        u < long_share,
        rng.integers(LONG_S[0], LONG_S[1] + 1, n),
        np.where(u < ANSWERED, rng.integers(HANG_UP_S[0], HANG_UP_S[1] + 1, n), 0),
    )
    return Legs(
        sod.astype(np.int64),
        receiver.astype(np.int64),
        presented.astype(np.int64),
        svc,
        np.where(svc == 0, talk, 0).astype(np.int32),
    )
