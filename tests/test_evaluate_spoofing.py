"""`cdrwatch evaluate --from --to`: spoofed legs (lake/spoofed) and spoofing warnings (outbox/D/warnings.csv)
against the simulator's truth/spoofed_legs.csv, on hand-written Parquet and CSV files. Polars only, no Spark.

The night of 16 November, local time (Asia/Shanghai, UTC+8):
  truth                                          lake/spoofed
  T1 R1 <- SUB1 voice 10:00:00 200 s             L1 09:59:58 (-2 s)          matched
  T2 R2 <- 110  voice 10:05:00  10 s protected   L2 10:05:02 (+2 s)          matched
  T3 R3 <- 95588 sms  11:00:00  (cu: unjudged)   -                           missed
  T4 R1 <- SUB1 voice 10:30:00  30 s             L4 10:30:04 (+4 s)          missed, and L4 a false alarm
  T5 R5 <- SUB3 sms   13:00:00                   L5 13:00:01                 matched
  T6 R6 <- 110  voice 14:00:00   0 s protected   -                           missed
  T7 R7 <- SUB1 voice 15:00:00 300 s             L7 15:00:00                 matched
  -                                              L3 R4 <- SUB2 voice 12:00   false alarm
Receivers to warn (voice, >= 180 s, or protected and answered): R1, R2, R7; warnings.csv warns R1 and R4
for spoofing (and R2 for a den, which is no spoofing warning).
17 November: one leg, matched; no warnings.csv. 18 November: a truth leg, but the detector did not run.
"""

import datetime as dt
import json

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.cli import main
from jobs.config import load_config
from schemas.tables import DEN, FLAG, SPOOFED, VICTIMS
from simulator.evaluate import (
    SpoofingEvaluation,
    evaluate_range,
    evaluate_spoofing,
    match_legs,
    read_truth_legs,
    truth_to_warn,
)

D16, D17, D18 = dt.date(2026, 11, 16), dt.date(2026, 11, 17), dt.date(2026, 11, 18)
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
SUB1, SUB2, SUB3 = "+8613900000001", "+8613900000002", "+8613900000003"
R1, R2, R3, R4, R5, R6, R7, R8 = (f"+861380000000{i}" for i in range(1, 9))

TRUTH = [  # date, receiver, presented, protected, service, start (local), duration_s, carrier
    (D16, R1, SUB1, False, "voice", "10:00:00", 200, "cm"),
    (D16, R2, "110", True, "voice", "10:05:00", 10, "cm"),
    (D16, R3, "95588", True, "sms", "11:00:00", 0, "cu"),
    (D16, R1, SUB1, False, "voice", "10:30:00", 30, "cm"),
    (D16, R5, SUB3, False, "sms", "13:00:00", 0, "cm"),
    (D16, R6, "110", True, "voice", "14:00:00", 0, "cm"),
    (D16, R7, SUB1, False, "voice", "15:00:00", 300, "ct"),
    (D17, R8, SUB2, False, "voice", "09:00:00", 400, "cm"),
    (D18, R8, SUB2, False, "voice", "09:00:00", 400, "cm"),
]
LAKE = {  # night -> (receiver, presented, service, start (local), duration_s, carrier)
    D16: [
        (R1, SUB1, "voice", "09:59:58", 200, "cm"),
        (R2, "110", "voice", "10:05:02", 10, "cm"),
        (R4, SUB2, "voice", "12:00:00", 60, "cm"),
        (R1, SUB1, "voice", "10:30:04", 30, "cm"),
        (R5, SUB3, "sms", "13:00:01", 0, "cm"),
        (R7, SUB1, "voice", "15:00:00", 300, "ct"),
    ],
    D17: [(R8, SUB2, "voice", "09:00:01", 400, "cm")],
}
WARNINGS_16 = [  # number (national), district, den_id, first_contact, longest_call_s, n_calls, reason
    ("13800000001", "锦江区", "S20261116-01", "2026-11-16 09:59:58", 200, 2, "spoofed 13900000001"),
    ("13800000004", "锦江区", "S20261116-02", "2026-11-16 12:00:00", 60, 1, "spoofed 13900000002"),
    ("13800000002", "武侯区", "D1", "2026-11-16 08:00:00", 300, 1, "den D1"),
]


def local(day: dt.date, clock: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(clock), SHANGHAI)


def write_spoofed(lake, night, legs):
    fields = [f for f in SPOOFED.arrow() if f.name != "date"]
    rows = [
        dict(
            record_id=f"r{i}",
            carrier=carrier,
            receiver=receiver,
            presented=presented,
            service=service,
            start_time=local(night, clock).astimezone(dt.timezone.utc),
            duration_s=duration,
            cell_id="4100-1",
            district="锦江区",
            protected="110 police" if presented == "110" else None,
            owner_carrier=None if presented == "110" else "cm",
            campaign_id=f"S{night:%Y%m%d}-01",
        )
        for i, (receiver, presented, service, clock, duration, carrier) in enumerate(legs)
    ]
    path = lake / "spoofed" / f"date={night}" / "part-0.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=pa.schema(fields)), path)


def write_truth_legs(truth):
    truth.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(
        [
            {
                "date": d.isoformat(),
                "campaign": "c1",
                "receiver": r,
                "presented": p,
                "protected": prot,
                "service": s,
                "start": f"{d} {clock}",
                "duration_s": dur,
                "carrier": c,
            }
            for d, r, p, prot, s, clock, dur, c in TRUTH
        ]
    ).write_csv(truth / "spoofed_legs.csv")


def write_warnings(outbox, night, rows, header="number,district,den_id,first_contact,longest_call_s,n_calls,reason"):
    folder = outbox / night.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    lines = [header, *(",".join(str(v) for v in row) for row in rows)]
    (folder / "warnings.csv").write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))


@pytest.fixture
def spoofing(tmp_path):
    lake, outbox, truth = tmp_path / "lake", tmp_path / "outbox", tmp_path / "truth"
    for night, legs in LAKE.items():
        write_spoofed(lake, night, legs)
    run = lake / "_runs" / "detect" / f"date={D16}"
    run.mkdir(parents=True)
    (run / "spoofing.json").write_text(
        json.dumps(
            {
                "date": D16.isoformat(),
                "tolerance_s": 120,
                "incoming_legs": 40,
                "judged": 38,
                "matched": 32,
                "spoofed": 6,
                "not_judged": {"presented number's carrier delivered nothing": 2},
                "unjudged_carriers": {"cu": "no files for 2026-11-16"},
                "campaigns": 2,
            }
        ),
        encoding="utf-8",
    )
    write_warnings(outbox, D16, WARNINGS_16)
    write_truth_legs(truth)
    config = load_config(
        overrides=[f"paths.lake={lake}", f"paths.outbox={outbox}", f"paths.landing={tmp_path / 'landing'}"]
    )
    return config, truth, tmp_path


def test_legs_match_one_to_one_within_three_seconds(spoofing):
    config, truth, _ = spoofing
    evaluation = evaluate_spoofing(config, truth, D16, D18)
    assert evaluation.not_run == [D18]  # no lake/spoofed, no spoofing.json: its truth leg not scored
    assert evaluation.not_exported == [D17]  # no warnings.csv
    night = evaluation.nights[0]
    assert (night.day, night.truth_legs, night.lake_legs, night.matched) == (D16, 7, 6, 4)
    assert night.false_alarms == [
        "13900000001 → 13800000001 voice 10:30:04",
        "13900000002 → 13800000004 voice 12:00:00",
    ]
    assert night.missed == [
        "13900000001 → 13800000001 voice 10:30:00",
        "95588 → 13800000003 sms 11:00:00",
        "110 → 13800000006 voice 14:00:00",
    ]
    assert night.missed_unjudged == 1  # T3, recorded by cu, which the detector could not judge
    assert night.unjudged == {"cu": "no files for 2026-11-16"}
    legs = evaluation.legs
    assert (legs.flagged, legs.true_positives, legs.relevant) == (7, 5, 8)  # D17's leg matched one second off
    assert legs.precision == pytest.approx(5 / 7) and legs.recall == pytest.approx(5 / 8)


def test_warnings_are_the_spoofing_rows_against_the_receivers_at_risk(spoofing):
    config, truth, _ = spoofing
    evaluation = evaluate_spoofing(config, truth, D16, D18)
    night = evaluation.nights[0]
    assert (night.to_warn, night.warned, night.warned_right) == (3, 2, 1)  # R1, R2, R7; R1, R4; R1
    assert evaluation.nights[1].warned is None  # D17: not exported, not scored
    warned = evaluation.warnings
    assert (warned.flagged, warned.true_positives, warned.relevant) == (2, 1, 3)
    assert warned.precision == 0.5 and warned.recall == pytest.approx(1 / 3)
    to_warn = truth_to_warn(read_truth_legs(truth), 180)
    assert to_warn == {
        ("2026-11-16", R1),
        ("2026-11-16", R2),
        ("2026-11-16", R7),
        ("2026-11-17", R8),
        ("2026-11-18", R8),
    }
    assert ("2026-11-16", R2) not in truth_to_warn(
        read_truth_legs(truth).with_columns(pl.lit("false").alias("protected")), 180
    )


def test_a_leg_is_used_once_and_the_nearest_pairs_are_kept():
    start = dt.datetime(2026, 11, 16, 10, 0, 0)

    def legs(*seconds):
        return pl.DataFrame(
            [
                {
                    "date": "2026-11-16",
                    "receiver": R1,
                    "presented": SUB1,
                    "service": "voice",
                    "start": start + dt.timedelta(seconds=s),
                    "carrier": "cm",
                }
                for s in seconds
            ]
        )

    matched, false_alarms, missed = match_legs(legs(0, 3), legs(2, 5))  # 0-2 and 3-5: both pairs
    assert (len(matched), false_alarms, missed) == (2, [], [])
    matched, false_alarms, missed = match_legs(legs(2), legs(0, 4))  # one lake leg, two truth legs
    assert len(matched) == 1 and len(missed) == 1 and false_alarms == []
    sms = legs(0).with_columns(pl.lit("sms").alias("service"))
    matched, false_alarms, missed = match_legs(sms, legs(0))  # another service: no match
    assert (matched, len(false_alarms), len(missed)) == ([], 1, 1)


def test_an_older_truth_or_an_older_outbox_is_skipped(spoofing, tmp_path):
    config, truth, root = spoofing
    (truth / "spoofed_legs.csv").unlink()
    assert evaluate_spoofing(config, truth, D16, D18) is None
    write_truth_legs(truth)
    write_warnings(
        root / "outbox",
        D16,
        [row[:6] for row in WARNINGS_16],
        header="number,district,den_id,first_contact,longest_call_s,n_calls",
    )  # before `reason`
    evaluation = evaluate_spoofing(config, truth, D16, D17)
    assert evaluation.not_exported == [D16, D17] and evaluation.not_run == []
    assert (evaluation.warnings.flagged, evaluation.warnings.relevant) == (0, 0)
    assert evaluation.legs.true_positives == 5
    nothing = evaluate_spoofing(config, truth, D18, D18)  # the detector never ran
    assert isinstance(nothing, SpoofingEvaluation) and nothing.nights == [] and nothing.not_run == [D18]
    assert "detector not run: 2026-11-18" in nothing.line()


def write_empty_range(root, nights):
    """The dens, victims and flags partitions `evaluate_range` needs, without rows, and truth CSVs of no den."""
    for table in (DEN, VICTIMS, FLAG):
        fields = pa.schema([f for f in table.arrow() if f.name != "date"])
        for night in nights:
            path = root / "lake" / table.name / f"date={night}" / "part-0.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist([], schema=fields), path)
    for name, header in (
        ("dens.csv", "date,den_id,kind,lat,lon"),
        ("den_sims.csv", "date,den_id,msisdn"),
        ("victims.csv", "date,den_id,number"),
        ("hard_negatives.csv", "number,kind,date"),
        ("congestion.csv", "date,cause,den_id,cells"),
    ):
        (root / "truth" / name).write_text(header + "\n", encoding="utf-8")


def test_the_command_prints_the_spoofing_line_and_nights(spoofing, capsys):
    config, truth, root = spoofing
    write_empty_range(root, (D16, D17))
    evaluation = evaluate_range(config, truth, D16, D17)
    assert evaluation.spoofing.legs.true_positives == 5
    argv = [
        "evaluate",
        "--truth",
        str(truth),
        "--from",
        D16.isoformat(),
        "--to",
        D17.isoformat(),
        "--lake",
        str(root / "lake"),
        "--outbox",
        str(root / "outbox"),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    words = " ".join(out.split())  # the console wraps long lines at 120 columns
    assert (
        "spoofing 2026-11-16..2026-11-17: leg precision 0.71 (5/7 lake legs), recall 0.62 (5/8 truth legs); "
        "warning precision 0.50 (1/2 warned), recall 0.33 (1/3 to warn); "
        "warnings not exported: 2026-11-17"
    ) in words
    rows = {
        line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
        for line in out.splitlines()
        if line.startswith("│") and "2026-11-1" in line.split("│")[1]
    }
    assert rows["2026-11-16"][:3] == ["7", "6", "4"] and rows["2026-11-16"][5:8] == ["3", "2", "1"]
    assert rows["2026-11-17"][5:8] == ["1", "–", "–"]
    (truth / "spoofed_legs.csv").unlink()
    assert main(argv) == 0
    assert "spoofing" not in capsys.readouterr().out
