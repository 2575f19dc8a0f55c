"""Readers of the carriers' raw formats, one module per format, found by the format name in conf.

This package imports no engine: the reasons, shapes and PARSED_COLUMNS here are shared by the Spark
readers (one module per format, with the Column helpers below, which import pyspark when called)
and the local engine's Polars readers (`jobs.formats.local`).

Every Spark module has `LAYOUT` (schemas.raw), `HEADER` (the exact header line or None) and
`parse(lines, timezone) -> DataFrame`. `lines` has `source_file, source_line, bytes` (one row per
physical line, bytes as delivered minus the newline); the result has `PARSED_COLUMNS`: one row per
line, `is_header` for a header line, and either `reason` (why the row cannot be accepted) or the
canonical CDR values. Nothing is dropped here.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from jobs.errors import CdrwatchError
from schemas.raw import RAW_LAYOUTS

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

PARSED_COLUMNS = (
    "source_file",
    "source_line",
    "raw",
    "is_header",
    "reason",
    "record_id",
    "msisdn",
    "other_party",
    "direction",
    "service",
    "start_time",
    "duration_s",
    "imsi",
    "imei",
    "cell_id",
)

# Quarantine reasons: short fixed strings, so that they can be counted.
UNDECODABLE = "undecodable bytes"
BROKEN_JSON = "broken json"
EMPTY_RECORD_ID = "empty record id"
EMPTY_SERVED_NUMBER = "empty served number"
UNKNOWN_DIRECTION = "unknown direction"
UNKNOWN_SERVICE = "unknown service"
BAD_TIMESTAMP = "bad timestamp"
NON_NUMERIC_DURATION = "non-numeric duration"
OUTSIDE_DELIVERY_DATE = "event outside delivery date"
TRAILING_JSON = "trailing data after json object"
CONTROL_CHARACTER = "control character in line"
BAD_RECORD_ID = "bad record id"
NOT_A_SUBSCRIBER = "served number not a subscriber number"
BAD_OTHER_PARTY = "unreadable other party"
BAD_IMSI = "bad imsi"
BAD_IMEI = "bad imei"
DURATION_OUT_OF_RANGE = "duration out of range"
SMS_WITH_DURATION = "sms with a duration"
HEADER_MISMATCH = "file header does not match the format"
CUT_BY_DAMAGE = "line cut by a damaged gzip"
FAILED_VALIDATION = "carrier-day failed validation"

# The shapes of accepted values: the parsers quarantine anything else row by row, and the Great
# Expectations suite (jobs/validate.py) checks the same regexes over the partition as a backstop,
# so whatever a parser accepts, the suite passes (tests/test_fault_injection.py).
MSISDN_REGEX = r"^(\+861[3-9][0-9]{9}|\+861(064|440)[0-9]{9})$"  # mobile, or a 13-digit IoT/M2M SIM
OTHER_PARTY_REGEXES = (
    r"^\+[1-9][0-9]{4,14}$",  # E.164
    r"^[0-9]{3,6}$",  # service number
    r"^[0-9A-Za-z]{2,20}$",
)  # SMS sender id, gateway port, local digits
RECORD_ID_REGEX = r"^[0-9A-Za-z_.:-]{1,64}$"  # a carrier's id: letters, digits and . _ : -
IMSI_REGEX = r"^[0-9]{15}$"
# The TAC's reporting body is never 00. Written without a lookahead, so that Spark (Java), Polars (Rust)
# and GX on pandas (RE2 through pyarrow) all read the same pattern.
IMEI_REGEX = r"^(0[1-9][0-9]{12,14}|[1-9][0-9]{13,15})$"
MAX_DURATION_S = 86_400
CONTROL_REGEX = r"[\x00-\x1F\x7F]"


def reader(format_name: str) -> ModuleType:
    """The module of jobs/formats that reads `format_name` (a key of schemas.raw.RAW_LAYOUTS) with Spark."""
    return importlib.import_module(f"{__name__}.{layout(format_name).name}")


def layout(format_name: str):
    """The raw layout of `format_name` (schemas.raw); an unknown name is one clear error."""
    if format_name not in RAW_LAYOUTS:
        raise CdrwatchError(f"unknown format {format_name!r} (known: {', '.join(sorted(RAW_LAYOUTS))})")
    return RAW_LAYOUTS[format_name]


def header(format_name: str) -> str | None:
    """The exact header line of `format_name` (its fields joined by commas), None for a format without one."""
    fields = layout(format_name)
    return ",".join(fields.fields) if fields.header else None


def utf8_text(line_bytes: Column) -> Column:
    """The line as UTF-8 text (invalid sequences as U+FFFD), without a trailing carriage return."""
    from pyspark.sql import functions as F

    return F.regexp_replace(F.make_valid_utf8(line_bytes.cast("string")), "\r$", "")


def gbk_text(line_bytes: Column) -> Column:
    """The line decoded from GBK (undecodable bytes as U+FFFD), without a trailing carriage return."""
    from pyspark.sql import functions as F

    return F.regexp_replace(F.decode(line_bytes, "GBK"), "\r$", "")


def has_replacement_char(text: Column) -> Column:
    from pyspark.sql import functions as F

    return F.contains(text, F.lit("\ufffd"))


def wrong_field_count(count: Column, expected: int) -> Column:
    from pyspark.sql import functions as F

    return F.concat(F.lit("wrong field count ("), count.cast("string"), F.lit(f", expected {expected})"))


def first_reason(*checks: tuple[Column, Column | str]) -> Column:
    """The reason of the first check whose condition holds, NULL if none does."""
    from pyspark.sql import functions as F

    result = None
    for condition, reason in checks:
        reason = F.lit(reason) if isinstance(reason, str) else reason
        result = F.when(condition, reason) if result is None else result.when(condition, reason)
    return result


def with_columns(lines: DataFrame, **columns: Column) -> DataFrame:
    """`lines` plus the given columns, as their own projection: a value that many later
    expressions read (the decoded text, the split fields, the parsed JSON) is then computed once
    per row instead of being inlined, and re-evaluated, in each of them."""
    return lines.select("*", *[column.alias(name) for name, column in columns.items()])


def canonical_reason(text: Column, values: dict[str, Column]) -> Column:
    """Why canonical values a format could read are still not acceptable: the shapes every format
    shares (docs/contracts.md), checked after the format's own reasons. NULL when acceptable."""
    v = values
    return first_reason(
        (text.rlike(CONTROL_REGEX), CONTROL_CHARACTER),
        (~v["record_id"].rlike(RECORD_ID_REGEX), BAD_RECORD_ID),
        (~v["msisdn"].rlike(MSISDN_REGEX), NOT_A_SUBSCRIBER),
        (v["other_party"].isNotNull() & ~_any_match(v["other_party"], OTHER_PARTY_REGEXES), BAD_OTHER_PARTY),
        (v["imsi"].isNotNull() & ~v["imsi"].rlike(IMSI_REGEX), BAD_IMSI),
        (v["imei"].isNotNull() & ~v["imei"].rlike(IMEI_REGEX), BAD_IMEI),
        (v["cell_id"].isNotNull() & v["cell_id"].rlike(CONTROL_REGEX), CONTROL_CHARACTER),
        ((v["duration_s"] < 0) | (v["duration_s"] > MAX_DURATION_S), DURATION_OUT_OF_RANGE),
        ((v["service"] == "sms") & (v["duration_s"] != 0), SMS_WITH_DURATION),
    )


def _any_match(value: Column, regexes: tuple[str, ...]) -> Column:
    result = value.rlike(regexes[0])
    for regex in regexes[1:]:
        result = result | value.rlike(regex)
    return result


def parsed(lines: DataFrame, *, raw: Column, is_header: Column, reason: Column, **values: Column) -> DataFrame:
    """`lines` projected to PARSED_COLUMNS; a header row carries no reason. The format's own
    `reason` comes first, then the shapes every format shares (`canonical_reason`), so no format
    can accept a value the lake's contract (and its GX suite) refuses."""
    from pyspark.sql import functions as F

    columns = {
        "source_file": F.col("source_file"),
        "source_line": F.col("source_line"),
        "raw": raw,
        "is_header": is_header,
        **values,
    }
    missing = set(PARSED_COLUMNS) - set(columns) - {"reason"}
    if missing:
        raise ValueError(f"parsed(): no expression for {sorted(missing)}")
    types = {"source_line": "long", "is_header": "boolean", "start_time": "timestamp", "duration_s": "int"}
    typed = lines.select(
        *[columns[name].cast(types.get(name, "string")).alias(name) for name in PARSED_COLUMNS if name != "reason"],
        reason.alias("_format_reason"),
    )
    shared = canonical_reason(F.col("raw"), {name: F.col(name) for name in values})
    return typed.select(
        *[
            F.when(~F.col("is_header"), F.coalesce(F.col("_format_reason"), shared)).alias(name)
            if name == "reason"
            else F.col(name)
            for name in PARSED_COLUMNS
        ]
    )
