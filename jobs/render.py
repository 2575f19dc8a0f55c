"""What the command line shows: each step's result as rich tables and lines, the nightly summary,
and log records as console lines. Steps compute and log; only the CLI renders.

Everything here quotes data (file names, districts, site names, evidence, paths): it is escaped,
never read as console markup, so a `[/]` in a site name is text.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from jobs.config import Config
from jobs.io import layout


def shown(text: str) -> str:
    """Data as console text: never parsed as markup; quoted when it holds unprintable characters."""
    return escape(text if text.isprintable() else repr(text))


# ---------------------------------------------------------------- one step each


def ingest_view(report) -> list[Any]:
    """Validation per carrier, files and their counts, quarantine reasons (jobs.ingest.IngestReport)."""
    lines = []
    for carrier, outcome in report.outcomes.items():
        status = "passed" if outcome.success else "[red]FAILED[/]"
        lines.append(
            f"{escape(carrier)}: validation {status}; volume {escape(outcome.volume)}"
            + (" [yellow](suspect: late or partial delivery?)[/]" if outcome.suspect else "")
        )
        lines += [f"  {escape(failure)}" for failure in outcome.failures]
    return [*lines, report.table(), report.reasons_table()]


def validate_view(lines: list[str]) -> list[Any]:
    return [Text(line) for line in lines]


def detect_view(result) -> list[Any]:
    """Flags per detector and entity (jobs.detect_result.DetectResult)."""
    table = Table(title=escape(f"detect {result.day}: {result.flags} flags -> {result.path}"))
    for name in ("detector", "entity", "flags", "mean score"):
        table.add_column(name, justify="right" if name in ("flags", "mean score") else "left")
    for detector, entity, flags, mean in result.by_detector:
        table.add_row(escape(detector), escape(entity), str(flags), f"{mean:.2f}")
    return [table]


def den_table(rows: list[dict], title: str) -> Table:
    table = Table(title=escape(title))
    for name in ("den", "priority", "score", "district", "SIMs", "IMEIs", "calls", "victims", "seen", "evidence"):
        table.add_column(name, justify="right" if name in ("score", "SIMs", "IMEIs", "calls", "victims") else "left")
    for r in rows:
        table.add_row(
            escape(r["den_id"]),
            escape(r["priority"]),
            f"{r['score']:.2f}",
            escape(r["district"] or ""),
            str(len(r["numbers"])),
            str(len(r["imeis"])),
            f"{r['n_calls']:,}",
            str(r["n_victims"]),
            f"{r['first_seen']}..{r['last_seen']} ({r['nights_active']})",
            escape(r["evidence"]),
        )
    return table


def dens_view(result) -> list[Any]:
    """The night's dens (jobs.dens.DensResult)."""
    return [
        den_table(result.rows, f"dens {result.day}: {len(result.rows)} dens, {result.victims} victims -> {result.path}")
    ]


def export_view(summary: dict[str, Any]) -> list[Any]:
    """Dens per district and the files written (jobs.export.export_date's summary)."""
    from jobs.export import PARTIAL_FILE

    target = Path(summary["outbox"])
    table = Table(title=f"export {summary['date']}: {sum(summary['dens'].values())} dens -> {shown(str(target))}")
    for name in ("district", "dens", "high", "file"):
        table.add_column(name, justify="right" if name in ("dens", "high") else "left")
    for district, n in summary["dens"].items():
        table.add_row(
            shown(district),
            str(n),
            str(summary["high"][district]),
            shown(str(target / summary["district_files"][district])),
        )
    out: list[Any] = [table]
    renamed = {d: f for d, f in summary["district_files"].items() if f != f"leads/{d}.csv"}
    if renamed:
        out.append(
            "district file names made distinct and safe: "
            + "; ".join(f"{shown(d)} -> {shown(f)}" for d, f in renamed.items())
        )
    spoofing = summary.get("spoofing_warnings", 0)
    out.append(
        f"warnings: {summary['warnings']} residents ({spoofing} of a spoofed caller) -> "
        f"{shown(str(target / 'warnings.csv'))}"
        if spoofing
        else f"warnings: {summary['warnings']} residents -> {shown(str(target / 'warnings.csv'))}"
    )
    if summary.get("spoofing_campaigns"):
        out.append(
            f"caller-ID spoofing: {summary['spoofing_campaigns']} campaign(s) -> "
            f"{shown(str(target / 'analysts' / 'spoofing.csv'))}"
        )
    if summary["unlocated"]:
        out.append(
            f"unlocated dens: {summary['unlocated']} -> {shown(str(target / 'analysts' / 'unlocated_dens.csv'))}"
        )
    if summary.get("suppressed"):
        out.append(
            f"suppressed (cleared by the field, behaviour unchanged): {summary['suppressed']} -> "
            f"{shown(str(target / 'analysts' / 'suppressed.csv'))}"
        )
    if summary["dropped_whitelisted_dens"]:
        out.append(f"dropped {summary['dropped_whitelisted_dens']} dens made only of whitelisted numbers")
    if summary["partial_reasons"]:
        out.append(
            f"[yellow]partial:[/] {shown('; '.join(summary['partial_reasons']))} -> {shown(str(target / PARTIAL_FILE))}"
        )
    return out


def report_view(written) -> list[Any]:
    """The page written and what it counts (jobs.report.ReportWritten)."""
    numbers, path = written.numbers, written.path
    status = numbers.dens_by("status") if numbers.dens.height else {}
    dens = ", ".join(f"{status.get(s, 0)} {s}" for s in ("new", "continuing", "moved"))
    return [
        escape(
            f"report {numbers.day} -> {path}: {numbers.rows_ingested:,} CDRs, {numbers.n_flags} flags, "
            f"{numbers.dens.height} dens ({dens})"
        )
        + (" [yellow]partial night[/]" if numbers.partial else "")
    ]


def feedback_view(done) -> list[Any]:
    """One line per file of field feedback (the rejected rows are warnings, shown as they happen)."""
    if not done:
        return ["feedback: no new files"]
    return [
        escape(
            f"feedback {f.path}: {f.status}"
            + (
                f", {f.rows} row(s): {f.new_visits} new visit(s) of "
                f"{f.visits}, {f.not_visited} not visited, "
                f"{len(f.problems)} rejected"
                if f.status == "imported"
                else ""
            )
        )
        for f in done
    ]


def step_view(result) -> list[Any]:
    """What the CLI prints after a step (a jobs.pipeline.StepResult): the step's declared `view`
    (a function of this module) applied to its detail."""
    from jobs.pipeline import STEPS

    return globals()[STEPS[result.step].view](result.detail)


# ---------------------------------------------------------------- nightly


def nightly_table(config: Config, nights: list[dt.date], reports: dict[dt.date, Path]) -> Table:
    """One line per night: CDRs, quarantined rows, flags, dens (new/continuing/moved), warnings,
    partial or not, and the report; read back from the lake and outbox (jobs.report.data)."""
    from jobs.report.data import night_numbers

    table = Table(title="nightly summary")
    table.add_column("night", no_wrap=True, min_width=10)
    for name in ("CDRs", "quarantined", "flags", "dens", "new / cont. / moved", "warnings"):
        table.add_column(name, justify="right")
    table.add_column("partial")
    table.add_column("report", overflow="fold")
    outbox = layout.outbox_root(config)
    for day in nights:
        n = night_numbers(config, day)
        status = n.dens_by("status") if n.dens.height else {}
        table.add_row(
            day.isoformat(),
            f"{n.rows_ingested:,}",
            f"{n.quarantined:,}",
            f"{n.n_flags:,}",
            str(n.dens.height),
            "/".join(str(status.get(s, 0)) for s in ("new", "continuing", "moved")),
            "–" if n.warnings is None else f"{n.warnings:,}",
            "[yellow]partial[/]" if n.partial else "no",
            escape(str(_relative_to(reports[day], outbox))) if day in reports else "–",
        )
    return table


def nightly_end(config: Config, done: dict[dt.date, list]) -> list[Any]:
    """The summary `cdrwatch nightly` ends with: the table, where the reports and leads are, the
    last night's dens per district, and every partial night with its reasons."""
    reports = {
        day: Path(r.paths["report"])
        for day, results in done.items()
        for r in results
        if r.step == "report" and "report" in r.paths
    }
    exports = {day: r.detail for day, results in done.items() for r in results if r.step == "export"}
    out: list[Any] = [nightly_table(config, list(done), reports)]
    if reports:
        out.append(escape(f"reports: {config.paths.outbox}/<night>/report.html (self-contained: open in any browser)"))
    if exports:
        exported = exports[max(exports)]
        per_district = ", ".join(f"{d} {n}" for d, n in exported["dens"].items()) or "no districts"
        out.append(
            escape(
                f"dens on {exported['date']}: {per_district}"
                f" ({exported['unlocated']} unlocated); warnings: {exported['warnings']}"
            )
        )
        outbox = Path(exported["outbox"])
        out.append(
            escape(
                f"leads: {outbox / 'leads'}; warnings: {outbox / 'warnings.csv'} "
                "(each CSV has an .xlsx twin for Excel/WPS)"
            )
        )
    for night, summary in exports.items():
        reasons = summary.get("partial_reasons") or [
            f"no files from {c}" for c in summary.get("missing_carriers") or []
        ]
        if reasons:
            out.append(
                f"[yellow]partial night {night}:[/] " + escape(f"{'; '.join(reasons)} (outbox/{night}/PARTIAL.txt)")
            )
    return out


def _relative_to(path: Path, root: Path) -> Path:
    try:
        return path.relative_to(root)
    except ValueError:
        return path


# ---------------------------------------------------------------- log records


def print_warnings(console: Console, warnings: list[str]) -> None:
    """Warnings one line each; they quote input data, which is never console markup."""
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)


class ConsoleLogHandler(logging.Handler):
    """Log records as console lines: a warning as `warning: ...` in yellow, an error as `error: ...`,
    info plain (only shown with -v). The message is data: escaped."""

    def __init__(self, console: Console, level: int = logging.WARNING):
        super().__init__(level)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = escape(record.getMessage())
            if record.levelno >= logging.ERROR:
                self.console.print(f"[red]error:[/] {message}", soft_wrap=True)
            elif record.levelno >= logging.WARNING:
                self.console.print(f"[yellow]warning:[/] {message}", soft_wrap=True)
            else:
                self.console.print(message, soft_wrap=True, style="dim")
        except Exception:  # a broken console must not break the step
            self.handleError(record)
