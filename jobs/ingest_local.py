"""Ingest one delivery date on the local engine (Polars, no JVM): `jobs.ingest`'s twin.

The same steps and the same books (`jobs.ingest_books`): find the deliveries, inspect every file
once, check manifests and headers, read the lines in plain Python (`read_lines`, gunzipped as
`jobs.io.landing_files` reads them), parse each carrier's format (`jobs.formats.local`), classify
every line (header, accepted, quarantined, duplicate, conflict, routed), count, check the counts
against the independently counted lines, run the Great Expectations check per carrier, and stage,
check and commit lake/cdr, lake/quarantine and lake/routed (`jobs.io.lake_polars.DayWrite`). The
lake rows and the run summary are those the Spark ingest writes for the same landing zone
(tests/test_engines_ingest.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from jobs import formats
from jobs.config import Config
from jobs.formats import local as local_formats
from jobs.ingest_books import (
    ACCEPTED,
    CONFLICT,
    CONFLICT_PREFIX,
    CONTENT,
    DUPLICATE,
    HEADER,
    QUARANTINED,
    ROUTED_OUT,
    Group,
    IngestReport,
    check_lines,
    check_written,
    file_verdicts,
    judge_completeness,
    judge_validation,
    open_books,
    relative,
    tally,
    warn_routing,
)
from jobs.io import lake_polars, layout, summaries
from jobs.io.landing_files import GZIP_MAGIC
from schemas.tables import CDR, QUARANTINE, ROUTED

log = logging.getLogger(__name__)

LINES_SCHEMA = {"source_file": pl.String, "source_line": pl.Int64, "bytes": pl.Binary}
_CHUNK = 1 << 20


# ---------------------------------------------------------------- the step


def ingest_date_local(
    config: Config, day: dt.date, *, progress: Callable[[str, int, int], None] | None = None
) -> IngestReport:
    """The `cdrwatch ingest` step on the local engine: `run_ingest_local` with the Great Expectations
    suite (jobs.validate) run on each carrier's accepted rows, as `jobs.ingest.ingest_date` runs it."""
    from jobs import validate

    tell = progress or (lambda what, done, total: None)
    total = len(config.carriers) + 2
    tell("reading", 0, total)
    runs = layout.run_dir(config, "ingest", day)
    outcomes = {}

    def check(carrier: str, accepted: pl.DataFrame):
        outcome = validate.validate_cdr_partition(
            accepted, carrier, day, config, validate.recent_row_counts(config, carrier, day)
        )
        validate.save_validation(outcome, runs / f"validation_{carrier}.json")
        log.info(
            "%s: validation %s; volume %s%s",
            carrier,
            "passed" if outcome.success else "FAILED",
            outcome.volume,
            " (suspect)" if outcome.suspect else "",
        )
        outcomes[carrier] = outcome
        tell(f"validated {carrier}", 1 + len(outcomes), total)
        return outcome

    report = run_ingest_local(config, day, check=check)
    report.outcomes = outcomes
    tell("done", total, total)
    return report


def run_ingest_local(
    config: Config, day: dt.date, check: Callable[[str, pl.DataFrame], Any] | None = None
) -> IngestReport:
    """`jobs.ingest.run_ingest` on Polars: the same lake partitions and summary for the same landing
    zone. A carrier at a time (its ids are its own): read, classify, count, check, validate and stage
    it, so that only one carrier's night is in memory; all are swapped in together at the end."""
    landing, deliveries, report = open_books(config, day)
    arrivals = routed_arrivals(config, day)
    carriers = sorted(set(deliveries) | set(() if arrivals is None else arrivals["carrier"].unique().to_list()))

    with lake_polars.DayWrite(config, day) as out:
        for carrier in carriers:
            parsed = []
            if carrier in deliveries:
                parsed.append(parse_delivery(config, carrier, deliveries[carrier], landing, report))
            if arrivals is not None:
                parsed.append(arrivals.filter(pl.col("carrier") == carrier))
            _ingest_carrier(config, carrier, pl.concat(parsed, how="vertical"), report, check, out)
        warn_routing(report)
        _commit(out, report)
    judge_completeness(report)
    summaries.write_summary(config, "ingest", day, report.as_dict())
    return report


def _ingest_carrier(
    config: Config,
    carrier: str,
    parsed: pl.DataFrame,
    report: IngestReport,
    check: Callable[[str, pl.DataFrame], Any] | None,
    out: lake_polars.DayWrite,
) -> None:
    """One carrier's parsed rows classified, counted, checked against its files, validated and staged."""
    rows = classify(parsed, report.day, config.ingest.late_days, config.timezone)
    _tally(rows, report)
    report.check_balanced([carrier])
    check_lines(report, "Polars", [carrier])
    failed = judge_validation(report, check, lambda _: accepted_rows(rows), [carrier])
    if failed:
        rows = quarantine_carriers(rows, failed)
    _stage(config, out, rows, report)


# ---------------------------------------------------------------- extract


def read_lines(files: list[Path], landing: Path) -> pl.DataFrame:
    """One row per physical line of `files`: source_file (relative to landing), source_line
    (1-based), bytes (as delivered, minus '\\n'), as `jobs.ingest.read_lines` gives them: gzip (by
    its magic bytes, several members too) decompressed, a damaged gzip up to the damage
    (`landing_files.rescue_readable`), lines split on '\\n' only."""
    frames = []
    for path in files:
        pieces = file_content(path).split(b"\n")
        if pieces[-1] == b"":  # no line after a final '\n' (nor in an empty file)
            pieces.pop()
        frames.append(
            pl.DataFrame(
                {
                    "source_file": pl.repeat(relative(path, landing), len(pieces), dtype=pl.String, eager=True),
                    "source_line": pl.int_range(1, len(pieces) + 1, dtype=pl.Int64, eager=True),
                    "bytes": pl.Series(values=pieces, dtype=pl.Binary),
                },
                schema=LINES_SCHEMA,
            )
        )
    return pl.concat(frames) if frames else pl.DataFrame(schema=LINES_SCHEMA)


def file_content(path: Path) -> bytes:
    """The file's content: its bytes, or gunzipped (members one after another) up to any damage."""
    with open(path, "rb") as handle:
        data = handle.read()
    if data[:2] != GZIP_MAGIC:
        return data
    out = []
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    for start in range(0, len(data), _CHUNK):  # chunk by chunk, as rescue_readable stops at the damage
        try:
            out.append(inflater.decompress(data[start : start + _CHUNK]))
            while inflater.eof and inflater.unused_data:
                rest = inflater.unused_data
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                out.append(inflater.decompress(rest))
        except zlib.error:
            break
    return b"".join(out)


# Lines parsed at a time: a parse holds a dozen columns of intermediate text per line, so a large
# file is parsed in slices (the formats read line by line, so slices parse as the whole would).
_LINES_AT_ONCE = 200_000


def parse_delivery(
    config: Config, carrier: str, files: list[Path], landing: Path, report: IngestReport
) -> pl.DataFrame:
    """A carrier's files parsed by its format, with the file-level verdicts of plain Python (a header
    that does not match quarantines its whole file; a damaged gzip's cut last line)."""
    format_name = config.carriers[carrier].format
    parsed = [
        local_formats.parse(format_name, lines, config.timezone)
        for path in files
        for lines in read_lines([path], landing).iter_slices(_LINES_AT_ONCE)
    ]
    frame = pl.concat(parsed) if parsed else local_formats.parse(format_name, read_lines([], landing), config.timezone)
    bad_header, cut = file_verdicts(report, carrier, files, landing)
    if bad_header:
        in_bad = pl.col("source_file").is_in(bad_header)
        frame = frame.with_columns(
            reason=pl.when(in_bad).then(pl.lit(formats.HEADER_MISMATCH)).otherwise(pl.col("reason")),
            is_header=pl.col("is_header") & ~in_bad,
        )
    if cut:
        last = pl.lit(False)
        for name, line in cut:
            last = last | ((pl.col("source_file") == name) & (pl.col("source_line") == line))
        frame = frame.with_columns(
            reason=pl.when(last & ~pl.col("is_header")).then(pl.lit(formats.CUT_BY_DAMAGE)).otherwise(pl.col("reason"))
        )
    return frame.with_columns(carrier=pl.lit(carrier), arrived=pl.lit(False))


def routed_arrivals(config: Config, day: dt.date) -> pl.DataFrame | None:
    """Records of `day` that the ingests of the `ingest.late_days` dates around it kept in
    lake/routed (event_date = day), as parsed rows of their own carrier, or None."""
    days = [day + dt.timedelta(days=k) for k in range(-config.ingest.late_days, config.ingest.late_days + 1) if k]
    if not any(layout.partition_path(config, ROUTED, d).is_dir() for d in days):
        return None
    scan = lake_polars.scan_days(config, ROUTED, days)
    if scan is None:
        return _empty_parsed()
    routed = scan.filter(
        (pl.col("event_date") == pl.lit(day)) & pl.col("carrier").is_in(list(config.carriers))
    ).collect()
    return routed.select(
        *[
            pl.lit(False).alias(c)
            if c == "is_header"
            else pl.lit(None, pl.String).alias(c)
            if c == "reason"
            else pl.col(c).cast(local_formats.PARSED_SCHEMA[c])
            for c in formats.PARSED_COLUMNS
        ],
        pl.col("carrier").cast(pl.String),
        pl.lit(True).alias("arrived"),
    )


def _empty_parsed() -> pl.DataFrame:
    return pl.DataFrame(schema={**local_formats.PARSED_SCHEMA, "carrier": pl.String, "arrived": pl.Boolean})


# ---------------------------------------------------------------- transform


def classify(parsed: pl.DataFrame, day: dt.date, late_days: int, timezone: str) -> pl.DataFrame:
    """`jobs.ingest.classify` on Polars: the parsed rows, in their order, with `outcome` and `date`.
    The local date of an event is taken in `timezone` (conf), as Spark's session takes it. `raw` is
    left on every row (the parsed frame's own column, no copy): the writers keep it where the lake
    keeps it."""
    event_date = pl.col("start_time").dt.convert_time_zone(timezone).dt.date()
    rows = parsed.with_columns(_event=event_date).with_columns(_off=(pl.col("_event") - pl.lit(day)).dt.total_days())
    valid = ~pl.col("is_header") & pl.col("reason").is_null()
    rows = rows.with_columns(
        reason=pl.coalesce(
            pl.col("reason"),
            pl.when(valid & (pl.col("_off").abs() > late_days)).then(pl.lit(formats.OUTSIDE_DELIVERY_DATE)),
        )
    )
    fine = ~pl.col("is_header") & pl.col("reason").is_null()
    candidate = fine & ((pl.col("_off") == 0) | pl.col("arrived"))
    record = pl.struct("carrier", "record_id")
    rows = rows.with_columns(
        _routed=fine & ~candidate, _repeated=candidate & pl.when(candidate).then(record).is_duplicated()
    )
    rows = rows.with_columns(
        outcome=pl.when(pl.col("is_header"))
        .then(pl.lit(HEADER))
        .when(pl.col("reason").is_not_null())
        .then(pl.lit(QUARANTINED))
        .when(pl.col("_routed"))
        .then(pl.lit(ROUTED_OUT))
        .otherwise(pl.lit(ACCEPTED))
    )
    repeated = rows["_repeated"].arg_true()
    if len(repeated):  # few: only these rows are sorted and grouped
        judged = _judge_repeated(rows[repeated].with_columns(_row=repeated))
        rows = rows.with_columns(
            outcome=rows["outcome"].clone().scatter(judged["_row"], judged["outcome"]),
            reason=rows["reason"].clone().scatter(judged["_row"], judged["reason"]),
        )
    return rows.with_columns(
        date=pl.when(pl.col("outcome").is_in([ACCEPTED, ROUTED_OUT])).then(pl.col("_event")).otherwise(pl.lit(day)),
    ).drop("_event", "_off", "_routed", "_repeated")


def _judge_repeated(rows: pl.DataFrame) -> pl.DataFrame:
    """Candidates whose (carrier, record_id) comes more than once: the first by (source_file,
    source_line) is accepted, a later one with the same content is a duplicate, with other content
    a conflict (its reason names the winner's line). Returns `_row`, `outcome`, `reason`."""
    group = ["carrier", "record_id"]
    rows = rows.sort("source_file", "source_line").with_columns(
        pl.col(c).first().over(group).alias(f"_w_{c}") for c in ("source_file", "source_line", *CONTENT)
    )
    same = pl.all_horizontal([pl.col(c).eq_missing(pl.col(f"_w_{c}")) for c in CONTENT])
    first = (pl.col("_w_source_file") == pl.col("source_file")) & (pl.col("_w_source_line") == pl.col("source_line"))
    conflict = pl.concat_str(
        pl.lit(CONFLICT_PREFIX), pl.col("_w_source_file"), pl.lit(":"), pl.col("_w_source_line").cast(pl.String)
    )
    return rows.select(
        "_row",
        outcome=pl.when(first).then(pl.lit(ACCEPTED)).when(same).then(pl.lit(DUPLICATE)).otherwise(pl.lit(CONFLICT)),
        reason=pl.when(~first & ~same).then(conflict).otherwise(pl.col("reason")),
    )


Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


def accepted_rows(rows: Frame) -> Frame:
    return rows.filter(pl.col("outcome") == ACCEPTED).select(CDR.names)


def quarantined_rows(rows: Frame) -> Frame:
    return rows.filter(pl.col("outcome").is_in([QUARANTINED, CONFLICT])).select(QUARANTINE.names)


def routed_rows(rows: Frame, day: dt.date) -> Frame:
    """Routed rows as lake/routed rows of delivery date `day` (their own date in event_date)."""
    return (
        rows.filter(pl.col("outcome") == ROUTED_OUT)
        .with_columns(event_date=pl.col("date"), date=pl.lit(day))
        .select(ROUTED.names)
    )


def quarantine_carriers(rows: pl.DataFrame, failed: dict[str, str]) -> pl.DataFrame:
    """The accepted rows of carriers whose suite failed, moved to quarantine (their raw text is on the row)."""
    is_failed = pl.col("carrier").is_in(list(failed)) & (pl.col("outcome") == ACCEPTED)
    return rows.with_columns(
        reason=pl.when(is_failed).then(pl.lit(formats.FAILED_VALIDATION)).otherwise(pl.col("reason")),
        outcome=pl.when(is_failed).then(pl.lit(QUARANTINED)).otherwise(pl.col("outcome")),
    )


def _tally(rows: pl.DataFrame, report: IngestReport) -> None:
    """Fill the report's counts from one aggregation (a conflict's reason counts as one kind)."""
    groups = rows.group_by(
        "carrier",
        "source_file",
        "arrived",
        "outcome",
        pl.when(pl.col("outcome") != CONFLICT).then(pl.col("reason")).alias("kind"),
        pl.when(pl.col("outcome") == ROUTED_OUT).then(pl.col("date")).alias("routed_to"),
    ).agg(
        pl.len().alias("count"),
        pl.col("source_line").min().alias("first_line"),
        pl.col("source_line").max().alias("last_line"),
    )
    tally(report, (Group(**g) for g in groups.iter_rows(named=True)))


# ---------------------------------------------------------------- load


def _stage(config: Config, out: lake_polars.DayWrite, rows: pl.DataFrame, report: IngestReport) -> None:
    """Stage the three tables' rows (of one carrier or more)."""
    per_file = config.ingest.rows_per_file
    lazy = rows.lazy()  # a table's rows are gathered only when they are written
    out.write(CDR, accepted_rows(lazy), sort_by=("msisdn", "start_time", "record_id"), max_rows_per_file=per_file)
    out.write(QUARANTINE, quarantined_rows(lazy), sort_by=("source_file", "source_line"), max_rows_per_file=per_file)
    out.write(ROUTED, routed_rows(lazy, report.day), sort_by=("source_file", "source_line"), max_rows_per_file=per_file)


def _commit(out: lake_polars.DayWrite, report: IngestReport) -> None:
    """Check the staged rows against the report, then swap them in."""
    written = {
        (table.name, carrier, name): n
        for table in (CDR, QUARANTINE, ROUTED)
        for (carrier, name), n in out.staged_counts(table).items()
    }
    check_written(report, written)
    out.commit(sorted(report.files))
