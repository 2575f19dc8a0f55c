"""Caller-ID spoofing on both engines: the `local` engine's judgement (`jobs.spoofing_local`,
`detectors.local.spoofing`) gives the Spark one's judged legs, spoofed legs, campaigns, counts,
flags and written files, column for column and character for character, on the conformance night
and on the spoofing scenes of tests/test_detector_spoofing.py with a lake around them (neighbouring
days, routed records, earlier subscribers, quarantined lines, an ingest summary, protected numbers)."""

import datetime as dt
from dataclasses import replace

import polars as pl
import pytest
from builders import config_for, make_night
from pyspark.sql import functions as F
from test_detector_spoofing import ALICE, BOB, CAROL, DAVE, ROWS, SHOP, at, leg
from test_detectors_conformance import DAY as CONFORMANCE_DAY
from test_engines import local_night as conformance_local_night  # noqa: F401  (fixtures)
from test_engines import rows, spark_night  # noqa: F401  (fixtures)

from detectors import local as local_detectors
from detectors import spoofing as spark_spoofing
from detectors.local import spoofing as local_spoofing
from detectors.local.base import LocalNight
from jobs import spoofing, spoofing_local
from jobs.io import lake_polars, layout, summaries
from schemas.tables import CDR, QUARANTINE, ROUTED, SIM_DAY, SPOOFED

DAY = ROWS[0][-1]
BEFORE, AFTER = DAY - dt.timedelta(days=1), DAY + dt.timedelta(days=1)
ERIN = "+8615100000005"  # a ct subscriber seen only in an earlier day's aggregates
FRANK = "+8615200000006"  # seen earlier, by an aggregate older than its carrier column
GRACE = "+8613600000007"  # rings Carol just after midnight; a mobile the protected list cannot hold

# Tonight's legs beyond the scene's: twins found only in the lake around the night
EXTRA = [
    # Alice shown to Carol at 23:59:50; Alice's outgoing leg is in cm's next day, 40 s after midnight
    leg("i14", "ct", CAROL, ALICE, "in", at(23, 59, 50), 0),
    # Alice shown to Dave 20 s after midnight; her outgoing leg is in cm's previous day
    leg("i15", "cu", DAVE, ALICE, "in", at(0, 0, 20), 30),
    # Carol shown to Alice at 21:00: her outgoing leg came late, routed (delivered the next day)
    leg("i16", "cm", ALICE, CAROL, "in", at(21, 0, 10), 45),
    # Erin (ct, seen 3 days ago) shown to Bob twice; Frank (carrier unknown) shown to Bob
    leg("i17", "cu", BOB, ERIN, "in", at(9, 30), 200),
    leg("i18", "cu", BOB, ERIN, "in", at(9, 40), 0, "sms"),
    leg("i19", "cm", ALICE, FRANK, "in", at(13), 0),
    # Grace's number shown to Bob: she is seen in no subscriber table (only in a neighbouring day's leg)
    leg("i20", "cu", BOB, GRACE, "in", at(14), 10),
]
NEIGHBOURS = [
    leg("n1", "cm", ALICE, CAROL, "out", at(0, 0, 40, day=AFTER), 0),
    leg("n2", "cm", ALICE, DAVE, "out", at(23, 59, 55, day=BEFORE), 31),
    leg("n3", "cu", BOB, ALICE, "out", at(12, day=BEFORE), 10),
    leg("n4", "ct", CAROL, BOB, "out", at(12, day=BEFORE), 10),
    leg("n5", "cm", GRACE, CAROL, "out", at(0, 30, day=AFTER), 10),
]
ROUTED_ROWS = [  # Carol's outgoing leg of 21:00 on DAY, delivered under the next day
    (*leg("r1", "ct", CAROL, ALICE, "out", at(21), 46)[:-1], "raw line", DAY, AFTER),
]
QUARANTINED_LINES = [
    ("ct", "ct/q.txt", 9, "ct-9|13800000001|???|broken", "bad row", DAY),  # Alice alone: Carol's cut line?
    ("cm", "cm/q.csv", 4, "x,13900000002,8613800000001,25:00", "bad time", DAY),  # Bob and Alice
    ("ct", "ct/q.txt", 12, "ct-7|15000000003|8618600000004|Z", "bad row", BEFORE),  # Carol and Dave
]
SIM_DAYS = [  # (msisdn, n_out, n_in, date, carrier)
    (ERIN, 3, 1, DAY - dt.timedelta(days=3), "ct"),
    (FRANK, 1, 0, DAY - dt.timedelta(days=4), None),
    (ALICE, 5, 5, DAY - dt.timedelta(days=2), "cm"),
    (CAROL, 1, 1, DAY - dt.timedelta(days=2), "ct"),
    (BOB, 1, 1, DAY - dt.timedelta(days=2), "cu"),
    (DAVE, 1, 1, DAY - dt.timedelta(days=2), "cu"),
]
PROTECTED_CSV = f"number,name,services\n{GRACE},a judge's mobile,voice\n9558x,bank sms line,sms\n"


def _cdr_frame(records) -> pl.DataFrame:
    return pl.DataFrame(records, schema=CDR.polars(), orient="row")


def _write_lake(config, summary: dict) -> None:
    """The lake around the scene's night: neighbouring days, routed records, quarantined lines, earlier
    subscribers, tonight's ingest summary and the landing's protected numbers."""
    neighbours = _cdr_frame(NEIGHBOURS)
    for day in (BEFORE, AFTER):
        records = neighbours.filter(pl.col("date") == day)
        with lake_polars.DayWrite(config, day) as write:
            write.write(CDR, records, sort_by=("start_time",), max_rows_per_file=100)
            carriers = ["cm", "cu", "ct"] if day == BEFORE else ["cm", "cu"]  # ct's next day is not in yet
            write.commit(carriers)
    with lake_polars.DayWrite(config, AFTER) as write:
        write.write(ROUTED, pl.DataFrame(ROUTED_ROWS, schema=ROUTED.polars(), orient="row"), ("record_id",), 100)
        write.commit(["ct"])
    lines = pl.DataFrame(QUARANTINED_LINES, schema=QUARANTINE.polars(), orient="row")
    for (day,), part in lines.partition_by("date", as_dict=True).items():
        with lake_polars.DayWrite(config, day) as write:
            write.write(QUARANTINE, part, ("source_line",), 100)
            write.commit(sorted(set(part["carrier"])))
    sims = pl.DataFrame(SIM_DAYS, schema=SIM_DAY.polars(), orient="row")
    for (day,), part in sims.partition_by("date", as_dict=True).items():
        lake_polars.replace_date(config, SIM_DAY, day, part, sort_by=("msisdn",))
    summaries.write_summary(config, "ingest", DAY, summary)
    layout.protected_path(config).parent.mkdir(parents=True, exist_ok=True)
    layout.protected_path(config).write_text(PROTECTED_CSV, encoding="utf-8")


SCENE_SUMMARY = {"carriers": {}, "missing_carriers": [], "partial_carriers": {"cu": ["volume suspect"]}}
WHOLE_SUMMARY = {"carriers": {}, "missing_carriers": [], "partial_carriers": {}}


def as_polars(frame) -> pl.DataFrame:
    """A Spark frame as Polars, instants in UTC (Spark hands them over in its session zone)."""
    data = pl.from_arrow(frame.toArrow())
    return data.with_columns(
        pl.col(name).dt.convert_time_zone("UTC") for name, kind in data.schema.items() if isinstance(kind, pl.Datetime)
    )


def same_rows(spark_frame, local_frame, key) -> int:
    """The two frames hold the same rows, every column equal (Spark's types as the reference)."""
    expected = as_polars(spark_frame).sort(key)
    actual = local_frame.lazy().collect() if isinstance(local_frame, pl.LazyFrame) else local_frame
    actual = actual.select(expected.columns).cast(expected.schema).sort(key)
    assert actual.columns == expected.columns
    assert actual.rows() == expected.rows()
    return expected.height


# --- the scene's pure transforms, inputs handed in -------------------------------------------------


@pytest.fixture(scope="module")
def scene(spark, test_config):
    """The scene of test_detector_spoofing (and EXTRA) as a night on both engines."""
    located = {"site_key": "string", "site_lat": "double", "site_lon": "double", "site_label": "string"}
    cdr = spark.createDataFrame(ROWS + EXTRA, CDR.spark()).select(
        "*", *[F.lit(None).cast(kind).alias(name) for name, kind in located.items()], F.lit("锦江区").alias("district")
    )
    spark_night_ = make_night(spark, DAY, cdr, whitelist=spark.createDataFrame([(SHOP,)], "number string"))
    kinds = {"string": pl.String, "double": pl.Float64}
    local_cdr = (
        _cdr_frame(ROWS + EXTRA)
        .with_columns(
            *[pl.lit(None, kinds[kind]).alias(name) for name, kind in located.items()],
            pl.lit("锦江区").alias("district"),
        )
        .lazy()
    )
    local_night_ = LocalNight(
        DAY, local_cdr, local_cdr.limit(0), pl.DataFrame({"number": [SHOP]}), test_config.timezone
    )
    return spark_night_, local_night_


QUARANTINE_RAW = [
    ("ct", "ct-9|13800000001|???|broken"),
    ("cm", "x,13900000002,8613800000001,25:00"),
    ("ct", "ct-7|15000000003|8618600000004|Z"),
    ("cm", "1,13900000002,+8613800000001,460001234567890,x"),
    ("cm", "2,,008615000000003"),
    ("cu", "00861390000000213800000001 and 8613900000002"),  # runs of digits longer than a number
    ("ct", "no number at all"),
    ("ct", None),
]


def _inputs(spark, spark_night_, local_night_, **changes):
    subscribers = [(ALICE, "cm"), (BOB, "cu"), (CAROL, "ct"), (DAVE, "cu"), (SHOP, "cm"), (ERIN, "ct"), (FRANK, None)]
    spark_inputs = spark_spoofing.LegInputs(
        outgoing=spark_spoofing.outgoing_legs(spark_night_.cdr),
        subscribers=spark.createDataFrame(subscribers, "msisdn string, carrier string"),
        incomplete={"cu": "volume suspect"},
        previous_day=frozenset({"cm", "cu", "ct"}),
        next_day=frozenset({"cm", "cu"}),
        mentions=spark_spoofing.quarantine_mentions(
            spark.createDataFrame(QUARANTINE_RAW[:3], "carrier string, raw string")
        ),
    )
    local_inputs = local_spoofing.LegInputs(
        outgoing=local_spoofing.outgoing_legs(local_night_.cdr),
        subscribers=pl.DataFrame(subscribers, schema={"msisdn": pl.String, "carrier": pl.String}, orient="row").lazy(),
        incomplete={"cu": "volume suspect"},
        previous_day=frozenset({"cm", "cu", "ct"}),
        next_day=frozenset({"cm", "cu"}),
        mentions=local_spoofing.quarantine_mentions(
            pl.DataFrame(QUARANTINE_RAW[:3], schema={"carrier": pl.String, "raw": pl.String}, orient="row").lazy()
        ),
    )
    return replace(spark_inputs, **changes), replace(local_inputs, **changes)


def test_quarantined_lines_give_the_same_keys(spark):
    spark_keys = spark_spoofing.quarantine_mentions(spark.createDataFrame(QUARANTINE_RAW, "carrier string, raw string"))
    local_keys = local_spoofing.quarantine_mentions(
        pl.DataFrame(QUARANTINE_RAW, schema={"carrier": pl.String, "raw": pl.String}, orient="row").lazy()
    )
    assert same_rows(spark_keys, local_keys, ["carrier", "key"]) == 5


INPUT_CASES = {
    "partial cu, ct's next day missing, quarantine": {},
    "whole night, every neighbouring day": {"incomplete": {}, "next_day": frozenset({"cm", "cu", "ct"})},
    "no quarantine known, no neighbouring day": {"mentions": None, "previous_day": frozenset()},
}


@pytest.mark.parametrize("case", list(INPUT_CASES))
def test_judged_legs_are_the_same(case, spark, scene, test_config):
    spark_night_, local_night_ = scene
    spark_inputs, local_inputs = _inputs(spark, spark_night_, local_night_, **INPUT_CASES[case])
    settings = test_config.detectors.spoofing
    expected = spark_spoofing.judge_incoming(spark_night_, spark_inputs, settings)
    actual = local_spoofing.judge_incoming(local_night_, local_inputs, settings)
    assert same_rows(expected, actual, ["carrier", "record_id"]) >= 15


def test_the_guard_keeps_the_same_legs(spark, scene, test_config):
    spark_night_, local_night_ = scene
    spark_inputs, local_inputs = _inputs(spark, spark_night_, local_night_)
    strict = test_config.detectors.spoofing.model_copy(update={"guard_min_legs": 1, "max_unmatched_share": 0.5})
    expected = spark_spoofing.guarded(
        spark_spoofing.judge_incoming(spark_night_, spark_inputs, strict).withColumn(
            "owner_carrier", spark_spoofing.owner_carrier()
        ),
        strict,
    )
    actual = local_spoofing.guarded(
        local_spoofing.judge_incoming(local_night_, local_inputs, strict).with_columns(
            local_spoofing.owner_carrier().alias("owner_carrier")
        ),
        strict,
    )
    assert same_rows(expected, actual, ["carrier", "record_id"]) > 0


def test_a_night_without_judgement_gives_the_same_flags(scene, test_config):
    """The notebook path: the detector judges the night from its own rows."""
    spark_night_, local_night_ = scene
    settings = test_config.detectors.spoofing
    expected = spark_spoofing.CallerIdSpoofing(settings).flags(spark_night_)
    actual = local_spoofing.CallerIdSpoofing(settings).flags(local_night_)
    assert same_rows(expected, actual, ["entity_type", "entity_id"]) >= 5


# --- the whole judgement with the lake around the night ---------------------------------------------

LAKE_CASES = {
    "scene, cu partial": (SCENE_SUMMARY, {}),
    "scene, strict guard": (
        SCENE_SUMMARY,
        {"detectors.spoofing.guard_min_legs": 1, "detectors.spoofing.max_unmatched_share": 0.5},
    ),
    "scene, every carrier whole": (WHOLE_SUMMARY, {}),
    "scene, no ingest summary": (None, {}),
}


def _judge_both(config, spark_night_, local_night_):
    spark_warnings, local_warnings = [], []
    expected = spoofing.judge_night(config, spark_night_.cdr.sparkSession, spark_night_, spark_warnings)
    actual = spoofing_local.judge_night_local(config, local_night_, local_warnings)
    assert local_warnings == spark_warnings
    return expected, actual


def _same_judgement(config, expected, actual, spark_night_, local_night_):
    assert actual.summary == expected.summary
    assert actual.legs.columns == SPOOFED.names
    assert actual.legs.schema == SPOOFED.polars()
    same_rows(expected.legs, actual.legs, list(spoofing.LEG_ORDER))
    settings = spoofing.settings_with_protected(config)
    spark_flags = spark_spoofing.CallerIdSpoofing(settings).flags(replace(spark_night_, spoofed=expected.legs))
    local_flags = local_spoofing.CallerIdSpoofing(settings).flags(replace(local_night_, spoofed=actual.legs))
    same_rows(spark_flags, local_flags, ["entity_type", "entity_id"])
    assert spoofing_local.note(actual.summary) == spoofing.note(expected.summary)


def _written(config, day):
    """lake/spoofed/date=D's rows (in file order) and Arrow schema, and spoofing.json's text."""
    import pyarrow.parquet as pq

    files = sorted(layout.partition_path(config, SPOOFED, day).glob("*.parquet"))
    tables = [pq.read_table(f) for f in files]
    written = [row for table in tables for row in table.to_pylist()]
    return written, tables[0].schema if tables else None, layout.spoofing_path(config, day).read_text(encoding="utf-8")


@pytest.mark.parametrize("case", list(LAKE_CASES))
def test_the_nights_judgement_is_the_same(case, spark, scene, tmp_path):
    summary, overrides = LAKE_CASES[case]
    config = config_for(tmp_path, **overrides)
    _write_lake(config, summary or {"carriers": {}})
    if summary is None:
        layout.run_summary_path(config, "ingest", DAY).unlink()
    spark_night_, local_night_ = scene
    expected, actual = _judge_both(config, spark_night_, local_night_)
    assert expected.summary["spoofed"] > 0 or summary is None
    _same_judgement(config, expected, actual, spark_night_, local_night_)
    spoofing.write_judgement(config, DAY, expected)
    from_spark = _written(config, DAY)
    spoofing_local.write_judgement(config, DAY, actual)
    assert _written(config, DAY) == from_spark


def test_the_scene_is_judged_as_its_twins_say(spark, scene, tmp_path):
    """What the lake around the night changes, read from the local judgement's own legs."""
    config = config_for(tmp_path)
    _write_lake(config, SCENE_SUMMARY)
    warnings = []
    judgement = spoofing_local.judge_night_local(config, scene[1], warnings)
    spoofed = set(judgement.legs["record_id"])
    assert {"i14", "i15", "i16"}.isdisjoint(spoofed), "twins in the next day, the previous day, lake/routed"
    assert {"i17", "i18", "i8"} <= spoofed, "Erin seen 3 days ago; the bank's SMS line protected by the file"
    assert "i20" not in spoofed and len(warnings) == 1 and "'+8613600000007'" in warnings[0]
    assert (
        judgement.summary["not_judged"]["the presented number's carrier delivered a missing, partial or suspect night"]
        == 2
    )
    legs = {r["record_id"]: r for r in judgement.legs.iter_rows(named=True)}
    assert legs["i8"]["protected"] == "bank sms line" and legs["i8"]["owner_carrier"] is None


# --- the conformance night -------------------------------------------------------------------------


def test_the_conformance_nights_judgement_is_the_same(spark_night, conformance_local_night, tmp_path):  # noqa: F811
    config = config_for(tmp_path)
    summaries.write_summary(config, "ingest", CONFORMANCE_DAY, WHOLE_SUMMARY)
    expected, actual = _judge_both(config, spark_night, conformance_local_night)
    assert expected.summary["spoofed"] == 8 and expected.summary["campaigns"] >= 1
    _same_judgement(config, expected, actual, spark_night, conformance_local_night)
    spoofing.write_judgement(config, CONFORMANCE_DAY, expected)
    from_spark = _written(config, CONFORMANCE_DAY)
    spoofing_local.write_judgement(config, CONFORMANCE_DAY, actual)
    assert _written(config, CONFORMANCE_DAY) == from_spark


def test_spoofing_is_a_local_detector_in_spark_order():
    from detectors import DETECTORS

    assert list(local_detectors.DETECTORS) == list(DETECTORS)
