"""What the nightly Airflow DAG runs (`dags/cdr_nightly.py` only wires these functions together).

A run processes one *night*: the local date (conf `timezone`) on which its data interval starts,
never the wall clock, so a backfill of last month does exactly what the scheduled runs did. For
that night it waits for each carrier's whole delivery until a deadline (its `_MANIFEST.csv`, or
non-empty files that have stopped changing: `landing_state`), then runs the `cdrwatch` steps:
in this process when `spark.master` is `local[...]`, otherwise through `spark-submit` with the
package zipped for `--py-files`, so the same jobs run on a cluster.

Importable without Airflow, and cheap to import (no pyspark, polars or Great Expectations at module
level): the scheduler imports it every time it parses the DAG file. Airflow itself is imported only
inside the `task_*` functions, which are the DAG's task callables.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import io
import logging
import os
import stat
import subprocess
import sys
import zipfile
from contextlib import contextmanager
from pathlib import Path
from zoneinfo import ZoneInfo

from jobs.config import Config, load_config
from jobs.errors import CdrwatchError
from jobs.io.files import write_atomic
from jobs.io.landing import ingestible
from jobs.io.layout import delivery_folder

log = logging.getLogger(__name__)

CONF_VARIABLE = "cdrwatch_conf"  # Airflow Variable: path of the conf YAML, read when a task runs
CONF_ENV = "CDRWATCH_CONF"  # environment variable: the same, and the only source at parse time
PACKAGES = ("schemas", "detectors", "jobs", "conf")  # what a cluster's driver and executors need (not simulator/)
ENTRY_SCRIPT = '''"""spark-submit entry point: the cdrwatch command line, run as Spark's driver program."""
import sys

from jobs.cli import main

sys.exit(main(sys.argv[1:]))
'''


class LateCarrier(CdrwatchError):
    """A carrier's night had not landed (see `landing_state`) by the landing deadline."""

    def __init__(self, carrier: str, day: dt.date, deadline: dt.datetime, policy: str, what: str = "no files"):
        self.carrier, self.day, self.policy, self.what = carrier, day, policy, what
        then = "going on without it, the night is partial" if policy == "continue" else "failing the night"
        super().__init__(
            f"{carrier}: {what} for {day.isoformat()} by the deadline {deadline.isoformat()}; {then}"
            f" (schedule.late_carrier: {policy})"
        )


# ---------------------------------------------------------------- nights and landing (pure)


def night_of(data_interval_start: dt.datetime, timezone: str) -> dt.date:
    """The lake date a run processes: the local date its data interval starts on."""
    if data_interval_start is None:
        raise CdrwatchError("this run has no data interval: trigger it with a logical date")
    return local_time(data_interval_start, timezone).date()


def landing_deadline(config: Config, data_interval_end: dt.datetime) -> dt.datetime:
    """When waiting for a carrier stops: `schedule.landing_deadline_minutes` after the night ends
    (in the conf timezone, as the log shows it)."""
    end = local_time(data_interval_end, config.timezone)
    return end + dt.timedelta(minutes=config.schedule.landing_deadline_minutes)


def local_time(instant: dt.datetime, timezone: str) -> dt.datetime:
    """An aware instant (Airflow gives pendulum's) as a plain datetime in `timezone`."""
    return dt.datetime.fromtimestamp(instant.timestamp(), ZoneInfo(timezone))


def size_of(path: Path) -> int | None:
    """The size of a regular file, None if there is none (absent, or gone while looking)."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def last_change(folder: Path) -> float:
    """The latest mtime or ctime of the folder and anything in it: ctime too, because a copy that
    keeps the sender's mtime (rsync -t, cp -p) still gets a fresh ctime when it lands."""
    stamps = [folder.stat().st_mtime, folder.stat().st_ctime]
    for path in folder.iterdir():
        try:
            info = path.lstat()
        except FileNotFoundError:  # renamed away while we looked: something is still moving
            return float("inf")
        stamps += [info.st_mtime, info.st_ctime]
    return max(stamps)


def landing_state(config: Config, carrier: str, day: dt.date, now: dt.datetime | None = None) -> tuple[bool, str]:
    """Whether the carrier's night has landed, and what is there (or missing) in a few words.

    A `_MANIFEST.csv` says the delivery is complete: landed once every file it lists is there (and
    not empty unless it lists 0 rows), with or without `schedule.require_manifest`. Without a
    manifest (and when none is required) the folder must hold a non-empty file that ingest would
    read and nothing in it may have changed for `schedule.settle_minutes` before `now`, so a file
    still being written, or landing a little after the first, is not left behind."""
    from jobs.io.manifest import MANIFEST, read_manifest

    folder = delivery_folder(config, carrier, day)
    if not folder.is_dir():
        return False, "no files"
    try:
        manifest = read_manifest(folder)
    except CdrwatchError as err:
        return False, f"an unreadable {MANIFEST} ({err})"
    if manifest is not None:
        sizes = {e.file: size_of(folder / e.file) for e in manifest.values()}
        absent = sorted(name for name, size in sizes.items() if size is None)
        empty = sorted(e.file for e in manifest.values() if e.rows and sizes[e.file] == 0)
        if absent or empty:
            problems = (
                [f"missing: {', '.join(absent[:5])}" + (" ..." if len(absent) > 5 else "")] if absent else []
            ) + ([f"empty: {', '.join(empty[:5])}" + (" ..." if len(empty) > 5 else "")] if empty else [])
            return False, f"an incomplete delivery ({MANIFEST} lists files {'; '.join(problems)})"
        return True, f"{MANIFEST} with {len(manifest)} file(s)"
    if config.schedule.require_manifest:
        return False, f"no {MANIFEST} (schedule.require_manifest)"
    files = {p.name: size_of(p) for p in folder.iterdir() if ingestible(config, carrier, p)}
    if not files:
        return False, "no files"
    if None in files.values():
        return False, "files still changing (one was renamed or removed while looking)"
    if not any(files.values()):
        return False, f"only empty files ({', '.join(sorted(files)[:5])})"
    now = now or dt.datetime.now(dt.timezone.utc)
    settle = dt.timedelta(minutes=config.schedule.settle_minutes)
    changed = last_change(folder)
    if changed > (now - settle).timestamp():
        last = dt.datetime.fromtimestamp(changed, dt.timezone.utc) if changed < float("inf") else now
        return False, (
            f"files still changing (last change {last:%H:%M:%S} UTC,"
            f" schedule.settle_minutes: {config.schedule.settle_minutes:g})"
        )
    return True, f"{len(files)} file(s), unchanged for {config.schedule.settle_minutes:g} min"


def carrier_landed(config: Config, carrier: str, day: dt.date, now: dt.datetime | None = None) -> bool:
    """Whether `landing/<carrier>/<D>/` holds the carrier's whole night (`landing_state`)."""
    return landing_state(config, carrier, day, now)[0]


def missing_carriers(config: Config, day: dt.date, now: dt.datetime | None = None) -> list[str]:
    """The configured carriers whose files for `day` have not landed."""
    return [carrier for carrier in config.carriers if not carrier_landed(config, carrier, day, now)]


def check_landing(config: Config, carrier: str, day: dt.date, deadline: dt.datetime, now: dt.datetime) -> bool:
    """One look for a carrier's night: True once it has landed, False while it may still come;
    `LateCarrier` (saying what was missing) once `now` is past the deadline."""
    landed, what = landing_state(config, carrier, day, now)
    if landed:
        return True
    if now >= deadline:
        raise LateCarrier(carrier, day, deadline, config.schedule.late_carrier, what)
    return False


# ---------------------------------------------------------------- running a step


def is_local(config: Config) -> bool:
    """Whether a step runs in this process: on the `local` engine, or on Spark with a local master
    (spark-submit only reaches a cluster)."""
    return config.engine == "local" or config.spark.master.startswith("local")


def cli_args(step: str, day: dt.date, conf_file: str | Path | None, overrides: tuple[str, ...] = ()) -> list[str]:
    """`cdrwatch` arguments of one step for one night."""
    args = [step, "--date", day.isoformat()]
    if conf_file is not None:
        args += ["--conf", str(Path(conf_file).resolve())]
    for item in overrides:
        args += ["--set", item]
    return args


class SubmitFailed(RuntimeError):
    """spark-submit of a step ended with an exit code that may be transient (1: an unexpected error)."""


def run_step(
    step: str,
    day: dt.date,
    conf_file: str | Path | None = None,
    overrides: tuple[str, ...] = (),
    *,
    cache_dir: Path | None = None,
):
    """Run one `jobs.pipeline` step for one night with this conf: in this process on the `local`
    engine or a local master (the process's Spark session is reused; returns the StepResult), else as
    `cdrwatch <step> --date D` through spark-submit. A `CdrwatchError` (configuration, input) is
    raised as it is, also when spark-submit's cdrwatch says so (exit code 2); other failures raise
    `SubmitFailed` or the step's own exception, which a retry may cure."""
    from jobs import pipeline

    config = load_config(conf_file, overrides)
    if is_local(config) or step in pipeline.DRIVER_ONLY:
        return pipeline.run_step(step, config, day)
    args = cli_args(step, day, conf_file, overrides)
    code = stream(spark_submit_command(config, args, conf_file, cache_dir=cache_dir), submit_env())
    if code == 2:
        raise CdrwatchError(
            f"cdrwatch {' '.join(masked(args))} failed on a problem of configuration or input "
            f"(exit code 2: see the error line above)"
        )
    if code != 0:
        raise SubmitFailed(f"cdrwatch {' '.join(masked(args))} failed (exit code {code})")
    return None


def spark_home() -> Path:
    """`SPARK_HOME`, else the installed pyspark package, which carries bin/spark-submit."""
    if os.environ.get("SPARK_HOME"):
        return Path(os.environ["SPARK_HOME"])
    return Path(importlib.util.find_spec("pyspark").submodule_search_locations[0])


def spark_submit_command(
    config: Config, args: list[str], conf_file: str | Path | None = None, *, cache_dir: Path | None = None
) -> list[str]:
    """spark-submit of `cdrwatch <args>` in client mode: the driver runs here (it reads landing and
    writes the lake and outbox, which must be at the same path on every executor); the package goes
    to the executors as `--py-files`, the conf file with `--files`. Driver JVM settings are given
    here because, in client mode, the JVM starts before the job's own SparkSession settings apply."""
    package, entry = submit_bundle(cache_dir)
    command = [
        str(spark_home() / "bin" / "spark-submit"),
        "--master",
        config.spark.master,
        "--deploy-mode",
        "client",
        "--driver-memory",
        config.spark.driver_memory,
        "--driver-java-options",
        f"-Dlog4j2.configurationFile={package_dir('conf') / 'log4j2.properties'}",
        "--py-files",
        str(package),
    ]
    for key, value in config.spark.extra.items():
        command += ["--conf", f"{key}={str(value).lower() if isinstance(value, bool) else value}"]
    if conf_file is not None:
        command += ["--files", str(Path(conf_file).resolve())]
    return [*command, str(entry), *args]


def submit_env() -> dict[str, str]:
    """The environment of spark-submit: driver and Python workers run this interpreter (it has
    pyarrow and the rest of the pins)."""
    env = dict(os.environ)
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    env.setdefault("SPARK_HOME", str(spark_home()))
    return env


def masked(command: list[str]) -> list[str]:
    """`command` as it may be logged: spark-submit's `--conf key=value` (spark.extra) shown as
    `--conf key=***`, and so is a `--set spark.extra.<key>=value` given to the step: those values can
    hold credentials (object-store keys, passwords). `--conf <file>` of cdrwatch stays readable."""
    shown = list(command)
    for i in range(1, len(shown)):
        key, eq, _ = shown[i].partition("=")
        if eq and (
            (shown[i - 1] == "--conf" and "/" not in key)
            or (shown[i - 1] == "--set" and key.strip().startswith("spark.extra"))
        ):
            shown[i] = key + "=***"
    return shown


def stream(command: list[str], env: dict[str, str]) -> int:
    """Run `command`, copying its output line by line to stdout (the task log); its exit code.
    The logged command line is `masked`; the process gets the real one."""
    print("$ " + " ".join(masked(command)), flush=True)
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as process:
        for line in process.stdout:
            print(line, end="", flush=True)
    return process.returncode


def package_dir(name: str) -> Path:
    """Where an installed top-level package of cdrwatch lives (without importing it)."""
    return Path(importlib.util.find_spec(name).submodule_search_locations[0])


def package_zip_bytes() -> bytes:
    """`schemas/ detectors/ jobs/ conf/` as one zip for `--py-files`,
    byte-identical for the same sources (sorted names, fixed timestamps), so its hash names the
    version in the cache."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in PACKAGES:
            root = package_dir(name)
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                if "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
                    continue
                member = f"{name}/{path.relative_to(root).as_posix()}"
                info = zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def default_cache_dir() -> Path:
    """Where submit bundles are kept: `$XDG_CACHE_HOME/cdrwatch/submit`, else `~/.cache/cdrwatch/submit`
    (per user: a bundle in the shared /tmp could be planted by anyone and run on the cluster)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cdrwatch" / "submit"


def private_dir(path: Path) -> Path:
    """`path` as a directory only this user can write: created with mode 0700; an existing one
    that is a symlink, owned by someone else, or group/world-writable is refused."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise CdrwatchError(f"{path}: the spark-submit cache must be a real directory, not a link or a file")
    if info.st_uid != os.getuid():
        raise CdrwatchError(
            f"{path}: the spark-submit cache is owned by uid {info.st_uid}, not by this user "
            f"({os.getuid()}); refusing to use it"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise CdrwatchError(
            f"{path}: the spark-submit cache is writable by others (mode "
            f"{stat.S_IMODE(info.st_mode):o}); refusing to use it (chmod 700 it)"
        )
    return path


def file_sha256(path: Path) -> str | None:
    """The hex sha256 of a regular file (not a link), None if there is none."""
    if path.is_symlink() or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def submit_bundle(cache_dir: Path | None = None) -> tuple[Path, Path]:
    """The package zip and the entry script, built once per version of the sources into
    `<cache_dir>/<hash>/` (default `default_cache_dir()`, both private to this user). A file found
    there is used only if its sha256 is the expected one; otherwise it is rewritten, atomically."""
    data = package_zip_bytes()
    version = hashlib.sha256(data + ENTRY_SCRIPT.encode()).hexdigest()[:16]
    folder = private_dir(private_dir(Path(cache_dir or default_cache_dir())) / version)
    package, entry = folder / "cdrwatch.zip", folder / "cdrwatch_submit.py"
    for path, content in ((package, data), (entry, ENTRY_SCRIPT.encode())):
        if file_sha256(path) != hashlib.sha256(content).hexdigest():
            write_atomic(path, content, mode=0o600)
    return package, entry


# ---------------------------------------------------------------- run summaries


def validation_lines(config: Config, day: dt.date) -> tuple[list[str], bool]:
    """The night's saved GX results as lines, and whether any carrier passed (`validate.night_verdict`)."""
    from jobs.validate import night_verdict

    lines, passed, _failed = night_verdict(config, day)
    return lines, bool(passed)


# ---------------------------------------------------------------- Airflow task callables
# Each takes the values Airflow passes by name (data_interval_start, ...) and reads the conf when
# it runs, so changing the Variable needs no redeploy.


def conf_file_at_parse() -> str | None:
    """The conf file the DAG is built from (schedule, timezone, carriers): env CDRWATCH_CONF."""
    return os.environ.get(CONF_ENV) or None


def conf_file_at_run() -> str:
    """The conf file a task runs with: Airflow Variable `cdrwatch_conf`, else env CDRWATCH_CONF."""
    from airflow.sdk import Variable

    conf_file = Variable.get(CONF_VARIABLE, default=None) or conf_file_at_parse()
    if not conf_file:
        raise CdrwatchError(
            f"no cdrwatch conf: set the Airflow Variable {CONF_VARIABLE} or the environment "
            f"variable {CONF_ENV} to the path of a conf YAML (absolute paths inside)"
        )
    return conf_file


@contextmanager
def failing_fast():
    """Inside an Airflow task: a `CdrwatchError` (bad conf, bad or missing input) fails the task
    without retries (`AirflowFailException`, the message kept); a date locked by another run and
    every other error keep Airflow's retries (they may be transient)."""
    from airflow.sdk.exceptions import AirflowFailException

    from jobs.io.locks import LockHeld

    try:
        yield
    except LockHeld:
        raise
    except CdrwatchError as err:
        raise AirflowFailException(str(err)) from err


def task_wait_for_carrier(carrier: str, data_interval_start=None, data_interval_end=None) -> bool:
    """Sensor poke: has the carrier's night landed (`landing_state`)? At the deadline, skip (policy
    `continue`: the night goes on without it) or fail without retries (policy `fail`: nothing
    downstream runs)."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    with failing_fast():
        config = load_config(conf_file_at_run())
        day = night_of(data_interval_start, config.timezone)
        deadline = landing_deadline(config, data_interval_end)
        now = dt.datetime.now(dt.timezone.utc)
        try:
            landed = check_landing(config, carrier, day, deadline, now)
        except LateCarrier as late:
            log.warning(str(late))
            raise (AirflowSkipException if late.policy == "continue" else AirflowFailException)(str(late)) from None
        what = landing_state(config, carrier, day, now)[1]
    log.info(
        f"{carrier}: files for {day} "
        + (f"landed: {what}" if landed else f"not landed yet: {what}; waiting until {deadline.isoformat()}")
    )
    return landed


def _before_ingest(config: Config, day: dt.date) -> None:
    """Name the carriers that have not landed (the night is partial); a night with none fails."""
    missing = missing_carriers(config, day)
    if len(missing) == len(config.carriers):
        raise CdrwatchError(f"no carrier delivered files for {day}: nothing to ingest")
    if missing:
        log.warning(f"partial night {day}: going on without {', '.join(missing)}")


def task_night(data_interval_start=None) -> None:
    """Run every step of `jobs.pipeline.NIGHTLY` for the night in this one task (conf
    `schedule.one_task`): in this process (the `local` engine, or one local Spark session), on a cluster as one spark-submit of
    `cdrwatch nightly --date D`. A night's steps then pay Spark's start and warm-up once, not per step."""
    with failing_fast():
        conf_file = conf_file_at_run()
        config = load_config(conf_file)
        day = night_of(data_interval_start, config.timezone)
        _before_ingest(config, day)
        if not is_local(config):
            run_step("nightly", day, conf_file)
            return
        from jobs import pipeline

        for result in pipeline.run_night(config, day):
            if result.step == "validate":
                for line in result.detail:
                    log.info(line)


def task_step(step: str, data_interval_start=None) -> None:
    """Run one step of `jobs.pipeline.NIGHTLY` for the night. Before ingest, the carriers that have
    not landed are named (the night is partial) and a night with none fails."""
    with failing_fast():
        conf_file = conf_file_at_run()
        config = load_config(conf_file)
        day = night_of(data_interval_start, config.timezone)
        if step == "ingest":
            _before_ingest(config, day)
        result = run_step(step, day, conf_file)
        if step == "validate" and result is not None:
            for line in result.detail:
                log.info(line)
