"""`cdrwatch export`: hand-built dens and victims in a tmp lake -> the outbox CSV contract."""

import csv
import datetime as dt
import re

import pytest

from jobs.export import LEAD_FILE_COLUMNS, export_date, safe_text
from jobs.io.lake_spark import replace_date
from jobs.numbers import national
from schemas.tables import DEN, LEAD_COLUMNS, VICTIMS, WARNING_FILE_COLUMNS

DAY = dt.date(2026, 11, 20)
UTC = dt.timezone.utc
BOM = b"\xef\xbb\xbf"

CELLS = {
    "cm": [("cm-1", 30.64, 104.04, "武侯祠站", "武侯区"), ("cm-2", 30.66, 104.08, "春熙路站", "锦江区")],
    "cu": [("cu-1", 30.64, 104.04, "武侯祠站", "武侯区"), ("cu-2", 30.67, 104.06, "人民公园站", "青羊区")],
    "ct": [("ct-1", 30.66, 104.08, "春熙路站", "锦江区")],
}


def _den(den_id, priority, score, district, lat, lon, numbers, evidence="sequential dialling", **extra):
    row = dict(
        den_id=den_id,
        score=score,
        priority=priority,
        district=district,
        lat=lat,
        lon=lon,
        radius_m=312.4,
        numbers=numbers,
        imeis=["86000000000001", "86000000000002"],
        cells=["cm-1", "cu-1"],
        site_names=["武侯祠站"],
        active_hours="09-12;14-18",
        first_seen=DAY - dt.timedelta(days=2),
        last_seen=DAY,
        nights_active=3,
        n_calls=1234,
        n_distinct_callees=900,
        n_victims=2,
        signals=["goip", "sequential"],
        evidence=evidence,
        segments=["1391234"],
        date=DAY,
        last_visit=None,
        last_outcome=None,
        related_to=[],
        suppressed=None,
    )
    row.update(extra)
    return tuple(row[c] for c in DEN.names)


DENS = [
    _den(
        "den-a",
        "high",
        0.9,
        "武侯区",
        30.641234567,
        104.043,
        ["+8613900000001", "+862885551234", "+85512345678"],
        evidence="=HYPERLINK(\"http://x\")",
    ),
    _den("den-g", "high", 0.8, "武侯区", 30.642, 104.044, ["+8613900000007"]),
    _den("den-c", "low", 0.95, "武侯区", 30.643, 104.045, ["+8613900000009", "+8613900000003"]),
    _den("den-b", "medium", 0.5, "锦江区", -33.8651, -151.2099, ["+8613900000002"], evidence="-5 calls a minute"),
    _den("den-d", "high", 0.99, "锦江区", 30.66, 104.08, ["+8613900000009"]),  # whitelisted only
    _den("den-e", "medium", 0.6, None, None, None, ["+8613900000005"]),  # no position
    _den("den-f", "medium", 0.7, "锦江区", 30.661, 104.081, ["+85512340000", "+66812345678"]),  # foreign only
]

VICTIM_ROWS = [
    ("+8613811112222", "武侯区", "den-a", dt.datetime(2026, 11, 20, 1, 30, tzinfo=UTC), 300, 3, DAY),
    ("+862887654321", "武侯区", "den-a", dt.datetime(2026, 11, 20, 2, 0, 5, tzinfo=UTC), 200, 1, DAY),
    ("+8613811113333", "锦江区", "den-b", dt.datetime(2026, 11, 19, 23, 59, 59, tzinfo=UTC), 600, 2, DAY),
    ("+8613811114444", "锦江区", "den-d", dt.datetime(2026, 11, 20, 3, 0, tzinfo=UTC), 400, 1, DAY),  # den dropped
]


def _landing(root):
    (root / "cells").mkdir(parents=True)
    for carrier, rows in CELLS.items():
        with open(root / "cells" / f"{carrier}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["cell_id", "lat", "lon", "site_name", "district"])
            w.writerows(rows)
    (root / "whitelist.csv").write_text("number,owner\n13900000009,bank call centre\n", encoding="utf-8")


@pytest.fixture(scope="module")
def lake_config(tmp_path_factory, test_config, spark):
    root = tmp_path_factory.mktemp("export")
    _landing(root / "landing")
    config = test_config.with_paths(landing=root / "landing", lake=root / "lake", outbox=root / "outbox")
    replace_date(config, DEN, DAY, spark.createDataFrame(DENS, DEN.spark()), sort_by=("den_id",))
    replace_date(
        config, VICTIMS, DAY, spark.createDataFrame(VICTIM_ROWS, VICTIMS.spark()), sort_by=("den_id", "number")
    )
    return config


@pytest.fixture(scope="module")
def exported(lake_config, spark):
    summary = export_date(lake_config, DAY, spark=spark)
    return lake_config.paths.outbox / DAY.isoformat(), summary


def _read(path, header):
    raw = path.read_bytes()
    assert raw.startswith(BOM), path
    rows = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    assert rows[0] == list(header), path
    for row in rows[1:]:
        assert len(row) == len(header), (path, row)
        for cell in row:
            assert not (cell[:1] in ("=", "+", "-", "@", "\t", "\r") and not re.fullmatch(r"[+-]?\d+(\.\d+)?", cell)), (
                cell
            )
    return [dict(zip(header, r)) for r in rows[1:]]


def test_national_format_and_injection_rules():
    assert national("+8613912345678") == "13912345678"
    assert national("+862885551234") == "02885551234"
    assert national("+861012345678") == "01012345678"
    assert national("+85512345678") == "0085512345678"
    assert national("95555") == "95555"
    assert safe_text("=1+1") == "'=1+1"
    assert safe_text("-x") == "'-x"
    assert safe_text("@a") == "'@a"
    assert safe_text("\tx") == "'\tx"
    assert safe_text("a\nb") == "a b"
    assert safe_text("ok") == "ok"


def test_one_file_per_district_with_only_its_dens(exported):
    out, summary = exported
    assert summary["partial_reasons"] == [] and summary["missing_carriers"] == []
    assert not (out / "PARTIAL.txt").exists()
    assert summary["district_files"] == {d: f"leads/{d}.csv" for d in ("武侯区", "锦江区", "青羊区")}
    assert sorted(p.name for p in (out / "leads").iterdir()) == sorted(
        f"{d}.{ext}" for d in ("武侯区", "锦江区", "青羊区") for ext in ("csv", "xlsx")
    )
    for path in (out / "leads").glob("*.csv"):
        for row in _read(path, LEAD_FILE_COLUMNS):
            assert row["district"] == path.stem
    assert _read(out / "leads" / "青羊区.csv", LEAD_FILE_COLUMNS) == []
    assert (out / "leads" / "青羊区.csv").read_bytes() == BOM + (",".join(LEAD_FILE_COLUMNS) + "\r\n").encode()
    assert [r["den_id"] for r in _read(out / "leads" / "武侯区.csv", LEAD_FILE_COLUMNS)] == ["den-a", "den-g", "den-c"]
    assert [r["den_id"] for r in _read(out / "leads" / "锦江区.csv", LEAD_FILE_COLUMNS)] == ["den-b"]
    assert summary["dens"] == {"武侯区": 3, "锦江区": 1, "青羊区": 0}
    assert summary["high"] == {"武侯区": 2, "锦江区": 0, "青羊区": 0}
    assert summary["warnings"] == 3


def test_lead_cells(exported):
    out, _ = exported
    a, _, c = _read(out / "leads" / "武侯区.csv", LEAD_FILE_COLUMNS)
    assert a["numbers"] == "0085512345678;13900000001;02885551234"  # sorted by E.164
    assert set(a["numbers"].split(";")) == {"13900000001", "02885551234", "0085512345678"}
    assert a["n_numbers"] == "3"
    assert a["imeis"] == "86000000000001;86000000000002" and a["n_imeis"] == "2"
    assert a["cells"] == "cm-1;cu-1" and a["signals"] == "goip;sequential"
    assert a["evidence"] == "'=HYPERLINK(\"http://x\")"
    assert (a["lat"], a["lon"], a["radius_m"], a["score"]) == ("30.641235", "104.043000", "312", "0.900")
    assert (a["first_seen"], a["last_seen"], a["nights_active"]) == ("2026-11-18", "2026-11-20", "3")
    assert a["active_hours"] == "09-12;14-18"
    # whitelisted number dropped from den-c, n_numbers follows
    assert (c["numbers"], c["n_numbers"]) == ("13900000003", "1")
    (b,) = _read(out / "leads" / "锦江区.csv", LEAD_FILE_COLUMNS)
    assert (b["lat"], b["lon"]) == ("-33.865100", "-151.209900")  # negative coordinates stay numbers
    assert b["evidence"] == "'-5 calls a minute"


def test_whitelisted_numbers_never_in_leads(exported):
    out, summary = exported
    for path in (out / "leads").glob("*.csv"):
        for row in _read(path, LEAD_FILE_COLUMNS):
            assert "13900000009" not in row["numbers"].split(";")
            assert row["den_id"] != "den-d"
    assert summary["dropped_whitelisted_dens"] == 1


def test_unlocated_dens_go_to_analysts(exported):
    out, summary = exported
    rows = _read(out / "analysts" / "unlocated_dens.csv", (*LEAD_COLUMNS, "reason"))
    assert {r["den_id"]: r["reason"] for r in rows} == {"den-e": "no position", "den-f": "only foreign numbers"}
    assert summary["unlocated"] == 2


def test_warnings(exported):
    out, _ = exported
    rows = _read(out / "warnings.csv", WARNING_FILE_COLUMNS)
    assert [tuple(r.values()) for r in rows] == [
        ("02887654321", "武侯区", "den-a", "2026-11-20 10:00:05", "200", "1", "den den-a"),
        ("13811112222", "武侯区", "den-a", "2026-11-20 09:30:00", "300", "3", "den den-a"),
        ("13811113333", "锦江区", "den-b", "2026-11-20 07:59:59", "600", "2", "den den-b"),
    ]


def _workbook_rows(path):
    from openpyxl import load_workbook

    sheet = load_workbook(path, read_only=True).active
    return [[(cell.value, cell.data_type) for cell in row] for row in sheet.iter_rows()]


def test_every_csv_has_a_workbook_twin_with_the_same_values(exported):
    """Every cell: the same text (the CSV's formula quote is the workbook's quote prefix), numbers
    equal as numbers. tests/test_export_xlsx.py does the same on trickier values without Spark."""
    from openpyxl import load_workbook

    out, _ = exported
    csvs = sorted(out.rglob("*.csv"))
    assert len(csvs) == 7
    for path in csvs:
        text_rows = list(csv.reader(path.read_bytes().decode("utf-8-sig").splitlines()))
        book = load_workbook(path.with_suffix(".xlsx"))
        assert book.sheetnames == ["cdrwatch"]
        book_rows = list(book.active.iter_rows())
        assert len(book_rows) == len(text_rows), path
        for text_row, cells in zip(text_rows, book_rows):
            for text, cell in zip(text_row, cells, strict=True):
                if cell.value is None:
                    assert text == ""
                elif cell.data_type == "n":
                    assert float(text) == cell.value, (path, text, cell.value)
                else:
                    assert text == ("'" if cell.quotePrefix else "") + cell.value, (path, text, cell.value)


def test_workbook_keeps_numbers_and_imeis_as_text(exported):
    """What a CSV loses on double-click in Excel/WPS (IMEI -> 8.6E+13, 0288... -> 288...) stays
    text in the workbook; counts and coordinates stay numbers; no quote prefix is needed."""
    out, _ = exported
    header, a, g, _ = _workbook_rows(out / "leads" / "武侯区.xlsx")
    names = [name for name, _ in header]
    cell = dict(zip(names, a))
    assert cell["imeis"] == ("86000000000001;86000000000002", "s")
    assert cell["numbers"] == ("0085512345678;13900000001;02885551234", "s")
    assert cell["evidence"] == ("=HYPERLINK(\"http://x\")", "s")  # text, never a formula
    assert cell["n_imeis"] == (2, "n") and cell["score"] == (0.9, "n")
    assert cell["lat"] == (30.641235, "n")  # as rounded in the CSV
    assert dict(zip(names, g))["numbers"] == ("13900000007", "s")  # a one-number den too
    header, first, *_ = _workbook_rows(out / "warnings.xlsx")
    assert dict(zip([name for name, _ in header], first))["number"] == ("02887654321", "s")


def test_chinese_headers(lake_config, spark, tmp_path):
    config = lake_config.model_copy(
        update={
            "export": lake_config.export.model_copy(update={"chinese_headers": True}),
            "paths": lake_config.paths.model_copy(update={"outbox": tmp_path}),
        }
    )
    export_date(config, DAY, spark=spark)
    header = (tmp_path / DAY.isoformat() / "leads" / "武侯区.csv").read_bytes().decode("utf-8-sig").splitlines()[0]
    assert header.split(",")[:4] == ["窝点编号", "优先级", "评分", "辖区"]
    assert header.split(",")[len(LEAD_COLUMNS) - 1] == "证据" and len(header.split(",")) == len(LEAD_FILE_COLUMNS)
    assert header.split(",")[-5:] == ["走访日期", "核查结果", "备注", "查获号码", "查获设备IMEI"]


def test_rerun_is_byte_identical_and_leaves_no_temp(lake_config, exported, spark):
    out, _ = exported
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    export_date(lake_config, DAY, spark=spark)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert before == after
    assert [p.name for p in out.parent.iterdir()] == [DAY.isoformat()]


def test_partial_night_writes_its_reasons(lake_config, spark, tmp_path):
    import json

    from jobs.io.layout import run_summary_path

    config = lake_config.with_paths(outbox=tmp_path)
    summary_path = run_summary_path(config, "ingest", DAY)
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(
        json.dumps(
            {
                "missing_carriers": ["cu"],
                "partial_reasons": ["cu: no files for 2026-11-20", "cm: volume suspect: 120 rows, median 5,000"],
            }
        ),
        encoding="utf-8",
    )
    try:
        result = export_date(config, DAY, spark=spark)
    finally:
        summary_path.unlink()
    assert result["missing_carriers"] == ["cu"]
    assert result["partial_reasons"] == ["cu: no files for 2026-11-20", "cm: volume suspect: 120 rows, median 5,000"]
    assert (tmp_path / DAY.isoformat() / "PARTIAL.txt").read_text(encoding="utf-8").splitlines()[1:] == result[
        "partial_reasons"
    ]
    assert str(tmp_path / DAY.isoformat() / "PARTIAL.txt") in result["files"]


def test_missing_dens_is_one_clear_error(lake_config, spark):
    from jobs.errors import CdrwatchError

    with pytest.raises(CdrwatchError, match="run cdrwatch dens first"):
        export_date(lake_config, DAY + dt.timedelta(days=1), spark=spark)
