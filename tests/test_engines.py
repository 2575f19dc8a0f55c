"""The two engines as one contract: every detector ported to the `local` engine (Polars) gives the
same flags as its Spark twin on the same night, row for row and character for character (scores,
evidence text, detail columns). A difference is a failing test, never a tolerance."""

import datetime as dt
from dataclasses import replace

import polars as pl
import pytest
from test_detectors_conformance import DAY, DEN_SIMS, SEIZED_BOX, WHITELISTED, night_rows

from detectors import DETECTORS
from detectors import local as local_engine
from detectors.base import prepare_night, with_flag_details
from detectors.base import run_detectors as run_spark_detectors
from detectors.local.base import prepare_night as prepare_local_night
from detectors.local.base import run_detectors as run_local_detectors
from detectors.local.base import with_flag_details as with_local_flag_details
from detectors.local.sites import CELL_SCHEMA
from detectors.local.sites import SITE_SCHEMA as LOCATED
from schemas.tables import CDR, FLAG, HOTLIST

KEY = ["entity_type", "entity_id"]


@pytest.fixture(scope="module")
def rows():
    """The conformance night: residents, a GOIP den, a spoofing gateway, a low-and-slow room, and
    three earlier days."""
    return night_rows()


# the sites' rows of the conformance night: the inventory's columns, then the located site's
SITE_SCHEMA = {**CELL_SCHEMA, **{name: kind for name, kind in LOCATED.items() if name != "site"}}
# What the field found (lake/hotlist entries that apply tonight): the den's box, seized from a den raided
# a week ago (as in the conformance night), one of its SIMs' numbers from a confirmed den, a resident's
# number, and the den's site (a new group there once earlier detectors flagged its SIMs).
HOTLIST_ROWS = [
    SEIZED_BOX,
    (
        DEN_SIMS[1],
        "msisdn",
        "D20261110-02",
        "confirmed",
        DAY - dt.timedelta(days=14),
        DAY + dt.timedelta(days=90),
        None,
        None,
    ),
    (
        "+8613800000011",
        "msisdn",
        "D20261001-01",
        "raided",
        DAY - dt.timedelta(days=50),
        DAY + dt.timedelta(days=90),
        None,
        None,
    ),
    (
        "30.6004,104.0504",
        "site",
        "D20261020-04",
        "raided",
        DAY - dt.timedelta(days=30),
        DAY + dt.timedelta(days=90),
        30.6004,
        104.0504,
    ),
]


@pytest.fixture(scope="module")
def spark_night(spark, rows):
    today, history, sites = rows
    night = prepare_night(
        DAY,
        spark.createDataFrame(today, CDR.spark()),
        spark.createDataFrame(history, CDR.spark()),
        spark.createDataFrame(
            sites, ", ".join(f"{k} {'double' if v == pl.Float64 else 'string'}" for k, v in SITE_SCHEMA.items())
        ),
        spark.createDataFrame([(WHITELISTED,)], "number string"),
    )
    return replace(night, hotlist=spark.createDataFrame(HOTLIST_ROWS, HOTLIST.spark()))


@pytest.fixture(scope="module")
def local_night(rows, test_config):
    today, history, sites = rows

    def frame(data):
        return pl.DataFrame(data, schema=CDR.polars(), orient="row").lazy()

    night = prepare_local_night(
        DAY,
        frame(today),
        frame(history),
        pl.DataFrame(sites, schema=SITE_SCHEMA, orient="row"),
        pl.DataFrame({"number": [WHITELISTED]}),
        test_config.timezone,
    )
    return replace(night, hotlist=pl.DataFrame(HOTLIST_ROWS, schema=HOTLIST.polars(), orient="row"))


def spark_flags(frame) -> pl.DataFrame:
    """A Spark frame of flags as Polars, instants in UTC (Spark hands them over in its session zone)."""
    flags = pl.from_arrow(with_flag_details(frame).toArrow())
    return flags.with_columns(
        pl.col(name).dt.convert_time_zone("UTC") for name, kind in flags.schema.items() if kind == pl.Datetime
    )


def as_rows(flags: pl.DataFrame) -> list[tuple]:
    schema = {name: kind for name, kind in FLAG.polars().items() if name in flags.columns}
    return flags.cast(schema).sort(KEY).rows()


@pytest.mark.parametrize("name", local_engine.DETECTORS)
def test_local_detector_gives_the_spark_detectors_flags(name, spark_night, local_night, test_config):
    settings = getattr(test_config.detectors, name)
    expected = spark_flags(DETECTORS[name](settings).flags(spark_night))
    actual = with_local_flag_details(local_engine.DETECTORS[name](settings).flags(local_night))
    assert expected.height > 0, f"{name} finds something on this night"
    assert actual.columns == expected.columns
    for want, got in zip(as_rows(expected), as_rows(actual), strict=True):
        assert got == want


@pytest.mark.parametrize("name", local_engine.DETECTORS)
def test_local_detector_on_an_empty_night_gives_no_flags(name, local_night, test_config):
    empty = local_night.cdr.limit(0)
    night = type(local_night)(DAY, empty, empty, local_night.whitelist, local_night.timezone)
    flags = local_engine.DETECTORS[name](getattr(test_config.detectors, name)).flags(night)
    assert flags.height == 0 and set(("entity_type", "entity_id", "score", "evidence")) <= set(flags.columns)


@pytest.mark.parametrize("device_hotlisted", [True, False], ids=["device", "no-device"])
def test_local_run_gives_the_spark_runs_flags(device_hotlisted, spark_night, local_night, test_config):
    """`run_detectors` of both engines over the ported detectors: each detector sees the earlier ones'
    flags (congestion's flagged SIMs; hotlist's flagged SIMs near a hotlisted site, their best match
    once the den's box is not hotlisted), and the whole FLAG frames are equal."""
    if not device_hotlisted:
        spark_night = replace(spark_night, hotlist=spark_night.hotlist.where("kind != 'imei'"))
        local_night = replace(local_night, hotlist=local_night.hotlist.filter(pl.col("kind") != "imei"))

    def detectors(registry):
        return [registry[name](getattr(test_config.detectors, name)) for name in local_engine.DETECTORS]

    schema = FLAG.polars()
    order = ["detector", *KEY]
    expected = pl.from_arrow(run_spark_detectors(detectors(DETECTORS), spark_night).toArrow())
    expected = expected.with_columns(
        pl.col(name).dt.convert_time_zone("UTC") for name, kind in expected.schema.items() if kind == pl.Datetime
    )
    expected = expected.select(list(schema)).cast(schema).sort(order)
    actual = run_local_detectors(detectors(local_engine.DETECTORS), local_night).cast(schema).sort(order)
    assert actual.columns == expected.columns
    assert actual.height == expected.height
    for want, got in zip(expected.rows(), actual.rows(), strict=True):
        assert got == want
