"""A date's lock and the repair of what a killed run of that date left behind.

Every CLI step holds the date's lock (`date_lock`), so two runs never write or repair the same date
at once; whoever takes it first rolls the date's interrupted swaps forward (lake and outbox) and
clears its staging folders (`repair`). Engine-free: the Spark and Polars adapters stage their
writes under `layout.staging_root` with `staging_folder` and drop them with `drop_staging`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from jobs.config import Config
from jobs.io import locks
from jobs.io.layout import OUTBOX_JOURNAL, STAGING, journal_dir, lake_root, lock_path, outbox_root, staging_root
from jobs.io.swap import drop_empty, recover_swaps

LEGACY_STAGING_AGE_S = 3600


@contextmanager
def date_lock(config: Config, day: dt.date, step: str, report: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold `day`'s lock while `step` runs: another process running that date makes this raise
    `locks.LockHeld` at once, naming it. Whoever takes the lock first (not a re-entry from the
    same process) repairs what a killed run of the date left (`repair`), telling `report`."""
    with locks.hold(lock_path(config, day), f"date {day.isoformat()}", step) as first:
        if first:
            for line in repair(config, day):
                if report is not None:
                    report(line)
        yield


def repair(config: Config, day: dt.date) -> list[str]:
    """Finish what a killed run of `day` left behind: roll its interrupted swaps (lake and outbox)
    forward, then delete its staging folders. Only safe with the date's lock held. Returns one
    line per swap repaired."""
    messages = recover_swaps(journal_dir(config, day))
    outbox = outbox_root(config)
    outbox_day = os.path.abspath(outbox / day.isoformat())
    messages += recover_swaps(
        outbox / OUTBOX_JOURNAL, belongs=lambda doc: all(p["target"] == outbox_day for p in doc["pairs"])
    )
    staging = staging_root(config, day)
    if staging.is_dir():
        for child in staging.iterdir():
            shutil.rmtree(child, ignore_errors=True)
    drop_empty(staging, staging.parent, journal_dir(config, day))
    if outbox.is_dir():  # export's own staging of outbox/D (jobs.export.write_outbox_day), killed before its swap
        for leftover in outbox.glob(f".{day.isoformat()}.*"):
            if leftover.suffix in (".new", ".old") and leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
    _drop_legacy_staging(lake_root(config) / STAGING)
    return messages


def staging_folder(config: Config, day: dt.date) -> Path:
    """A new, empty folder for one write of `day` under `lake/_staging/date=D/`."""
    root = staging_root(config, day) / uuid.uuid4().hex
    makedirs(root)
    return root


def makedirs(path: Path) -> None:
    """mkdir -p that survives another run removing an empty parent (`lake/_staging`) meanwhile."""
    for attempt in range(5):
        try:
            path.mkdir(parents=True, exist_ok=True)
            return
        except FileNotFoundError:
            if attempt == 4:
                raise


def drop_staging(config: Config, day: dt.date, root: Path) -> None:
    """Delete a finished run's staging folder, unless a journal left by a swap that could not be
    undone still needs what is in it (then the next run's `repair` does)."""
    journals = journal_dir(config, day)
    prefix = os.path.abspath(root) + os.sep
    needed = journals.is_dir() and any(
        p["new"].startswith(prefix) or p["aside"].startswith(prefix)
        for j in journals.glob("*.json")
        for p in json.loads(j.read_text(encoding="utf-8"))["pairs"]
    )
    if not needed:
        shutil.rmtree(root, ignore_errors=True)
    drop_empty(root.parent, root.parent.parent, journals)


def _drop_legacy_staging(staging: Path) -> None:
    """Staging folders of versions before per-date staging (`lake/_staging/<uuid>`), once stale."""
    if not staging.is_dir():
        return
    for child in staging.iterdir():
        try:
            stale = not child.name.startswith("date=") and time.time() - child.stat().st_mtime > LEGACY_STAGING_AGE_S
        except FileNotFoundError:
            continue
        if stale:
            shutil.rmtree(child, ignore_errors=True)
