"""Field feedback without Spark: reading returned files (CSV in UTF-8/GBK, the lead workbook), the
lake's feedback and hotlist, what the field history does to tonight's dens, and where export puts a
suppressed den."""

import datetime as dt
import io

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook

from jobs.cli import main
from jobs.config import load_config
from jobs.dens.field import with_field_history
from jobs.errors import CdrwatchError
from jobs.export import LEAD_FILE_COLUMNS, build_outbox
from jobs.feedback.read import parse_file, read_number
from jobs.feedback.store import (
    Cleared,
    build_hotlist,
    field_history,
    import_files,
    latest_visits,
    pending_files,
    read_feedback,
    read_hotlist,
)
from schemas.tables import DEN

DAY = dt.date(2026, 11, 20)
TODAY = dt.date(2026, 11, 30)
KNOWN = {"D20261120-01", "D20261120-02", "D20261120-03"}
HEADER = "den_id,visited_on,outcome,notes,numbers_seized,imeis_seized\r\n"


def _den(den_id, **extra):
    row = dict(
        den_id=den_id,
        score=0.9,
        priority="high",
        district="武侯区",
        lat=30.64,
        lon=104.04,
        radius_m=120.0,
        numbers=["+8613900000001", "+8613900000002", "+8613900000003"],
        imeis=["862718056568276"],
        cells=["cm-1"],
        site_names=["武侯祠站"],
        active_hours="09-12",
        first_seen=DAY,
        last_seen=DAY,
        nights_active=1,
        n_calls=500,
        n_distinct_callees=480,
        n_victims=1,
        signals=["goip"],
        evidence="3 SIMs and 1 GOIP device",
        segments=[],
        date=DAY,
        last_visit=None,
        last_outcome=None,
        related_to=[],
        suppressed=None,
    )
    row.update(extra)
    return row


@pytest.fixture
def config(tmp_path):
    """A lake with three dens on DAY (written as Spark would: lake/dens/date=D/part.parquet)."""
    lake = tmp_path / "lake"
    folder = lake / "dens" / f"date={DAY}"
    folder.mkdir(parents=True)
    rows = [
        _den("D20261120-01"),
        _den(
            "D20261120-02",
            numbers=["+8613800000001", "+8613800000002"],
            imeis=["354204096730718"],
            lat=30.70,
            lon=104.10,
        ),
        _den("D20261120-03", numbers=["+8613700000001"], imeis=[]),
    ]
    schema = pa.schema([f for f in DEN.arrow() if f.name != "date"])
    pq.write_table(
        pa.Table.from_pylist([{k: v for k, v in r.items() if k != "date"} for r in rows], schema=schema),
        folder / "part-0.parquet",
    )
    return load_config(
        overrides=[f"paths.lake={lake}", f"paths.landing={tmp_path / 'landing'}", f"paths.outbox={tmp_path / 'outbox'}"]
    )


# ---------------------------------------------------------------- reading returned files


def test_numbers_as_officers_write_them():
    assert read_number("13912345678") == "+8613912345678"
    assert read_number("+86 139-1234-5678") == "+8613912345678"
    assert read_number("008613912345678") == "+8613912345678"
    assert read_number("02885551234") == "+862885551234"
    assert read_number("95588") == "95588"
    assert read_number("abc") is None and read_number("12") is None


def test_a_gbk_csv_with_chinese_outcomes_and_bad_rows_gives_one_line_each_and_keeps_the_good(tmp_path):
    text = (
        HEADER + "D20261120-01,2026/11/21,已打掉,\"查获GOIP\n一台\",13912345678；13912345679,862718056568276\r\n"
        "D20261120-02,2026-11-21,合法,快递柜通知平台,,\r\n"
        "D-NOPE,2026-11-21,raided,,,\r\n"
        "D20261120-03,2026-13-01,confirmed,,,\r\n"
        "D20261120-03,2026-11-21,perhaps,,,\r\n"
        "D20261120-03,2026-12-25,confirmed,,,\r\n"
        "D20261120-03,2026-11-21,raided,,1391234,\r\n"
        "D20261120-03,2026-11-21,raided,,,86271805\r\n"
        "D20261120-03,,,,,\r\n"
        ",,,,,\r\n"
    )
    parsed = parse_file(tmp_path / "回执.csv", text.encode("gbk"), KNOWN, TODAY)
    assert [(v.den_id, v.visited_on, v.outcome, v.source_row) for v in parsed.visits] == [
        ("D20261120-01", dt.date(2026, 11, 21), "raided", 2),
        ("D20261120-02", dt.date(2026, 11, 21), "legitimate", 4),
    ]
    assert parsed.visits[0].numbers_seized == ("+8613912345678", "+8613912345679")
    assert parsed.visits[0].notes == "查获GOIP\n一台"
    name = str(tmp_path / "回执.csv")
    assert parsed.problems == [
        f"{name}:5: unknown den id 'D-NOPE' (no such den in lake/dens)",
        f"{name}:6: visited_on '2026-13-01' is not a date (YYYY-MM-DD)",
        f"{name}:7: unknown outcome 'perhaps' (one of raided, confirmed, not_found, false_lead, legitimate)",
        f"{name}:8: visited_on 2026-12-25 is in the future",
        f"{name}:9: numbers_seized: '1391234' is not a telephone number",
        f"{name}:10: imeis_seized: '86271805' is not an IMEI (14-16 digits)",
    ]
    assert (parsed.rows, parsed.not_visited) == (9, 1)


def test_a_header_without_the_needed_columns_is_one_line(tmp_path):
    with pytest.raises(CdrwatchError, match=r"x\.csv: the header has no column visited_on, outcome"):
        parse_file(tmp_path / "x.csv", "\ufeffden_id,notes\r\nD20261120-01,x\r\n".encode(), KNOWN, TODAY)
    with pytest.raises(CdrwatchError, match=r"x\.xlsx: not a readable \.xlsx workbook"):
        parse_file(tmp_path / "x.xlsx", b"not a zip", KNOWN, TODAY)


def test_the_lead_workbook_comes_back_with_its_last_columns_filled_in(tmp_path):
    """Export's own workbook (outcome drop-down and all), filled in as an officer does in Excel/WPS:
    a date cell, an IMEI typed as a number, the other leads left empty."""
    files, _ = build_outbox(
        [_den("D20261120-01"), _den("D20261120-02")], [], ["武侯区"], set(), timezone="Asia/Shanghai"
    )
    book = load_workbook(io.BytesIO(files["leads/武侯区.xlsx"]))
    sheet = book.worksheets[0]
    header = [c.value for c in sheet[1]]
    assert tuple(header) == LEAD_FILE_COLUMNS
    assert [v.sqref for v in sheet.data_validations.dataValidation] and sheet.data_validations.dataValidation[
        0
    ].formula1 == '"raided,confirmed,not_found,false_lead,legitimate"'
    col = {name: i + 1 for i, name in enumerate(header)}
    sheet.cell(2, col["visited_on"]).value = dt.datetime(2026, 11, 21)
    sheet.cell(2, col["outcome"]).value = "raided"
    sheet.cell(2, col["imeis_seized"]).value = 862718056568276
    buffer = io.BytesIO()
    book.save(buffer)
    parsed = parse_file(tmp_path / "武侯区.xlsx", buffer.getvalue(), KNOWN, TODAY)
    assert [(v.den_id, v.visited_on, v.outcome, v.imeis_seized, v.source_row) for v in parsed.visits] == [
        ("D20261120-01", dt.date(2026, 11, 21), "raided", ("862718056568276",), 2)
    ]
    assert (parsed.problems, parsed.not_visited) == ([], 1)


# ---------------------------------------------------------------- lake/feedback and lake/hotlist


def test_import_is_idempotent_keeps_history_and_builds_the_hotlist(config, tmp_path):
    first = tmp_path / "field_1.csv"
    first.write_bytes(
        (
            "\ufeff" + HEADER + "D20261120-01,2026-11-21,confirmed,布控中,,\r\n"
            "D20261120-02,2026-11-21,legitimate,,,\r\n"
        ).encode()
    )
    (done,) = import_files(config, [first], today=TODAY)
    assert (done.status, done.visits, done.new_visits) == ("imported", 2, 2)
    assert import_files(config, [first], today=TODAY)[0].status == "already imported"
    resaved = tmp_path / "field_1_wps.csv"  # the same visits saved again by WPS (GBK): no new visit
    resaved.write_bytes((HEADER + "D20261120-01,2026-11-21,confirmed,布控中,,\r\n").encode("gbk"))
    assert import_files(config, [resaved], today=TODAY)[0].new_visits == 0
    later = tmp_path / "field_2.csv"
    later.write_text(HEADER + "D20261120-01,2026-11-23,raided,,13911112222,\r\n", encoding="utf-8")
    import_files(config, [later], today=TODAY)

    feedback = read_feedback(config)
    assert feedback.height == 3 and len(list((config.paths.lake / "feedback").glob("*.parquet"))) == 3
    latest = latest_visits(feedback).select("den_id", "visited_on", "outcome").sort("den_id").rows()
    assert latest == [
        ("D20261120-01", dt.date(2026, 11, 23), "raided"),
        ("D20261120-02", dt.date(2026, 11, 21), "legitimate"),
    ]
    assert latest_visits(feedback, before=dt.date(2026, 11, 22)).filter(pl.col("den_id") == "D20261120-01")[
        "outcome"
    ].to_list() == ["confirmed"]

    hotlist = pl.read_parquet(config.paths.lake / "hotlist" / "hotlist.parquet")
    assert set(hotlist["den_id"]) == {"D20261120-01"}  # legitimate puts nothing on it
    by_kind = {k: sorted(g["entity_id"]) for (k,), g in hotlist.group_by("kind")}
    assert by_kind == {
        "msisdn": ["+8613900000001", "+8613900000002", "+8613900000003", "+8613911112222"],
        "imei": ["862718056568276"],
        "site": ["30.640000,104.040000"],
    }
    assert set(hotlist["since"]) == {dt.date(2026, 11, 23)}  # every entity from its latest visit
    assert set(hotlist["expires"]) == {dt.date(2026, 11, 23) + dt.timedelta(days=config.feedback.hotlist_days)}
    assert read_hotlist(config, dt.date(2026, 11, 23)).is_empty()  # not on the night of the visit
    assert read_hotlist(config, dt.date(2026, 11, 24)).height == hotlist.height
    assert read_hotlist(config, dt.date(2027, 6, 1)).is_empty()  # expired


def test_a_hopping_box_puts_only_its_seized_imeis_on_the_hotlist():
    dens = pl.DataFrame(
        [
            dict(
                den_id="D1",
                numbers=["+8613900000001"],
                imeis=[f"86{i:013d}" for i in range(100)],
                lat=None,
                lon=None,
                date=DAY,
            )
        ]
    )
    feedback = pl.DataFrame(
        [
            dict(
                den_id="D1",
                visited_on=DAY,
                outcome="raided",
                notes=None,
                numbers_seized=[],
                imeis_seized=["862718056568276"],
                source_file="f",
                source_row=2,
                file_sha256="x",
                imported_at=dt.datetime(2026, 11, 21, tzinfo=dt.timezone.utc),
            )
        ]
    )
    hotlist = build_hotlist(feedback, dens, 30)
    assert sorted(hotlist.select("kind", "entity_id").rows()) == [
        ("imei", "862718056568276"),
        ("msisdn", "+8613900000001"),
    ]


def test_cli_import_reports_each_bad_row_exits_2_and_imports_the_good(config, tmp_path, capsys):
    landing = config.paths.landing / "feedback"
    landing.mkdir(parents=True)
    (landing / "回执.csv").write_text(
        HEADER + "D20261120-02,2026-11-21,legitimate,,,\r\nD-X,2026-11-21,raided,,,\r\n", encoding="utf-8"
    )
    argv = ["--lake", str(config.paths.lake), "--landing", str(config.paths.landing)]
    assert pending_files(config) == [landing / "回执.csv"]
    assert main(["feedback", "import", *argv]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"cdrwatch: error: {landing / '回执.csv'}:3: unknown den id 'D-X' (no such den in lake/dens)",
        "cdrwatch: error: feedback: 1 row(s) or file(s) rejected (listed above); every other row was imported",
    ]
    assert read_feedback(config)["den_id"].to_list() == ["D20261120-02"]
    assert pending_files(config) == []
    assert main(["feedback", "import", *argv]) == 0 and "no new files" in capsys.readouterr().out


# ---------------------------------------------------------------- tonight's dens with the field's history


def test_field_history_of_the_lake(config, tmp_path):
    path = tmp_path / "f.csv"
    path.write_text(
        HEADER + "D20261120-02,2026-11-21,legitimate,,,\r\nD20261120-01,2026-11-21,raided,,,\r\n", encoding="utf-8"
    )
    import_files(config, [path], today=TODAY)
    visits, cleared = field_history(config, dt.date(2026, 11, 22))
    assert {d: (v["visited_on"], v["outcome"]) for d, v in visits.items()} == {
        "D20261120-01": (dt.date(2026, 11, 21), "raided"),
        "D20261120-02": (dt.date(2026, 11, 21), "legitimate"),
    }
    assert cleared == [
        Cleared(
            "D20261120-02",
            "legitimate",
            dt.date(2026, 11, 21),
            frozenset({"+8613800000001", "+8613800000002"}),
            frozenset({"354204096730718"}),
            frozenset({"goip"}),
        )
    ]
    assert field_history(config, dt.date(2026, 11, 20)) == ({}, [])  # before any visit
    assert field_history(config, dt.date(2026, 11, 21) + dt.timedelta(days=91))[1] == []  # suppress_nights over


CLEARED = Cleared(
    "D20261120-02",
    "legitimate",
    dt.date(2026, 11, 21),
    frozenset({"+8613800000001", "+8613800000002"}),
    frozenset({"354204096730718"}),
    frozenset({"goip"}),
)
NIGHT = dt.date(2026, 11, 23)
VISITS = {
    "D20261120-01": {"visited_on": dt.date(2026, 11, 21), "outcome": "raided"},
    "D20261120-02": {"visited_on": dt.date(2026, 11, 21), "outcome": "legitimate"},
}


def test_a_box_back_after_its_raid_is_high_priority_and_says_so():
    back = _den(
        "D20261123-01",
        priority="low",
        numbers=["+8613500000001"],
        related_to=["D20261120-01"],
        signals=["goip", "hotlist"],
    )
    same_id = _den("D20261120-01", priority="medium", numbers=["+8613500000002"])
    (a, b) = with_field_history([back, same_id], VISITS, [], NIGHT, min_overlap=0.5)
    assert a["priority"] == "high" and a["related_to"] == ["D20261120-01"]
    assert a["evidence"] == "seen again after the raid of D20261120-01 on 2026-11-21: 3 SIMs and 1 GOIP device"
    assert (a["last_visit"], a["last_outcome"], a["suppressed"]) == (None, None, None)
    assert b["priority"] == "high" and b["last_outcome"] == "raided" and b["related_to"] == []  # itself: last_*
    assert b["last_visit"] == dt.date(2026, 11, 21)
    assert b["evidence"].startswith("seen again after the raid of D20261120-01 on 2026-11-21: ")
    confirmed = {"D20261120-01": {"visited_on": dt.date(2026, 11, 21), "outcome": "confirmed"}}
    (d,) = with_field_history([same_id], confirmed, [], NIGHT, min_overlap=0.5)
    assert d["priority"] == "high" and d["evidence"].startswith(
        "still active after the field confirmed it on 2026-11-21: "
    )
    # on the night of the raid itself, the den's own calls are not "seen again"
    (c,) = with_field_history([same_id], VISITS, [], dt.date(2026, 11, 21), min_overlap=0.5)
    assert c["priority"] == "medium" and c["related_to"] == []


def test_a_cleared_group_is_suppressed_while_its_behaviour_is_unchanged():
    same = _den("D20261120-02", numbers=["+8613800000001", "+8613800000002"], signals=["goip"])
    renamed = _den("D20261123-05", numbers=["+8613800000001", "+8613800000009"], signals=["congestion", "goip"])
    new_sims_same_box = _den("D20261123-06", numbers=["+8613600000001"], imeis=["354204096730718"], signals=["goip"])
    swept = _den("D20261123-07", numbers=["+8613800000001", "+8613800000002"], signals=["goip", "sequential"])
    other = _den("D20261123-08", numbers=["+8613800000001", "+8613100000001", "+8613100000002"], imeis=[])
    rows = with_field_history(
        [same, renamed, new_sims_same_box, swept, other], VISITS, [CLEARED], NIGHT, min_overlap=0.5
    )
    reasons = [r["suppressed"] for r in rows]
    assert reasons[0] == "legitimate on 2026-11-21 (D20261120-02); behaviour unchanged (goip)"
    assert reasons[1] == "legitimate on 2026-11-21 (D20261120-02); behaviour unchanged (congestion, goip)"
    assert reasons[2] == "legitimate on 2026-11-21 (D20261120-02); behaviour unchanged (goip)"
    assert reasons[3] is None and rows[3]["evidence"].endswith(
        "; D20261120-02 was marked legitimate on 2026-11-21, but tonight shows new evidence: sequential"
    )
    assert reasons[4] is None  # one number of three: another group
    assert rows[0]["last_outcome"] == "legitimate" and rows[1]["last_outcome"] is None


# ---------------------------------------------------------------- export


def test_a_suppressed_den_goes_to_the_analysts_list_and_its_residents_are_not_warned():
    lead = _den("D20261120-01", last_visit=dt.date(2026, 11, 21), last_outcome="raided", related_to=["D20261120-01"])
    quiet = _den("D20261120-02", suppressed="legitimate on 2026-11-21 (D20261120-02); behaviour unchanged (goip)")
    victims = [
        dict(
            number="+8613911112222",
            district="武侯区",
            den_id=d,
            first_contact_epoch=1763600000,
            longest_call_s=400,
            n_calls=2,
        )
        for d in ("D20261120-01", "D20261120-02")
    ]
    files, summary = build_outbox([lead, quiet], victims, ["武侯区"], set(), timezone="Asia/Shanghai")
    leads = files["leads/武侯区.csv"].decode("utf-8-sig").splitlines()
    assert leads[0] == ",".join(LEAD_FILE_COLUMNS) and len(leads) == 2
    assert leads[1].startswith("D20261120-01,") and leads[1].endswith(",2026-11-21,raided,D20261120-01,,,,,")
    suppressed = files["analysts/suppressed.csv"].decode("utf-8-sig").splitlines()
    assert len(suppressed) == 2 and suppressed[1].startswith("D20261120-02,")
    assert suppressed[1].endswith(",,,,legitimate on 2026-11-21 (D20261120-02); behaviour unchanged (goip)")
    warnings = files["warnings.csv"].decode("utf-8-sig").splitlines()
    assert [w.split(",")[2] for w in warnings[1:]] == ["D20261120-01"]
    assert (summary["suppressed"], summary["dens"]) == (1, {"武侯区": 1})


def test_a_broken_workbook_is_one_line_and_the_other_files_still_import(config, tmp_path):
    """A fault: an .xlsx whose parts are garbage must not stop the night's feedback step."""
    import zipfile

    broken = tmp_path / "坏.xlsx"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("[Content_Types].xml", "<not xml")
        archive.writestr("xl/workbook.xml", "\x00\x01")
    good = tmp_path / "good.csv"
    good.write_text(HEADER + "D20261120-02,2026-11-21,legitimate,,,\r\n", encoding="utf-8")
    bad, fine = import_files(config, [broken, good], today=TODAY)
    assert bad.status == "failed" and len(bad.problems) == 1 and bad.problems[0].startswith(f"{broken}: ")
    assert (fine.status, fine.new_visits) == ("imported", 1)
    assert read_feedback(config)["den_id"].to_list() == ["D20261120-02"]
