"""jobs/io without Spark: atomic files, the landing scan that ingest and the sensor share, the Polars
readers of the lake, run summaries, and the one site clustering (detectors.rules.sites.site_of_cells)."""

import datetime as dt
import json
import os
import stat
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from detectors.rules.sites import CellSite, site_of_cells
from jobs.config import load_config
from jobs.errors import CdrwatchError
from jobs.io import files, inventory, lake_polars, landing, layout, summaries
from schemas.tables import CDR, FLAG

DAY = dt.date(2026, 11, 20)


def config_in(root: Path):
    return load_config(
        overrides=[
            f"paths.landing={root / 'landing'}",
            f"paths.lake={root / 'lake'}",
            f"paths.outbox={root / 'outbox'}",
        ]
    )


# ---------------------------------------------------------------- atomic files


def test_write_atomic_replaces_the_file_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "new" / "page.html"
    files.write_atomic(path, "第一版\n")
    assert path.read_bytes() == "第一版\n".encode("utf-8")
    files.write_atomic(path, b"\x00second")
    assert path.read_bytes() == b"\x00second"
    assert sorted(p.name for p in path.parent.iterdir()) == ["page.html"]


def test_write_atomic_gives_a_private_file_the_mode_asked_for(tmp_path):
    old = os.umask(0o022)
    try:
        private = files.write_atomic(tmp_path / "bundle.zip", b"PK", mode=0o600)
        shared = files.write_atomic(tmp_path / "summary.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(shared.stat().st_mode) == 0o644


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path, monkeypatch):
    path = files.write_atomic(tmp_path / "summary.json", "old")

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        files.write_atomic(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_write_json_is_indented_utf8_in_the_given_key_order(tmp_path):
    path = files.write_json(tmp_path / "a.json", {"z": 1, "区": ["锦江区"]})
    assert path.read_text(encoding="utf-8") == '{\n  "z": 1,\n  "区": [\n    "锦江区"\n  ]\n}\n'


# ---------------------------------------------------------------- the landing scan


def test_the_landing_scan_lists_what_ingest_reads_and_names_the_rest(tmp_path):
    config = config_in(tmp_path)
    folder = layout.delivery_folder(config, "cm", DAY)
    assert folder == tmp_path / "landing" / "cm" / "2026-11-20"
    folder.mkdir(parents=True)
    for name in ("b.csv.gz", "a.csv", ".a.csv.part", "_MANIFEST.csv", "_tmp.csv", "notes.txt"):
        (folder / name).write_bytes(b"x")
    (folder / "old.csv").mkdir()
    scan = landing.scan_delivery(config, "cm", DAY)
    assert scan.files == [folder / "a.csv", folder / "b.csv.gz"]
    assert scan.ignored == [".a.csv.part", "_tmp.csv", "notes.txt"]  # the manifest is not "ignored"
    assert scan.folders == ["old.csv"]
    assert landing.delivery_files(config, "cm", DAY) == scan.files
    assert [p.name for p in sorted(folder.iterdir()) if landing.ingestible(config, "cm", p)] == ["a.csv", "b.csv.gz"]
    assert not landing.ingestible(config, "cu", folder / "a.csv")  # cu delivers pipe-separated *.txt
    assert landing.delivery_files(config, "cu", DAY) == []  # no folder: nothing, no error


def test_ingest_and_the_sensor_read_the_same_files(tmp_path):
    from jobs import orchestrate
    from jobs.ingest import find_deliveries

    config = config_in(tmp_path)
    folder = layout.delivery_folder(config, "cu", DAY)
    folder.mkdir(parents=True)
    for name in ("cu_2.txt", "cu_1.txt", "cu.csv", "_MANIFEST.csv"):
        (folder / name).write_bytes(b"x")
    warnings = []
    assert find_deliveries(config, DAY, warnings) == {"cu": [folder / "cu_1.txt", folder / "cu_2.txt"]}
    assert warnings == [
        "cm: no files for 2026-11-20 — late?",
        "cu: ignored 1 file(s) not named *.txt: cu.csv",
        "ct: no files for 2026-11-20 — late?",
    ]
    assert orchestrate.ingestible is landing.ingestible and orchestrate.delivery_folder is layout.delivery_folder


# ---------------------------------------------------------------- the lake read with Polars


def write_parquet(path: Path, columns: dict[str, pa.Array]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)


def test_polars_reads_one_date_of_a_small_table_typed_by_its_schema(tmp_path):
    config = config_in(tmp_path)
    partition = tmp_path / "lake" / "flags" / "date=2026-11-20"
    written = {
        "detector": pa.array(["goip", "congestion"]),
        "entity_type": pa.array(["msisdn", "cell"]),
        "entity_id": pa.array(["+8613900000001", "4100-1"]),
        "score": pa.array([1.0, 0.5]),
        "evidence": pa.array(["box", "den-like"]),
    }
    write_parquet(partition / "part-0.parquet", written)  # a partition written before FLAG gained columns
    flags = lake_polars.read_day(config, FLAG, DAY)
    assert flags.schema == lake_polars.polars_schema(FLAG)
    assert flags.columns == [c.name for c in FLAG.columns if c.name != "date"]
    assert flags.select(list(written)).rows() == [
        ("goip", "msisdn", "+8613900000001", 1.0, "box"),
        ("congestion", "cell", "4100-1", 0.5, "den-like"),
    ]
    assert all(flags[name].null_count() == 2 for name in flags.columns if name not in written)
    assert lake_polars.read_day(config, FLAG, DAY, ["score", "entity_id"]).rows() == [
        (1.0, "+8613900000001"),
        (0.5, "4100-1"),
    ]
    assert lake_polars.has_day(config, FLAG, DAY) and not lake_polars.has_day(config, FLAG, DAY + dt.timedelta(1))
    empty = lake_polars.read_day(config, FLAG, DAY + dt.timedelta(days=1))
    assert empty.height == 0 and empty.schema == flags.schema


def test_evaluate_reads_its_flags_through_the_same_reader(tmp_path):
    from simulator.evaluate import read_flags

    config = config_in(tmp_path)
    with pytest.raises(CdrwatchError, match=r"flags/date=2026-11-20: no flags for 2026-11-20 \(run cdrwatch detect"):
        read_flags(config, DAY)
    (tmp_path / "lake" / "flags" / "date=2026-11-20").mkdir(parents=True)
    assert read_flags(config, DAY).schema == {
        "detector": pl.String,
        "entity_type": pl.String,
        "entity_id": pl.String,
        "score": pl.Float64,
    }


def test_a_lazy_scan_takes_only_the_asked_dates_and_its_partitions_from_the_folders(tmp_path):
    config = config_in(tmp_path)
    for day, carrier, numbers in (
        (DAY, "cm", ["+861"]),
        (DAY, "cu", ["+862", "+863"]),
        (DAY - dt.timedelta(days=1), "cm", ["+864"]),
    ):
        write_parquet(
            tmp_path / "lake" / "cdr" / f"date={day}" / f"carrier={carrier}" / "part-0.parquet",
            {"msisdn": pa.array(numbers)},
        )
    scan = lake_polars.scan_days(config, CDR, [DAY])
    rows = scan.select("date", "carrier", "msisdn").collect().sort("msisdn")
    assert rows.rows() == [(DAY, "cm", "+861"), (DAY, "cu", "+862"), (DAY, "cu", "+863")]
    assert lake_polars.scan_days(config, CDR, [DAY + dt.timedelta(days=1)]) is None


# ---------------------------------------------------------------- run summaries


def test_a_run_summary_round_trips_where_the_steps_look_for_it(tmp_path):
    config = config_in(tmp_path)
    assert summaries.read_summary(config, "ingest", DAY) is None
    document = {"date": "2026-11-20", "carriers": {"cm": {"accepted": 3}}, "warnings": ["ct: no files"]}
    path = summaries.write_summary(config, "ingest", DAY, document)
    assert path == tmp_path / "lake" / "_runs" / "ingest" / "date=2026-11-20" / "summary.json"
    assert layout.run_dir(config, "ingest", DAY) == path.parent
    assert json.loads(path.read_text(encoding="utf-8")) == document
    assert summaries.read_summary(config, "ingest", DAY) == document
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(
        CdrwatchError,
        match=r"summary.json: unreadable ingest summary .*; rerun cdrwatch ingest "
        r"--date 2026-11-20$",
    ):
        summaries.read_summary(config, "ingest", DAY)


# ---------------------------------------------------------------- one inventory reader, one policy


def test_a_missing_inventory_is_an_error_for_detect_and_a_warning_in_the_report(tmp_path):
    from jobs.report import data

    config = config_in(tmp_path)
    (tmp_path / "landing" / "cells").mkdir(parents=True)
    (tmp_path / "landing" / "cells" / "cm.csv").write_text(
        "cell_id,lat,lon,site_name,district\n4100-1,30.6,104.0,a,锦江区\n", encoding="utf-8"
    )
    missing = tmp_path / "landing" / "cells" / "ct.csv"
    with pytest.raises(inventory.MissingInventory, match=rf"^{missing}: cell inventory of carrier ct is missing$"):
        inventory.read_cells(config)
    warnings = []
    assert data.read_cells(config, warnings)["cell_id"].to_list() == ["4100-1"]
    assert warnings == [
        f"{missing}: cell inventory of carrier ct is missing; its cells are left out of the report",
        f"{tmp_path / 'landing' / 'cells' / 'cu.csv'}: cell inventory of carrier cu is missing; "
        f"its cells are left out of the report",
    ]


# ---------------------------------------------------------------- one site clustering


def moved(lat: float, lon: float, north_m: float) -> tuple[float, float]:
    return lat + north_m / 111_195.0, lon


def test_two_carriers_cells_20_m_apart_are_one_site_500_m_apart_two():
    near = moved(30.6, 104.0, 20)
    far = moved(30.6, 104.0, 500)
    cells = [
        ("cu", "460-01-1-1", *near, "联通锦江站"),
        ("cm", "4100-1", 30.6, 104.0, None),
        ("cm", "4100-2", *far, "武侯站"),
    ]
    sites = site_of_cells(cells)
    assert sites[0] == sites[1] != sites[2]
    mast = sites[1]
    assert mast == CellSite(0, f"S{(30.6 + near[0]) / 2:.4f},104.0000", mast.site_lat, 104.0, "4100-1")
    assert mast.site_lat == pytest.approx((30.6 + near[0]) / 2)  # the mean of its cells
    assert sites[2] == CellSite(1, f"S{far[0]:.4f},104.0000", far[0], 104.0, "武侯站")
    assert site_of_cells(list(reversed(cells))) == list(reversed(sites))  # the input order does not matter
    assert site_of_cells([]) == []


def test_the_report_places_cells_on_the_sites_detect_uses(tmp_path):
    from jobs.report import data

    frame = pl.DataFrame(
        [
            ("cm", "4100-1", 30.6, 104.0, "锦江站", "锦江区"),
            ("cu", "460-01-1-1", *moved(30.6, 104.0, 20), None, "锦江区"),
        ],
        schema=data.CELL_SCHEMA,
        orient="row",
    )
    located = data.cell_sites(frame)
    expected = site_of_cells(frame.select("carrier", "cell_id", "lat", "lon", "site_name").rows())
    assert located.select("site", "site_key", "site_lat", "site_lon", "site_label").rows() == [
        tuple(site) for site in expected
    ]
