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

from jobs.simulate import dens as den_mod
from jobs.simulate.city import CARRIERS, build_city
from jobs.simulate.events import Calls, SimRegistry, World, to_records
from jobs.simulate.negatives import (CROWD_HOURS, OFFICE_SIMS, CourierRoutes, Office, courier_day, gather_crowd,
                                     hire_couriers, office_day, office_site, stadium_site)
from jobs.simulate.numbers import Identities, NumberPlan, OutsidePools
from jobs.simulate.residents import assign_numbers, build_population, resident_day
from jobs.simulate.truth import Truth
from jobs.simulate.writers import DayWriter, format_lines, write_inventories, write_whitelist

OFFICE_OWNER = "蓉城人寿保险电话销售中心（已备案）"
SERVICE_LINES = (("95588", "工商银行客服热线"), ("10086", "中国移动客服热线"))


@dataclass
class SimSummary:
    out: Path
    start: date
    days: int
    dens: int
    files: int = 0
    rows: dict[str, int] = field(default_factory=lambda: {c: 0 for c in CARRIERS})

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def __str__(self) -> str:
        last = self.start + timedelta(days=self.days - 1)
        per_carrier = ", ".join(f"{c} {n:,}" for c, n in self.rows.items())
        return (f"simulated {self.days} day(s) {self.start}..{last}: {self.total_rows:,} CDR lines ({per_carrier}) "
                f"in {self.files} files, {self.dens} dens -> {self.out} (labels in {self.out / 'truth'})")


def _stream(seed: int, *keys: str | int) -> np.random.Generator:
    """An independent random stream per component (and day), so one part's draws never shift another's."""
    return np.random.default_rng([seed, *(zlib.crc32(k.encode()) if isinstance(k, str) else k for k in keys)])


def simulate(out: Path, start: date, days: int, subscribers: int = 3000, dens: int = 4, seed: int = 1,
             timezone: str = "Asia/Shanghai", on_day: Callable[[date, int], None] | None = None,
             manifests: bool = True) -> SimSummary:
    """Write a synthetic city's landing zone (DESIGN.md "Inputs") plus truth/ under `out`; with
    `manifests` every `<carrier>/<D>/` gets its `_MANIFEST.csv` (False: deliveries of older carriers,
    which send none). truth/ is the same either way."""
    if days < 1 or subscribers < 50 or dens < 0 or seed < 0:
        raise ValueError("simulate: need days >= 1, subscribers >= 50, dens >= 0, seed >= 0")
    zone = ZoneInfo(timezone)
    out = Path(out)
    city = build_city(_stream(seed, "city"))
    ids = Identities(_stream(seed, "identities"))
    office_at, stadium = office_site(city), stadium_site(city)
    population, per_carrier = build_population(_stream(seed, "population"), city, subscribers, OFFICE_SIMS, office_at)
    numbers = NumberPlan.build(_stream(seed, "numbers"), per_carrier, spare=dens * 16 * days + 64)
    imsi, imei = assign_numbers(population, numbers, ids)
    registry = SimRegistry(population.msisdn.copy(), population.carrier.copy(), imsi, imei)
    pools = OutsidePools.build(_stream(seed, "pools"), subscribers, numbers.local_prefixes)
    couriers = hire_couriers(_stream(seed, "couriers"), population)
    office_sims = np.arange(subscribers, subscribers + OFFICE_SIMS)
    office = Office(office_at, office_sims, np.sort(population.msisdn[:subscribers]))
    den_list = den_mod.found_dens(_stream(seed, "dens"), city, dens, days, numbers.dial_list_size(), ids,
                                  avoid={stadium, office_at})

    truth = Truth()
    truth.hard_negatives(population.msisdn[couriers], "courier")
    truth.hard_negatives(population.msisdn[office_sims], "telemarketing")
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
                world.crowd = gather_crowd(_stream(seed, "crowd", index), population, stadium)
                truth.crowd(day, stadium, city, CROWD_HOURS, population.msisdn[world.crowd.members])
            for den in den_list:
                den_mod.open_den(den, world, numbers, ids, _stream(seed, "open", den.den_id, index))

            parts = [resident_day(world, population, pools, _stream(seed, "residents", index)),
                     courier_day(world, couriers, _stream(seed, "couriers", index)),
                     office_day(world, office, _stream(seed, "office", index))]
            for den in den_list:
                result = den_mod.den_day(den, world, numbers, _stream(seed, "den", den.den_id, index))
                truth.den_day(day, day_start, den, result, registry, city, timezone, index)
                parts.append(result.calls)
            records = to_records(Calls.concat(parts), registry, day_len)
            del parts

            written_today = 0
            for c, carrier in enumerate(CARRIERS):
                rng = _stream(seed, "write", carrier, index)
                lines = format_lines(records.filter(records["carrier"] == c), carrier, day, day_start, timezone,
                                     city, rng)
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
    truth.write(out / "truth", dict(start=start.isoformat(), days=days, subscribers=subscribers, dens=dens,
                                    seed=seed, timezone=timezone))
    return summary


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
