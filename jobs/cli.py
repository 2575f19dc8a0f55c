"""`cdrwatch`: the command line of docs/contracts.md. Parses arguments, loads the conf, runs steps
through `jobs.pipeline` and renders their results (`jobs.render`).

Every failure the user can fix ends in one line on stderr and a non-zero exit (2); `--debug` shows
the traceback instead. Warnings are log records, shown as `warning: ...` lines; `-v` also shows
each step's log lines and, under `nightly`, each step's tables.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from jobs import pipeline
from jobs.config import ENGINES, Config, load_config
from jobs.errors import CdrwatchError

console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
_live = None  # the Progress display on screen (nightly's), which a step's own progress joins


@contextmanager
def progress_bar(description: str, total: float | None = None):
    """A task on the Progress display already on screen (nightly's), else on a new one; yields
    `update(what, done, total)`. Transient, so a terminal keeps only the steps' own output, and
    silent when the output is not a terminal (a log file, the tests)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    global _live
    own = _live is None
    progress = _live or Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    if own:
        progress.start()
        _live = progress
    description = escape(description)
    task = progress.add_task(description, total=total)

    def update(what: str | None = None, done: float | None = None, total: float | None = None) -> None:
        progress.update(
            task, description=f"{description}: {escape(what)}" if what else description, completed=done, total=total
        )

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
        description="Telecom CDRs in, fraud-den leads for field units out. See README.md and docs/.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show each step's log lines, and its tables under nightly"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)

    common = OneLineParser(add_help=False)
    group = common.add_argument_group("paths and configuration (every command)")
    group.add_argument("--landing", help="landing zone (default: conf paths.landing)")
    group.add_argument("--lake", help="Parquet lake (default: conf paths.lake)")
    group.add_argument("--outbox", help="outbox (default: conf paths.outbox)")
    group.add_argument("--conf", help="YAML merged over conf/default.yaml")
    group.add_argument(
        "--engine",
        choices=ENGINES,
        help="local: in-process, no JVM (Polars); spark: on Spark, spark.master in conf (default: conf engine)",
    )
    group.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set detectors.goip.min_score=0.7 (repeatable)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show each step's log lines, and its tables under nightly",
    )

    sim = commands.add_parser("simulate", parents=[common], help="write a synthetic city's landing zone + truth/")
    sim.add_argument("--out", help="landing folder to write (default: --landing)")
    sim.add_argument("--start", type=parse_date, help="first date, YYYY-MM-DD (required unless --feedback)")
    sim.add_argument("--days", type=int, default=7)
    sim.add_argument("--subscribers", type=int, default=3000)
    sim.add_argument(
        "--dens",
        type=int,
        default=4,
        help="dens to plant; kinds cycle: goip_shared, goip_fresh, room, sms_blaster, goip_hopping, "
        "low_slow, twin_boxes, goip_car (8 = one of each)",
    )
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument(
        "--no-manifest",
        dest="manifests",
        action="store_false",
        help="write no _MANIFEST.csv (as a carrier that sends none)",
    )
    sim.add_argument(
        "--raid-after",
        type=int,
        metavar="N",
        help="the first box den is raided the day after night N and comes back a day later with "
        "its box and fresh SIMs elsewhere (truth/raids.csv)",
    )
    sim.add_argument(
        "--lawful-gateways",
        type=int,
        default=0,
        metavar="K",
        help="plant K lawful SMS notification gateways (a GOIP box a parcel firm runs legally)",
    )
    sim.add_argument(
        "--spoofers",
        type=int,
        default=0,
        metavar="K",
        help="plant K overseas caller-ID spoofing gateways (改号), alternately showing residents' "
        "mobile numbers and protected numbers (110, 12345, banks' 95xxx) (truth/spoofed_legs.csv)",
    )
    sim.add_argument(
        "--clock-skew",
        type=int,
        default=0,
        metavar="S",
        help="the carriers' switch clocks are off by cm 0, cu +0.75*S, ct -S seconds (0..3600) in every "
        "record time they write",
    )
    sim.add_argument(
        "--feedback",
        action="store_true",
        help="instead of a city: the field units' answers to night --date's leads in --outbox, from "
        "truth/, written to <landing>/feedback/field_<next day>.csv",
    )
    sim.add_argument("--date", type=parse_date, help="with --feedback: the night whose leads were visited")

    for step in pipeline.STEPS.values():
        if step.command:
            p = commands.add_parser(step.name, parents=[common], help=step.help)
            p.add_argument("--date", type=parse_date, required=True)

    feedback = commands.add_parser(
        "feedback", help="field units' outcomes of visited leads -> lake/feedback, lake/hotlist"
    )
    actions = feedback.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=OneLineParser)
    imports = actions.add_parser(
        "import",
        parents=[common],
        help="import returned lead files (.xlsx) or CSVs; no FILE: those waiting in landing/feedback/",
    )
    imports.add_argument("files", nargs="*", metavar="FILE")

    nightly = commands.add_parser("nightly", parents=[common], help="every step, per date, in order")
    when = nightly.add_mutually_exclusive_group(required=True)
    when.add_argument("--date", type=parse_date)
    when.add_argument("--from", dest="date_from", type=parse_date)
    nightly.add_argument("--to", dest="date_to", type=parse_date)

    ev = commands.add_parser(
        "evaluate", parents=[common], help="a night's flags, or a range's dens and leads, against a simulated truth/"
    )
    ev.add_argument("--truth", help="the simulator's truth/ folder (not with --feedback)")
    ev.add_argument(
        "--feedback",
        action="store_true",
        help="with --from/--to: field precision from lake/feedback ((raided + confirmed) / visited) per "
        "priority, signal combination and district, and the leads not yet visited",
    )
    when = ev.add_mutually_exclusive_group(required=True)
    when.add_argument("--date", type=parse_date, help="one night: precision/recall of the flags")
    when.add_argument(
        "--from",
        dest="date_from",
        type=parse_date,
        help="with --to: per den kind recall, first lead, leads per den, id stability, victims, hard negatives",
    )
    ev.add_argument("--to", dest="date_to", type=parse_date)
    return parser


def config_from(args: argparse.Namespace) -> Config:
    config = load_config(args.conf, [*args.set, *([f"engine={args.engine}"] if args.engine else [])])
    return config.with_paths(landing=args.landing, lake=args.lake, outbox=args.outbox)


def tooling(module: str):
    """A module of `simulator/` (the synthetic city, the evaluator): demo and test tooling that lives
    beside the product in a checkout and is not installed with it, so it is imported from there."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as missing:
        if missing.name != "simulator":
            raise
    checkout = Path(__file__).resolve().parents[1]
    if not (checkout / "simulator" / "__init__.py").is_file():
        raise CdrwatchError(
            f"{module.split('.')[0]} is demo and test tooling of the cdrwatch checkout, not part of "
            f"this install: run `cdrwatch simulate` and `cdrwatch evaluate` from a checkout"
        ) from None
    sys.path.append(str(checkout))
    return importlib.import_module(module)


def run_simulate(args: argparse.Namespace, config: Config) -> None:
    out = Path(args.out) if args.out else config.paths.landing
    if args.feedback:
        if not args.date:
            raise CdrwatchError("simulate --feedback needs --date D (the night whose leads were visited)")
        written = tooling("simulator").write_field_feedback(out, Path(config.paths.outbox), args.date, seed=args.seed)
        console.print(
            escape(
                f"field feedback for the leads of {args.date}: "
                + (str(written) if written else "no lead to answer, nothing written")
            )
        )
        return
    if not args.start:
        raise CdrwatchError("simulate: --start is required (or --feedback --date D)")
    for name in ("days", "subscribers", "dens"):
        if getattr(args, name) < (0 if name == "dens" else 1):
            raise CdrwatchError(f"simulate: --{name} must be {'>= 0' if name == 'dens' else 'positive'}")
    from rich.progress import Progress

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"simulating {args.days} days", total=args.days)
        try:
            summary = tooling("simulator").simulate(
                out,
                args.start,
                args.days,
                subscribers=args.subscribers,
                dens=args.dens,
                seed=args.seed,
                timezone=config.timezone,
                manifests=args.manifests,
                on_day=lambda day, rows: progress.advance(task),
                raid_after=args.raid_after,
                lawful_gateways=args.lawful_gateways,
                spoofers=args.spoofers,
                clock_skew=args.clock_skew,
            )
        except ValueError as err:
            raise CdrwatchError(str(err)) from None
    console.print(escape(str(summary)))


def run_one(step: str):
    """`cdrwatch <step> --date D`: one step of the pipeline, its tables printed."""

    def run(args: argparse.Namespace, config: Config) -> pipeline.StepResult:
        from jobs.render import step_view

        with progress_bar(f"{step} {args.date}") as update:
            result = pipeline.run_step(step, config, args.date, progress=update if step == "ingest" else None)
        for renderable in step_view(result):
            console.print(renderable)
        return result

    return run


def run_feedback(args: argparse.Namespace, config: Config):
    """`feedback import [FILE...]`: every file's outcome on screen, each rejected row as one line on
    stderr; exit code 2 when a row or a file was rejected (the good rows are imported all the same)."""
    from jobs.feedback.store import import_files, pending_files
    from jobs.render import feedback_view

    paths = [Path(f) for f in args.files] or pending_files(config)
    done = import_files(config, paths)
    for line in feedback_view(done):
        console.print(line)
    problems = [p for f in done for p in f.problems]
    for problem in problems:
        print(f"cdrwatch: error: {problem}", file=sys.stderr)
    if problems:
        raise CdrwatchError(
            f"feedback: {len(problems)} row(s) or file(s) rejected (listed above); every other row was imported"
        )
    return done


def run_evaluate(args: argparse.Namespace, config: Config):
    """`--date D`: the night's flags per detector; `--from D1 --to D2`: the nights' dens and leads per
    den kind, the overall line and the hard negatives (with -v also per truth den)."""
    if args.feedback:
        if not (args.date_from and args.date_to):
            raise CdrwatchError("evaluate --feedback needs --from D1 --to D2")
        from jobs.feedback.precision import field_precision

        evaluation = field_precision(config, args.date_from, args.date_to)
        for renderable in evaluation.renderables():
            console.print(renderable)
        return evaluation
    if not args.truth:
        raise CdrwatchError("evaluate: --truth is required (the simulator's truth/ folder), or --feedback")
    evaluator = tooling("simulator.evaluate")
    if args.date:
        if args.date_to:
            raise CdrwatchError("evaluate: --to goes with --from, not --date")
        evaluation = evaluator.evaluate(evaluator.read_flags(config, args.date), Path(args.truth), args.date)
        console.print(evaluation.table())
        return evaluation
    if not args.date_to:
        raise CdrwatchError("evaluate: --from needs --to")
    evaluation = evaluator.evaluate_range(config, Path(args.truth), args.date_from, args.date_to)
    for renderable in evaluation.renderables(per_den=args.verbose):
        console.print(renderable)
    return evaluation


def run_nightly(args: argparse.Namespace, config: Config) -> dict:
    """Every step of every night in order (`jobs.pipeline.run_nights`), a progress bar meanwhile,
    then the nightly summary; with -v each step's tables as it finishes."""
    from jobs.render import nightly_end, step_view

    if args.date:
        first = last = args.date
    else:
        if not args.date_to:
            raise CdrwatchError("nightly: --from needs --to")
        first, last = args.date_from, args.date_to
    days = pipeline.nights(first, last)

    def shown(result: pipeline.StepResult) -> None:
        if args.verbose:
            console.rule(escape(f"{result.step} {result.day} ({result.seconds:.1f} s)"))
            for renderable in step_view(result):
                console.print(renderable)

    with progress_bar("nightly", total=len(days) * len(pipeline.NIGHTLY)) as update:
        done = pipeline.run_nights(config, first, last, progress=lambda what, i, n: update(what, i, n), on_step=shown)
    console.rule(f"nightly {first}..{last} done")
    for renderable in nightly_end(config, done):
        console.print(renderable)
    return done


COMMANDS = {
    "simulate": run_simulate,
    **{name: run_one(name) for name, step in pipeline.STEPS.items() if step.command},
    "feedback": run_feedback,
    "evaluate": run_evaluate,
    "nightly": run_nightly,
}


def show_logs(verbose: bool) -> None:
    """Log records of the steps (loggers `jobs.*`, `detectors.*`) on the console: warnings always,
    info with -v. Installed once per process (main may run many times in one)."""
    from jobs.render import ConsoleLogHandler

    for name in ("jobs", "detectors"):
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if isinstance(h, ConsoleLogHandler)]:
            logger.removeHandler(handler)
        logger.addHandler(ConsoleLogHandler(console, logging.INFO if verbose else logging.WARNING))
        logger.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    show_logs(args.verbose)
    try:
        config = config_from(args)
        COMMANDS[args.command](args, config)
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
        print(
            f"cdrwatch: unexpected {type(err).__name__}: {first_line} (rerun with --debug for details)", file=sys.stderr
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
