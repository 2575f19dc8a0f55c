"""What an officer needs to know about each den, computed from small facts without Spark.

`describe_dens` takes what the Spark side gathered (`NightFacts`: each den's aggregates, the flags
on its members, its victims count, the night's sites), the dens of earlier nights and the settings,
and returns the night's DEN rows: score, priority, place, evidence and a stable id (`identity`).

Position: the members' site positions weighted by their calls there; `radius_m` the call-weighted
mean distance of those sites from the position (at least `MIN_RADIUS_M`); district: that of the
site nearest the position. A den that moves within the night (a box in a car: another site takes
its calls every hour or so, `route`) is one lead whose radius covers every site of its route and
whose sites are listed in the order it used them. The dialling pattern in the evidence comes from
the best-scoring member's sequential flag columns (`segment`, `range_lo`, `range_hi`, `pattern`),
never from its evidence text.

One place is one lead: groups the graph split apart (two boxes in one room dealing one list) are
merged when they share a place, a time and a number list (`merge_plan`).

Float sums depend on their order: the facts arrive sorted (sites by key, SIMs by number; see
`describe.describe`), so position, radius and score are computed from the same sequence every run.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from detectors.rules.sites import distance_m
from jobs.dens.identity import DenSketch, assign_ids, latest_per_den

MIN_RADIUS_M = 100.0
ACTIVE_HOUR_SHARE = 0.1  # an hour is "active" with at least this share of the den's busiest hour
SEGMENT_SHARE = 0.05  # a segment is the den's when it takes this share of its calls (and >= 20)
MAX_CELLS = 30
ROUTE_MIN_SITES = 3  # a den whose busy hours are each held by one site, at least this many in turn, moves
ROUTE_HOUR_SHARE = 0.5  # ... "held": the site takes at least this share of the hour's events
HOPPING_IMEIS_PER_SIM = 3  # more IMEIs than this per SIM: a box inventing an IMEI per call, not devices to seize


@dataclass(frozen=True)
class DenFacts:
    """One den's aggregates over its members' CDRs. `sites`: (site_key, lat, lon, label, district,
    events) sorted; `sims`: msisdn -> carrier; `cells`, `imeis`: events each; `hours`: outgoing
    events per local hour; `site_hours`: (local hour, site_key) -> events; `segments`: outgoing events
    per callee segment; `n_calls`: outgoing calls and SMS."""

    sims: dict[str, str]
    sites: list[tuple] = field(default_factory=list)
    site_hours: dict[tuple[int, str], int] = field(default_factory=dict)
    cells: dict[str, int] = field(default_factory=dict)
    hours: dict[int, int] = field(default_factory=dict)
    imeis: dict[str, int] = field(default_factory=dict)
    segments: dict[str, int] = field(default_factory=dict)
    n_calls: int = 0
    n_distinct_callees: int = 0
    n_sms: int = 0


@dataclass(frozen=True)
class MemberFlag:
    """A flag on a den's SIM, device or cell: the FLAG columns the description reads."""

    detector: str
    entity_type: str
    entity_id: str
    score: float
    segment: str | None = None
    range_lo: str | None = None
    range_hi: str | None = None
    pattern: str | None = None
    related_den: str | None = None


@dataclass(frozen=True)
class NightFacts:
    """Everything `describe_dens` needs from the night, all small. `dens`: den_key -> facts, in the
    order of the groups; `sites`: (lat, lon, district) of every located site, by site_key."""

    dens: dict[str, DenFacts]
    flags: list[MemberFlag] = field(default_factory=list)
    n_victims: dict[str, int] = field(default_factory=dict)
    sites: list[tuple[float, float, str | None]] = field(default_factory=list)


def key_of(i: int) -> str:
    return f"k{i + 1:03d}"


def describe_dens(
    night: NightFacts, earlier: list[dict], settings, *, min_call_s: int, day: dt.date
) -> dict[str, dict]:
    """den_key -> the den's row in DEN's columns, in den_id order. `settings` are `config.dens`;
    `earlier` the DEN rows of the nights before (a continuing den keeps its id); `min_call_s` the
    call length that makes a resident a victim (named in the evidence)."""
    score_of: dict[tuple[str, str], float] = {}
    detectors_of: dict[tuple[str, str], set[str]] = {}
    sweep_of: dict[str, tuple[float, str]] = {}  # msisdn -> (score, dialling) of its best sequential flag
    for f in night.flags:
        key = (f.entity_type, f.entity_id)
        score_of[key] = max(score_of.get(key, 0.0), f.score)
        detectors_of.setdefault(key, set()).add(f.detector)
        if f.detector == "sequential" and f.entity_type == "msisdn":  # the best, not the last
            mine = (f.score, dialling_pattern(f.segment, f.range_lo, f.range_hi, f.pattern) or "")
            sweep_of[f.entity_id] = max(sweep_of.get(f.entity_id, mine), mine)

    sketches, described = [], {}
    for key, fact in night.dens.items():
        sims = fact.sims
        imeis = [e for e, _ in sorted(fact.imeis.items(), key=lambda kv: (-kv[1], kv[0]))]
        where = place(fact, night.sites)
        member_scores = [score_of.get(("msisdn", s), 0.0) for s in sims]
        signals = set()
        for s in sims:
            signals |= detectors_of.get(("msisdn", s), set())
        for e in imeis:
            signals |= detectors_of.get(("imei", e), set())
        for c in where["cells"]:
            signals |= detectors_of.get(("cell", c), set())
        boxes = sum(("imei", e) in score_of for e in imeis)
        hopping = len(imeis) > HOPPING_IMEIS_PER_SIM * len(sims)
        segments = main_segments(fact.segments, fact.n_calls)
        top = max(sorted(fact.segments.items()), key=lambda kv: kv[1])[0] if fact.segments else None
        hours = active_hours(fact.hours)
        score = den_score(member_scores, len(sims))
        swept = sorted((-sweep_of[s][0], s) for s in sims if s in sweep_of)  # the best-scoring sweeper's
        pattern = (sweep_of[swept[0][1]][1] or None) if swept else None
        n_victims = night.n_victims.get(key, 0)
        related = sorted(
            {
                f.related_den
                for f in night.flags
                if f.detector == "hotlist" and f.related_den and f.entity_type == "msisdn" and f.entity_id in sims
            }
        )
        described[key] = dict(
            score=score,
            priority=priority(score, settings),
            district=where["district"],
            lat=where["lat"],
            lon=where["lon"],
            radius_m=where["radius_m"],
            numbers=sorted(sims),
            imeis=imeis,
            cells=where["cells"],
            site_names=where["site_names"],
            active_hours=hours,
            n_calls=fact.n_calls,
            n_distinct_callees=fact.n_distinct_callees,
            n_victims=n_victims,
            signals=sorted(signals),
            segments=segments,
            related_to=related,
            last_visit=None,
            last_outcome=None,
            suppressed=None,
            evidence=evidence(
                sims=sims,
                n_boxes=boxes,
                n_handsets=len(imeis) - boxes,
                main_site=where["main_site"],
                radius_m=where["radius_m"],
                hours=hours,
                n_calls=fact.n_calls,
                n_callees=fact.n_distinct_callees,
                top_segment=top if top in segments else None,
                n_victims=n_victims,
                min_call_s=min_call_s,
                n_sms=fact.n_sms,
                pattern=pattern,
                route=where["route"],
                n_hopping_imeis=len(imeis) if hopping else 0,
            ),
        )
        sketches.append(
            DenSketch(
                key=key,
                numbers=frozenset(sims),
                imeis=frozenset(imeis),
                segments=frozenset(segments),
                lat=where["lat"],
                lon=where["lon"],
                score=score,
            )
        )

    ids = assign_ids(
        day,
        sketches,
        latest_per_den(earlier),
        min_overlap=settings.match_min_overlap,
        max_distance_m=settings.match_max_distance_m,
    )
    rows = {}
    for key, den in described.items():
        den_id, first_seen, nights = ids[key]
        rows[key] = {
            **den,
            "den_id": den_id,
            "first_seen": first_seen,
            "last_seen": day,
            "nights_active": nights,
            "date": day,
        }
    return dict(sorted(rows.items(), key=lambda kv: kv[1]["den_id"]))


def priority(score: float, settings) -> str:
    return "high" if score >= settings.priority_high else "medium" if score >= settings.priority_medium else "low"


def weighted_position(lat, lon, weight) -> tuple[float, float, float]:
    """(lat, lon, radius_m) of sites weighted by calls: the weighted mean position and the weighted
    mean distance of the sites from it, at least MIN_RADIUS_M."""
    lat, lon, weight = (np.asarray(x, dtype=float) for x in (lat, lon, weight))
    w = weight / weight.sum()
    plat, plon = float((lat * w).sum()), float((lon * w).sum())
    spread = float((distance_m(plat, plon, lat, lon) * w).sum())
    return plat, plon, max(MIN_RADIUS_M, spread)


def active_hours(counts: dict[int, int]) -> str:
    """{hour: events} -> `09-12;14-18` (each range's end hour exclusive)."""
    if not counts:
        return ""
    floor = ACTIVE_HOUR_SHARE * max(counts.values())
    hours = sorted(h for h, n in counts.items() if n >= floor)
    ranges, start, prev = [], hours[0], hours[0]
    for h in hours[1:]:
        if h != prev + 1:
            ranges.append((start, prev + 1))
            start = h
        prev = h
    ranges.append((start, prev + 1))
    return ";".join(f"{a:02d}-{b:02d}" for a, b in ranges)


def route(facts: DenFacts) -> list[str]:
    """The site keys a moving den used, in order, or [] for a den that stays put: in each of its busy
    hours (`ACTIVE_HOUR_SHARE` of its busiest) the site holding `ROUTE_HOUR_SHARE` of the hour's events,
    when at least `ROUTE_MIN_SITES` different sites take turns. A box on a mast and its neighbour's
    (a single-sector carrier's overflow) never qualifies: one site holds every hour."""
    per_hour: dict[int, Counter] = defaultdict(Counter)
    for (hour, site), n in facts.site_hours.items():
        per_hour[hour][site] += n
    if not per_hour:
        return []
    busiest = max(sum(c.values()) for c in per_hour.values())
    held = []
    for hour in sorted(per_hour):
        counts = per_hour[hour]
        total = sum(counts.values())
        site, n = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        if total >= ACTIVE_HOUR_SHARE * busiest and n >= ROUTE_HOUR_SHARE * total:
            held.append(site)
    order = list(dict.fromkeys(held))
    return order if len(order) >= ROUTE_MIN_SITES else []


def place(facts: DenFacts, sites: list[tuple[float, float, str | None]]) -> dict:
    """Position, radius, nearest site's district, cells and site names of one den (`route`: the site
    labels in order of use when it moved, else [])."""
    located = facts.sites
    result = {
        "lat": None,
        "lon": None,
        "radius_m": None,
        "district": None,
        "site_names": [],
        "main_site": None,
        "route": [],
    }
    if located:
        lat, lon, radius = weighted_position([s[1] for s in located], [s[2] for s in located], [s[5] for s in located])
        result.update(lat=lat, lon=lon, radius_m=radius)
        if sites:
            d = distance_m(lat, lon, np.array([s[0] for s in sites]), np.array([s[1] for s in sites]))
            result["district"] = sites[int(np.argmin(d))][2]
        by_calls = sorted(located, key=lambda s: (-s[5], s[0]))
        result["site_names"] = list(dict.fromkeys(s[3] for s in by_calls if s[3]))
        result["main_site"] = by_calls[0][3]
        path = route(facts)
        if path:  # one lead for the whole route: every site of it inside the radius, listed in order of use
            where = {s[0]: s for s in by_calls}
            far = max(float(distance_m(lat, lon, where[k][1], where[k][2])) for k in path)
            result["radius_m"] = max(radius, far)
            labels = [where[k][3] or k for k in path]
            result["route"] = list(dict.fromkeys(labels))
            result["site_names"] = list(dict.fromkeys([*result["route"], *result["site_names"]]))
    result["cells"] = [c for c, _ in sorted(facts.cells.items(), key=lambda kv: (-kv[1], kv[0]))][:MAX_CELLS]
    return result


def merge_plan(dens: dict[str, DenFacts], settings) -> list[list[str]]:
    """Den keys grouped into places: two groups are one den when they sit within
    `merge_distance_m`, share `merge_min_overlap` of their active hours and of their main segments
    (overlap of the smaller set). Two boxes in one room dealing one list round-robin are one lead,
    however the graph split them; a box in the flat next door dialling another list, or a night shift
    at the same address, stays apart. Deterministic: keys in order, groups by their first key."""
    keys = list(dens)
    sketch = {}
    for key in keys:
        fact = dens[key]
        located = fact.sites
        position = (
            weighted_position([s[1] for s in located], [s[2] for s in located], [s[5] for s in located])[:2]
            if located
            else None
        )
        hours = active_hours(fact.hours)
        busy = {h for span in hours.split(";") if span for h in range(int(span[:2]), int(span[3:]))}
        sketch[key] = (position, busy, set(main_segments(fact.segments, fact.n_calls)))
    parent = {key: key for key in keys}

    def root(key: str) -> str:
        while parent[key] != key:
            key = parent[key]
        return key

    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            (pa, ha, sa), (pb, hb, sb) = sketch[a], sketch[b]
            if pa is None or pb is None or float(distance_m(*pa, *pb)) > settings.merge_distance_m:
                continue
            if _overlap(ha, hb) >= settings.merge_min_overlap and _overlap(sa, sb) >= settings.merge_min_overlap:
                ra, rb = root(a), root(b)
                parent[max(ra, rb, key=keys.index)] = min(ra, rb, key=keys.index)
    merged: dict[str, list[str]] = {}
    for key in keys:
        merged.setdefault(root(key), []).append(key)
    return list(merged.values())


def _overlap(a: set, b: set) -> float:
    return len(a & b) / min(len(a), len(b)) if a and b else 0.0


def main_segments(segments: dict[str, int], n_calls: int) -> list[str]:
    floor = max(20, SEGMENT_SHARE * n_calls)
    return sorted(s for s, n in segments.items() if n >= floor)


def den_score(member_scores: list[float], n_sims: int) -> float:
    """0.7 x best member score + 0.3 x mean member score (unflagged members count 0), plus up to
    0.1 for size (0.01 per SIM): a big den of moderately suspicious SIMs outranks a lone box SIM."""
    if not member_scores:
        return 0.0
    base = 0.7 * max(member_scores) + 0.3 * sum(member_scores) / len(member_scores)
    return round(min(1.0, base + min(0.1, 0.01 * n_sims)), 3)


def dialling_pattern(
    segment: str | None, range_lo: str | None, range_hi: str | None, pattern: str | None
) -> str | None:
    """'139-1234-0000…0411 in ascending order round-robin by 13 SIMs' from a sequential flag's
    columns (None when it has none): the range as its evidence writes it, then how it was dialled."""
    if not (segment and range_lo and range_hi and pattern):
        return None
    return f"{segment[:3]}-{segment[3:]}-{range_lo[-4:]}…{range_hi[-4:]} {pattern}"


def evidence(
    *,
    sims: dict[str, str],
    n_boxes: int,
    n_handsets: int,
    main_site: str | None,
    radius_m: float | None,
    hours: str,
    n_calls: int,
    n_callees: int,
    top_segment: str | None,
    n_victims: int,
    min_call_s: int,
    n_sms: int = 0,
    pattern: str | None = None,
    route: list[str] | None = None,
    n_hopping_imeis: int = 0,
) -> str:
    """One sentence for the field unit: who (SIMs by carrier, devices), where (the route, in order,
    for a den that moved), when, what, harm."""
    carriers = Counter(sims.values())
    by_carrier = ", ".join(f"{c} {n}" for c, n in sorted(carriers.items(), key=lambda kv: (-kv[1], kv[0])))
    text = f"{len(sims)} SIM{'s' if len(sims) != 1 else ''} ({by_carrier})"
    devices = []
    if n_hopping_imeis:
        devices.append(f"{n_hopping_imeis:,} IMEIs (a new IMEI on almost every call: a GOIP box changing its IMEI)")
    else:
        if n_boxes:
            devices.append(f"{n_boxes} GOIP device{'s' if n_boxes > 1 else ''}")
        if n_handsets:
            devices.append(f"{n_handsets} handset{'s' if n_handsets > 1 else ''}")
    if devices:
        text += " and " + " and ".join(devices)
    if route:
        text += f" moving through {len(route)} sites in turn: {' → '.join(route)} (±{radius_m:,.0f} m)"
    elif main_site:
        text += f" at {main_site} (±{radius_m:,.0f} m)"
    if hours:
        text += f", {hours}"
    sent = [f"{n:,} {what}" for n, what in ((n_calls - n_sms, "calls"), (n_sms, "SMS")) if n] or ["0 calls"]
    text += f", {' and '.join(sent)} to {n_callees:,} numbers"
    if pattern:
        text += f", dialling {pattern}"
    elif top_segment:
        text += f", most to {top_segment[:3]}-{top_segment[3:]}-xxxx"
    minutes = min_call_s / 60
    text += f"; {n_victims} resident{'s' if n_victims != 1 else ''} talked over {minutes:g} min"
    return text
