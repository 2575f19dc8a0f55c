"""jobs.numbers: one table of numbers as written and as in the lake, checked against every rendering
of the rules (Python, Spark, Polars), and the way back to the national form."""

import polars as pl
import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from jobs.numbers import e164, is_telephone, national, polars_e164, spark_e164

E164 = [
    ("13912345678", "+8613912345678"),  # bare mobile
    ("8613912345678", "+8613912345678"),
    ("+8613912345678", "+8613912345678"),
    ("008613912345678", "+8613912345678"),
    (" 13912345678 ", "+8613912345678"),
    ("028-85551234", "+862885551234"),  # landline, dash
    ("02885551234", "+862885551234"),  # landline, no dash
    ("010-12345678", "+861012345678"),
    ("0755-1234567", "+867551234567"),
    ("+85512345678", "+85512345678"),  # foreign, kept
    ("0085512345678", "+85512345678"),  # foreign with 00
    ("95588", "95588"),  # service numbers as digits
    ("10086", "10086"),
    ("110", "110"),
    ("12345678901", "12345678901"),  # anything else as given
    ("139-1234", "139-1234"),
    ("unknown", "unknown"),
    ("+8613912345678\u2028", "+8613912345678\u2028"),  # a line break after it: no rule reads it, on any engine
    ("13912345678\n", "13912345678\n"),
    ("95588\u0085", "95588\u0085"),
    ("", None),
    ("   ", None),
    (None, None),
]


@pytest.mark.parametrize("given, want", E164)
def test_e164_in_python(given, want):
    assert e164(given) == want


def test_e164_in_spark(spark):
    expected = spark.createDataFrame(E164, "given string, want string")
    actual = expected.select("given", spark_e164(F.col("given")).alias("want"))
    assert_df_equality(actual, expected, ignore_nullable=True)


def test_e164_in_polars():
    frame = pl.DataFrame(E164, schema={"given": pl.String, "want": pl.String}, orient="row")
    assert frame.select(polars_e164(pl.col("given"))).to_series().to_list() == frame["want"].to_list()


@pytest.mark.parametrize(
    "number, telephone",
    [
        ("+8613912345678", True),
        ("95588", True),
        ("+85512345678", True),
        ("12345678901", False),
        ("unknown", False),
        ("12", False),
        (None, False),
    ],
)
def test_is_telephone(number, telephone):
    assert is_telephone(number) is telephone


@pytest.mark.parametrize("given, _", [case for case in E164 if case[1] and is_telephone(case[1])])
def test_national_is_the_way_back(given, _):
    assert e164(national(e164(given))) == e164(given)


def test_national_forms():
    assert [national(n) for n in ("+8613912345678", "+862885551234", "+85512345678", "95588", None)] == [
        "13912345678",
        "02885551234",
        "0085512345678",
        "95588",
        "",
    ]
