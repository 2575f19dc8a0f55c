"""Dens that dodge the textbook (issue #13), end to end: the simulated week — every den kind,
evasive ones included, and the legitimate heavy callers — through the real CLI, scored by
`cdrwatch evaluate`'s own code (`simulator.evaluate.evaluate_range`) against the simulator's truth."""

import polars as pl
import pyarrow.parquet as pq
import pytest

from detectors.rules.sites import distance_m
from jobs.cli import main
from simulator.evaluate import evaluate_range

pytestmark = pytest.mark.slow

KINDS = ("goip_shared", "goip_fresh", "room", "sms_blaster", "goip_hopping", "low_slow", "twin_boxes", "goip_car")


@pytest.fixture(scope="module")
def scored(week_exported):
    week = week_exported
    return evaluate_range(week.config, week.truth, week.dates[0], week.dates[-1])


def _dens(week, day):
    return pl.from_arrow(pq.read_table(week.root / "lake" / "dens" / f"date={day}"))


def _truth(week, name):
    return pl.read_csv(week.truth / name, infer_schema=False)


def test_every_den_kind_is_led(scored):
    assert set(scored.by_kind) >= set(KINDS)
    for kind in KINDS:
        score = scored.by_kind[kind]
        assert score.recall >= 0.95, (kind, score.led, score.den_nights)
    assert scored.overall.recall >= 0.95


def test_one_place_is_one_lead_and_keeps_its_id(scored):
    for kind in KINDS:
        score = scored.by_kind[kind]
        assert score.leads_per_den == pytest.approx(1.0), (kind, score.leads_per_den)
        assert score.id_stability >= 0.9, (kind, score.id_stability)
    assert scored.overall.lead_precision >= 0.9


def test_the_low_and_slow_room_is_found_by_its_second_night(scored):
    assert scored.by_kind["low_slow"].first_lead_delay is not None
    assert scored.by_kind["low_slow"].first_lead_delay <= 1


def test_victims_of_every_kind_are_warned(scored):
    for kind in KINDS:
        warned = scored.by_kind[kind].victims_warned
        assert warned is None or warned >= 0.9, (kind, warned)
    assert scored.overall.victims_warned >= 0.9


def test_no_legitimate_caller_is_in_any_lead(scored):
    assert {"debt_collection", "estate_agent"} <= set(scored.negatives)
    assert scored.negatives_in_leads == {} or not any(scored.negatives_in_leads.values()), scored.negatives_in_leads


def test_the_car_den_is_one_lead_covering_its_route_in_order(week_exported):
    week = week_exported
    truth = _truth(week, "dens.csv").filter(pl.col("kind") == "goip_car")
    sims = _truth(week, "den_sims.csv")
    assert truth.height
    for t in truth.iter_rows(named=True):
        mine = set(sims.filter((pl.col("date") == t["date"]) & (pl.col("den_id") == t["den_id"]))["msisdn"])
        (lead,) = [
            d for d in _dens(week, t["date"]).iter_rows(named=True) if len(set(d["numbers"]) & mine) > len(mine) / 2
        ]
        route = [tuple(map(float, p.split(","))) for p in t["route"].split(";")]
        assert len(route) >= 5
        for lat, lon in route:  # every site it drove past is inside the lead's circle (+ the sites' own scatter)
            assert distance_m(lead["lat"], lead["lon"], lat, lon) <= lead["radius_m"] + 50, (t["date"], lat, lon)
        assert "moving through" in lead["evidence"]
        assert len(lead["site_names"]) >= len(route)


def test_the_box_changing_its_imei_per_call_is_one_den_with_its_devices_collapsed(week_exported):
    week = week_exported
    truth = _truth(week, "dens.csv").filter(pl.col("kind") == "goip_hopping")
    sims = _truth(week, "den_sims.csv")
    for t in truth.iter_rows(named=True):
        mine = set(sims.filter((pl.col("date") == t["date"]) & (pl.col("den_id") == t["den_id"]))["msisdn"])
        leads = [d for d in _dens(week, t["date"]).iter_rows(named=True) if set(d["numbers"]) & mine]
        assert len(leads) == 1, t["date"]
        assert "a new IMEI on almost every call" in leads[0]["evidence"]


def test_evaluate_prints_the_range_tables(week_exported, capsys):
    week = week_exported
    code = main(
        [
            "evaluate",
            "--truth",
            str(week.truth),
            "--from",
            week.dates[0].isoformat(),
            "--to",
            week.dates[-1].isoformat(),
            *week.argv,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    for kind in KINDS:
        assert kind in out
    assert "debt_collection" in out and "estate_agent" in out
