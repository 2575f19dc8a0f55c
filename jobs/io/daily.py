"""Which earlier days a night reads, and whether detect's daily aggregates of a day are current.

Engine-free: both engines' night loaders ask here, so they read the same days the same way.
Detect writes, for its night, four small aggregates (schemas.tables.DAILY) and last a marker naming
the CDR partition they summarise (`cdr_fingerprint`); a day re-ingested since has new file names,
so its aggregates no longer match and are read from raw CDRs instead.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

from jobs.config import Config
from jobs.io import layout
from schemas.tables import CDR, DAILY

SIM_AGE_DAYS = 7  # how far back a SIM's first appearance is looked for


def history_days(config: Config) -> int:
    """Earlier days a night needs: the congestion baseline and the SIM-age look-back."""
    return max(config.detectors.congestion.baseline_days, SIM_AGE_DAYS)


def earlier_days(config: Config, day: dt.date) -> list[dt.date]:
    """The look-back days before `day` that the lake has CDRs for, oldest first."""
    first = day - dt.timedelta(days=history_days(config))
    days = [first + dt.timedelta(days=k) for k in range((day - first).days)]
    return [d for d in days if layout.partition_path(config, CDR, d).is_dir()]


def cdr_fingerprint(config: Config, day: dt.date) -> str:
    """What lake/cdr/date=D holds, by its files' names and sizes: every write of the partition (a
    rerun of ingest) makes new file names, so aggregates of an older version no longer match."""
    root = layout.partition_path(config, CDR, day)
    files = sorted((p.relative_to(root).as_posix(), p.stat().st_size) for p in root.rglob("*.parquet"))
    return hashlib.sha256(json.dumps(files).encode()).hexdigest()


def has_daily(config: Config, day: dt.date) -> bool:
    """Whether detect's aggregates of `day` are in the lake and summarise its CDRs as they are now."""
    marker = layout.daily_marker_path(config, day)
    if not marker.is_file() or not all(layout.partition_path(config, t, day).is_dir() for t in DAILY):
        return False
    return json.loads(marker.read_text(encoding="utf-8")).get("cdr") == cdr_fingerprint(config, day)


def history_note(raw_days: list[dt.date]) -> str | None:
    """The run's note when some earlier days had to be read from raw CDRs."""
    if not raw_days:
        return None
    return (
        f"history: {len(raw_days)} earlier day(s) read from raw CDRs, no current daily aggregates "
        f"({', '.join(d.isoformat() for d in raw_days)}); rerun detect for them to store them"
    )
