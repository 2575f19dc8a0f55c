"""Stable den ids: tonight's dens matched with the dens of earlier nights.

A den keeps its id when it shares devices (IMEIs), SIMs or dialled number segments with an earlier
den, or sits within `match_max_distance_m` of it. A GOIP box that moves keeps its IMEI; a den that
swaps every SIM stays at its place (and often keeps its devices or its number list). Each pair gets

    match = 3 x IMEI overlap + 2 x SIM overlap + 1 x segment overlap + closeness

(overlap = shared / the smaller set; closeness = 1 - distance / match_max_distance_m, 0 beyond).
A pair is a candidate when some overlap reaches `match_min_overlap` or the dens are within the
distance; candidates are taken greedily, best first, one earlier den per den at most, so a den
that moves next to another keeps its own id (its devices outweigh the neighbour's place). Unmatched
dens get `D<yyyymmdd>-NN`, numbered by score (highest first), then position: deterministic.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from detectors.rules.sites import distance_m


@dataclass
class DenSketch:
    """What a den is recognised by. `den_id` and history are set for earlier dens."""

    key: str
    numbers: frozenset[str]
    imeis: frozenset[str]
    segments: frozenset[str]
    lat: float | None
    lon: float | None
    score: float = 0.0
    den_id: str | None = None
    first_seen: dt.date | None = None
    nights_active: int = 0
    last_seen: dt.date | None = None
    extra: dict = field(default_factory=dict)


def _overlap(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / min(len(a), len(b)) if a and b else 0.0


def match_score(today: DenSketch, earlier: DenSketch, min_overlap: float, max_distance_m: float) -> float | None:
    """The pair's match value, or None when nothing ties them."""
    imei, sims, segs = (
        _overlap(today.imeis, earlier.imeis),
        _overlap(today.numbers, earlier.numbers),
        _overlap(today.segments, earlier.segments),
    )
    close = 0.0
    near = False
    if None not in (today.lat, today.lon, earlier.lat, earlier.lon):
        d = float(distance_m(today.lat, today.lon, earlier.lat, earlier.lon))
        near = d <= max_distance_m
        close = max(0.0, 1.0 - d / max_distance_m) if max_distance_m > 0 else float(d == 0)
    if max(imei, sims, segs) < min_overlap and not near:
        return None
    return 3 * imei + 2 * sims + segs + close


def assign_ids(
    day: dt.date, today: Sequence[DenSketch], earlier: Sequence[DenSketch], *, min_overlap: float, max_distance_m: float
) -> dict[str, tuple[str, dt.date, int]]:
    """key of each of tonight's dens -> (den_id, first_seen, nights_active). `earlier` holds one
    sketch per earlier den id (its latest night), dated before `day`."""
    candidates = []
    for t in today:
        for e in earlier:
            value = match_score(t, e, min_overlap, max_distance_m)
            if value is not None:
                candidates.append((-value, t.key, e.den_id, e))
    candidates.sort(key=lambda c: (c[0], c[1], c[2]))
    result: dict[str, tuple[str, dt.date, int]] = {}
    taken: set[str] = set()
    for _, key, den_id, e in candidates:
        if key in result or den_id in taken:
            continue
        result[key] = (den_id, e.first_seen or day, e.nights_active + 1)
        taken.add(den_id)
    fresh = sorted(
        (t for t in today if t.key not in result),
        key=lambda t: (-t.score, t.lat if t.lat is not None else 0.0, t.lon if t.lon is not None else 0.0, t.key),
    )
    for i, t in enumerate(fresh, start=1):
        result[t.key] = (f"D{day:%Y%m%d}-{i:02d}", day, 1)
    return result


def latest_per_den(rows: Sequence[dict]) -> list[DenSketch]:
    """Earlier nights' den rows (lake/dens) -> one sketch per den id, from its latest night."""
    latest: dict[str, dict] = {}
    for row in rows:
        if row["den_id"] not in latest or row["date"] > latest[row["den_id"]]["date"]:
            latest[row["den_id"]] = row
    return [
        DenSketch(
            key=r["den_id"],
            numbers=frozenset(r["numbers"] or ()),
            imeis=frozenset(r["imeis"] or ()),
            segments=frozenset(r.get("segments") or ()),
            lat=r["lat"],
            lon=r["lon"],
            score=r["score"],
            den_id=r["den_id"],
            first_seen=r["first_seen"],
            nights_active=r["nights_active"],
            last_seen=r["last_seen"],
        )
        for _, r in sorted(latest.items())
    ]
