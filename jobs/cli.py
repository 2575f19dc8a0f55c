"""`cdrwatch`: the command line of DESIGN.md. Parses arguments, loads the conf, calls a step.

Each step lives in its own module of `jobs/`; this file only wires them. Every failure the user can
fix ends in one line on stderr and a non-zero exit; `--debug` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from jobs.config import Config, load_config
from jobs.errors import CdrwatchError

console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)

# Pipeline steps in nightly order.
PIPELINE = ("ingest", "detect", "dens", "export", "report")
_live = None  # the Progress display on screen (nightly's), which a step's own progress joins


@contextmanager
def progress_bar(description: str, total: float | None = None):
    """A task on the Progress display already on screen (nightly's), else on a new one; yields
    `update(what, done, total)`. Transient, so a terminal keeps only the steps' own output, and
    silent when the output is not a terminal (a log file, the tests)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    global _live
    own = _live is None
    progress = _live or Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, transient=True)
    if own:
        progress.start()
        _live = progress
    description = escape(description)
    task = progress.add_task(description, total=total)

    def update(what: str | None = None, done: float | None = None, total: float | None = None) -> None:
        progress.update(task, description=f"{description}: {escape(what)}" if what else description,
                        completed=done, total=total)

    try:
        yield update
    finally:
        progress.remove_task(task)
        if own:
            progress.stop()
            _live = None


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that says where to look for help."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="cdrwatch",
        description="Telecom CDRs in, fraud-den leads for field units out. See README.md.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)

    common = OneLineParser(add_help=False)
    group = common.add_argument_group("paths and configuration (every command)")
    group.add_argument("--landing", help="landing zone (default: conf paths.landing)")
    group.add_argument("--lake", help="Parquet lake (default: conf paths.lake)")
    group.add_argument("--outbox", help="outbox (default: conf paths.outbox)")
    group.add_argument("--conf", help="YAML merged over conf/default.yaml")
    group.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override one setting, e.g. --set detectors.goip.min_score=0.7 (repeatable)")

    sim = commands.add_parser("simulate", parents=[common], help="write a synthetic city's landing zone + truth/")
    sim.add_argument("--out", help="landing folder to write (default: --landing)")
    sim.add_argument("--start", type=parse_date, required=True, help="first date, YYYY-MM-DD")
    sim.add_argument("--days", type=int, default=7)
    sim.add_argument("--subscribers", type=int, default=3000)
    sim.add_argument("--dens", type=int, default=4)
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--no-manifest", dest="manifests", action="store_false",
                     help="write no _MANIFEST.csv (as a carrier that sends none)")

    for step, text in (("ingest", "landing/<carrier>/D/ -> lake/cdr, lake/quarantine (validated)"),
                       ("detect", "lake/cdr -> lake/flags"),
                       ("dens", "lake/flags -> lake/dens"),
                       ("export", "lake/dens -> outbox/D/leads/<district>.csv, warnings.csv"),
                       ("report", "outbox/D/report.html")):
        p = commands.add_parser(step, parents=[common], help=text)
        p.add_argument("--date", type=parse_date, required=True)

    nightly = commands.add_parser("nightly", parents=[common], help="every step, per date, in order")
    when = nightly.add_mutually_exclusive_group(required=True)
    when.add_argument("--date", type=parse_date)
    when.add_argument("--from", dest="date_from", type=parse_date)
    nightly.add_argument("--to", dest="date_to", type=parse_date)

    ev = commands.add_parser("evaluate", parents=[common], help="precision/recall against a simulated truth/")
    ev.add_argument("--truth", required=True)
    ev.add_argument("--date", type=parse_date, required=True)
    return parser


def config_from(args: argparse.Namespace) -> Config:
    config = load_config(args.conf, args.set)
    return config.with_paths(landing=args.landing, lake=args.lake, outbox=args.outbox)


def run_simulate(args: argparse.Namespace, config: Config) -> None:
    for name in ("days", "subscribers", "dens"):
        if getattr(args, name) < (0 if name == "dens" else 1):
            raise CdrwatchError(f"simulate: --{name} must be {'>= 0' if name == 'dens' else 'positive'}")
    from rich.progress import Progress

    from jobs.simulate import simulate

    out = Path(args.out) if args.out else config.paths.landing
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"simulating {args.days} days", total=args.days)
        summary = simulate(out, args.start, args.days, subscribers=args.subscribers, dens=args.dens,
                           seed=args.seed, timezone=config.timezone, manifests=args.manifests,
                           on_day=lambda day, rows: progress.advance(task))
    console.print(escape(str(summary)))


@contextmanager
def date_locked(config: Config, day: date, step: str):
    """The date's lock for the length of a step (jobs.lake.date_lock): a second run of the same
    date stops at once naming the first; taking it repairs what a killed run of the date left."""
    from jobs import lake

    with lake.date_lock(config, day, step, report=lambda line: console.print(f"[yellow]repair:[/] {escape(line)}")):
        yield


def run_ingest(args: argparse.Namespace, config: Config):
    from jobs.ingest import ingest_date

    with date_locked(config, args.date, "ingest"), progress_bar(f"ingest {args.date}") as update:
        return ingest_date(config, args.date, console=console, progress=update)


def run_detect(args: argparse.Namespace, config: Config) -> None:
    from jobs.detect import detect_date

    with date_locked(config, args.date, "detect"):
        detect_date(config, args.date, console=console)


def run_dens(args: argparse.Namespace, config: Config) -> None:
    from jobs.dens import dens_date

    with date_locked(config, args.date, "dens"):
        dens_date(config, args.date, console=console)


def run_export(args: argparse.Namespace, config: Config) -> dict:
    from jobs.export import export_date

    with date_locked(config, args.date, "export"):
        return export_date(config, args.date, console=console)


def run_report(args: argparse.Namespace, config: Config) -> Path:
    from jobs.report import report_date

    with date_locked(config, args.date, "report"):
        return report_date(config, args.date, console=console)


def run_evaluate(args: argparse.Namespace, config: Config) -> None:
    from jobs.evaluate import evaluate, read_flags

    console.print(evaluate(read_flags(config, args.date), Path(args.truth), args.date).table())


def run_nightly(args: argparse.Namespace, config: Config) -> None:
    if args.date:
        first = last = args.date
    else:
        if not args.date_to:
            raise CdrwatchError("nightly: --from needs --to")
        first, last = args.date_from, args.date_to
        if last < first:
            raise CdrwatchError(f"nightly: --to {last} is before --from {first}")
    steps = PIPELINE
    nights = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    exported = None
    partial: dict[date, list[str]] = {}  # night -> why it is partial (ingest's partial_reasons)
    reports: dict[date, Path] = {}
    with progress_bar("nightly", total=len(nights) * len(steps)) as update:
        for n, day in enumerate(nights):
            console.rule(f"nightly {day}")
            with date_locked(config, day, "nightly"):
                for i, step in enumerate(steps):
                    update(f"{day} {step}", n * len(steps) + i)
                    result = STEPS[step](argparse.Namespace(**{**vars(args), "date": day}), config)
                    if step == "export":
                        exported = result
                        reasons = result.get("partial_reasons") or [
                            f"no files from {c}" for c in result.get("missing_carriers") or []]
                        if reasons:
                            partial[day] = reasons
                    elif step == "report" and result is not None:
                        reports[day] = Path(result)
            update(f"{day} done", (n + 1) * len(steps))
    console.rule(f"nightly {first}..{last} done")
    console.print(nightly_table(config, nights, reports))
    if reports:
        console.print(escape(f"reports: {config.paths.outbox}/<night>/report.html "
                             "(self-contained: open in any browser)"))
    if exported:
        per_district = ", ".join(f"{d} {n}" for d, n in exported["dens"].items()) or "no districts"
        console.print(escape(f"dens on {exported['date']}: {per_district}"
                             f" ({exported['unlocated']} unlocated); warnings: {exported['warnings']}"))
        outbox = Path(exported["outbox"])
        console.print(escape(f"leads: {outbox / 'leads'}; warnings: {outbox / 'warnings.csv'} "
                             "(each CSV has an .xlsx twin for Excel/WPS)"))
    for night, reasons in partial.items():
        console.print(f"[yellow]partial night {night}:[/] " + escape(f"{'; '.join(reasons)} "
                                                                    f"(outbox/{night}/PARTIAL.txt)"))


def nightly_table(config: Config, nights: list[date], reports: dict[date, Path]):
    """One line per night: CDRs, quarantined rows, flags, dens (new/continuing/moved), warnings,
    partial or not, and the report; read back from the lake and outbox (jobs.report.data)."""
    from rich.table import Table

    from jobs.report.data import night_numbers

    table = Table(title="nightly summary")
    table.add_column("night", no_wrap=True, min_width=10)
    for name in ("CDRs", "quarantined", "flags", "dens", "new / cont. / moved", "warnings"):
        table.add_column(name, justify="right")
    table.add_column("partial")
    table.add_column("report", overflow="fold")
    outbox = Path(config.paths.outbox)
    for day in nights:
        n = night_numbers(config, day)
        status = n.dens_by("status") if n.dens.height else {}
        table.add_row(day.isoformat(), f"{n.rows_ingested:,}", f"{n.quarantined:,}", f"{n.n_flags:,}",
                      str(n.dens.height), "/".join(str(status.get(s, 0)) for s in ("new", "continuing", "moved")),
                      "–" if n.warnings is None else f"{n.warnings:,}",
                      "[yellow]partial[/]" if n.partial else "no",
                      escape(str(_relative_to(reports[day], outbox))) if day in reports else "–")
    return table


def _relative_to(path: Path, root: Path) -> Path:
    try:
        return path.relative_to(root)
    except ValueError:
        return path


STEPS = {"simulate": run_simulate, "ingest": run_ingest, "detect": run_detect, "dens": run_dens,
         "export": run_export, "report": run_report, "evaluate": run_evaluate,
         "nightly": run_nightly}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from(args)
        STEPS[args.command](args, config)
        return 0
    except KeyboardInterrupt:
        print("cdrwatch: interrupted", file=sys.stderr)
        return 130
    except CdrwatchError as err:
        if args.debug:
            raise
        print(f"cdrwatch: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # a bug or an environment problem: still one line unless --debug
        if args.debug:
            raise
        first_line = (str(err).strip().splitlines() or [""])[0]
        print(f"cdrwatch: unexpected {type(err).__name__}: {first_line} (rerun with --debug for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
