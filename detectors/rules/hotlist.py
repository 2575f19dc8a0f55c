"""The hotlist's scores, on both engines (`detectors.hotlist`, `detectors.local.hotlist`)."""

from __future__ import annotations

SCORES = {"device": 0.95, "number": 0.90, "near_site": 0.70}
EARTH_RADIUS_M = 6_371_000.0
