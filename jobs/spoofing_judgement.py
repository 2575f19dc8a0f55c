"""The engine-free half of the spoofing judgement (`jobs.spoofing` on Spark, `jobs.spoofing_local` on
Polars): which carriers' nights are incomplete, the protected numbers in force, the campaigns, the
counts written to spoofing.json and detect's note. Both engines judge the legs; this module names,
counts and words what they found, so the two cannot drift apart."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import networkx as nx

from detectors.rules.spoofing import TOO_MANY_UNMATCHED
from jobs.config import Config
from jobs.io import inventory, layout, summaries
from schemas.tables import CDR

LEG_ORDER = ("start_time", "carrier", "record_id")  # how spoofed legs are numbered and stored


@dataclass
class Judgement:
    """Tonight's spoofed legs (SPOOFED columns, small: a Spark DataFrame on the driver's session, or a
    Polars DataFrame on the `local` engine) and the counts."""

    legs: Any
    summary: dict


def incomplete_carriers(config: Config, day: dt.date) -> dict[str, str]:
    """Carrier -> why its delivery for `day` is missing, partial or suspect, from ingest's run summary
    (`partial_carriers`: the reasons by carrier). Without a summary nothing is known to be whole:
    every carrier is listed."""
    summary = summaries.read_summary(config, "ingest", day)
    if summary is None:
        return {c: f"no ingest summary for {day.isoformat()}" for c in sorted(config.carriers)}
    reasons: dict[str, list[str]] = {}
    for carrier in summary.get("missing_carriers", []):
        reasons.setdefault(carrier, []).append(f"no files for {day.isoformat()}")
    by_carrier = summary.get("partial_carriers")
    if by_carrier is None:  # a summary written before ingest kept its reasons by carrier
        by_carrier = {}
        for line in summary.get("partial_reasons", []):
            carrier, _, why = line.partition(": ")
            by_carrier.setdefault(carrier, []).append(why)
    for carrier, whys in by_carrier.items():
        for why in whys:
            if carrier in config.carriers and why not in reasons.get(carrier, []):
                reasons.setdefault(carrier, []).append(why)
    return {c: "; ".join(why) for c, why in sorted(reasons.items())}


def carriers_on(config: Config, day: dt.date) -> frozenset[str]:
    """The configured carriers whose CDR partition of `day` is in the lake."""
    return frozenset(c for c in config.carriers if layout.partition_path(config, CDR, day, c).is_dir())


def settings_with_protected(config: Config, warnings: list[str] | None = None):
    """`detectors.spoofing` with landing/protected_numbers.csv's entries after conf's; the file's
    warnings (rows that are no number pattern) are appended to `warnings`."""
    from jobs.config import ProtectedNumber

    settings = config.detectors.spoofing
    extra, problems = inventory.read_protected_numbers(layout.protected_path(config))
    if warnings is not None:
        warnings += problems
    if not extra:
        return settings
    return settings.model_copy(update={"protected": [*settings.protected, *(ProtectedNumber(**e) for e in extra)]})


def summary_of(
    day: dt.date,
    settings,
    counts: list,
    guarded: dict[tuple[str, str], str],
    incomplete: dict[str, str],
    rows: list[dict],
    ids: list[str],
) -> dict:
    """spoofing.json: `counts` rows (carrier, owners, verdict, reason, is_protected, n) of the judged
    legs, the pairs `guard_pairs` dropped, the incomplete carriers, the spoofed legs and their campaigns."""
    not_judged: dict[str, int] = {}
    for r in counts:
        if r.verdict == "not_judged":
            not_judged[r.reason] = not_judged.get(r.reason, 0) + r.n
        elif r.verdict == "spoofed" and not r.is_protected and (r.carrier, r.owners) in guarded:
            not_judged[TOO_MANY_UNMATCHED] = not_judged.get(TOO_MANY_UNMATCHED, 0) + r.n
    matched = sum(r.n for r in counts if r.verdict == "matched")
    return {
        "date": day.isoformat(),
        "tolerance_s": settings.tolerance_s,
        "incoming_legs": sum(r.n for r in counts),
        "judged": matched + len(rows),
        "matched": matched,
        "spoofed": len(rows),
        "not_judged": dict(sorted(not_judged.items())),
        "unjudged_carriers": {**incomplete, **_by_owner(guarded)},
        "campaigns": len(set(ids)),
    }


def _by_owner(guarded: dict[tuple[str, str], str]) -> dict[str, str]:
    """The guarded pairs as carrier -> why, one line per presented numbers' carrier."""
    lines: dict[str, list[str]] = {}
    for (_carrier, owners), why in sorted(guarded.items()):
        lines.setdefault(owners, []).append(why)
    return {owners: "; ".join(why) for owners, why in lines.items()}


def campaign_ids(legs: list[dict], gap_minutes: int, day: dt.date) -> list[str]:
    """`S<date>-<nn>` per leg (legs in time order): one campaign is the legs linked by a subscriber's
    number they show, or by receivers in one number segment (7 digits after +86) called within
    `gap_minutes` of each other; numbered by first call. A protected number links nothing by itself:
    every gang shows 110."""
    graph = nx.Graph()
    graph.add_nodes_from(range(len(legs)))
    last: dict[tuple, tuple[int, dt.datetime]] = {}
    for i, leg in enumerate(legs):
        keys = [("segment", leg["receiver"][3:10])] + ([] if leg["protected"] else [("presented", leg["presented"])])
        for key in keys:
            if key in last:
                j, when = last[key]
                if key[0] == "presented" or (leg["start_time"] - when).total_seconds() <= gap_minutes * 60:
                    graph.add_edge(i, j)
            last[key] = (i, leg["start_time"])
    groups = sorted((sorted(c) for c in nx.connected_components(graph)), key=lambda c: c[0])
    ids = [""] * len(legs)
    for k, members in enumerate(groups, start=1):
        for i in members:
            ids[i] = f"S{day:%Y%m%d}-{k:02d}"
    return ids


def note(summary: dict) -> str | None:
    """One line for detect's output when some legs could not be judged."""
    if not summary["not_judged"]:
        return None
    parts = ", ".join(f"{n:,} {why}" for why, n in summary["not_judged"].items())
    unjudged = "; ".join(f"{c}: {why}" for c, why in summary["unjudged_carriers"].items())
    return f"{sum(summary['not_judged'].values()):,} incoming leg(s) not judged ({parts})" + (
        f"; carriers: {unjudged}" if unjudged else ""
    )
