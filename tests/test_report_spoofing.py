"""The report's caller-ID spoofing section, from a hand-written lake/spoofed partition and the detector's
spoofing.json (PyArrow and JSON, no Spark): the judgement line with what was left unjudged and why,
spoofed legs per local hour, the presented numbers and the receivers' districts; a lake from before
the detector says "not run" instead.
"""

import datetime as dt
import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.config import load_config
from jobs.errors import CdrwatchError
from jobs.report import build_report, data
from schemas.tables import SPOOFED

DAY = dt.date(2026, 11, 16)
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
SUB1 = "+8613900000001"
R1, R2, R3, R4, R5 = (f"+861380000000{i}" for i in range(1, 6))
LEGS = [  # receiver, presented, service, local start, duration_s, district, protected, campaign
    (R1, "110", "voice", "10:05:00", 10, "锦江区", "110 police", "S20261116-01"),
    (R2, "110", "voice", "10:20:00", 0, "锦江区", "110 police", "S20261116-01"),
    (R3, "110", "sms", "10:40:00", 0, "武侯区", "110 police", "S20261116-01"),
    (R1, SUB1, "voice", "23:30:00", 200, None, None, "S20261116-02"),
    (R4, SUB1, "sms", "00:10:00", 0, "<i>新区</i>", None, "S20261116-02"),  # 16:10 UTC the day before
    (R5, "95588", "voice", "11:00:00", 30, "锦江区", "bank service line", "S20261116-03"),
]
SUMMARY = {
    "date": DAY.isoformat(),
    "tolerance_s": 120,
    "incoming_legs": 1234,
    "judged": 1200,
    "matched": 1194,
    "spoofed": 6,
    "not_judged": {"presented number's carrier delivered nothing": 30, "receiver roaming": 4},
    "unjudged_carriers": {"cu": "no files for 2026-11-16"},
    "campaigns": 3,
}


def write_spoofed(root, legs=LEGS):
    fields = [f for f in SPOOFED.arrow() if f.name != "date"]

    def instant(clock):
        return dt.datetime.combine(DAY, dt.time.fromisoformat(clock), SHANGHAI).astimezone(dt.timezone.utc)

    rows = [
        dict(
            record_id=f"r{i}",
            carrier="cm",
            receiver=receiver,
            presented=presented,
            service=service,
            start_time=instant(clock),
            duration_s=duration,
            cell_id="4100-1",
            district=district,
            protected=protected,
            owner_carrier=None if protected else "cm",
            campaign_id=campaign,
        )
        for i, (receiver, presented, service, clock, duration, district, protected, campaign) in enumerate(legs)
    ]
    folder = root / "lake" / "spoofed" / f"date={DAY}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=pa.schema(fields)), folder / "part-00000.parquet")


def write_summary(root, summary=SUMMARY):
    folder = root / "lake" / "_runs" / "detect" / f"date={DAY}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spoofing.json").write_text(
        summary if isinstance(summary, str) else json.dumps(summary), encoding="utf-8"
    )


@pytest.fixture
def config(tmp_path):
    return load_config(
        overrides=[
            f"paths.landing={tmp_path / 'landing'}",
            f"paths.lake={tmp_path / 'lake'}",
            f"paths.outbox={tmp_path / 'outbox'}",
        ]
    )


def section(page: str) -> str:
    return re.search(r'<section id="spoofing">.*?</section>', page, re.S).group(0)


def figure_traces(page: str, div_id: str) -> list[dict]:
    call = re.search(rf'Plotly\.newPlot\(\s*"{div_id}",\s*', page)
    traces, _ = json.JSONDecoder().raw_decode(page, call.end())
    return traces


def test_legs_per_local_hour_presented_numbers_and_districts(config, tmp_path):
    write_spoofed(tmp_path)
    night = data.spoofing_night(config, DAY)
    assert night.ran and night.legs.height == 6 and night.summary is None and night.not_judged == 0
    assert data.spoofed_hourly(night.legs, config.timezone).rows() == [
        (0, "sms", 1),
        (10, "sms", 1),
        (10, "voice", 2),
        (11, "voice", 1),
        (23, "voice", 1),
    ]
    assert data.top_presented(night.legs).rows() == [
        ("110", "110 police", 3, 3, 1),
        ("13900000001", "local subscriber (impersonated, not a suspect)", 2, 2, 1),
        ("95588", "bank service line", 1, 1, 1),
    ]
    assert data.top_presented(night.legs, limit=1)["number"].to_list() == ["110"]
    assert data.spoofed_districts(night.legs).rows() == [
        ("锦江区", 3, 3, 2, 2),
        ("(no district)", 1, 1, 1, 1),
        ("<i>新区</i>", 1, 1, 0, 1),
        ("武侯区", 1, 1, 0, 1),
    ]


def test_the_section_shows_the_judgement_the_unjudged_carriers_the_hours_and_the_tables(config, tmp_path):
    write_spoofed(tmp_path)
    write_summary(tmp_path)
    page, _ = build_report(config, DAY)
    assert page == build_report(config, DAY)[0]
    text = section(page)
    assert (
        re.sub(
            r"<[^>]+>", "", re.search(r'<p class="big-line" id="spoofing-judgement">.*?</p>', text, re.S).group(0)
        ).split()
        == (
            "Incoming legs presenting a local subscriber's or a protected number: 1,234 · matched to an outgoing leg: "
            "1,194 · spoofed: 6 in 3 campaigns · not judged: 34"
        ).split()
    )
    assert (
        '<div class="banner" id="spoofing-unjudged">Not judged tonight: numbers of cu (no files for 2026-11-16).'
        in text
    )
    assert (
        "<li>presented number&#x27;s carrier delivered nothing: <b>30</b></li><li>receiver roaming: <b>4</b></li>"
        in text
    )
    assert "to the receiver within 120 s" in text
    voice, sms = figure_traces(page, "chart-spoofing-hours")
    assert (voice["name"], sms["name"]) == ("voice", "sms")
    assert [(h, n) for h, n in zip(voice["x"], voice["y"]) if n] == [(10, 2), (11, 1), (23, 1)]
    assert [(h, n) for h, n in zip(sms["x"], sms["y"]) if n] == [(0, 1), (10, 1)]
    presented = re.search(r'<table id="spoofing-presented-table">.*?</table>', text, re.S).group(0)
    assert re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td>", presented) == [
        ("110", "110 police"),
        ("13900000001", "local subscriber (impersonated, not a suspect)"),
        ("95588", "bank service line"),
    ]
    assert (
        "<td>13900000001</td><td>local subscriber (impersonated, not a suspect)</td><td class=\"num\">2</td>"
        in presented
    )
    districts = re.search(r'<table id="spoofing-districts-table">.*?</table>', text, re.S).group(0)
    assert "<td>&lt;i&gt;新区&lt;/i&gt;</td>" in districts and "<i>新区</i>" not in page
    assert page.count("Plotly.newPlot(") == 7 and 'href="#spoofing"' in page


def test_a_lake_from_before_the_detector_says_not_run(config, tmp_path):
    page, _ = build_report(config, DAY)
    text = section(page)
    assert 'id="spoofing-not-run"' in text and "Not run for this night" in text
    assert "chart-spoofing-hours" not in page and "spoofing-presented-table" not in text
    assert page.count("Plotly.newPlot(") == 6
    assert not data.spoofing_night(config, DAY).ran


def test_a_night_without_spoofed_legs_or_without_its_summary(config, tmp_path):
    write_summary(tmp_path, {**SUMMARY, "spoofed": 0, "campaigns": 0, "not_judged": {}, "unjudged_carriers": {}})
    page, _ = build_report(config, DAY)  # the summary alone: the detector ran, found nothing
    text = section(page)
    assert "spoofed: <b>0</b> · not judged: <b>0</b>" in text and "spoofing-unjudged" not in text
    assert "No spoofed leg tonight" in page and "<p class=\"note\">none</p>" in text
    write_spoofed(tmp_path, LEGS[:1])
    (tmp_path / "lake" / "_runs" / "detect" / f"date={DAY}" / "spoofing.json").unlink()
    text = section(build_report(config, DAY)[0])  # legs without a summary: counts unknown
    assert "No judgement counts for this night (detect wrote no spoofing.json); 1 spoofed leg in lake/spoofed" in text


def test_an_unreadable_summary_names_the_file_and_the_rerun(config, tmp_path):
    write_summary(tmp_path, "{not json")
    with pytest.raises(
        CdrwatchError,
        match=r"spoofing\.json: unreadable spoofing summary .*rerun cdrwatch detect "
        r"--date 2026-11-16",
    ):
        data.spoofing_night(config, DAY)
