"""The dens and export steps on both engines: the local engine's dens (`jobs.dens.local`) must write
the lake/dens and lake/victims rows Spark's writes, and export (engine-free) the same outbox bytes
whichever engine wrote the lake.

Units on a small hand-built night (every kind of link, the corner cases of each key), then a small
simulated city run through the Spark pipeline, each night's dens rerun on the local engine into a
copy of the lake and compared column by column, and both lakes exported and compared byte by byte."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
from builders import CDR_SITE_COLUMNS

from jobs.dens import describe as spark_describe
from jobs.dens import describe_local, graph_local
from jobs.dens import graph as spark_graph
from jobs.dens.links import EDGE_COLUMNS
from schemas.tables import CDR, DEN, FLAG, VICTIMS

DAY = dt.date(2026, 11, 24)
UTC = dt.timezone.utc
SITES = {
    "S1": ("S30.6000,104.0000", 30.6, 104.0, "S1基站", "锦江区"),
    "S2": ("S30.6010,104.0010", 30.601, 104.001, None, "锦江区"),
    "S7": ("S30.7000,104.1000", 30.7, 104.1, "S7基站", "成华区"),
    None: (None, None, None, None, None),  # a cell not in the inventory
}
SITE_SCHEMA = {
    "site_key": pl.String,
    "site_lat": pl.Float64,
    "site_lon": pl.Float64,
    "site_label": pl.String,
    "district": pl.String,
}
BOX, BOX2 = "86000000000001", "86000000000002"
A, B, C, D, E, F, G = (f"+861330000000{i}" for i in range(1, 8))
FAR, VICTIM, LISTED = "+8613800000009", "+8613999990001", "+8613999990002"


def _rows() -> list[tuple]:
    """A box (A, B) and an operator (C) at S1; D and E sharing hours at S2 with nothing else between
    them but flags naming S2; F tied to the flagged box BOX2, calling G around local midnight and C
    once; a lone flagged SIM far away; callees with a trailing line break, a null, a foreign number;
    a cell outside the inventory; a victim, a whitelisted hotline and a brief call."""
    rows: list[tuple] = []

    def add(
        msisdn,
        other,
        hour,
        minute=0,
        *,
        imei=None,
        site="S1",
        seconds=0,
        service="voice",
        direction="out",
        imsi="auto",
        cell="auto",
        carrier="cm",
    ):
        when = dt.datetime(2026, 11, 23, 16, tzinfo=UTC) + dt.timedelta(hours=hour, minutes=minute)  # 00:00 local
        rows.append(
            (
                f"R{len(rows):05d}",
                carrier,
                msisdn,
                other,
                direction,
                service,
                when,
                seconds,
                f"46000{msisdn[-10:]}" if imsi == "auto" else imsi,
                imei,
                (f"c-{site}" if site else "c-unknown") if cell == "auto" else cell,
                "test",
                len(rows) + 1,
                DAY,
                *SITES[site],
            )
        )

    for k in range(6):  # A and B: the box, at S1, dialling 139-1234 in the same hours
        add(A, f"+86139123400{k:02d}", 9, k, imei=BOX)
        add(B, f"+86139123410{k:02d}", 9, k, imei=BOX)
    for h in (9, 10, 11):  # C: own phone, same site and hours, same segment, calls A
        add(C, f"+86139123420{h:02d}", h, imei="h0003")
        add(C, A, h, 30, imei="h0003")
        add(C, f"+86139123430{h:02d}\n", h, 40, imei="h0003")  # Java's `$` matches before a final break
    add(A, "+8613912340100", 10, imei=BOX)
    add(A, "+8613912340101", 11, imei=BOX, service="sms")
    add(A, None, 11, 5, imei=BOX)  # no callee
    add(A, "+441632960000", 11, 6, imei=BOX)  # not a Chinese mobile: no segment
    for h in (13, 14, 15):  # D and E: same site and hours, nothing else in common
        add(D, f"+86150000001{h:02d}", h, site="S2", imsi=None, imei=None)
        add(E, f"+86151000001{h:02d}", h, site="S2", imsi=None, imei=None)
        add(E, f"+86151000002{h:02d}", h, site=None, cell=None, carrier="cu")  # a cell-less row
    for m in (0, 20, 40):  # F on the flagged box BOX2, around midnight local time
        add(F, G, 23, m, imei=BOX2, site="S7")
        add(F, G, 24, m, imei=BOX2, site="S7")
        add(G, F, 24, m + 5, imei="h0007", site="S7", direction="in")
    add(F, C, 24, 50, imei=BOX2, site="S7")  # a call to a suspect
    add(FAR, "+8615000000000", 3, site="S7")  # flagged, alone elsewhere
    add(B, VICTIM, 14, 5, imei=BOX, seconds=400)  # talked 400 s: a victim
    add(B, VICTIM, 15, 0, imei=BOX)  # rang again, unanswered
    add(VICTIM, "+8613000000000", 19, imei="hv", site="S7", seconds=60)  # the victim lives at S7
    add(A, LISTED, 14, 10, imei=BOX, seconds=900)  # whitelisted
    add(A, "+8613999990003", 14, 20, imei=BOX, seconds=30)  # too short to be at risk
    return rows


def _flag(detector, entity_type, entity_id, score, **details):
    values = dict(
        detector=detector, entity_type=entity_type, entity_id=entity_id, score=score, evidence="", date=DAY, **details
    )
    return tuple(values.get(name) for name in FLAG.names)


FLAGS = [
    _flag("goip", "msisdn", A, 0.9, site_key=SITES["S1"][0]),
    _flag("goip", "imei", BOX, 0.9),
    _flag("goip", "imei", BOX2, 0.6),
    _flag(
        "sequential",
        "msisdn",
        C,
        0.8,
        segment="1391234",
        range_lo="+8613912342009",
        range_hi="+8613912342011",
        pattern="in ascending order by this SIM alone",
    ),
    _flag("low_slow", "msisdn", D, 0.5, site_key=SITES["S2"][0]),
    _flag("low_slow", "msisdn", E, 0.5, site_key=SITES["S2"][0]),
    _flag("goip", "msisdn", FAR, 0.7),
]
LOCAL_SCHEMA = {**CDR.polars(), **SITE_SCHEMA}


@pytest.fixture(scope="module")
def nights(spark):
    """The hand-built night as (Spark cdr, Spark flags, Polars cdr, Polars flags)."""
    rows = _rows()
    cdr = spark.createDataFrame(rows, CDR_SITE_COLUMNS)
    flags = spark.createDataFrame(FLAGS, FLAG.spark())
    local = pl.DataFrame(rows, schema=LOCAL_SCHEMA, orient="row")
    return cdr, flags, local, pl.DataFrame(FLAGS, schema=FLAG.polars(), orient="row")


def _edges_spark(frame) -> list[tuple]:
    return sorted(tuple(r[c] for c in EDGE_COLUMNS) for r in frame.collect())


def _edges_local(frame: pl.DataFrame) -> list[tuple]:
    return sorted(frame.select(EDGE_COLUMNS).rows())


def test_suspect_edges_are_equal_on_both_engines(nights, test_config):
    cdr, flags, local, local_flags = nights
    expected = _edges_spark(spark_graph.suspect_edges(cdr, flags))
    actual = _edges_local(graph_local.suspect_edges(local, local_flags, test_config.timezone))
    assert actual == expected
    pairs = {(a, b): dict(zip(EDGE_COLUMNS, (a, b, *rest))) for a, b, *rest in actual}
    # every kind is exercised: a shared device, a place, a segment, a call between them, a callee
    assert pairs[(A, B)]["shared_id"] == 1.0 and pairs[(A, C)]["mutual_call"] == 0.5
    assert pairs[(A, C)]["segment"] > 0 and pairs[(A, B)]["colocation"] > 0
    assert pairs[(D, E)]["colocation"] > 0  # place alone, but both flagged at S2
    assert pairs[(C, F)]["mutual_call"] == 0.5  # F is tied through the box BOX2, and called C
    assert not [p for p in pairs if FAR in p]


@pytest.mark.parametrize(
    ("min_edge_weight", "max_degree", "max_edges", "min_together"),
    [(0.5, 10, 100, 0.0), (0.5, 10, 100, 0.5), (0.1, 1, 100, 0.0), (0.1, 10, 2, 0.0), (2.0, 10, 100, 0.0)],
)
def test_collected_edges_are_equal_on_both_engines(
    nights, test_config, min_edge_weight, max_degree, max_edges, min_together
):
    cdr, flags, local, local_flags = nights
    bounds = dict(
        min_edge_weight=min_edge_weight, max_degree=max_degree, max_edges=max_edges, min_together=min_together
    )
    expected = spark_graph.collect_edges(spark_graph.suspect_edges(cdr, flags), **bounds)
    actual = graph_local.collect_edges(graph_local.suspect_edges(local, local_flags, test_config.timezone), **bounds)
    assert actual == expected


def test_suspects_facts_and_victims_are_equal_on_both_engines(nights, spark, test_config):
    cdr, flags, local, local_flags = nights
    assert sorted(tuple(r) for r in spark_graph.suspect_sims(cdr, flags).collect()) == sorted(
        graph_local.suspect_sims(local, local_flags).rows()
    )
    groups = [[A, B, C], [D, E], [F, G]]
    rows = spark_graph.suspect_rows(cdr, flags)
    local_rows = graph_local.suspect_rows(local, local_flags)
    assert rows.count() == local_rows.height
    expected = spark_describe.describe(rows, spark_describe.membership(spark, groups))
    actual = describe_local.describe(local_rows, describe_local.membership(groups), test_config.timezone)
    assert actual == expected
    assert actual["k001"].segments and actual["k001"].n_sms == 1 and actual["k003"].hours  # keys, hours, SMS

    whitelist = [(LISTED,)]
    found = spark_describe.victims(
        cdr, spark_describe.membership(spark, groups), spark.createDataFrame(whitelist, "number string"), 300
    )
    local_found = describe_local.victims(
        local.lazy(), describe_local.membership(groups), pl.DataFrame(whitelist, schema=["number"], orient="row"), 300
    )
    assert _sorted_rows(pl.from_arrow(found.toArrow()), ["den_key", "number"]) == _sorted_rows(
        local_found, ["den_key", "number"]
    )
    assert local_found.select("number", "district").rows() == [(VICTIM, "成华区")]


def _sorted_rows(frame: pl.DataFrame, key: list[str]) -> list[tuple]:
    """Rows sorted by `key`, instants as UTC (Spark hands them over in its session zone)."""
    frame = frame.with_columns(
        pl.col(name).dt.convert_time_zone("UTC") for name, kind in frame.schema.items() if isinstance(kind, pl.Datetime)
    )
    return frame.sort(key, nulls_last=False).rows()


def test_the_local_dens_step_and_export_import_no_spark():
    """The local engine's dens and the engine-free export need no JVM: importing them (and the local
    night they load) imports no pyspark, nor the Spark step."""
    probe = (
        "import sys; import jobs.dens.local, jobs.export, jobs.night_local; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pyspark' or m in "
        "('jobs.dens.spark', 'jobs.dens.graph', 'jobs.dens.describe', 'jobs.night', 'jobs.spark')))"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# ---------------------------------------------------------------- a small simulated city, both engines


@pytest.fixture(scope="module")
def city(engines_on_spark):
    """The differential tests' simulated city (conftest `engines_*`: 1,500 subscribers, 8 dens of every
    kind, two spoofing gateways, a raid, the field's answers to night 1's leads) through the Spark
    engine for three nights."""
    return engines_on_spark


@pytest.fixture(scope="module")
def local_city(city, tmp_path_factory):
    """A copy of the city's lake with each night's dens rerun on the local engine, in order (a night's
    earlier dens are then the local engine's own), then every night exported from it."""
    from jobs.dens.local import dens_date_local
    from jobs.export import export_date

    root = tmp_path_factory.mktemp("local_city")
    shutil.copytree(city.root / "lake", root / "lake")
    config = city.config.with_paths(
        landing=str(city.root / "landing"), lake=str(root / "lake"), outbox=str(root / "outbox")
    )
    results = {}
    for day in city.dates:
        for table in (DEN, VICTIMS):  # nothing of Spark's is left to be read back by mistake
            shutil.rmtree(root / "lake" / table.name / f"date={day}")
        results[day] = dens_date_local(config, day)
        export_date(config, day)
    return SimpleNamespace(root=root, config=config, results=results)


def _lake(root: Path, table, day: dt.date, key: list[str]) -> pl.DataFrame:
    frame = pl.read_parquet(root / "lake" / table.name / f"date={day}" / "*.parquet")
    return frame.select(sorted(frame.columns)).sort(key, nulls_last=False)


@pytest.mark.slow
@pytest.mark.parametrize("table", [DEN, VICTIMS], ids=["dens", "victims"])
def test_local_dens_write_spark_rows_on_the_simulated_city(city, local_city, table):
    key = ["den_id"] if table is DEN else ["den_id", "number"]
    total = 0
    for day in city.dates:
        expected = _lake(city.root, table, day, key)
        actual = _lake(local_city.root, table, day, key)
        assert actual.schema == expected.schema, (table.name, day)
        assert actual.height == expected.height, (table.name, day)
        for want, got in zip(expected.rows(named=True), actual.rows(named=True), strict=True):
            assert got == want, (table.name, day)
        total += actual.height
    assert total > 0, table.name
    if table is DEN:  # dens carried on across nights (ids from earlier dens), and the field's visits were read
        dens = [_lake(local_city.root, DEN, day, key) for day in city.dates]
        assert set(dens[0]["den_id"]) & set(dens[1]["den_id"])
        assert sum(frame["last_visit"].drop_nulls().len() for frame in dens[1:]) > 0


@pytest.mark.slow
def test_export_writes_the_same_outbox_whichever_engine_wrote_the_lake(city, local_city):
    """Byte for byte, every file but the report (export's own, not report.html)."""
    for day in city.dates:
        expected_root, actual_root = (
            city.root / "outbox" / day.isoformat(),
            local_city.root / "outbox" / day.isoformat(),
        )
        expected = {p.relative_to(expected_root): p for p in expected_root.rglob("*") if p.is_file()}
        actual = {p.relative_to(actual_root): p for p in actual_root.rglob("*") if p.is_file()}
        expected.pop(Path("report.html"), None)
        assert sorted(actual) == sorted(expected), day
        assert any(str(p).startswith("leads/") for p in actual) and Path("warnings.csv") in actual
        for name, path in expected.items():
            assert actual[name].read_bytes() == path.read_bytes(), (day, name)


@pytest.mark.slow
def test_local_dens_results_match_what_they_wrote(city, local_city):
    for day, result in local_city.results.items():
        written = _lake(local_city.root, DEN, day, ["den_id"])
        assert result.day == day and result.path == local_city.root / "lake" / "dens" / f"date={day}"
        assert sorted(r["den_id"] for r in result.rows) == written["den_id"].to_list()
        assert result.victims == _lake(local_city.root, VICTIMS, day, ["den_id", "number"]).height


@pytest.mark.slow
def test_exports_inputs_read_with_polars_give_the_outbox_of_sparks_reads(city, spark):
    """The inputs as export read them with Spark before it was engine-free (rows as `asDict(recursive=True)`,
    instants cast to long) build the same files as `read_inputs`' Polars reads."""
    from pyspark.sql import functions as F

    from jobs.export import build_outbox, read_inputs
    from jobs.io import lake_spark
    from jobs.night import read_cells, read_whitelist
    from schemas.tables import SPOOFED

    config = city.config
    options = dict(
        timezone=config.timezone,
        warning_min_call_s=config.export.warning_min_call_s,
        chinese_headers=config.export.chinese_headers,
    )
    for day in city.dates:

        def read(table, **casts):
            frame = lake_spark.read_partition(config, spark, table, day)
            for name, column in casts.items():
                frame = frame.withColumn(name, F.col(column).cast("long"))
            return [r.asDict(recursive=True) for r in frame.collect()]

        districts = sorted(r.district for r in read_cells(config, spark).select("district").distinct().collect())
        whitelist = {r.number for r in read_whitelist(config, spark).collect()}
        spoofed = read(SPOOFED, start_epoch="start_time")
        expected, _ = build_outbox(
            read(DEN),
            read(VICTIMS, first_contact_epoch="first_contact"),
            districts,
            whitelist,
            spoofed=spoofed,
            **options,
        )
        dens, victims, districts, whitelist, spoofed = read_inputs(config, day)
        actual, _ = build_outbox(dens, victims, districts, whitelist, spoofed=spoofed, **options)
        assert sorted(actual) == sorted(expected)
        assert spoofed and victims, day  # the city's nights have both
        for name in expected:
            assert actual[name] == expected[name], (day, name)


@pytest.mark.parametrize("flagged", [True, False], ids=["flags", "no-flags"])
def test_found_dens_are_equal_on_both_engines(nights, spark, test_config, flagged):
    """The whole transform on the hand-built night (groups, merges, facts, ids, victims), and on the
    same night without a flag (no suspects: no dens, no victims)."""
    from detectors.base import Night
    from detectors.local.base import LocalNight
    from jobs.dens import local
    from jobs.dens.spark import find_dens

    cdr, flags, local_cdr, local_flags = nights
    if not flagged:
        flags, local_flags = flags.limit(0), local_flags.clear()
    whitelist = [(LISTED,)]
    spark_night = Night(DAY, cdr, cdr.limit(0), spark.createDataFrame(whitelist, "number string"))
    local_night = LocalNight(
        DAY,
        local_cdr.lazy(),
        local_cdr.clear().lazy(),
        pl.DataFrame(whitelist, schema=["number"], orient="row"),
        test_config.timezone,
    )
    expected = find_dens(test_config, spark_night, flags, earlier=[])
    actual = local.find_dens(test_config, local_night, local_flags, earlier=[])
    try:
        assert actual.rows == expected.rows
        assert actual.warnings == expected.warnings
        key = ["den_id", "number"]
        assert _sorted_rows(actual.victims, key) == _sorted_rows(pl.from_arrow(expected.victims.toArrow()), key)
    finally:
        expected.found.unpersist()
    assert bool(actual.rows) == flagged and actual.victims.height == (1 if flagged else 0)
