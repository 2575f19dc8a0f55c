"""detectors.simbox: GOIP boxes (shared IMEI, fresh IMEI per SIM, SMS blaster) are flagged, with
their devices; a call room scores between a box and a courier; couriers, residents and a crowd
are not flagged. One hand-built night, scored once per module."""

import datetime as dt
import random

import pytest
from builders import LOCAL, SiteCdr, make_night
from chispa import assert_df_equality
from pyspark.sql import functions as F

from detectors.base import FLAG_FIELDS
from detectors.simbox import SimBox, luhn_valid, score_sims, sim_features
from simulator.numbers import make_imei

DAY = dt.date(2026, 11, 24)
SITES = {
    k: (k, 30.6 + i / 100, 104.0 + i / 100, f"锦江区{i:03d}号基站", "锦江区")
    for i, k in enumerate(
        ["BOX", "FRESH", "BLAST", "ROOM", "HOME", "WORK", "STADIUM", *(f"ROUTE{i}" for i in range(6))]
    )
}
PHONE_TAC, BOX_TAC = 86891203, 86271805

SHARED_BOX = [f"+861300000010{i}" for i in range(4)]
FRESH_BOX = [f"+861300000020{i}" for i in range(3)]
HOPPER = "+8613000000299"
BLASTER = [f"+861300000030{i}" for i in range(3)]
ROOM = "+8613000000400"
COURIER = "+8613800000500"
RESIDENT = "+8613800000600"
CROWD = [f"+86138000007{i:02d}" for i in range(20)]


def imei(tac, serial, valid=True):
    value = int(make_imei(tac, serial))
    return str(value if valid else value - value % 10 + (value + 1) % 10)


def Cdr():
    """CDR rows at home unless told, with no device unless a row names one (`imei=`)."""
    return SiteCdr(SITES, "HOME")


def at(hour, minute=0, second=0, day=DAY):
    return dt.datetime.combine(day, dt.time(hour, minute, second), tzinfo=LOCAL)


def box_calls(cdr, sims, phones, site, start_hour, gap_s, rng, service="voice", first_callee=0):
    """Machine-regular outgoing events (gap_s +- 1 s) to distinct numbers, mostly unanswered."""
    for s, (sim, phone) in enumerate(zip(sims, phones)):
        when = at(start_hour, s)
        for k in range(12):
            callee = f"+86139123{first_callee + s * 100 + k:05d}"
            seconds = 0 if service == "sms" or k % 6 else 15
            device = phone[k % len(phone)] if isinstance(phone, list) else phone
            cdr.add(sim, callee, "out", when, seconds=seconds, service=service, imei=device, site=site)
            when += dt.timedelta(seconds=gap_s + rng.choice([-1, 0, 1]))


def build_night(spark):
    rng = random.Random(7)
    today, past = Cdr(), Cdr()
    box_calls(today, SHARED_BOX, [imei(BOX_TAC, 1)] * 4, "BOX", 9, 75, rng)
    fresh = [imei(51612983, 2), imei(28923275, 3, valid=False), imei(46203565, 4)]
    box_calls(today, FRESH_BOX, fresh, "FRESH", 10, 90, rng, first_callee=1000)
    box_calls(
        today,
        [HOPPER],
        [[imei(73523105, 5), imei(65707812, 6), imei(90775649, 7)]],
        "FRESH",
        10,
        90,
        rng,
        first_callee=2000,
    )
    box_calls(today, BLASTER, [imei(35566009, 8)] * 3, "BLAST", 10, 25, rng, service="sms", first_callee=3000)

    # a call-room operator: an ordinary phone that carried another SIM earlier, human gaps, one site
    room_phone = imei(PHONE_TAC, 400)
    when = at(20)
    for k in range(12):
        today.add(ROOM, f"+86139124{k:05d}", "out", when, seconds=0 if k % 4 else 30, imei=room_phone, site="ROOM")
        when += dt.timedelta(seconds=rng.randint(40, 400))
    past.add(
        "+8613000000401", "+8613912400999", "out", at(20, day=DAY - dt.timedelta(days=2)), imei=room_phone, site="ROOM"
    )

    # a courier: short calls to customers along a route, 6 of whom call back
    for k in range(12):
        when = at(9 + k * 10 // 12, rng.randint(0, 59), rng.randint(0, 59))
        customer = f"+86138001{k:05d}"
        today.add(
            COURIER,
            customer,
            "out",
            when,
            seconds=rng.randint(10, 60),
            imei=imei(PHONE_TAC, 500),
            site=f"ROUTE{k // 2}",
        )
        if k % 2:
            today.add(
                COURIER,
                customer,
                "in",
                when + dt.timedelta(minutes=20),
                seconds=25,
                imei=imei(PHONE_TAC, 500),
                site=f"ROUTE{k // 2}",
            )
    past.add(
        COURIER,
        "+8613800100000",
        "out",
        at(11, day=DAY - dt.timedelta(days=1)),
        seconds=30,
        imei=imei(PHONE_TAC, 500),
        site="ROUTE0",
    )

    # a resident: long calls with three friends from home and work, friends ring back
    for k in range(12):
        friend = f"+86138002{k % 3:05d}"
        site = "HOME" if k % 2 else "WORK"
        when = at(8 + k, rng.randint(0, 59))
        today.add(RESIDENT, friend, "out", when, seconds=120 + 10 * k, imei=imei(PHONE_TAC, 600), site=site)
        today.add(
            RESIDENT, friend, "in", when + dt.timedelta(minutes=30), seconds=200, imei=imei(PHONE_TAC, 600), site=site
        )
    past.add(
        RESIDENT, "+8613800200000", "out", at(19, day=DAY - dt.timedelta(days=1)), seconds=90, imei=imei(PHONE_TAC, 600)
    )

    # a crowd at the stadium: many ordinary phones on one site, a few calls each
    for i, member in enumerate(CROWD):
        for k in range(3):
            today.add(
                member,
                f"+86138003{i:03d}{k:02d}",
                "out",
                at(19 + k, i),
                seconds=60,
                imei=imei(PHONE_TAC, 700 + i),
                site="STADIUM",
            )

    cdr, history = today.frame(spark), past.frame(spark)
    return make_night(spark, DAY, cdr, history)


@pytest.fixture(scope="module")
def settings(test_config):
    """The default thresholds, with the volumes scaled down to a 12-call night."""
    return test_config.detectors.goip.model_copy(update={"min_calls": 10, "min_sms_callees": 10})


@pytest.fixture(scope="module")
def night(spark):
    return build_night(spark)


@pytest.fixture(scope="module")
def flag_rows(night, settings):
    """{(entity_type, entity_id): the flag row, with its detail columns} of the night."""
    return {(r.entity_type, r.entity_id): r for r in SimBox(settings).flags(night).collect()}


@pytest.fixture(scope="module")
def flags(flag_rows):
    """{(entity_type, entity_id): (score, evidence)} of the night."""
    assert all(set(FLAG_FIELDS) <= set(r.asDict()) for r in flag_rows.values())
    return {key: (r.score, r.evidence) for key, r in flag_rows.items()}


@pytest.fixture(scope="module")
def scored(night, settings):
    """Every scored SIM's features, indicators and score, by msisdn."""
    return {r.msisdn: r for r in score_sims(sim_features(night, settings), settings).collect()}


def test_luhn_check_digit_in_spark_sql(spark):
    frame = spark.createDataFrame(
        [("490154203237518",), ("490154203237519",), (imei(BOX_TAC, 1),), ("35693803",), ("49015420323751x",), (None,)],
        "imei string",
    )
    expected = spark.createDataFrame(
        [
            ("490154203237518", True),
            ("490154203237519", False),
            (imei(BOX_TAC, 1), True),
            ("35693803", False),
            ("49015420323751x", False),
            (None, False),
        ],
        "imei string, luhn_ok boolean",
    )
    assert_df_equality(frame.withColumn("luhn_ok", luhn_valid(F.col("imei"))), expected, ignore_nullable=True)


def test_box_sharing_one_imei_is_flagged_with_full_score(flags):
    for sim in SHARED_BOX:
        score, evidence = flags[("msisdn", sim)]
        assert score == 1.0
    evidence = flags[("msisdn", SHARED_BOX[0])][1]
    assert evidence.startswith("GOIP-like SIM (score 1.00): 4 SIMs share IMEI " + imei(BOX_TAC, 1))
    assert "TAC 86271805 on no other device in the city" in evidence
    assert "12 outgoing calls to 12 numbers 09:00–09:13 (1 active hour), 0 incoming" in evidence
    assert "83% of calls unanswered, 17% answered <= 40 s" in evidence
    assert "called back by 0 of 12 callees" in evidence
    assert "gaps regular (every 75 s, CV 0.0" in evidence
    assert "1 site (锦江区000号基站)" in evidence
    assert evidence.endswith("SIM first seen today")


def test_sim_and_device_flags_carry_the_main_site_and_the_outgoing_span(flag_rows):
    sim, device = flag_rows[("msisdn", SHARED_BOX[0])], flag_rows[("imei", imei(BOX_TAC, 1))]
    assert sim.site_key == device.site_key == "BOX"
    assert at(9).timestamp() <= sim.window_start.timestamp() < sim.window_end.timestamp() < at(9, 14).timestamp()
    assert device.window_start.timestamp() == min(flag_rows[("msisdn", s)].window_start.timestamp() for s in SHARED_BOX)
    assert device.window_end.timestamp() == max(flag_rows[("msisdn", s)].window_end.timestamp() for s in SHARED_BOX)
    assert at(9, 16).timestamp() <= device.window_end.timestamp() < at(9, 17).timestamp()


def test_box_with_a_fresh_imei_per_sim_is_flagged(flags):
    assert all(flags[("msisdn", sim)][0] == 1.0 for sim in FRESH_BOX)
    evidence = flags[("msisdn", FRESH_BOX[1])][1]
    assert (
        f"IMEI {imei(28923275, 3, valid=False)} looks invented (TAC 28923275 on no other device in the city, "
        "invalid check digit)" in evidence
    )
    assert "SIM seen in 3 devices tonight" in flags[("msisdn", HOPPER)][1]


def test_the_imeis_of_a_sim_hopping_through_devices_are_not_flagged_one_by_one(flags):
    """A box inventing an IMEI per call: the SIM's flag tells it; its one-SIM IMEIs are no devices to seize."""
    hopped = {imei(73523105, 5), imei(65707812, 6), imei(90775649, 7)}
    assert not hopped & {entity for kind, entity in flags if kind == "imei"}


def test_sms_blaster_is_flagged(flags):
    assert all(flags[("msisdn", sim)][0] == 1.0 for sim in BLASTER)
    evidence = flags[("msisdn", BLASTER[0])][1]
    assert "3 SIMs share IMEI" in evidence
    assert "12 outgoing SMS to 12 numbers 10:00–10:04 (1 active hour)" in evidence
    assert "SMS blast to 12 numbers" in evidence
    assert "unanswered" not in evidence


def test_box_devices_are_flagged_with_their_sim_count(flags):
    score, evidence = flags[("imei", imei(BOX_TAC, 1))]
    assert score == 1.0
    assert evidence == (
        f"Suspect device: IMEI {imei(BOX_TAC, 1)} carried 4 SIMs tonight (4 flagged GOIP-like, "
        "best score 1.00); TAC 86271805 on no other device in the city; "
        "48 outgoing events of flagged SIMs 09:00–09:16 at 锦江区000号基站"
    )
    assert "carried 1 SIM tonight" in flags[("imei", imei(51612983, 2))][1]
    assert ("imei", imei(35566009, 8)) in flags
    assert ("imei", imei(PHONE_TAC, 500)) not in flags  # the courier's phone


def test_room_operator_scores_between_a_box_and_a_courier(scored, flags):
    room = scored[ROOM]
    assert room.is_swapped_device and room.is_new_sim and room.is_stationary and not room.is_regular_gaps
    assert scored[SHARED_BOX[0]].score > room.score > scored[COURIER].score >= scored[RESIDENT].score
    assert "its handset" in flags[("msisdn", ROOM)][1] and "carried 2 SIMs this week" in flags[("msisdn", ROOM)][1]


def test_courier_resident_and_crowd_are_not_flagged(scored, flags):
    courier = scored[COURIER]
    assert (courier.n_sites, courier.n_callbacks, courier.first_seen) == (6, 6, DAY - dt.timedelta(days=1))
    assert courier.gap_cv > 0.5 and not courier.is_no_callbacks and not courier.is_stationary
    assert courier.score <= 0.2 and scored[RESIDENT].score <= 0.2
    flagged = {entity for _, entity in flags}
    assert not flagged & {COURIER, RESIDENT, *CROWD}
    assert not set(CROWD) & set(scored), "3 calls each: below min_calls, not scored at all"


def test_only_box_and_room_sims_are_flagged(flags):
    sims = {entity for kind, entity in flags if kind == "msisdn"}
    assert sims == {*SHARED_BOX, *FRESH_BOX, HOPPER, *BLASTER, ROOM}
