"""Ordinary subscribers: where they live and work, whom they call, and one day of their calling.

This is the bulk of the CDRs and the background every detector has to see through: diurnal
rhythm, social circles biased to the own district, calls and SMS to the outside world. Banks and
hotlines text from their short numbers but ring from landlines (`numbers.ring_from_landline`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.city import City
from simulator.events import Calls, World
from simulator.numbers import CARRIER_SHARES, PHONE_TACS, Identities, NumberPlan, OutsidePools, ring_from_landline

HOUR = 3600
N_CONTACTS = 10
SAME_DISTRICT_CONTACTS = 0.7
WORKER_SHARE = 0.6
CALLS_PER_DAY = 10.5  # mean outgoing events of an average resident on a weekday
INCOMING_PER_DAY = 2.5  # mean calls/SMS from outside the city per resident
WEEKEND_FACTOR = 0.9
SMS_SHARE = 0.25
UNANSWERED = 0.20
# when people call: few at night, a late-morning and an evening peak
DIURNAL = np.array(
    [
        0.3,
        0.15,
        0.1,
        0.08,
        0.08,
        0.15,
        0.5,
        1.5,
        3.0,
        4.5,
        5.5,
        5.5,
        4.5,
        4.0,
        4.5,
        4.8,
        5.0,
        5.0,
        5.2,
        5.8,
        6.0,
        5.0,
        3.2,
        1.2,
    ]
)
DIURNAL = DIURNAL / DIURNAL.sum()
# whom an outgoing event goes to
TARGETS = ("contact", "resident", "out_of_region", "landline", "service", "overseas")
TARGET_P = np.array([0.52, 0.08, 0.16, 0.12, 0.11, 0.01])
INCOMING_SOURCES = ("out_of_region", "landline", "service", "overseas")
INCOMING_P = np.array([0.50, 0.35, 0.12, 0.03])

KIND_RESIDENT, KIND_OFFICE = 0, 1


@dataclass
class Population:
    """Everybody with a SIM in the city's local segments: residents (index < n_residents), then the
    telemarketing office's SIMs. Their SIM index in the registry equals their index here."""

    n_residents: int
    kind: np.ndarray
    carrier: np.ndarray
    msisdn: np.ndarray
    home: np.ndarray
    work: np.ndarray
    worker: np.ndarray
    activity: np.ndarray
    slot_seed: np.ndarray  # picks a stable sector per person per site
    contacts: np.ndarray  # (n_residents, N_CONTACTS) resident indices
    courier: np.ndarray  # courier number, -1 for everybody else

    @property
    def size(self) -> int:
        return self.kind.size

    def slot(self, who: np.ndarray, site: np.ndarray) -> np.ndarray:
        return (self.slot_seed[who] + site) % 6

    def sites_at(self, who: np.ndarray, sod: np.ndarray, world: World) -> np.ndarray:
        """Where each person is at second-of-day `sod`: home, work, a courier's route, the stadium,
        an estate agent's round."""
        site = self.home[who].copy()
        if world.weekday:
            at_work = self.worker[who] & (sod >= 9 * HOUR) & (sod < 18 * HOUR)
            site[at_work] = self.work[who][at_work]
        if world.courier_sites is not None:
            courier = self.courier[who]
            on_route = (courier >= 0) & (sod >= 9 * HOUR) & (sod < 19 * HOUR)
            site[on_route] = world.courier_sites(courier[on_route], sod[on_route])
        if world.crowd is not None:
            there = world.crowd.members[who] & (sod >= world.crowd.start) & (sod < world.crowd.end)
            site[there] = world.crowd.site
        for override in world.person_overrides:
            site = override(who, sod, site)
        return site


def build_population(
    rng: np.random.Generator, city: City, n_residents: int, n_office: int, office_site: int
) -> tuple[Population, np.ndarray]:
    """Residents plus the office SIMs; returns the population and its head count per carrier."""
    n = n_residents + n_office
    kind = np.r_[np.full(n_residents, KIND_RESIDENT), np.full(n_office, KIND_OFFICE)].astype(np.int8)
    carrier = rng.choice(3, n, p=CARRIER_SHARES).astype(np.int8)
    home = rng.choice(city.n_sites, n_residents, p=city.residential / city.residential.sum())
    work = rng.choice(city.n_sites, n_residents, p=city.business / city.business.sum())
    worker = rng.random(n_residents) < WORKER_SHARE
    activity = rng.lognormal(0.0, 0.7, n_residents)
    activity /= activity.mean()
    contacts = _social_circles(rng, city.site_district[home])
    population = Population(
        n_residents=n_residents,
        kind=kind,
        carrier=carrier,
        msisdn=np.zeros(n, dtype=np.int64),
        home=np.r_[home, np.full(n_office, office_site)],
        work=np.r_[work, np.full(n_office, office_site)],
        worker=np.r_[worker, np.ones(n_office, dtype=bool)],
        activity=np.r_[activity, np.zeros(n_office)],
        slot_seed=rng.integers(0, 6, n),
        contacts=contacts,
        courier=np.full(n, -1, dtype=np.int32),
    )
    return population, np.bincount(carrier, minlength=3)


def _social_circles(rng: np.random.Generator, district: np.ndarray) -> np.ndarray:
    """~10 contacts each, most of them living in the same district."""
    n = district.size
    order = np.argsort(district, kind="stable")
    counts = np.bincount(district, minlength=8)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    own = district[:, None]
    same = order[starts[own] + (rng.random((n, N_CONTACTS)) * counts[own]).astype(np.int64)]
    anyone = rng.integers(0, n, (n, N_CONTACTS))
    contacts = np.where(rng.random((n, N_CONTACTS)) < SAME_DISTRICT_CONTACTS, same, anyone)
    myself = contacts == np.arange(n)[:, None]
    contacts[myself] = (contacts[myself] + 1) % n
    return contacts.astype(np.int32)


def assign_numbers(population: Population, numbers: NumberPlan, ids: Identities) -> tuple[np.ndarray, np.ndarray]:
    """Residents' and office numbers from the local segments, and their SIM/handset identities."""
    population.msisdn[:] = numbers.draw_mixed(population.carrier)
    return ids.imsi(population.carrier), ids.imei(population.size, PHONE_TACS)


def resident_day(world: World, population: Population, pools: OutsidePools, rng: np.random.Generator) -> Calls:
    """One day of ordinary life: outgoing events, incoming ones from outside, the crowd's extra calls."""
    n = population.n_residents
    factor = 1.0 if world.weekday else WEEKEND_FACTOR
    n_out = rng.poisson(CALLS_PER_DAY * factor * population.activity[:n])
    caller = np.repeat(np.arange(n), n_out)
    sod = diurnal_times(rng, caller.size)
    if world.crowd is not None:  # the crowd calls and texts more than usual at the event
        fans = np.flatnonzero(world.crowd.members[:n])
        extra = np.repeat(fans, rng.poisson(2.5, fans.size))
        caller = np.r_[caller, extra]
        sod = np.r_[sod, rng.integers(world.crowd.start, world.crowd.end, extra.size)]
    outgoing = _outgoing(world, population, pools, rng, caller, sod)

    n_in = rng.poisson(INCOMING_PER_DAY * population.activity[:n])
    callee = np.repeat(np.arange(n), n_in)
    source = rng.choice(len(INCOMING_SOURCES), callee.size, p=INCOMING_P)
    a_num = np.zeros(callee.size, dtype=np.int64)
    for i, kind in enumerate(INCOMING_SOURCES):
        where = source == i
        a_num[where] = pools.draw(kind, int(where.sum()), rng)
    svc = (rng.random(callee.size) < np.where(source == 2, 0.8, 0.3)).astype(np.int8)
    incoming = world.calls(
        rng,
        a_sim=-1,
        a_num=ring_from_landline(a_num, svc),
        b_sim=callee,
        svc=svc,
        sod=diurnal_times(rng, callee.size),
        dur=voice_durations(rng, svc),
    )
    return Calls.concat([outgoing, incoming])


def _outgoing(
    world: World,
    population: Population,
    pools: OutsidePools,
    rng: np.random.Generator,
    caller: np.ndarray,
    sod: np.ndarray,
) -> Calls:
    n = population.n_residents
    target = rng.choice(len(TARGETS), caller.size, p=TARGET_P)
    b_sim = np.full(caller.size, -1, dtype=np.int64)
    b_num = np.zeros(caller.size, dtype=np.int64)
    contact = target == 0
    b_sim[contact] = population.contacts[caller[contact], rng.integers(0, N_CONTACTS, int(contact.sum()))]
    anyone = target == 1
    other = rng.integers(0, n - 1, int(anyone.sum()))
    b_sim[anyone] = other + (other >= caller[anyone])  # anybody but oneself
    for i, kind in enumerate(TARGETS[2:], start=2):
        where = target == i
        b_num[where] = pools.draw(kind, int(where.sum()), rng)
    svc = (rng.random(caller.size) < SMS_SHARE).astype(np.int8)
    return world.calls(rng, a_sim=caller, b_sim=b_sim, b_num=b_num, svc=svc, sod=sod, dur=voice_durations(rng, svc))


def diurnal_times(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.choice(24, n, p=DIURNAL) * HOUR + rng.integers(0, HOUR, n)


def voice_durations(rng: np.random.Generator, svc: np.ndarray, unanswered: float = UNANSWERED) -> np.ndarray:
    """Lognormal talk time (median ~60 s); 0 for SMS and for calls nobody picked up."""
    talk = np.clip(rng.lognormal(np.log(60), 1.0, svc.size), 1, 3600).astype(np.int32)
    answered = rng.random(svc.size) >= unanswered
    return np.where((svc == 0) & answered, talk, 0).astype(np.int32)
