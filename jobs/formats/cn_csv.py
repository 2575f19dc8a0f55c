"""cn_csv: UTF-8 (BOM allowed), comma-separated, one header row (docs/contracts.md)."""

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
    UNKNOWN_SERVICE,
    first_reason,
    parsed,
    utf8_text,
    with_columns,
    wrong_field_count,
)
from jobs.numbers import spark_e164
from schemas.raw import CN_CSV, CN_CSV_SERVICES

LAYOUT = CN_CSV
HEADER = ",".join(CN_CSV.fields)
_DIRECTIONS = {kind: direction for kind, (direction, _) in CN_CSV_SERVICES.items()}
_SERVICES = {kind: service for kind, (_, service) in CN_CSV_SERVICES.items()}


def parse(lines: DataFrame, timezone: str) -> DataFrame:
    """Line 1 of every file is the header (a BOM before it is dropped); the rest are records."""
    is_header = F.col("source_line") == 1
    lines = with_columns(
        lines,
        text=F.when(is_header, F.regexp_replace(utf8_text(F.col("bytes")), "^\ufeff", "")).otherwise(
            utf8_text(F.col("bytes"))
        ),
    )
    lines = with_columns(lines, fields=F.split(F.col("text"), ",", -1))
    text, fields = F.col("text"), F.col("fields")
    field = {name: F.get(fields, i) for i, name in enumerate(CN_CSV.fields)}
    record_id, msisdn = N.blank_to_null(field["话单标识"]), N.blank_to_null(field["本机号码"])
    service = N.lookup(field["业务类型"], _SERVICES)
    start_time = N.local_timestamp(field["开始时间"], "yyyy-MM-dd HH:mm:ss", timezone)
    duration_s = N.whole_seconds(field["时长"])
    reason = first_reason(
        (~F.is_valid_utf8(F.col("bytes")), UNDECODABLE),
        (F.size(fields) != len(CN_CSV.fields), wrong_field_count(F.size(fields), len(CN_CSV.fields))),
        (record_id.isNull(), EMPTY_RECORD_ID),
        (msisdn.isNull(), EMPTY_SERVED_NUMBER),
        (service.isNull(), UNKNOWN_SERVICE),
        (start_time.isNull(), BAD_TIMESTAMP),
        (duration_s.isNull(), NON_NUMERIC_DURATION),
    )
    return parsed(
        lines,
        raw=text,
        is_header=is_header,
        reason=reason,
        record_id=record_id,
        msisdn=spark_e164(msisdn),
        other_party=spark_e164(field["对端号码"]),
        direction=N.lookup(field["业务类型"], _DIRECTIONS),
        service=service,
        start_time=start_time,
        duration_s=duration_s,
        imsi=N.blank_to_null(field["IMSI"]),
        imei=N.blank_to_null(field["IMEI"]),
        cell_id=N.cell_key(field["LAC"], field["CI"]),
    )
