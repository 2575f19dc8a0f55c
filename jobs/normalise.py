"""Spark Column expressions that turn carriers' raw text into the lake's canonical values (numbers:
`jobs.numbers.spark_e164`).

Pure functions of Columns (no UDFs, no session): each returns NULL where the input cannot be read,
so the caller decides what a NULL means (quarantine reason or an absent optional value).
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column
from pyspark.sql import functions as F


def blank_to_null(text: Column) -> Column:
    """The trimmed text, NULL when empty or only spaces."""
    trimmed = F.trim(text)
    return F.when(trimmed != "", trimmed)


def lookup(code: Column, mapping: Mapping[str, str]) -> Column:
    """`mapping[code]` (after trimming), NULL for a code not in the mapping."""
    code = F.trim(code)
    result = None
    for key, value in mapping.items():
        result = (F.when if result is None else result.when)(code == key, F.lit(value))
    return result if result is not None else F.lit(None).cast("string")


def local_timestamp(text: Column, pattern: str, timezone: str) -> Column:
    """Local wall-clock text in `timezone` (a Spark datetime pattern) as an instant; NULL if the
    text does not match exactly or is not a real time. The zone is explicit, not the session's."""
    return F.try_to_timestamp(F.concat(F.trim(text), F.lit(" " + timezone)), F.lit(pattern + " VV"))


def epoch_millis(text: Column) -> Column:
    """Epoch milliseconds (UTC), written as integer digits, as an instant; NULL otherwise."""
    t = F.trim(text)
    return F.when(t.rlike(r"^-?[0-9]{1,15}$"), F.timestamp_millis(t.cast("long")))


def whole_seconds(text: Column) -> Column:
    """A duration written as whole seconds (`113`) as int; NULL if not plain digits."""
    t = F.trim(text)
    return F.when(t.rlike(r"^[0-9]{1,9}$"), t.cast("int"))


def hhmmss_seconds(text: Column) -> Column:
    """A duration written as HHMMSS (`000153`) as int seconds (113); NULL if not HHMMSS."""
    t = F.trim(text)
    ok = t.rlike(r"^[0-9]{2}[0-5][0-9][0-5][0-9]$")
    h, m, s = (F.substring(t, pos, 2).cast("int") for pos in (1, 3, 5))
    return F.when(ok, h * 3600 + m * 60 + s)


def local_date(instant: Column) -> Column:
    """The calendar date of an instant in the session time zone (spark_session sets it to
    config.timezone; ingest checks that it still is)."""
    return F.to_date(instant)


def cell_key(lac: Column, ci: Column) -> Column:
    """cn_csv cell key `<LAC>-<CI>`; NULL unless both parts are given."""
    lac, ci = blank_to_null(lac), blank_to_null(ci)
    return F.when(lac.isNotNull() & ci.isNotNull(), F.concat(lac, F.lit("-"), ci))
