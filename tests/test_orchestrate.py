"""jobs/orchestrate.py without Airflow or a cluster: which night a run is, whether a carrier has
landed, the late-carrier decision, and the spark-submit command with its package zip."""
import datetime as dt
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from jobs import orchestrate
from jobs.config import load_config

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
NIGHT = dt.date(2026, 11, 20)


def test_a_run_processes_the_local_date_its_data_interval_starts_on():
    import pendulum

    start = pendulum.datetime(2026, 11, 19, 16, 0, tz="UTC")  # 2026-11-20 00:00 in Shanghai
    assert orchestrate.night_of(start, "Asia/Shanghai") == NIGHT
    assert orchestrate.night_of(start, "UTC") == dt.date(2026, 11, 19)


def test_the_landing_deadline_counts_from_the_end_of_the_night():
    import pendulum  # what Airflow passes as data_interval_end

    config = load_config(overrides=["schedule.landing_deadline_minutes=90"])
    deadline = orchestrate.landing_deadline(config, pendulum.datetime(2026, 11, 20, 16, 0, tz="UTC"))
    assert deadline == dt.datetime(2026, 11, 21, 1, 30, tzinfo=SHANGHAI)
    assert deadline.utcoffset() == dt.timedelta(hours=8)
    assert deadline < dt.datetime(2026, 11, 20, 17, 31, tzinfo=dt.timezone.utc)  # comparable with an aware "now"


@pytest.fixture
def landing(tmp_path):
    """cm delivered, cu only an upload in progress and a stray file, ct nothing."""
    for relative in ("cm/2026-11-20/cm_20261120_01.csv.gz", "cu/2026-11-20/_upload.txt", "cu/2026-11-20/notes.doc"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("x")
    return tmp_path


def test_only_files_ingest_would_read_count_as_landed(landing):
    config = load_config(overrides=[f"paths.landing={landing}"])
    assert orchestrate.carrier_landed(config, "cm", NIGHT)
    assert not orchestrate.carrier_landed(config, "cu", NIGHT)
    assert not orchestrate.carrier_landed(config, "cm", NIGHT + dt.timedelta(days=1))
    assert orchestrate.missing_carriers(config, NIGHT) == ["cu", "ct"]


@pytest.mark.parametrize("policy", ["continue", "fail"])
def test_a_missing_carrier_is_awaited_until_the_deadline_then_late(landing, policy):
    config = load_config(overrides=[f"paths.landing={landing}", f"schedule.late_carrier={policy}"])
    deadline = dt.datetime(2026, 11, 21, 6, 0, tzinfo=SHANGHAI)
    before, after = deadline - dt.timedelta(seconds=1), deadline + dt.timedelta(seconds=1)
    assert orchestrate.check_landing(config, "cm", NIGHT, deadline, after) is True
    assert orchestrate.check_landing(config, "ct", NIGHT, deadline, before) is False
    with pytest.raises(orchestrate.LateCarrier) as late:
        orchestrate.check_landing(config, "ct", NIGHT, deadline, after)
    assert late.value.policy == policy and late.value.carrier == "ct"
    assert str(late.value).startswith("ct: no files for 2026-11-20 by the deadline 2026-11-21T06:00:00+08:00; ")


def test_the_package_zip_carries_every_package_and_is_reproducible(tmp_path):
    data = orchestrate.package_zip_bytes()
    assert orchestrate.package_zip_bytes() == data
    package, entry = orchestrate.submit_bundle(tmp_path)
    assert package.read_bytes() == data and package.parent.parent == tmp_path
    names = set(zipfile.ZipFile(package).namelist())
    for required in ("jobs/cli.py", "jobs/orchestrate.py", "jobs/formats/jsonl.py", "jobs/dens/cluster.py",
                     "schemas/tables.py", "detectors/base.py", "conf/__init__.py", "conf/default.yaml",
                     "conf/log4j2.properties"):
        assert required in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert {n.split("/")[0] for n in names} == {"jobs", "schemas", "detectors", "conf"}
    assert "from jobs.cli import main" in entry.read_text()


def test_the_zip_alone_imports_and_reads_its_default_conf(tmp_path):
    """What a cluster's driver and executors get: the code and the conf, from the zip first on the path."""
    package, _ = orchestrate.submit_bundle(tmp_path)
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import jobs.config, jobs.cli, detectors; "
             "assert jobs.config.__file__.startswith(sys.argv[1]), jobs.config.__file__; "
             "print(jobs.config.load_config().timezone, len(detectors.DETECTORS))")
    out = subprocess.run([sys.executable, "-c", probe, str(package)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["Asia/Shanghai", "3"]


def test_spark_submit_runs_the_cli_in_client_mode_with_the_package_and_the_conf(tmp_path):
    conf_file = tmp_path / "site.yaml"
    conf_file.write_text("spark: {master: 'spark://10.0.0.5:7077', driver_memory: 3g, "
                         "extra: {spark.executor.memory: 6g, spark.dynamicAllocation.enabled: false}}\n")
    config = load_config(conf_file)
    args = orchestrate.cli_args("detect", NIGHT, conf_file, ("detectors.goip.min_score=0.7",))
    command = orchestrate.spark_submit_command(config, args, conf_file, cache_dir=tmp_path / "cache")

    submit = Path(command[0])
    assert submit.name == "spark-submit" and submit.is_file()
    options = dict(zip(command[1:-len(args) - 1:2], command[2:-len(args) - 1:2]))
    assert options["--master"] == "spark://10.0.0.5:7077"
    assert options["--deploy-mode"] == "client"
    assert options["--driver-memory"] == "3g"
    assert options["--files"] == str(conf_file.resolve())
    assert Path(options["--py-files"]).read_bytes() == orchestrate.package_zip_bytes()
    log4j = Path(options["--driver-java-options"].removeprefix("-Dlog4j2.configurationFile="))
    assert log4j.is_file() and log4j.name == "log4j2.properties"
    confs = [command[i + 1] for i, part in enumerate(command) if part == "--conf" and i < len(command) - len(args)]
    assert confs == ["spark.executor.memory=6g", "spark.dynamicAllocation.enabled=false"]
    entry = Path(command[-len(args) - 1])
    assert entry.parent == Path(options["--py-files"]).parent and entry.suffix == ".py"
    assert command[-len(args):] == ["detect", "--date", "2026-11-20", "--conf", str(conf_file.resolve()),
                                    "--set", "detectors.goip.min_score=0.7"]


def test_the_driver_and_its_python_workers_run_this_interpreter(monkeypatch):
    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    monkeypatch.delenv("PYSPARK_DRIVER_PYTHON", raising=False)
    env = orchestrate.submit_env()
    assert env["PYSPARK_PYTHON"] == env["PYSPARK_DRIVER_PYTHON"] == sys.executable
    assert (Path(env["SPARK_HOME"]) / "bin" / "spark-submit").is_file()


def test_validation_results_are_read_back_per_carrier(tmp_path):
    """The validate task's log lines come from the JSON that ingest saved (the suite is not re-run)."""
    config = load_config(overrides=[f"paths.lake={tmp_path}"])
    runs = tmp_path / "_runs" / "ingest" / "date=2026-11-20"
    runs.mkdir(parents=True)
    (runs / "summary.json").write_text(json.dumps({"carriers": {"cm": {}, "cu": {}}, "missing_carriers": ["ct"]}))
    stats = {"statistics": {"successful_expectations": 22, "evaluated_expectations": 22}}
    (runs / "validation_cm.json").write_text(json.dumps(
        {"success": True, "suspect": False, "row_count": 120, "volume": "no history yet", "failures": [],
         "gx_result": stats}))
    (runs / "validation_cu.json").write_text(json.dumps(
        {"success": False, "suspect": True, "row_count": 7, "volume": "suspect: 7 rows", "gx_result": {
            "statistics": {"successful_expectations": 21, "evaluated_expectations": 22}},
         "failures": ["expect_column_values_to_be_between(duration_s): 1 of 7 rows are outside 0..86400"]}))
    lines, passed = orchestrate.validation_lines(config, NIGHT)
    assert not passed
    assert lines == [
        "cm: GX suite passed (22/22 expectations met, 120 rows); volume no history yet",
        "cu: GX suite FAILED (21/22 expectations met, 7 rows); volume suspect: 7 rows"
        " (suspect: late or partial delivery?)",
        "  expect_column_values_to_be_between(duration_s): 1 of 7 rows are outside 0..86400",
        "partial night: no files from ct",
    ]
