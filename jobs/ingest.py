"""Ingest one delivery date: landing/<carrier>/<D>/ files -> lake/cdr and lake/quarantine.

extract (`find_deliveries`, `read_lines`) -> transform (a format's `parse`, `classify`) -> load
(`lake.DayWrite`). Every physical line of every file ends as exactly one of: header, accepted
row, quarantined row, duplicate; the counts per file and carrier must add up, checked against what
was actually written before anything in the lake is replaced.
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.storagelevel import StorageLevel

from jobs import formats, lake
from jobs.config import Config
from jobs.errors import CdrwatchError
from jobs.normalise import local_date
from schemas.tables import CDR, QUARANTINE

HEADER, ACCEPTED, QUARANTINED, DUPLICATE = "header", "accepted", "quarantined", "duplicate"


@dataclass
class Counts:
    """Rows of one file or one carrier: read = accepted + quarantined + duplicates."""
    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)  # reason -> rows

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    @property
    def balanced(self) -> bool:
        return self.read == self.accepted + self.quarantined_total + self.duplicates

    def add(self, other: Counts) -> None:
        self.read += other.read
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        for reason, rows in other.quarantined.items():
            self.quarantined[reason] = self.quarantined.get(reason, 0) + rows

    def as_dict(self) -> dict:
        return {"read": self.read, "accepted": self.accepted, "quarantined": self.quarantined_total,
                "duplicates": self.duplicates, "quarantined_by_reason": dict(sorted(self.quarantined.items()))}


@dataclass
class IngestReport:
    """What one ingest run did: counts per file and carrier, and warnings (late carriers...).
    The accepted rows are in the lake: `jobs.lake.read_partition(config, spark, "cdr", day, carrier)`."""
    day: dt.date
    formats: dict[str, str] = field(default_factory=dict)                # carrier -> format
    files: dict[str, dict[str, Counts]] = field(default_factory=dict)    # carrier -> source_file -> counts
    warnings: list[str] = field(default_factory=list)
    missing_carriers: list[str] = field(default_factory=list)  # configured, but no files for the day: a partial night

    @property
    def carriers(self) -> dict[str, Counts]:
        totals = {}
        for carrier, files in self.files.items():
            totals[carrier] = Counts()
            for counts in files.values():
                totals[carrier].add(counts)
        return totals

    def check_balanced(self) -> None:
        """Raise unless read = accepted + quarantined + duplicates for every file and carrier."""
        for carrier, files in self.files.items():
            for name, counts in [*files.items(), (f"carrier {carrier}", self.carriers[carrier])]:
                if not counts.balanced:
                    raise CdrwatchError(
                        f"{name}: rows do not add up on {self.day}: read {counts.read} != accepted {counts.accepted}"
                        f" + quarantined {counts.quarantined_total} + duplicates {counts.duplicates}")

    def as_dict(self) -> dict:
        return {
            "date": self.day.isoformat(),
            "carriers": {c: {"format": self.formats[c], "files": len(self.files[c]), **counts.as_dict()}
                         for c, counts in self.carriers.items()},
            "files": [{"carrier": c, "source_file": name, **counts.as_dict()}
                      for c, files in self.files.items() for name, counts in files.items()],
            "warnings": self.warnings,
            "missing_carriers": self.missing_carriers,
        }

    def table(self):
        """A rich Table: one line per file, a total line per carrier, warnings as the caption."""
        from rich.table import Table

        table = Table(title=f"ingest {self.day}", caption="\n".join(self.warnings) or None)
        for name in ("carrier", "file", "read", "accepted", "quarantined", "duplicates"):
            table.add_column(name, justify="left" if name in ("carrier", "file") else "right")
        totals = self.carriers
        for carrier, files in self.files.items():
            for name, counts in files.items():
                table.add_row(carrier, Path(name).name, *_cells(counts))
            table.add_row(carrier, f"[b]{len(files)} files[/b]", *_cells(totals[carrier]), end_section=True)
        return table

    def reasons_table(self):
        """A rich Table of quarantined rows by carrier and reason."""
        from rich.table import Table

        table = Table(title=f"quarantined {self.day} (lake/quarantine)")
        for name in ("carrier", "reason", "rows"):
            table.add_column(name, justify="right" if name == "rows" else "left")
        for carrier, counts in self.carriers.items():
            for reason, rows in sorted(counts.quarantined.items()):
                table.add_row(carrier, reason, f"{rows:,}")
        return table


def ingest_date(config: Config, day: dt.date, *, spark: SparkSession | None = None, console=None,
                progress: Callable[[str, int, int], None] | None = None) -> IngestReport:
    """The `cdrwatch ingest` step: `run_ingest` with the Great Expectations suite (jobs.validate) run
    on every staged carrier partition before it replaces the lake's; prints what it did. A partition
    that fails validation is not committed: the run fails naming the expectations, the lake keeps
    its previous data, and the GX result is saved next to the run summary all the same.
    `progress(what, done, total)` hears of each phase: reading and staging, each carrier's validation."""
    from rich.console import Console

    from jobs.spark import spark_session

    console = console or Console()
    spark = spark or spark_session(config)
    deliveries = find_deliveries(config, day, [])
    total = len(deliveries) + 2
    tell = progress or (lambda what, done, total: None)
    tell(f"reading {sum(map(len, deliveries.values()))} files ({len(deliveries)} carriers)", 0, total)

    def check(staged: DataFrame) -> None:
        tell("validating", 1, total)
        _validate(config, day, staged, console,
                  on_carrier=lambda i, carrier: tell(f"validated {carrier}", 2 + i, total))

    report = run_ingest(config, day, spark, check=check)
    tell("done", total, total)
    console.print(report.table())
    console.print(report.reasons_table())
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    return report


def _validate(config: Config, day: dt.date, staged: DataFrame, console,
              on_carrier: Callable[[int, str], None] | None = None) -> None:
    """Run the GX suite on each carrier's staged rows; save each result; raise if any failed.
    `on_carrier(i, carrier)` is called after the i-th carrier (from 0)."""
    from jobs import validate

    runs, failed = lake.run_summary_path(config, "ingest", day).parent, []
    carriers = sorted(r.carrier for r in staged.select("carrier").distinct().collect())
    for i, carrier in enumerate(carriers):
        outcome = validate.validate_cdr_partition(staged.filter(F.col("carrier") == carrier), carrier, day, config,
                                                  validate.recent_row_counts(config, carrier, day))
        validate.save_validation(outcome, runs / f"validation_{carrier}.json")
        status = "passed" if outcome.success else "[red]FAILED[/]"
        console.print(f"{carrier}: validation {status}; volume {outcome.volume}"
                      + (" [yellow](suspect: late or partial delivery?)[/]" if outcome.suspect else ""))
        for failure in outcome.failures:
            console.print(f"  {failure}")
        if not outcome.success:
            failed.append(f"{carrier} ({'; '.join(outcome.failures)[:300]})")
        if on_carrier is not None:
            on_carrier(i, carrier)
    if failed:
        raise CdrwatchError(f"ingest {day}: validation failed, lake left unchanged: {', '.join(failed)} "
                            f"(details in {runs}/validation_<carrier>.json)")


def run_ingest(config: Config, day: dt.date, spark: SparkSession,
               check: Callable[[DataFrame], None] | None = None) -> IngestReport:
    """Ingest every configured carrier's files of delivery date `day`; replace that date's lake
    partitions of the carriers that delivered; write lake/_runs/ingest/date=D/summary.json.
    `check(staged_cdr)` may raise to stop the commit (the validation step does)."""
    landing = Path(config.paths.landing)
    if not landing.is_dir():
        raise CdrwatchError(f"{landing}: landing folder does not exist")
    session_tz = spark.conf.get("spark.sql.session.timeZone")
    if session_tz != config.timezone:
        raise CdrwatchError(f"Spark session time zone is {session_tz} but conf timezone is {config.timezone}:"
                            " make the session with jobs.spark.spark_session(config)")
    warnings: list[str] = []
    deliveries = find_deliveries(config, day, warnings)
    report = IngestReport(day, formats={c: config.carriers[c].format for c in deliveries}, warnings=warnings,
                          missing_carriers=[c for c in config.carriers if c not in deliveries],
                          files={c: {_relative(f, landing): Counts() for f in files}
                                 for c, files in deliveries.items()})
    if deliveries:
        parsed = [formats.reader(config.carriers[c].format).parse(read_lines(spark, files, landing), config.timezone)
                  .withColumn("carrier", F.lit(c)) for c, files in deliveries.items()]
        rows = classify(_union(parsed), day).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            _tally(rows, report, config, landing)
            report.check_balanced()
            _load(config, spark, day, rows, report, check)
        finally:
            rows.unpersist()
    lake.write_json(lake.run_summary_path(config, "ingest", day), report.as_dict())
    return report


def find_deliveries(config: Config, day: dt.date, warnings: list[str]) -> dict[str, list[Path]]:
    """carrier -> its files of `day` (sorted) that match its format's file names; a carrier with
    none is left out with a warning, as are files that do not match."""
    deliveries = {}
    for carrier, conf in config.carriers.items():
        globs = formats.reader(conf.format).LAYOUT.file_globs
        folder = Path(config.paths.landing) / carrier / day.isoformat()
        found = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
        files = [p for p in found
                 if not p.name.startswith((".", "_")) and any(fnmatch.fnmatch(p.name, g) for g in globs)]
        ignored = [p.name for p in found if p not in files]
        if ignored:
            warnings.append(f"{carrier}: ignored {len(ignored)} file(s) not named {' or '.join(globs)}: "
                            + ", ".join(ignored[:5]) + (" ..." if len(ignored) > 5 else ""))
        if files:
            deliveries[carrier] = files
        else:
            warnings.append(f"{carrier}: no files for {day.isoformat()} — late?")
    return deliveries


def read_lines(spark: SparkSession, files: list[Path], landing: Path) -> DataFrame:
    """One row per physical line of `files` (one read; .gz decompressed by extension):
    source_file (relative to landing), source_line (1-based), bytes (as delivered, minus '\\n').

    Lines split on '\\n' only (a stray '\\r' stays in the line). A line's number is its rank in its
    file by (start of the file split it was read from, position within that split).
    """
    scan = spark.read.option("lineSep", "\n").text([str(f.resolve()) for f in files])
    root = landing.resolve()
    names = spark.createDataFrame([(uri, _relative(Path(unquote(urlparse(uri).path)), root))
                                   for uri in scan.inputFiles()], "uri string, source_file string")
    lines = scan.select(F.input_file_name().alias("uri"), F.input_file_block_start().alias("split_start"),
                        F.monotonically_increasing_id().alias("position"), F.col("value").cast("binary").alias("bytes"))
    in_file = Window.partitionBy("uri").orderBy("split_start", "position")
    return (lines.withColumn("source_line", F.row_number().over(in_file).cast("long"))
            .join(F.broadcast(names), "uri")
            .select("source_file", "source_line", "bytes"))


def classify(parsed: DataFrame, day: dt.date) -> DataFrame:
    """Parsed rows of all carriers (PARSED_COLUMNS + carrier) with `outcome` (header, accepted,
    quarantined, duplicate) and `date`; `raw` only where it is kept (header, quarantined). An event
    whose local date is not `day` is quarantined; of valid rows sharing (carrier, record_id) the
    first by (source_file, source_line) is accepted, the others are duplicates."""
    reason = F.coalesce(F.col("reason"),
                        F.when(~F.col("is_header") & (local_date(F.col("start_time")) != F.lit(day)),
                               F.lit(formats.OUTSIDE_DELIVERY_DATE)))
    valid = ~F.col("is_header") & F.col("reason").isNull()
    key = F.when(valid, F.concat(F.lit("r"), F.col("record_id"))).otherwise(
        F.concat_ws(":", F.lit("q"), F.col("source_file"), F.col("source_line")))
    first = Window.partitionBy("carrier", "_key").orderBy("source_file", "source_line")
    return (parsed.withColumn("reason", reason)
            .withColumn("_key", key)
            .withColumn("outcome", F.when(F.col("is_header"), HEADER)
                        .when(F.col("reason").isNotNull(), QUARANTINED)
                        .when(F.row_number().over(first) == 1, ACCEPTED)
                        .otherwise(DUPLICATE))
            .withColumn("date", F.when(F.col("outcome") == ACCEPTED, local_date(F.col("start_time")))
                        .otherwise(F.lit(day)))
            .withColumn("raw", F.when(F.col("outcome").isin(HEADER, QUARANTINED), F.col("raw")))  # not kept otherwise
            .drop("_key"))


def accepted_rows(rows: DataFrame) -> DataFrame:
    return rows.filter(F.col("outcome") == ACCEPTED).select(*CDR.names)


def quarantined_rows(rows: DataFrame) -> DataFrame:
    return rows.filter(F.col("outcome") == QUARANTINED).select(*QUARANTINE.names)


def _tally(rows: DataFrame, report: IngestReport, config: Config, landing: Path) -> None:
    """Fill the report's counts from one aggregation; check every header line on the way."""
    header_text = F.when(F.col("outcome") == HEADER, F.col("raw")).alias("header_text")
    try:
        groups = rows.groupBy("carrier", "source_file", "outcome", "reason", header_text).count().collect()
    except Exception as err:  # a truncated .gz and the like: name the file and the problem in one line
        if type(err).__module__.startswith(("pyspark.errors", "py4j")):
            raise CdrwatchError(f"ingest {report.day}: {_read_error(str(err), landing)}") from None
        raise
    for g in sorted(groups, key=lambda g: (g.carrier, g.source_file)):
        counts = report.files[g.carrier][g.source_file]
        if g.outcome == HEADER:
            expected = formats.reader(config.carriers[g.carrier].format).HEADER
            if g.header_text != expected:
                raise CdrwatchError(f"{g.source_file}: header does not match: expected {expected!r}, "
                                    f"got {g.header_text!r}")
            continue
        counts.read += g["count"]
        if g.outcome == ACCEPTED:
            counts.accepted += g["count"]
        elif g.outcome == DUPLICATE:
            counts.duplicates += g["count"]
        else:
            counts.quarantined[g.reason] = counts.quarantined.get(g.reason, 0) + g["count"]


def _load(config: Config, spark: SparkSession, day: dt.date, rows: DataFrame, report: IngestReport,
          check: Callable[[DataFrame], None] | None) -> None:
    """Stage both tables, check the staged rows against the report, then swap them in."""
    totals = report.carriers
    per_file = config.ingest.rows_per_file
    with lake.DayWrite(config, day) as out:
        out.write(CDR, accepted_rows(rows), files=sum(lake.files_for(c.accepted, per_file) for c in totals.values()),
                  sort_by=("msisdn", "start_time", "record_id"), max_rows_per_file=per_file)
        out.write(QUARANTINE, quarantined_rows(rows),
                  files=sum(lake.files_for(c.quarantined_total, per_file) for c in totals.values()),
                  sort_by=("source_file", "source_line"), max_rows_per_file=per_file)
        written = {(table.name, r.carrier, r.source_file): r["count"] for table in (CDR, QUARANTINE)
                   for r in out.staged(spark, table).groupBy("carrier", "source_file").count().collect()}
        for carrier, files in report.files.items():
            for name, counts in files.items():
                got = (written.pop(("cdr", carrier, name), 0), written.pop(("quarantine", carrier, name), 0))
                if got != (counts.accepted, counts.quarantined_total):
                    raise CdrwatchError(f"{name}: written rows do not match the counts: cdr {got[0]} vs accepted "
                                        f"{counts.accepted}, quarantine {got[1]} vs {counts.quarantined_total}")
        if written:
            raise CdrwatchError(f"ingest {day}: rows written for files not read: {sorted(written)[:3]}")
        if check is not None:
            check(out.staged(spark, CDR))
        out.commit(list(report.files))


def _read_error(text: str, landing: Path) -> str:
    """Spark's long error as one line: the landing file it names, and the cause."""
    found = re.search(r"while reading file (\S+?)\.?\s", text)
    where = _relative(Path(unquote(urlparse(found.group(1)).path)), landing) if found else "landing files"
    causes = re.findall(r"Caused by: ([\w.$]+(?:Exception|Error)[^\n]*)", text)
    cause = causes[-1] if causes else text.strip().splitlines()[0]
    return f"{where}: could not be read ({cause[:200]})"


def _union(frames: list[DataFrame]) -> DataFrame:
    result = frames[0]
    for frame in frames[1:]:
        result = result.unionByName(frame)
    return result


def _relative(path: Path, landing: Path) -> str:
    try:
        return path.resolve().relative_to(landing.resolve()).as_posix()
    except ValueError:
        raise CdrwatchError(f"{path}: not under the landing folder {landing}") from None


def _cells(counts: Counts) -> list[str]:
    return [f"{n:,}" for n in (counts.read, counts.accepted, counts.quarantined_total, counts.duplicates)]
