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
from typing import Any

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
    """`jobs.ingest.run_ingest` on Polars: the same lake partitions and summary for the same landing zone."""
    landing, deliveries, report = open_books(config, day)

    with lake_polars.DayWrite(config, day) as out:
        parsed = [parse_delivery(config, carrier, files, landing, report) for carrier, files in deliveries.items()]
        arrivals = routed_arrivals(config, day)
        if arrivals is not None:
            parsed.append(arrivals)
        if parsed:
            every = pl.concat(parsed, how="vertical")
            rows = classify(every, day, config.ingest.late_days, config.timezone)
            _tally(rows, report)
            report.check_balanced()
            check_lines(report, "Polars")
            failed = judge_validation(
                report, check, lambda carrier: accepted_rows(rows.filter(pl.col("carrier") == carrier))
            )
            if failed:
                rows = quarantine_carriers(rows, failed, every)
            _load(config, out, rows, report)
    judge_completeness(report)
    summaries.write_summary(config, "ingest", day, report.as_dict())
    return report


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


def parse_delivery(
    config: Config, carrier: str, files: list[Path], landing: Path, report: IngestReport
) -> pl.DataFrame:
    """A carrier's files parsed by its format, with the file-level verdicts of plain Python (a header
    that does not match quarantines its whole file; a damaged gzip's cut last line)."""
    frame = local_formats.parse(config.carriers[carrier].format, read_lines(files, landing), config.timezone)
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
    """`jobs.ingest.classify` on Polars: the parsed rows with `outcome` and `date`, `raw` only where
    kept. The local date of an event is taken in `timezone` (conf), as Spark's session takes it."""
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
    rows = rows.with_columns(_candidate=candidate, _routed=fine & ~candidate).sort("source_file", "source_line")
    # The first candidate of each (carrier, record_id) by (source_file, source_line) is the winner. Ids
    # that come more than once are few: only their rows are grouped to find each one's winner.
    record = pl.struct("carrier", "record_id")
    repeated = pl.col("_candidate") & pl.when(pl.col("_candidate")).then(record).is_duplicated()
    rows = rows.with_columns(_repeated=repeated)
    winner = ["source_file", "source_line", *CONTENT]
    winners = (
        rows.filter(pl.col("_repeated"))
        .group_by("carrier", "record_id", maintain_order=True)
        .agg(pl.col(c).first().alias(f"_w_{c}") for c in winner)
    )
    rows = rows.join(winners, on=["carrier", "record_id"], how="left", maintain_order="left").with_columns(
        [pl.when(pl.col("_repeated")).then(pl.col(f"_w_{c}")).alias(f"_w_{c}") for c in winner]
    )
    same = pl.all_horizontal([pl.col(c).eq_missing(pl.col(f"_w_{c}")) for c in CONTENT])
    outcome = (
        pl.when(pl.col("is_header"))
        .then(pl.lit(HEADER))
        .when(pl.col("reason").is_not_null())
        .then(pl.lit(QUARANTINED))
        .when(pl.col("_routed"))
        .then(pl.lit(ROUTED_OUT))
        .when(~pl.col("_repeated"))
        .then(pl.lit(ACCEPTED))
        .when((pl.col("_w_source_file") == pl.col("source_file")) & (pl.col("_w_source_line") == pl.col("source_line")))
        .then(pl.lit(ACCEPTED))
        .when(same)
        .then(pl.lit(DUPLICATE))
        .otherwise(pl.lit(CONFLICT))
    )
    conflict_reason = pl.concat_str(
        pl.lit(CONFLICT_PREFIX), pl.col("_w_source_file"), pl.lit(":"), pl.col("_w_source_line").cast(pl.String)
    )
    rows = rows.with_columns(outcome=outcome)
    return rows.with_columns(
        reason=pl.when(pl.col("outcome") == CONFLICT).then(conflict_reason).otherwise(pl.col("reason")),
        date=pl.when(pl.col("outcome").is_in([ACCEPTED, ROUTED_OUT])).then(pl.col("_event")).otherwise(pl.lit(day)),
        raw=pl.when(pl.col("outcome").is_in([HEADER, QUARANTINED, CONFLICT, ROUTED_OUT])).then(pl.col("raw")),
    ).drop("_event", "_off", "_candidate", "_routed", "_repeated", *[f"_w_{c}" for c in winner])


def accepted_rows(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.filter(pl.col("outcome") == ACCEPTED).select(CDR.names)


def quarantined_rows(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.filter(pl.col("outcome").is_in([QUARANTINED, CONFLICT])).select(QUARANTINE.names)


def routed_rows(rows: pl.DataFrame, day: dt.date) -> pl.DataFrame:
    """Routed rows as lake/routed rows of delivery date `day` (their own date in event_date)."""
    return (
        rows.filter(pl.col("outcome") == ROUTED_OUT)
        .with_columns(event_date=pl.col("date"), date=pl.lit(day))
        .select(ROUTED.names)
    )


def quarantine_carriers(rows: pl.DataFrame, failed: dict[str, str], parsed: pl.DataFrame) -> pl.DataFrame:
    """The accepted rows of carriers whose suite failed, moved to quarantine with their raw text."""
    is_failed = pl.col("carrier").is_in(list(failed)) & (pl.col("outcome") == ACCEPTED)
    raw = parsed.filter(pl.col("carrier").is_in(list(failed))).select(
        "carrier", "source_file", "source_line", pl.col("raw").alias("_raw_again")
    )
    return (
        rows.join(raw, on=["carrier", "source_file", "source_line"], how="left", nulls_equal=True)
        .with_columns(
            reason=pl.when(is_failed).then(pl.lit(formats.FAILED_VALIDATION)).otherwise(pl.col("reason")),
            raw=pl.when(is_failed).then(pl.col("_raw_again")).otherwise(pl.col("raw")),
            outcome=pl.when(is_failed).then(pl.lit(QUARANTINED)).otherwise(pl.col("outcome")),
        )
        .drop("_raw_again")
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


def _load(config: Config, out: lake_polars.DayWrite, rows: pl.DataFrame, report: IngestReport) -> None:
    """Stage the three tables, check the staged rows against the report, then swap them in."""
    per_file = config.ingest.rows_per_file
    out.write(CDR, accepted_rows(rows), sort_by=("msisdn", "start_time", "record_id"), max_rows_per_file=per_file)
    out.write(QUARANTINE, quarantined_rows(rows), sort_by=("source_file", "source_line"), max_rows_per_file=per_file)
    out.write(ROUTED, routed_rows(rows, report.day), sort_by=("source_file", "source_line"), max_rows_per_file=per_file)
    written = {
        (table.name, carrier, name): n
        for table in (CDR, QUARANTINE, ROUTED)
        for (carrier, name), n in out.staged_counts(table).items()
    }
    check_written(report, written)
    out.commit(sorted(report.files))
