"""Dens end to end: the simulated week through `cdrwatch dens`, against the simulator's truth."""

import statistics

import polars as pl
import pyarrow.parquet as pq
import pytest

from detectors.rules.sites import distance_m

pytestmark = pytest.mark.slow


def _dens(week, day):
    return pl.from_arrow(pq.read_table(week.root / "lake" / "dens" / f"date={day}"))


def _truth(week, name, day):
    return pl.read_csv(week.truth / name, infer_schema=False).filter(pl.col("date") == day.isoformat())


def test_dens_are_found_located_and_keep_their_ids(week_dens):
    week = week_dens
    ids_of_truth: dict[str, set[str]] = {}
    errors, matched, found_dens, pure_dens = [], 0, 0, 0
    truth_total = 0
    for day in week.dates:
        dens = _dens(week, day)
        sims = _truth(week, "den_sims.csv", day)
        truth = _truth(week, "dens.csv", day)
        truth_total += truth.height
        sims_of = {d: set(sims.filter(pl.col("den_id") == d)["msisdn"]) for d in truth["den_id"]}
        all_den_sims = set(sims["msisdn"])
        for den in dens.iter_rows(named=True):
            found_dens += 1
            pure_dens += len(set(den["numbers"]) & all_den_sims) >= 0.9 * len(den["numbers"])
        for t in truth.iter_rows(named=True):
            best = max(dens.iter_rows(named=True), key=lambda d: len(set(d["numbers"]) & sims_of[t["den_id"]]))
            if len(set(best["numbers"]) & sims_of[t["den_id"]]) > len(sims_of[t["den_id"]]) / 2:
                matched += 1
                errors.append(distance_m(float(t["lat"]), float(t["lon"]), best["lat"], best["lon"]))
                ids_of_truth.setdefault(t["den_id"], set()).add(best["den_id"])
                assert best["district"] == t["district"], (day, t["den_id"])
    print(
        f"den recall {matched}/{truth_total}, den precision {pure_dens}/{found_dens}, "
        f"median location error {statistics.median(errors):.0f} m"
    )
    assert matched / truth_total >= 0.9
    assert pure_dens / found_dens >= 0.9
    assert statistics.median(errors) <= 500
    assert all(len(ids) == 1 for ids in ids_of_truth.values()), ids_of_truth  # den01 moves on day 4


def test_victims_are_found(week_dens):
    week = week_dens
    found = total = 0
    for day in week.dates:
        victims = set(pl.from_arrow(pq.read_table(week.root / "lake" / "victims" / f"date={day}"))["number"])
        truth = set(_truth(week, "victims.csv", day)["number"])
        found += len(victims & truth)
        total += len(truth)
    assert found / total >= 0.8


def test_no_hard_negative_is_a_den_member(week_dens):
    negatives = set(pl.read_csv(week_dens.truth / "hard_negatives.csv", infer_schema=False)["number"])
    for day in week_dens.dates:
        members = {n for numbers in _dens(week_dens, day)["numbers"] for n in numbers}
        assert not (members & negatives), day
