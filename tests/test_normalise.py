"""jobs.normalise: each expression on a small table of (as written, as in the lake); numbers: test_numbers.py."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from jobs import normalise as N


def check(spark, expression, cases, out_type="string"):
    """Compare `expression(input)` with the expected column of `cases` [(input, expected), ...]."""
    expected = spark.createDataFrame(cases, f"given string, want {out_type}")
    actual = expected.select("given", expression(F.col("given")).cast(out_type).alias("want"))
    assert_df_equality(actual, expected, ignore_nullable=True)


def test_lookup_maps_known_codes_and_nulls_the_rest(spark):
    check(
        spark,
        lambda c: N.lookup(c, {"0": "out", "1": "in"}),
        [("0", "out"), ("1", "in"), (" 1", "in"), ("2", None), ("", None), (None, None)],
    )


def test_blank_to_null(spark):
    check(spark, N.blank_to_null, [(" a ", "a"), ("", None), ("   ", None), (None, None)])


def test_whole_seconds(spark):
    check(
        spark,
        N.whole_seconds,
        [("0", 0), ("113", 113), ("1m", None), ("-3", None), ("1.5", None), ("", None), ("99999999999", None)],
        "int",
    )


def test_hhmmss_seconds(spark):
    check(
        spark,
        N.hhmmss_seconds,
        [
            ("000153", 113),
            ("000000", 0),
            ("010000", 3600),
            ("000160", None),
            ("0001ab", None),
            ("153", None),
            ("", None),
        ],
        "int",
    )


def _epoch(text, zone="Asia/Shanghai"):
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp())


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "Europe/Berlin"])
def test_local_timestamp_reads_wall_clock_in_the_given_zone(spark, zone):
    cases = [
        ("2026-11-20 12:00:17", _epoch("2026-11-20 12:00:17", zone)),
        ("2026-11-20 00:00:00", _epoch("2026-11-20 00:00:00", zone)),
        ("2026-11-20 24:00:00", None),
        ("2026-02-30 12:00:00", None),
        ("2026-11-20T12:00:17", None),
        ("2026-11-20 12:00", None),
        ("", None),
    ]
    check(spark, lambda c: F.unix_timestamp(N.local_timestamp(c, "yyyy-MM-dd HH:mm:ss", zone)), cases, "long")


def test_local_timestamp_compact_pattern(spark):
    check(
        spark,
        lambda c: F.unix_timestamp(N.local_timestamp(c, "yyyyMMddHHmmss", "Asia/Shanghai")),
        [("20261120120017", _epoch("2026-11-20 12:00:17")), ("2026112012001", None), ("2026-11-20", None)],
        "long",
    )


def test_epoch_millis(spark):
    check(
        spark,
        lambda c: F.unix_millis(N.epoch_millis(c)),
        [("1795147255000", 1795147255000), ("0", 0), ("17951472e5", None), ("x", None), (None, None)],
        "long",
    )


def test_local_date_is_the_session_zone_date(spark):
    # 2026-11-19 20:30 UTC is already 2026-11-20 in Shanghai (the test session's zone)
    check(
        spark,
        lambda c: N.local_date(F.timestamp_millis(c.cast("long"))),
        [
            (str(_epoch("2026-11-20 04:30:00") * 1000), dt.date(2026, 11, 20)),
            (str(_epoch("2026-11-19 20:30:00", "UTC") * 1000), dt.date(2026, 11, 20)),
            (str(_epoch("2026-11-19 23:59:59") * 1000), dt.date(2026, 11, 19)),
        ],
        "date",
    )


def test_cell_key(spark):
    expected = spark.createDataFrame(
        [("4101", "20096", "4101-20096"), ("4101", "", None), ("", "", None)], "lac string, ci string, cell string"
    )
    actual = expected.select("lac", "ci", N.cell_key(F.col("lac"), F.col("ci")).alias("cell"))
    assert_df_equality(actual, expected, ignore_nullable=True)
