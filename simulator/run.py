"""`simulate()`: build the city once, then live it day by day and write what the carriers would deliver."""

from __future__ import annotations

import shutil
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

import numpy as np

from simulator import dens as den_mod
from simulator import negatives as neg
from simulator import raids, spoofing
from simulator.city import CARRIERS, build_city
from simulator.events import Calls, SimRegistry, World, to_records
from simulator.negatives import (
    CROWD_HOURS,
    OFFICE_SIMS,
    CourierRoutes,
    Office,
    courier_day,
    gather_crowd,
    hire_couriers,
    office_day,
    office_site,
    stadium_site,
)
from simulator.numbers import Identities, NumberPlan, OutsidePools
from simulator.residents import assign_numbers, build_population, resident_day
from simulator.truth import Truth
from simulator.writers import DayWriter, clock_offsets, format_lines, write_inventories, write_whitelist

OFFICE_OWNER = "蓉城人寿保险电话销售中心（已备案）"
SERVICE_LINES = (("95588", "工商银行客服热线"), ("10086", "中国移动客服热线"))
MAX_CLOCK_SKEW = 3600  # seconds; a switch an hour off is broken, not skewed


@dataclass
class SimSummary:
    out: Path
    start: date
    days: int
    dens: int
    files: int = 0
    rows: dict[str, int] = field(default_factory=lambda: {c: 0 for c in CARRIERS})
    spoofed: int = 0  # incoming legs of spoofing gateways written

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def __str__(self) -> str:
        last = self.start + timedelta(days=self.days - 1)
        per_carrier = ", ".join(f"{c} {n:,}" for c, n in self.rows.items())
        spoofed = f", {self.spoofed:,} spoofed legs" if self.spoofed else ""
        return (
            f"simulated {self.days} day(s) {self.start}..{last}: {self.total_rows:,} CDR lines ({per_carrier}) "
            f"in {self.files} files, {self.dens} dens{spoofed} -> {self.out} (labels in {self.out / 'truth'})"
        )


def _stream(seed: int, *keys: str | int) -> np.random.Generator:
    """An independent random stream per component (and day), so one part's draws never shift another's."""
    return np.random.default_rng([seed, *(zlib.crc32(k.encode()) if isinstance(k, str) else k for k in keys)])


def simulate(
    out: Path,
    start: date,
    days: int,
    subscribers: int = 3000,
    dens: int = 4,
    seed: int = 1,
    timezone: str = "Asia/Shanghai",
    on_day: Callable[[date, int], None] | None = None,
    manifests: bool = True,
    *,
    raid_after: int | None = None,
    lawful_gateways: int = 0,
    spoofers: int = 0,
    clock_skew: int = 0,
) -> SimSummary:
    """Write a synthetic city's landing zone (docs/contracts.md) plus truth/ under `out`; with
    `manifests` every `<carrier>/<D>/` gets its `_MANIFEST.csv` (False: deliveries of older carriers,
    which send none). truth/ is the same either way. For the field-feedback loop (issue 15):
    `raid_after=N` raids the first box den after its N-th day (raids.py), `lawful_gateways=K` adds K
    parcel-locker SMS gateways (negatives.py); neither changes a byte of a run without them. For caller-ID
    spoofing (issue 16): `spoofers=K` adds K overseas gateways ringing residents with a presented number
    that is not theirs (spoofing.py, truth/spoofed_legs.csv); `clock_skew=S` sets the carriers' switch
    clocks off by cm 0, cu +0.75 S, ct -S seconds in every time they write (writers.clock_offsets)."""
    if days < 1 or subscribers < 50 or dens < 0 or seed < 0 or lawful_gateways < 0 or spoofers < 0:
        raise ValueError(
            "simulate: need days >= 1, subscribers >= 50, dens >= 0, seed >= 0, lawful_gateways >= 0, spoofers >= 0"
        )
    if not 0 <= clock_skew <= MAX_CLOCK_SKEW:
        raise ValueError(f"simulate: clock_skew must be 0..{MAX_CLOCK_SKEW} seconds, not {clock_skew}")
    raids.check_raid(raid_after, days)
    zone = ZoneInfo(timezone)
    out = Path(out)
    city = build_city(_stream(seed, "city"))
    ids = Identities(_stream(seed, "identities"))
    office_at, stadium = office_site(city), stadium_site(city)
    population, per_carrier = build_population(_stream(seed, "population"), city, subscribers, OFFICE_SIMS, office_at)
    spare = den_mod.sims_per_day(dens) * days + neg.numbers_needed(days) + neg.GATEWAY_SIMS * lawful_gateways + 64
    numbers = NumberPlan.build(_stream(seed, "numbers"), per_carrier, spare=spare)
    imsi, imei = assign_numbers(population, numbers, ids)
    registry = SimRegistry(population.msisdn.copy(), population.carrier.copy(), imsi, imei)
    pools = OutsidePools.build(_stream(seed, "pools"), subscribers, numbers.local_prefixes)
    couriers = hire_couriers(_stream(seed, "couriers"), population)
    office_sims = np.arange(subscribers, subscribers + OFFICE_SIMS)
    office = Office(office_at, office_sims, np.sort(population.msisdn[:subscribers]))
    # what came after the classic city draws from its own streams and identities (and numbers from the
    # segments' far end), so the residents and the four classic dens are exactly as they were
    new_ids = Identities(_stream(seed, "identities", "new"), ids.imsis, ids.imeis)
    den_list = den_mod.found_dens(
        _stream(seed, "dens"),
        city,
        dens,
        days,
        numbers.dial_list_size(),
        ids,
        avoid={stadium, office_at},
        population=population,
        new_ids=new_ids,
        exclude=couriers,
    )
    sold = np.concatenate([np.zeros(0, np.int64)] + [d.sims for d in den_list if d.kind == "low_slow"])
    taken = (
        {stadium, office_at}
        | {s for d in den_list for s in d.sites}
        | {int(s) for d in den_list if d.route is not None for s in d.route}
    )
    free = neg.ordinary_residents(population, np.r_[couriers, sold])
    centre_at = neg.business_site(_stream(seed, "collection", "site"), city, taken)
    centre = neg.open_collection_centre(_stream(seed, "collection"), registry, numbers, new_ids, centre_at, free)
    shop_at = neg.business_site(_stream(seed, "shop", "site"), city, taken | {centre_at})
    agency = neg.hire_agents(_stream(seed, "agents"), numbers, free, taken | {centre_at, shop_at})
    others = free[~np.isin(free, agency.agents)]
    shop = neg.SimShop(shop_at, int(_stream(seed, "shop", "slot").integers(0, 6)), others)
    gateways = neg.open_gateways(
        _stream(seed, "gateways"), city, registry, numbers, new_ids, lawful_gateways, free, taken | {centre_at, shop_at}
    )
    abroad = spoofing.open_spoofers(_stream(seed, "spoofers"), spoofers, days, population, numbers.local_prefixes, sold)
    clock = clock_offsets(clock_skew)
    if raid_after is not None:
        raids.plan_raid(
            _stream(seed, "raid"), city, den_list, raid_after, taken | {centre_at, shop_at} | {g.site for g in gateways}
        )

    truth = Truth()
    truth.hard_negatives(population.msisdn[couriers], "courier")
    truth.hard_negatives(population.msisdn[office_sims], "telemarketing")
    truth.hard_negatives(registry.msisdn[centre.sims], "debt_collection")
    truth.hard_negatives(population.msisdn[agency.agents], "estate_agent")
    for gateway in gateways:
        truth.hard_negatives(registry.msisdn[gateway.sims], "sms_gateway")
        truth.business(
            "sms_gateway", gateway.name, registry.msisdn[gateway.sims], np.array([gateway.imei]), gateway.site, city
        )
    _clear(out, start, days)
    write_inventories(out, city)
    write_whitelist(out, _whitelist(population.msisdn[office_sims]))

    summary = SimSummary(out, start, days, dens)
    writer = DayWriter(out, manifests=manifests)
    try:
        for index in range(days):
            day = start + timedelta(days=index)
            day_start = int(datetime.combine(day, time(), zone).timestamp())
            day_len = int(datetime.combine(day + timedelta(days=1), time(), zone).timestamp()) - day_start
            world = World(day, index, day_start, day_len, city, population, registry)
            world.courier_sites = CourierRoutes(_stream(seed, "routes", index), city, couriers.size)
            if index == days // 2:
                gone = [d.sims for d in den_list if d.kind == "low_slow" and d.active(index)]
                world.crowd = gather_crowd(
                    _stream(seed, "crowd", index), population, stadium, away=np.concatenate(gone) if gone else None
                )
                truth.crowd(day, stadium, city, CROWD_HOURS, population.msisdn[world.crowd.members])
            active = [den for den in den_list if den.active(index)]
            for den in active:
                den_ids = ids if den.kind in den_mod.CLASSIC else new_ids
                den_mod.open_den(den, world, numbers, den_ids, _stream(seed, "open", den.den_id, index))
            centre.open(world)
            neg.open_shop(world, shop, numbers, new_ids, _stream(seed, "shop", "open", index))
            agency.plan_day(world, _stream(seed, "agents", "plan", index))
            for gateway in gateways:
                gateway.open(world)

            life = Calls.concat(
                [
                    resident_day(world, population, pools, _stream(seed, "residents", index)),
                    courier_day(world, couriers, _stream(seed, "couriers", index)),
                    office_day(world, office, _stream(seed, "office", index)),
                    neg.collection_day(world, centre, _stream(seed, "collection", index)),
                    neg.agents_day(world, agency, _stream(seed, "agents", index)),
                    neg.shop_day(world, shop, _stream(seed, "shop", index)),
                ]
                + [
                    neg.gateway_day(world, gateway, _stream(seed, "gateway", k, index))
                    for k, gateway in enumerate(gateways)
                ]
            )
            rooms = [d for d in active if d.kind == "low_slow"]
            parts = [_sold_on(life, rooms, index, _stream(seed, "sold", index))]
            for den in active:
                result = den_mod.den_day(
                    den,
                    world,
                    numbers,
                    _stream(seed, "den", den.den_id, index),
                    None if den.kind in den_mod.CLASSIC else new_ids,
                )
                truth.den_day(day, day_start, den, result, registry, city, timezone, index, clock)
                if den.raided_on == index + 1:  # its last night: what the raid seizes
                    truth.raid(day, den, registry)
                parts.append(result.calls)
            for gateway in abroad:
                legs = spoofing.spoofer_day(world, gateway, _stream(seed, "spoofer", gateway.campaign, index))
                truth.spoofed_legs(gateway.campaign, legs, day_start, day_len, registry, timezone, clock)
                summary.spoofed += legs.size
                parts.append(legs)
            records = to_records(Calls.concat(parts), registry, day_len)
            del parts

            written_today = 0
            for c, carrier in enumerate(CARRIERS):
                rng = _stream(seed, "write", carrier, index)
                lines = format_lines(
                    records.filter(records["carrier"] == c), carrier, day, day_start, timezone, city, rng, int(clock[c])
                )
                written = writer.write(carrier, day, day_len, lines, rng, resend=index % len(CARRIERS) == c)
                truth.files(day, carrier, written)
                rows = sum(f.rows for f in written)
                summary.rows[carrier] += rows
                summary.files += len(written)
                written_today += rows
            if on_day is not None:
                on_day(day, written_today)
    finally:
        writer.close()
    truth.hard_negatives(registry.msisdn[shop.sims], "sim_shop")
    scenario = dict(
        start=start.isoformat(), days=days, subscribers=subscribers, dens=dens, seed=seed, timezone=timezone
    )
    if raid_after is not None or lawful_gateways:  # a scenario without them reads as it always did
        scenario.update(raid_after=raid_after, lawful_gateways=lawful_gateways)
    if spoofers or clock_skew:
        scenario.update(
            spoofers=spoofers,
            clock_skew=clock_skew,
            clock_offsets_s={carrier: int(clock[c]) for c, carrier in enumerate(CARRIERS)},
        )
    truth.write(out / "truth", scenario)
    return summary


def _sold_on(life: Calls, rooms: list, index: int, rng: np.random.Generator) -> Calls:
    """SIMs bought from residents by a low-and-slow room: their former owners place no more calls on them;
    whoever knew the old number still rings it, less each day (half as often every day since the sale)."""
    if not rooms:
        return life
    keep = np.ones(life.size, dtype=bool)
    for den in rooms:
        keep &= ~np.isin(life.a_sim, den.sims)
        ringing = np.isin(life.b_sim, den.sims)
        keep &= ~ringing | (rng.random(life.size) < 0.5 ** (index - den.start_day + 1))
    return life.take(np.flatnonzero(keep))


def _clear(out: Path, start: date, days: int) -> None:
    """Remove only what this run is about to write, so a rerun leaves exactly its own files."""
    shutil.rmtree(out / "truth", ignore_errors=True)
    for index in range(days):
        for carrier in CARRIERS:
            shutil.rmtree(out / carrier / (start + timedelta(days=index)).isoformat(), ignore_errors=True)


def _whitelist(office_numbers: np.ndarray) -> list[tuple[str, str]]:
    """The office's numbers as a clerk typed them (11 digits, +86…, 86…), plus a couple of service lines."""
    forms = ("{}", "+86{}", "86{}")
    rows = [(forms[i % 3].format(str(n)[2:]), OFFICE_OWNER) for i, n in enumerate(office_numbers)]
    return rows + list(SERVICE_LINES)
