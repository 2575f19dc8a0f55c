"""jobs/orchestrate.py without Airflow or a cluster: which night a run is, whether a carrier has
landed, the late-carrier decision, and the spark-submit command with its package zip."""

import ast
import datetime as dt
import io
import json
import os
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from detectors import DETECTORS
from jobs import orchestrate
from jobs.config import load_config
from jobs.errors import CdrwatchError
from jobs.io.manifest import Entry, write_manifest

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


def later() -> dt.datetime:
    """An hour after now: long after the test's files were written (taken when the test runs, not when
    the module is imported: a long suite may reach this module more than an hour after collecting it)."""
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)


@pytest.fixture
def landing(tmp_path):
    """cm delivered, cu only an upload in progress and a stray file, ct nothing."""
    for relative in ("cm/2026-11-20/cm_20261120_01.csv.gz", "cu/2026-11-20/_upload.txt", "cu/2026-11-20/notes.doc"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("x")
    return tmp_path


def test_only_files_ingest_would_read_count_as_landed(landing):
    config = load_config(overrides=[f"paths.landing={landing}"])
    assert orchestrate.carrier_landed(config, "cm", NIGHT, later())
    assert not orchestrate.carrier_landed(config, "cu", NIGHT, later())
    assert not orchestrate.carrier_landed(config, "cm", NIGHT + dt.timedelta(days=1), later())
    assert orchestrate.missing_carriers(config, NIGHT, later()) == ["cu", "ct"]
    assert orchestrate.missing_carriers(config, NIGHT) == ["cm", "cu", "ct"]  # cm was written just now: not settled


def at(timestamp: float, minutes: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc) + dt.timedelta(minutes=minutes)


def test_a_carrier_lands_once_its_folder_has_not_changed_for_the_settle_time(tmp_path):
    """A file that lands after the first one is waited for: the folder must be quiet for settle_minutes."""
    config = load_config(overrides=[f"paths.landing={tmp_path}", "schedule.settle_minutes=10"])
    folder = tmp_path / "cm" / NIGHT.isoformat()
    folder.mkdir(parents=True)
    (folder / "cm_1.csv").write_text("header\nline\n")
    first = time.time()
    assert orchestrate.landing_state(config, "cm", NIGHT, at(first, 5))[0] is False
    assert orchestrate.landing_state(config, "cm", NIGHT, at(first, 5))[1].startswith("files still changing")
    assert orchestrate.carrier_landed(config, "cm", NIGHT, at(first, 11))

    time.sleep(0.05)
    second = folder / "cm_2.csv"
    second.write_text("header\nline\n")
    os.utime(second, (first - 86400, first - 86400))  # copied keeping the sender's old mtime (rsync -t)
    landed = os.stat(second).st_ctime
    assert not orchestrate.carrier_landed(config, "cm", NIGHT, at(landed, 9))
    assert orchestrate.carrier_landed(config, "cm", NIGHT, at(landed, 10.1))

    zero = load_config(overrides=[f"paths.landing={tmp_path}", "schedule.settle_minutes=0"])
    assert orchestrate.carrier_landed(zero, "cm", NIGHT)


def test_a_carrier_with_only_empty_files_has_not_landed(tmp_path):
    config = load_config(overrides=[f"paths.landing={tmp_path}", "schedule.settle_minutes=0"])
    folder = tmp_path / "cu" / NIGHT.isoformat()
    folder.mkdir(parents=True)
    (folder / "cu_1.txt").write_bytes(b"")
    (folder / "cu_2.txt").write_bytes(b"")
    assert orchestrate.landing_state(config, "cu", NIGHT, later()) == (False, "only empty files (cu_1.txt, cu_2.txt)")
    deadline = dt.datetime(2026, 11, 21, 6, 0, tzinfo=SHANGHAI)
    with pytest.raises(orchestrate.LateCarrier) as late:
        orchestrate.check_landing(config, "cu", NIGHT, deadline, later())
    assert str(late.value).startswith("cu: only empty files (cu_1.txt, cu_2.txt) for 2026-11-20 by the deadline ")
    (folder / "cu_2.txt").write_bytes(b"x|y\n")
    assert orchestrate.carrier_landed(config, "cu", NIGHT, later())


def deliver(folder: Path, files: dict[str, bytes], listed: dict[str, int] | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    if listed is not None:
        write_manifest(folder, [Entry(name, rows, "0" * 64) for name, rows in listed.items()])


def test_with_require_manifest_a_carrier_lands_when_its_manifest_lists_only_present_files(tmp_path):
    config = load_config(overrides=[f"paths.landing={tmp_path}", "schedule.require_manifest=true"])
    folder = tmp_path / "cm" / NIGHT.isoformat()
    deliver(folder, {"cm_1.csv": b"h\na\n"})
    assert orchestrate.landing_state(config, "cm", NIGHT, later()) == (
        False,
        "no _MANIFEST.csv (schedule.require_manifest)",
    )
    deliver(folder, {}, {"cm_1.csv": 1, "cm_2.csv": 1})
    assert orchestrate.landing_state(config, "cm", NIGHT, later()) == (
        False,
        "an incomplete delivery (_MANIFEST.csv lists files missing: cm_2.csv)",
    )
    deliver(folder, {"cm_2.csv": b""})
    assert orchestrate.landing_state(config, "cm", NIGHT, later()) == (
        False,
        "an incomplete delivery (_MANIFEST.csv lists files empty: cm_2.csv)",
    )
    deliver(folder, {"cm_2.csv": b"h\nb\n"})
    now = dt.datetime.now(dt.timezone.utc)  # a manifest needs no settling: the carrier says it is done
    assert orchestrate.landing_state(config, "cm", NIGHT, now) == (True, "_MANIFEST.csv with 2 file(s)")
    (folder / "_MANIFEST.csv").write_text("file,rows\ncm_1.csv,1\n")
    landed, what = orchestrate.landing_state(config, "cm", NIGHT, later())
    assert not landed and what.startswith("an unreadable _MANIFEST.csv (") and ":1: expected the header" in what


def test_a_manifest_counts_at_once_even_when_not_required(tmp_path):
    config = load_config(overrides=[f"paths.landing={tmp_path}", "schedule.settle_minutes=60"])
    folder = tmp_path / "ct" / NIGHT.isoformat()
    deliver(folder, {"ct_1.jsonl.gz": b"\x1f\x8b..."})
    now = dt.datetime.now(dt.timezone.utc)
    assert not orchestrate.carrier_landed(config, "ct", NIGHT, now)
    deliver(folder, {}, {"ct_1.jsonl.gz": 3})
    assert orchestrate.carrier_landed(config, "ct", NIGHT, now)
    deliver(folder, {}, {})  # a manifest listing nothing: the carrier had no records (ingest reports it)
    assert orchestrate.carrier_landed(config, "ct", NIGHT, now)


@pytest.mark.parametrize("policy", ["continue", "fail"])
def test_a_missing_carrier_is_awaited_until_the_deadline_then_late(landing, policy):
    config = load_config(
        overrides=[f"paths.landing={landing}", f"schedule.late_carrier={policy}", "schedule.settle_minutes=0"]
    )
    deadline = dt.datetime(2026, 11, 21, 6, 0, tzinfo=SHANGHAI)
    before, after = deadline - dt.timedelta(seconds=1), deadline + dt.timedelta(seconds=1)
    assert orchestrate.check_landing(config, "cm", NIGHT, deadline, later()) is True
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
    for required in (
        "jobs/cli.py",
        "jobs/orchestrate.py",
        "jobs/formats/jsonl.py",
        "jobs/dens/cluster.py",
        "schemas/tables.py",
        "detectors/base.py",
        "conf/__init__.py",
        "conf/default.yaml",
        "conf/log4j2.properties",
    ):
        assert required in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert {n.split("/")[0] for n in names} == {"jobs", "schemas", "detectors", "conf"}
    assert "from jobs.cli import main" in entry.read_text()


def test_the_zip_alone_imports_and_reads_its_default_conf(tmp_path):
    """What a cluster's driver and executors get: the code and the conf, from the zip first on the path."""
    package, _ = orchestrate.submit_bundle(tmp_path)
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import jobs.config, jobs.cli, detectors; "
        "assert jobs.config.__file__.startswith(sys.argv[1]), jobs.config.__file__; "
        "print(jobs.config.load_config().timezone, len(detectors.DETECTORS))"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(package)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["Asia/Shanghai", str(len(DETECTORS))]


def _imported_modules(tree: ast.Module, module: str, lazy: bool) -> set[str]:
    """Absolute names a module imports: at import time (module level, class bodies, top-level if/try)
    when not `lazy`, else only inside functions."""
    package = module.rsplit(".", 1)[0] if not module.endswith("__init__") else module.removesuffix(".__init__")
    found: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if inside == lazy and isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif inside == lazy and isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - child.level + 1] + ([base] if base else []))
                found.update([base, *(f"{base}.{alias.name}" for alias in child.names)])
            visit(child, inside)

    visit(tree, False)
    return found


def test_the_bundle_holds_what_the_jobs_import_and_not_the_simulator():
    """The cluster gets the steps, not the synthetic city: no `simulator/` file is shipped, and no
    shipped module imports it when imported; only the CLI's `simulate` and `evaluate` commands do, lazily."""
    bundle = zipfile.ZipFile(io.BytesIO(orchestrate.package_zip_bytes()))
    names = bundle.namelist()
    assert not [n for n in names if n.startswith("simulator/")]
    assert "jobs/cli.py" in names and "jobs/io/lake_spark.py" in names and "detectors/base.py" in names

    at_import, lazily = [], []
    for name in (n for n in names if n.endswith(".py")):
        module = name.removesuffix(".py").replace("/", ".")
        tree = ast.parse(bundle.read(name), filename=name)
        if any(m == "simulator" or m.startswith("simulator.") for m in _imported_modules(tree, module, False)):
            at_import.append(name)
        if any(m == "simulator" or m.startswith("simulator.") for m in _imported_modules(tree, module, True)):
            lazily.append(name)
    assert at_import == []
    assert set(lazily) <= {"jobs/cli.py"}


def test_spark_submit_runs_the_cli_in_client_mode_with_the_package_and_the_conf(tmp_path):
    conf_file = tmp_path / "site.yaml"
    conf_file.write_text(
        "spark: {master: 'spark://10.0.0.5:7077', driver_memory: 3g, "
        "extra: {spark.executor.memory: 6g, spark.dynamicAllocation.enabled: false}}\n"
    )
    config = load_config(conf_file)
    args = orchestrate.cli_args("detect", NIGHT, conf_file, ("detectors.goip.min_score=0.7",))
    command = orchestrate.spark_submit_command(config, args, conf_file, cache_dir=tmp_path / "cache")

    submit = Path(command[0])
    assert submit.name == "spark-submit" and submit.is_file()
    options = dict(zip(command[1 : -len(args) - 1 : 2], command[2 : -len(args) - 1 : 2]))
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
    assert command[-len(args) :] == [
        "detect",
        "--date",
        "2026-11-20",
        "--conf",
        str(conf_file.resolve()),
        "--set",
        "detectors.goip.min_score=0.7",
    ]


def test_the_bundle_lives_in_a_private_per_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert orchestrate.default_cache_dir() == tmp_path / "xdg" / "cdrwatch" / "submit"
    package, entry = orchestrate.submit_bundle()
    assert package.parent.parent == tmp_path / "xdg" / "cdrwatch" / "submit"
    for folder in (package.parent, package.parent.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(package.stat().st_mode) == 0o600
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert orchestrate.default_cache_dir() == Path.home() / ".cache" / "cdrwatch" / "submit"


def test_a_shared_or_foreign_cache_dir_is_refused(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)  # what a folder in /tmp made by someone else's umask looks like
    with pytest.raises(CdrwatchError, match=r"shared: the spark-submit cache is writable by others \(mode 777\)"):
        orchestrate.submit_bundle(shared)

    real_uid = os.getuid()
    mine = tmp_path / "mine"
    orchestrate.submit_bundle(mine)
    monkeypatch.setattr(orchestrate.os, "getuid", lambda: real_uid + 1)
    with pytest.raises(
        CdrwatchError, match=rf"mine: the spark-submit cache is owned by uid {real_uid}, not by this user"
    ):
        orchestrate.submit_bundle(mine)
    monkeypatch.undo()

    (tmp_path / "link").symlink_to(mine)
    with pytest.raises(CdrwatchError, match="must be a real directory, not a link"):
        orchestrate.submit_bundle(tmp_path / "link")


def test_a_cached_bundle_is_checked_by_hash_and_rewritten_when_it_differs(tmp_path):
    package, entry = orchestrate.submit_bundle(tmp_path)
    package.write_bytes(b"PK planted by someone else")
    entry.write_text("import os; os.system('curl evil')\n")
    again = orchestrate.submit_bundle(tmp_path)
    assert again == (package, entry)
    assert package.read_bytes() == orchestrate.package_zip_bytes()
    assert entry.read_text() == orchestrate.ENTRY_SCRIPT
    before = package.stat().st_mtime_ns
    orchestrate.submit_bundle(tmp_path)
    assert package.stat().st_mtime_ns == before  # a good file found is used as it is


def test_the_logged_submit_command_masks_spark_extra_values(tmp_path, capsys):
    conf_file = tmp_path / "site.yaml"
    conf_file.write_text("spark: {master: 'spark://10.0.0.5:7077', extra: {spark.hadoop.fs.s3a.secret.key: s3cr3t}}\n")
    config = load_config(conf_file)
    args = orchestrate.cli_args("detect", NIGHT, conf_file, ("spark.extra.spark.hadoop.fs.s3a.access.key=AKIA9",))
    command = orchestrate.spark_submit_command(config, args, conf_file, cache_dir=tmp_path / "cache")
    assert "spark.hadoop.fs.s3a.secret.key=s3cr3t" in command  # the real command keeps the value
    shown = orchestrate.masked(command)
    assert shown[shown.index("--conf") + 1] == "spark.hadoop.fs.s3a.secret.key=***"
    assert shown[-1] == "spark.extra.spark.hadoop.fs.s3a.access.key=***"
    assert shown[-3] == str(conf_file.resolve())  # cdrwatch's own --conf file stays readable
    assert len(shown) == len(command)

    # stream logs the masked line and runs the real one
    probe = [sys.executable, "-c", "import sys; print('got', sys.argv[-1])", "--conf", "spark.x.password=hunter2"]
    assert orchestrate.stream(probe, dict(os.environ)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(" --conf spark.x.password=***") and "hunter2" not in out[0]
    assert out[1] == "got spark.x.password=hunter2"


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
    (runs / "validation_cm.json").write_text(
        json.dumps(
            {
                "success": True,
                "suspect": False,
                "row_count": 120,
                "volume": "no history yet",
                "failures": [],
                "gx_result": stats,
            }
        )
    )
    (runs / "validation_cu.json").write_text(
        json.dumps(
            {
                "success": False,
                "suspect": True,
                "row_count": 7,
                "volume": "suspect: 7 rows",
                "gx_result": {"statistics": {"successful_expectations": 21, "evaluated_expectations": 22}},
                "failures": ["expect_column_values_to_be_between(duration_s): 1 of 7 rows are outside 0..86400"],
            }
        )
    )
    lines, usable = orchestrate.validation_lines(config, NIGHT)
    assert usable  # cm passed: a failed carrier-day is in quarantine, the night goes on partial
    assert lines == [
        "cm: GX suite passed (22/22 expectations met, 120 rows); volume no history yet",
        "cu: GX suite FAILED (21/22 expectations met, 7 rows); volume suspect: 7 rows"
        " (suspect: late or partial delivery?)",
        "  expect_column_values_to_be_between(duration_s): 1 of 7 rows are outside 0..86400",
        "partial night: no files from ct",
    ]
    summary = json.loads((runs / "summary.json").read_text())
    (runs / "summary.json").write_text(
        json.dumps(
            {
                **summary,
                "partial_reasons": [
                    "ct: no files for 2026-11-20",
                    "cu: failed validation (...); its rows are in quarantine",
                ],
            }
        )
    )
    lines, _ = orchestrate.validation_lines(config, NIGHT)
    assert lines[-2:] == [
        "partial night: ct: no files for 2026-11-20",
        "partial night: cu: failed validation (...); its rows are in quarantine",
    ]
    (runs / "validation_cm.json").write_text(
        json.dumps(
            {
                "success": False,
                "suspect": False,
                "row_count": 0,
                "volume": "no history yet",
                "failures": ["x"],
                "gx_result": stats,
            }
        )
    )
    assert orchestrate.validation_lines(config, NIGHT)[1] is False  # nothing passed: the night cannot go on
