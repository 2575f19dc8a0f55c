"""Readers of the carriers' raw formats, one module per format, found by the format name in conf.

Every module has `LAYOUT` (schemas.raw), `HEADER` (the exact header line or None) and
`parse(lines, timezone) -> DataFrame`. `lines` has `source_file, source_line, bytes` (one row per
physical line, bytes as delivered minus the newline); the result has `PARSED_COLUMNS`: one row per
line, `is_header` for a header line, and either `reason` (why the row cannot be accepted) or the
canonical CDR values. Nothing is dropped here.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.errors import CdrwatchError
from schemas.raw import RAW_LAYOUTS

PARSED_COLUMNS = (
    "source_file", "source_line", "raw", "is_header", "reason", "record_id", "msisdn", "other_party",
    "direction", "service", "start_time", "duration_s", "imsi", "imei", "cell_id",
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


def reader(format_name: str) -> ModuleType:
    """The module of jobs/formats that reads `format_name` (a key of schemas.raw.RAW_LAYOUTS)."""
    if format_name not in RAW_LAYOUTS:
        raise CdrwatchError(f"unknown format {format_name!r} (known: {', '.join(sorted(RAW_LAYOUTS))})")
    return importlib.import_module(f"{__name__}.{format_name}")


def utf8_text(line_bytes: Column) -> Column:
    """The line as UTF-8 text (invalid sequences as U+FFFD), without a trailing carriage return."""
    return F.regexp_replace(F.make_valid_utf8(line_bytes.cast("string")), "\r$", "")


def gbk_text(line_bytes: Column) -> Column:
    """The line decoded from GBK (undecodable bytes as U+FFFD), without a trailing carriage return."""
    return F.regexp_replace(F.decode(line_bytes, "GBK"), "\r$", "")


def has_replacement_char(text: Column) -> Column:
    return F.contains(text, F.lit("\ufffd"))


def wrong_field_count(count: Column, expected: int) -> Column:
    return F.concat(F.lit("wrong field count ("), count.cast("string"), F.lit(f", expected {expected})"))


def first_reason(*checks: tuple[Column, Column | str]) -> Column:
    """The reason of the first check whose condition holds, NULL if none does."""
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


def parsed(lines: DataFrame, *, raw: Column, is_header: Column, reason: Column, **values: Column) -> DataFrame:
    """`lines` projected to PARSED_COLUMNS; a header row carries no reason."""
    reason = F.when(~is_header, reason)
    columns = {"source_file": F.col("source_file"), "source_line": F.col("source_line"), "raw": raw,
               "is_header": is_header, "reason": reason, **values}
    missing = set(PARSED_COLUMNS) - set(columns)
    if missing:
        raise ValueError(f"parsed(): no expression for {sorted(missing)}")
    types = {"source_line": "long", "is_header": "boolean", "start_time": "timestamp", "duration_s": "int"}
    return lines.select(*[columns[name].cast(types.get(name, "string")).alias(name) for name in PARSED_COLUMNS])
