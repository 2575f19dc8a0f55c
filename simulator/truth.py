"""truth/: the labels of a simulated scenario, for the tests and `cdrwatch evaluate`.

Flat UTF-8 CSVs with a date column, rows in a fixed order; numbers in the lake's E.164 form.
A den that moves within the day (a box in a car) is at the call-weighted centroid of its route's
sites; `route` lists them ("lat,lon;..." in order of first use), `route_radius_m` says how far they
reach from that centroid (empty and 0 for a den that stays put). `raids` lists a raided den's day
off and return with what was seized (its last night's SIMs and box IMEIs); `businesses` the lawful
look-alikes a field visit clears (header only when the run has none).

`spoofed_legs` lists every incoming leg a spoofing gateway left (spoofing.py; header only without
spoofers): its date and start as the receiver's carrier wrote them (clock skew included), the presented
number in the lake's form. A leg whose line the simulator's own dirt corrupted is listed all the same
(truth/corrupt_lines.csv names the line); a re-sent copy or repeated line is listed once.

Record times in truth are as the carriers wrote them: a victim's first_contact is the den SIM's
carrier's time of its first call with the den (its `date` stays the den's day even when a skewed
clock put that time across midnight). Hours (congestion, crowd) are the true wall-clock hours.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from simulator.city import CARRIERS, DISTRICTS, City
from simulator.dens import Den, DenDay, whereabouts
from simulator.events import Calls, SimRegistry, incoming_sod
from simulator.numbers import is_protected, lake_number
from simulator.writers import WrittenFile

QUIET_KINDS = ("low_slow",)
"""Dens that do not swamp their base station (a few dozen calls per SIM a day): no congestion label."""

SCHEMAS = {
    "dens": {
        "date": pl.String,
        "den_id": pl.String,
        "kind": pl.String,
        "pattern": pl.String,
        "lat": pl.Float64,
        "lon": pl.Float64,
        "district": pl.String,
        "cells": pl.String,
        "moved": pl.Boolean,
        "route": pl.String,
        "route_radius_m": pl.Int64,
    },
    "den_sims": {
        "date": pl.String,
        "den_id": pl.String,
        "msisdn": pl.String,
        "carrier": pl.String,
        "imsi": pl.String,
        "imei": pl.String,
    },
    "victims": {
        "date": pl.String,
        "den_id": pl.String,
        "number": pl.String,
        "first_contact": pl.String,
        "longest_call_s": pl.Int64,
        "n_calls": pl.Int64,
    },
    "congestion": {
        "date": pl.String,
        "cause": pl.String,
        "den_id": pl.String,
        "lat": pl.Float64,
        "lon": pl.Float64,
        "district": pl.String,
        "cells": pl.String,
        "hours": pl.String,
    },
    "hard_negatives": {"number": pl.String, "kind": pl.String, "date": pl.String},
    "counts": {
        "date": pl.String,
        "carrier": pl.String,
        "files": pl.Int64,
        "rows": pl.Int64,
        "corrupt": pl.Int64,
        "duplicated": pl.Int64,
        "accepted": pl.Int64,
    },
    "corrupt_lines": {
        "date": pl.String,
        "carrier": pl.String,
        "source_file": pl.String,
        "line": pl.Int64,
        "kind": pl.String,
    },
    "raids": {
        "den_id": pl.String,
        "raided_on": pl.String,
        "back_on": pl.String,
        "numbers": pl.String,
        "imeis": pl.String,
    },
    "businesses": {
        "kind": pl.String,
        "name": pl.String,
        "numbers": pl.String,
        "imeis": pl.String,
        "lat": pl.Float64,
        "lon": pl.Float64,
        "district": pl.String,
    },
    "spoofed_legs": {
        "date": pl.String,
        "campaign": pl.String,
        "receiver": pl.String,
        "presented": pl.String,
        "protected": pl.Boolean,
        "service": pl.String,
        "start": pl.String,
        "duration_s": pl.Int64,
        "carrier": pl.String,
    },
}
SORT_KEYS = {
    "dens": ["date", "den_id"],
    "den_sims": ["date", "den_id", "msisdn"],
    "victims": ["date", "den_id", "number"],
    "congestion": ["date", "cause", "den_id"],
    "hard_negatives": ["kind", "number", "date"],
    "counts": ["date", "carrier"],
    "corrupt_lines": ["date", "carrier", "source_file", "line"],
    "raids": ["raided_on", "den_id"],
    "businesses": ["kind", "name"],
    "spoofed_legs": ["date", "campaign", "start", "receiver"],
}


@dataclass
class Truth:
    rows: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))

    def den_day(
        self,
        day: date,
        day_start: int,
        den: Den,
        result: DenDay,
        registry: SimRegistry,
        city: City,
        timezone: str,
        index: int,
        clock: np.ndarray | None = None,
    ) -> None:
        """`clock`: each carrier's switch clock offset (s), for the victims' first_contact as written."""
        calls = result.calls
        n = result.den_calls
        lat, lon, route, radius = whereabouts(den, result, index, city)
        district = DISTRICTS[city.site_district[den.site(index)]]
        used = city.cell_ids(np.r_[calls.a_cell[:n], calls.b_cell[n:]])
        self.rows["dens"].append(
            dict(
                date=day.isoformat(),
                den_id=den.den_id,
                kind=den.kind,
                pattern=den.pattern,
                lat=lat,
                lon=lon,
                district=district,
                cells=";".join(used),
                moved=den.moved(index),
                route=route,
                route_radius_m=radius,
            )
        )
        if den.kind not in QUIET_KINDS:
            self.rows["congestion"].append(
                dict(
                    date=day.isoformat(),
                    cause="den",
                    den_id=den.den_id,
                    lat=lat,
                    lon=lon,
                    district=district,
                    cells=";".join(used),
                    hours=den.hours,
                )
            )
        for sim in den.sims:
            self.rows["den_sims"].append(
                dict(
                    date=day.isoformat(),
                    den_id=den.den_id,
                    msisdn=lake_number(int(registry.msisdn[sim])),
                    carrier=CARRIERS[registry.carrier[sim]],
                    imsi=str(registry.imsi[sim]),
                    imei=str(registry.imei[sim]),
                )
            )
        # every contact between the den and a victim's number that day: dialled (first n) or called back
        other = np.r_[calls.b_num[:n], calls.a_num[n:]]
        written = calls.sod.astype(np.int64)
        if clock is not None:
            written = written + clock[registry.carrier[np.r_[calls.a_sim[:n], calls.b_sim[n:]]]]
        for number in np.unique(other[result.victims]):
            mine = other == number
            first = int(written[mine].min())
            self.rows["victims"].append(
                dict(
                    date=day.isoformat(),
                    den_id=den.den_id,
                    number=lake_number(int(number)),
                    first_contact=_local_iso(day_start + first, timezone),
                    longest_call_s=int(calls.dur[mine].max()),
                    n_calls=int(mine.sum()),
                )
            )

    def crowd(self, day: date, site: int, city: City, hours: tuple[int, int], members: np.ndarray) -> None:
        self.rows["congestion"].append(
            dict(
                date=day.isoformat(),
                cause="crowd",
                den_id=None,
                lat=round(float(city.site_lat[site]), 6),
                lon=round(float(city.site_lon[site]), 6),
                district=DISTRICTS[city.site_district[site]],
                cells=";".join(city.site_cells(site)),
                hours=f"{hours[0]:02d}-{hours[1]:02d}",
            )
        )
        self.hard_negatives(members, "crowd", day.isoformat())

    def hard_negatives(self, numbers: np.ndarray, kind: str, day: str | None = None) -> None:
        """Honest numbers that look suspicious; `day` None means every day of the run."""
        self.rows["hard_negatives"].extend(dict(number=lake_number(int(n)), kind=kind, date=day) for n in numbers)

    def raid(self, last_night: date, den: Den, registry: SimRegistry) -> None:
        """A den raided the day after `last_night` and back the day after that: what was seized is its SIMs
        and box(es) of that last night."""
        self.rows["raids"].append(
            dict(
                den_id=den.den_id,
                raided_on=(last_night + timedelta(days=1)).isoformat(),
                back_on=(last_night + timedelta(days=2)).isoformat(),
                numbers=_joined(registry.msisdn[den.sims], lake_number),
                imeis=_joined(registry.imei[den.sims], str),
            )
        )

    def business(self, kind: str, name: str, numbers: np.ndarray, imeis: np.ndarray, site: int, city: City) -> None:
        """A lawful business that looks like a den (its numbers are also hard negatives), where it is."""
        self.rows["businesses"].append(
            dict(
                kind=kind,
                name=name,
                numbers=_joined(numbers, lake_number),
                imeis=_joined(imeis, str),
                lat=round(float(city.site_lat[site]), 6),
                lon=round(float(city.site_lon[site]), 6),
                district=DISTRICTS[city.site_district[site]],
            )
        )

    def spoofed_legs(
        self,
        campaign: str,
        legs: Calls,
        day_start: int,
        day_len: int,
        registry: SimRegistry,
        timezone: str,
        clock: np.ndarray,
    ) -> None:
        """One gateway's incoming legs of a day, at the time the receiver's carrier stamped them."""
        carrier = registry.carrier[legs.b_sim]
        written = day_start + incoming_sod(legs, day_len).astype(np.int64) + clock[carrier]
        local = pl.from_epoch(pl.Series(written), "s").dt.replace_time_zone("UTC").dt.convert_time_zone(timezone)
        self.rows["spoofed_legs"].extend(
            dict(
                date=start[:10],
                campaign=campaign,
                receiver=lake_number(int(receiver)),
                presented=lake_number(int(presented)),
                protected=bool(protect),
                service=("voice", "sms")[svc],
                start=start,
                duration_s=int(dur),
                carrier=CARRIERS[c],
            )
            for start, receiver, presented, protect, svc, dur, c in zip(
                local.dt.strftime("%Y-%m-%d %H:%M:%S").to_list(),
                registry.msisdn[legs.b_sim],
                legs.a_num,
                is_protected(legs.a_num),
                legs.svc,
                legs.dur,
                carrier,
            )
        )

    def files(self, day: date, carrier: str, written: list[WrittenFile]) -> None:
        rows = sum(f.rows for f in written)
        corrupt = sum(len(f.corrupt) for f in written)
        duplicated = sum(f.duplicated for f in written)
        self.rows["counts"].append(
            dict(
                date=day.isoformat(),
                carrier=carrier,
                files=len(written),
                rows=rows,
                corrupt=corrupt,
                duplicated=duplicated,
                accepted=rows - corrupt - duplicated,
            )
        )
        for f in written:
            self.rows["corrupt_lines"].extend(
                dict(date=day.isoformat(), carrier=carrier, source_file=f.path, line=line, kind=kind)
                for line, kind in f.corrupt
            )

    def write(self, folder: Path, scenario: dict) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, schema in SCHEMAS.items():
            frame = pl.DataFrame(self.rows.get(name, []), schema=schema, orient="row")
            frame.sort(SORT_KEYS[name], maintain_order=True).write_csv(folder / f"{name}.csv", float_precision=6)
        (folder / "scenario.json").write_text(
            json.dumps(scenario, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )


def _joined(values: np.ndarray, form) -> str:
    """Distinct values in `form`, sorted, `;`-joined."""
    return ";".join(sorted({form(int(v)) for v in values}))


def _local_iso(instant: int, timezone: str) -> str:
    """Local wall-clock time without offset, e.g. 2026-11-20T10:15:03."""
    return datetime.fromtimestamp(instant, ZoneInfo(timezone)).replace(tzinfo=None).isoformat()
