"""Dirty data as carriers really deliver it: broken lines and repeated records.

About 0.1 % of the lines of every file (at least two) are replaced by a corrupt version of
several kinds, and about 0.05 % of the good lines are delivered twice. Undecodable bytes are
written as a placeholder character in the text and swapped for raw invalid bytes after the
whole file is encoded (`poison`), so encoding stays one vectorised call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import polars as pl

CORRUPT_SHARE = 0.001
MIN_CORRUPT = 2
DUPLICATE_SHARE = 0.0005
PLACEHOLDER = "\x01"  # never in a good line; encodes to b"\x01" in UTF-8 and GBK alike
INVALID_BYTES = b"\xff"  # invalid as UTF-8 and as GBK (no lead byte is 0xFF)

CORRUPT_KINDS = {
    "cn_csv": ("truncated", "bad_encoding", "bad_timestamp", "bad_duration", "empty_msisdn"),
    "pipe_gbk": ("truncated", "bad_encoding", "bad_timestamp", "bad_duration", "empty_msisdn"),
    "jsonl": (
        "truncated",
        "broken_json",
        "missing_field",
        "bad_encoding",
        "bad_timestamp",
        "bad_duration",
        "empty_msisdn",
    ),
}
BAD_DURATIONS = ("12s", "abc", "--", "N/A")


@dataclass
class Dirtied:
    lines: pl.Series  # the file's data lines in delivery order
    corrupt: list[tuple[int, str]]  # (0-based index into `lines`, kind)
    duplicated: int


def dirty(lines: pl.Series, fmt: str, rng: np.random.Generator) -> Dirtied:
    """Corrupt some lines in place, then repeat a few good ones a little later in the file."""
    n = lines.len()
    k = min(n, max(MIN_CORRUPT, int(rng.binomial(n, CORRUPT_SHARE))))
    bad = np.sort(rng.choice(n, k, replace=False))
    kinds = CORRUPT_KINDS[fmt]
    bad_kinds = [kinds[i] for i in (rng.integers(0, len(kinds)) + np.arange(k)) % len(kinds)]
    if k:
        old = lines.gather(bad).to_list()
        lines = lines.scatter(bad, [corrupt_line(fmt, line, kind, rng) for line, kind in zip(old, bad_kinds)])

    good = np.setdiff1d(np.arange(n), bad)
    d = min(good.size, max(1, int(rng.binomial(n, DUPLICATE_SHARE)))) if good.size else 0
    again = np.sort(rng.choice(good, d, replace=False))
    after = np.minimum(again + rng.integers(1, 30, d), n - 1)  # re-sent a little later
    source = np.r_[np.arange(n), again]
    order = np.argsort(np.r_[2 * np.arange(n), 2 * after + 1], kind="stable")
    where = np.empty(source.size, dtype=np.int64)
    where[order] = np.arange(source.size)
    return Dirtied(lines.gather(source[order]), [(int(where[i]), kind) for i, kind in zip(bad, bad_kinds)], d)


def poison(data: bytes) -> bytes:
    """Swap the placeholders for bytes no decoder accepts."""
    return data.replace(PLACEHOLDER.encode(), INVALID_BYTES)


def corrupt_line(fmt: str, line: str, kind: str, rng: np.random.Generator) -> str:
    if fmt == "jsonl":
        return _corrupt_json(line, kind, rng)
    sep = "," if fmt == "cn_csv" else "|"
    f = line.split(sep)
    # field positions: (served number, start, duration, a text field for the bad bytes)
    msisdn, start, duration, text = (1, 4, 5, 3) if fmt == "cn_csv" else (1, 7, 8, 10)
    if kind == "truncated":
        return sep.join(f[: int(rng.integers(4, len(f) - 1))])
    if kind == "bad_encoding":
        f[text] = f[text][:1] + PLACEHOLDER + f[text][1:]
    elif kind == "bad_timestamp":
        f[start] = _bad_time(f[start], rng)
    elif kind == "bad_duration":
        f[duration] = BAD_DURATIONS[rng.integers(len(BAD_DURATIONS))]
    elif kind == "empty_msisdn":
        f[msisdn] = ""
    return sep.join(f)


def _bad_time(value: str, rng: np.random.Generator) -> str:
    """A start that no strict parser accepts: hour 25, month 13, all zeros, or nothing."""
    compact = len(value) == 14  # YYYYMMDDHHMMSS vs YYYY-MM-DD HH:MM:SS
    hour, month = (8, 4) if compact else (11, 5)
    choice = rng.integers(4)
    if choice == 0:
        return value[:hour] + "25" + value[hour + 2 :]
    if choice == 1:
        return value[:month] + "13" + value[month + 2 :]
    if choice == 2:
        return "00000000000000" if compact else "0000-00-00 00:00:00"
    return ""


def _corrupt_json(line: str, kind: str, rng: np.random.Generator) -> str:
    if kind == "truncated":
        return line[: int(rng.integers(len(line) // 3, len(line) - 2))]
    if kind == "broken_json":
        return line[:-1] + ",}" if rng.random() < 0.5 else line.replace('"', "'")
    if kind == "bad_encoding":
        at = line.index('"svc": "') + 8
        return line[:at] + PLACEHOLDER + line[at:]
    record = json.loads(line)
    if kind == "missing_field":
        del record[list(record)[int(rng.integers(len(record)))]]
    elif kind == "bad_timestamp":
        record["ts"] = None if rng.random() < 0.5 else "2026-11-20 12:00:00"
    elif kind == "bad_duration":
        record["dur"] = BAD_DURATIONS[rng.integers(len(BAD_DURATIONS))]
    elif kind == "empty_msisdn":
        record["subscriber"] = ""
    return json.dumps(record)
