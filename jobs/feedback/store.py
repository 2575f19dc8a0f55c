"""lake/feedback and lake/hotlist: importing field units' files, and what later nights read of them.

Each imported file becomes one Parquet file `lake/feedback/<sha256[:16]>.parquet`, written atomically
and named by the file's content, so importing the same file again changes nothing; a visit already in
the lake (the same den, day, outcome, notes and seizures, e.g. from a re-saved copy) is not added
twice. History is kept: the latest visit per den wins (`latest_visits`). Every import writes its
record to `lake/_runs/feedback/<sha256[:16]>.json` (rows, visits, rows not visited, rejected rows).

`lake/hotlist/hotlist.parquet` is rebuilt from the whole feedback and lake/dens after every import
(`build_hotlist`): the numbers, devices and site of each raided or confirmed den, plus what was
seized, for `feedback.hotlist_days` after the visit. Everything here is small: PyArrow and Polars.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from jobs.config import Config
from jobs.errors import CdrwatchError
from jobs.feedback.read import parse_file
from jobs.io import layout
from jobs.io.files import write_json
from jobs.io.lake_polars import polars_schema, read_days, read_files, write_file
from jobs.io.layout import hotlist_path, table_path
from schemas.tables import CLEARED_OUTCOMES, DEN, FEEDBACK, FOUND_OUTCOMES, HOTLIST

log = logging.getLogger(__name__)

MAX_DEN_IMEIS = 64  # a den showing more IMEIs invents one per call: only the seized ones are hotlisted
VISIT_KEY = ("den_id", "visited_on", "outcome", "notes", "numbers_seized", "imeis_seized")
FEEDBACK_SUFFIXES = (".csv", ".xlsx", ".xlsm")


@dataclass
class FileImport:
    """What importing one file did. `status`: imported | already imported | failed."""

    path: str
    sha256: str
    status: str
    rows: int = 0
    visits: int = 0
    new_visits: int = 0
    not_visited: int = 0
    problems: list[str] = field(default_factory=list)


def feedback_dir(config: Config) -> Path:
    return table_path(config, FEEDBACK)


def read_feedback(config: Config) -> pl.DataFrame:
    """Every imported visit (FEEDBACK's columns); empty when nothing was imported."""
    return read_files(FEEDBACK, sorted(feedback_dir(config).glob("*.parquet")))


def read_dens(config: Config, columns: list[str]) -> pl.DataFrame:
    """`columns` (and `date`) of every night of lake/dens: one row per den per night, small."""
    return read_days(config, DEN, None, [c for c in columns if c != "date"])


def known_den_ids(config: Config) -> set[str]:
    return set(read_dens(config, ["den_id"])["den_id"].to_list())


def import_files(config: Config, paths: list[Path], *, today: dt.date | None = None) -> list[FileImport]:
    """Import field units' files into lake/feedback and rebuild lake/hotlist. A file that cannot be
    read at all is one problem line (`failed`); a bad row is one line and the others import."""
    today = today or dt.date.today()
    known = known_den_ids(config)
    done: list[FileImport] = []
    lake_visits = read_feedback(config)
    for path in paths:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as err:
            done.append(FileImport(str(path), "", "failed", problems=[f"{path}: cannot be read ({err.strerror})"]))
            continue
        sha = hashlib.sha256(data).hexdigest()
        target = layout.feedback_file(config, sha)
        if target.is_file():
            done.append(FileImport(str(path), sha, "already imported"))
            continue
        try:
            parsed = parse_file(path, data, known, today)
        except CdrwatchError as err:
            done.append(FileImport(str(path), sha, "failed", problems=[str(err)]))
            continue
        except Exception as err:  # a file no reader expected (a broken workbook...): its line, not the night
            first = (str(err).strip().splitlines() or [""])[0]
            done.append(
                FileImport(str(path), sha, "failed", problems=[f"{path}: not readable ({type(err).__name__}: {first})"])
            )
            continue
        frame = _visits_frame(parsed.visits, path.name, sha)
        new = frame.join(lake_visits.select(VISIT_KEY).unique(), on=list(VISIT_KEY), how="anti", nulls_equal=True)
        new = new.unique(subset=list(VISIT_KEY), keep="first", maintain_order=True)
        record = FileImport(
            str(path), sha, "imported", parsed.rows, len(parsed.visits), new.height, parsed.not_visited, parsed.problems
        )
        write_json(
            layout.feedback_runs(config) / f"{sha[:16]}.json",
            {
                "file": str(path),
                "sha256": sha,
                "imported_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                "rows": record.rows,
                "visits": record.visits,
                "new_visits": record.new_visits,
                "not_visited": record.not_visited,
                "rejected": record.problems,
            },
        )
        write_file(target, new, FEEDBACK)  # last: the file counts as imported once it is there
        lake_visits = pl.concat([lake_visits, new])
        done.append(record)
        log.info(
            "feedback %s: %d visit(s), %d new, %d row(s) rejected",
            path,
            record.visits,
            record.new_visits,
            len(record.problems),
        )
    if any(f.status == "imported" for f in done) or (lake_visits.height and not hotlist_path(config).is_file()):
        write_hotlist(config)
    return done


def _visits_frame(visits, source_file: str, sha: str) -> pl.DataFrame:
    now = dt.datetime.now(dt.timezone.utc)
    rows = [
        dict(
            den_id=v.den_id,
            visited_on=v.visited_on,
            outcome=v.outcome,
            notes=v.notes,
            numbers_seized=list(v.numbers_seized),
            imeis_seized=list(v.imeis_seized),
            source_file=source_file,
            source_row=v.source_row,
            file_sha256=sha,
            imported_at=now,
        )
        for v in visits
    ]
    return pl.DataFrame(rows, schema=polars_schema(FEEDBACK), orient="row")


def pending_files(config: Config) -> list[Path]:
    """landing/feedback/ files not imported yet (by content), in name order."""
    folder = layout.feedback_landing(config)
    if not folder.is_dir():
        return []
    imported = {p.stem for p in feedback_dir(config).glob("*.parquet")}
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in FEEDBACK_SUFFIXES and not p.name.startswith((".", "~$"))
    )
    return [p for p in files if hashlib.sha256(p.read_bytes()).hexdigest()[:16] not in imported]


# ---------------------------------------------------------------- what later nights read


def latest_visits(feedback: pl.DataFrame, before: dt.date | None = None) -> pl.DataFrame:
    """The latest visit per den (by visit day, then import time, then file and row), of visits on or
    before `before` when given."""
    if before is not None:
        feedback = feedback.filter(pl.col("visited_on") <= before)
    return (
        feedback.sort(["den_id", "visited_on", "imported_at", "source_file", "source_row"])
        .group_by("den_id", maintain_order=True)
        .last()
    )


def build_hotlist(feedback: pl.DataFrame, dens: pl.DataFrame, hotlist_days: int) -> pl.DataFrame:
    """HOTLIST rows: for every raided/confirmed visit, the den's numbers, devices (unless it invents an
    IMEI per call) and position as of its last night up to the visit, plus the seized lists; one row
    per entity and kind, from its latest visit."""
    found = feedback.filter(pl.col("outcome").is_in(FOUND_OUTCOMES))
    rows = []
    for visit in found.sort(["visited_on", "den_id", "source_file", "source_row"]).iter_rows(named=True):
        nights = dens.filter(pl.col("den_id") == visit["den_id"]).sort("date")
        before = nights.filter(pl.col("date") <= visit["visited_on"])
        den = (before if before.height else nights).tail(1).to_dicts()
        numbers, imeis = set(visit["numbers_seized"] or []), set(visit["imeis_seized"] or [])
        site = None
        if den:
            numbers |= set(den[0]["numbers"] or [])
            if len(den[0]["imeis"] or []) <= MAX_DEN_IMEIS:
                imeis |= set(den[0]["imeis"] or [])
            if den[0]["lat"] is not None and den[0]["lon"] is not None:
                site = (den[0]["lat"], den[0]["lon"])
        since, expires = visit["visited_on"], visit["visited_on"] + dt.timedelta(days=hotlist_days)
        common = dict(den_id=visit["den_id"], outcome=visit["outcome"], since=since, expires=expires)
        rows += [dict(entity_id=n, kind="msisdn", lat=None, lon=None, **common) for n in sorted(numbers)]
        rows += [dict(entity_id=i, kind="imei", lat=None, lon=None, **common) for i in sorted(imeis)]
        if site:
            rows.append(dict(entity_id=f"{site[0]:.6f},{site[1]:.6f}", kind="site", lat=site[0], lon=site[1], **common))
    frame = pl.DataFrame(rows, schema=polars_schema(HOTLIST), orient="row")
    return (
        frame.sort(["kind", "entity_id", "since", "den_id"])
        .group_by(["kind", "entity_id"], maintain_order=True)
        .last()
        .select(HOTLIST.names)
        .sort(["kind", "entity_id"])
    )


def write_hotlist(config: Config) -> pl.DataFrame:
    """Rebuild lake/hotlist/hotlist.parquet from lake/feedback and lake/dens (atomic)."""
    hotlist = build_hotlist(
        read_feedback(config),
        read_dens(config, ["den_id", "numbers", "imeis", "lat", "lon"]),
        config.feedback.hotlist_days,
    )
    write_file(hotlist_path(config), hotlist, HOTLIST)
    return hotlist


def read_hotlist(config: Config, day: dt.date) -> pl.DataFrame:
    """The hotlist entries a night matches: visited before `day`, not expired by it."""
    path = hotlist_path(config)
    if not path.is_file():
        return pl.DataFrame(schema=polars_schema(HOTLIST))
    hotlist = read_files(HOTLIST, [path])
    return hotlist.filter((pl.col("since") < day) & (pl.col("expires") >= day))


@dataclass(frozen=True)
class Cleared:
    """A den the field found no den at (false_lead, legitimate): its group as of the visit."""

    den_id: str
    outcome: str
    visited_on: dt.date
    numbers: frozenset[str]
    imeis: frozenset[str]
    signals: frozenset[str]


def field_history(config: Config, day: dt.date) -> tuple[dict[str, dict], list[Cleared]]:
    """For night `day`: den_id -> its latest visit up to `day` (`visited_on`, `outcome`), and the
    dens cleared (latest outcome false_lead/legitimate) within `feedback.suppress_nights` before it,
    with the numbers, devices and signals they had on their last night up to the visit."""
    feedback = read_feedback(config)
    if feedback.is_empty():
        return {}, []
    latest = latest_visits(feedback, before=day)
    visits = {r["den_id"]: r for r in latest.select("den_id", "visited_on", "outcome").iter_rows(named=True)}
    first = day - dt.timedelta(days=config.feedback.suppress_nights)
    cleared_rows = latest.filter(pl.col("outcome").is_in(CLEARED_OUTCOMES) & (pl.col("visited_on") >= first))
    if cleared_rows.is_empty():
        return visits, []
    dens = read_dens(config, ["den_id", "numbers", "imeis", "signals"]).filter(
        pl.col("den_id").is_in(cleared_rows["den_id"].implode())
    )
    cleared = []
    for visit in cleared_rows.sort("den_id").iter_rows(named=True):
        nights = dens.filter((pl.col("den_id") == visit["den_id"]) & (pl.col("date") <= visit["visited_on"]))
        if nights.is_empty():
            nights = dens.filter(pl.col("den_id") == visit["den_id"])
        if nights.is_empty():
            continue
        den = nights.sort("date").tail(1).to_dicts()[0]
        cleared.append(
            Cleared(
                visit["den_id"],
                visit["outcome"],
                visit["visited_on"],
                frozenset(den["numbers"] or ()),
                frozenset(den["imeis"] or ()),
                frozenset(den["signals"] or ()),
            )
        )
    return visits, cleared
