"""Hard negatives: honest subscribers who look a bit like a den to a naive detector.

* couriers make dozens of short calls to strangers every day, but they move and get called back;
* the registered telemarketing office dials a sorted customer list from one site, but it is
  whitelisted, uses ordinary phones and keeps its SIMs;
* a crowd event congests a stadium's cell with hundreds of ordinary subscribers;
* an unregistered debt-collection call centre: a room of ordinary phones calling debtors scattered
  over the city, again and again, with long answered calls and many call-backs;
* estate agents cold-calling one segment in ascending order, at a person's pace, while walking
  their patch (each agent a block of the same segment, in the same hours, never at one site);
* a phone shop activating 10-30 new SIMs a day: fresh SIMs at one site with short test calls,
  that then leave with their buyers and live as a second line;
* (only when asked for) a parcel-locker company's lawful SMS notification gateway: a GOIP box of
  8 SIMs at a business site texting pickup codes to hundreds of residents a day — everything a
  SIM-box detector looks for, and only a visit tells it is lawful.

The last four draw their numbers from the far end of the segments and their devices from their
own identities, so adding them moves no draw of the residents or the dens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.city import DISTRICTS, GRID, OFFICE_DISTRICT, STADIUM_DISTRICT, City
from simulator.events import Calls, Crowd, Placement, SimRegistry, World, on_the_clock, one_after_another
from simulator.numbers import BOX_TACS, CARRIER_SHARES, MOBILE_BASE, PHONE_TACS, SEGMENT_SIZE, Identities, NumberPlan
from simulator.residents import HOUR, KIND_RESIDENT, N_CONTACTS, Population, diurnal_times, voice_durations

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
        candidates = np.concatenate(
            [
                district[:, None] * per_district + np.arange(per_district),
                np.where(two, neighbour, district)[:, None] * per_district + np.arange(per_district),
            ],
            axis=1,
        )
        keys = rng.random(candidates.shape)
        keys[~two, per_district:] = 2.0  # one district only: never pick the copy
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
    callbacks = world.calls(
        rng,
        a_sim=callee[back][keep],
        b_sim=couriers[courier[back][keep]],
        svc=0,
        sod=back_sod[keep],
        dur=np.where(rng.random(n) < 0.9, rng.integers(10, 91, n), 0),
    )
    return Calls.concat([rounds, callbacks])


# --- the telemarketing office -------------------------------------------------------------------


@dataclass
class Office:
    """A registered call centre: ordinary phones at one site, dialling a sorted customer list."""

    site: int
    sims: np.ndarray  # population indices
    customers: np.ndarray  # residents' numbers, ascending
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


def gather_crowd(rng: np.random.Generator, population: Population, site: int, away: np.ndarray | None = None) -> Crowd:
    """~8 % of residents (at least 150) at the stadium 19-22 h; `away`: SIMs that left their owners
    (sold to a den): they stay where the den is, not in the crowd."""
    residents = np.flatnonzero(population.kind == KIND_RESIDENT)
    count = min(residents.size, max(MIN_CROWD, round(CROWD_SHARE * population.n_residents)))
    members = np.zeros(population.size, dtype=bool)
    members[rng.choice(residents, count, replace=False)] = True
    if away is not None:
        members[away] = False
    return Crowd(members, site, CROWD_HOURS[0] * HOUR, CROWD_HOURS[1] * HOUR)


# --- places and people for the newer look-alikes ------------------------------------------------


def business_site(rng: np.random.Generator, city: City, avoid: set[int]) -> int:
    """A site among the busiest third for offices and shops, none of `avoid`."""
    busy = np.argsort(-city.business, kind="stable")[: city.n_sites // 3]
    return int(next(s for s in rng.permutation(busy) if int(s) not in avoid))


def ordinary_residents(population: Population, exclude: np.ndarray) -> np.ndarray:
    """Residents free to take a role (not a courier, not a SIM sold to a den, ...)."""
    residents = np.flatnonzero(population.kind[: population.n_residents] == KIND_RESIDENT)
    return residents[~np.isin(residents, exclude)]


def numbers_needed(days: int) -> int:
    """Local numbers the look-alikes below take over a run (for NumberPlan's spare)."""
    return COLLECTION_PHONES[1] + SHOP_SIMS_PER_DAY[1] * days


# --- the debt-collection call centre -----------------------------------------------------------

COLLECTION_PHONES = (6, 10)
COLLECTION_SESSIONS = ((9 * HOUR, 12 * HOUR), (13 * HOUR + 1800, 18 * HOUR))
COLLECTION_CALLS = (40, 70)  # per phone per day, inclusive
DEBTORS = (150, 300)  # cases on the list at the start
NEW_DEBTORS = 0.03  # new cases a day, as a share of the list
DEBTORS_TODAY = 0.6  # share of the list worked on a given day
COLLECTION_ANSWERED = 0.40
COLLECTION_TALK_S = (60, 900)
COLLECTION_RING_S = 30  # an unanswered call still keeps the phone this long
COLLECTION_RINGBACK = (0.20, 0.35)  # share of the day's debtors who ring back that day


@dataclass
class CollectionCentre:
    """An unregistered debt-collection office: ordinary phones with established numbers at one site."""

    site: int
    sims: np.ndarray  # registry indices, ascending
    slots: np.ndarray  # each phone's sector
    debtors: np.ndarray  # resident indices on the list
    eligible: np.ndarray  # residents a new case may be

    def locate(self, sims: np.ndarray, sod: np.ndarray, world: World) -> tuple[np.ndarray, np.ndarray]:
        return np.full(sims.size, self.site), self.slots[np.searchsorted(self.sims, sims)]

    def open(self, world: World) -> None:
        """The phones are in the office, in service, every day."""
        world.place(Placement(self.sims, self.locate))


def open_collection_centre(
    rng: np.random.Generator,
    registry: SimRegistry,
    numbers: NumberPlan,
    ids: Identities,
    site: int,
    eligible: np.ndarray,
) -> CollectionCentre:
    n = int(rng.integers(COLLECTION_PHONES[0], COLLECTION_PHONES[1] + 1))
    carrier = rng.choice(3, n, p=CARRIER_SHARES).astype(np.int8)
    sims = registry.add(numbers.draw_mixed(carrier, from_end=True), carrier, ids.imsi(carrier), ids.imei(n, PHONE_TACS))
    size = min(int(rng.integers(DEBTORS[0], DEBTORS[1] + 1)), eligible.size // 3)
    return CollectionCentre(site, sims, rng.integers(0, 6, n), rng.choice(eligible, size, replace=False), eligible)


def collection_day(world: World, centre: CollectionCentre, rng: np.random.Generator) -> Calls:
    """40-70 calls per phone to today's share of the debtor list (random order, the same debtors again on
    later days), 40 % answered with long talks; 20-35 % of the day's debtors ring back."""
    new = rng.choice(centre.eligible, rng.poisson(NEW_DEBTORS * centre.debtors.size))
    centre.debtors = np.r_[centre.debtors, np.unique(new[~np.isin(new, centre.debtors)])]
    today = centre.debtors[rng.random(centre.debtors.size) < DEBTORS_TODAY]
    today = today if today.size else centre.debtors

    n, most = centre.sims.size, COLLECTION_CALLS[1]
    starts = np.array([a for a, _ in COLLECTION_SESSIONS])
    lengths = np.array([b - a for a, b in COLLECTION_SESSIONS])
    per = rng.integers(COLLECTION_CALLS[0], COLLECTION_CALLS[1] + 1, n)
    answered = rng.random((n, most)) < COLLECTION_ANSWERED
    talk = np.where(answered, rng.integers(COLLECTION_TALK_S[0], COLLECTION_TALK_S[1] + 1, (n, most)), 0)
    start, kept = one_after_another(rng, per, np.where(answered, talk, COLLECTION_RING_S), lengths.sum(), 2.0, 20.0)
    phone = np.broadcast_to(np.arange(n)[:, None], kept.shape)[kept]
    sod, dur = on_the_clock(start[kept], starts, lengths), talk[kept]
    debtor = rng.choice(today, phone.size)
    calls = world.calls(rng, a_sim=centre.sims[phone], b_sim=debtor, svc=0, sod=sod, dur=dur)

    called, first = np.unique(debtor, return_index=True)  # each debtor's first call of the day
    rings = first[rng.random(called.size) < rng.uniform(*COLLECTION_RINGBACK)]
    back_sod = sod[rings] + dur[rings] + 300 + rng.exponential(90 * 60, rings.size).astype(np.int64)
    in_hours = back_sod < COLLECTION_SESSIONS[-1][1]
    back_dur = np.where(in_hours, rng.integers(30, 601, rings.size), 0)
    keep = back_sod < world.day_len
    callbacks = world.calls(
        rng,
        a_sim=debtor[rings][keep],
        b_sim=centre.sims[phone[rings][keep]],
        svc=0,
        sod=back_sod[keep],
        dur=back_dur[keep],
    )
    return Calls.concat([calls, callbacks])


# --- estate agents -----------------------------------------------------------------------------

AGENTS = (3, 5)
AGENT_SESSION_STARTS = (9, 10, 14, 15)  # the agency's cold-calling hours start at one of these ...
AGENT_SESSION_HOURS = (2, 4)  # ... and last this long (the same hours for every agent)
AGENT_RATE = (8, 14)  # calls per hour
AGENT_GAP_SHAPE = 1.5
AGENT_ANSWERED = 0.30
AGENT_TALK_S = (15, 120)
AGENT_CALLBACK = (0.05, 0.10)


@dataclass
class EstateAgency:
    """Agents (ordinary residents) cold-calling consecutive blocks of one segment while walking their patch."""

    agents: np.ndarray  # resident indices, ascending
    district: int  # their patch
    segment: int  # the 7-digit prefix they all work
    block: int  # numbers per agent
    next_number: np.ndarray  # per agent: offset in the segment of the next number to dial
    avoid: set[int] = field(default_factory=set)
    start: int = 0  # today's session
    hours: int = 0
    route: np.ndarray | None = None  # today's (agent, hour) sites

    def plan_day(self, world: World, rng: np.random.Generator) -> None:
        """Today's hours and each agent's round: a different site every hour, never one another agent is at."""
        self.start = int(rng.choice(AGENT_SESSION_STARTS)) * HOUR
        self.hours = int(rng.integers(AGENT_SESSION_HOURS[0], AGENT_SESSION_HOURS[1] + 1))
        sites = np.array([s for s in world.city.sites_of(self.district) if int(s) not in self.avoid])
        picked = rng.choice(sites, self.agents.size * self.hours, replace=False)
        self.route = picked.reshape(self.agents.size, self.hours)
        world.person_overrides.append(self.whereabouts)

    def whereabouts(self, who: np.ndarray, sod: np.ndarray, site: np.ndarray) -> np.ndarray:
        at = np.minimum(np.searchsorted(self.agents, who), self.agents.size - 1)
        hour = (sod - self.start) // HOUR
        working = (self.agents[at] == who) & (hour >= 0) & (hour < self.hours)
        site = site.copy()
        site[working] = self.route[at[working], hour[working]]
        return site


def hire_agents(rng: np.random.Generator, numbers: NumberPlan, eligible: np.ndarray, avoid: set[int]) -> EstateAgency:
    n = int(rng.integers(AGENTS[0], AGENTS[1] + 1))
    agents = np.sort(rng.choice(eligible, n, replace=False))
    block = SEGMENT_SIZE // n
    return EstateAgency(
        agents,
        int(rng.integers(0, len(DISTRICTS))),
        int(rng.choice(numbers.local_prefixes)),
        block,
        np.arange(n) * block,
        avoid,
    )


def agents_day(world: World, agency: EstateAgency, rng: np.random.Generator) -> Calls:
    """8-14 calls an hour per agent through today's session (`plan_day` first), each the next number of
    the agent's block; 30 % answered (15-120 s), 5-10 % of the called ring back later."""
    n = agency.agents.size
    rate = rng.uniform(*AGENT_RATE, n)
    most = int(AGENT_RATE[1] * agency.hours * 1.5) + 5
    answered = rng.random((n, most)) < AGENT_ANSWERED
    dur = np.where(answered, rng.integers(AGENT_TALK_S[0], AGENT_TALK_S[1] + 1, (n, most)), 0)
    gaps = rng.gamma(AGENT_GAP_SHAPE, (HOUR / rate)[:, None] / AGENT_GAP_SHAPE, (n, most))
    start = np.cumsum(gaps, axis=1) - gaps[:, :1] + rng.uniform(0, 300, (n, 1))
    kept = start < agency.hours * HOUR
    agent = np.broadcast_to(np.arange(n)[:, None], kept.shape)[kept]
    rank = np.broadcast_to(np.arange(most)[None, :], kept.shape)[kept]
    offset = agency.next_number[agent] + rank
    offset = agent * agency.block + (offset - agent * agency.block) % agency.block  # the block wraps, not the list
    agency.next_number = agency.next_number + kept.sum(axis=1)
    number = MOBILE_BASE + agency.segment * SEGMENT_SIZE + offset
    callee = world.reachable(number)
    sod, dur = (agency.start + start[kept]).astype(np.int64), dur[kept]
    calls = world.calls(rng, a_sim=agency.agents[agent], b_sim=callee, b_num=number, svc=0, sod=sod, dur=dur)

    back = (rng.random(agent.size) < rng.uniform(*AGENT_CALLBACK, n)[agent]) & ~world.stationed(callee)
    back_sod = sod + dur + 300 + rng.exponential(60 * 60, agent.size).astype(np.int64)
    back &= back_sod < world.day_len
    idx = np.flatnonzero(back)
    back_dur = np.where(rng.random(idx.size) < 0.8, rng.integers(20, 181, idx.size), 0)
    callbacks = world.calls(
        rng,
        a_sim=callee[idx],
        a_num=number[idx],
        b_sim=agency.agents[agent[idx]],
        svc=0,
        sod=back_sod[idx],
        dur=back_dur,
    )
    return Calls.concat([calls, callbacks])


# --- a phone shop --------------------------------------------------------------------------------

SHOP_SIMS_PER_DAY = (10, 30)
SHOP_OPEN = (10 * HOUR, 20 * HOUR)  # when buyers walk in
SHOP_VISIT_S = (900, 2400)
SHOP_TEST_CALLS = (1, 3)  # per new SIM, in the shop
SHOP_TEST_S = (5, 40)
ACTIVATION_LINES = np.array([10086, 10010, 10000])  # each carrier's service line, per carrier index
SECOND_LINE_OUT = 1.2  # a bought SIM's own calls and SMS per day, to its buyer's contacts
SECOND_LINE_IN = 0.6


@dataclass
class SimShop:
    """A phone shop selling every carrier's SIMs; each one a buyer's (a resident's) second line."""

    site: int
    slot: int
    eligible: np.ndarray  # residents who may walk in
    sims: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # registry, ascending
    owner: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sold_on: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # day index
    visit: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))  # [in, out) sod

    def locate(self, sims: np.ndarray, sod: np.ndarray, world: World) -> tuple[np.ndarray, np.ndarray]:
        """In the shop during the visit it was bought on; with its buyer ever after."""
        at = np.searchsorted(self.sims, sims)
        owner = self.owner[at]
        site = world.population.sites_at(owner, sod, world)
        slot = world.population.slot(owner, site)
        inside = (self.sold_on[at] == world.index) & (sod >= self.visit[at, 0]) & (sod < self.visit[at, 1])
        site[inside] = self.site
        slot[inside] = self.slot
        return site, slot


def open_shop(world: World, shop: SimShop, numbers: NumberPlan, ids: Identities, rng: np.random.Generator) -> None:
    """Today's sales: new SIMs (new numbers, new IMSIs, the buyers' handsets' second IMEIs)."""
    k = min(int(rng.integers(SHOP_SIMS_PER_DAY[0], SHOP_SIMS_PER_DAY[1] + 1)), shop.eligible.size)
    buyers = rng.choice(shop.eligible, k, replace=False)
    carrier = rng.choice(3, k, p=CARRIER_SHARES).astype(np.int8)
    sims = world.registry.add(
        numbers.draw_mixed(carrier, from_end=True), carrier, ids.imsi(carrier), ids.imei(k, PHONE_TACS)
    )
    arrive = rng.integers(*SHOP_OPEN, k)
    visit = np.stack([arrive, arrive + rng.integers(SHOP_VISIT_S[0], SHOP_VISIT_S[1] + 1, k)], axis=1)
    shop.sims, shop.owner = np.r_[shop.sims, sims], np.r_[shop.owner, buyers]
    shop.sold_on, shop.visit = np.r_[shop.sold_on, np.full(k, world.index)], np.r_[shop.visit, visit]
    world.place(Placement(shop.sims, shop.locate), reachable=shop.sims[shop.sold_on < world.index])


def shop_day(world: World, shop: SimShop, rng: np.random.Generator) -> Calls:
    """Test calls of today's SIMs in the shop (the carrier's service line or the buyer's own phone), then
    every SIM sold so far living as a second line: a call or SMS a day with its buyer's contacts."""
    new = np.flatnonzero(shop.sold_on == world.index)
    test = np.repeat(new, rng.integers(SHOP_TEST_CALLS[0], SHOP_TEST_CALLS[1] + 1, new.size))
    span = shop.visit[test, 1] - shop.visit[test, 0]
    test_sod = shop.visit[test, 0] + (rng.uniform(0.05, 0.95, test.size) * span).astype(np.int64)
    own = rng.random(test.size) < 0.5
    carrier = world.registry.carrier[shop.sims[test]]
    tests = world.calls(
        rng,
        a_sim=shop.sims[test],
        b_sim=np.where(own, shop.owner[test], -1),
        b_num=ACTIVATION_LINES[carrier],
        svc=0,
        sod=test_sod,
        dur=rng.integers(SHOP_TEST_S[0], SHOP_TEST_S[1] + 1, test.size),
    )

    def times(line: np.ndarray) -> np.ndarray:
        sod = diurnal_times(rng, line.size)
        bought_today = shop.sold_on[line] == world.index
        after = shop.visit[line, 1] + (rng.random(line.size) * (world.day_len - shop.visit[line, 1])).astype(np.int64)
        return np.where(bought_today, after, sod)

    out = np.repeat(np.arange(shop.sims.size), rng.poisson(SECOND_LINE_OUT, shop.sims.size))
    svc = (rng.random(out.size) < 0.25).astype(np.int8)
    contact = world.population.contacts[shop.owner[out], rng.integers(0, N_CONTACTS, out.size)]
    outgoing = world.calls(
        rng, a_sim=shop.sims[out], b_sim=contact, svc=svc, sod=times(out), dur=voice_durations(rng, svc)
    )
    inc = np.repeat(np.arange(shop.sims.size), rng.poisson(SECOND_LINE_IN, shop.sims.size))
    svc = (rng.random(inc.size) < 0.25).astype(np.int8)
    contact = world.population.contacts[shop.owner[inc], rng.integers(0, N_CONTACTS, inc.size)]
    incoming = world.calls(
        rng, a_sim=contact, b_sim=shop.sims[inc], svc=svc, sod=times(inc), dur=voice_durations(rng, svc)
    )
    return Calls.concat([tests, outgoing, incoming])


# --- lawful SMS notification gateways -----------------------------------------------------------

GATEWAY_SIMS = 8  # one box, all SIMs of one carrier (a bulk contract)
GATEWAY_HOURS = (8 * HOUR, 20 * HOUR)
GATEWAY_SMS = (60, 120)  # per SIM per day, inclusive, at machine-regular gaps
GATEWAY_GAP_SD_S = (1.5, 4.0)
GATEWAY_FIRST_S = 60  # each SIM's first SMS within this many seconds of opening
GATEWAY_REPLIES = 0.03  # share of the texted residents who text back
GATEWAY_REPLY_S = 20 * 60  # mean delay of a reply
GATEWAY_NAMES = ("丰巢快递柜通知平台", "菜鸟驿站取件通知平台", "京东快递柜通知平台", "速递易快递柜通知平台")


@dataclass
class SmsGateway:
    """A parcel-locker company's GOIP box sending pickup codes: one IMEI behind all its SIMs, one sector of
    one business site, outgoing SMS to residents in no order, 08-20 h every day. Lawful; truth says so."""

    name: str
    site: int
    slot: int
    sims: np.ndarray  # registry indices, ascending
    imei: int
    gap_sd: float  # seconds: how regular the box is
    customers: np.ndarray  # residents it may text

    def locate(self, sims: np.ndarray, sod: np.ndarray, world: World) -> tuple[np.ndarray, np.ndarray]:
        return np.full(sims.size, self.site), np.full(sims.size, self.slot)

    def open(self, world: World) -> None:
        world.place(Placement(self.sims, self.locate))


def gateway_site(rng: np.random.Generator, city: City, avoid: set[int]) -> int:
    """A busy business site, preferably not among the residential sites dens choose from."""
    homes = set(np.argsort(-city.residential, kind="stable")[: city.n_sites // 3].tolist())
    busy = [int(s) for s in np.argsort(-city.business, kind="stable")[: city.n_sites // 3] if int(s) not in avoid]
    quiet = [s for s in busy if s not in homes]
    return int(rng.choice(quiet or busy))


def open_gateways(
    rng: np.random.Generator,
    city: City,
    registry: SimRegistry,
    numbers: NumberPlan,
    ids: Identities,
    count: int,
    customers: np.ndarray,
    avoid: set[int],
) -> list[SmsGateway]:
    """`count` gateways at distinct sites (none of `avoid`); numbers from the segments' far end."""
    gateways: list[SmsGateway] = []
    for k in range(count):
        site = gateway_site(rng, city, avoid | {g.site for g in gateways})
        carrier = np.full(GATEWAY_SIMS, rng.choice(3, p=CARRIER_SHARES), dtype=np.int8)
        imei = int(ids.imei(1, BOX_TACS)[0])
        sims = registry.add(
            numbers.draw_mixed(carrier, from_end=True), carrier, ids.imsi(carrier), np.full(GATEWAY_SIMS, imei)
        )
        name = GATEWAY_NAMES[k % len(GATEWAY_NAMES)] + (
            f"{k // len(GATEWAY_NAMES) + 1}号" if k >= len(GATEWAY_NAMES) else ""
        )
        gateways.append(
            SmsGateway(
                name, site, int(rng.integers(0, 6)), sims, imei, float(rng.uniform(*GATEWAY_GAP_SD_S)), customers
            )
        )
    return gateways


def gateway_day(world: World, gateway: SmsGateway, rng: np.random.Generator) -> Calls:
    """60-120 SMS per SIM at regular gaps through 08-20 h, each to a different resident (as long as there
    are residents enough), in no number order; ~3 % of them text back within the hour or so."""
    n, most = gateway.sims.size, GATEWAY_SMS[1]
    per = rng.integers(GATEWAY_SMS[0], GATEWAY_SMS[1] + 1, n)
    mean_gap = (GATEWAY_HOURS[1] - GATEWAY_HOURS[0]) / per
    gaps = np.maximum(rng.normal(mean_gap[:, None], gateway.gap_sd, (n, most)), 1.0)
    first = rng.uniform(0, GATEWAY_FIRST_S, (n, 1))
    sod = (GATEWAY_HOURS[0] + first + np.cumsum(gaps, axis=1) - gaps[:, :1]).astype(np.int64)
    keep = (np.arange(most)[None, :] < per[:, None]) & (sod < GATEWAY_HOURS[1])
    slot = np.broadcast_to(np.arange(n)[:, None], keep.shape)[keep]
    sod = sod[keep]
    rounds = -(-slot.size // gateway.customers.size)
    recipient = np.concatenate([rng.permutation(gateway.customers) for _ in range(rounds)])[: slot.size]
    texts = world.calls(rng, a_sim=gateway.sims[slot], b_sim=recipient, svc=1, sod=sod, dur=0)

    back_sod = sod + 30 + rng.exponential(GATEWAY_REPLY_S, sod.size).astype(np.int64)
    idx = np.flatnonzero((rng.random(sod.size) < GATEWAY_REPLIES) & (back_sod < world.day_len))
    replies = world.calls(rng, a_sim=recipient[idx], b_sim=gateway.sims[slot[idx]], svc=1, sod=back_sod[idx], dur=0)
    return Calls.concat([texts, replies])
