"""`cdrwatch evaluate --from --to`: dens and leads of a range of nights against a simulator's truth/,
on a hand-built lake (three nights of dens, victims and flags) and truth CSVs. Polars only, no Spark."""

import datetime as dt
import math

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.cli import main
from jobs.config import load_config
from jobs.errors import CdrwatchError
from schemas.tables import DEN, FLAG, VICTIMS
from simulator.evaluate import evaluate_range

NIGHTS = [dt.date(2026, 11, 20), dt.date(2026, 11, 21), dt.date(2026, 11, 22)]
D20, D21, D22 = (d.isoformat() for d in NIGHTS)
LAT, LON = 30.65, 104.07
METRES_PER_MILLIDEGREE = 6_371_000 * math.radians(0.001)  # 0.001 degree of latitude

A = [f"+861390000000{i}" for i in range(1, 5)]  # den01, a GOIP box: 4 SIMs
B = [f"+861390000001{i}" for i in range(10)]  # den02, a room: 10 SIMs, reported as two dens
C = [f"+861390000002{i}" for i in range(1, 4)]  # den03, low and slow: found from its 2nd night
E = [f"+861390000003{i}" for i in range(1, 5)]  # den04, a box in a car: never located
COURIER, AGENT, CROWD_21, CROWD_22, TELEMARKETER = (f"+86138000000{i:02d}" for i in range(1, 6))

TRUTH_DENS = [  # date, den_id, kind; every truth den sits at LAT, LON
    (D20, "den01", "goip_shared"),
    (D21, "den01", "goip_shared"),
    (D22, "den01", "goip_shared"),
    (D20, "den02", "room"),
    (D21, "den02", "room"),
    (D20, "den03", "low_slow"),
    (D21, "den03", "low_slow"),
    (D22, "den03", "low_slow"),
    (D21, "den04", "goip_car"),
    (D22, "den04", "goip_car"),
]
SIMS = {"den01": A, "den02": B, "den03": C, "den04": E}


def lake_dens(night):
    """(den_id, numbers, located, lat offset in 0.001 degrees) of the night's lake/dens."""
    return {
        D20: [("L1", A, True, 0), ("L2a", B[:6], True, 1), ("L2b", B[6:], True, 0)],
        D21: [
            ("L1", A, True, 0),
            ("L2a", B[:6], True, 1),
            ("L2b", B[6:], True, 0),
            ("L3", C[:2], True, 0),
            ("L4", E, False, 0),
        ],
        D22: [("L9", A, True, 0), ("L3", C, True, 0), ("L4", E, False, 0), ("L5", [AGENT, "+8613700000001"], True, 0)],
    }[night]


VICTIMS_TRUTH = [
    (D20, "den01", "+8618100000001"),
    (D20, "den01", "+8618100000002"),
    (D21, "den01", "+8618100000003"),
    (D22, "den03", "+8618100000004"),
]
VICTIMS_LAKE = {D20: ["+8618100000001"], D21: ["+8618100000003", "+8618100000004"], D22: []}
FLAGS = {  # (detector, entity_type, entity_id)
    D20: [("goip", "msisdn", A[0]), ("sequential", "msisdn", CROWD_21)],
    D21: [("sequential", "msisdn", COURIER), ("goip", "msisdn", COURIER), ("imei", "imei", AGENT)],
    D22: [("lowslow", "msisdn", AGENT), ("goip", "msisdn", CROWD_22)],
}


def write_partition(lake, table, night, rows):
    """`lake/<table>/date=D/part-0.parquet` in the table's Arrow schema (partition column left out)."""
    fields = [f for f in table.arrow() if f.name != "date"]
    defaults = {
        pa.string(): "",
        pa.float64(): 0.0,
        pa.int32(): 0,
        pa.int64(): 0,
        pa.date32(): dt.date(2026, 11, 1),
        pa.timestamp("us", tz="UTC"): dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc),
        pa.list_(pa.string()): [],
    }
    full = [{f.name: row.get(f.name, None if f.nullable else defaults[f.type]) for f in fields} for row in rows]
    path = lake / table.name / f"date={night}" / "part-0.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(full, schema=pa.schema(fields)), path)


def write_lake(lake, nights=(D20, D21, D22)):
    for night in nights:
        write_partition(
            lake,
            DEN,
            night,
            [
                {
                    "den_id": den_id,
                    "numbers": numbers,
                    "district": "锦江区" if located else None,
                    "lat": LAT + offset / 1000 if located else None,
                    "lon": LON if located else None,
                }
                for den_id, numbers, located, offset in lake_dens(night)
            ],
        )
        write_partition(lake, VICTIMS, night, [{"number": n, "den_id": "L1"} for n in VICTIMS_LAKE[night]])
        write_partition(
            lake,
            FLAG,
            night,
            [{"detector": d, "entity_type": t, "entity_id": e, "score": 1.0} for d, t, e in FLAGS[night]],
        )


def write_truth(folder):
    folder.mkdir(parents=True)
    # route, route_radius_m: columns the simulator adds at the end; evaluate reads by header
    pl.DataFrame(
        [
            {
                "date": d,
                "den_id": den,
                "kind": kind,
                "pattern": "p",
                "lat": LAT,
                "lon": LON,
                "district": "锦江区",
                "cells": "c1",
                "moved": False,
                "route": "",
                "route_radius_m": "",
            }
            for d, den, kind in TRUTH_DENS
        ]
    ).write_csv(folder / "dens.csv")
    pl.DataFrame(
        [
            {"date": d, "den_id": den, "msisdn": n, "carrier": "cm", "imsi": "4600", "imei": "86"}
            for d, den, _ in TRUTH_DENS
            for n in SIMS[den]
        ]
    ).write_csv(folder / "den_sims.csv")
    pl.DataFrame(
        [
            {
                "date": d,
                "den_id": den,
                "number": n,
                "first_contact": f"{d}T10:00:00",
                "longest_call_s": 300,
                "n_calls": 1,
            }
            for d, den, n in VICTIMS_TRUTH
        ]
    ).write_csv(folder / "victims.csv")
    pl.DataFrame(
        {
            "number": [COURIER, AGENT, CROWD_21, CROWD_22, TELEMARKETER],
            "kind": ["courier", "estate_agent", "crowd", "crowd", "telemarketing"],
            "date": [None, None, D21, D22, "2026-11-25"],
        }
    ).write_csv(folder / "hard_negatives.csv")
    pl.DataFrame(
        schema={c: pl.String for c in ("date", "cause", "den_id", "lat", "lon", "district", "cells", "hours")}
    ).write_csv(folder / "congestion.csv")
    return folder


@pytest.fixture
def scenario(tmp_path):
    write_lake(tmp_path / "lake")
    truth = write_truth(tmp_path / "truth")
    config = load_config(
        overrides=[
            f"paths.lake={tmp_path / 'lake'}",
            f"paths.landing={tmp_path / 'landing'}",
            f"paths.outbox={tmp_path / 'outbox'}",
        ]
    )
    return config, truth, tmp_path


def test_a_den_led_every_night_under_two_ids(scenario):
    config, truth, _ = scenario
    box = evaluate_range(config, truth, NIGHTS[0], NIGHTS[-1]).by_kind["goip_shared"]
    assert (box.den_nights, box.led, box.recall) == (3, 3, 1.0)
    assert (box.first_truth_night, box.first_lead_night, box.first_lead_delay) == (NIGHTS[0], NIGHTS[0], 0)
    assert box.leads_per_den == 1.0
    assert box.id_stability == pytest.approx(2 / 3)  # L1, L1, then L9
    assert (box.victims, box.victims_found, box.victims_warned) == (3, 2, pytest.approx(2 / 3))
    assert box.position_error_m == 0.0


def test_a_room_split_into_two_leads_is_led_by_the_larger_one(scenario):
    config, truth, _ = scenario
    room = evaluate_range(config, truth, NIGHTS[0], NIGHTS[-1]).by_kind["room"]
    assert (room.den_nights, room.led, room.recall, room.first_lead_delay) == (2, 2, 1.0, 0)
    assert room.leads_per_den == 2.0  # 6 and 4 of its 10 SIMs: two places each night
    assert room.id_stability == 1.0  # L2a, the one holding more than half
    assert room.position_error_m == pytest.approx(METRES_PER_MILLIDEGREE, abs=0.01)
    assert room.victims_warned is None  # no truth victims: nothing to warn


def test_a_den_found_from_its_second_night_has_a_delay_of_one(scenario):
    config, truth, _ = scenario
    evaluation = evaluate_range(config, truth, NIGHTS[0], NIGHTS[-1])
    slow = evaluation.by_kind["low_slow"]
    assert (slow.den_nights, slow.led, slow.recall) == (3, 2, pytest.approx(2 / 3))
    assert (slow.first_truth_night, slow.first_lead_night, slow.first_lead_delay) == (NIGHTS[0], NIGHTS[1], 1)
    assert slow.leads_per_den == 1.0  # the unseen first night is not a place
    assert (slow.victims, slow.victims_found) == (1, 0)  # warned, but on another night
    assert [n.led_by for n in evaluation.den_nights if n.den_id == "den03"] == [None, "L3", "L3"]
    # the same range started at its second night: found on its first night
    assert evaluate_range(config, truth, NIGHTS[1], NIGHTS[-1]).by_kind["low_slow"].first_lead_delay == 0


def test_a_den_without_position_is_not_a_lead(scenario):
    config, truth, _ = scenario
    car = evaluate_range(config, truth, NIGHTS[0], NIGHTS[-1]).by_kind["goip_car"]
    assert (car.den_nights, car.led, car.recall) == (2, 0, 0.0)
    assert (car.first_truth_night, car.first_lead_night, car.first_lead_delay) == (NIGHTS[1], None, None)
    assert car.leads_per_den == 1.0  # one (unlocated) den holds its SIMs
    assert car.id_stability is None and car.position_error_m is None


def test_overall_pools_every_kind(scenario):
    config, truth, _ = scenario
    evaluation = evaluate_range(config, truth, NIGHTS[0], NIGHTS[-1])
    overall = evaluation.overall
    assert list(evaluation.by_kind) == ["goip_car", "goip_shared", "low_slow", "room"]
    assert (overall.dens.den_nights, overall.dens.led, overall.recall) == (10, 7, 0.7)
    assert (overall.lake_dens, overall.pure_dens, overall.lead_precision) == (12, 11, pytest.approx(11 / 12))
    assert overall.victims_warned == 0.5
    assert overall.id_stability == pytest.approx(6 / 7)
    assert overall.leads_per_den == pytest.approx(11 / 9)
    assert overall.dens.first_lead_delay is None  # den04 was never led
    assert evaluation.by_den["den03"].first_lead_delay == 1 and evaluation.by_den["den04"].led == 0


def test_hard_negatives_in_flags_and_in_leads_are_told_apart(scenario):
    config, truth, _ = scenario
    evaluation = evaluate_range(config, truth, NIGHTS[0], NIGHTS[-1])
    assert evaluation.negatives == {"courier": 1, "crowd": 2, "estate_agent": 1, "telemarketing": 0}
    # the crowd member flagged on 20 November was in the crowd on the 21st only: not counted
    assert evaluation.negatives_in_flags == {
        "courier": [COURIER],
        "crowd": [CROWD_22],
        "estate_agent": [AGENT],
        "telemarketing": [],
    }
    assert evaluation.negatives_in_leads == {"courier": [], "crowd": [], "estate_agent": [AGENT], "telemarketing": []}
    assert evaluation.negative_detectors["courier"] == {COURIER: ["goip", "sequential"]}
    assert evaluation.negative_detectors["estate_agent"] == {AGENT: ["lowslow"]}  # an imei flag is no SIM flag


def test_the_command_prints_the_range_tables(scenario, capsys):
    _, truth, root = scenario
    argv = ["evaluate", "--truth", str(truth), "--from", D20, "--to", D22, "--lake", str(root / "lake")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "dens and leads per den kind" in out
    rows = {
        line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
        for line in out.splitlines()
        if line.startswith("│")
    }
    assert rows["low_slow"] == ["3", "2", "0.67", "11-20", "11-21", "1", "1.00", "1.00", "0.00 (0/1)", "0"]
    assert rows["goip_car"][:6] == ["2", "0", "0.00", "11-21", "never", "never"]
    assert rows["room"][6:] == ["2.00", "1.00", "–", "111"]
    assert rows["all"][:3] == ["10", "7", "0.70"]
    assert "overall 2026-11-20..2026-11-22: den recall 0.70 (7/10 den-nights), lead precision 0.92 (11/12" in out
    assert rows["courier"][:4] == ["1", "1", "goip 1, sequential 1", COURIER]
    assert rows["estate_agent"][4:] == ["1", AGENT]
    assert "per truth den" not in out
    assert main(["-v", *argv]) == 0
    assert "L1 ×2 +1 other" in capsys.readouterr().out


def test_one_night_still_scores_the_flags(scenario, capsys):
    _, truth, root = scenario
    assert main(["evaluate", "--truth", str(truth), "--date", D21, "--lake", str(root / "lake")]) == 0
    out = capsys.readouterr().out
    assert "all SIM flags (union)" in out and "hard negatives: courier" in out


def test_a_missing_night_names_its_partition_and_the_command(tmp_path, capsys):
    write_lake(tmp_path / "lake", nights=(D20, D21))
    truth = write_truth(tmp_path / "truth")
    config = load_config(overrides=[f"paths.lake={tmp_path / 'lake'}"])
    with pytest.raises(
        CdrwatchError,
        match=r"dens/date=2026-11-22: no dens for 2026-11-22 "
        r"\(run cdrwatch dens --date 2026-11-22 first\)$",
    ):
        evaluate_range(config, truth, NIGHTS[0], NIGHTS[-1])
    with pytest.raises(
        CdrwatchError,
        match=r"dens/date=2026-11-22: .*; 2 of the 4 nights lack partitions: "
        r"cdrwatch nightly --from 2026-11-20 --to 2026-11-23 writes them all",
    ):
        evaluate_range(config, truth, NIGHTS[0], dt.date(2026, 11, 23))
    for argv, message in (
        (["--from", D22, "--to", D20], "evaluate: --to 2026-11-20 is before --from 2026-11-22"),
        (["--from", D20], "evaluate: --from needs --to"),
        (["--from", D20, "--to", D22], "no dens for 2026-11-22"),
    ):
        assert main(["evaluate", "--truth", str(truth), *argv, "--lake", str(tmp_path / "lake")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("cdrwatch: error: ") and message in err and err.count("\n") == 1
