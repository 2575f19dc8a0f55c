"""Great Expectations checks on one ingested lake partition (`lake/cdr/date=D/carrier=C`).

`validate_cdr_partition` runs one GX 1.x expectation suite over the partition's rows (a Spark
DataFrame, or a Polars one on the `local` engine: the same suite through GX's pandas data source,
the same verdicts and texts) and returns a `ValidationOutcome`:

* `success` – every *critical* expectation held. On a failure ingest quarantines that carrier's rows
  and marks the night partial; the nightly `validate` step stops the night only when no carrier passed.
* `suspect` – the day's row count is under `ingest.volume_min_ratio` x the median of the carrier's
  recent accepted row counts. Reported (the expectation has GX severity "warning"), never a failed
  run: a carrier that delivers half a day is news for the analysts, not a broken pipeline.
* `failures` – one short line per failed expectation, naming it, its column and what was observed.
* `gx_result` – GX's own result as a JSON-able dict (what `save_validation` writes).

Cost: the suite is run with counts but without GX's per-expectation sample queries, which keeps
it to about a dozen Spark jobs over the (cached) partition; only when something fails is a second,
small run made over the failed expectations alone to fetch a few offending values for the report.
The offending values are handed over as plain Python values whichever engine found them (instants
aware, in the configured timezone), so both engines save the same JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import statistics
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

import polars as pl

from jobs.config import Config
from jobs.errors import CdrwatchError

# The same shapes the parsers enforce row by row (jobs/formats): the suite is the backstop that
# catches a parser that lets through what the lake's contract refuses.
from jobs.formats import IMEI_REGEX, IMSI_REGEX, MAX_DURATION_S, MSISDN_REGEX, OTHER_PARTY_REGEXES  # noqa: E402
from jobs.io import files, layout, summaries
from schemas.tables import CDR

NO_HISTORY = "no history yet"

_META_KEY = "cdrwatch_check"  # expectation meta: which of our checks this is
_VOLUME = "volume"
_SAMPLES = 5  # offending values shown per failed expectation
# Counts only: no partial_unexpected_list query per expectation (Spark's LIMIT 0 runs no job).
_COUNTS_ONLY = {"result_format": "BASIC", "partial_unexpected_count": 0}
_WITH_SAMPLES = {"result_format": "BASIC", "partial_unexpected_count": _SAMPLES}


@dataclass(frozen=True)
class ValidationOutcome:
    """What `validate_cdr_partition` found. `gx_result["success"]` is GX's own verdict, which also
    counts the volume expectation (severity "warning"); `success` here leaves that one out."""

    carrier: str
    day: dt.date
    success: bool  # all critical expectations met (the volume check is not one of them)
    suspect: bool  # low volume against recent history
    row_count: int | None
    volume: str  # "no history yet" | "ok: ..." | "suspect: ..."
    failures: tuple[
        str, ...
    ]  # "expect_column_values_to_be_between(duration_s): 3 of 51234 rows are outside 0..86400 (e.g. -5)"
    gx_result: dict[str, Any] = field(repr=False)
    _gx_object: Any = field(default=None, repr=False, compare=False)  # for the HTML page

    def to_dict(self) -> dict[str, Any]:
        return {
            "carrier": self.carrier,
            "date": self.day.isoformat(),
            "success": self.success,
            "suspect": self.suspect,
            "row_count": self.row_count,
            "volume": self.volume,
            "failures": list(self.failures),
            "gx_result": self.gx_result,
        }


# --------------------------------------------------------------------------------------------
# recent volume


def read_accepted_counts(path: str | Path) -> dict[str, int]:
    """Per-carrier accepted row counts from one ingest run summary.

    Assumed shape (only these keys are read; anything else is ignored):
    `{"carriers": {"cm": {"accepted": 123, ...}, "cu": {...}, ...}, ...}`
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CdrwatchError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    carriers = data.get("carriers") if isinstance(data, dict) else None
    if not isinstance(carriers, dict):
        raise CdrwatchError(f"{path}: expected an object with a 'carriers' mapping")
    counts: dict[str, int] = {}
    for code, entry in carriers.items():
        accepted = entry.get("accepted") if isinstance(entry, dict) else None
        if isinstance(accepted, bool) or not isinstance(accepted, int) or accepted < 0:
            raise CdrwatchError(f"{path}: carriers.{code}.accepted should be a row count, got {accepted!r}")
        counts[code] = accepted
    return counts


def recent_row_counts(config: Config, carrier: str, day: dt.date) -> list[int]:
    """The carrier's accepted row counts of the `ingest.volume_history_days` days before `day`,
    oldest first, from `lake/_runs/ingest/date=*/summary.json`. Days without a run summary, or
    whose summary does not list the carrier (it delivered nothing), are left out, so the list may
    be shorter or empty ("no history yet"). A summary that cannot be read raises CdrwatchError."""
    counts = []
    for back in range(config.ingest.volume_history_days, 0, -1):
        path = layout.run_summary_path(config, "ingest", day - dt.timedelta(days=back))
        if path.is_file():
            accepted = read_accepted_counts(path).get(carrier)
            if accepted is not None:
                counts.append(accepted)
    return counts


# --------------------------------------------------------------------------------------------
# the suite


@dataclass(frozen=True)
class _Check:
    key: str
    problem: str  # what an unexpected row is, for the failure text ("outside 0..86400")
    build: Callable[[dict], Any]  # meta -> a fresh GX Expectation
    rows: str = "rows"  # what the expectation counts ("sms rows" under a row condition)


def _checks(carrier: str, day: dt.date, config: Config, min_rows: int | None) -> list[_Check]:
    import great_expectations.expectations as gxe
    from great_expectations.expectations.metadata_types import FailureSeverity
    from great_expectations.expectations.row_conditions import Column

    tz = ZoneInfo(config.timezone)
    # The partition holds the events of the local calendar day D: [D 00:00, D+1 00:00) local time.
    # Aware datetimes, so that Spark compares instants whatever the machine's own timezone.
    day_start = dt.datetime.combine(day, dt.time(), tz)
    day_end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)
    window = f"[{day_start:%Y-%m-%d %H:%M}, {day_end:%Y-%m-%d %H:%M}) {config.timezone}"

    checks = [
        _Check(
            "columns", "", lambda m: gxe.ExpectTableColumnsToMatchSet(column_set=CDR.names, exact_match=False, meta=m)
        ),
    ]
    for column in CDR.columns:
        if not column.nullable:
            checks.append(
                _Check(
                    f"not_null.{column.name}",
                    "are null",
                    lambda m, c=column.name: gxe.ExpectColumnValuesToNotBeNull(column=c, meta=m),
                )
            )
    checks += [
        _Check(
            "unique.record_id",
            "share their record_id with another row",
            lambda m: gxe.ExpectColumnValuesToBeUnique(column="record_id", meta=m),
        ),
        _Check(
            "set.carrier",
            f"are not {carrier!r}",
            lambda m: gxe.ExpectColumnValuesToBeInSet(column="carrier", value_set=[carrier], meta=m),
        ),
        _Check(
            "set.direction",
            "are not in {out, in}",
            lambda m: gxe.ExpectColumnValuesToBeInSet(column="direction", value_set=["out", "in"], meta=m),
        ),
        _Check(
            "set.service",
            "are not in {voice, sms}",
            lambda m: gxe.ExpectColumnValuesToBeInSet(column="service", value_set=["voice", "sms"], meta=m),
        ),
        # A carrier's own subscribers: 11-digit mobiles, and IoT/M2M SIMs with 13-digit numbers
        # (+86 1064..., +86 1440...), which are legitimate subscribers of the partition.
        _Check(
            "regex.msisdn",
            f"do not match {MSISDN_REGEX}",
            lambda m: gxe.ExpectColumnValuesToMatchRegex(column="msisdn", regex=MSISDN_REGEX, meta=m),
        ),
        # The peer is whatever the network delivered: besides E.164 and short service numbers, SMS
        # arrive from alphanumeric sender ids ("BANK") and SMS-gateway ports; nulls (withheld) are not checked.
        _Check(
            "regex.other_party",
            f"match none of {', '.join(OTHER_PARTY_REGEXES)}",
            lambda m: gxe.ExpectColumnValuesToMatchRegexList(
                column="other_party", regex_list=list(OTHER_PARTY_REGEXES), match_on="any", meta=m
            ),
        ),
        _Check(
            "range.duration_s",
            f"are outside 0..{MAX_DURATION_S}",
            lambda m: gxe.ExpectColumnValuesToBeBetween(
                column="duration_s", min_value=0, max_value=MAX_DURATION_S, meta=m
            ),
        ),
        # Expressible in GX 1.x as a row condition: only rows with service == "sms" are checked.
        _Check(
            "sms.duration_s",
            "have a duration other than 0",
            lambda m: gxe.ExpectColumnValuesToBeBetween(
                column="duration_s", min_value=0, max_value=0, row_condition=Column("service") == "sms", meta=m
            ),
            rows="sms rows",
        ),
        _Check(
            "range.start_time",
            f"are outside {window}",
            lambda m: gxe.ExpectColumnValuesToBeBetween(
                column="start_time", min_value=day_start, max_value=day_end, strict_max=True, meta=m
            ),
        ),
        # GX map expectations skip nulls: imsi/imei are checked where present.
        _Check(
            "regex.imsi",
            f"do not match {IMSI_REGEX}",
            lambda m: gxe.ExpectColumnValuesToMatchRegex(column="imsi", regex=IMSI_REGEX, meta=m),
        ),
        _Check(
            "regex.imei",
            f"do not match {IMEI_REGEX}",
            lambda m: gxe.ExpectColumnValuesToMatchRegex(column="imei", regex=IMEI_REGEX, meta=m),
        ),
    ]
    if min_rows is not None:
        checks.append(
            _Check(
                _VOLUME,
                "",
                lambda m: gxe.ExpectTableRowCountToBeBetween(
                    min_value=min_rows, severity=FailureSeverity.WARNING, meta=m
                ),
            )
        )
    return checks


def _suite(name: str, checks: list[_Check]):
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=name)
    for check in checks:
        suite.add_expectation(check.build({_META_KEY: check.key}))
    return suite


def _batch_definition(engine: str):
    """Ephemeral GX context -> data source (Spark, or pandas for a Polars frame) -> DataFrame asset ->
    whole-frame batch definition, named alike for both engines.

    Made afresh for every partition: it costs ~12 ms here (importing GX, once, is the slow part),
    holds no state between runs and so cannot outlive a restarted SparkSession or be shared by
    two threads validating two carriers."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    if engine == "spark":
        # persist=False: caching is decided (and undone) by validate_cdr_partition, not left behind by GX.
        source = context.data_sources.add_spark(name="cdrwatch_lake", persist=False)
    else:
        source = context.data_sources.add_pandas(name="cdrwatch_lake")
    asset = source.add_dataframe_asset(name="cdr_partition")
    return asset.add_batch_definition_whole_dataframe("whole_partition")


def _is_polars(df) -> bool:
    return isinstance(df, (pl.DataFrame, pl.LazyFrame))


def _pandas(frame: pl.DataFrame | pl.LazyFrame):
    """A Polars frame as pandas for GX, built for GX's vectorised paths: strings as pyarrow strings
    (GX's regexes then run in Arrow, not one Python call per value; see `_gx_on_pandas`), integer
    columns without a missing value as numpy int64 (GX's `between` loops in Python over any other
    integer type), others as pandas' nullable integers, instants UTC-aware."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if isinstance(frame, pl.LazyFrame):
        frame = frame.collect()
    arrow_strings = pd.StringDtype("pyarrow", na_value=np.nan)
    nullable = {
        pa.int8(): pd.Int8Dtype(),
        pa.int16(): pd.Int16Dtype(),
        pa.int32(): pd.Int32Dtype(),
        pa.int64(): pd.Int64Dtype(),
        pa.bool_(): pd.BooleanDtype(),
        pa.string(): arrow_strings,
        pa.large_string(): arrow_strings,
    }
    data = frame.to_arrow().to_pandas(types_mapper=nullable.get)
    for name, dtype in frame.schema.items():
        if dtype.is_integer() and frame[name].null_count() == 0:
            data[name] = data[name].astype(np.int64)
    return data


@contextmanager
def _gx_on_pandas():
    """What makes GX's pandas engine fast on a CDR partition, for the time of one validation:

    * pandas' Arrow-backed `str` dtype, so that GX's `column.astype(str).str.contains(regex)` keeps the
      column in Arrow (RE2) instead of making a Python object of every value (the suite's patterns
      are written for RE2, Java and Rust alike: no lookaheads);
    * no batch fingerprint: GX hashes every value of a pandas batch below 1 GB to put an md5 in the
      result's batch markers (longer than the whole suite here); Spark batches carry none either."""
    import pandas as pd
    from great_expectations.execution_engine import pandas_execution_engine

    threshold = pandas_execution_engine.HASH_THRESHOLD
    pandas_execution_engine.HASH_THRESHOLD = 0
    try:
        with pd.option_context("future.infer_string", True):
            yield
    finally:
        pandas_execution_engine.HASH_THRESHOLD = threshold


def _native(value: Any, tz: ZoneInfo) -> Any:
    """An offending value as Spark's GX hands it over, made plain: numpy and pandas scalars as Python
    values, instants aware in the configured timezone, a missing value as None."""
    import pandas as pd

    if value is pd.NaT or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime().astimezone(tz)
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        return value.item()
    return value


# --------------------------------------------------------------------------------------------
# validate


def validate_cdr_partition(df, carrier: str, day: dt.date, config: Config, recent_rows: list[int]) -> ValidationOutcome:
    """Run the CDR expectation suite over one lake partition: a Spark DataFrame of the CDR columns, or
    a Polars one (the `local` engine: validated through GX's pandas data source, same suite).

    `recent_rows`: the carrier's accepted row counts of the previous `ingest.volume_history_days`
    days (see `recent_row_counts`); empty means "no history yet" and no volume check. The
    Spark DataFrame is cached for the run unless the caller has cached it already (then it is left as is).
    """
    history = [int(n) for n in recent_rows]
    median = statistics.median(history) if history else None
    min_rows = math.ceil(config.ingest.volume_min_ratio * median) if history else None
    checks = _checks(carrier, day, config, min_rows)
    by_key = {c.key: c for c in checks}
    name = f"cdr.{carrier}.{day.isoformat()}"

    tz = ZoneInfo(config.timezone)
    local = _is_polars(df)
    if local:
        data, cached_here, plain = _pandas(df), False, (lambda v: _native(v, tz))
    else:
        from pyspark import StorageLevel

        data, cached_here, plain = df, not df.is_cached, (lambda v: _aware(v, tz))
        if cached_here:
            df.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with warnings.catch_warnings(), _gx_on_pandas() if local else nullcontext():
            # pandas says the number patterns have groups (GX matches with `str.contains`): as meant
            warnings.filterwarnings("ignore", "This pattern is interpreted as a regular expression", UserWarning)
            batch = _batch_definition("pandas" if local else "spark").get_batch(batch_parameters={"dataframe": data})
            result = batch.validate(_suite(name, checks), result_format=_COUNTS_ONLY)
            failed_map = [
                r
                for r in result.results
                if not r.success and "unexpected_count" in (r.result or {}) and _key(r) in by_key
            ]
            if failed_map:  # rare: fetch a few offending values of the failed expectations only
                keys = [_key(r) for r in failed_map]
                detail = batch.validate(
                    _suite(name + ".samples", [by_key[k] for k in keys]), result_format=_WITH_SAMPLES
                )
                samples = {_key(r): (r.result or {}).get("partial_unexpected_list") for r in detail.results}
                for r in failed_map:
                    if samples.get(_key(r)) is not None:
                        r.result["partial_unexpected_list"] = [plain(v) for v in samples[_key(r)]]
    finally:
        if cached_here:
            df.unpersist()

    row_count = _row_count(result)
    order = {c.key: i for i, c in enumerate(checks)}
    failures, suspect = [], False
    for r in sorted(result.results, key=lambda r: order.get(_key(r), len(order))):
        if r.success:
            continue
        if _key(r) == _VOLUME and not _raised(r):
            suspect = True
        else:
            failures.append(_describe(r, by_key.get(_key(r)), tz))

    if not history:
        volume = NO_HISTORY
    else:
        shown_median = int(median) if median == int(median) else round(median, 1)
        volume = (
            f"{'suspect' if suspect else 'ok'}: {row_count} rows; median of {len(history)} recent days"
            f" {shown_median}, minimum {min_rows}"
        )
        if suspect:
            volume += f" ({config.ingest.volume_min_ratio:g} x median)"

    return ValidationOutcome(
        carrier=carrier,
        day=day,
        success=not failures,
        suspect=suspect,
        row_count=row_count,
        volume=volume,
        failures=tuple(failures),
        gx_result=result.to_json_dict(),
        _gx_object=result,
    )


def _key(r) -> str | None:
    return (r.expectation_config.meta or {}).get(_META_KEY)


def _raised(r) -> str | None:
    """The exception message if GX could not evaluate the expectation."""
    info = r.exception_info or {}
    if info.get("raised_exception"):
        return info.get("exception_message") or "error"
    for value in info.values():  # GX 1.x may key exception info by metric id
        if isinstance(value, dict) and value.get("raised_exception"):
            return value.get("exception_message") or "error"
    return None


def _row_count(result) -> int | None:
    for r in result.results:
        if _key(r) == _VOLUME and isinstance(r.result.get("observed_value"), int):
            return r.result["observed_value"]
    for r in result.results:
        if _key(r) == "not_null.record_id" and isinstance(r.result.get("element_count"), int):
            return r.result["element_count"]
    return None


def _describe(r, check: _Check | None, tz: ZoneInfo) -> str:
    config = r.expectation_config
    column = config.kwargs.get("column")
    head = f"{config.type}({column})" if column else config.type
    error = _raised(r)
    if error:
        return f"{head}: could not be evaluated: {error.strip().splitlines()[-1][:300]}"
    res = r.result or {}
    if "unexpected_count" in res:
        total = res.get("element_count")
        rows, problem = (check.rows, check.problem) if check else ("rows", "are unexpected")
        text = f"{head}: {res['unexpected_count']} of {total} {rows} {problem}"
        samples = list(dict.fromkeys(_show(v, tz) for v in res.get("partial_unexpected_list") or [] if v is not None))
        if samples:
            text += " (e.g. " + ", ".join(samples) + ")"
        return text
    if config.type == "expect_table_columns_to_match_set":
        missing = res.get("details", {}).get("mismatched", {}).get("missing", [])
        return f"{head}: missing columns {', '.join(missing)}"
    return f"{head}: observed {res.get('observed_value')!r}"


def _aware(value: Any, tz: ZoneInfo) -> Any:
    """PySpark returns timestamps as naive datetimes in the machine's local time: make them
    unambiguous instants in the configured timezone."""
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.astimezone(tz)
    return value


def _show(value: Any, tz: ZoneInfo) -> str:
    if isinstance(value, dt.datetime):
        return _aware(value, tz).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
    return repr(value)


# --------------------------------------------------------------------------------------------
# save


def save_validation(outcome: ValidationOutcome, path: str | Path) -> Path:
    """Write the outcome as JSON to `path` (e.g. `lake/_runs/ingest/date=D/validation_<carrier>.json`)
    and GX's rendered validation page next to it (same name, `.html`). Both are written atomically.
    The HTML is GX's data-docs page; it pulls its CSS/JS from public CDNs, so offline it is plain,
    unstyled HTML (the content is all there)."""
    path = Path(path)
    files.write_json(path, outcome.to_dict())
    if outcome._gx_object is not None:
        files.write_atomic(path.with_suffix(".html"), _render_html(outcome._gx_object))
    return path


def _render_html(result) -> str:
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    return DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(result))


# --------------------------------------------------------------------------------------------
# the night's verdict (the nightly `validate` step)


def night_verdict(config: Config, day: dt.date) -> tuple[list[str], list[str], list[str]]:
    """The Great Expectations results that ingest saved for the night: one line per carrier (and
    one per failed expectation) and one per reason the night is partial, then the carriers that
    passed and those that failed. Read back, not re-run: the suite ran before ingest committed. A
    failed carrier-day is already in quarantine and makes the night partial; only a night where no
    carrier passed has nothing to go on with."""
    runs = layout.run_dir(config, "ingest", day)
    summary = summaries.read_summary(config, "ingest", day)
    if summary is None:
        raise CdrwatchError(
            f"{layout.run_summary_path(config, 'ingest', day)}: no ingest run summary for {day} (run ingest first)"
        )
    lines, passed, failed = [], [], []
    for carrier in summary.get("carriers", {}):
        path = runs / f"validation_{carrier}.json"
        if not path.is_file():
            lines.append(f"{carrier}: no GX result (ingest ran without validation)")
            continue
        result = json.loads(path.read_text(encoding="utf-8"))
        stats = result.get("gx_result", {}).get("statistics", {})
        met, total = stats.get("successful_expectations"), stats.get("evaluated_expectations")
        lines.append(
            f"{carrier}: GX suite {'passed' if result['success'] else 'FAILED'} "
            f"({met}/{total} expectations met, {result['row_count']} rows); volume {result['volume']}"
            + (" (suspect: late or partial delivery?)" if result["suspect"] else "")
        )
        lines += [f"  {failure}" for failure in result["failures"]]
        (passed if result["success"] else failed).append(carrier)
    reasons = summary.get("partial_reasons")
    if reasons is None:  # a summary written before partial_reasons existed
        reasons = [f"no files from {c}" for c in summary.get("missing_carriers", [])]
    lines += [f"partial night: {reason}" for reason in reasons]
    return lines, passed, failed
