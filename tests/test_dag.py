"""dags/cdr_nightly.py under a real Airflow 3: parsed by a DagBag, and run whole by `dag.test()` on a
simulated night with a late carrier, once per late-carrier policy.

Airflow runs in child processes, each with this module's AIRFLOW_HOME (a temporary folder with a
migrated SQLite database) set before Airflow is imported; the jobs run in-process there (local Spark).
The child runs a script file, not `python -c`: pyspark.sql.connect (imported by Great Expectations)
calls sys.exit(0) in a `-c` process when Spark Connect's optional dependencies are missing.
"""

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from simulator import simulate

pytestmark = pytest.mark.slow

DAGS = Path(__file__).resolve().parents[1] / "dags"
NIGHT = dt.date(2026, 11, 20)
LATE = "ct"
STEPS = list(__import__("jobs.pipeline").pipeline.NIGHTLY)  # ingest, validate, feedback, detect, dens, export, report

# Runs one DAG run for the night of sys.argv[1] and prints its state and the state of every task.
DAG_TEST = """
import datetime as dt, json, sys
from zoneinfo import ZoneInfo
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[2])
assert not bag.import_errors, bag.import_errors
# a manual run's data interval is the last whole night before its logical date: midnight after the night
night_ends = dt.datetime.combine(dt.date.fromisoformat(sys.argv[1]) + dt.timedelta(days=1), dt.time(),
                                 ZoneInfo("Asia/Shanghai"))
run = bag.dags["cdr_nightly"].test(logical_date=night_ends)
print("RESULT " + json.dumps({"state": str(run.state), "tasks": {t.task_id: str(t.state) for t in run.get_task_instances()},
                              "tries": {t.task_id: t.try_number for t in run.get_task_instances()}}))
"""

# Parses the dags folder and describes the DAG, and which heavy modules parsing imported.
DAG_BAG = """
import json, sys
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1])
dag = bag.dags.get("cdr_nightly")
print("RESULT " + json.dumps({
    "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
    "heavy": [m for m in ("pyspark", "polars", "great_expectations") if m in sys.modules],
    "tasks": {t.task_id: {"upstream": sorted(t.upstream_task_ids), "trigger_rule": getattr(t.trigger_rule, "value", t.trigger_rule),
                          "retries": t.retries, "retry_delay_s": t.retry_delay.total_seconds(),
                          "sensor": getattr(t, "mode", None), "poke_interval_s": getattr(t, "poke_interval", None)}
              for t in dag.tasks} if dag else {},
    "timetable": [type(dag.timetable).__name__, dag.timetable.expression, str(dag.timetable.timezone)] if dag else [],
    "start_date": dag.start_date.isoformat() if dag else None,
    "catchup": dag.catchup if dag else None,
    "max_active_runs": dag.max_active_runs if dag else None,
}))
"""


def result_of(completed: subprocess.CompletedProcess) -> dict:
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"no result (exit {completed.returncode}):\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
    return json.loads(lines[-1].removeprefix("RESULT "))


def run_script(tmp_path: Path, script: str, *args: str, env: dict, timeout: int) -> subprocess.CompletedProcess:
    path = tmp_path / "airflow_script.py"
    path.write_text(script)
    return subprocess.run([sys.executable, str(path), *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    """The environment of an Airflow with its own home and a migrated database."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "CDRWATCH_CONF"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "SPARK_LOCAL_IP": "127.0.0.1",
        }
    )
    migrate = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True
    )
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    return env


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    """One simulated night, on which carrier ct has delivered nothing."""
    root = tmp_path_factory.mktemp("dag_landing") / "landing"
    simulate(root, NIGHT, 1, subscribers=400, dens=2, seed=5)
    for path in sorted((root / LATE / NIGHT.isoformat()).iterdir()):
        path.unlink()
    (root / LATE / NIGHT.isoformat()).rmdir()
    return root


def write_conf(path: Path, landing: Path, lake: Path, outbox: Path, policy: str, one_task: bool = False) -> Path:
    path.write_text(
        json.dumps(
            {  # JSON is YAML
                "paths": {"landing": str(landing), "lake": str(lake), "outbox": str(outbox)},
                "spark": {"master": "local[2]", "shuffle_partitions": 2, "driver_memory": "2g"},
                # the simulator writes manifests: with require_manifest a carrier lands as soon as its manifest is there
                "schedule": {
                    "late_carrier": policy,
                    "retries": 0,
                    "poke_interval_s": 1,
                    "landing_deadline_minutes": 0.05,
                    "require_manifest": True,
                    "one_task": one_task,
                },
            }
        )
    )
    return path


def test_the_dag_parses_cheaply_with_the_expected_tasks(airflow_env, landing, tmp_path):
    conf = write_conf(tmp_path / "site.yaml", landing, tmp_path / "lake", tmp_path / "outbox", "continue")
    dag = result_of(
        run_script(tmp_path, DAG_BAG, str(DAGS), env={**airflow_env, "CDRWATCH_CONF": str(conf)}, timeout=120)
    )
    assert dag["import_errors"] == {}
    assert dag["heavy"] == []  # pyspark, polars and GX are imported by tasks, not by the scheduler's parse
    assert dag["timetable"] == ["CronDataIntervalTimetable", "0 0 * * *", "Asia/Shanghai"]
    assert dt.datetime.fromisoformat(dag["start_date"]) == dt.datetime(
        2026, 11, 1, tzinfo=dt.timezone(dt.timedelta(hours=8))
    )
    assert dag["catchup"] is True and dag["max_active_runs"] == 1

    tasks = dag["tasks"]
    waits = ["wait_cm", "wait_ct", "wait_cu"]
    assert sorted(tasks) == sorted(waits + STEPS)
    for wait in waits:
        assert tasks[wait]["upstream"] == [] and tasks[wait]["sensor"] == "reschedule"
        assert tasks[wait]["poke_interval_s"] == 1
    assert tasks["ingest"]["upstream"] == waits
    assert tasks["ingest"]["trigger_rule"] == "none_failed"  # a skipped (late) carrier does not stop the night
    for before, step in zip(STEPS, STEPS[1:]):
        assert tasks[step]["upstream"] == [before] and tasks[step]["trigger_rule"] == "all_success"
    assert {t["retries"] for t in tasks.values()} == {0}  # from the conf (the default conf says 2)

    defaults = result_of(run_script(tmp_path, DAG_BAG, str(DAGS), env=airflow_env, timeout=120))
    assert defaults["import_errors"] == {}
    assert {(t["retries"], t["retry_delay_s"]) for t in defaults["tasks"].values()} == {(2, 300.0)}


def test_a_late_carrier_under_continue_gives_a_partial_night(airflow_env, landing, tmp_path):
    """The whole DAG runs; ct is skipped at the deadline, the night goes on and is marked partial.
    The tasks take their conf from the Airflow Variable: the parse-time conf names other paths."""
    lake, outbox = tmp_path / "lake", tmp_path / "outbox"
    run_conf = write_conf(tmp_path / "run.yaml", landing, lake, outbox, "continue")
    parse_conf = write_conf(tmp_path / "parse.yaml", landing, tmp_path / "unused_lake", tmp_path / "unused", "continue")
    env = {**airflow_env, "CDRWATCH_CONF": str(parse_conf), "AIRFLOW_VAR_CDRWATCH_CONF": str(run_conf)}
    completed = run_script(tmp_path, DAG_TEST, NIGHT.isoformat(), str(DAGS), env=env, timeout=1200)
    run = result_of(completed)
    log = completed.stdout + completed.stderr

    assert run["state"] == "success", (run["tasks"], log[-4000:])
    assert run["tasks"] == {
        "wait_cm": "success",
        "wait_cu": "success",
        "wait_ct": "skipped",
        "ingest": "success",
        "validate": "success",
        "feedback": "success",
        "detect": "success",
        "dens": "success",
        "export": "success",
        "report": "success",
    }
    assert "ct: no files for 2026-11-20 by the deadline 2026-11-21T00:00:03+08:00; going on without it" in log
    assert "partial night 2026-11-20: going on without ct" in log
    for carrier in ("cm", "cu"):
        assert f"{carrier}: files for 2026-11-20 landed: _MANIFEST.csv with " in log
    for carrier in ("cm", "cu"):  # the validate task logs the GX results that ingest saved
        assert f"{carrier}: GX suite passed (22/22 expectations met, " in log
    for step in STEPS:  # each task logs what its step did (jobs.pipeline), counts included
        assert re.search(rf"{step} 2026-11-20 (ok|partial) in [0-9.]+ s", log), step
    assert re.search(r"detect 2026-11-20 ok in [0-9.]+ s: flags=[1-9][0-9]* ", log)

    summary = json.loads((lake / "_runs" / "ingest" / "date=2026-11-20" / "summary.json").read_text())
    assert summary["missing_carriers"] == ["ct"] and sorted(summary["carriers"]) == ["cm", "cu"]
    night = outbox / NIGHT.isoformat()
    partial = (night / "PARTIAL.txt").read_text(encoding="utf-8")
    assert partial.startswith("partial night 2026-11-20: ") and "ct: no files for 2026-11-20" in partial
    leads = sorted(night.glob("leads/*.csv"))
    assert len(leads) >= 5 and (night / "warnings.csv").is_file()
    assert sum(len(p.read_text(encoding="utf-8-sig").splitlines()) - 1 for p in leads) >= 1  # dens were found
    assert not (tmp_path / "unused_lake").exists() and not (tmp_path / "unused").exists()


def test_one_task_mode_runs_the_whole_night_in_one_task(airflow_env, landing, tmp_path):
    """conf schedule.one_task: the waits, then one `nightly` task that runs every step in one Spark
    session; the night is the same partial night with its leads."""
    lake, outbox = tmp_path / "lake", tmp_path / "outbox"
    conf = write_conf(tmp_path / "site.yaml", landing, lake, outbox, "continue", one_task=True)
    env = {**airflow_env, "CDRWATCH_CONF": str(conf)}
    dag = result_of(run_script(tmp_path, DAG_BAG, str(DAGS), env=env, timeout=120))
    assert dag["import_errors"] == {} and dag["heavy"] == []
    assert dag["tasks"]["nightly"]["upstream"] == ["wait_cm", "wait_ct", "wait_cu"]
    assert sorted(dag["tasks"]) == ["nightly", "wait_cm", "wait_ct", "wait_cu"]
    assert dag["tasks"]["nightly"]["trigger_rule"] == "none_failed"

    completed = run_script(tmp_path, DAG_TEST, NIGHT.isoformat(), str(DAGS), env=env, timeout=1200)
    run = result_of(completed)
    log = completed.stdout + completed.stderr
    assert run["state"] == "success", (run["tasks"], log[-4000:])
    assert run["tasks"] == {"wait_cm": "success", "wait_cu": "success", "wait_ct": "skipped", "nightly": "success"}
    assert "partial night 2026-11-20: going on without ct" in log
    for step in STEPS:
        assert re.search(rf"{step} 2026-11-20 (ok|partial) in [0-9.]+ s", log), step
    assert "cm: GX suite passed (22/22 expectations met, " in log
    night = outbox / NIGHT.isoformat()
    assert "ct: no files for 2026-11-20" in (night / "PARTIAL.txt").read_text(encoding="utf-8")
    assert len(sorted(night.glob("leads/*.csv"))) >= 5


def test_a_late_carrier_under_fail_fails_the_night_before_any_step(airflow_env, landing, tmp_path):
    conf = write_conf(tmp_path / "site.yaml", landing, tmp_path / "lake", tmp_path / "outbox", "fail")
    completed = run_script(
        tmp_path, DAG_TEST, NIGHT.isoformat(), str(DAGS), env={**airflow_env, "CDRWATCH_CONF": str(conf)}, timeout=300
    )
    run = result_of(completed)
    assert run["state"] == "failed"
    assert run["tasks"] == {
        "wait_cm": "success",
        "wait_cu": "success",
        "wait_ct": "failed",
        **{step: "upstream_failed" for step in STEPS},
    }
    assert "ct: no files for 2026-11-20 by the deadline 2026-11-21T00:00:03+08:00; failing the night" in (
        completed.stdout + completed.stderr
    )
    assert not (tmp_path / "lake").exists() and not (tmp_path / "outbox").exists()


def test_a_bad_conf_fails_the_night_at_once_without_retries(airflow_env, landing, tmp_path):
    """The DAG is parsed with a good conf that allows retries (an hour apart); the tasks run with a
    conf that does not load. A problem of configuration is not transient: every task that reads it
    fails on its first try (AirflowFailException), nothing waits for a retry, and the log has the
    one line that says what is wrong."""
    parse_conf = tmp_path / "parse.yaml"
    parse_conf.write_text(json.dumps({"schedule": {"retries": 2, "retry_delay_minutes": 60}}))
    run_conf = write_conf(tmp_path / "run.yaml", landing, tmp_path / "lake", tmp_path / "outbox", "continue")
    run_conf.write_text(run_conf.read_text().replace('"spark": {', '"ingest": {"rows_per_file": -1}, "spark": {'))
    env = {**airflow_env, "CDRWATCH_CONF": str(parse_conf), "AIRFLOW_VAR_CDRWATCH_CONF": str(run_conf)}
    completed = run_script(tmp_path, DAG_TEST, NIGHT.isoformat(), str(DAGS), env=env, timeout=600)
    run = result_of(completed)
    assert run["state"] == "failed"
    assert run["tasks"] == {
        "wait_cm": "failed",
        "wait_cu": "failed",
        "wait_ct": "failed",
        **{step: "upstream_failed" for step in STEPS},
    }
    assert {run["tries"][w] for w in ("wait_cm", "wait_cu", "wait_ct")} == {1}
    assert "conf ingest.rows_per_file: Input should be greater than 0" in completed.stdout + completed.stderr
    assert not (tmp_path / "lake").exists() and not (tmp_path / "outbox").exists()
