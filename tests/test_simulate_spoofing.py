"""The simulator's side of caller-ID spoofing (issue 16), without Spark: overseas gateways whose calls reach
the city as incoming legs only, showing residents' or protected numbers; skewed carrier clocks; banks and
hotlines that ring from landlines. The landing zone is read back by test_simulate's independent Reader."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from test_simulate import Reader  # shares no code with the simulator

from jobs.cli import main
from simulator import simulate

START = date(2026, 11, 20)
DAYS = 3
ARGS = dict(subscribers=400, dens=1, seed=13)
SKEW = 90
OFFSETS = {"cm": 0, "cu": 68, "ct": -90}  # cm 0, cu +0.75 S, ct -S
WINDOW_S = 120 + 68 + 90  # the pipeline's tolerance plus the widest clock disagreement
TZ = ZoneInfo("Asia/Shanghai")
HEADER = "date,campaign,receiver,presented,protected,service,start,duration_s,carrier"
PROTECTED = {"110", "96110", "12345", "12368"}


def protected(number: str) -> bool:
    return number in PROTECTED or (len(number) == 5 and number.startswith("95"))


def spoofed_if_unmatched(r: dict, subscribers: set[str] | dict) -> bool:
    """The rule of issue 16: a local subscriber's number on any incoming leg, a protected one on a voice leg
    (110 on an SMS too) — spoofed unless an outgoing leg matches."""
    return r["peer"] in subscribers or (protected(r["peer"]) and (r["svc"] == "voice" or r["peer"] == "110"))


class SkewedReader(Reader):
    """A landing zone written by skewed switch clocks: each start is taken back by its carrier's offset for
    the contract's checks (a record near midnight may carry the day before or after); `ts` stays as written,
    `true_ts` is the true time."""

    def __init__(self, root: Path, offsets: dict[str, int]):
        self.offsets = offsets
        super().__init__(root)

    def check(self, carrier, day, record_id, msisdn, peer, direction, service, start, *rest):
        shift = self.offsets[carrier]
        record = super().check(
            carrier, day, record_id, msisdn, peer, direction, service, start - timedelta(seconds=shift), *rest
        )
        if record is not None:
            record["true_ts"] = record["ts"]
            record["ts"] += shift
        return record


def truth(root: Path, name: str) -> list[dict]:
    with (root / "truth" / f"{name}.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def epoch(local: str) -> int:
    return int(datetime.fromisoformat(local).replace(tzinfo=TZ).timestamp())


def all_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def leg_key(row: dict) -> tuple:
    """A truth row as (carrier, receiver, presented, service, duration, written time)."""
    return (
        row["carrier"],
        row["receiver"],
        row["presented"],
        row["service"],
        int(row["duration_s"]),
        epoch(row["start"]),
    )


def record_key(r: dict) -> tuple:
    return r["carrier"], r["msisdn"], r["peer"], r["svc"], r["dur"], r["ts"]


@pytest.fixture(scope="module")
def spoofed(tmp_path_factory) -> tuple[Path, SkewedReader]:
    root = tmp_path_factory.mktemp("spoofed") / "landing"
    simulate(root, START, DAYS, **ARGS, spoofers=2, clock_skew=SKEW)
    return root, SkewedReader(root, OFFSETS)


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> tuple[Path, Reader]:
    root = tmp_path_factory.mktemp("plain") / "landing"
    simulate(root, START, DAYS, **ARGS)
    return root, Reader(root)


# --- the spoofed legs ---------------------------------------------------------------------------


def test_truth_rows_are_incoming_records_of_the_receivers_carrier_and_nothing_else(spoofed):
    root, reader = spoofed
    rows = truth(root, "spoofed_legs")
    assert list(rows[0]) == HEADER.split(",")
    assert {r["campaign"] for r in rows} == {"G1", "G2"} and len(rows) > 200
    incoming = {record_key(r) for r in reader.unique if r["dir"] == "in"}
    outgoing = {record_key(r) for r in reader.unique if r["dir"] == "out"}
    missing = [row for row in rows if leg_key(row) not in incoming]
    assert len(missing) <= 2  # only a line the simulator's dirt corrupted
    assert not [row for row in rows if leg_key(row) in outgoing]
    carrier_of = {r["msisdn"]: r["carrier"] for r in reader.unique}
    assert all(carrier_of[row["receiver"]] == row["carrier"] for row in rows)
    assert all(row["receiver"] != row["presented"] for row in rows)
    assert all(datetime.fromisoformat(row["start"]).date().isoformat() == row["date"] for row in rows)
    # no carrier has an outgoing leg of the presented number to the receiver anywhere near that time
    sent = defaultdict(list)
    for r in reader.unique:
        if r["dir"] == "out":
            sent[r["msisdn"], r["peer"]].append(r["ts"])
    assert not [
        row
        for row in rows
        if any(abs(ts - epoch(row["start"])) <= WINDOW_S for ts in sent[row["presented"], row["receiver"]])
    ]


def test_every_incoming_leg_without_its_outgoing_leg_is_a_spoofed_one(spoofed):
    """What the detector will look for, the other way round: an incoming leg showing a local subscriber's
    or a protected number, with no outgoing leg to match within the window, is in truth (or its partner
    line is one the simulator's dirt corrupted)."""
    root, reader = spoofed
    listed = {leg_key(row) for row in truth(root, "spoofed_legs")}
    carrier_of = {r["msisdn"]: r["carrier"] for r in reader.unique}
    sent = defaultdict(list)
    for r in reader.unique:
        if r["dir"] == "out":
            sent[r["msisdn"], r["peer"], r["svc"]].append(r["ts"])
    orphans = [
        r
        for r in reader.unique
        if r["dir"] == "in"
        and spoofed_if_unmatched(r, carrier_of)
        and not any(abs(ts - r["ts"]) <= WINDOW_S for ts in sent[r["peer"], r["msisdn"], r["svc"]])
    ]
    unlisted = [r for r in orphans if record_key(r) not in listed]
    assert len(orphans) > 200 and len(unlisted) <= len(reader.bad) and len(unlisted) < 0.1 * len(orphans)
    assert not [r for r in unlisted if protected(r["peer"])]  # a protected number is never a corrupted partner


def test_protected_legs_are_voice_and_mobile_ones_show_residents_who_keep_their_own_traffic(spoofed):
    root, reader = spoofed
    rows = truth(root, "spoofed_legs")
    g1, g2 = ([r for r in rows if r["campaign"] == c] for c in ("G1", "G2"))
    assert all(r["protected"] == "true" and r["service"] == "voice" and protected(r["presented"]) for r in g2)
    assert {"110", "95588"} <= {r["presented"] for r in g2}
    assert all(r["protected"] == "false" and r["presented"].startswith("+861") for r in g1)
    sms = sum(r["service"] == "sms" for r in g1) / len(g1)
    assert 0.12 < sms < 0.3 and all(r["duration_s"] == "0" for r in g1 if r["service"] == "sms")
    shown = Counter(r["presented"] for r in g1)
    assert len(shown) > len(g1) / 5 and max(shown.values()) <= 12  # another owner every few calls
    own = {r["msisdn"] for r in reader.unique if r["dir"] == "out"}
    assert sum(number in own for number in shown) / len(shown) > 0.95  # the owners live their own lives
    residents = {r["msisdn"] for r in reader.unique}
    assert set(shown) <= residents


def test_gateways_sweep_one_or_two_segments_in_sessions_with_victims(spoofed):
    root, reader = spoofed
    rows = truth(root, "spoofed_legs")
    sessions = defaultdict(list)  # (campaign, n): legs in true time order
    for campaign in ("G1", "G2"):
        legs = sorted(
            (epoch(r["start"]) - OFFSETS[r["carrier"]], r["receiver"], r) for r in rows if r["campaign"] == campaign
        )
        n = 0
        for before, after in zip([None] + legs, legs):
            if before is not None and after[0] - before[0] > 3 * 3600:
                n += 1
            sessions[campaign, n].append(after)
    assert len(sessions) >= 4
    crossed = 0
    for legs in sessions.values():
        assert legs[-1][0] - legs[0][0] <= 4 * 3600
        receivers = [int(receiver[1:]) for _, receiver, _ in legs]
        assert sum(b > a for a, b in zip(receivers, receivers[1:])) / (len(receivers) - 1) > 0.95  # ascending
        assert len({number // 10_000 for number in receivers}) <= 2  # segments
        dates = {datetime.fromtimestamp(ts, TZ).date() for ts, _, _ in legs}
        crossed += len(dates) == 2
        assert all(9 <= datetime.fromtimestamp(ts, TZ).hour < 22 for ts, _, _ in legs) or len(dates) == 2
    assert crossed >= 1  # a late session past midnight
    voice = [int(r["duration_s"]) for r in rows if r["service"] == "voice"]
    answered = [d for d in voice if d]
    assert 0.25 < len(answered) / len(voice) < 0.45
    assert all(3 <= d <= 20 or 200 <= d <= 1500 for d in answered)
    assert 0.03 < sum(d >= 200 for d in voice) / len(voice) < 0.1


def test_legs_after_midnight_are_in_the_next_days_files(spoofed):
    root, reader = spoofed
    rows = truth(root, "spoofed_legs")
    folder = {record_key(r): r["date"] for r in reader.unique if r["dir"] == "in"}
    late = [row for row in rows if leg_key(row) in folder and row["start"][11:13] in ("00", "01")]
    assert late
    for row in late:  # true time past midnight -> the new day's delivery
        true = datetime.fromtimestamp(epoch(row["start"]) - OFFSETS[row["carrier"]], TZ).date()
        assert folder[leg_key(row)] == true


# --- clock skew ---------------------------------------------------------------------------------


def test_clock_skew_offsets_both_legs_of_a_residents_call_by_their_carriers_clocks(spoofed):
    root, reader = spoofed
    scenario = json.loads((root / "truth" / "scenario.json").read_text(encoding="utf-8"))
    assert scenario["spoofers"] == 2 and scenario["clock_skew"] == SKEW and scenario["clock_offsets_s"] == OFFSETS
    carrier_of = {r["msisdn"]: r["carrier"] for r in reader.unique}
    incoming = {(r["msisdn"], r["peer"], r["svc"], r["dur"], r["ts"]) for r in reader.unique if r["dir"] == "in"}
    seen = Counter()
    missing = 0
    for r in reader.unique:
        if r["dir"] == "out" and r["peer"] in carrier_of:
            a, b = r["carrier"], carrier_of[r["peer"]]
            shift = OFFSETS[b] - OFFSETS[a]
            found = [
                lag for lag in (0, 1) if (r["peer"], r["msisdn"], r["svc"], r["dur"], r["ts"] + shift + lag) in incoming
            ]
            missing += not found
            seen[a, b] += bool(found)
    assert missing <= len(reader.bad)
    assert all(seen[a, b] > 50 for a in OFFSETS for b in OFFSETS)
    assert OFFSETS["cu"] - OFFSETS["ct"] == 158  # a cu caller's leg 158 s after its ct callee's


def test_skewed_switches_write_times_of_the_neighbouring_day_into_this_days_files(spoofed):
    root, reader = spoofed
    spill = Counter()
    for r in reader.unique:
        written = datetime.fromtimestamp(r["ts"], TZ).date()
        spill[r["carrier"], (written - r["date"]).days] += 1
    assert spill["cu", 1] > 0 and spill["ct", -1] > 0  # ahead: tomorrow's date; behind: yesterday's
    assert spill["cm", 1] == spill["cm", -1] == spill["cu", -1] == spill["ct", 1] == 0


def test_victims_first_contact_is_the_time_the_den_sims_carrier_wrote(spoofed):
    root, reader = spoofed
    sims = defaultdict(set)
    for s in truth(root, "den_sims"):
        sims[s["date"], s["den_id"]].add(s["msisdn"])
    first = {}
    for r in reader.unique:
        for (day, den), members in sims.items():
            if r["msisdn"] in members and r["date"].isoformat() == day and r["svc"] == "voice":
                key = (day, den, r["peer"])
                first[key] = min(first.get(key, r["ts"]), r["ts"])
    victims = truth(root, "victims")
    assert len(victims) >= DAYS
    same = 0
    for v in victims:
        written = epoch(v["first_contact"])
        seen = first[v["date"], v["den_id"], v["number"]]
        assert written <= seen  # later only when that very line was corrupted
        same += written == seen
    assert same >= 0.9 * len(victims)


# --- the world without spoofers -----------------------------------------------------------------


def test_banks_and_hotlines_ring_from_landlines_and_text_from_their_short_numbers(plain):
    _, reader = plain
    incoming = [r for r in reader.unique if r["dir"] == "in"]
    assert not [r for r in incoming if r["svc"] == "voice" and protected(r["peer"])]
    landline = Counter(r["peer"] for r in incoming if r["svc"] == "voice" and r["peer"].startswith("+86286"))
    assert landline["+862860095588"] > 0 and landline["+862860012345"] > 0
    texts = Counter(r["peer"] for r in incoming if r["svc"] == "sms")
    assert texts["95588"] > 10 and texts["12345"] > 0
    assert Counter(r["peer"] for r in incoming if r["svc"] == "voice")["10086"] > 0  # carriers' lines unchanged


def test_without_spoofers_truth_lists_none_and_the_scenario_reads_as_before(plain):
    root, _ = plain
    assert (root / "truth" / "spoofed_legs.csv").read_text(encoding="utf-8") == HEADER + "\n"
    scenario = json.loads((root / "truth" / "scenario.json").read_text(encoding="utf-8"))
    assert "spoofers" not in scenario and "clock_skew" not in scenario


def test_spoofers_and_skew_change_nothing_else(plain, spoofed):
    """Take the spoofed legs out and the clocks back, and the city is the same one, call for call (up to
    the lines each run's dirt corrupted)."""
    (_, base), (root, reader) = plain, spoofed
    listed = {leg_key(row) for row in truth(root, "spoofed_legs")}

    def calls(records):
        return Counter(
            (
                r["carrier"],
                r["msisdn"],
                r["peer"],
                r["dir"],
                r["svc"],
                r.get("true_ts", r["ts"]),
                r["dur"],
                r["imsi"],
                r["imei"],
                r["cell"],
            )
            for r in records
        )

    spoofed_calls = calls(r for r in reader.unique if not (r["dir"] == "in" and record_key(r) in listed))
    base_calls = calls(base.unique)
    assert sum((spoofed_calls - base_calls).values()) <= len(base.bad)
    assert sum((base_calls - spoofed_calls).values()) <= len(reader.bad)


def test_same_seed_same_bytes_with_spoofers(spoofed, tmp_path):
    root, _ = spoofed
    simulate(tmp_path, START, DAYS, **ARGS, spoofers=2, clock_skew=SKEW)
    first, second = all_files(root), all_files(tmp_path)
    assert list(first) == list(second) and [name for name in first if first[name] != second[name]] == []


# --- the command line ---------------------------------------------------------------------------


def test_cli_plants_spoofers_and_skews_clocks(tmp_path, capsys):
    out = tmp_path / "landing"
    assert (
        main(
            [
                "simulate",
                "--out",
                str(out),
                "--start",
                "2026-11-20",
                "--days",
                "2",
                "--subscribers",
                "150",
                "--dens",
                "0",
                "--spoofers",
                "3",
                "--clock-skew",
                "40",
            ]
        )
        == 0
    )
    assert "spoofed legs" in capsys.readouterr().out
    scenario = json.loads((out / "truth" / "scenario.json").read_text(encoding="utf-8"))
    assert (scenario["spoofers"], scenario["clock_skew"]) == (3, 40)
    assert scenario["clock_offsets_s"] == {"cm": 0, "cu": 30, "ct": -40}
    rows = truth(out, "spoofed_legs")
    kinds = {c: {r["protected"] for r in rows if r["campaign"] == c} for c in ("G1", "G2", "G3")}
    assert kinds == {"G1": {"false"}, "G2": {"true"}, "G3": {"false"}}  # the kinds alternate


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--clock-skew", "-5"], "cdrwatch: error: simulate: clock_skew must be 0..3600 seconds, not -5"),
        (["--spoofers", "-1"], "cdrwatch: error: simulate: need days >= 1"),
    ],
)
def test_cli_bad_spoofing_arguments_are_one_line(tmp_path, capsys, argv, message):
    assert main(["simulate", "--out", str(tmp_path), "--start", "2026-11-20", "--days", "1", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
