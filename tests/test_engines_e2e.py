"""The two engines end to end, through the real command line: the same simulated evasive city (8 den
kinds, two spoofing gateways, clock skew, a raid, a lawful gateway, field feedback after night 1) run
by `--engine local`, by `--engine spark`, and by both taking turns night by night, gives the same
lake tables and the same outbox, byte for byte (report.html aside: it names its own run). A
difference is a failing test, never a tolerance.

The city and the runs on each engine are shared with tests/test_engines_dens.py (conftest
`engines_*`). The Spark side runs three nights to keep the suite in budget; the local engine runs
the whole week in the end-to-end tests that share `conftest.week`."""

import polars as pl
import pytest
from conftest import ENGINES_NIGHTS as NIGHTS
from conftest import ENGINES_START as START
from conftest import run_engines_city
from polars.testing import assert_frame_equal

from jobs.cli import main

pytestmark = pytest.mark.slow


# lake tables partitioned by date whose rows both engines must write alike
TABLES = (
    "cdr",
    "quarantine",
    "routed",
    "flags",
    "spoofed",
    "dens",
    "victims",
    "sim_day",
    "device_day",
    "cell_hour",
    "contact_day",
)


@pytest.fixture(scope="module")
def on_local(engines_on_local):
    return engines_on_local.root


@pytest.fixture(scope="module")
def on_spark(engines_on_spark):
    return engines_on_spark.root


@pytest.fixture(scope="module")
def taking_turns(engines_city, tmp_path_factory, spark):
    """local writes night 1, Spark reads it for night 2, local reads Spark's night 2 for night 3."""
    return run_engines_city(engines_city, tmp_path_factory.mktemp("turns"), ["local", "spark", "local"]).root


def table_rows(root, table, day):
    """Every row of a table's date, its partition columns included, in one canonical order."""
    folder = root / "lake" / table / f"date={day.isoformat()}"
    files = sorted(folder.rglob("*.parquet"))
    assert files, f"{folder}: nothing written"
    frame = pl.read_parquet(files, hive_partitioning=False)
    below = {p.split("=")[0] for f in files for p in f.relative_to(folder).parts[:-1]}
    if below:  # carrier=...: one frame per partition folder, the column from its name
        frame = pl.concat(
            pl.read_parquet(f).with_columns(
                *(pl.lit(p.split("=", 1)[1]).alias(p.split("=")[0]) for p in f.relative_to(folder).parts[:-1])
            )
            for f in files
        )
    return frame.sort(pl.all(), nulls_last=False)


def outbox_files(root):
    outbox = root / "outbox"
    return {
        path.relative_to(outbox).as_posix(): path.read_bytes()
        for path in sorted(outbox.rglob("*"))
        if path.is_file() and path.name != "report.html" and not path.name.startswith(".")
    }


@pytest.mark.parametrize("table", TABLES)
def test_both_engines_write_the_same_lake(on_local, on_spark, table):
    for day in NIGHTS:
        assert_frame_equal(table_rows(on_local, table, day), table_rows(on_spark, table, day))


def test_both_engines_write_the_same_outbox_byte_for_byte(on_local, on_spark):
    local, spark = outbox_files(on_local), outbox_files(on_spark)
    assert sorted(local) == sorted(spark)
    assert [name for name in local if local[name] != spark[name]] == []
    assert any(name.endswith(".csv") and "/leads/" in name for name in local)  # there are leads to compare


def test_the_same_field_answers_and_hotlist(on_local, on_spark):
    """The same visits and hotlist (when each run imported the file is its own: `imported_at` aside)."""
    for name in ("feedback", "hotlist"):

        def rows(root):
            frame = pl.read_parquet(sorted((root / "lake" / name).rglob("*.parquet")))
            return frame.drop("imported_at", strict=False).sort(pl.all(), nulls_last=False)

        local, spark = rows(on_local), rows(on_spark)
        assert local.height > 0, name
        assert_frame_equal(local, spark)


def test_engines_taking_turns_read_each_others_nights(on_local, taking_turns):
    assert outbox_files(taking_turns) == outbox_files(on_local)
    for table in ("flags", "dens", "victims", "sim_day"):
        for day in NIGHTS:
            assert_frame_equal(table_rows(taking_turns, table, day), table_rows(on_local, table, day))


# Makes `import pyspark` (and py4j) fail in the child: the local engine must run on an install without
# Java, so none of its modules may import them.
NO_PYSPARK = '''
import sys

class NoPySpark:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pyspark", "py4j"):
            raise ImportError(f"{name} imported by the local engine")

sys.meta_path.insert(0, NoPySpark())
'''


def test_the_local_engine_runs_a_night_without_pyspark(tmp_path):
    """Every step of `cdrwatch nightly --engine local`, in a process where pyspark cannot be imported."""
    import subprocess
    import sys

    (tmp_path / "block").mkdir()
    (tmp_path / "block" / "sitecustomize.py").write_text(NO_PYSPARK)
    paths = [
        "--landing",
        str(tmp_path / "landing"),
        "--lake",
        str(tmp_path / "lake"),
        "--outbox",
        str(tmp_path / "outbox"),
    ]
    assert (
        main(["simulate", "--start", START.isoformat(), "--days", "1", "--subscribers", "300", "--dens", "2", *paths])
        == 0
    )
    night = [sys.executable, "-m", "jobs.cli", "--debug", "nightly", "--date", START.isoformat(), "--engine", "local"]
    env = {"PYTHONPATH": str(tmp_path / "block"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([*night, *paths], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "imported by the local engine" not in done.stderr
    written = {p.name for p in (tmp_path / "outbox" / START.isoformat()).iterdir()}
    assert {"leads", "warnings.csv", "report.html"} <= written
