"""Sequential dialling's weights and patterns, on both engines (`detectors.sequential`, `detectors.local.sequential`)."""

from __future__ import annotations

MOBILE_CALLEE = r"^\+861[0-9]{10}$"  # +86 and an 11-digit mobile number starting with 1
W_COVERAGE, W_ORDER, W_SHARE, W_VOLUME = 0.3, 0.2, 0.3, 0.2  # the score's parts (module docstring)
FULL_VOLUME_CALLS = 100  # swept calls in one window that earn the whole volume part
MINUTES_PER_DAY = 24 * 60

RANGE = ["site", "segment", "window_start", "range_id"]
