"""jobs.validate: the GX suite over one lake partition, the volume check and the run-summary reader."""

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from jobs.errors import CdrwatchError
from jobs.validate import NO_HISTORY, recent_row_counts, save_validation, validate_cdr_partition
from schemas.tables import CDR

DAY = dt.date(2026, 3, 1)
TZ = ZoneInfo("Asia/Shanghai")  # the default conf timezone


def local(*args):
    return dt.datetime(*args, tzinfo=TZ)


def good_rows():
    """Twelve valid cm rows of DAY, including the edges that must pass."""
    peers = ["+8613800000001", "+862885551234", "+85512345678", "10086", "95588", None]
    rows = []
    for i in range(12):
        rows.append(
            dict(
                record_id=f"cm-{i}",
                carrier="cm",
                msisdn=f"+86139{i:08d}",
                other_party=peers[i % len(peers)],
                direction="out" if i % 2 else "in",
                service="voice",
                start_time=local(2026, 3, 1, 8, i),
                duration_s=60 * i,
                imsi=f"460001{i:09d}",
                imei=f"86{i:012d}",
                cell_id="23017-131",
                source_file="cm/2026-03-01/a.csv",
                source_line=i + 2,
                date=DAY,
            )
        )
    rows[0].update(start_time=local(2026, 3, 1, 0, 0, 0))  # first instant of the day
    rows[1].update(start_time=local(2026, 3, 1, 23, 59, 59), duration_s=86_400)
    rows[2].update(service="sms", duration_s=0)
    rows[3].update(imsi=None, imei=None, cell_id=None)  # optional fields may be missing
    rows[4].update(imei="8612345678901234")  # 16-digit IMEISV
    return rows


def frame(spark, rows):
    """A DataFrame of the CDR columns, all nullable so that a null where none belongs can be built."""
    from pyspark.sql.types import StructField, StructType

    schema = StructType([StructField(f.name, f.dataType, True) for f in CDR.spark().fields])
    return spark.createDataFrame(rows, schema)


def validate(spark, config, rows, recent=(), carrier="cm"):
    return validate_cdr_partition(frame(spark, rows), carrier, DAY, config, list(recent))


@pytest.fixture(scope="module")
def good(spark, test_config):
    df = frame(spark, good_rows())
    outcome = validate_cdr_partition(df, "cm", DAY, test_config, [])
    return df, outcome


def test_good_partition_passes_with_no_history(good):
    df, outcome = good
    assert outcome.failures == ()
    assert (outcome.success, outcome.suspect, outcome.row_count) == (True, False, 12)
    assert outcome.volume == NO_HISTORY
    assert outcome.gx_result["success"] is True
    types = [r["expectation_config"]["type"] for r in outcome.gx_result["results"]]
    assert "expect_table_row_count_to_be_between" not in types  # no history: no volume expectation
    assert "expect_column_values_to_be_unique" in types
    json.dumps(outcome.gx_result)  # JSON-able as it is
    assert not df.is_cached  # cached for the run only, and released


def bad(i, **changes):
    rows = good_rows()
    rows[i].update(changes)
    return rows


def dup_record_id():
    rows = good_rows()
    rows[7]["record_id"] = rows[6]["record_id"]
    return rows


BROKEN = {
    "bad direction": (
        bad(5, direction="sideways"),
        "expect_column_values_to_be_in_set(direction): 1 of 12 rows are not in {out, in} (e.g. 'sideways')",
    ),
    "negative duration": (
        bad(5, duration_s=-5),
        "expect_column_values_to_be_between(duration_s): 1 of 12 rows are outside 0..86400 (e.g. -5)",
    ),
    "huge duration": (
        bad(5, duration_s=86_401),
        "expect_column_values_to_be_between(duration_s): 1 of 12 rows are outside 0..86400 (e.g. 86401)",
    ),
    "the evening before": (
        bad(5, start_time=local(2026, 2, 28, 23, 30)),
        "expect_column_values_to_be_between(start_time): 1 of 12 rows are outside "
        "[2026-03-01 00:00, 2026-03-02 00:00) Asia/Shanghai (e.g. 2026-02-28 23:30:00)",
    ),
    "malformed msisdn": (
        bad(5, msisdn="13912345678"),
        r"expect_column_values_to_match_regex(msisdn): 1 of 12 rows do not match "
        r"^(\+861[3-9][0-9]{9}|\+861(064|440)[0-9]{9})$ (e.g. '13912345678')",
    ),
    "duplicated record_id": (
        dup_record_id(),
        "expect_column_values_to_be_unique(record_id): 2 of 12 rows share their record_id with another row "
        "(e.g. 'cm-6')",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_each_broken_thing_fails_the_run_and_is_named(spark, test_config, case):
    rows, expected = BROKEN[case]
    outcome = validate(spark, test_config, rows)
    assert outcome.failures == (expected,)
    assert (outcome.success, outcome.suspect) == (False, False)
    assert outcome.gx_result["success"] is False


def test_every_other_expectation_reports_its_own_failure(spark, test_config):
    """One run, one breakage per row, each caught by its own expectation (in suite order)."""
    rows = good_rows()
    rows[4].update(record_id=None)
    rows[5].update(carrier="cu")
    rows[6].update(service="mms")
    rows[7].update(other_party="028-85551234")
    rows[8].update(service="sms", duration_s=30)
    rows[9].update(start_time=local(2026, 3, 2, 0, 0))  # the end of the day is excluded
    rows[10].update(imsi="46000123")
    rows[11].update(imei="86ABCDEF012345")
    outcome = validate(spark, test_config, rows)
    assert outcome.failures == (
        "expect_column_values_to_not_be_null(record_id): 1 of 12 rows are null",
        "expect_column_values_to_be_in_set(carrier): 1 of 12 rows are not 'cm' (e.g. 'cu')",
        "expect_column_values_to_be_in_set(service): 1 of 12 rows are not in {voice, sms} (e.g. 'mms')",
        r"expect_column_values_to_match_regex_list(other_party): 1 of 12 rows match none of ^\+[1-9][0-9]{4,14}$, "
        r"^[0-9]{3,6}$, ^[0-9A-Za-z]{2,20}$ (e.g. '028-85551234')",
        "expect_column_values_to_be_between(duration_s): 1 of 2 sms rows have a duration other than 0 (e.g. 30)",
        "expect_column_values_to_be_between(start_time): 1 of 12 rows are outside "
        "[2026-03-01 00:00, 2026-03-02 00:00) Asia/Shanghai (e.g. 2026-03-02 00:00:00)",
        r"expect_column_values_to_match_regex(imsi): 1 of 12 rows do not match ^[0-9]{15}$ (e.g. '46000123')",
        r"expect_column_values_to_match_regex(imei): 1 of 12 rows do not match ^(0[1-9][0-9]{12,14}|[1-9][0-9]{13,15})$ "
        r"(e.g. '86ABCDEF012345')",
    )
    assert (outcome.success, outcome.suspect, outcome.row_count) == (False, False, 12)


def test_missing_column_is_reported_not_raised(spark, test_config):
    outcome = validate_cdr_partition(frame(spark, good_rows()).drop("imei"), "cm", DAY, test_config, [])
    assert outcome.success is False
    assert outcome.failures[0] == "expect_table_columns_to_match_set: missing columns imei"
    assert outcome.failures[1].startswith("expect_column_values_to_match_regex(imei): could not be evaluated")


def test_iot_msisdns_are_subscribers_and_other_shapes_are_not(spark, test_config):
    """A 13-digit IoT/M2M number is a subscriber; any other shape fails (the parsers quarantine it)."""
    rows = []
    template = good_rows()[5]
    for i in range(2000):
        rows.append({**template, "record_id": f"cm-{i}", "msisdn": f"+86139{i:08d}", "source_line": i + 2})
    rows[0]["msisdn"] = "+861064812345678"
    outcome = validate(spark, test_config, rows)
    assert (outcome.success, outcome.failures, outcome.row_count) == (True, (), 2000)
    rows[1]["msisdn"] = "+8610648123456789"  # 14 digits: not a number plan of ours
    outcome = validate(spark, test_config, rows)
    assert outcome.success is False
    assert outcome.failures[0].startswith("expect_column_values_to_match_regex(msisdn): 1 of 2000 rows do not match")


def test_low_volume_is_suspect_but_not_a_failure(spark, test_config):
    df = frame(spark, good_rows()).cache()
    outcome = validate_cdr_partition(df, "cm", DAY, test_config, [30, 24, 40])  # median 30, minimum 15
    assert (outcome.success, outcome.suspect, outcome.failures) == (True, True, ())
    assert outcome.volume == "suspect: 12 rows; median of 3 recent days 30, minimum 15 (0.5 x median)"
    volume = [
        r
        for r in outcome.gx_result["results"]
        if r["expectation_config"]["type"] == "expect_table_row_count_to_be_between"
    ]
    assert volume[0]["expectation_config"]["severity"] == "warning"
    assert volume[0]["result"]["observed_value"] == 12
    assert df.is_cached  # the caller's cache is left alone
    df.unpersist()


def test_enough_volume_is_not_suspect(spark, test_config):
    outcome = validate(spark, test_config, good_rows(), recent=[20, 25])  # median 22.5, minimum 12 (ceil 11.25)
    assert (outcome.success, outcome.suspect) == (True, False)
    assert outcome.volume == "ok: 12 rows; median of 2 recent days 22.5, minimum 12"


def test_broken_and_low_is_both_failed_and_suspect(spark, test_config):
    outcome = validate(spark, test_config, bad(5, direction="x"), recent=[100])
    assert (outcome.success, outcome.suspect) == (False, True)
    assert len(outcome.failures) == 1 and outcome.failures[0].startswith("expect_column_values_to_be_in_set(direction)")


def test_save_validation_writes_json_and_html(good, tmp_path):
    _, outcome = good
    path = tmp_path / "_runs" / "ingest" / "date=2026-03-01" / "validation_cm.json"
    assert save_validation(outcome, path) == path
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert {k: saved[k] for k in ("carrier", "date", "success", "suspect", "row_count", "volume", "failures")} == {
        "carrier": "cm",
        "date": "2026-03-01",
        "success": True,
        "suspect": False,
        "row_count": 12,
        "volume": NO_HISTORY,
        "failures": [],
    }
    assert saved["gx_result"] == outcome.gx_result
    html = path.with_suffix(".html").read_text(encoding="utf-8")
    assert "Data documentation compiled by Great Expectations" in html  # GX's validation page
    assert "cdr.cm.2026-03-01" in html and "record_id" in html
    assert sorted(p.name for p in path.parent.iterdir()) == ["validation_cm.html", "validation_cm.json"]


# ---------------------------------------------------------------------------------------------
# recent_row_counts: no Spark


def write_summary(lake, day, carriers):
    path = lake / "_runs" / "ingest" / f"date={day.isoformat()}" / "summary.json"
    path.parent.mkdir(parents=True)
    text = (
        carriers
        if isinstance(carriers, str)
        else json.dumps(
            {
                "date": day.isoformat(),
                "carriers": {c: {"format": "cn_csv", "read": n + 3, "accepted": n} for c, n in carriers.items()},
                "warnings": [],
            }
        )
    )
    path.write_text(text, encoding="utf-8")


def test_recent_row_counts_reads_the_previous_days(test_config, tmp_path):
    config = test_config.with_paths(lake=tmp_path)  # volume_history_days: 7
    assert recent_row_counts(config, "cm", DAY) == []
    write_summary(tmp_path, DAY - dt.timedelta(days=8), {"cm": 999})  # too old
    write_summary(tmp_path, DAY - dt.timedelta(days=7), {"cm": 100, "cu": 5})
    write_summary(tmp_path, DAY - dt.timedelta(days=3), {"cu": 7})  # cm delivered nothing
    write_summary(tmp_path, DAY - dt.timedelta(days=2), {"cm": 0})
    write_summary(tmp_path, DAY - dt.timedelta(days=1), {"cm": 120})
    write_summary(tmp_path, DAY, {"cm": 1})  # the day itself is not history
    assert recent_row_counts(config, "cm", DAY) == [100, 0, 120]
    assert recent_row_counts(config, "cu", DAY) == [5, 7]
    assert recent_row_counts(config, "ct", DAY) == []


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid JSON"),
        ('{"cm": {"accepted": 3}}', "expected an object with a 'carriers' mapping"),
        ('{"carriers": {"cm": {"accepted": "3"}}}', "carriers.cm.accepted should be a row count, got '3'"),
    ],
)
def test_recent_row_counts_rejects_a_malformed_summary(test_config, tmp_path, text, message):
    write_summary(tmp_path, DAY - dt.timedelta(days=1), text)
    with pytest.raises(CdrwatchError, match="summary.json: ") as err:
        recent_row_counts(test_config.with_paths(lake=tmp_path), "cm", DAY)
    assert message in str(err.value)
