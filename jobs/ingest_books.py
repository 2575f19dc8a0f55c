"""The books of an ingest, kept the same whichever engine reads the rows: what a run did (IngestReport,
Counts per file), which files a delivery has, whether they match their manifest and their headers,
how grouped outcomes become counts and warnings, whether every line and every written row is
accounted for, and when a night is partial. No engine here: `jobs.ingest` (Spark) and
`jobs.ingest_local` (Polars) both keep their books with it, so their summaries are the same."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jobs import formats
from jobs.config import Config
from jobs.errors import CdrwatchError
from jobs.io.landing import file_globs, scan_delivery
from jobs.io.landing_files import FileFacts
from jobs.io.manifest import MANIFEST, read_manifest

HEADER, ACCEPTED, QUARANTINED, DUPLICATE, CONFLICT, ROUTED_OUT = (
    "header",
    "accepted",
    "quarantined",
    "duplicate",
    "conflict",
    "routed",
)
CONFLICT_PREFIX = "conflicting duplicate of "
MOSTLY_QUARANTINED = 0.5  # a carrier-day with more than this share of its rows quarantined is partial
CONTENT = ("msisdn", "other_party", "direction", "service", "start_time", "duration_s", "imsi", "imei", "cell_id")


@dataclass
class Counts:
    """Rows of one file or one carrier: read = accepted + quarantined + duplicates + conflicts + routed."""

    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)  # reason -> rows
    conflicts: int = 0  # same record id as an accepted row, other content: in quarantine, counted apart
    routed: int = 0  # valid records of another date: lake/routed

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    @property
    def balanced(self) -> bool:
        return self.read == self.accepted + self.quarantined_total + self.duplicates + self.conflicts + self.routed

    def add(self, other: Counts) -> None:
        self.read += other.read
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.conflicts += other.conflicts
        self.routed += other.routed
        for reason, rows in other.quarantined.items():
            self.quarantined[reason] = self.quarantined.get(reason, 0) + rows

    def as_dict(self) -> dict:
        return {
            "read": self.read,
            "accepted": self.accepted,
            "quarantined": self.quarantined_total,
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "routed": self.routed,
            "quarantined_by_reason": dict(sorted(self.quarantined.items())),
        }


@dataclass
class IngestReport:
    """What one ingest run did: counts per file and carrier, warnings, and why the night is partial.
    The accepted rows are in the lake: `jobs.io.lake.read_partition(config, spark, "cdr", day, carrier)`."""

    day: dt.date
    formats: dict[str, str] = field(default_factory=dict)  # carrier -> format
    files: dict[str, dict[str, Counts]] = field(default_factory=dict)  # carrier -> source_file -> counts
    warnings: list[str] = field(default_factory=list)
    missing_carriers: list[str] = field(default_factory=list)  # configured, but no files for the day
    partial_reasons: list[str] = field(default_factory=list)  # one line each; empty = a complete night
    partial_carriers: dict[str, list[str]] = field(default_factory=dict)  # carrier -> its reasons (no prefix)
    facts: dict[str, FileFacts] = field(default_factory=dict)  # source_file -> independent facts
    arrived: dict[str, int] = field(default_factory=dict)  # source_file of another date's folder -> rows taken
    routed_out: dict[str, int] = field(default_factory=dict)  # event date -> rows kept in lake/routed
    validation: dict[str, str] = field(default_factory=dict)  # carrier -> "passed" | "FAILED: ..."
    bad_header: set[str] = field(default_factory=set)  # files quarantined whole: header not the format's
    outcomes: dict = field(default_factory=dict, repr=False)  # carrier -> validate.ValidationOutcome
    numbered: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)  # source_file -> first, last line

    @property
    def carriers(self) -> dict[str, Counts]:
        totals = {}
        for carrier, files in self.files.items():
            totals[carrier] = Counts()
            for counts in files.values():
                totals[carrier].add(counts)
        return totals

    @property
    def validation_failed(self) -> set[str]:
        return {c for c, verdict in self.validation.items() if verdict != "passed"}

    @property
    def partial(self) -> bool:
        return bool(self.partial_reasons)

    def mark_partial(self, carrier: str, why: str) -> None:
        """The night is partial because of `carrier`'s delivery: one reason line, kept by carrier too
        (the spoofing judgement leaves that carrier's legs unjudged)."""
        self.partial_reasons.append(f"{carrier}: {why}")
        self.partial_carriers.setdefault(carrier, []).append(why)

    def check_balanced(self, carriers: Iterable[str] | None = None) -> None:
        """Raise unless every file's rows (of `carriers`, default all) add up."""
        for carrier, files in self.files.items():
            if carriers is not None and carrier not in carriers:
                continue
            for name, counts in [*files.items(), (f"carrier {carrier}", self.carriers[carrier])]:
                if not counts.balanced:
                    raise CdrwatchError(
                        f"{name}: rows do not add up on {self.day}: read {counts.read} != accepted {counts.accepted}"
                        f" + quarantined {counts.quarantined_total} + duplicates {counts.duplicates}"
                        f" + conflicts {counts.conflicts} + routed {counts.routed}"
                    )

    def as_dict(self) -> dict:
        return {
            "date": self.day.isoformat(),
            "carriers": {
                c: {"format": self.formats[c], "files": len(self.files[c]), **counts.as_dict()}
                for c, counts in self.carriers.items()
            },
            "files": [
                {
                    "carrier": c,
                    "source_file": name,
                    **counts.as_dict(),
                    **(
                        {
                            "lines": self.facts[name].lines,
                            "bytes": self.facts[name].size,
                            "sha256": self.facts[name].sha256,
                        }
                        if name in self.facts
                        else {"arrived_from_routed": True}
                    ),
                }
                for c, files in self.files.items()
                for name, counts in files.items()
            ],
            "warnings": self.warnings,
            "missing_carriers": self.missing_carriers,
            "partial_reasons": self.partial_reasons,
            "routed_out": dict(sorted(self.routed_out.items())),
            "validation": dict(sorted(self.validation.items())),
            "partial_carriers": dict(sorted(self.partial_carriers.items())),
        }

    def table(self):
        """A rich Table: one line per file, a total line per carrier, warnings as the caption.
        Data (file names, warnings) is shown as text, never read as console markup."""
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"ingest {self.day}", caption=Text("\n".join(self.warnings)) if self.warnings else None)
        for name in ("carrier", "file", "read", "accepted", "quarantined", "duplicates", "conflicts", "routed"):
            table.add_column(name, justify="left" if name in ("carrier", "file") else "right")
        totals = self.carriers
        for carrier, files in self.files.items():
            for name, counts in files.items():
                shown = Path(name).name if name in self.facts else f"{name} (arrived)"
                table.add_row(Text(carrier), Text(shown), *_cells(counts))
            table.add_row(
                Text(carrier), Text(f"{len(files)} files", style="bold"), *_cells(totals[carrier]), end_section=True
            )
        return table

    def reasons_table(self):
        """A rich Table of quarantined rows by carrier and reason."""
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"quarantined {self.day} (lake/quarantine)")
        for name in ("carrier", "reason", "rows"):
            table.add_column(name, justify="right" if name == "rows" else "left")
        for carrier, counts in self.carriers.items():
            for reason, rows in sorted(counts.quarantined.items()):
                table.add_row(Text(carrier), Text(reason), f"{rows:,}")
            if counts.conflicts:
                table.add_row(Text(carrier), Text(CONFLICT_PREFIX + "another row"), f"{counts.conflicts:,}")
        return table


# ---------------------------------------------------------------- the delivery


def find_deliveries(config: Config, day: dt.date, warnings: list[str]) -> dict[str, list[Path]]:
    """carrier -> its files of `day` (sorted) that match its format's file names; a carrier with
    none is left out with a warning, as are files that do not match and folders inside."""
    deliveries = {}
    for carrier in config.carriers:
        scan = scan_delivery(config, carrier, day)
        files, ignored, folders = scan.files, scan.ignored, scan.folders
        if ignored:
            warnings.append(
                f"{carrier}: ignored {len(ignored)} file(s) not named "
                f"{' or '.join(file_globs(config, carrier))}: "
                + ", ".join(ignored[:5])
                + (" ..." if len(ignored) > 5 else "")
            )
        if folders:
            warnings.append(
                f"{carrier}: {len(folders)} folder(s) inside {carrier}/{day.isoformat()}/ are not read "
                f"(a delivery is the folder's own files): " + ", ".join(folders[:5])
            )
        if files:
            deliveries[carrier] = files
        else:
            warnings.append(f"{carrier}: no files for {day.isoformat()} — late?")
    return deliveries


def check_manifest(report: IngestReport, carrier: str, files: list[Path], landing: Path, has_header: bool) -> None:
    """With a `_MANIFEST.csv` in the folder, the delivery must be exactly what it lists."""
    folder = files[0].parent
    try:
        manifest = read_manifest(folder)
    except CdrwatchError as err:
        report.warnings.append(str(err))
        report.mark_partial(carrier, f"the manifest cannot be read ({err})")
        return
    if manifest is None:
        return
    present = {p.name: p for p in files}
    problems = [f"{name} is listed but not delivered" for name in sorted(set(manifest) - set(present))]
    problems += [f"{name} is delivered but not listed" for name in sorted(set(present) - set(manifest))]
    for name in sorted(set(manifest) & set(present)):
        fact = report.facts[relative(present[name], landing)]
        rows = max(0, fact.lines - (1 if has_header and fact.lines else 0))
        if fact.sha256 != manifest[name].sha256:
            problems.append(f"{name}: sha256 differs from the manifest")
        if rows != manifest[name].rows:
            problems.append(f"{name}: {rows:,} rows, the manifest says {manifest[name].rows:,}")
    for problem in problems:
        report.warnings.append(f"{carrier}/{report.day.isoformat()}/{MANIFEST}: {problem}")
    if problems:
        report.mark_partial(
            carrier,
            f"the delivery does not match its manifest ({'; '.join(problems[:3])}"
            + (" ..." if len(problems) > 3 else "")
            + ")",
        )


def file_verdicts(report: IngestReport, carrier: str, files: list[Path], landing: Path) -> tuple[list[str], list]:
    """The file-level verdicts plain Python made (`report.facts`): the files whose header is not the
    format's (quarantined whole) and the cut last line (file, line) of each damaged gzip; the
    warnings and partial reasons of both go into `report`."""
    header = formats.header(report.formats[carrier])
    bad_header, cut = [], []
    for path in files:
        name = relative(path, landing)
        fact = report.facts[name]
        if header is not None and fact.lines:
            got = fact.first_line.decode("utf-8", errors="replace").removeprefix("\ufeff").removesuffix("\r")
            if got != header:
                bad_header.append(name)
                report.bad_header.add(name)
                report.warnings.append(f"{name}: header does not match: expected {header!r}, got {got[:200]!r}")
                report.mark_partial(carrier, f"{name}: header does not match the format; its rows are in quarantine")
        if fact.damaged:
            report.warnings.append(f"{name}: {fact.damaged}: the {fact.lines:,} lines before the damage are read")
            report.mark_partial(carrier, f"{name} is damaged ({fact.damaged}); records after the damage are missing")
            if not fact.ends_with_newline and fact.lines:
                cut.append((name, fact.lines))
    return bad_header, cut


# ---------------------------------------------------------------- the counts


@dataclass(frozen=True)
class Group:
    """Rows of one (carrier, file, arrived, outcome, reason kind, routed-to date), as `tally` reads them."""

    carrier: str
    source_file: str
    arrived: bool
    outcome: str
    kind: str | None  # the reason (None for a conflict: its reason names the row it conflicts with)
    routed_to: dt.date | None
    count: int
    first_line: int
    last_line: int


def tally(report: IngestReport, groups: Iterable[Group]) -> None:
    """Fill the report's counts and line ranges from the grouped outcomes (of some carriers or all:
    the counts add up). `warn_routing` then says what was routed, once all are counted."""
    for g in sorted(groups, key=lambda g: (g.carrier, g.source_file)):
        if not g.arrived:
            first, last = report.numbered.get(g.source_file, (g.first_line, g.last_line))
            report.numbered[g.source_file] = (min(first, g.first_line), max(last, g.last_line))
        if g.outcome == HEADER:
            continue
        counts = report.files.setdefault(g.carrier, {}).setdefault(g.source_file, Counts())
        if g.arrived:
            report.arrived[g.source_file] = report.arrived.get(g.source_file, 0) + g.count
        counts.read += g.count
        if g.outcome == ACCEPTED:
            counts.accepted += g.count
        elif g.outcome == DUPLICATE:
            counts.duplicates += g.count
        elif g.outcome == CONFLICT:
            counts.conflicts += g.count
        elif g.outcome == ROUTED_OUT:
            counts.routed += g.count
            key = g.routed_to.isoformat()
            report.routed_out[key] = report.routed_out.get(key, 0) + g.count
        else:
            counts.quarantined[g.kind] = counts.quarantined.get(g.kind, 0) + g.count


def warn_routing(report: IngestReport) -> None:
    """The warnings for records routed out of tonight's folders and in from other dates' folders."""
    for when, n in sorted(report.routed_out.items()):
        report.warnings.append(
            f"{n:,} record(s) of {when} were delivered in the folders of {report.day}: kept in "
            f"lake/routed; they join lake/cdr when {when} is ingested"
            + (" (rerun: cdrwatch nightly --date " + when + ")" if when < report.day.isoformat() else "")
        )
    for name, n in sorted(report.arrived.items()):
        report.warnings.append(
            f"{name}: {n:,} record(s) of {report.day} delivered in another date's folder taken from lake/routed"
        )


def check_lines(report: IngestReport, engine: str = "Spark", carriers: Iterable[str] | None = None) -> None:
    """Every file's rows (plus its header) must be its physical lines, counted independently of the
    engine (the files of `carriers`, default all)."""
    for carrier, files in report.files.items():
        if carriers is not None and carrier not in carriers:
            continue
        for name, counts in files.items():
            fact = report.facts.get(name)
            if fact is None:
                continue
            header = (
                1
                if formats.header(report.formats[carrier]) is not None and fact.lines and name not in report.bad_header
                else 0
            )
            expected = fact.lines - header
            if counts.read != expected:
                raise CdrwatchError(
                    f"{name}: {engine} read {counts.read + header:,} lines but the file has {fact.lines:,}: "
                    "nothing is written (report this: lines would be lost or doubled)"
                )
            numbered = report.numbered.get(name)
            if numbered is not None and numbered != (1, fact.lines):
                raise CdrwatchError(
                    f"{name}: lines numbered {numbered[0]}..{numbered[1]} but the file has "
                    f"{fact.lines:,}: nothing is written (report this: line numbers would be wrong)"
                )


def judge_validation(
    report: IngestReport,
    check: Callable[[str, Any], Any] | None,
    accepted: Callable[[str], Any],
    carriers: Iterable[str] | None = None,
) -> dict[str, str]:
    """Run `check(carrier, accepted(carrier))` for each delivered carrier (of `carriers`, default all);
    carrier -> failure text of those that failed, whose accepted rows are then counted as
    quarantined (FAILED_VALIDATION)."""
    failed = {}
    if check is None:
        return failed
    for carrier in sorted(report.files if carriers is None else set(report.files) & set(carriers)):
        outcome = check(carrier, accepted(carrier))
        if outcome.success:
            report.validation[carrier] = "passed"
        else:
            text = "; ".join(outcome.failures)
            failed[carrier] = text
            report.validation[carrier] = f"FAILED: {text}"
            report.mark_partial(carrier, f"failed validation ({text[:300]}); its rows are in quarantine")
        if outcome.suspect:
            report.mark_partial(carrier, f"volume {outcome.volume}")
    if failed:
        for carrier, files in report.files.items():
            if carrier in failed:
                for counts in files.values():
                    if counts.accepted:
                        counts.quarantined[formats.FAILED_VALIDATION] = counts.accepted
                        counts.accepted = 0
    return failed


def check_written(report: IngestReport, written: Mapping[tuple[str, str, str], int]) -> None:
    """The staged rows, (table, carrier, source_file) -> rows, must be the report's counts exactly."""
    written = dict(written)
    for carrier, files in report.files.items():
        for name, counts in files.items():
            got = tuple(written.pop((t, carrier, name), 0) for t in ("cdr", "quarantine", "routed"))
            want = (counts.accepted, counts.quarantined_total + counts.conflicts, counts.routed)
            if got != want:
                raise CdrwatchError(
                    f"{name}: written rows do not match the counts: cdr {got[0]} vs accepted "
                    f"{want[0]}, quarantine {got[1]} vs {want[1]}, routed {got[2]} vs {want[2]}"
                )
    if written:
        raise CdrwatchError(f"ingest {report.day}: rows written for files not read: {sorted(written)[:3]}")


def judge_completeness(report: IngestReport) -> None:
    """A carrier-day that delivered nothing usable makes the night partial, whatever its files."""
    for carrier, counts in sorted(report.carriers.items()):
        delivered = [n for n in report.files[carrier] if n in report.facts]
        if not delivered:
            continue
        lines = sum(report.facts[n].lines for n in delivered)
        if lines == 0:
            report.mark_partial(carrier, f"the delivery is empty ({len(delivered)} file(s), 0 rows)")
        elif counts.accepted == 0 and counts.quarantined_total and carrier not in report.validation_failed:
            report.mark_partial(
                carrier, f"none of its {counts.read:,} rows was accepted ({counts.quarantined_total:,} quarantined)"
            )
        elif counts.read and counts.quarantined_total > MOSTLY_QUARANTINED * counts.read:
            report.mark_partial(carrier, f"{counts.quarantined_total:,} of {counts.read:,} rows quarantined")


# ---------------------------------------------------------------- helpers


def has_header(config: Config, carrier: str) -> bool:
    return formats.header(config.carriers[carrier].format) is not None


def relative(path: Path, landing: Path) -> str:
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(landing)).as_posix()
    except ValueError:
        raise CdrwatchError(f"{path}: not under the landing folder {landing}") from None


def _cells(counts: Counts) -> list[str]:
    return [
        f"{n:,}"
        for n in (
            counts.read,
            counts.accepted,
            counts.quarantined_total,
            counts.duplicates,
            counts.conflicts,
            counts.routed,
        )
    ]


def open_books(config: Config, day: dt.date) -> tuple[Path, dict[str, list[Path]], IngestReport]:
    """The night's books before any engine reads a line: the landing zone checked, the date refused if
    it has not happened yet, the deliveries found, every file inspected once (`FileFacts`), the
    manifests checked and a missing carrier's night made partial. Both engines' ingest start here."""
    from jobs.io import layout
    from jobs.io.landing_files import inspect_file

    landing = layout.landing_root(config)
    if not landing.is_dir():
        raise CdrwatchError(f"{landing}: landing folder does not exist")
    today = dt.datetime.now(ZoneInfo(config.timezone)).date()
    if day > today:
        raise CdrwatchError(
            f"ingest: {day} is in the future (today is {today} in {config.timezone}): "
            "a delivery date is a night that has happened"
        )
    warnings: list[str] = []
    deliveries = find_deliveries(config, day, warnings)
    report = IngestReport(
        day,
        formats={c: config.carriers[c].format for c in config.carriers},
        warnings=warnings,
        missing_carriers=[c for c in config.carriers if c not in deliveries],
    )
    for carrier in report.missing_carriers:
        report.mark_partial(carrier, f"no files for {day.isoformat()}")
    for carrier, files in deliveries.items():
        for path in files:
            report.facts[relative(path, landing)] = inspect_file(path)
        check_manifest(report, carrier, files, landing, has_header(config, carrier))
    report.files = {c: {relative(f, landing): Counts() for f in files} for c, files in deliveries.items()}
    return landing, deliveries, report
