"""The simulator's side of the field-feedback loop (issue 15), without Spark: a den raided and back with
its box and fresh SIMs, a lawful SMS gateway that looks like a GOIP box, and the field units' answers
made up from truth (`write_field_feedback`)."""

from __future__ import annotations

import csv
import math
import shutil
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from test_simulate import Reader  # the landing zone read back by code that shares nothing with the simulator

from simulator import simulate, write_field_feedback

START = date(2026, 11, 20)
DAYS = 4
RAID_AFTER = 1
ARGS = dict(subscribers=600, dens=1, seed=5)
TZ = ZoneInfo("Asia/Shanghai")
LEAD_HEADER = (
    "den_id,priority,score,district,lat,lon,radius_m,cells,site_names,active_hours,first_seen,last_seen,"
    "nights_active,n_numbers,numbers,n_imeis,imeis,n_calls,n_distinct_callees,n_victims,signals,evidence"
)
FEEDBACK_HEADER = "den_id,visited_on,outcome,notes,numbers_seized,imeis_seized"


def day(index: int) -> str:
    return (START + timedelta(days=index)).isoformat()


def truth(root: Path, name: str) -> list[dict]:
    with (root / "truth" / f"{name}.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def metres(lat1, lon1, lat2, lon2) -> float:
    dy = (float(lat1) - float(lat2)) * 111_320
    dx = (float(lon1) - float(lon2)) * 111_320 * math.cos(math.radians(float(lat1)))
    return math.hypot(dx, dy)


def all_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def raided(tmp_path_factory) -> tuple[Path, Reader]:
    root = tmp_path_factory.mktemp("raided") / "landing"
    simulate(root, START, DAYS, **ARGS, raid_after=RAID_AFTER, lawful_gateways=1)
    return root, Reader(root)


# --- the raid -----------------------------------------------------------------------------------


def test_raid_is_listed_with_what_was_seized(raided):
    root, _ = raided
    last_night = [s for s in truth(root, "den_sims") if s["den_id"] == "den01" and s["date"] == day(0)]
    assert truth(root, "raids") == [
        {
            "den_id": "den01",
            "raided_on": day(1),
            "back_on": day(2),
            "numbers": ";".join(sorted(s["msisdn"] for s in last_night)),
            "imeis": ";".join(sorted({s["imei"] for s in last_night})),
        }
    ]
    assert len(last_night) >= 8 and len({s["imei"] for s in last_night}) == 1  # a goip_shared box


def test_raided_den_places_no_call_on_the_raid_day(raided):
    root, reader = raided
    raid = truth(root, "raids")[0]
    seized, box = set(raid["numbers"].split(";")), raid["imeis"]
    for name in ("dens", "den_sims", "congestion"):
        assert {r["date"] for r in truth(root, name) if r["den_id"] == "den01"} == {day(0), day(2), day(3)}, name
    assert day(1) not in {r["date"] for r in truth(root, "victims")}
    seen = Counter(
        r["date"].isoformat() for r in reader.unique if r["msisdn"] in seized or r["peer"] in seized or r["imei"] == box
    )
    assert seen[day(0)] > 1000 and seen[day(1)] == 0


def test_the_same_box_is_back_with_fresh_sims_at_another_place(raided):
    root, reader = raided
    box = truth(root, "raids")[0]["imeis"]
    sims = defaultdict(dict)
    for s in truth(root, "den_sims"):
        sims[s["date"]][s["msisdn"]] = s["imei"]
    back = sims[day(2)]
    assert set(back.values()) == {box} and len(back) >= 8
    held = {r["msisdn"] for r in reader.unique if r["date"].isoformat() < day(2)}
    assert not set(back) & held  # numbers no SIM had before
    assert not set(back) & set(sims[day(3)])  # and a box takes fresh SIMs every day

    dens = {d["date"]: d for d in truth(root, "dens")}
    before, after = dens[day(0)], dens[day(2)]
    assert metres(before["lat"], before["lon"], after["lat"], after["lon"]) >= 800
    assert after["district"] == before["district"]
    assert (before["moved"], after["moved"], dens[day(3)]["moved"]) == ("false", "true", "true")
    assert after["cells"] != before["cells"]
    used = {r["cell"] for r in reader.unique if r["date"].isoformat() == day(2) and r["imei"] == box}
    assert used and used <= set(after["cells"].split(";"))


def test_bad_raid_and_gateway_arguments(tmp_path):
    for raid_after in (0, DAYS - 1):
        with pytest.raises(ValueError, match="raid_after"):
            simulate(tmp_path, START, DAYS, **ARGS, raid_after=raid_after)
    with pytest.raises(ValueError, match="box den"):
        simulate(tmp_path, START, DAYS, **{**ARGS, "dens": 0}, raid_after=1)
    with pytest.raises(ValueError, match="lawful_gateways"):
        simulate(tmp_path, START, DAYS, **ARGS, lawful_gateways=-1)


# --- the lawful SMS gateway -----------------------------------------------------------------------


def test_gateway_is_a_labelled_lawful_business(raided):
    root, _ = raided
    (business,) = truth(root, "businesses")
    numbers = business["numbers"].split(";")
    assert (business["kind"], business["name"], len(numbers)) == ("sms_gateway", "丰巢快递柜通知平台", 8)
    assert numbers == sorted(numbers) and len(business["imeis"]) == 15 and business["district"]
    labelled = [(n["number"], n["date"]) for n in truth(root, "hard_negatives") if n["kind"] == "sms_gateway"]
    assert sorted(labelled) == [(n, "") for n in numbers]  # every day of the run
    den_places = {(d["lat"], d["lon"]) for d in truth(root, "dens")}
    assert all(metres(business["lat"], business["lon"], *place) > 500 for place in den_places)


def test_gateway_looks_like_a_goip_box_sending_sms(raided):
    root, reader = raided
    (business,) = truth(root, "businesses")
    numbers = set(business["numbers"].split(";"))
    mine = [r for r in reader.unique if r["msisdn"] in numbers]
    out = [r for r in mine if r["dir"] == "out"]
    assert {r["svc"] for r in mine} == {"sms"} and {r["imei"] for r in mine} == {business["imeis"]}
    assert len({r["cell"] for r in mine}) == 1  # one sector of one site
    hours = [datetime.fromtimestamp(r["ts"], TZ).hour for r in out]
    assert min(hours) == 8 and max(hours) == 19
    replies = len(mine) - len(out)
    assert 0 < replies < 0.06 * len(out)  # ~3 % text back
    for d in range(DAYS):
        today = [r for r in out if r["date"].isoformat() == day(d)]
        per_sim = Counter(r["msisdn"] for r in today)
        assert len(per_sim) == 8 and min(per_sim.values()) >= 55 and max(per_sim.values()) <= 120
        assert len({r["peer"] for r in today}) >= 400  # hundreds of residents
        for number in per_sim:  # machine-regular gaps
            times = sorted(r["ts"] for r in today if r["msisdn"] == number)
            gaps = sorted(b - a for a, b in zip(times, times[1:]))
            assert gaps[-len(gaps) // 10] - gaps[len(gaps) // 10] < 30
        peers = [r["peer"] for r in sorted(today, key=lambda r: (r["msisdn"], r["ts"]))]
        rising = sum(a < b for a, b in zip(peers, peers[1:])) / (len(peers) - 1)
        assert 0.35 < rising < 0.65  # no segment dialled in order


# --- what stays as it was -----------------------------------------------------------------------


def test_without_raid_or_gateway_nothing_changes_and_truth_says_none(tmp_path):
    small = dict(subscribers=200, dens=2, seed=9)
    simulate(tmp_path / "default", START, 3, **small)
    simulate(tmp_path / "explicit", START, 3, **small, raid_after=None, lawful_gateways=0)
    first, second = all_files(tmp_path / "default"), all_files(tmp_path / "explicit")
    assert list(first) == list(second) and [n for n in first if first[n] != second[n]] == []
    assert first["truth/raids.csv"] == b"den_id,raided_on,back_on,numbers,imeis\n"
    assert first["truth/businesses.csv"] == b"kind,name,numbers,imeis,lat,lon,district\n"
    assert b"raid_after" not in first["truth/scenario.json"]
    assert b"sms_gateway" not in first["truth/hard_negatives.csv"]


def test_a_raid_run_is_deterministic(raided, tmp_path):
    root, _ = raided
    simulate(tmp_path, START, DAYS, **ARGS, raid_after=RAID_AFTER, lawful_gateways=1)
    first, second = all_files(root), all_files(tmp_path)
    assert list(first) == list(second) and [n for n in first if first[n] != second[n]] == []


# --- the field's answers ------------------------------------------------------------------------

NIGHT = date(2026, 11, 21)  # ordinal odd: answered in GBK
EVEN_NIGHT = date(2026, 11, 22)
DEN_A = ["+8613900000001", "+8613900000002", "+8613900000003"]  # raided after NIGHT
DEN_B = ["+8615100000001", "+8615100000002"]
GATEWAY = ["+8618600000001", "+8618600000002", "+8618600000003"]
STRANGERS = ["+8613300000009", "+85512345678"]


def national(number: str) -> str:
    return number[3:] if number.startswith("+86") else "00" + number[1:]


def write_truth(landing: Path, nights: list[date]) -> None:
    folder = landing / "truth"
    folder.mkdir(parents=True)
    rows = ["date,den_id,msisdn,carrier,imsi,imei"]
    for night in nights:
        rows += [f"{night},den01,{n},cm,460001234567890,862718050000014" for n in DEN_A]
        rows += [f"{night},den02,{n},cm,460001234567891,356938030000011" for n in DEN_B]
    (folder / "den_sims.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (folder / "raids.csv").write_text(
        "den_id,raided_on,back_on,numbers,imeis\n"
        f"den01,{NIGHT + timedelta(days=1)},{NIGHT + timedelta(days=2)},{';'.join(DEN_A)},862718050000014\n",
        encoding="utf-8",
    )
    (folder / "hard_negatives.csv").write_text(
        "number,kind,date\n" + "".join(f"{n},sms_gateway,\n" for n in GATEWAY) + "+8613300000009,courier,\n",
        encoding="utf-8",
    )


def write_leads(outbox: Path, night: date, leads: dict[str, list[str]], district: str = "锦江区") -> None:
    folder = outbox / night.isoformat() / "leads"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [LEAD_HEADER]
    for den_id, numbers in leads.items():
        joined = ";".join(national(n) for n in numbers)
        lines.append(
            f"{den_id},high,0.9,{district},30.6,104.0,200,c1,站,09-12,{night},{night},1,"
            f"{len(numbers)},{joined},1,862718050000014,100,90,2,goip,evidence"
        )
    (folder / f"{district}.csv").write_text("\ufeff" + "\r\n".join(lines) + "\r\n", encoding="utf-8")


def read_feedback(path: Path, encoding: str) -> list[dict]:
    return list(csv.DictReader(path.read_bytes().decode(encoding).splitlines()))


@pytest.fixture
def field(tmp_path) -> tuple[Path, Path]:
    landing, outbox = tmp_path / "landing", tmp_path / "outbox"
    write_truth(landing, [NIGHT, EVEN_NIGHT])
    write_leads(
        outbox,
        NIGHT,
        {"D-0007": DEN_B, "D-0003": DEN_A[:2] + STRANGERS[:1], "D-0011": GATEWAY[:2], "D-0020": STRANGERS},
    )
    return landing, outbox


def test_field_answers_every_kind_of_lead(field):
    landing, outbox = field
    path = write_field_feedback(landing, outbox, NIGHT, seed=1, share=1.0)
    assert path == landing / "feedback" / "field_2026-11-22.csv"
    data = path.read_bytes()
    assert data.decode("gbk").startswith(FEEDBACK_HEADER + "\r\n") and not data.startswith(b"\xef\xbb\xbf")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    rows = read_feedback(path, "gbk")
    assert [(r["den_id"], r["visited_on"], r["outcome"]) for r in rows] == [
        ("D-0003", "2026-11-22", "raided"),
        ("D-0007", "2026-11-22", "confirmed"),
        ("D-0011", "2026-11-22", "legitimate"),
        ("D-0020", "2026-11-22", "false_lead"),
    ]
    raid = rows[0]
    assert raid["numbers_seized"] == "13900000001;13900000002;13900000003"
    assert raid["imeis_seized"] == "862718050000014"
    assert raid["notes"].startswith("现场查获GOIP设备1台及SIM卡3张，抓获") and raid["notes"].endswith("人")
    assert [r["notes"] for r in rows[1:]] == ["确认为诈骗窝点，已布控", "合法快递通知平台，已备案核实", "现场无异常"]
    assert all(r["numbers_seized"] == r["imeis_seized"] == "" for r in rows[1:])
    assert write_field_feedback(landing, outbox, NIGHT, seed=1, share=1.0).read_bytes() == data  # same bytes


def test_only_a_share_is_visited_but_raids_and_lawful_businesses_always(field):
    landing, outbox = field
    path = write_field_feedback(landing, outbox, NIGHT, share=0.0)
    assert [r["outcome"] for r in read_feedback(path, "gbk")] == ["raided", "legitimate"]

    many = {f"D-{i:04d}": DEN_B if i % 2 else STRANGERS for i in range(100, 300)}
    write_leads(outbox, EVEN_NIGHT, many)
    path = write_field_feedback(landing, outbox, EVEN_NIGHT, seed=3)
    visited = {r["den_id"] for r in read_feedback(path, "utf-8-sig")}
    assert 0.6 < len(visited) / len(many) < 0.8
    again = write_field_feedback(landing, outbox, EVEN_NIGHT, seed=3)
    assert {r["den_id"] for r in read_feedback(again, "utf-8-sig")} == visited  # the same dens
    other = write_field_feedback(landing, outbox, EVEN_NIGHT, seed=4)
    assert {r["den_id"] for r in read_feedback(other, "utf-8-sig")} != visited


def test_even_nights_are_answered_in_utf8_with_bom(field):
    landing, outbox = field
    write_leads(outbox, EVEN_NIGHT, {"D-0007": DEN_B})
    path = write_field_feedback(landing, outbox, EVEN_NIGHT, share=1.0)
    assert path.name == "field_2026-11-23.csv"
    assert path.read_bytes().startswith(b"\xef\xbb\xbf" + FEEDBACK_HEADER.encode() + b"\r\n")
    assert read_feedback(path, "utf-8-sig") == [
        {
            "den_id": "D-0007",
            "visited_on": "2026-11-23",
            "outcome": "confirmed",
            "notes": "确认为诈骗窝点，已布控",
            "numbers_seized": "",
            "imeis_seized": "",
        }
    ]


def test_dens_answered_before_are_not_answered_again_unless_raided_after_confirmed(tmp_path):
    landing, outbox = tmp_path / "landing", tmp_path / "outbox"
    earlier = NIGHT - timedelta(days=1)
    write_truth(landing, [earlier, NIGHT, EVEN_NIGHT])
    write_leads(outbox, earlier, {"D-0003": DEN_A, "D-0007": DEN_B, "D-0020": STRANGERS})
    first = write_field_feedback(landing, outbox, earlier, share=1.0)
    assert first.name == "field_2026-11-21.csv"
    assert [r["outcome"] for r in read_feedback(first, "utf-8-sig")] == ["confirmed", "confirmed", "false_lead"]

    write_leads(outbox, NIGHT, {"D-0003": DEN_A, "D-0007": DEN_B, "D-0020": STRANGERS, "D-0030": STRANGERS})
    second = write_field_feedback(landing, outbox, NIGHT, share=1.0)
    assert [(r["den_id"], r["outcome"]) for r in read_feedback(second, "gbk")] == [
        ("D-0003", "raided"),
        ("D-0030", "false_lead"),
    ]  # confirmed, then raided: reported

    write_leads(outbox, EVEN_NIGHT, {"D-0003": DEN_A, "D-0007": DEN_B})
    assert write_field_feedback(landing, outbox, EVEN_NIGHT, share=1.0) is None  # all answered: nothing written
    assert not (landing / "feedback" / "field_2026-11-23.csv").exists()
    assert write_field_feedback(landing, outbox, NIGHT, share=1.0).read_bytes() == second.read_bytes()  # rerun


def test_no_leads_no_file(field, tmp_path):
    landing, outbox = field
    assert write_field_feedback(landing, outbox, EVEN_NIGHT) is None  # no leads folder
    write_leads(outbox, EVEN_NIGHT, {})  # a header-only lead file
    assert write_field_feedback(landing, outbox, EVEN_NIGHT) is None
    assert not (landing / "feedback").exists()


def test_field_answers_a_simulated_night(raided, tmp_path):
    """The simulator's own truth: its den's numbers led on the last night before the raid are reported
    raided with what truth says was seized; the gateway's lead is cleared as lawful."""
    root, _ = raided
    landing, outbox = tmp_path / "landing", tmp_path / "outbox"
    shutil.copytree(root / "truth", landing / "truth")
    den = [s["msisdn"] for s in truth(root, "den_sims") if s["date"] == day(0)]
    gateway = truth(root, "businesses")[0]["numbers"].split(";")
    write_leads(outbox, START, {"D-0001": den, "D-0002": gateway})
    path = write_field_feedback(landing, outbox, START, share=0.0)
    encoding = "gbk" if START.toordinal() % 2 else "utf-8-sig"
    rows = read_feedback(path, encoding)
    raid = truth(root, "raids")[0]
    assert [(r["den_id"], r["outcome"], r["visited_on"]) for r in rows] == [
        ("D-0001", "raided", raid["raided_on"]),
        ("D-0002", "legitimate", raid["raided_on"]),
    ]
    assert rows[0]["numbers_seized"].split(";") == [national(n) for n in raid["numbers"].split(";")]
    assert rows[0]["imeis_seized"] == raid["imeis"]
