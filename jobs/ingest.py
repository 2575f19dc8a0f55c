"""Ingest one delivery date: landing/<carrier>/<D>/ files -> lake/cdr, lake/quarantine, lake/routed.

extract (`find_deliveries`, `inspect_file`, `read_lines`) -> transform (a format's `parse`,
`classify`) -> load (`lake_spark.DayWrite`). Every physical line of every file ends as exactly one of:
header, accepted, quarantined (with a reason), duplicate, conflicting duplicate (quarantined,
naming the row it conflicts with) or routed (a valid record of another date, kept in lake/routed
until its own date is ingested). The counts per file must add up to the file's line count, counted
independently of Spark, and must match what was written, before anything in the lake is replaced.

A bad value costs one row, a bad file one file, a carrier-day that fails Great Expectations that
carrier-day: the others commit and the night is marked partial (`partial_reasons`), never lost.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.storagelevel import StorageLevel

from jobs import formats
from jobs.config import Config
from jobs.errors import CdrwatchError
from jobs.ingest_books import (  # noqa: F401  (re-exported: `from jobs.ingest import Counts` keeps working)
    ACCEPTED,
    CONFLICT,
    CONFLICT_PREFIX,
    CONTENT,
    DUPLICATE,
    HEADER,
    MOSTLY_QUARANTINED,
    QUARANTINED,
    ROUTED_OUT,
    Counts,
    Group,
    IngestReport,
    check_lines,
    check_manifest,
    check_written,
    file_verdicts,
    find_deliveries,
    has_header,
    judge_completeness,
    judge_validation,
    open_books,
    relative,
    tally,
    warn_routing,
)
from jobs.io import lake_spark, layout, summaries
from jobs.io.landing_files import FileFacts, rescue_readable
from jobs.normalise import local_date
from schemas.tables import CDR, QUARANTINE, ROUTED

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- the step


def ingest_date(
    config: Config,
    day: dt.date,
    *,
    spark: SparkSession | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> IngestReport:
    """The `cdrwatch ingest` step: `run_ingest` with the Great Expectations suite (jobs.validate)
    run on each carrier's accepted rows before anything is staged. A carrier whose suite fails is
    not committed as CDRs: its rows go to quarantine (`carrier-day failed validation`), the others
    commit, and the night is partial. Each GX result is saved next to the run summary and kept in
    `IngestReport.outcomes`. `progress(what, done, total)` hears of each phase."""
    from jobs import validate
    from jobs.spark import spark_session

    spark = spark or spark_session(config)
    tell = progress or (lambda what, done, total: None)
    total = len(config.carriers) + 2
    tell("reading", 0, total)
    runs = layout.run_dir(config, "ingest", day)
    outcomes = {}

    def check(carrier: str, accepted: DataFrame):
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

    report = run_ingest(config, day, spark, check=check)
    report.outcomes = outcomes
    tell("done", total, total)
    return report


def run_ingest(
    config: Config, day: dt.date, spark: SparkSession, check: Callable[[str, DataFrame], Any] | None = None
) -> IngestReport:
    """Ingest every configured carrier's files of delivery date `day` (plus the records of `day`
    that earlier ingests of neighbouring dates kept in lake/routed); replace that date's lake
    partitions of those carriers; write lake/_runs/ingest/date=D/summary.json.

    `check(carrier, accepted_rows)` returns an outcome with `success`, `failures`, `suspect` and
    `volume` (jobs.validate.ValidationOutcome); a failed carrier's rows are quarantined instead."""
    session_tz = spark.conf.get("spark.sql.session.timeZone")
    if session_tz != config.timezone:
        raise CdrwatchError(
            f"Spark session time zone is {session_tz} but conf timezone is {config.timezone}:"
            " make the session with jobs.spark.spark_session(config)"
        )
    landing, deliveries, report = open_books(config, day)

    with lake_spark.DayWrite(config, day) as out:
        inputs = out.root / "input"
        inputs.mkdir(parents=True)
        parsed = [
            _parse_delivery(config, spark, carrier, files, landing, inputs, report)
            for carrier, files in deliveries.items()
        ]
        arrivals = routed_arrivals(config, spark, day)
        if arrivals is not None:
            parsed.append(arrivals)
        if parsed:
            rows = classify(_union(parsed), day, config.ingest.late_days).persist(StorageLevel.MEMORY_AND_DISK)
            try:
                _tally(rows, report, landing)
                report.check_balanced()
                check_lines(report)
                failed = _validate(rows, report, check)
                if failed:
                    rows = _quarantine_carriers(rows, failed, _union(parsed))
                _load(config, spark, out, rows, report)
            finally:
                rows.unpersist()
    judge_completeness(report)
    summaries.write_summary(config, "ingest", day, report.as_dict())
    return report


# ---------------------------------------------------------------- extract


def read_lines(
    spark: SparkSession, files: list[Path], landing: Path, read_from: dict[Path, Path] | None = None
) -> DataFrame:
    """One row per physical line of `files`: source_file (relative to landing), source_line
    (1-based), bytes (as delivered, minus '\\n'); gzip decompressed by the name of what is read.

    Each file is read by its exact path, never as a pattern: Spark globs `[]{}*?` in paths, so a
    file is read through `read_from[file]` (a link with a plain name, `link_inputs`) or else by its
    path with the glob characters escaped. Lines split on '\\n' only (a stray '\\r' stays in the
    line).

    A line's number comes without sorting the night: Spark reads a file in splits (one, for a gzip),
    each split's lines in order with consecutive `monotonically_increasing_id`s. One small
    aggregation (first id and lines per split, a row per split) gives each split its offset in its
    file, and a line's number is offset + its distance from the split's first id. Both reads plan
    the same files the same way; ingest checks every file's numbers run exactly 1..lines anyway."""
    read_from = dict(read_from or {})
    paths = {os.path.abspath(read_from.get(f, f)): relative(f, landing) for f in files}
    if len(paths) != len(files):
        raise CdrwatchError(f"read_lines: the same file given twice: {sorted(map(str, files))[:5]}")
    scan = spark.read.option("lineSep", "\n").text([_literal(p) for p in sorted(paths)])
    uris = scan.inputFiles()
    names = {uri: paths.get(unquote(urlparse(uri).path)) for uri in uris}
    unknown = sorted(uri for uri, name in names.items() if name is None)
    if unknown or len(uris) != len(paths):
        raise CdrwatchError(f"Spark read other files than asked: {unknown[:3] or sorted(set(paths) - set(names))[:3]}")
    lines = scan.select(
        F.input_file_name().alias("uri"),
        F.input_file_block_start().alias("split_start"),
        F.monotonically_increasing_id().alias("position"),
        F.col("value").cast("binary").alias("bytes"),
    )
    try:
        splits = (
            lines.groupBy("uri", "split_start")
            .agg(F.min("position").alias("first"), F.count("*").alias("lines"))
            .collect()
        )
    except Exception as err:  # a file that vanished or cannot be decompressed: name it in one line
        if type(err).__module__.startswith(("pyspark.errors", "py4j")):
            raise CdrwatchError(f"ingest: {_read_error(str(err), landing)}") from None
        raise
    shift, before = [], {}
    for split in sorted(splits, key=lambda s: (s.uri, s.split_start)):
        done = before.get(split.uri, 0)
        shift.append((split.uri, split.split_start, names[split.uri], done + 1 - split.first))
        before[split.uri] = done + split.lines
    lookup = spark.createDataFrame(shift, "uri string, split_start long, source_file string, shift long")
    return lines.join(F.broadcast(lookup), ["uri", "split_start"]).select(
        "source_file", (F.col("position") + F.col("shift")).alias("source_line"), "bytes"
    )


def link_inputs(files: list[Path], facts: dict[Path, FileFacts], folder: Path) -> dict[Path, Path]:
    """file -> what Spark reads for it, all in `folder` with plain names: a link named by what the
    content is (`.gz` when its bytes are gzip, whatever the carrier called it), or, for a damaged
    gzip, the part that could be decompressed (so its readable lines are ingested, not lost)."""
    read_from = {}
    for i, path in enumerate(files):
        fact = facts[path]
        if fact.damaged:
            target = folder / f"{i:05d}.txt"
            rescue_readable(path, target)
        else:
            target = folder / f"{i:05d}.{'gz' if fact.gzip else 'txt'}"
            os.symlink(os.path.abspath(path), target)
        read_from[path] = target
    return read_from


def routed_arrivals(config: Config, spark: SparkSession, day: dt.date) -> DataFrame | None:
    """Records of `day` that the ingests of the `ingest.late_days` dates around it found in their
    folders (lake/routed/date=X, event_date = day), as parsed rows of their own carrier, or None."""
    late = dt.timedelta(days=config.ingest.late_days)
    days = [day + dt.timedelta(days=k) for k in range(-config.ingest.late_days, config.ingest.late_days + 1) if k]
    if not any(layout.partition_path(config, ROUTED, d).is_dir() for d in days):
        return None
    routed = (
        lake_spark.read_range(config, spark, ROUTED, day - late, day + late)
        .where(F.col("date") != F.lit(day))
        .where(F.col("event_date") == F.lit(day))
        .where(F.col("carrier").isin(list(config.carriers)))
    )
    return routed.select(
        *[
            F.lit(False).alias(c)
            if c == "is_header"
            else F.lit(None).cast("string").alias(c)
            if c == "reason"
            else F.col(c)
            for c in formats.PARSED_COLUMNS
        ],
        "carrier",
        F.lit(True).alias("arrived"),
    )


def _parse_delivery(
    config: Config,
    spark: SparkSession,
    carrier: str,
    files: list[Path],
    landing: Path,
    inputs: Path,
    report: IngestReport,
) -> DataFrame:
    """A carrier's files parsed by its format, with the file-level verdicts that plain Python made
    (a header that does not match quarantines its whole file; a damaged gzip's cut last line)."""
    reader = formats.reader(config.carriers[carrier].format)
    facts = {f: report.facts[relative(f, landing)] for f in files}
    folder = inputs / carrier
    folder.mkdir()
    frame = reader.parse(read_lines(spark, files, landing, link_inputs(files, facts, folder)), config.timezone)
    bad_header, cut = file_verdicts(report, carrier, files, landing)
    if bad_header:
        in_bad = F.col("source_file").isin(bad_header)
        frame = frame.withColumn(
            "reason", F.when(in_bad, F.lit(formats.HEADER_MISMATCH)).otherwise(F.col("reason"))
        ).withColumn("is_header", F.col("is_header") & ~in_bad)
    if cut:
        last = F.lit(False)
        for name, line in cut:
            last = last | ((F.col("source_file") == name) & (F.col("source_line") == line))
        frame = frame.withColumn(
            "reason", F.when(last & ~F.col("is_header"), F.lit(formats.CUT_BY_DAMAGE)).otherwise(F.col("reason"))
        )
    return frame.withColumn("carrier", F.lit(carrier)).withColumn("arrived", F.lit(False))


# ---------------------------------------------------------------- transform


def classify(parsed: DataFrame, day: dt.date, late_days: int = 0) -> DataFrame:
    """Parsed rows of all carriers (PARSED_COLUMNS + carrier + arrived) with `outcome` and `date`;
    `raw` only where it is kept (header, quarantined, conflict, routed).

    A valid event of another local date up to `late_days` away is routed (kept for its own date),
    further away it is quarantined. Of the valid rows of `day` sharing (carrier, record_id) the
    first by (source_file, source_line) is accepted; a later one with the same content is a
    duplicate, with other content a conflicting duplicate that names the accepted row."""
    event_date = local_date(F.col("start_time"))
    off = F.datediff(event_date, F.lit(day))
    valid = ~F.col("is_header") & F.col("reason").isNull()
    reason = F.coalesce(F.col("reason"), F.when(valid & (F.abs(off) > late_days), F.lit(formats.OUTSIDE_DELIVERY_DATE)))
    rows = parsed.withColumn("reason", reason)
    candidate = ~F.col("is_header") & F.col("reason").isNull() & ((off == 0) | F.col("arrived"))
    routed = ~F.col("is_header") & F.col("reason").isNull() & ~candidate
    key = F.when(candidate, F.concat(F.lit("r"), F.col("record_id"))).otherwise(
        F.concat_ws(":", F.lit("q"), F.col("source_file"), F.col("source_line").cast("string"))
    )
    rows = rows.withColumn("_candidate", candidate).withColumn("_routed", routed).withColumn("_key", key)
    first = Window.partitionBy("carrier", "_key").orderBy("source_file", "source_line")
    content = F.struct(*CONTENT)
    winner = F.first(F.struct(F.col("source_file"), F.col("source_line"), content.alias("content"))).over(first)
    rows = rows.withColumn("_winner", F.when(F.col("_candidate"), winner))
    outcome = (
        F.when(F.col("is_header"), HEADER)
        .when(F.col("reason").isNotNull(), QUARANTINED)
        .when(F.col("_routed"), ROUTED_OUT)
        .when(
            (F.col("_winner.source_file") == F.col("source_file"))
            & (F.col("_winner.source_line") == F.col("source_line")),
            ACCEPTED,
        )
        .when(F.col("_winner.content").eqNullSafe(content), DUPLICATE)
        .otherwise(CONFLICT)
    )
    conflict_reason = F.concat(
        F.lit(CONFLICT_PREFIX), F.col("_winner.source_file"), F.lit(":"), F.col("_winner.source_line").cast("string")
    )
    return (
        rows.withColumn("outcome", outcome)
        .withColumn("reason", F.when(F.col("outcome") == CONFLICT, conflict_reason).otherwise(F.col("reason")))
        .withColumn("date", F.when(F.col("outcome").isin(ACCEPTED, ROUTED_OUT), event_date).otherwise(F.lit(day)))
        .withColumn("raw", F.when(F.col("outcome").isin(HEADER, QUARANTINED, CONFLICT, ROUTED_OUT), F.col("raw")))
        .drop("_candidate", "_routed", "_key", "_winner")
    )


def accepted_rows(rows: DataFrame) -> DataFrame:
    return rows.filter(F.col("outcome") == ACCEPTED).select(*CDR.names)


def quarantined_rows(rows: DataFrame) -> DataFrame:
    return rows.filter(F.col("outcome").isin(QUARANTINED, CONFLICT)).select(*QUARANTINE.names)


def routed_rows(rows: DataFrame, day: dt.date) -> DataFrame:
    """Routed rows as lake/routed rows of delivery date `day` (their own date in event_date)."""
    return (
        rows.filter(F.col("outcome") == ROUTED_OUT)
        .withColumn("event_date", F.col("date"))
        .withColumn("date", F.lit(day))
        .select(*ROUTED.names)
    )


def _quarantine_carriers(rows: DataFrame, failed: dict[str, str], parsed: DataFrame) -> DataFrame:
    """The rows of carriers whose suite failed, moved from accepted to quarantine with their raw text
    (read again: the accepted rows do not keep it), so nothing of the carrier-day is lost."""
    is_failed = F.col("carrier").isin(list(failed)) & (F.col("outcome") == ACCEPTED)
    raw = parsed.where(F.col("carrier").isin(list(failed))).select(
        "carrier", "source_file", "source_line", F.col("raw").alias("_raw_again")
    )
    return (
        rows.join(raw, ["carrier", "source_file", "source_line"], "left")
        .withColumn("reason", F.when(is_failed, F.lit(formats.FAILED_VALIDATION)).otherwise(F.col("reason")))
        .withColumn("raw", F.when(is_failed, F.col("_raw_again")).otherwise(F.col("raw")))
        .withColumn("outcome", F.when(is_failed, F.lit(QUARANTINED)).otherwise(F.col("outcome")))
        .drop("_raw_again")
    )


def _tally(rows: DataFrame, report: IngestReport, landing: Path) -> None:
    """Fill the report's counts from one aggregation (a conflict's reason counts as one kind)."""
    kind = F.when(F.col("outcome") == CONFLICT, F.lit(None)).otherwise(F.col("reason")).alias("kind")
    arrived_date = F.when(F.col("outcome") == ROUTED_OUT, F.col("date")).alias("routed_to")
    try:
        groups = (
            rows.groupBy("carrier", "source_file", "arrived", "outcome", kind, arrived_date)
            .agg(
                F.count("*").alias("count"),
                F.min("source_line").alias("first_line"),
                F.max("source_line").alias("last_line"),
            )
            .collect()
        )
    except Exception as err:  # a file that vanished while read and the like: name it in one line
        if type(err).__module__.startswith(("pyspark.errors", "py4j")):
            raise CdrwatchError(f"ingest {report.day}: {_read_error(str(err), landing)}") from None
        raise
    tally(report, (Group(**g.asDict()) for g in groups))
    warn_routing(report)


def _validate(rows: DataFrame, report: IngestReport, check: Callable[[str, DataFrame], Any] | None) -> dict[str, str]:
    """Run `check` on each delivered carrier's accepted rows; carrier -> failure text of those that failed."""
    return judge_validation(report, check, lambda carrier: accepted_rows(rows).where(F.col("carrier") == carrier))


# ---------------------------------------------------------------- load


def _load(config: Config, spark: SparkSession, out: lake_spark.DayWrite, rows: DataFrame, report: IngestReport) -> None:
    """Stage the three tables, check the staged rows against the report, then swap them in."""
    totals = report.carriers
    per_file = config.ingest.rows_per_file
    out.write(
        CDR,
        accepted_rows(rows),
        files=sum(lake_spark.files_for(c.accepted, per_file) for c in totals.values()),
        sort_by=("msisdn", "start_time", "record_id"),
        max_rows_per_file=per_file,
    )
    out.write(
        QUARANTINE,
        quarantined_rows(rows),
        files=sum(lake_spark.files_for(c.quarantined_total + c.conflicts, per_file) for c in totals.values()),
        sort_by=("source_file", "source_line"),
        max_rows_per_file=per_file,
    )
    out.write(
        ROUTED,
        routed_rows(rows, report.day),
        files=max(1, len(totals)),
        sort_by=("source_file", "source_line"),
        max_rows_per_file=per_file,
    )
    written = {
        (table.name, r.carrier, r.source_file): r["count"]
        for table in (CDR, QUARANTINE, ROUTED)
        for r in out.staged(spark, table).groupBy("carrier", "source_file").count().collect()
    }
    check_written(report, written)
    out.commit(sorted(report.files))


# ---------------------------------------------------------------- helpers


def _read_error(text: str, landing: Path) -> str:
    """Spark's long error as one line: the file it names, and the cause."""
    found = re.search(r"while reading file (\S+?)\.?\s", text)
    where = unquote(urlparse(found.group(1)).path) if found else "landing files"
    causes = re.findall(r"Caused by: ([\w.$]+(?:Exception|Error)[^\n]*)", text)
    cause = causes[-1] if causes else text.strip().splitlines()[0]
    return f"{where}: could not be read ({cause[:200]})"


def _literal(path: str) -> str:
    """A path Spark reads as itself, not as a glob pattern."""
    return re.sub(r"([\\\[\]{}*?])", r"\\\1", path)


def _union(frames: list[DataFrame]) -> DataFrame:
    result = frames[0]
    for frame in frames[1:]:
        result = result.unionByName(frame)
    return result
