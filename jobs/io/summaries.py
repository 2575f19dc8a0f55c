"""Run summaries: what a step did for a date, as `lake/_runs/<job>/date=D/summary.json`.

Ingest writes its summary there (with the GX results beside it); the validate task, export's
PARTIAL.txt, the volume check and the report read it back instead of recounting the lake.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from jobs.config import Config
from jobs.errors import CdrwatchError
from jobs.io.files import write_json
from jobs.io.layout import run_summary_path, spoofing_path


def write_summary(config: Config, job: str, day: dt.date, summary: dict[str, Any]) -> Path:
    """Replace the run summary of `job` for `day`, atomically."""
    return write_json(run_summary_path(config, job, day), summary)


def read_summary(config: Config, job: str, day: dt.date) -> dict[str, Any] | None:
    """The run summary of `job` for `day`, None when the job has not run for it; one that cannot
    be read is a CdrwatchError naming the file and the rerun that fixes it."""
    return _read_run_json(run_summary_path(config, job, day), f"{job} summary", f"cdrwatch {job} --date {day}")


def _read_run_json(path: Path, what: str, rerun: str) -> dict[str, Any] | None:
    """A run file, None when absent; unreadable: an error naming the file and the rerun that fixes it."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CdrwatchError(f"{path}: unreadable {what} ({error}); rerun {rerun}") from None


def read_spoofing(config: Config, day: dt.date) -> dict[str, Any] | None:
    """lake/_runs/detect/date=D/spoofing.json, None when detect wrote none for D (a lake from before
    the spoofing detector); one that cannot be read is an error naming the file and the rerun."""
    return _read_run_json(spoofing_path(config, day), "spoofing summary", f"cdrwatch detect --date {day}")
