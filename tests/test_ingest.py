"""jobs.ingest: a tiny landing zone in, lake partitions and a reconciled run summary out."""

import datetime as dt
import gzip
import json
import os
import shutil

import pyarrow.parquet as pq
import pytest
from builders import CN_HEADER, cn, config_for, pipe

from jobs import ingest as ingest_module
from jobs.errors import CdrwatchError
from jobs.ingest import Counts, IngestReport, read_lines, run_ingest
from jobs.io import lake_spark, layout, swap
from jobs.io.lake_spark import read_partition
from schemas.tables import CDR, QUARANTINE

DAY = dt.date(2026, 11, 20)


def make_landing(root):
    """cm (cn_csv): a duplicate inside a.csv and one across files, three bad rows.
    cu (pipe_gbk, CRLF): a.txt and an identical resend. ct: nothing delivered (late)."""
    cm, cu = root / "cm" / DAY.isoformat(), root / "cu" / DAY.isoformat()
    cm.mkdir(parents=True)
    cu.mkdir(parents=True)
    (cm / "a.csv").write_bytes(
        b"\xef\xbb\xbf"
        + "\n".join(
            [
                CN_HEADER,
                cn("CM1", msisdn="13900000002", when="2026-11-20 09:00:00"),  # 2
                cn("CM2", msisdn="+8613900000001"),  # 3
                cn("CM3", when="2026-11-20 8:00"),  # 4 bad timestamp
                cn("CM4", when="2026-11-19 23:59:59"),  # 5 the day before: routed
                cn("CM1", msisdn="13900000002", when="2026-11-20 09:00:00"),  # 6 duplicate
            ]
        ).encode()
        + b"\n"
    )
    (cm / "b.csv.gz").write_bytes(
        gzip.compress(
            "\n".join(
                [
                    CN_HEADER,
                    cn("CM2", msisdn="+8613900000001"),  # 2 duplicate of a.csv:3
                    cn("CM5", msisdn="13900000001", when="2026-11-20 07:00:00"),  # 3
                ]
            ).encode()
            + b"\n"
            + b"CM6,139\xff\xfe\n"
        )
    )  # 4 undecodable
    (cm / "readme.md").write_text("not a CDR file")
    gbk = "\r\n".join([pipe("CU1"), pipe("CU2", msisdn="13010731370"), pipe("CU3", direction="9")]).encode("gbk")
    (cu / "a.txt").write_bytes(gbk + b"\r\n")
    (cu / "a_resend.txt").write_bytes(gbk + b"\r\n")


def snapshot(config, spark):
    """Every row of the day in both tables, sorted: what 'the same rows' means."""
    return {
        t.name: sorted(tuple(r) for r in read_partition(config, spark, t, DAY).collect()) for t in (CDR, QUARANTINE)
    }


@pytest.fixture(scope="module")
def ingested(spark, tmp_path_factory):
    """One ingest of the standard landing; tests that change the lake work on a copy."""
    tmp = tmp_path_factory.mktemp("ingest")
    make_landing(tmp / "landing")
    config = config_for(tmp)
    return tmp, run_ingest(config, DAY, spark)


@pytest.fixture
def copy_of(ingested, tmp_path):
    """A private copy of the ingested landing and lake, and its config."""
    source, _ = ingested
    shutil.copytree(source / "landing", tmp_path / "landing")
    shutil.copytree(source / "lake", tmp_path / "lake")
    return config_for(tmp_path)


def test_counts_per_file_and_carrier(ingested):
    _, report = ingested
    files = {(c, name): counts for c, by_file in report.files.items() for name, counts in by_file.items()}
    assert files == {
        ("cm", "cm/2026-11-20/a.csv"): Counts(
            read=5, accepted=2, duplicates=1, routed=1, quarantined={"bad timestamp": 1}
        ),
        ("cm", "cm/2026-11-20/b.csv.gz"): Counts(
            read=3, accepted=1, duplicates=1, quarantined={"undecodable bytes": 1}
        ),
        ("cu", "cu/2026-11-20/a.txt"): Counts(read=3, accepted=2, quarantined={"unknown direction": 1}),
        ("cu", "cu/2026-11-20/a_resend.txt"): Counts(read=3, duplicates=2, quarantined={"unknown direction": 1}),
    }
    assert report.carriers["cm"] == Counts(
        read=8, accepted=3, duplicates=2, routed=1, quarantined={"bad timestamp": 1, "undecodable bytes": 1}
    )
    assert report.carriers["cu"] == Counts(read=6, accepted=2, duplicates=2, quarantined={"unknown direction": 2})
    assert report.warnings == [
        "cm: ignored 1 file(s) not named *.csv or *.csv.gz: readme.md",
        "ct: no files for 2026-11-20 — late?",
        "1 record(s) of 2026-11-19 were delivered in the folders of 2026-11-20: kept in "
        "lake/routed; they join lake/cdr when 2026-11-19 is ingested "
        "(rerun: cdrwatch nightly --date 2026-11-19)",
    ]
    assert report.partial_reasons == ["ct: no files for 2026-11-20"]


def test_summary_json_is_the_report(ingested):
    tmp, report = ingested
    summary = json.loads((tmp / "lake" / "_runs" / "ingest" / "date=2026-11-20" / "summary.json").read_text())
    assert summary == json.loads(json.dumps(report.as_dict()))
    assert summary["carriers"]["cm"]["accepted"] == 3 and summary["carriers"]["cm"]["files"] == 2


def test_accepted_rows_in_the_lake(ingested, spark):
    tmp, _ = ingested
    config = config_for(tmp)
    cm = read_partition(config, spark, "cdr", DAY, "cm")
    assert cm.columns == CDR.names
    rows = {r.record_id: r for r in cm.collect()}
    assert set(rows) == {"CM1", "CM2", "CM5"}
    assert (rows["CM2"].source_file, rows["CM2"].source_line) == ("cm/2026-11-20/a.csv", 3)  # first wins
    assert (rows["CM1"].msisdn, rows["CM1"].other_party, rows["CM1"].carrier, rows["CM1"].date) == (
        "+8613900000002",
        "+862885551234",
        "cm",
        DAY,
    )
    cu = read_partition(config, spark, CDR, DAY, "cu").collect()
    assert sorted((r.record_id, r.source_file, r.source_line) for r in cu) == [
        ("CU1", "cu/2026-11-20/a.txt", 1),
        ("CU2", "cu/2026-11-20/a.txt", 2),
    ]
    assert read_partition(config, spark, CDR, DAY).count() == 5
    assert read_partition(config, spark, CDR, DAY, "ct").count() == 0  # nothing delivered: empty, no error


def test_quarantine_keeps_raw_text_and_reason(ingested, spark):
    tmp, _ = ingested
    rows = read_partition(config_for(tmp), spark, QUARANTINE, DAY, "cm").collect()
    assert sorted((r.source_file, r.source_line, r.reason, r.date) for r in rows) == [
        ("cm/2026-11-20/a.csv", 4, "bad timestamp", DAY),
        ("cm/2026-11-20/b.csv.gz", 4, "undecodable bytes", DAY),
    ]
    assert {r.raw for r in rows} >= {cn("CM3", when="2026-11-20 8:00"), "CM6,139\ufffd\ufffd"}


def test_files_are_sorted_by_msisdn_and_time_and_sized_by_rows_per_file(spark, tmp_path):
    make_landing(tmp_path / "landing")
    config = config_for(tmp_path, **{"ingest.rows_per_file": 2})
    run_ingest(config, DAY, spark)
    for carrier, expected_rows in (("cm", 3), ("cu", 2)):
        files = sorted(layout.partition_path(config, CDR, DAY, carrier).glob("*.parquet"))
        tables = [pq.read_table(f) for f in files]
        assert all(t.num_rows <= 2 for t in tables) and sum(t.num_rows for t in tables) == expected_rows
        keys = [k for t in tables for k in zip(t.column("msisdn").to_pylist(), t.column("start_time").to_pylist())]
        assert keys == sorted(keys)  # files in name order continue each other's order


def test_rerun_gives_the_same_rows(ingested, copy_of, spark):
    before = snapshot(copy_of, spark)
    run_ingest(copy_of, DAY, spark)
    assert snapshot(copy_of, spark) == before
    assert not (copy_of.paths.lake / "_staging").exists()


def test_failure_while_writing_leaves_the_previous_partition(copy_of, spark, monkeypatch):
    before = snapshot(copy_of, spark)
    (copy_of.paths.landing / "cm" / "2026-11-20" / "c.csv").write_text(f"{CN_HEADER}\n{cn('CM9')}\n")
    real_write = lake_spark.DayWrite.write

    def crash_on_quarantine(self, table, *args, **kwargs):
        if table is QUARANTINE:
            raise RuntimeError("disk full")
        return real_write(self, table, *args, **kwargs)

    monkeypatch.setattr(lake_spark.DayWrite, "write", crash_on_quarantine)
    with pytest.raises(RuntimeError, match="disk full"):
        run_ingest(copy_of, DAY, spark)
    assert snapshot(copy_of, spark) == before
    assert not (copy_of.paths.lake / "_staging").exists()


@pytest.mark.slow
def test_failure_during_the_swap_rolls_back(copy_of, spark, monkeypatch):
    before = snapshot(copy_of, spark)
    (copy_of.paths.landing / "cm" / "2026-11-20" / "c.csv").write_text(f"{CN_HEADER}\n{cn('CM9')}\n")
    real_rename, calls = os.rename, []

    def rename_failing_once(src, dst):
        calls.append(src)
        if len(calls) == 5:  # cdr/cm and cdr/cu swapped, quarantine/cm moved aside
            raise OSError("device gone")
        return real_rename(src, dst)

    monkeypatch.setattr(swap.os, "rename", rename_failing_once)
    with pytest.raises(OSError, match="device gone"):
        run_ingest(copy_of, DAY, spark)
    monkeypatch.undo()
    assert snapshot(copy_of, spark) == before
    run_ingest(copy_of, DAY, spark)  # and the next run goes through
    assert "CM9" in {r.record_id for r in read_partition(copy_of, spark, CDR, DAY, "cm").collect()}


def test_written_rows_are_reconciled_before_the_swap(copy_of, spark, monkeypatch):
    before = snapshot(copy_of, spark)
    real = ingest_module.accepted_rows
    monkeypatch.setattr(ingest_module, "accepted_rows", lambda rows: real(rows).filter("record_id != 'CM5'"))
    with pytest.raises(CdrwatchError, match=r"cm/2026-11-20/b.csv.gz: written rows do not match"):
        run_ingest(copy_of, DAY, spark)
    assert snapshot(copy_of, spark) == before


def test_a_file_whose_header_does_not_match_is_quarantined_whole_and_the_night_is_partial(spark, tmp_path):
    folder = tmp_path / "landing" / "cm" / DAY.isoformat()
    folder.mkdir(parents=True)
    (folder / "x.csv").write_text(CN_HEADER.replace("IMEI", "IMEI号") + "\n" + cn("CM1") + "\n")
    (folder / "y.csv").write_text(CN_HEADER + "\n" + cn("CM2") + "\n")
    report = run_ingest(config_for(tmp_path), DAY, spark)
    assert report.files["cm"]["cm/2026-11-20/x.csv"] == Counts(
        read=2, quarantined={"file header does not match the format": 2}
    )
    assert report.files["cm"]["cm/2026-11-20/y.csv"] == Counts(read=1, accepted=1)
    assert any(w.startswith("cm/2026-11-20/x.csv: header does not match: expected '话单标识") for w in report.warnings)
    assert (
        "cm: cm/2026-11-20/x.csv: header does not match the format; its rows are in quarantine"
        in report.partial_reasons
    )
    assert [r.record_id for r in read_partition(config_for(tmp_path), spark, CDR, DAY, "cm").collect()] == ["CM2"]


def test_a_truncated_gzip_keeps_the_lines_before_the_damage(spark, tmp_path):
    folder = tmp_path / "landing" / "cm" / DAY.isoformat()
    folder.mkdir(parents=True)
    whole = (CN_HEADER + "\n" + "".join(cn(f"CM{i}") + "\n" for i in range(400))).encode()
    (folder / "x.csv.gz").write_bytes(gzip.compress(whole)[:-300])
    report = run_ingest(config_for(tmp_path), DAY, spark)
    counts = report.files["cm"]["cm/2026-11-20/x.csv.gz"]
    assert counts.balanced and 0 < counts.accepted < 400
    assert counts.read == report.facts["cm/2026-11-20/x.csv.gz"].lines - 1
    assert counts.quarantined in ({}, {"line cut by a damaged gzip": 1})
    assert any("x.csv.gz is damaged" in r for r in report.partial_reasons)
    assert read_partition(config_for(tmp_path), spark, CDR, DAY, "cm").count() == counts.accepted


def test_no_landing_folder_is_an_error(spark, tmp_path):
    with pytest.raises(CdrwatchError, match="landing folder does not exist"):
        run_ingest(config_for(tmp_path), DAY, spark)


def test_nothing_delivered_is_a_warning_per_carrier(spark, tmp_path):
    (tmp_path / "landing").mkdir()
    report = run_ingest(config_for(tmp_path), DAY, spark)
    assert report.warnings == [f"{c}: no files for 2026-11-20 — late?" for c in ("cm", "cu", "ct")]
    assert report.files == {}
    assert (tmp_path / "lake" / "_runs" / "ingest" / "date=2026-11-20" / "summary.json").is_file()


def test_line_numbers_survive_split_files(spark, tmp_path):
    """An uncompressed file is read in several splits; every line still gets its own number."""
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "big.txt").write_text("".join(f"{i}|{'x' * (i % 50)}\n" for i in range(1, 3001)))
    (landing / "small.txt").write_text("1\n2\n3")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "8192")
    try:
        assert spark.read.text(str(landing / "big.txt")).rdd.getNumPartitions() > 5
        lines = read_lines(spark, [landing / "big.txt", landing / "small.txt"], landing)
        got = [(r.source_file, r.source_line, int(bytes(r.bytes).split(b"|")[0])) for r in lines.collect()]
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    assert len(got) == 3003
    assert all(line == number for _, line, number in got)


def test_unbalanced_counts_fail_the_run():
    report = IngestReport(
        DAY,
        formats={"cm": "cn_csv"},
        files={"cm": {"cm/x.csv": Counts(read=3, accepted=1, quarantined={"bad timestamp": 1})}},
    )
    with pytest.raises(CdrwatchError, match=r"^cm/x.csv: rows do not add up on 2026-11-20: read 3 != accepted 1"):
        report.check_balanced()


def test_report_table_has_a_line_per_file_and_carrier(ingested):
    _, report = ingested
    table = report.table()
    assert table.row_count == 4 + 2
    assert "late?" in table.caption


@pytest.mark.slow
def test_ingest_date_validates_every_written_partition(copy_of, spark):
    from rich.console import Console

    from jobs.render import ingest_view

    report = ingest_module.ingest_date(copy_of, DAY, spark=spark)
    console = Console(record=True, width=200)
    for renderable in ingest_view(report):
        console.print(renderable)
    assert set(report.files) == {"cm", "cu"}
    runs = copy_of.paths.lake / "_runs" / "ingest" / "date=2026-11-20"
    for carrier in ("cm", "cu"):
        assert json.loads((runs / f"validation_{carrier}.json").read_text())["success"] is True
    assert "cm: validation passed" in console.export_text()
