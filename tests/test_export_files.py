"""The officers' file names, PARTIAL.txt and the console report of `cdrwatch export` (no Spark)."""

import datetime as dt
import hashlib
import json
import unicodedata
from pathlib import Path

import pytest
from rich.console import Console

from jobs.errors import CdrwatchError
from jobs.export import PARTIAL_FILE, build_outbox, district_file_names, partial_night
from jobs.io.layout import run_summary_path
from jobs.render import export_view

DAY = dt.date(2026, 11, 20)


def h(name):
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]


def den(den_id, district):
    return dict(
        den_id=den_id,
        score=0.8,
        priority="high",
        district=district,
        lat=30.6,
        lon=104.0,
        radius_m=300.0,
        numbers=["+8613900000001"],
        imeis=[],
        cells=["cm-1"],
        site_names=["武侯祠站"],
        active_hours="09-12",
        first_seen=DAY,
        last_seen=DAY,
        nights_active=1,
        n_calls=10,
        n_distinct_callees=9,
        n_victims=0,
        signals=["goip"],
        evidence="x",
    )


def test_usual_names_are_kept():
    assert district_file_names(["武侯区", "锦江区", "High-Tech Zone", "青羊区 (west)"]) == {
        "武侯区": "武侯区",
        "锦江区": "锦江区",
        "High-Tech Zone": "High-Tech Zone",
        "青羊区 (west)": "青羊区 (west)",
    }


def test_names_that_sanitise_alike_get_distinct_stable_names():
    names = district_file_names(["A/B", "A\\B", "A_B", "A:B"])
    assert names == {
        "A/B": f"A_B_{h('A/B')}",
        "A\\B": f"A_B_{h('A' + chr(92) + 'B')}",
        "A_B": "A_B",
        "A:B": f"A_B_{h('A:B')}",
    }
    assert district_file_names(["A:B", "A_B", "A\\B", "A/B"]) == names  # input order does not matter
    assert district_file_names(["A/B"]) == {"A/B": names["A/B"]}  # nor the other districts


def test_names_equal_on_a_case_insensitive_disk_all_get_a_hash():
    nfc, nfd = unicodedata.normalize("NFC", "Café"), unicodedata.normalize("NFD", "Café")
    names = district_file_names(["Wuhou", "WUHOU", nfc, nfd, "Jinjiang"])
    assert names["Wuhou"] == f"Wuhou_{h('Wuhou')}" and names["WUHOU"] == f"WUHOU_{h('WUHOU')}"
    assert names[nfc] == f"{nfc}_{h(nfc)}" and names[nfd] == f"{nfd}_{h(nfd)}"
    assert names["Jinjiang"] == "Jinjiang"
    assert len({unicodedata.normalize("NFC", s).casefold() for s in names.values()}) == 5


@pytest.mark.parametrize(
    "name, stem",
    [
        ("", "district"),
        (".", "district"),
        ("..", "district"),
        ("  ", "district"),
        ("../../etc/passwd", "___.._etc_passwd"),
        ("CON", "_CON"),
        ("nul", "_nul"),
        ("Com1", "_Com1"),
        ("LPT9.txt", "_LPT9.txt"),
        ("aux .x", "_aux .x"),
        (".hidden", "_hidden"),
        ("dots...", "dots"),
        ("tab\there", "tab_here"),
        ("rtl\u202etxt.exe", "rtl_txt.exe"),
        ("x" * 300, "x" * 100),
        ("区" * 100, "区" * 33),
    ],
)
def test_unsafe_names_are_cleaned_and_hashed(name, stem):
    assert district_file_names([name]) == {name: f"{stem}_{h(name)}"}


def test_every_stem_is_a_plain_file_in_leads(tmp_path):
    names = ["", ".", "..", "/", "a/../../b", "CON", "con", "区" * 200, "A/B", "A_B", "a_b", "x\x00y", "\u00a0"]
    stems = district_file_names(names)
    leads = tmp_path / "leads"
    leads.mkdir()
    for stem in stems.values():
        for ext in ("csv", "xlsx"):
            path = leads / f"{stem}.{ext}"
            assert path.resolve().parent == leads.resolve() and len(path.name.encode()) <= 255
            path.write_text(stem, encoding="utf-8")
    assert len(list(leads.iterdir())) == 2 * len(names)  # nothing overwritten


def test_colliding_districts_keep_their_own_leads():
    files, summary = build_outbox(
        [den("den-1", "A/B"), den("den-2", "A\\B"), den("den-3", "a_b")],
        [],
        ["A/B", "A\\B", "a_b", "A_B"],
        set(),
        timezone="Asia/Shanghai",
    )
    leads = {
        name: data.decode("utf-8-sig").splitlines()
        for name, data in files.items()
        if name.startswith("leads/") and name.endswith(".csv")
    }
    assert len(leads) == 4
    assert summary["district_files"] == {
        "A/B": f"leads/A_B_{h('A/B')}.csv",
        "A\\B": f"leads/A_B_{h(chr(92).join('AB'))}.csv",
        "A_B": f"leads/A_B_{h('A_B')}.csv",
        "a_b": f"leads/a_b_{h('a_b')}.csv",
    }
    for district, den_id in (("A/B", "den-1"), ("A\\B", "den-2"), ("a_b", "den-3")):
        (_, row) = leads[summary["district_files"][district]]
        assert row.startswith(den_id + ",")
    assert leads[summary["district_files"]["A_B"]][1:] == []


def test_whitespace_district_goes_to_analysts():
    files, summary = build_outbox([den("den-1", "  ")], [], ["  "], set(), timezone="Asia/Shanghai")
    assert summary["dens"] == {} and summary["unlocated"] == 1
    assert files["analysts/unlocated_dens.csv"].decode("utf-8-sig").splitlines()[1].endswith(",no district")


def test_a_hash_collision_is_one_clear_error(monkeypatch):
    import jobs.export as export

    monkeypatch.setattr(export, "_name_hash", lambda name: "00000000")
    with pytest.raises(
        CdrwatchError, match=r"^districts 'A/B' and 'A\\\\B' would share the lead file leads/A_B_00000000.csv"
    ):
        district_file_names(["A/B", "A\\B"])


# ---------------------------------------------------------------- PARTIAL.txt


@pytest.fixture
def config(test_config, tmp_path):
    return test_config.with_paths(lake=tmp_path / "lake", outbox=tmp_path / "outbox")


def _summary(config, **content):
    path = run_summary_path(config, "ingest", DAY)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content), encoding="utf-8")


def test_partial_reasons_one_per_line(config):
    reasons = [
        "cu: no files for 2026-11-20",
        "ct: validation failed: imsi has 14 digits\nin 3 rows",
        "cm: volume suspect: 120 rows, median 5,000",
    ]
    _summary(config, missing_carriers=["cu"], partial_reasons=reasons)
    missing, got, note = partial_night(config, DAY)
    assert missing == ["cu"]
    assert got == [reasons[0], "ct: validation failed: imsi has 14 digits in 3 rows", reasons[2]]
    assert note.decode("utf-8").splitlines() == [
        "partial night 2026-11-20: the ingested data is incomplete (3 reason(s) below); these leads may miss dens",
        *got,
    ]


def test_a_missing_carrier_no_reason_names_is_added(config):
    _summary(config, missing_carriers=["ct"], partial_reasons=["cm: 0 of 1,204 rows accepted"])
    assert partial_night(config, DAY)[1] == ["cm: 0 of 1,204 rows accepted", "ct: no files for 2026-11-20"]


def test_whole_night_is_not_partial(config):
    _summary(config, missing_carriers=[], partial_reasons=[])
    assert partial_night(config, DAY) == ([], [], None)
    _summary(config, missing_carriers=[])
    assert partial_night(config, DAY) == ([], [], None)
    assert partial_night(config, DAY + dt.timedelta(days=1)) == ([], [], None)  # no summary at all


def test_older_summary_keeps_todays_line(config):
    _summary(config, missing_carriers=["ct"])
    missing, reasons, note = partial_night(config, DAY)
    assert (missing, reasons) == (["ct"], ["ct: no files for 2026-11-20"])
    assert note == (
        b"partial night 2026-11-20: no files from carrier(s) ct when it was ingested;"
        b" their subscribers are missing from these leads\n"
    )


def test_unreadable_summary_is_one_clear_error(config):
    _summary(config)
    run_summary_path(config, "ingest", DAY).write_text("{not json", encoding="utf-8")
    with pytest.raises(CdrwatchError, match=r"unreadable ingest summary .*rerun cdrwatch ingest --date 2026-11-20"):
        partial_night(config, DAY)


# ---------------------------------------------------------------- console


def test_console_shows_data_as_text_never_markup(tmp_path):
    target = tmp_path / "out[/]" / DAY.isoformat()
    districts = ["[/]", "[bold]武侯区", "A/B", "A_B"]
    files, summary = build_outbox([], [], districts, set(), timezone="Asia/Shanghai")
    summary = {
        "date": DAY.isoformat(),
        "outbox": str(target),
        **summary,
        "partial_reasons": ["cu: site [red]x[/] failed"],
    }
    console = Console(record=True, width=400, color_system=None)
    for renderable in export_view(summary):
        console.print(renderable)
    out = console.export_text()
    assert "[/]" in out and "[bold]武侯区" in out and "cu: site [red]x[/] failed" in out
    assert str(target / "leads" / "[bold]武侯区.csv") in out
    assert f"A/B -> leads/A_B_{h('A/B')}.csv" in out and f"A_B -> leads/A_B_{h('A_B')}.csv" not in out
    assert str(target / PARTIAL_FILE) in out
    assert all(
        Path(p).name
        in {
            f"{s}.{e}"
            for s in (
                "[_]_" + h("[/]"),
                "[bold]武侯区",
                "A_B_" + h("A/B"),
                "A_B",
                "warnings",
                "unlocated_dens",
                "suppressed",
                "spoofing",
            )
            for e in ("csv", "xlsx")
        }
        for p in files
    )
