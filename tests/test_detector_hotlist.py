"""The hotlist detector on a hand-built night: a seized box with new SIMs, a hotlisted number calling
again, a new group of flagged SIMs beside a raided site, and what must not be flagged."""

import datetime as dt

import pytest
from builders import make_night

from detectors.hotlist import HotlistMatch
from jobs.config import load_config
from schemas.tables import HOTLIST

DAY = dt.date(2026, 11, 24)
BOX = "862718056568276"
RAIDED = ("D20261120-02", "raided", dt.date(2026, 11, 21))
SITE = (30.6400, 104.0400)  # the raided den's position
NEAR = ("S30.6420,104.0410", 30.6420, 104.0410)  # ~240 m away
FAR = ("S30.7000,104.1000", 30.7000, 104.1000)  # ~8 km away


def _rows(msisdn, n, *, imei="868912030000001", direction="out", site=FAR, hour=10):
    return [(msisdn, direction, imei, dt.datetime(2026, 11, 24, hour, k), site[0], site[1], site[2]) for k in range(n)]


@pytest.fixture(scope="module")
def night(spark):
    rows = (
        _rows("+8613500000001", 30, imei=BOX, site=NEAR)
        + _rows("+8613500000002", 25, imei=BOX, site=NEAR)
        + _rows("+8613900000001", 12)  # a seized number calling again
        + _rows("+8613900000002", 5, direction="in")  # only rung: not active
        + [r for i in range(3) for r in _rows(f"+861370000000{i}", 10, site=NEAR)]  # a new group next door
        + [r for i in range(2) for r in _rows(f"+861380000000{i}", 10, site=FAR)]  # flagged, far away
        + _rows("+8613100000000", 10, site=NEAR)
    )  # unflagged resident next door
    cdr = spark.createDataFrame(
        rows,
        "msisdn string, direction string, imei string, start_time timestamp, "
        "site_key string, site_lat double, site_lon double",
    )
    hotlist = spark.createDataFrame(
        [
            (BOX, "imei", *RAIDED, DAY + dt.timedelta(days=90), None, None),
            ("+8613900000001", "msisdn", *RAIDED, DAY + dt.timedelta(days=90), None, None),
            ("+8613900000002", "msisdn", *RAIDED, DAY + dt.timedelta(days=90), None, None),
            (f"{SITE[0]:.6f},{SITE[1]:.6f}", "site", *RAIDED, DAY + dt.timedelta(days=90), *SITE),
        ],
        HOTLIST.spark(),
    )
    flagged = [(f"+861370000000{i}", NEAR[0]) for i in range(3)] + [(f"+861380000000{i}", FAR[0]) for i in range(2)]
    earlier = spark.createDataFrame(
        [("goip", "msisdn", m, 0.7, "x", s) for m, s in flagged],
        "detector string, entity_type string, entity_id string, score double, evidence string, site_key string",
    )
    return make_night(spark, DAY, cdr, earlier_flags=earlier, hotlist=hotlist)


def test_hotlist_flags_the_box_the_number_and_the_group_next_door(night):
    settings = load_config().detectors.hotlist
    flags = {r.entity_id: r for r in HotlistMatch(settings).flags(night).collect()}
    assert sorted(flags) == [
        "+8613500000001",
        "+8613500000002",
        "+8613700000000",
        "+8613700000001",
        "+8613700000002",
        "+8613900000001",
    ]
    box = flags["+8613500000001"]
    assert (box.entity_type, box.score, box.related_den, box.site_key) == ("msisdn", 0.95, "D20261120-02", NEAR[0])
    assert box.evidence == (
        "on device 862718056568276 of den D20261120-02 (raided on 2026-11-21): a known box or handset with another SIM"
    )
    assert (box.window_start, box.window_end) == (dt.datetime(2026, 11, 24, 10, 0), dt.datetime(2026, 11, 24, 10, 29))
    number = flags["+8613900000001"]
    assert (number.score, number.evidence) == (
        0.90,
        "number of den D20261120-02 (raided on 2026-11-21) active again: 12 outgoing calls/SMS tonight",
    )
    group = flags["+8613700000001"]
    assert group.score == 0.70 and group.related_den == "D20261120-02"
    assert group.evidence.startswith("one of 3 flagged SIMs within 2") and group.evidence.endswith(
        " m of the site of den D20261120-02 (raided on 2026-11-21): a new group where one was"
    )


def test_two_flagged_sims_are_no_group_and_no_hotlist_flags_nothing(night):
    settings = load_config(overrides=["detectors.hotlist.min_near_sims=4"]).detectors.hotlist
    flagged = {r.entity_id for r in HotlistMatch(settings).flags(night).collect()}
    assert not any(m.startswith("+86137") for m in flagged)
    from dataclasses import replace

    assert HotlistMatch(settings).flags(replace(night, hotlist=None)).count() == 0
