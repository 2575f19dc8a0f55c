"""Exclusive locks held for the length of a run, so two runs never write the same date at once.

`fcntl.flock` on a lock file: the kernel releases it when the holder's process ends, however it
ends (kill -9 included), so a crashed run never leaves a stale lock. The holder writes who it is
into the file, and a refused run reads that back to say whom it waits for. Re-entrant within one
process (nightly holds a date, then each step it calls takes the same lock again).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.errors import CdrwatchError


class LockHeld(CdrwatchError):
    """Another process holds the lock; the message names it (pid, host, step, since)."""


@dataclass
class _Held:
    fd: int
    depth: int
    info: dict[str, Any]


_held: dict[str, _Held] = {}
_guard = threading.RLock()


@contextmanager
def hold(path: Path, what: str, step: str) -> Iterator[bool]:
    """Hold the lock file `path` for `what` (e.g. "date 2026-11-20") while running `step`; raise
    LockHeld at once if another process has it. Yields True when this call took the lock, False
    when this process already held it (then `step` is added to the holder's description)."""
    key = os.path.abspath(path)
    with _guard:
        held = _held.get(key)
        if held is None:
            held = _Held(_acquire(Path(key), what, step), 0, {})
            held.info = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "step": step,
                "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            }
            _held[key] = held
        outer = dict(held.info)
        if held.depth:
            held.info["step"] = f"{outer['step']} > {step}"
        try:
            _write_info(held.fd, held.info)
        except BaseException:
            held.info = outer
            if not held.depth:
                del _held[key]
                _release(held.fd)
            raise
        held.depth += 1
    try:
        yield held.depth == 1
    finally:
        with _guard:
            held.depth -= 1
            held.info = outer
            if held.depth:
                _write_info(held.fd, held.info)
            else:
                del _held[key]
                _release(held.fd)


def holder(path: Path) -> dict[str, Any] | None:
    """What the lock file says about its holder, or None if nobody holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_info(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def describe(info: dict[str, Any] | None) -> str:
    if not info:
        return "another process (it is just starting)"
    return (
        f"pid {info.get('pid', '?')} on {info.get('host', '?')} ({info.get('step', '?')}, "
        f"since {info.get('since', '?')})"
    )


def _acquire(path: Path, what: str, step: str) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        info = _read_info(fd)
        os.close(fd)
        raise LockHeld(
            f"{step}: {what} is being processed by {describe(info)}; wait for it to finish (lock {path})"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _release(fd: int) -> None:
    try:
        os.ftruncate(fd, 0)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _write_info(fd: int, info: dict[str, Any]) -> None:
    data = (json.dumps(info, ensure_ascii=False) + "\n").encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def _read_info(fd: int, wait_s: float = 1.0) -> dict[str, Any] | None:
    """The holder's description; a holder that has just taken the lock may not have written it
    yet (or still shows the previous holder's, dead, process), so wait a moment for it."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            info = json.loads(os.pread(fd, 65536, 0).decode("utf-8"))
        except ValueError:
            info = None
        if isinstance(info, dict) and not _dead_here(info):
            return info
        if time.monotonic() >= deadline:
            return info if isinstance(info, dict) else None
        time.sleep(0.05)


def _dead_here(info: dict[str, Any]) -> bool:
    if info.get("host") != socket.gethostname() or not isinstance(info.get("pid"), int):
        return False
    try:
        os.kill(info["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
