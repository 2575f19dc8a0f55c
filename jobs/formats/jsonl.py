"""jsonl: one JSON object per line, gzip-compressed, ts in epoch milliseconds UTC (docs/contracts.md)."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs import normalise as N
from jobs.formats import (
    BAD_TIMESTAMP,
    BROKEN_JSON,
    EMPTY_RECORD_ID,
    EMPTY_SERVED_NUMBER,
    NON_NUMERIC_DURATION,
    TRAILING_JSON,
    UNDECODABLE,
    UNKNOWN_DIRECTION,
    UNKNOWN_SERVICE,
    first_reason,
    parsed,
    utf8_text,
    with_columns,
)
from jobs.numbers import spark_e164
from schemas.raw import JSONL, JSONL_DIRECTIONS, JSONL_SERVICES

LAYOUT = JSONL
HEADER = None
REQUIRED = JSONL.fields  # every key of the contract; absent or null: `missing field <name>`
_CORRUPT = "_corrupt_record"
# Every field read as text (a JSON number keeps its digits), so a wrong type is a reason, not a lost row.
_SCHEMA = T.StructType(
    [T.StructField(name, T.StringType()) for name in JSONL.fields] + [T.StructField(_CORRUPT, T.StringType())]
)
# Strict JSON: Spark would otherwise accept {'id': 'x'} (allowSingleQuotes defaults to true).
# Spark's parser stops after the first object of a line (`{...}{...}` would lose the second record):
# with every string literal blanked out, a line must be exactly one flat object.
_STRING_LITERAL = r'"(?:[^"\\]++|\\.)*+"'
_ONE_FLAT_OBJECT = r"^\s*\{[^{}\[\]]*\}\s*$"
_TRAILING = r"^\s*\{[^{}]*\}\s*\S"
_JSON_OPTIONS = {
    "mode": "PERMISSIVE",
    "columnNameOfCorruptRecord": _CORRUPT,
    "allowSingleQuotes": "false",
    "allowUnquotedFieldNames": "false",
    "allowNonNumericNumbers": "false",
    "allowComments": "false",
}


def parse(lines: DataFrame, timezone: str) -> DataFrame:
    """`timezone` is unused: ts is an instant already."""
    lines = with_columns(lines, text=utf8_text(F.col("bytes")))
    lines = with_columns(
        lines,
        obj=F.from_json(F.col("text"), _SCHEMA, _JSON_OPTIONS),
        shape=F.regexp_replace(F.col("text"), _STRING_LITERAL, '""'),
    )
    text, obj, shape = F.col("text"), F.col("obj"), F.col("shape")
    field = {name: obj[name] for name in JSONL.fields}
    record_id, msisdn = N.blank_to_null(field["id"]), N.blank_to_null(field["subscriber"])
    direction = N.lookup(field["dir"], JSONL_DIRECTIONS)
    service = N.lookup(field["svc"], JSONL_SERVICES)
    start_time = N.epoch_millis(field["ts"])
    duration_s = N.whole_seconds(field["dur"])
    reason = first_reason(
        (~F.is_valid_utf8(F.col("bytes")), UNDECODABLE),
        (obj.isNull() | obj[_CORRUPT].isNotNull(), BROKEN_JSON),
        (shape.rlike(_TRAILING), TRAILING_JSON),
        (~shape.rlike(_ONE_FLAT_OBJECT), BROKEN_JSON),
        *[(field[name].isNull(), f"missing field {name}") for name in REQUIRED],
        (record_id.isNull(), EMPTY_RECORD_ID),
        (msisdn.isNull(), EMPTY_SERVED_NUMBER),
        (direction.isNull(), UNKNOWN_DIRECTION),
        (service.isNull(), UNKNOWN_SERVICE),
        (start_time.isNull(), BAD_TIMESTAMP),
        (duration_s.isNull(), NON_NUMERIC_DURATION),
    )
    return parsed(
        lines,
        raw=text,
        is_header=F.lit(False),
        reason=reason,
        record_id=record_id,
        msisdn=spark_e164(msisdn),
        other_party=spark_e164(field["peer"]),
        direction=direction,
        service=service,
        start_time=start_time,
        duration_s=duration_s,
        imsi=N.blank_to_null(field["imsi"]),
        imei=N.blank_to_null(field["imei"]),
        cell_id=N.blank_to_null(field["cell"]),
    )
