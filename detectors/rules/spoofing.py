"""Caller-ID spoofing's fixed patterns, reasons and guard, on both engines (`detectors.spoofing`, whose
docstring tells the whole story, and `detectors.local.spoofing`): what a local mobile number looks
like, why a leg was not judged, the judged legs' columns, and the guard against lost records."""

from __future__ import annotations

MOBILE = r"^\+861[3-9][0-9]{9}$"
NATIONAL_MOBILE = r"^1[3-9][0-9]{9}$"  # a mobile number as a quarantined line may write it

# why a leg was not judged (the keys of the judgement's `not_judged` counts)
CARRIER_NOT_COMPLETE = "the presented number's carrier delivered a missing, partial or suspect night"
NEAR_MIDNIGHT = "near midnight, and the presented number's carrier's neighbouring day is not in the lake"
QUARANTINED = "a quarantined line of the presented number's carrier may be the outgoing leg"
TOO_MANY_UNMATCHED = "too many of the carrier's legs unmatched (outgoing records missing, or clocks apart)"
WHITELISTED = "the presented number is whitelisted"

JUDGED_COLUMNS = (  # what `judge_incoming` returns, in this order, on either engine
    "record_id",
    "carrier",
    "receiver",
    "presented",
    "service",
    "start_time",
    "duration_s",
    "cell_id",
    "district",
    "protected",
    "owners",
    "owner_unknown",
    "verdict",
    "reason",
)


def guard_pairs(counts: list, settings) -> dict[tuple[str, str], str]:
    """(receiver's carrier, presented number's carriers) whose unmatched share among their judged legs
    is implausible for fraud: the second's outgoing records are incomplete though ingest did not see
    it, or the two switches' clocks are further apart than `tolerance_s`. `counts` rows: carrier,
    owners (the carriers joined by '+'), verdict, n."""
    judged: dict[tuple[str, str], int] = {}
    spoofed: dict[tuple[str, str], int] = {}
    for row in counts:
        if not row.owners or row.verdict == "not_judged":
            continue
        pair = (row.carrier, row.owners)
        judged[pair] = judged.get(pair, 0) + row.n
        if row.verdict == "spoofed":
            spoofed[pair] = spoofed.get(pair, 0) + row.n
    return {
        pair: f"{spoofed[pair]:,} of {judged[pair]:,} legs rung on {pair[0]} showing its numbers unmatched "
        f"(its outgoing records missing, or the clocks over {settings.tolerance_s} s apart)"
        for pair in sorted(spoofed)
        if spoofed[pair] >= settings.guard_min_legs and spoofed[pair] > settings.max_unmatched_share * judged[pair]
    }
