"""Shared fixtures: one SparkSession for the whole test session (starting one costs ~10 s), and a
simulated week run through the real CLI on the default (local) engine."""

import pytest

from jobs.config import load_config


def pytest_collection_modifyitems(items):
    """Every test that needs a Spark session (directly or through a fixture) is marked `spark`, so
    that `make test-fast` can run the local engine and everything engine-free without a JVM."""
    for item in items:
        if "spark" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.spark)


@pytest.fixture(scope="session")
def test_config():
    """The default conf, sized for tests: two local cores, two shuffle partitions."""
    return load_config(overrides=["spark.master=local[2]", "spark.shuffle_partitions=2", "spark.driver_memory=2g"])


@pytest.fixture(scope="session")
def spark(test_config):
    from jobs.spark import spark_session

    session = spark_session(test_config)
    yield session
    session.stop()


# A simulated week, shared by the end-to-end tests: simulated once, each step run once through
# the real command line (`jobs.cli.main`), in the order the nightly batch runs them, on the default
# engine (local). tests/test_engines_e2e.py holds the Spark engine to the same outputs.
WEEK_START = __import__("datetime").date(2026, 11, 20)
WEEK_DAYS = 7
WEEK_DENS = 8


@pytest.fixture(scope="session")
def week(tmp_path_factory):
    """Paths and dates of a simulated week: 1,500 subscribers, 8 dens — one of every kind the simulator
    knows, the evasive ones of issue #13 included (a box changing its IMEI per call, a low-and-slow
    room from day 3, two boxes in one room, a box in a car; den01 moves mid-week) — and the hard
    negatives (couriers, a registered call centre, a crowd, a debt-collection room, estate agents, a
    phone shop); two overseas gateways spoofing residents' and protected numbers (#16), and carriers'
    clocks 45-105 s apart."""
    import datetime as dt
    from types import SimpleNamespace

    from simulator import simulate

    root = tmp_path_factory.mktemp("week")
    simulate(
        root / "landing", WEEK_START, WEEK_DAYS, subscribers=1500, dens=WEEK_DENS, seed=3, spoofers=2, clock_skew=60
    )
    dates = [WEEK_START + dt.timedelta(days=i) for i in range(WEEK_DAYS)]
    argv = [
        "--landing",
        str(root / "landing"),
        "--lake",
        str(root / "lake"),
        "--outbox",
        str(root / "outbox"),
        "--set",
        "spark.master=local[2]",
        "--set",
        "spark.shuffle_partitions=2",
    ]
    config = load_config(
        overrides=[
            f"paths.landing={root / 'landing'}",
            f"paths.lake={root / 'lake'}",
            f"paths.outbox={root / 'outbox'}",
        ]
    )
    return SimpleNamespace(
        root=root, truth=root / "landing" / "truth", dates=dates, argv=argv, config=config, done=set()
    )


def run_step(week, step):
    """Run `cdrwatch <step>` for every date of the week once (and the steps before it, in the order of
    `jobs.pipeline.NIGHTLY`); `validate` and `feedback`, which have no `--date` command, through the pipeline."""
    from jobs import pipeline
    from jobs.cli import main

    order = pipeline.NIGHTLY
    for earlier in order[: order.index(step) + 1]:
        if earlier in week.done:
            continue
        for day in week.dates:
            if pipeline.STEPS[earlier].command:
                assert main([earlier, "--date", day.isoformat(), *week.argv]) == 0, f"{earlier} {day}"
            else:
                assert pipeline.run_step(earlier, week.config, day).status in ("ok", "partial"), f"{earlier} {day}"
        week.done.add(earlier)


@pytest.fixture(scope="session")
def week_ingested(week):
    run_step(week, "ingest")
    return week


@pytest.fixture(scope="session")
def week_detected(week_ingested):
    run_step(week_ingested, "detect")
    return week_ingested


@pytest.fixture(scope="session")
def week_dens(week_detected):
    run_step(week_detected, "dens")
    return week_detected


@pytest.fixture(scope="session")
def week_exported(week_dens):
    run_step(week_dens, "export")
    return week_dens


@pytest.fixture(scope="session")
def week_reported(week_exported):
    run_step(week_exported, "report")
    return week_exported


# A simulated evasive city run by each engine through the real CLI, for the differential tests
# (tests/test_engines_e2e.py, tests/test_engines_dens.py): 8 den kinds, two spoofing gateways,
# clock skew, a raid after night 1 and a lawful gateway, the field's answers to night 1's leads.
ENGINES_START = __import__("datetime").date(2026, 11, 20)
ENGINES_NIGHTS = [ENGINES_START + __import__("datetime").timedelta(days=i) for i in range(3)]


@pytest.fixture(scope="session")
def engines_city(tmp_path_factory):
    from simulator import simulate

    landing = tmp_path_factory.mktemp("engines_city") / "landing"
    simulate(
        landing,
        ENGINES_START,
        len(ENGINES_NIGHTS),
        subscribers=1500,
        dens=8,
        seed=3,
        spoofers=2,
        clock_skew=60,
        raid_after=1,
        lawful_gateways=1,
    )
    return landing


def run_engines_city(landing, root, engines):
    """The city's nights with `engines[i]` running night i through `cdrwatch nightly`, in a copy of
    the landing zone of its own (the field's answers to night 1 are written there)."""
    import shutil
    from types import SimpleNamespace

    from jobs.cli import main

    shutil.copytree(landing, root / "landing", symlinks=True)
    paths = ["--landing", str(root / "landing"), "--lake", str(root / "lake"), "--outbox", str(root / "outbox")]
    spark = ["--set", "spark.master=local[2]", "--set", "spark.shuffle_partitions=2"]
    for n, (day, engine) in enumerate(zip(ENGINES_NIGHTS, engines)):
        assert main(["nightly", "--date", day.isoformat(), "--engine", engine, *paths, *spark]) == 0, (engine, day)
        if n == 0:
            assert main(["simulate", "--feedback", "--date", day.isoformat(), *paths]) == 0
    config = load_config(
        overrides=[
            *(f"paths.{name}={root / name}" for name in ("landing", "lake", "outbox")),
            f"engine={engines[-1]}",
        ]
    )
    return SimpleNamespace(root=root, dates=ENGINES_NIGHTS, config=config)


@pytest.fixture(scope="session")
def engines_on_local(engines_city, tmp_path_factory):
    return run_engines_city(engines_city, tmp_path_factory.mktemp("on_local"), ["local"] * len(ENGINES_NIGHTS))


@pytest.fixture(scope="session")
def engines_on_spark(engines_city, tmp_path_factory, spark):
    return run_engines_city(engines_city, tmp_path_factory.mktemp("on_spark"), ["spark"] * len(ENGINES_NIGHTS))
