"""A low-and-slow room's weights and columns, on both engines (`detectors.low_slow`, `detectors.local.low_slow`)."""

from __future__ import annotations

W_SIZE, W_STRANGERS, W_BIMODAL, W_OVERLAP, W_SILENCE = 0.20, 0.25, 0.20, 0.20, 0.15  # the score's parts
FULL_ROOM_SIMS = 8  # members that earn the whole size part
FULL_SHARED_CALLEES = 20  # residents called by 2+ members that earn the whole overlap part
PAIR = ["msisdn", "other_party"]
ENDINGS = ("answered", "hangups", "long", "middle")
SIM_COLUMNS = (
    "msisdn",
    "n_calls",
    "n_callees",
    "n_callbacks",
    *(f"n_{e}" for e in ENDINGS),
    "first_call",
    "last_call",
    "n_events",
    "home_events",
    "site_key",
    "site_label",
    "room_like",
)


def _duration(seconds: int) -> str:
    """'5 minutes' for 300, '90 s' for 90."""
    return f"{seconds // 60} minute{'s' if seconds != 60 else ''}" if seconds % 60 == 0 else f"{seconds} s"
