"""pipe_gbk: GBK, '|'-separated, no header, CRLF allowed (docs/contracts.md)."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs import normalise as N
from jobs.formats import (
    BAD_TIMESTAMP,
    EMPTY_RECORD_ID,
    EMPTY_SERVED_NUMBER,
    NON_NUMERIC_DURATION,
    UNDECODABLE,
    UNKNOWN_DIRECTION,
    UNKNOWN_SERVICE,
    first_reason,
    gbk_text,
    has_replacement_char,
    parsed,
    with_columns,
    wrong_field_count,
)
from jobs.numbers import spark_e164
from schemas.raw import PIPE_GBK, PIPE_GBK_DIRECTIONS, PIPE_GBK_SERVICES

LAYOUT = PIPE_GBK
HEADER = None


def parse(lines: DataFrame, timezone: str) -> DataFrame:
    """Every line is a record; a byte sequence that is not GBK makes the row `undecodable bytes`."""
    lines = with_columns(lines, text=gbk_text(F.col("bytes")))
    lines = with_columns(lines, fields=F.split(F.col("text"), r"\|", -1))
    text, fields = F.col("text"), F.col("fields")
    field = {name: F.get(fields, i) for i, name in enumerate(PIPE_GBK.fields)}
    record_id, msisdn = N.blank_to_null(field["record_id"]), N.blank_to_null(field["msisdn"])
    direction = N.lookup(field["direction"], PIPE_GBK_DIRECTIONS)
    service = N.lookup(field["service"], PIPE_GBK_SERVICES)
    start_time = N.local_timestamp(field["start"], "yyyyMMddHHmmss", timezone)
    duration_s = N.hhmmss_seconds(field["duration"])
    reason = first_reason(
        (has_replacement_char(text), UNDECODABLE),
        (F.size(fields) != len(PIPE_GBK.fields), wrong_field_count(F.size(fields), len(PIPE_GBK.fields))),
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
        other_party=spark_e164(field["other_party"]),
        direction=direction,
        service=service,
        start_time=start_time,
        duration_s=duration_s,
        imsi=N.blank_to_null(field["imsi"]),
        imei=N.blank_to_null(field["imei"]),
        cell_id=N.blank_to_null(field["cell"]),
    )
