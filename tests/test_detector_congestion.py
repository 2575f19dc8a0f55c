"""detectors.congestion: a den's site stands out against its own all-hours baseline and is told from a
crowd by who drives the load; hand-built nights of CDRs that already carry their sites."""

import datetime as dt
from dataclasses import replace

import pytest
from builders import LOCAL, SITE_FIELDS, make_night
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from detectors.congestion import CellCongestion, congested_hours, hour_ranges, hourly_counts, site_baseline
from jobs.config import Congestion
from schemas.tables import CDR

DAY = dt.date(2026, 11, 24)
SETTINGS = Congestion(
    baseline_days=7,
    min_baseline_days=2,
    min_robust_z=6.0,
    min_hour_calls=40,
    full_robust_z=15.0,
    heavy_sim_calls_per_hour=8.0,
    min_heavy_sims=3,
)
SITES = {  # site -> label, its cells (carrier, cell_id)
    "SA": (
        "锦江区128号基站",
        [("cm", "4100-20001"), ("cu", "460-01-23000-11"), ("ct", "ct00001"), ("cm", "4100-20002")],
    ),
    "SB": ("成华区024号基站", [("cm", "4104-20660"), ("ct", "ct02100")]),
    "SC": ("高新区014号基站", [("cm", "4105-20777")]),
}
DEN_CELLS = SITES["SA"][1][:3]  # the box's SIMs use these; 4100-20002 only carries residents
DEN_SIMS = [f"+8617000000{i:03d}" for i in range(8)]
DEN_HOURS = (9, 10, 11, 14, 15)
CROWD = [f"+8613500{i:06d}" for i in range(300)]
SCHEMA = StructType(CDR.spark().fields + SITE_FIELDS)  # with what prepare_night adds


def event(day, msisdn, site, cell, hour, second, direction="out"):
    """One CDR row as `prepare_night` leaves it: the lake's columns plus the site's; `second` of the hour."""
    carrier, cell_id = cell
    when = dt.datetime.combine(day, dt.time(hour), LOCAL) + dt.timedelta(seconds=second)
    return (
        f"{msisdn}-{when.isoformat()}-{direction}",
        carrier,
        msisdn,
        "+8613900000000",
        direction,
        "voice",
        when,
        30,
        None,
        None,
        cell_id,
        "test",
        1,
        day,
        site,
        30.6,
        104.0,
        SITES[site][0],
        "锦江区",
    )


def residents(day, rows):
    """30 neighbours per site, 6 calls each between 08:00 and 21:59 (~13 an hour), and one received."""
    for site, (_, cells) in SITES.items():
        for r in range(30):
            msisdn = f"+86138{ord(site[1]):02d}{r:06d}"
            cell = cells[-1] if site == "SA" else cells[r % len(cells)]
            for k in range(6):
                rows.append(event(day, msisdn, site, cell, 8 + (r + 3 * k) % 14, 60 * ((7 * r + k) % 60)))
            rows.append(event(day, msisdn, site, cell, 8 + r % 14, 1800, direction="in"))


def den(day, rows):
    """8 SIMs in a box at site A, 40 outgoing calls an hour each in the shift hours; SIM i on cell i % 3."""
    for i, sim in enumerate(DEN_SIMS):
        for hour in DEN_HOURS:
            rows.extend(event(day, sim, "SA", DEN_CELLS[i % 3], hour, 90 * k + i) for k in range(40))


def crowd(day, rows):
    """300 fans at the stadium (site B) 19-22 h: two calls each and one received."""
    for f, fan in enumerate(CROWD):
        cell = SITES["SB"][1][f % 2]
        rows.append(event(day, fan, "SB", cell, 19 + f % 3, 11 * f))
        rows.append(event(day, fan, "SB", cell, 19 + (f + 1) % 3, 7 * f + 1))
        rows.append(event(day, fan, "SB", cell, 19 + (f + 2) % 3, 5 * f + 2, direction="in"))


def busy_hour(day, rows):
    """Site C's rush at 15:00: 120 office workers call once, one of them (a courier) 20 times."""
    cell = SITES["SC"][1][0]
    rows.extend(event(day, f"+8615000{w:06d}", "SC", cell, 15, 29 * w) for w in range(120))
    rows.extend(event(day, "+8615000000000", "SC", cell, 15, 120 * k + 1) for k in range(20))


@pytest.fixture(scope="module")
def today():
    rows = []
    residents(DAY, rows)
    den(DAY, rows)
    crowd(DAY, rows)
    busy_hour(DAY, rows)
    return rows


@pytest.fixture(scope="module")
def night(spark, today):
    """Tonight: the den at A (in business for the last two days too), the crowd at B, a rush at C;
    three days of history of neighbours."""
    history = []
    for back in (3, 2, 1):
        past = DAY - dt.timedelta(days=back)
        residents(past, history)
        if back < 3:
            den(past, history)
    return make_night(spark, DAY, spark.createDataFrame(today, SCHEMA), spark.createDataFrame(history, SCHEMA))


def flags_of(night, earlier_flags=None):
    rows = CellCongestion(SETTINGS).flags(replace(night, earlier_flags=earlier_flags)).collect()
    return {r.entity_id: r for r in rows}


@pytest.fixture(scope="module")
def unflagged(night):
    return flags_of(night)


@pytest.fixture(scope="module")
def with_sim_flags(night, spark):
    earlier = spark.createDataFrame(
        [("msisdn", sim, 0.9, "dialled in order") for sim in DEN_SIMS[:5]]
        + [("imei", CROWD[0], 0.9, "an imei flag: not a SIM, ignored")],
        "entity_type string, entity_id string, score double, evidence string",
    )
    return flags_of(night, earlier)


def test_the_dens_cells_are_flagged_high_though_the_den_was_there_yesterday_too(unflagged):
    den_cells = {cell for _, cell in DEN_CELLS}
    assert den_cells <= set(unflagged)
    assert "4100-20002" not in unflagged, "a cell only the neighbours used is not the den's"
    assert {unflagged[c].score for c in den_cells} == {unflagged["4100-20001"].score}
    assert unflagged["4100-20001"].score > 0.7
    assert all(r.entity_type == "cell" for r in unflagged.values())


def test_den_evidence_names_hours_site_and_the_few_busy_sims(unflagged):
    evidence = unflagged["ct00001"].evidence
    assert evidence.startswith("den-like: ")
    assert "outgoing calls/SMS 09:00–12:00, 14:00–16:00 at 锦江区128号基站 (baseline " in evidence
    assert "8 SIM(s) at 8+ calls/h making" in evidence
    assert "flagged SIMs 0%" in evidence
    assert evidence.endswith("this cell carried 400 of those SIMs' calls")  # SIMs 2 and 5, 5 hours of 40


def test_flags_carry_the_site_and_its_congested_span(unflagged):
    """The report and dens read these columns, not the evidence's "09:00–12:00, 14:00–16:00 at ..."."""
    midnight = dt.datetime.combine(DAY, dt.time(0), LOCAL)
    for _, cell in DEN_CELLS:
        r = unflagged[cell]
        assert r.site_key == "SA"
        assert (r.window_start.timestamp(), r.window_end.timestamp()) == (
            (midnight + dt.timedelta(hours=9)).timestamp(),
            (midnight + dt.timedelta(hours=16)).timestamp(),
        )
    stadium = unflagged[SITES["SB"][1][0][1]]
    assert stadium.site_key == "SB"
    assert stadium.window_end.timestamp() == (midnight + dt.timedelta(hours=22)).timestamp()


def test_sims_flagged_by_earlier_detectors_raise_the_score_and_show_in_the_evidence(today, unflagged, with_sim_flags):
    at_den = [r for r in today if r[14] == "SA" and r[4] == "out" and r[6].hour in DEN_HOURS]
    flagged = sum(r[2] in DEN_SIMS[:5] for r in at_den)
    assert with_sim_flags["4100-20001"].score > unflagged["4100-20001"].score
    assert f"{len(at_den):,} outgoing calls/SMS" in with_sim_flags["4100-20001"].evidence
    assert f"flagged SIMs {round(100 * flagged / len(at_den))}%" in with_sim_flags["4100-20001"].evidence
    assert with_sim_flags["4104-20660"].score < 0.05, "an imei flag does not make the crowd's SIMs flagged"


def test_the_crowd_is_flagged_low_and_called_crowd_like(unflagged):
    stadium = [unflagged[c] for _, c in SITES["SB"][1]]
    assert all(r.score < 0.3 for r in stadium)
    evidence = stadium[0].evidence
    assert evidence.startswith("crowd-like: ")
    assert "19:00–22:00 at 成华区024号基站" in evidence
    assert "0 SIM(s) at 8+ calls/h making 0%" in evidence
    assert evidence.endswith("of them")


def test_one_very_busy_person_in_a_rush_hour_is_not_a_den(unflagged):
    office = unflagged["4105-20777"]
    assert office.score < 0.3
    assert office.evidence.startswith("crowd-like: ")
    assert "1 SIM(s) at 8+ calls/h" in office.evidence


def test_scores_order_den_above_crowd(unflagged):
    assert unflagged["4100-20001"].score > 0.7 > 0.3 > unflagged["4105-20777"].score >= unflagged["4104-20660"].score


def test_without_enough_history_nothing_is_flagged_and_the_note_says_why(night):
    detector = CellCongestion(SETTINGS)
    one_day = replace(night, history=night.history.where(F.col("date") == DAY - dt.timedelta(days=1)))
    assert detector.flags(one_day).count() == 0
    assert detector.note(one_day) == "no baseline yet (1 of 2 days of history): no cell flagged"
    assert detector.note(replace(night, history=night.history.limit(0))).startswith("no baseline yet (0 of 2")
    assert detector.note(night) is None


def test_couriers_moving_between_sites_congest_nothing(spark):
    """A courier's 60 calls to customers, 20 at each of three stops in the morning: many calls from one
    SIM, but no site carries min_hour_calls in any hour, so nothing is congested."""
    rows, past = [], []
    for back in (2, 1):
        past.append(event(DAY - dt.timedelta(days=back), "+8613900000001", "SC", SITES["SC"][1][0], 12, 0))
    for k in range(60):
        site = ("SA", "SB", "SC")[k // 20]
        rows.append(event(DAY, "+8613900000009", site, SITES[site][1][0], 9 + k // 6, 60 * k))
    night = make_night(spark, DAY, spark.createDataFrame(rows, SCHEMA), spark.createDataFrame(past, SCHEMA))
    assert CellCongestion(SETTINGS).flags(night).count() == 0


def test_hour_ranges_merge_consecutive_hours(spark):
    hours = spark.createDataFrame(
        [("S1", [9, 10, 11, 14, 15]), ("S2", [23]), ("S3", [0, 1, 2, 3])], "site_key string, hour_list array<int>"
    )
    expected = spark.createDataFrame(
        [("S1", "09:00–12:00, 14:00–16:00"), ("S2", "23:00–24:00"), ("S3", "00:00–04:00")],
        "site_key string, hours string",
    )
    assert_df_equality(
        hours.select("site_key", hour_ranges(F.col("hour_list")).alias("hours")), expected, ignore_nullable=True
    )


def test_site_baseline_counts_missing_hours_as_zero(spark):
    """5 calls in each of 13 hours on two days, the other 11 hours of each day count as 0: median 5 and
    MAD 0, so sigma is the Poisson floor sqrt(5)."""
    rows = [
        event(DAY - dt.timedelta(days=d), f"+86139{h:02d}{k:06d}", "SA", SITES["SA"][1][0], h, 60 * k)
        for d in (1, 2)
        for h in range(8, 21)
        for k in range(5)
    ]
    counts = hourly_counts(spark.createDataFrame(rows, SCHEMA))
    expected = spark.createDataFrame([("SA", 5.0, 5**0.5)], "site_key string, median double, sigma double")
    assert_approx_df_equality(site_baseline(counts), expected, 1e-9, ignore_nullable=True)


def test_a_site_never_busy_before_is_measured_against_poisson_noise(spark):
    """Two quiet days elsewhere, then 50 calls at 03:00 at a site that never had one: median 0, sigma 1."""
    past = [event(DAY - dt.timedelta(days=d), "+8613900000001", "SC", SITES["SC"][1][0], 12, 0) for d in (1, 2)]
    tonight = [event(DAY, f"+86139000001{k:02d}", "SB", SITES["SB"][1][0], 3, k) for k in range(50)]
    located = spark.createDataFrame(tonight, SCHEMA).withColumn("hour", F.hour("start_time"))
    found = congested_hours(located, hourly_counts(spark.createDataFrame(past, SCHEMA)), SETTINGS).collect()
    assert [(r.site_key, r.n_hours, r.median, r.sigma, r.hours) for r in found] == [("SB", 1, 0.0, 1.0, "03:00–04:00")]
