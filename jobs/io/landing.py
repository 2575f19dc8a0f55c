"""A carrier's delivery in the landing zone: `landing/<carrier>/<D>/` and the files in it ingest reads.

Ingest (what it reads) and the Airflow sensor (whether the night has landed) ask here, so the two
never disagree about a file. Plain Python, cheap to import: the scheduler imports it.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from dataclasses import dataclass
from pathlib import Path

from jobs.config import Config
from jobs.io.layout import delivery_folder
from jobs.io.manifest import MANIFEST
from schemas.raw import RAW_LAYOUTS


@dataclass(frozen=True)
class DeliveryScan:
    """What `landing/<carrier>/<D>/` holds: the files ingest reads (sorted), the names of other
    files (not named as the format expects; the manifest is not counted) and of folders inside."""

    folder: Path
    files: list[Path]
    ignored: list[str]
    folders: list[str]


def file_globs(config: Config, carrier: str) -> tuple[str, ...]:
    """The names the carrier's format delivers its CDR files under (schemas.raw)."""
    return RAW_LAYOUTS[config.carriers[carrier].format].file_globs


def ingestible_name(config: Config, carrier: str, name: str) -> bool:
    """Whether ingest reads a file so named: as the carrier's format expects; hidden and
    `_`-prefixed files (an upload in progress, the manifest) do not count."""
    return not name.startswith((".", "_")) and any(fnmatch.fnmatch(name, g) for g in file_globs(config, carrier))


def ingestible(config: Config, carrier: str, path: Path) -> bool:
    """Whether ingest would read `path`: a file, named as `ingestible_name` wants."""
    return path.is_file() and ingestible_name(config, carrier, path.name)


def scan_delivery(config: Config, carrier: str, day: dt.date) -> DeliveryScan:
    """The carrier's delivery of `day` as ingest sees it (empty lists when the folder is missing)."""
    folder = delivery_folder(config, carrier, day)
    entries = sorted(folder.iterdir()) if folder.is_dir() else []
    found = [p for p in entries if p.is_file()]
    files = [p for p in found if ingestible_name(config, carrier, p.name)]
    ignored = [p.name for p in found if p not in files and p.name != MANIFEST]
    return DeliveryScan(folder, files, ignored, [p.name for p in entries if p.is_dir()])


def delivery_files(config: Config, carrier: str, day: dt.date) -> list[Path]:
    """The files of the carrier's delivery of `day` that ingest reads, sorted."""
    return scan_delivery(config, carrier, day).files
