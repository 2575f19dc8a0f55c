"""Detectors end to end: a simulated week through `cdrwatch ingest` and `cdrwatch detect`, scored
against the simulator's truth the way an analyst would with `cdrwatch evaluate`."""

import polars as pl
import pytest
from rich.console import Console

from jobs.cli import main
from simulator.evaluate import evaluate, read_flags

pytestmark = pytest.mark.slow


def _evaluations(week):
    return [evaluate(read_flags(week.config, day), week.truth, day) for day in week.dates]


def test_sim_flags_find_the_dens_and_spare_the_hard_negatives(week_detected):
    evaluations = _evaluations(week_detected)
    console = Console(width=140)
    for e in evaluations:
        console.print(e.table())
    union = [e.score("all SIM flags (union)") for e in evaluations]
    flagged = sum(s.flagged for s in union)
    hits = sum(s.true_positives for s in union)
    relevant = sum(s.relevant for s in union)
    assert hits / flagged >= 0.9, f"precision {hits}/{flagged}"
    assert hits / relevant >= 0.9, f"recall {hits}/{relevant}"
    for e in evaluations:
        assert e.hard_negatives_flagged.get("courier", []) == [], e.day
        assert e.hard_negatives_flagged.get("telemarketing", []) == [], e.day
        assert len(e.hard_negatives_flagged.get("crowd", [])) <= 1, e.day


def test_whitelisted_numbers_are_not_in_any_flag(week_detected):
    whitelist = set(pl.read_csv(week_detected.root / "landing" / "whitelist.csv", infer_schema=False)["number"])
    flagged = set()
    for day in week_detected.dates:
        flagged |= set(read_flags(week_detected.config, day)["entity_id"])
    normalised = {n if n.startswith("+") else "+86" + n[-11:] for n in whitelist if len(n) >= 11}
    assert not (flagged & normalised)


def test_congested_den_sites_are_told_from_the_crowd(week_detected):
    scored = [e.score("congestion (sites, score >= 0.5)") for e in _evaluations(week_detected)[2:]]
    assert sum(s.true_positives for s in scored) / sum(s.relevant for s in scored) >= 0.9
    assert all(s.note == "" for s in scored), "the crowd's site was flagged as a den"


def test_evaluate_command_prints_the_table(week_detected, capsys):
    day = week_detected.dates[3].isoformat()
    assert main(["evaluate", "--truth", str(week_detected.truth), "--date", day, *week_detected.argv]) == 0
    out = capsys.readouterr().out
    assert "all SIM flags (union)" in out and "hard negatives: courier" in out
