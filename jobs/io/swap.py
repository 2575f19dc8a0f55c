"""Journaled folder swaps: replace folders by others so that a reader sees the old ones or the new
ones, and a process killed half-way is rolled forward by the next run.

`swap_dirs` puts each target aside, moves the new folder in and deletes the old one; an exception
undoes it. Against a kill, a journal of every pair is written and fsynced before the first rename;
`recover_swaps` rolls an interrupted swap forward from it. The lake journals its partition swaps in
`lake/_journal/date=D` (`jobs.io.repair` looks there); a folder outside the lake (the outbox's
`outbox/D`) is journaled beside its aside folder, in `outbox/.journal`. Engine-free: plain files.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobs.io import files
from jobs.io.layout import OUTBOX_JOURNAL

FAULT_KILL_AFTER_RENAME = "CDRWATCH_FAULT_KILL_AFTER_RENAME"  # tests: SIGKILL this process after the k-th rename


def recover_swaps(journal_dir: Path, belongs: Callable[[dict[str, Any]], bool] | None = None) -> list[str]:
    """Roll forward every interrupted swap journaled in `journal_dir` (those `belongs` accepts):
    each target ends as the new folder, or as nothing when the swap's new state had none; a new
    folder that is gone (deleted after an error) leaves the previous one in place instead. Then
    the journal is deleted. Idempotent, so a repair that is itself killed is simply run again."""
    if not journal_dir.is_dir():
        return []
    messages = []
    for tmp in journal_dir.glob(".*.tmp"):  # a journal never completed: its swap never started
        try:
            if time.time() - tmp.stat().st_mtime > 60:
                tmp.unlink()
        except FileNotFoundError:
            pass
    for path in sorted(journal_dir.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if belongs is not None and not belongs(doc):
            continue
        done = [line for line in (_roll_forward(pair) for pair in doc["pairs"]) if line]
        shutil.rmtree(doc["aside_root"], ignore_errors=True)
        _forget(path)
        messages.append(
            f"repaired a swap interrupted at {doc['created']} (pid {doc['pid']} on {doc['host']}): "
            + ("; ".join(done) if done else "nothing left to do")
        )
    return messages


def swap_dirs(swaps: list[tuple[Path, Path]], aside_root: Path, journal_dir: Path | None = None) -> None:
    """Replace each `(new, target)`'s target folder by `new` (by nothing, if `new` does not exist):
    old target to `aside_root/<i>`, new one in, old ones deleted. An exception undoes the renames
    done. Against a kill, a journal of every (new, target, aside) is written and fsynced in
    `journal_dir` before the first rename and deleted after the last step; `recover_swaps(journal_dir)`
    rolls an interrupted swap forward. The lake passes `lake/_journal/date=D` (where `repair` looks);
    by default it is `<aside_root's folder>/.journal`: a folder outside the lake (the outbox's
    `outbox/D`, aside in `outbox/.D.<token>.old`) is journaled in `outbox/.journal`."""
    journal_dir = Path(journal_dir) if journal_dir is not None else aside_root.parent / OUTBOX_JOURNAL
    pairs = [
        {
            "new": os.path.abspath(new),
            "target": os.path.abspath(target),
            "aside": os.path.abspath(aside_root / str(i)),
            "has_new": new.exists(),
        }
        for i, (new, target) in enumerate(swaps)
    ]
    journal = _write_journal(
        journal_dir,
        {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "aside_root": os.path.abspath(aside_root),
            "pairs": pairs,
        },
    )
    _fault_point(0)
    try:
        aside_root.mkdir(parents=True, exist_ok=True)
        for pair, (new, target) in zip(pairs, swaps):
            if target.exists():
                _rename(target, Path(pair["aside"]))
            if new.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                _rename(new, target)
    except BaseException:
        for pair in reversed(pairs):
            _roll_back(pair)
        _forget(journal)
        raise
    _sync_dirs({target.parent for _, target in swaps})
    for pair in pairs:
        shutil.rmtree(pair["aside"], ignore_errors=True)
    _forget(journal)


def _roll_back(pair: dict[str, Any]) -> None:
    """Undo one pair, judged by what is on disk (so an interrupt between a rename and its
    bookkeeping cannot mislead it): a moved-in new folder goes back to staging, the old one back."""
    new, target, aside = Path(pair["new"]), Path(pair["target"]), Path(pair["aside"])
    if aside.exists():
        if target.exists():
            new.parent.mkdir(parents=True, exist_ok=True)
            os.rename(target, new)
        os.rename(aside, target)
    elif pair["has_new"] and target.exists() and not new.exists():
        os.rename(target, new)


def _roll_forward(pair: dict[str, Any]) -> str | None:
    """One pair of an interrupted swap to its new state, whichever rename the kill came after."""
    new, target, aside = Path(pair["new"]), Path(pair["target"]), Path(pair["aside"])
    action = None
    if pair["has_new"] and new.exists():
        if target.exists():
            if aside.exists():
                shutil.rmtree(target)
            else:
                aside.parent.mkdir(parents=True, exist_ok=True)
                _rename(target, aside)
        target.parent.mkdir(parents=True, exist_ok=True)
        _rename(new, target)
        action = "new one moved in"
    elif pair["has_new"] and not target.exists() and aside.exists():
        _rename(aside, target)
        action = "the new one is gone: previous one put back"
    elif not pair["has_new"] and target.exists() and not aside.exists():
        aside.parent.mkdir(parents=True, exist_ok=True)
        _rename(target, aside)
        action = "removed (the new state has none)"
    if aside.exists():
        shutil.rmtree(aside)
    return f"{target}: {action}" if action else None


_renames = 0


def _rename(src: Path, dst: Path) -> None:
    global _renames
    os.rename(src, dst)
    _renames += 1
    _fault_point(_renames)


def _fault_point(renames: int) -> None:
    """Fault injection for the tests: die like kill -9 right after the k-th rename (0: after the
    journal is written, before any rename) when CDRWATCH_FAULT_KILL_AFTER_RENAME=k."""
    if os.environ.get(FAULT_KILL_AFTER_RENAME) == str(renames):
        os.kill(os.getpid(), signal.SIGKILL)


def _write_journal(folder: Path, document: dict[str, Any]) -> Path:
    """Atomically and durably (its temporary file is a `.*.tmp` that `recover_swaps` clears when
    stale); retried if another swap removes the empty folder meanwhile."""
    path = folder / f"{uuid.uuid4().hex}.json"
    text = json.dumps(document, ensure_ascii=False, indent=1) + "\n"
    for attempt in range(5):
        try:
            return files.write_atomic(path, text)  # makes the folder first
        except FileNotFoundError:
            if attempt == 4:
                raise


def _forget(journal: Path) -> None:
    journal.unlink(missing_ok=True)
    _sync_dirs([journal.parent])
    drop_empty(journal.parent)


def _sync_dirs(folders) -> None:
    """fsync folders, so that renames in them reach the disk before the journal is deleted."""
    for folder in folders:
        files.sync_dir(folder)


def replace_folder(target: Path, contents: dict[str, bytes]) -> None:
    """Write `contents` (relative path -> bytes) as the folder `target`, atomically: built in a hidden
    folder beside it (`.<name>.<token>.new`), then swapped in whole by `swap_dirs` (whose repair
    knows these names); the previous folder is put aside and deleted."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    staged = target.parent / f".{target.name}.{token}.new"
    aside = target.parent / f".{target.name}.{token}.old"
    try:
        for relative, data in contents.items():
            path = staged / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        swap_dirs([(staged, target)], aside)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
        shutil.rmtree(aside, ignore_errors=True)


def drop_empty(*folders: Path) -> None:
    """Remove each folder if it is empty (another run may be using it: then it is not)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            pass
