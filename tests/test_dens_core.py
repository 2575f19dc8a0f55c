"""Den description as a pure function: hand-built facts in, DEN rows out, no Spark session."""

import datetime as dt

import pytest

from jobs.dens.core import DenFacts, MemberFlag, NightFacts, describe_dens, priority, weighted_position
from schemas.tables import DEN

DAY = dt.date(2026, 11, 24)
A, B, C = "+8613300000001", "+8613300000002", "+8613300000003"
BOX = "860000001234563"
S1 = ("S1", 30.60, 104.05, "S1基站", "锦江区")
S2 = ("S2", 30.61, 104.05, "S2基站", "成华区")
NIGHT_SITES = [S1[1:3] + S1[4:], S2[1:3] + S2[4:]]  # (lat, lon, district) of every located site


@pytest.fixture
def settings(test_config):
    return test_config.dens.model_copy(update={"priority_high": 0.8, "priority_medium": 0.5})


def box_den(sites=((*S1, 30),), sims=((A, "cm"), (B, "cm"), (C, "cu"))):
    """Three SIMs in one box at S1 (or at `sites`, with their events), dialling 139-1234 from 09:00 to 12:00."""
    return DenFacts(
        sims=dict(sims),
        sites=list(sites),
        cells={"c-S1": 30},
        hours={9: 10, 10: 12, 11: 8},
        imeis={BOX: 24, "h0003": 6},
        segments={"1391234": 28},
        n_calls=30,
        n_distinct_callees=29,
    )


def sweep(sim, score, pattern="in ascending order round-robin by 3 SIMs", lo="0000", hi="0411"):
    return MemberFlag(
        "sequential",
        "msisdn",
        sim,
        score,
        segment="1391234",
        range_lo=f"+861391234{lo}",
        range_hi=f"+861391234{hi}",
        pattern=pattern,
    )


def describe(dens, flags=(), earlier=(), settings=None, n_victims=None):
    night = NightFacts(dens=dens, flags=list(flags), n_victims=n_victims or {}, sites=NIGHT_SITES)
    return describe_dens(night, list(earlier), settings, min_call_s=180, day=DAY)


def test_a_box_with_a_sequential_flag_is_described_with_its_dialling_pattern(settings):
    flags = [
        MemberFlag("goip", "msisdn", A, 0.9),
        MemberFlag("goip", "imei", BOX, 0.9),
        sweep(B, 0.8),
        sweep(C, 0.95, pattern="in ascending order, each of 3 SIMs its own run", lo="0100", hi="0199"),
    ]
    rows = describe({"k001": box_den()}, flags, settings=settings, n_victims={"k001": 2})
    den = rows["k001"]
    assert set(den) == set(DEN.names)
    assert den["evidence"] == (
        "3 SIMs (cm 2, cu 1) and 1 GOIP device and 1 handset at S1基站 (±100 m), 09-12, "
        "30 calls to 29 numbers, dialling 139-1234-0100…0199 in ascending order, each of 3 "
        "SIMs its own run; 2 residents talked over 3 min"
    )  # the best-scoring sweeper's
    assert den["score"] == 0.96  # 0.7 x 0.95 + 0.3 x mean(0.9, 0.8, 0.95) + 0.03 for three SIMs
    assert den["priority"] == "high" and den["signals"] == ["goip", "sequential"]
    assert (den["numbers"], den["imeis"], den["segments"]) == ([A, B, C], [BOX, "h0003"], ["1391234"])
    assert (den["den_id"], den["first_seen"], den["last_seen"], den["nights_active"], den["date"]) == (
        "D20261124-01",
        DAY,
        DAY,
        1,
        DAY,
    )
    assert (den["n_calls"], den["n_distinct_callees"], den["n_victims"], den["active_hours"]) == (30, 29, 2, "09-12")


def test_without_a_sweep_the_evidence_names_the_main_segment(settings):
    den = describe({"k001": box_den()}, [MemberFlag("goip", "msisdn", A, 0.9)], settings=settings)["k001"]
    assert ", 30 calls to 29 numbers, most to 139-1234-xxxx; 0 residents talked over 3 min" in den["evidence"]
    assert den["signals"] == ["goip"]


@pytest.mark.parametrize("member_score, expected", [(0.79, "high"), (0.78, "medium"), (0.49, "medium"), (0.48, "low")])
def test_priority_follows_the_thresholds(settings, member_score, expected):
    """A lone SIM's den scores its SIM's score + 0.01 for its size: 0.79 -> 0.80, high from 0.8 on."""
    lone = DenFacts(sims={A: "cm"}, sites=[(*S1, 5)], hours={9: 5}, n_calls=5, n_distinct_callees=5)
    den = describe({"k001": lone}, [MemberFlag("goip", "msisdn", A, member_score)], settings=settings)["k001"]
    assert den["score"] == round(member_score + 0.01, 3)
    assert den["priority"] == expected == priority(den["score"], settings)
    assert priority(0.8, settings) == "high" and priority(0.5, settings) == "medium"
    assert priority(0.4999, settings) == "low"


def test_a_den_at_two_sites_sits_between_them_weighted_by_its_calls(settings):
    den = describe(
        {"k001": box_den(sites=[(*S1, 30), (*S2, 10)])}, [MemberFlag("goip", "msisdn", A, 0.9)], settings=settings
    )["k001"]
    lat, lon, radius = weighted_position([S1[1], S2[1]], [S1[2], S2[2]], [30, 10])
    assert (den["lat"], den["lon"], den["radius_m"]) == (lat, lon, radius)
    assert den["lat"] == pytest.approx(30.6025) and den["lon"] == pytest.approx(104.05)
    assert den["radius_m"] == pytest.approx(0.75 * 278 + 0.25 * 834, rel=0.01)  # 0.0025 and 0.0075 deg away
    assert den["district"] == "锦江区"  # the site nearest the position
    assert den["site_names"] == ["S1基站", "S2基站"] and f"at S1基站 (±{radius:,.0f} m)" in den["evidence"]


def test_a_continuing_den_keeps_its_id_and_a_new_one_is_numbered(settings):
    earlier = [
        dict(
            den_id="D20261120-01",
            numbers=[A, B, C],
            imeis=[BOX],
            segments=["1391234"],
            lat=30.6,
            lon=104.05,
            score=0.9,
            first_seen=dt.date(2026, 11, 20),
            last_seen=dt.date(2026, 11, 23),
            nights_active=4,
            date=dt.date(2026, 11, 23),
        )
    ]
    far = ("S9", 30.80, 104.30, "S9基站", "新都区")
    new = DenFacts(
        sims={"+8615500000001": "ct", "+8615500000002": "ct"},
        sites=[(*far, 12)],
        imeis={"h9": 12},
        n_calls=12,
        n_distinct_callees=12,
    )
    flags = [MemberFlag("goip", "msisdn", A, 0.9), MemberFlag("goip", "msisdn", "+8615500000001", 0.7)]
    rows = describe({"k001": new, "k002": box_den()}, flags, earlier, settings=settings)
    assert list(rows) == ["k002", "k001"]  # in den_id order
    assert (rows["k002"]["den_id"], rows["k002"]["first_seen"], rows["k002"]["nights_active"]) == (
        "D20261120-01",
        dt.date(2026, 11, 20),
        5,
    )
    assert (rows["k001"]["den_id"], rows["k001"]["first_seen"], rows["k001"]["nights_active"]) == (
        "D20261124-01",
        DAY,
        1,
    )
    assert all(r["last_seen"] == DAY for r in rows.values())


def test_no_dens_no_rows(settings):
    assert describe({}, settings=settings) == {}


ROAD = [(f"R{i}", 30.60 + 0.009 * i, 104.05, f"R{i}基站", "锦江区") for i in range(6)]  # ~1 km apart, north


def car_den():
    """A box in a car: one site per hour 10..15 along the road, a few calls through the next mast each hour."""
    site_hours = {(10 + i, ROAD[i][0]): 40 for i in range(6)}
    site_hours.update({(10 + i, ROAD[min(i + 1, 5)][0]): 5 for i in range(5)})
    sites = [(*s, sum(n for (h, k), n in site_hours.items() if k == s[0])) for s in ROAD]
    return DenFacts(
        sims={A: "cm", B: "cm", C: "cu"},
        sites=sites,
        site_hours=site_hours,
        hours={10 + i: 45 for i in range(6)},
        imeis={BOX: 265},
        segments={"1391234": 260},
        n_calls=265,
        n_distinct_callees=260,
    )


def test_a_den_in_a_car_is_one_lead_covering_its_route_in_order(settings):
    den = describe({"k001": car_den()}, [MemberFlag("goip", "msisdn", A, 0.9)], settings=settings)["k001"]
    assert den["site_names"] == [s[3] for s in ROAD]  # in the order it drove them
    for _, lat, lon, *_ in ROAD:  # every site of the route inside the radius
        assert weighted_distance(den, lat, lon) <= den["radius_m"] + 1e-6
    assert den["radius_m"] > 2000
    assert "moving through 6 sites in turn: R0基站 → R1基站 → R2基站 → R3基站 → R4基站 → R5基站" in den["evidence"]


def weighted_distance(den, lat, lon):
    from detectors.rules.sites import distance_m

    return float(distance_m(den["lat"], den["lon"], lat, lon))


def test_a_box_on_one_mast_with_overflow_to_the_next_is_not_moving(settings):
    site_hours = {(h, "S1"): 30 for h in range(9, 18)} | {(h, "S2"): 6 for h in range(9, 18)}
    fact = DenFacts(
        sims={A: "cm", B: "cm", C: "ct"},
        sites=[(*S1, 270), (*S2, 54)],
        site_hours=site_hours,
        hours={h: 36 for h in range(9, 18)},
        segments={"1391234": 300},
        n_calls=324,
        n_distinct_callees=320,
    )
    den = describe({"k001": fact}, [MemberFlag("goip", "msisdn", A, 0.9)], settings=settings)["k001"]
    assert den["site_names"] == ["S1基站", "S2基站"] and " at S1基站 (±" in den["evidence"]
    assert "moving" not in den["evidence"]


def test_a_box_changing_its_imei_per_call_is_one_device_story(settings):
    fact = DenFacts(
        sims={A: "cm", B: "cm", C: "cu"},
        sites=[(*S1, 90)],
        hours={9: 90},
        imeis={f"86{i:013d}": 1 for i in range(90)},
        segments={"1391234": 90},
        n_calls=90,
        n_distinct_callees=90,
    )
    den = describe({"k001": fact}, [MemberFlag("goip", "msisdn", A, 0.9)], settings=settings)["k001"]
    assert "3 SIMs (cm 2, cu 1) and 90 IMEIs (a new IMEI on almost every call" in den["evidence"]
    assert len(den["imeis"]) == 90


def _room(sims, segments, hours, site=S1):
    return DenFacts(
        sims=dict(sims),
        sites=[(*site, 100)],
        hours={h: 20 for h in hours},
        segments=segments,
        n_calls=100,
        n_distinct_callees=100,
    )


def test_two_boxes_in_one_room_on_one_list_merge_and_neighbours_do_not(settings):
    from jobs.dens.core import merge_plan

    box1 = _room({A: "cm", B: "cm"}, {"1391234": 60, "1391235": 40}, range(9, 18))
    box2 = _room({C: "cu", "+8613300000004": "cu"}, {"1391234": 55, "1391235": 45}, range(9, 18))
    other_list = _room({"+8613300000005": "cm"}, {"1500000": 100}, range(9, 18))
    night_shift = _room({"+8613300000006": "cm"}, {"1391234": 100}, range(20, 24))
    far = _room({"+8613300000007": "cm"}, {"1391234": 100}, range(9, 18), site=S2)
    dens = {"k001": box1, "k002": box2, "k003": other_list, "k004": night_shift, "k005": far}
    assert merge_plan(dens, settings) == [["k001", "k002"], ["k003"], ["k004"], ["k005"]]
    assert merge_plan({"k002": box2, "k001": box1}, settings) == [["k002", "k001"]]
