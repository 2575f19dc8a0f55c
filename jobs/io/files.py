"""Whole small files written atomically: a reader (or a crash) sees the old file or the new one, never half.

Every file a step writes outside Spark (run summaries, GX results, the report page, the manifest,
swap journals, the spark-submit bundle) goes through `write_atomic`, so durability is decided once.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any


def write_atomic(path: Path, data: bytes | str, *, mode: int | None = None) -> Path:
    """Write `data` (text as UTF-8) as `path`: a new temporary file beside it (created exclusively,
    with permission bits `mode` if given, e.g. 0o600 for a private file; else the umask's default),
    fsynced, then renamed over `path`. The parent folder is made if missing; on any error the
    temporary file is removed and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    content = data.encode("utf-8") if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sync_dir(path.parent)
    return path


def write_json(path: Path, document: dict[str, Any]) -> Path:
    """A small JSON document (UTF-8, indented, keys in the given order) written with `write_atomic`."""
    return write_atomic(path, json.dumps(document, ensure_ascii=False, indent=2, sort_keys=False) + "\n")


def sync_dir(folder: Path) -> None:
    """fsync a folder, so that a rename in it reaches the disk (best effort: some filesystems refuse)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
