"""A delivery's `_MANIFEST.csv` (docs/contracts.md): `file,rows,sha256`, one line per CDR file.

Its presence marks `landing/<carrier>/<D>/` complete. `rows` is the number of records of the file:
its physical lines (split on '\\n', after gunzip for a gzip file) minus the header line of a format
that has one; `sha256` is the hex digest of the file's bytes as delivered. Plain Python, no Spark:
the simulator writes manifests, the Airflow sensor and ingest read them.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from jobs.errors import CdrwatchError
from jobs.io.files import write_atomic

MANIFEST = "_MANIFEST.csv"
COLUMNS = ("file", "rows", "sha256")


@dataclass(frozen=True)
class Entry:
    file: str  # name inside the delivery folder
    rows: int
    sha256: str


def manifest_path(folder: Path) -> Path:
    return Path(folder) / MANIFEST


def read_manifest(folder: Path) -> dict[str, Entry] | None:
    """The folder's manifest by file name, or None when there is none. A malformed manifest is a
    CdrwatchError naming the file and line."""
    path = manifest_path(folder)
    if not path.is_file():
        return None
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CdrwatchError(f"{path}: not UTF-8 text") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(c.strip() for c in rows[0]) != COLUMNS:
        raise CdrwatchError(f"{path}:1: expected the header {','.join(COLUMNS)}")
    entries: dict[str, Entry] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(COLUMNS):
            raise CdrwatchError(f"{path}:{line}: expected {len(COLUMNS)} fields ({','.join(COLUMNS)}), got {len(row)}")
        name, rows_text, digest = (c.strip() for c in row)
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise CdrwatchError(f"{path}:{line}: {name!r} is not a file name of this folder")
        if not rows_text.isdigit():
            raise CdrwatchError(f"{path}:{line}: rows {rows_text!r} is not a whole number")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
            raise CdrwatchError(f"{path}:{line}: sha256 {digest!r} is not 64 hex digits")
        if name in entries:
            raise CdrwatchError(f"{path}:{line}: {name!r} is listed twice")
        entries[name] = Entry(name, int(rows_text), digest.lower())
    return entries


def write_manifest(folder: Path, entries: list[Entry]) -> Path:
    """Write `folder/_MANIFEST.csv` atomically (a reader never sees half of it), sorted by file name."""
    path = manifest_path(folder)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for entry in sorted(entries, key=lambda e: e.file):
        writer.writerow((entry.file, entry.rows, entry.sha256))
    return write_atomic(path, buffer.getvalue())


def entry_for(path: Path, has_header: bool) -> Entry:
    """The manifest line a carrier would write for `path` (used by the simulator and tests)."""
    from jobs.io.landing_files import inspect_file

    facts = inspect_file(path)
    return Entry(path.name, max(0, facts.lines - (1 if has_header and facts.lines else 0)), facts.sha256)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
