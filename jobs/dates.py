"""Ranges of nights, as the commands that take `--from D1 --to D2` read them."""

from __future__ import annotations

import datetime as dt

from jobs.errors import CdrwatchError


def nights(first: dt.date, last: dt.date, command: str = "nightly") -> list[dt.date]:
    """Every date from `first` to `last`; `--to` before `--from` is an error of `command`."""
    if last < first:
        raise CdrwatchError(f"{command}: --to {last} is before --from {first}")
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
