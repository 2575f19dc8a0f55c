"""A partition that parses but breaks an expectation is not committed, and the error names it."""
import datetime as dt

from jobs.cli import main
from jobs.config import load_config
from jobs.lake import read_partition

DAY = dt.date(2026, 11, 20)
HEADER = "话单标识,本机号码,对端号码,业务类型,开始时间,时长,IMSI,IMEI,LAC,CI"
GOOD = "CM2026112000000001,13912345678,13812345678,主叫,2026-11-20 09:00:00,{duration},460001234567890,868912031234567,4100,20001"


def _deliver(landing, duration):
    folder = landing / "cm" / DAY.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    lines = [HEADER, GOOD.format(duration=duration),
             GOOD.format(duration=30).replace("0001,", "0002,", 1).replace("09:00:00", "09:05:00")]
    (folder / "cm_1.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_failing_expectation_fails_the_run_and_keeps_the_lake(tmp_path, spark, capsys):
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    argv = ["ingest", "--date", DAY.isoformat(), "--landing", str(landing), "--lake", str(lake),
            "--set", "carriers.cu=null", "--set", "carriers.ct=null", "--set", "spark.shuffle_partitions=2"]
    _deliver(landing, duration=60)
    assert main(argv) == 0
    config = load_config(overrides=[f"paths.lake={lake}"])
    before = sorted(read_partition(config, spark, "cdr", DAY, "cm").collect())
    assert [r.duration_s for r in before] == [60, 30]

    _deliver(landing, duration=99999)  # parses as a number, but no call lasts 27 hours
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "validation failed, lake left unchanged" in err
    assert "expect_column_values_to_be_between(duration_s)" in err
    assert sorted(read_partition(config, spark, "cdr", DAY, "cm").collect()) == before
    saved = (lake / "_runs" / "ingest" / f"date={DAY}" / "validation_cm.json").read_text(encoding="utf-8")
    assert '"success": false' in saved
