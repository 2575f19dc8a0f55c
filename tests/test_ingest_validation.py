"""A value the lake refuses costs its row (the parser), a carrier-day that fails the suite costs that carrier-day."""

import datetime as dt

import pytest

from jobs.cli import main
from jobs.config import load_config
from jobs.io.lake_spark import read_partition

DAY = dt.date(2026, 11, 20)
HEADER = "话单标识,本机号码,对端号码,业务类型,开始时间,时长,IMSI,IMEI,LAC,CI"
GOOD = "CM2026112000000001,13912345678,13812345678,主叫,2026-11-20 09:00:00,{duration},460001234567890,868912031234567,4100,20001"


def _deliver(landing, duration):
    folder = landing / "cm" / DAY.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        HEADER,
        GOOD.format(duration=duration),
        GOOD.format(duration=30).replace("0001,", "0002,", 1).replace("09:00:00", "09:05:00"),
    ]
    (folder / "cm_1.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_a_value_great_expectations_would_refuse_is_quarantined_row_by_row(tmp_path, spark, capsys):
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    argv = [
        "ingest",
        "--date",
        DAY.isoformat(),
        "--landing",
        str(landing),
        "--lake",
        str(lake),
        "--set",
        "carriers.cu=null",
        "--set",
        "carriers.ct=null",
        "--set",
        "spark.shuffle_partitions=2",
    ]
    _deliver(landing, duration=99999)  # parses as a number, but no call lasts 27 hours
    assert main(argv) == 0
    config = load_config(overrides=[f"paths.lake={lake}"])
    assert [r.duration_s for r in read_partition(config, spark, "cdr", DAY, "cm").collect()] == [30]
    assert [r.reason for r in read_partition(config, spark, "quarantine", DAY, "cm").collect()] == [
        "duration out of range"
    ]
    assert "cm: validation passed" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["local", "spark"])
def test_a_failing_expectation_costs_that_carrier_day_only(tmp_path, spark, capsys, monkeypatch, engine):
    """A value that slips past the parser (injected: the shared shape checks switched off) fails the
    real suite: the carrier-day's rows go to quarantine, the run goes on and says the night is partial.
    On either engine (the same suite, the same verdict)."""
    import polars as pl
    from pyspark.sql import functions as F

    from jobs import formats
    from jobs.formats import local as local_formats

    landing, lake = tmp_path / "landing", tmp_path / "lake"
    argv = [
        "ingest",
        "--engine",
        engine,
        "--date",
        DAY.isoformat(),
        "--landing",
        str(landing),
        "--lake",
        str(lake),
        "--set",
        "carriers.cu=null",
        "--set",
        "carriers.ct=null",
        "--set",
        "spark.shuffle_partitions=2",
    ]
    _deliver(landing, duration=99999)
    monkeypatch.setattr(formats, "canonical_reason", lambda text, values: F.lit(None).cast("string"))
    monkeypatch.setattr(local_formats, "canonical_reason", lambda text, values: pl.lit(None, pl.String))
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "cm: validation FAILED" in out and "expect_column_values_to_be_between(duration_s)" in out
    assert "partial night: cm: failed validation" in out
    config = load_config(overrides=[f"paths.lake={lake}"])
    assert read_partition(config, spark, "cdr", DAY, "cm").count() == 0
    quarantined = read_partition(config, spark, "quarantine", DAY, "cm").collect()
    assert sorted((r.source_line, r.reason) for r in quarantined) == [
        (2, "carrier-day failed validation"),
        (3, "carrier-day failed validation"),
    ]
    assert all(r.raw and r.raw.startswith("CM2026112000000") for r in quarantined)
    saved = (lake / "_runs" / "ingest" / f"date={DAY}" / "validation_cm.json").read_text(encoding="utf-8")
    assert '"success": false' in saved
