"""`cdrwatch`: the command line of DESIGN.md. Parses arguments, loads the conf, calls a step.

Each step lives in its own module of `jobs/`; this file only wires them. Every failure the user can
fix ends in one line on stderr and a non-zero exit; `--debug` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import sys
from datetime import date, timedelta
from pathlib import Path

from rich.console import Console

from jobs.config import Config, load_config
from jobs.errors import CdrwatchError, NotBuiltYet

console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)

# Pipeline steps in nightly order; a step not built yet names the issue that will bring it.
PIPELINE = ("ingest", "detect", "dens", "export", "report")
NOT_BUILT = {"report": 7}


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
                           seed=args.seed, timezone=config.timezone,
                           on_day=lambda day, rows: progress.advance(task))
    console.print(str(summary))


def run_ingest(args: argparse.Namespace, config: Config) -> None:
    from jobs.ingest import ingest_date

    ingest_date(config, args.date, console=console)


def run_detect(args: argparse.Namespace, config: Config) -> None:
    from jobs.detect import detect_date

    detect_date(config, args.date, console=console)


def run_dens(args: argparse.Namespace, config: Config) -> None:
    from jobs.dens import dens_date

    dens_date(config, args.date, console=console)


def run_export(args: argparse.Namespace, config: Config) -> dict:
    from jobs.export import export_date

    return export_date(config, args.date, console=console)


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
    missing = [step for step in PIPELINE if step in NOT_BUILT]
    day = first
    exported = None
    while day <= last:
        console.rule(f"nightly {day}")
        for step in PIPELINE:
            if step not in NOT_BUILT:
                result = STEPS[step](argparse.Namespace(**{**vars(args), "date": day}), config)
                if step == "export":
                    exported = result
        day += timedelta(days=1)
    if exported:
        per_district = ", ".join(f"{d} {n}" for d, n in exported["dens"].items()) or "no districts"
        console.rule(f"nightly {first}..{last} done")
        console.print(f"dens on {exported['date']}: {per_district}"
                      f" ({exported['unlocated']} unlocated); warnings: {exported['warnings']}")
        outbox = Path(exported["outbox"])
        console.print(f"leads: {outbox / 'leads'}; warnings: {outbox / 'warnings.csv'}")
    if missing:  # the leads are out; a missing later step is named, not a failure of the night
        built = ", ".join(step for step in PIPELINE if step not in NOT_BUILT)
        console.print(f"nightly: ran {built}; not built yet: {', '.join(missing)} "
                      f"(issues #{', #'.join(str(NOT_BUILT[s]) for s in missing)})")


STEPS = {"simulate": run_simulate, "ingest": run_ingest, "detect": run_detect, "dens": run_dens,
         "export": run_export, "evaluate": run_evaluate,
         "nightly": run_nightly}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from(args)
        if args.command in NOT_BUILT:
            raise NotBuiltYet(f"{args.command}: not built yet (issue #{NOT_BUILT[args.command]})")
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
