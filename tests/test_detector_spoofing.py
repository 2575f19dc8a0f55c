"""Caller-ID spoofing on a hand-built night: which incoming legs are matched, spoofed or not judged,
the guard against a carrier's lost outgoing records, campaigns, and the flags."""

import datetime as dt
from dataclasses import replace
from types import SimpleNamespace

import pytest
from builders import LOCAL, cdr_row, make_night
from pyspark.sql import functions as F

from detectors.spoofing import (
    CARRIER_NOT_COMPLETE,
    NEAR_MIDNIGHT,
    QUARANTINED,
    WHITELISTED,
    CallerIdSpoofing,
    LegInputs,
    guard_pairs,
    guarded,
    judge_incoming,
    quarantine_mentions,
)
from jobs.config import load_config
from jobs.spoofing import campaign_ids
from schemas.tables import CDR

DAY = dt.date(2026, 11, 24)
ALICE, BOB, CAROL, DAVE = "+8613800000001", "+8613900000002", "+8615000000003", "+8618600000004"
SHOP = "+8613700000009"  # a whitelisted business
STRANGER = "+8613312345678"  # a mobile from another province: not local, never judged


def at(hour, minute=0, second=0, day=DAY):
    return dt.datetime.combine(day, dt.time(hour, minute, second), tzinfo=LOCAL)


def leg(rid, carrier, msisdn, other, direction, when, duration=60, service="voice"):
    return cdr_row(rid, carrier, msisdn, other, direction, service, when, duration, cell_id="c1")


ROWS = [
    # Alice (cm) rings Bob (cu): cu's clock is 90 s ahead, durations rounded differently
    leg("o1", "cm", ALICE, BOB, "out", at(10), 61),
    leg("i1", "cu", BOB, ALICE, "in", at(10, 1, 30), 60),
    # an SMS from Alice to Carol (ct), matched
    leg("o2", "cm", ALICE, CAROL, "out", at(11), 0, "sms"),
    leg("i2", "ct", CAROL, ALICE, "in", at(11, 0, 1), 0, "sms"),
    # a gateway shows Alice's number to Carol and Dave: no outgoing leg
    leg("i3", "ct", CAROL, ALICE, "in", at(15), 400),
    leg("i4", "cu", DAVE, ALICE, "in", at(15, 5), 0),
    # Alice did ring Dave at 16:00, but this leg lasted 10 min against her 1 min: not the same call
    leg("o5", "cm", ALICE, DAVE, "out", at(16), 60),
    leg("i5", "cu", DAVE, ALICE, "in", at(16), 600),
    # 110 and a bank line ring Bob; the bank's SMS notice is real
    leg("i6", "cu", BOB, "110", "in", at(17), 30),
    leg("i7", "cu", BOB, "95588", "in", at(17, 10), 0),
    leg("i8", "cu", BOB, "95588", "in", at(17, 20), 0, "sms"),
    # Dave's (cu) number shown to Alice, but cu's night is partial: not judged
    leg("i9", "cm", ALICE, DAVE, "in", at(18), 0),
    # a stranger and a whitelisted shop ring Carol
    leg("i10", "ct", CAROL, STRANGER, "in", at(19), 30),
    leg("i11", "ct", CAROL, SHOP, "in", at(19, 5), 30),
    # Carol's (ct) number shown to Bob just before midnight; ct's next day is not in the lake yet
    leg("i12", "cu", BOB, CAROL, "in", at(23, 59, 30), 0),
    # Carol's number shown to Alice; ct quarantined a line that mentions Alice
    leg("i13", "cm", ALICE, CAROL, "in", at(20), 0),
]


@pytest.fixture(scope="module")
def night(spark):
    cdr = spark.createDataFrame(ROWS, CDR.spark()).withColumn("district", F.lit("锦江区"))
    whitelist = spark.createDataFrame([(SHOP,)], "number string")
    return make_night(spark, DAY, cdr, whitelist=whitelist)


@pytest.fixture(scope="module")
def inputs(spark, night):
    subscribers = spark.createDataFrame(
        [(ALICE, "cm"), (BOB, "cu"), (CAROL, "ct"), (DAVE, "cu"), (SHOP, "cm")], "msisdn string, carrier string"
    )
    quarantine = spark.createDataFrame(
        [
            ("ct", "ct-9|13800000001|???|broken"),  # Alice alone: Carol's cut line?
            ("cm", "x,13900000002,8613800000001,25:00"),  # Bob and Alice
            ("ct", "ct-7|15000000003|8618600000004|Z"),
        ],  # Carol and Dave
        "carrier string, raw string",
    )
    outgoing = night.cdr.where(F.col("direction") == "out").select(
        "msisdn", "other_party", "service", "start_time", "duration_s"
    )
    return LegInputs(
        outgoing=outgoing,
        subscribers=subscribers,
        incomplete={"cu": "volume suspect"},
        previous_day=frozenset({"cm", "cu", "ct"}),
        next_day=frozenset({"cm", "cu"}),
        mentions=quarantine_mentions(quarantine),
    )


@pytest.fixture(scope="module")
def settings():
    return load_config().detectors.spoofing


def test_every_leg_presenting_a_local_or_protected_number_gets_a_verdict(night, inputs, settings):
    judged = {r.record_id: (r.verdict, r.reason) for r in judge_incoming(night, inputs, settings).collect()}
    assert judged == {
        "i1": ("matched", None),
        "i2": ("matched", None),
        "i3": ("spoofed", None),
        "i4": ("spoofed", None),
        "i5": ("spoofed", None),
        "i6": ("spoofed", None),
        "i7": ("spoofed", None),  # protected, voice
        "i9": ("not_judged", CARRIER_NOT_COMPLETE),
        "i11": ("not_judged", WHITELISTED),
        "i12": ("not_judged", NEAR_MIDNIGHT),
        "i13": ("not_judged", QUARANTINED),
    }, "i8 (a bank's SMS) and i10 (not local) are no candidates"


def test_quarantined_lines_are_keyed_by_the_pair_or_the_one_number_they_mention(spark):
    quarantine = spark.createDataFrame(
        [
            ("cm", "1,13900000002,+8613800000001,460001234567890,x"),
            ("cm", "2,,008615000000003"),
            ("ct", "no number at all"),
        ],
        "carrier string, raw string",
    )
    assert sorted(tuple(r) for r in quarantine_mentions(quarantine).collect()) == [
        ("cm", "13800000001|13900000002"),
        ("cm", "15000000003"),
    ]


def test_a_complete_next_day_lets_a_leg_near_midnight_be_judged(night, inputs, settings):
    whole = replace(inputs, incomplete={}, next_day=frozenset({"cm", "cu", "ct"}))
    judged = {r.record_id: r.verdict for r in judge_incoming(night, whole, settings).collect()}
    assert judged["i12"] == "spoofed" and judged["i9"] == "spoofed"


def test_the_guard_drops_a_carrier_pair_whose_legs_are_mostly_unmatched(night, inputs, settings):
    judged = judge_incoming(night, inputs, settings).withColumn("owner_carrier", F.array_join("owners", "+"))
    strict = settings.model_copy(update={"guard_min_legs": 1, "max_unmatched_share": 0.5})
    kept = {r.record_id for r in guarded(judged, strict).collect()}
    assert kept == {"i3", "i6", "i7"}, "cm's numbers rung on cu: 2 of 3 unmatched -> not judged; on ct 1 of 2 is"
    counts = [
        SimpleNamespace(carrier=r.carrier, owners="+".join(r.owners), verdict=r.verdict, n=1)
        for r in judge_incoming(night, inputs, settings).where(F.col("protected").isNull()).collect()
    ]
    assert guard_pairs(counts, strict) == {
        ("cu", "cm"): "2 of 3 legs rung on cu showing its numbers unmatched "
        "(its outgoing records missing, or the clocks over 120 s apart)"
    }
    assert {r.record_id for r in guarded(judged, settings).collect()} == {"i3", "i4", "i5", "i6", "i7"}


def test_flags_name_the_impersonated_subscriber_and_the_protected_number(night, settings):
    # the notebook path: inputs from the night alone (no neighbouring days: near midnight is not judged)
    flags = {r.entity_id: r for r in CallerIdSpoofing(settings).flags(night).collect()}
    assert set(flags) == {ALICE, CAROL, DAVE, "110", "95588"}, "no partial carrier, no quarantine known here"
    assert flags[CAROL].evidence.startswith("shown to 1 receiver(s) on 1 incoming leg(s)"), "i13; i12 near midnight"
    alice = flags[ALICE]
    assert alice.entity_type == "presented"
    assert alice.evidence.startswith("shown to 2 receiver(s) on 3 incoming leg(s) (2 answered, 2 long)")
    assert alice.evidence.endswith(
        "the number of a local subscriber of cm, who did not place these calls: a victim "
        "of impersonation, not a suspect"
    )
    assert alice.score == pytest.approx(0.5 + 0.05 + 0.10)
    assert flags["110"].score == pytest.approx(0.9) and "protected number (110 police)" in flags["110"].evidence


def test_a_protected_number_has_no_owner_carrier(night, inputs, settings):
    from detectors.spoofing import owner_carrier

    judged = judge_incoming(night, inputs, settings).withColumn("owner_carrier", owner_carrier())
    owners = {r.record_id: r.owner_carrier for r in judged.collect()}
    assert owners["i6"] is None and owners["i3"] == "cm"


def test_campaigns_link_legs_by_presented_number_and_by_segment_in_time():
    legs = [
        SimpleNamespace(presented=p, receiver=r, start_time=t, protected=n)
        for p, r, t, n in [
            (ALICE, "+8613911110001", at(9), None),
            (BOB, "+8613911110002", at(9, 10), None),  # one segment, 10 min
            (CAROL, "+8613911110003", at(12), None),  # 3 h later
            (ALICE, "+8615022220001", at(14), None),  # Alice again: campaign 1
            ("110", "+8618633330001", at(16), "110 police"),
            ("110", "+8618633330002", at(16, 1), "110 police"),
            ("110", "+8613344440001", at(16, 2), "110 police"),  # 110 too, but another gang's segment
        ]
    ]
    ids = campaign_ids([vars(x) for x in legs], 30, DAY)
    assert ids == [
        "S20261124-01",
        "S20261124-01",
        "S20261124-02",
        "S20261124-01",
        "S20261124-03",
        "S20261124-03",
        "S20261124-04",
    ]
