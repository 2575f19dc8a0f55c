"""SequentialDialling on one hand-built night: three dens (per-SIM runs, round-robin over carriers,
shuffled blocks) at three sites, a SIM that sweeps in two windows, and the subscribers it must leave
alone (residents at a den's site, a courier, a sparse customer list dialled in order, a crowd)."""

import datetime as dt
import random

import pytest
from builders import LOCAL, SITE_COLUMNS, make_night
from chispa import assert_df_equality
from pyspark.sql import functions as F

from detectors.base import FLAG_FIELDS
from detectors.sequential import SequentialDialling

DAY = dt.date(2026, 11, 24)
CALL_COLUMNS = (
    "msisdn string, other_party string, direction string, service string, at string, carrier string, cell_id string"
)
SITES = {  # site_key -> label; each carrier has its own cell id at the same site
    "SA": "锦江区001号基站",
    "SB": "金牛区002号基站",
    "SC": "锦江区031号基站",
    "SD": "成华区024号基站",
    "SE": "双流区009号基站",
    "SF": "新都区017号基站",
}

PER_SIM = [f"+8613301000{i:03d}" for i in range(3)]  # site A: each SIM its own run of 139-1234
ROUND_ROBIN = [f"+8615502000{i:03d}" for i in range(6)]  # site B: one list of 137-4243, dealt in turn
SHUFFLED = [f"+8618003000{i:03d}" for i in range(5)]  # site C: shuffled blocks of 155-6027
TWO_WINDOWS = "+8613301000900"  # site F: a morning and an afternoon sweep
RESIDENT = "+8613800000001"  # lives at site A, calls into the den's range
SWITCHBOARD = "+8613800000004"  # busy line at site A, a few calls in the range
COURIER = "+8613800000002"
OFFICE = "+8613800000003"  # sorted customer list, not whitelisted here
CROWD = [f"+8613900{i:06d}" for i in range(200)]  # at the stadium (site D) 19-22h


def call(msisdn, callee, at, site, carrier="cm", direction="out", service="voice"):
    return (msisdn, callee, direction, service, f"{DAY} {at}", carrier, f"{carrier}-{site}", site)


def clock(seconds):
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def night_of(spark, calls):
    """A Night whose CDRs carry their site columns already (as `prepare_night` leaves them)."""
    rows = [(*c[:7], c[7], 30.6, 104.0, SITES.get(c[7], c[7]), "锦江区") for c in calls]
    cdr = (
        spark.createDataFrame(rows, f"{CALL_COLUMNS}, {SITE_COLUMNS}")
        .withColumn("start_time", F.to_timestamp("at"))
        .drop("at")
    )
    return make_night(spark, DAY, cdr)


def dens_and_neighbours():
    rng = random.Random(7)
    calls = []
    for i, sim in enumerate(PER_SIM):  # 60 numbers each, one a minute from 09:00
        for k in range(60):
            calls.append(call(sim, f"+861391234{1000 * i + k:04d}", clock(9 * 3600 + 60 * k + i), "SA"))
    carriers = ["cm", "cu", "ct"]
    for k in range(300):  # 300 numbers, one every 20 s, SIM k % 6
        sim = k % 6
        site = "SE" if sim == 2 and k % 7 == 0 else "SB"  # a ct SIM goes out via the neighbour mast now and then
        calls.append(
            call(ROUND_ROBIN[sim], f"+861374243{5000 + k:04d}", clock(10 * 3600 + 20 * k), site, carriers[sim % 3])
        )
    order = []
    for block in range(4):  # four blocks of 50 numbers, each shuffled
        numbers = list(range(block * 50, block * 50 + 50))
        rng.shuffle(numbers)
        order += numbers
    for k, n in enumerate(order):  # dealt in turn to 5 operators, 21:00-23:20
        calls.append(call(SHUFFLED[k % 5], f"+861556027{n:04d}", clock(21 * 3600 + 42 * k), "SC"))
    calls += [call(TWO_WINDOWS, f"+861391234{5000 + k:04d}", clock(9 * 3600 + 60 * k), "SF") for k in range(40)]
    calls += [
        call(TWO_WINDOWS, f"+861391234{5000 + k:04d}", clock(14 * 3600 + 30 * (k - 40)), "SF") for k in range(40, 140)
    ]
    # 12 numbers right after PER_SIM[0]'s run (so inside its range) while it dials, among 30 other calls
    calls += [
        call(SWITCHBOARD, f"+861391234{k:04d}", clock(9 * 3600 + 240 * (k - 60) + 30), "SA") for k in range(60, 72)
    ]
    calls += [call(SWITCHBOARD, f"+86135{k:04d}{k:04d}", clock(9 * 3600 + 100 * k), "SA") for k in range(30)]
    for k, callee in enumerate(["+8613912341010", "+8613912342030", "+8613600000001", "+8613600000002"]):
        calls.append(call(RESIDENT, callee, clock(9 * 3600 + 1800 * k), "SA"))
    for k in range(50):  # a courier: strangers everywhere, called back
        callee = f"+86{rng.choice(['139', '137', '155'])}{rng.randint(0, 9999):04d}{rng.randint(0, 9999):04d}"
        site = ["SA", "SB", "SC", "SE"][k * 4 // 50]
        calls.append(call(COURIER, callee, clock(9 * 3600 + 700 * k), site))
        if k % 3 == 0:
            calls.append(call(COURIER, callee, clock(9 * 3600 + 700 * k + 300), site, direction="in"))
    customers = sorted(rng.sample(range(10_000), 1500))  # 15 % of a segment, rung in ascending order
    for k, n in enumerate(customers[:200]):
        calls.append(call(OFFICE, f"+861381111{n:04d}", clock(9 * 3600 + 50 * k), "SB"))
    for i, sim in enumerate(CROWD):
        for k in range(2):
            callee = f"+861391234{rng.randint(0, 9999):04d}"
            calls.append(call(sim, callee, clock(19 * 3600 + rng.randint(0, 3 * 3600 - 1)), "SD"))
    return calls


@pytest.fixture(scope="module")
def detector(test_config):
    return SequentialDialling(test_config.detectors.sequential)


@pytest.fixture(scope="module")
def flags(spark, detector):
    rows = detector.flags(night_of(spark, dens_and_neighbours())).collect()
    return {r.entity_id: r for r in rows}


def test_every_den_sim_is_flagged_and_nobody_else(flags):
    assert set(flags) == set(PER_SIM + ROUND_ROBIN + SHUFFLED + [TWO_WINDOWS])
    assert all(r.entity_type == "msisdn" for r in flags.values())


def test_per_sim_runs_say_whose_run_it_was(flags):
    assert flags[PER_SIM[1]].evidence == (
        "60 of the 60 numbers 139-1234-1000…1059 dialled in ascending order by this SIM alone 09:00–09:59 "
        "at 锦江区001号基站 (3 SIMs swept there 09:00–12:00); this SIM placed 60 of the calls, "
        "100% of its outgoing calls in that window; 60 swept calls in 1 window today"
    )


def test_round_robin_over_carriers_is_one_den_and_keeps_calls_through_the_neighbour_mast(flags):
    evidence = flags[ROUND_ROBIN[2]].evidence
    assert evidence.startswith(
        "300 of the 300 numbers 137-4243-5000…5299 dialled in ascending order "
        "round-robin by 6 SIMs 10:00–11:39 at 金牛区002号基站 (6 SIMs swept there"
    )
    assert "this SIM placed 50 of the calls, 100% of its outgoing calls" in evidence


def test_shuffled_blocks_are_caught_but_score_below_ordered_sweeps(flags):
    assert flags[SHUFFLED[0]].evidence.startswith(
        "200 of the 200 numbers 155-6027-0000…0199 dialled in shuffled blocks by 5 SIMs 21:00–23:19"
    )
    shuffled = max(flags[s].score for s in SHUFFLED)
    ordered = min(flags[s].score for s in PER_SIM + ROUND_ROBIN)
    assert 0.5 < shuffled < ordered <= 1.0


def test_a_sim_swept_in_several_windows_gets_one_flag_with_the_day_total(flags):
    evidence = flags[TWO_WINDOWS].evidence
    assert evidence.startswith(
        "100 of the 100 numbers 139-1234-5040…5139 dialled in ascending order by this SIM alone 14:00–14:49"
    )  # the stronger afternoon
    assert evidence.endswith("140 swept calls in 2 windows today")


def test_calls_into_a_dens_range_among_many_others_are_not_a_sweep(flags):
    """The switchboard's 12 calls inside PER_SIM[0]'s range are under a third of its calls."""
    assert SWITCHBOARD not in flags and RESIDENT not in flags
    assert flags[PER_SIM[0]].evidence.startswith(
        "72 of the 72 numbers 139-1234-0000…0071 dialled in ascending order by this SIM alone"
    )


def local(hour):
    """The instant of `hour`:00 local time on DAY (24 = the next midnight), in seconds."""
    return (dt.datetime.combine(DAY, dt.time(0), tzinfo=LOCAL) + dt.timedelta(hours=hour)).timestamp()


def test_the_flag_columns_say_what_the_evidence_says(flags):
    """The dens step reads the columns, never the sentence: they tell the same range and dialling."""
    for r in flags.values():
        span = f"{r.segment[:3]}-{r.segment[3:]}-{r.range_lo[-4:]}…{r.range_hi[-4:]}"
        assert f" numbers {span} dialled {r.pattern} " in r.evidence, r


def test_round_robin_flag_columns_name_site_range_pattern_and_window(flags):
    r = flags[ROUND_ROBIN[2]]
    assert (r.site_key, r.segment, r.range_lo, r.range_hi, r.pattern) == (
        "SB",
        "1374243",
        "+8613742435000",
        "+8613742435299",
        "in ascending order round-robin by 6 SIMs",
    )
    assert (r.window_start.timestamp(), r.window_end.timestamp()) == (local(9), local(12))


def test_the_last_window_of_the_day_ends_at_midnight_and_the_strongest_window_is_kept(flags):
    shuffled = flags[SHUFFLED[0]]
    assert (shuffled.window_start.timestamp(), shuffled.window_end.timestamp()) == (local(21), local(24))
    assert shuffled.pattern == "in shuffled blocks by 5 SIMs" and shuffled.site_key == "SC"
    afternoon = flags[TWO_WINDOWS]
    assert (afternoon.range_lo, afternoon.range_hi) == ("+8613912345040", "+8613912345139")
    assert (afternoon.window_start.timestamp(), afternoon.window_end.timestamp()) == (local(12), local(15))


def test_empty_night_gives_an_empty_frame_of_the_flag_shape(spark, detector):
    flags = detector.flags(night_of(spark, []))
    expected = spark.createDataFrame([], "entity_type string, entity_id string, score double, evidence string")
    assert_df_equality(flags.select(*FLAG_FIELDS), expected, ignore_nullable=True)
