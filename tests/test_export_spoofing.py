"""Caller-ID spoofing (改号) in the outbox, with the pure `build_outbox` (no Spark): who is warned,
the `reason` column of warnings.csv, and analysts/spoofing.csv, one row per campaign."""

import csv
import datetime as dt
import io

import pytest
from openpyxl import load_workbook

from jobs.export import SPOOFING_COLUMNS, SPOOFING_NOTE, build_outbox
from schemas.tables import WARNING_FILE_COLUMNS

DAY = dt.date(2026, 11, 16)
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
CAMPAIGN = "S20261116-01"
SUBSCRIBER = "+8613912345678"  # a local subscriber whose number the callers show: impersonated
WHITELISTED = "+8613811110004"


def at(hh, mm):
    return int(dt.datetime(2026, 11, 16, hh, mm, tzinfo=SHANGHAI).timestamp())


def leg(
    receiver,
    presented,
    start,
    seconds,
    district="武侯区",
    service="voice",
    campaign=CAMPAIGN,
    protected=None,
    owner_carrier="cm",
):
    return dict(
        record_id=f"r-{receiver[-4:]}-{start}",
        carrier="cu",
        receiver=receiver,
        presented=presented,
        service=service,
        start_time=None,
        start_epoch=start,
        duration_s=seconds,
        cell_id="cu-1",
        district=district,
        protected=protected,
        owner_carrier=None if protected else owner_carrier,
        campaign_id=campaign,
        date=DAY,
    )


def police(receiver, start, seconds, district="武侯区"):
    return leg(receiver, "110", start, seconds, district, protected="110 police")


SPOOFED = [
    leg("+8613811110001", SUBSCRIBER, at(10, 0), 200),  # long enough: warned
    police("+8613811110001", at(9, 58), 30),  # ... the same resident, earlier
    leg("+8613811110002", SUBSCRIBER, at(10, 5), 10),  # a mobile shown, 10 s: not warned
    police("+8613811120003", at(10, 10), 10, district="青羊区"),  # 110 shown, 10 s: warned
    leg(WHITELISTED, SUBSCRIBER, at(10, 15), 300),  # whitelisted: never warned
    leg("+8613811110005", SUBSCRIBER, at(10, 20), 0, service="sms"),  # an SMS: nobody talked
    police("+8615000000006", at(10, 25), 0, district="锦江区"),  # unanswered
    leg(
        "+8613811110002",
        "+8613700000007",
        at(14, 0),
        400,
        district="锦江区",
        campaign="S20261116-02",
        owner_carrier="ct",
    ),
]


def den(den_id, numbers):
    return dict(
        den_id=den_id,
        score=0.8,
        priority="high",
        district="武侯区",
        lat=30.64,
        lon=104.04,
        radius_m=300.0,
        numbers=numbers,
        imeis=["860000000000011"],
        cells=["cm-1"],
        site_names=["武侯祠站"],
        active_hours="09-12",
        first_seen=DAY,
        last_seen=DAY,
        nights_active=1,
        n_calls=900,
        n_distinct_callees=800,
        n_victims=1,
        signals=["goip"],
        evidence="goip",
    )


DENS = [den("D20261116-01", ["+8613900000001"])]
VICTIMS = [
    dict(
        number="+8613811119999",
        district="武侯区",
        den_id="D20261116-01",
        first_contact_epoch=at(9, 0),
        longest_call_s=300,
        n_calls=2,
    )
]


def build(spoofed=SPOOFED, **options):
    options = {"timezone": "Asia/Shanghai", "warning_min_call_s": 180, **options}
    return build_outbox(DENS, VICTIMS, ["武侯区", "锦江区", "青羊区"], {WHITELISTED}, spoofed=list(spoofed), **options)


def table(data):
    assert data.startswith(b"\xef\xbb\xbf")
    header, *rows = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    return header, rows


def test_warnings_give_the_reason_for_dens_and_for_spoofing():
    files, summary = build()
    header, rows = table(files["warnings.csv"])
    assert (
        header
        == list(WARNING_FILE_COLUMNS)
        == ["number", "district", "den_id", "first_contact", "longest_call_s", "n_calls", "reason"]
    )
    assert rows == [
        ["13811119999", "武侯区", "D20261116-01", "2026-11-16 09:00:00", "300", "2", "den D20261116-01"],
        ["13811110001", "武侯区", CAMPAIGN, "2026-11-16 09:58:00", "200", "2", "spoofed 13912345678"],
        ["13811110002", "锦江区", "S20261116-02", "2026-11-16 14:00:00", "400", "1", "spoofed 13700000007"],
        ["13811120003", "青羊区", CAMPAIGN, "2026-11-16 10:10:00", "10", "1", "spoofed 110"],
    ]
    assert (summary["warnings"], summary["spoofing_warnings"], summary["spoofing_campaigns"]) == (4, 3, 2)


@pytest.mark.parametrize(
    "presented, protected, seconds, warned",
    [
        ("110", "110 police", 10, True),  # a protected number answered at all
        ("110", "110 police", 0, False),  # ... but not when nobody answered
        (SUBSCRIBER, None, 10, False),  # a mobile: only a call long enough
        (SUBSCRIBER, None, 179, False),
        (SUBSCRIBER, None, 180, True),
        (SUBSCRIBER, None, 200, True),
    ],
)
def test_who_talked_with_a_spoofed_caller_is_warned(presented, protected, seconds, warned):
    one = leg("+8613811110001", presented, at(10, 0), seconds)
    one["protected"], one["owner_carrier"] = protected, None if protected else "cm"
    files, summary = build([one])
    _, rows = table(files["warnings.csv"])
    spoofing = [r for r in rows if r[2] == CAMPAIGN]
    assert spoofing == (
        [
            [
                "13811110001",
                "武侯区",
                CAMPAIGN,
                "2026-11-16 10:00:00",
                str(seconds),
                "1",
                f"spoofed {presented[3:] if presented.startswith('+86') else presented}",
            ]
        ]
        if warned
        else []
    )
    assert summary["spoofing_warnings"] == int(warned)


def test_a_spoofed_sms_warns_nobody_however_it_is_configured():
    files, _ = build(
        [leg("+8613811110001", "110", at(10, 0), 0, service="sms", protected="110 police")], warning_min_call_s=0
    )
    assert [r[6] for r in table(files["warnings.csv"])[1]] == ["den D20261116-01"]


def test_the_longest_call_names_the_presented_number():
    legs = [
        police("+8613811110001", at(9, 0), 60),
        leg("+8613811110001", SUBSCRIBER, at(9, 30), 20),
        leg("+8613811110001", SUBSCRIBER, at(9, 45), 0, service="sms"),
    ]
    files, _ = build(legs)
    (row,) = [r for r in table(files["warnings.csv"])[1] if r[2] == CAMPAIGN]
    assert row == ["13811110001", "武侯区", CAMPAIGN, "2026-11-16 09:00:00", "60", "2", "spoofed 110"]


def test_a_whitelisted_receiver_is_never_warned():
    files, _ = build()
    numbers = [r[0] for r in table(files["warnings.csv"])[1]]
    assert "13811110004" not in numbers
    (campaign, _) = table(files["analysts/spoofing.csv"])[1]
    row = dict(zip(SPOOFING_COLUMNS, campaign))
    assert (row["receivers"], row["warned"]) == ("6", "2")  # received it, counted; not warned


def test_spoofing_csv_one_row_per_campaign_by_first_call():
    files, _ = build()
    header, rows = table(files["analysts/spoofing.csv"])
    assert (
        header
        == list(SPOOFING_COLUMNS)
        == [
            "campaign_id",
            "first_call",
            "last_call",
            "spoofed_legs",
            "answered_calls",
            "long_calls",
            "receivers",
            "warned",
            "presented_numbers",
            "protected_numbers",
            "impersonated_subscribers",
            "receiver_segments",
            "receiver_districts",
            "note",
        ]
    )
    assert rows == [
        [
            CAMPAIGN,
            "2026-11-16 09:58:00",
            "2026-11-16 10:25:00",
            "7",
            "5",
            "2",
            "6",
            "2",
            "13912345678;110",
            "110 police",
            "13912345678",
            "1381111;1381112;1500000",
            "武侯区;锦江区;青羊区",
            SPOOFING_NOTE,
        ],
        [
            "S20261116-02",
            "2026-11-16 14:00:00",
            "2026-11-16 14:00:00",
            "1",
            "1",
            "1",
            "1",
            "1",
            "13700000007",
            "",
            "13700000007",
            "1381111",
            "锦江区",
            SPOOFING_NOTE,
        ],
    ]
    assert SPOOFING_NOTE.startswith("The presented numbers are not the callers: their owners were impersonated")
    assert SPOOFING_NOTE.count(".") == 1  # one sentence


def test_the_impersonated_subscriber_is_in_no_lead_and_no_warning():
    files, _ = build()
    for name, data in files.items():
        if name.startswith("leads/") and name.endswith(".csv"):
            assert b"13912345678" not in data and b"13700000007" not in data, name
    assert not {"13912345678", "13700000007"} & {r[0] for r in table(files["warnings.csv"])[1]}


def test_no_spoofing_gives_a_header_only_file_and_the_same_den_warnings():
    files, summary = build([])
    assert files["analysts/spoofing.csv"] == ("\ufeff" + ",".join(SPOOFING_COLUMNS) + "\r\n").encode("utf-8")
    assert table(files["warnings.csv"])[1] == [
        ["13811119999", "武侯区", "D20261116-01", "2026-11-16 09:00:00", "300", "2", "den D20261116-01"]
    ]
    assert (summary["warnings"], summary["spoofing_warnings"], summary["spoofing_campaigns"]) == (1, 0, 0)
    old_call, _ = build_outbox(DENS, VICTIMS, ["武侯区"], set(), timezone="Asia/Shanghai")  # callers without it
    assert "analysts/spoofing.csv" in old_call and old_call["warnings.csv"] == files["warnings.csv"]


def test_chinese_headers_leave_warnings_and_spoofing_in_english():
    files, _ = build(chinese_headers=True)
    assert table(files["warnings.csv"])[0] == list(WARNING_FILE_COLUMNS)
    assert table(files["analysts/spoofing.csv"])[0] == list(SPOOFING_COLUMNS)
    assert table(files["leads/武侯区.csv"])[0][0] == "窝点编号"


@pytest.mark.parametrize("stem", ["warnings", "analysts/spoofing"])
def test_the_workbooks_hold_the_same_rows(stem):
    files, _ = build()
    header, rows = table(files[f"{stem}.csv"])
    sheet = load_workbook(io.BytesIO(files[f"{stem}.xlsx"])).active
    cells = [["" if c.value is None else str(c.value) for c in row] for row in sheet.iter_rows()]
    assert cells == [header, *rows]
    kinds = {h.value: c.data_type for h, c in zip(*list(sheet.iter_rows())[:2])}
    assert kinds["n_calls" if stem == "warnings" else "spoofed_legs"] == "n"
    assert kinds["number" if stem == "warnings" else "impersonated_subscribers"] == "s"
