"""What the field already found, applied to tonight's dens (pure: den rows in, den rows out).

* **History**: every den carries its latest visit (`last_visit`, `last_outcome`, from lake/feedback up
  to tonight) and the raided/confirmed dens whose hotlisted numbers, devices or site it uses
  (`related_to`, from the `hotlist` detector's flags, set by `core.describe_dens`).
* **Seen again**: a den related to a raided or confirmed den (or itself raided or confirmed before
  tonight, and back) is priority high, its evidence starting "seen again after the raid of …" (a
  den the field confirmed and that still operates: "still active after the field confirmed it on …").
* **Suppression**: a den whose latest outcome was `false_lead` or `legitimate` within
  `feedback.suppress_nights` keeps its group out of the leads while its behaviour is unchanged: a
  den tonight is that group when it has the cleared den's id or at least `suppress_min_overlap` of
  its numbers or devices were the cleared den's. It stays a lead when a detector fires on it that
  did not fire on the cleared den (new evidence of a different kind, e.g. a sequential sweep where
  there was only a GOIP box) and says so; `congestion` does not count as different, it measures
  the same calls at the cell that the officers already judged, and `hotlist` cannot name a cleared
  den. A suppressed den keeps its row in lake/dens with the reason (`suppressed`); export lists it
  for analysts, never silently drops it.
"""

from __future__ import annotations

import datetime as dt

from jobs.feedback.store import Cleared
from schemas.tables import FOUND_OUTCOMES

NOT_NEW_EVIDENCE = frozenset({"congestion", "hotlist"})


def with_field_history(
    rows: list[dict], visits: dict[str, dict], cleared: list[Cleared], day: dt.date, *, min_overlap: float
) -> list[dict]:
    """`rows` (DEN rows of tonight) with `last_visit`, `last_outcome`, priority and evidence of dens
    seen again after a raid, and `suppressed` set; `visits`: den_id -> latest visit up to `day`."""
    out = []
    for row in rows:
        row = dict(row)
        visit = visits.get(row["den_id"])
        row["last_visit"] = visit["visited_on"] if visit else None
        row["last_outcome"] = visit["outcome"] if visit else None
        candidates = sorted({*(row["related_to"] or ()), row["den_id"]})
        found = [
            (visits[d]["visited_on"], d, visits[d]["outcome"])
            for d in candidates
            if d in visits and visits[d]["outcome"] in FOUND_OUTCOMES and visits[d]["visited_on"] < day
        ]
        if found:
            when, den_id, outcome = max(found)
            if outcome == "raided":
                said = f"seen again after the raid of {den_id} on {when.isoformat()}"
            elif den_id == row["den_id"]:
                said = f"still active after the field confirmed it on {when.isoformat()}"
            else:
                said = f"seen again after {den_id} was confirmed by the field on {when.isoformat()}"
            row["priority"] = "high"
            row["evidence"] = f"{said}: {row['evidence']}"
            if den_id != row["den_id"]:  # its own visit is in last_visit/last_outcome already
                row["related_to"] = sorted({*(row["related_to"] or ()), den_id})
        row["suppressed"], note = _suppression(row, cleared, min_overlap)
        if note:
            row["evidence"] = f"{row['evidence']}; {note}"
        out.append(row)
    return out


def _suppression(row: dict, cleared: list[Cleared], min_overlap: float) -> tuple[str | None, str | None]:
    """(why the den is not a lead, or None; a note for its evidence when new evidence keeps it one)."""
    numbers, imeis = set(row["numbers"] or ()), set(row["imeis"] or ())
    signals = set(row["signals"] or ())
    for c in cleared:
        same = (
            c.den_id == row["den_id"]
            or _share(numbers, c.numbers) >= min_overlap
            or _share(imeis, c.imeis) >= min_overlap
        )
        if not same:
            continue
        new = sorted(signals - c.signals - NOT_NEW_EVIDENCE)
        if new:
            return None, (
                f"{c.den_id} was marked {c.outcome} on {c.visited_on.isoformat()}, but tonight shows new "
                f"evidence: {', '.join(new)}"
            )
        return (
            f"{c.outcome} on {c.visited_on.isoformat()} ({c.den_id}); behaviour unchanged "
            f"({', '.join(sorted(signals)) or 'no signals'})"
        ), None
    return None, None


def _share(tonight: set[str], cleared: frozenset[str]) -> float:
    """Share of tonight's numbers (devices) that were the cleared den's."""
    return len(tonight & cleared) / len(tonight) if tonight else 0.0
