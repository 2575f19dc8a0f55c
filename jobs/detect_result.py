"""What the detect step wrote, whichever engine ran it (`jobs.detect` on Spark, `jobs.detect_local`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path


@dataclass
class DetectResult:
    """What the detect step wrote: flags in all, (detector, entity_type, flags, mean score) rows, the
    detectors' notes (why one could not look properly) and the inputs' warnings."""

    day: dt.date
    flags: int
    path: Path
    by_detector: list[tuple[str, str, int, float]]
    notes: list[str]
    warnings: list[str]
