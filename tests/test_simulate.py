"""The synthetic city against the landing contract (docs/contracts.md "1. Landing zone"), read back independently.

The reader below deliberately shares no code with the simulator: csv/json/gzip modules, strict
decoding, its own number normaliser. Every line must either be a valid record or be listed in
truth/corrupt_lines.csv, and the truth counts must be what the reader counts.
"""

from __future__ import annotations

import csv
import filecmp
import gzip
import hashlib
import json
import math
import re
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from simulator import SimSummary, simulate

START = date(2026, 11, 20)  # a Friday: the run has weekdays and a weekend day
DAYS = 3
ARGS = dict(subscribers=1000, dens=4, seed=7)
TZ = ZoneInfo("Asia/Shanghai")
CARRIER_FORMATS = {"cm": "cn_csv", "cu": "pipe_gbk", "ct": "jsonl"}
IMSI_HEADS = {"cm": ("46000", "46002", "46007"), "cu": ("46001", "46006"), "ct": ("46003", "46011")}
PHONE_TACS = {"86891203", "35693803", "35891510", "35420409", "35332811", "86753104"}
CN_HEADER = "话单标识,本机号码,对端号码,业务类型,开始时间,时长,IMSI,IMEI,LAC,CI"
DISTRICTS = {"锦江区", "青羊区", "金牛区", "武侯区", "成华区", "高新区", "龙泉驿区", "双流区"}
MANIFEST = "_MANIFEST.csv"
CN_TYPES = {"主叫": ("out", "voice"), "被叫": ("in", "voice"), "短信发": ("out", "sms"), "短信收": ("in", "sms")}


# --- an independent reader ------------------------------------------------------------------------


def normalise(text: str) -> str | None:
    """E.164 (+…) for telephone numbers, digits for 3-6 digit service numbers, None if unreadable."""
    if re.fullmatch(r"\d{3,6}", text):
        return text
    if re.fullmatch(r"0[1-9]\d-?\d{8}", text):  # landline with trunk 0, optional dash
        return "+86" + text[1:].replace("-", "")
    for prefix in ("+86", "0086", "86", ""):
        rest = text[len(prefix) :]
        if text.startswith(prefix) and re.fullmatch(r"1\d{10}", rest):
            return "+86" + rest
    if re.fullmatch(r"\+[1-9]\d{6,14}", text):
        return text
    if re.fullmatch(r"00[1-9]\d{6,14}", text):
        return "+" + text[2:]
    return None


def luhn_ok(imei: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(imei[:14])):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return (10 - total % 10) % 10 == int(imei[14])


def read_cells(root: Path) -> dict[str, list[dict]]:
    return {
        c: list(csv.DictReader((root / "cells" / f"{c}.csv").open(encoding="utf-8", newline="")))
        for c in CARRIER_FORMATS
    }


class Reader:
    """Reads a landing zone; keeps valid records and the (file, line) of everything else."""

    def __init__(self, root: Path):
        self.root = root
        self.cells = {c: {row["cell_id"]: row for row in rows} for c, rows in read_cells(root).items()}
        self.records: list[dict] = []
        self.bad: set[tuple[str, int]] = set()
        self.rows: Counter = Counter()  # (date, carrier) -> data lines
        self.files: Counter = Counter()
        for carrier, fmt in CARRIER_FORMATS.items():
            for folder in sorted((root / carrier).iterdir()):
                for path in sorted(folder.iterdir()):
                    if path.name != MANIFEST:
                        self.read_file(carrier, fmt, date.fromisoformat(folder.name), path)
        first = {}
        for r in self.records:
            first.setdefault((r["carrier"], r["id"]), r)
        self.unique = list(first.values())  # what an ingest keeps: one record per carrier record id

    def read_file(self, carrier: str, fmt: str, day: date, path: Path) -> None:
        rel = path.relative_to(self.root).as_posix()
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        assert data.endswith(b"\n"), rel
        lines = data.split(b"\n")[:-1]
        self.files[day, carrier] += 1
        first = 0
        if fmt == "cn_csv":
            assert lines[0].decode("utf-8").lstrip("\ufeff").rstrip("\r") == CN_HEADER
            first = 1
        for number, raw in enumerate(lines[first:], start=first + 1):
            self.rows[day, carrier] += 1
            if fmt in ("cn_csv", "pipe_gbk"):
                assert raw.endswith(b"\r"), f"{rel}:{number} is not CRLF-terminated"
                raw = raw[:-1]
            try:
                record = getattr(self, fmt)(raw, carrier, day)
            except (ValueError, KeyError, TypeError, AttributeError):
                record = None
            if record is None:
                self.bad.add((rel, number))
            else:
                record.update(carrier=carrier, date=day, file=rel, line=number)
                self.records.append(record)

    def cn_csv(self, raw: bytes, carrier: str, day: date) -> dict | None:
        f = raw.decode("utf-8").split(",")
        if len(f) != 10:
            return None
        direction, service = CN_TYPES[f[3]]
        start = datetime.strptime(f[4], "%Y-%m-%d %H:%M:%S").replace(tzinfo=TZ)
        return self.check(
            carrier,
            day,
            f[0],
            f[1],
            f[2],
            direction,
            service,
            start,
            f[5],
            f[6],
            f[7],
            f"{f[8]}-{f[9]}" if f[8].isdigit() and f[9].isdigit() else "",
        )

    def pipe_gbk(self, raw: bytes, carrier: str, day: date) -> dict | None:
        f = raw.decode("gbk").split("|")
        if len(f) != 11 or not re.fullmatch(r"\d{6}", f[8]):
            return None
        hh, mm, ss = int(f[8][:2]), int(f[8][2:4]), int(f[8][4:])
        if mm > 59 or ss > 59 or self.cells[carrier].get(f[9], {}).get("site_name") != f[10]:
            return None
        start = datetime.strptime(f[7], "%Y%m%d%H%M%S").replace(tzinfo=TZ)
        direction, service = {"0": "out", "1": "in"}[f[5]], {"V": "voice", "S": "sms"}[f[6]]
        return self.check(
            carrier, day, f[0], f[1], f[4], direction, service, start, str(hh * 3600 + mm * 60 + ss), f[2], f[3], f[9]
        )

    def jsonl(self, raw: bytes, carrier: str, day: date) -> dict | None:
        obj = json.loads(raw.decode("utf-8"))
        keys = {"id", "subscriber", "peer", "dir", "svc", "ts", "dur", "imsi", "imei", "cell"}
        if not isinstance(obj, dict) or set(obj) != keys:
            return None
        if (
            type(obj["ts"]) is not int
            or type(obj["dur"]) is not int
            or obj["dir"] not in ("in", "out")
            or obj["svc"] not in ("voice", "sms")
            or not all(isinstance(obj[k], str) for k in ("id", "subscriber", "peer", "imsi", "imei", "cell"))
        ):
            return None
        start = datetime.fromtimestamp(obj["ts"] / 1000, TZ)
        return self.check(
            carrier,
            day,
            obj["id"],
            obj["subscriber"],
            obj["peer"],
            obj["dir"],
            obj["svc"],
            start,
            str(obj["dur"]),
            obj["imsi"],
            obj["imei"],
            obj["cell"],
        )

    def check(self, carrier, day, record_id, msisdn, peer, direction, service, start, dur, imsi, imei, cell):
        msisdn, peer = normalise(msisdn), normalise(peer)
        valid = (
            re.fullmatch(rf"{carrier.upper()}{day:%Y%m%d}\d{{8}}", record_id)
            and msisdn
            and peer
            and start.date() == day
            and re.fullmatch(r"\d+", dur)
            and re.fullmatch(r"\d{15}", imsi)
            and imsi.startswith(IMSI_HEADS[carrier])
            and re.fullmatch(r"\d{15}", imei)
            and luhn_ok(imei)
            and cell in self.cells[carrier]
            and (service == "voice" or dur == "0")
        )
        if not valid:
            return None
        return dict(
            id=record_id,
            msisdn=msisdn,
            peer=peer,
            dir=direction,
            svc=service,
            ts=int(start.timestamp()),
            dur=int(dur),
            imsi=imsi,
            imei=imei,
            cell=cell,
        )


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> tuple[Path, SimSummary, list]:
    out = tmp_path_factory.mktemp("city") / "landing"
    progress = []
    summary = simulate(out, START, DAYS, **ARGS, on_day=lambda day, rows: progress.append((day, rows)))
    return out, summary, progress


@pytest.fixture(scope="module")
def reader(landing) -> Reader:
    return Reader(landing[0])


def truth(root: Path, name: str) -> list[dict]:
    with (root / "truth" / f"{name}.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def all_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def metres(lat1, lon1, lat2, lon2) -> float:
    dy = (float(lat1) - float(lat2)) * 111_320
    dx = (float(lon1) - float(lon2)) * 111_320 * math.cos(math.radians(float(lat1)))
    return math.hypot(dx, dy)


# --- determinism and layout ---------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes(landing, tmp_path):
    root, _, _ = landing
    again = tmp_path / "again"
    simulate(again, START, DAYS, **ARGS)
    first, second = all_files(root), all_files(again)
    assert list(first) == list(second)
    assert [name for name in first if first[name] != second[name]] == []

    other = tmp_path / "other"
    simulate(other, START, DAYS, **{**ARGS, "seed": 8})
    third = all_files(other)
    data = [name for name in first if name.split("/")[0] in CARRIER_FORMATS and name in third]
    assert data and all(first[name] != third[name] for name in data)
    assert first["cells/cm.csv"] != third["cells/cm.csv"]


def test_summary_and_progress(landing, reader):
    root, summary, progress = landing
    assert [day for day, _ in progress] == [START + timedelta(days=i) for i in range(DAYS)]
    assert sum(rows for _, rows in progress) == summary.total_rows == sum(reader.rows.values())
    for carrier in CARRIER_FORMATS:
        assert summary.rows[carrier] == sum(n for (_, c), n in reader.rows.items() if c == carrier)
    assert summary.files == sum(reader.files.values()) and summary.dens == 4
    assert "CDR lines" in str(summary) and str(root) in str(summary)


def test_landing_layout(landing):
    root, _, _ = landing
    assert sorted(p.name for p in root.iterdir()) == ["cells", "cm", "ct", "cu", "truth", "whitelist.csv"]
    assert sorted(p.name for p in (root / "cells").iterdir()) == ["cm.csv", "ct.csv", "cu.csv"]
    dates = [(START + timedelta(days=i)).isoformat() for i in range(DAYS)]
    patterns = {
        "cm": r"cm_(\d{8})_\d(_resend)?\.csv(\.gz)?",
        "cu": r"cu_(\d{8})_\d(_resend)?\.txt",
        "ct": r"ct_(\d{8})_\d(_resend)?\.jsonl\.gz",
    }
    resent = []
    for carrier, pattern in patterns.items():
        assert sorted(p.name for p in (root / carrier).iterdir()) == dates
        for day in dates:
            names = sorted(p.name for p in (root / carrier / day).iterdir())
            assert names[0] == MANIFEST  # sorts first ("_" < letters); its contents: test_manifests_...
            names = names[1:]
            assert len(names) >= 2
            for name in names:
                match = re.fullmatch(pattern, name)
                assert match and match.group(1) == day.replace("-", ""), name
                if match.group(2):  # a re-delivered file is an exact copy of another one
                    original = root / carrier / day / name.replace("_resend", "")
                    assert filecmp.cmp(original, root / carrier / day / name, shallow=False)
                    resent.append((day, carrier))
    assert [c for _, c in sorted(resent)] == ["cm", "cu", "ct"]  # one per day, carriers in turn

    cm_files = [p for p in (root / "cm" / dates[0]).iterdir() if p.name != MANIFEST]
    plain = [p.read_bytes() for p in cm_files if p.suffix == ".csv"]
    assert any(b.startswith(b"\xef\xbb\xbf") for b in plain) and any(not b.startswith(b"\xef\xbb\xbf") for b in plain)
    assert any(p.name.endswith(".csv.gz") for p in cm_files)
    gz = next(p for p in cm_files if p.name.endswith(".gz")).read_bytes()
    assert gz[4:8] == b"\0\0\0\0"  # gzip mtime 0: reproducible bytes


def test_cells_same_sites_different_ids_and_jitter(landing):
    root, _, _ = landing
    cells = read_cells(root)
    assert [len(cells[c]) for c in ("cm", "cu", "ct")] == [8 * 49 * 3, 8 * 49 * 2, 8 * 49]
    assert all(list(rows[0]) == ["cell_id", "lat", "lon", "site_name", "district"] for rows in cells.values())
    assert {r["district"] for r in cells["ct"]} == DISTRICTS
    assert re.fullmatch(r"41\d\d-\d+", cells["cm"][0]["cell_id"])
    assert re.fullmatch(r"ct\d{5}", cells["ct"][0]["cell_id"])
    assert re.fullmatch(r"460-01-\d+-\d+", cells["cu"][0]["cell_id"])
    assert (
        cells["cm"][0]["site_name"] == "锦江区000号基站" and cells["cu"][0]["site_name"] != cells["cm"][0]["site_name"]
    )
    for site in cells["ct"]:  # every ct site has cm and cu cells within 15 m, not at 0 m
        for other in ("cm", "cu"):
            nearest = min(
                metres(site["lat"], site["lon"], c["lat"], c["lon"])
                for c in cells[other]
                if c["district"] == site["district"]
            )
            assert 0 < nearest <= 15


def read_manifest_independently(folder: Path) -> dict[str, tuple[int, str]]:
    with (folder / MANIFEST).open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["file", "rows", "sha256"]
    return {name: (int(n), digest) for name, n, digest in rows[1:]}


def test_manifests_list_every_file_with_its_records_and_hash(landing, reader):
    """Each day folder's _MANIFEST.csv names exactly its files; rows are records (lines without cm's
    header), the hash is of the bytes as delivered; per carrier-day they add up to what a reader counts."""
    root, _, _ = landing
    folders = [folder for carrier in CARRIER_FORMATS for folder in sorted((root / carrier).iterdir())]
    assert len(folders) == DAYS * 3
    for folder in folders:
        carrier, day = folder.parent.name, date.fromisoformat(folder.name)
        listed = read_manifest_independently(folder)
        assert sorted(listed) == sorted(p.name for p in folder.iterdir() if p.name != MANIFEST)
        for name, (rows, digest) in listed.items():
            data = (folder / name).read_bytes()
            assert digest == hashlib.sha256(data).hexdigest(), name
            text = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
            assert rows == text.count(b"\n") - (1 if carrier == "cm" else 0) > 0, name
        assert sum(rows for rows, _ in listed.values()) == reader.rows[day, carrier]
    assert "cm_20261120_1.csv" in read_manifest_independently(root / "cm" / "2026-11-20")


def test_without_manifests_the_landing_zone_is_otherwise_the_same(tmp_path):
    small = dict(subscribers=120, dens=1, seed=3)
    simulate(tmp_path / "with", START, 1, **small)
    simulate(tmp_path / "without", START, 1, **small, manifests=False)
    with_, without = all_files(tmp_path / "with"), all_files(tmp_path / "without")
    manifests = [name for name in with_ if name.endswith("/" + MANIFEST)]
    assert sorted(manifests) == [f"{c}/2026-11-20/{MANIFEST}" for c in ("cm", "ct", "cu")]
    assert {name: data for name, data in with_.items() if name not in manifests} == without
    assert any(name.startswith("truth/") for name in without)


# --- every line valid or listed; counts ---------------------------------------------------------


def test_every_line_is_valid_or_listed_as_corrupt(landing, reader):
    root, _, _ = landing
    listed = {(row["source_file"], int(row["line"])) for row in truth(root, "corrupt_lines")}
    assert reader.bad == listed
    per_file = Counter(row["source_file"] for row in truth(root, "corrupt_lines"))
    all_data_files = [p for c in CARRIER_FORMATS for p in (root / c).rglob("*") if p.is_file() and p.name != MANIFEST]
    assert all(per_file[p.relative_to(root).as_posix()] >= 2 for p in all_data_files)
    kinds = defaultdict(set)
    for row in truth(root, "corrupt_lines"):
        kinds[row["carrier"]].add(row["kind"])
    assert kinds["cm"] == kinds["cu"] == {"truncated", "bad_encoding", "bad_timestamp", "bad_duration", "empty_msisdn"}
    assert kinds["ct"] == kinds["cm"] | {"broken_json", "missing_field"}
    share = len(listed) / sum(reader.rows.values())
    assert 0.0008 < share < 0.003


def test_counts_match_what_a_reader_counts(landing, reader):
    root, _, _ = landing
    good = Counter((r["date"], r["carrier"]) for r in reader.records)
    unique = Counter((day, carrier) for day, carrier, _ in {(r["date"], r["carrier"], r["id"]) for r in reader.records})
    bad = Counter((date.fromisoformat(f.split("/")[1]), f.split("/")[0]) for f, _ in reader.bad)
    rows = truth(root, "counts")
    assert len(rows) == DAYS * 3
    for row in rows:
        key = (date.fromisoformat(row["date"]), row["carrier"])
        assert int(row["files"]) == reader.files[key]
        assert int(row["rows"]) == reader.rows[key]
        assert int(row["corrupt"]) == bad[key]
        assert int(row["duplicated"]) == good[key] - unique[key]
        assert int(row["accepted"]) == unique[key] == int(row["rows"]) - int(row["corrupt"]) - int(row["duplicated"])
        # besides the re-delivered file, ~0.05 % of good lines repeat
        assert int(row["duplicated"]) >= 1


def test_numbers_are_written_in_the_carriers_habits(landing):
    root, _, _ = landing
    day = START.isoformat()
    cm = gzip.decompress(next((root / "cm" / day).glob("*_2.csv.gz")).read_bytes()).decode("utf-8", "replace")
    cu = next((root / "cu" / day).glob("*_2.txt")).read_bytes().decode("gbk", "replace")
    ct = gzip.decompress(next((root / "ct" / day).glob("*_1.jsonl.gz")).read_bytes()).decode("utf-8", "replace")
    cm_own = [line.split(",")[1] for line in cm.splitlines()[1:]]
    assert sum(bool(re.fullmatch(r"1\d{10}", n)) for n in cm_own) / len(cm_own) > 0.85
    assert any(n.startswith("+86") for n in cm_own) and any(n.startswith("0086") for n in cm_own)
    cu_peers = [line.split("|")[4] for line in cu.splitlines() if line.count("|") == 10]
    assert any(n.startswith("0086") for n in cu_peers) and any(re.fullmatch(r"0\d\d-\d{8}", n) for n in cu_peers)
    assert any(re.fullmatch(r"0\d{10}", n) for n in cu_peers) and any(re.fullmatch(r"\d{5}", n) for n in cu_peers)
    ct_own = re.findall(r'"subscriber": "([^"]*)"', ct)
    assert sum(n.startswith("+86") for n in ct_own) / len(ct_own) > 0.9
    peers = re.findall(r'"peer": "([^"]*)"', ct) + [line.split(",")[2] for line in cm.splitlines()[1:]]
    assert any(re.fullmatch(r"\+(855|63|1|44|81|65|60)\d+", n) for n in peers)
    assert any(re.fullmatch(r"00(855|63|1|44|81|65|60)\d+", n) for n in peers)


# --- what the records mean ----------------------------------------------------------------------


def test_calls_between_residents_appear_on_both_sides(reader, landing):
    root, _, _ = landing
    by_day = defaultdict(list)
    for r in reader.unique:
        by_day[r["date"]].append(r)
    checked = Counter()
    for day, records in by_day.items():
        carrier_of = {r["msisdn"]: r["carrier"] for r in records}
        incoming = {(r["msisdn"], r["peer"], r["svc"], r["dur"], r["ts"]) for r in records if r["dir"] == "in"}
        outgoing = {(r["msisdn"], r["peer"], r["svc"], r["dur"], r["ts"]) for r in records if r["dir"] == "out"}
        missing = 0
        for r in records:
            if r["dir"] == "out" and r["peer"] in carrier_of:
                pair = (carrier_of[r["msisdn"]], carrier_of[r["peer"]])
                found = any((r["peer"], r["msisdn"], r["svc"], r["dur"], r["ts"] + lag) in incoming for lag in (0, 1))
                missing += not found
                checked[pair] += found
            if r["dir"] == "in" and r["peer"] in carrier_of:
                missing += not any(
                    (r["peer"], r["msisdn"], r["svc"], r["dur"], r["ts"] - lag) in outgoing for lag in (0, 1)
                )
        corrupt_today = sum(1 for f, _ in reader.bad if f.split("/")[1] == day.isoformat())
        assert missing <= corrupt_today  # only a partner line that was corrupted can be missing
    assert all(checked[a, b] > 50 for a in CARRIER_FORMATS for b in CARRIER_FORMATS)
    # a call to a number outside the city leaves one record only
    served = {r["msisdn"] for r in reader.unique}
    outside = [r for r in reader.unique if not r["peer"].startswith("+86")]
    assert outside and not any(r["peer"] in served for r in outside)


def test_den_sims_are_in_the_files_with_their_devices(landing, reader):
    root, _, _ = landing
    seen = {(r["date"].isoformat(), r["carrier"], r["msisdn"], r["imsi"], r["imei"]) for r in reader.unique}
    sims = truth(root, "den_sims")
    assert {s["carrier"] for s in sims} == {"cm", "cu", "ct"}
    assert all((s["date"], s["carrier"], s["msisdn"], s["imsi"], s["imei"]) in seen for s in sims)
    dens = {(d["date"], d["den_id"]): d for d in truth(root, "dens")}
    imeis = defaultdict(list)
    for s in sims:
        imeis[dens[s["date"], s["den_id"]]["kind"], s["date"], s["den_id"]].append(s["imei"])
    for (kind, day, _), devices in imeis.items():
        if kind in ("goip_shared", "sms_blaster"):
            assert len(set(devices)) == 1 and len(devices) >= 8 and devices[0][:8] not in PHONE_TACS
        elif kind == "goip_fresh":
            assert len(set(devices)) == len(devices) and not PHONE_TACS & {d[:8] for d in devices}
        else:
            assert len(set(devices)) == len(devices) and {d[:8] for d in devices} <= PHONE_TACS
    # SIMs of boxes are swapped daily; room operators keep their phones
    by_den = defaultdict(dict)
    for s in sims:
        by_den[s["den_id"]].setdefault(s["date"], set()).add(s["msisdn"])
    days = sorted(by_den["den01"])
    assert not by_den["den01"][days[0]] & by_den["den01"][days[1]]
    room_phones = [{s["imei"] for s in sims if s["den_id"] == "den03" and s["date"] == d} for d in days]
    assert room_phones[0] == room_phones[-1]


def test_round_robin_den_dials_ascending_and_per_sim_runs(landing, reader):
    root, _, _ = landing
    dens = truth(root, "dens")
    sims = defaultdict(set)
    for s in truth(root, "den_sims"):
        sims[s["date"], s["den_id"]].add(s["msisdn"])
    patterns_seen = set()
    for den in dens:
        members = sims[den["date"], den["den_id"]]
        calls = sorted(
            (r["ts"], int(r["peer"][1:]), r["msisdn"])
            for r in reader.unique
            if r["date"].isoformat() == den["date"]
            and r["dir"] == "out"
            and r["msisdn"] in members
            and r["peer"].startswith("+861")
        )
        assert len(calls) > 100
        steps_by_sim = defaultdict(list)
        last = {}
        for _, peer, sim in calls:
            if sim in last:
                steps_by_sim[sim].append(peer - last[sim])
            last[sim] = peer
        all_steps = sorted(s for steps in steps_by_sim.values() for s in steps)
        median = all_steps[len(all_steps) // 2]
        if den["pattern"] == "round_robin":  # the group dials one list in order ...
            group = [peer for _, peer, _ in calls]
            ascending = sum(b > a for a, b in zip(group, group[1:])) / (len(group) - 1)
            assert ascending > 0.99
            assert len(members) // 2 <= median <= 2 * len(members)  # ... each SIM alone steps by ~n
        if den["pattern"] == "per_sim":
            assert median == 1
            assert all(sum(s > 0 for s in steps) / len(steps) > 0.95 for steps in steps_by_sim.values())
        patterns_seen.add(den["pattern"])
    assert patterns_seen == {"per_sim", "round_robin", "shuffled_blocks"}
    # the list goes on the next day rather than starting over
    rr = [d for d in dens if d["pattern"] == "round_robin"]
    firsts = [
        min(
            int(r["peer"][1:])
            for r in reader.unique
            if r["date"].isoformat() == d["date"] and r["dir"] == "out" and r["msisdn"] in sims[d["date"], d["den_id"]]
        )
        for d in rr
    ]
    assert firsts == sorted(firsts) and len(set(firsts)) == len(firsts)


def test_dens_truth_positions_cells_and_the_move(landing):
    root, _, _ = landing
    dens = truth(root, "dens")
    assert len(dens) == 4 * DAYS
    assert [d["kind"] for d in dens[:4]] == ["goip_shared", "goip_fresh", "room", "sms_blaster"]
    cells = {row["cell_id"]: row for rows in read_cells(root).values() for row in rows}
    for den in dens:
        used = den["cells"].split(";")
        assert {u[:2] for u in used} >= {"41", "46", "ct"}  # all three carriers' cells
        assert all(metres(den["lat"], den["lon"], cells[u]["lat"], cells[u]["lon"]) < 1500 for u in used)
    moving = [d for d in dens if d["den_id"] == "den01"]
    assert [d["moved"] for d in moving] == ["false", "true", "true"]
    assert moving[0]["district"] != moving[-1]["district"]
    assert metres(moving[0]["lat"], moving[0]["lon"], moving[-1]["lat"], moving[-1]["lon"]) > 3000
    assert all(d["moved"] == "false" for d in dens if d["den_id"] != "den01")
    congestion = truth(root, "congestion")
    assert sum(c["cause"] == "den" for c in congestion) == len(dens)
    crowd = [c for c in congestion if c["cause"] == "crowd"]
    assert len(crowd) == 1 and crowd[0]["district"] == "成华区" and crowd[0]["hours"] == "19-22"
    assert crowd[0]["date"] == (START + timedelta(days=DAYS // 2)).isoformat() and crowd[0]["den_id"] == ""


def test_victims_talked_long_with_the_den(landing, reader):
    root, _, _ = landing
    victims = truth(root, "victims")
    sims = defaultdict(set)
    for s in truth(root, "den_sims"):
        sims[s["date"], s["den_id"]].add(s["msisdn"])
    assert len({v["den_id"] for v in victims}) == 4
    talks = defaultdict(int)
    for r in reader.unique:
        talks[r["date"].isoformat(), r["msisdn"], r["peer"]] = max(
            talks[r["date"].isoformat(), r["msisdn"], r["peer"]], r["dur"]
        )
    for v in victims:
        assert int(v["longest_call_s"]) >= 300 and int(v["n_calls"]) >= 1
        assert datetime.fromisoformat(v["first_contact"]).date().isoformat() == v["date"]
        longest = max(talks.get((v["date"], v["number"], sim), 0) for sim in sims[v["date"], v["den_id"]])
        longest = max(longest, *(talks.get((v["date"], sim, v["number"]), 0) for sim in sims[v["date"], v["den_id"]]))
        assert longest in (0, int(v["longest_call_s"]))  # 0 only if that very line was corrupted
    assert len(victims) >= 4 * DAYS


def test_whitelist_is_the_office_and_negatives_are_labelled(landing, reader):
    root, _, _ = landing
    whitelist = list(csv.DictReader((root / "whitelist.csv").open(encoding="utf-8", newline="")))
    numbers = {normalise(w["number"]) for w in whitelist}
    forms = {re.sub(r"(?<=\d)\d", "", w["number"]) for w in whitelist if len(w["number"]) > 6}
    assert forms == {"1", "+8", "8"}  # 11 digits, +86…, 86…
    negatives = truth(root, "hard_negatives")
    office = {n["number"] for n in negatives if n["kind"] == "telemarketing"}
    assert len(office) == 10 and numbers - office == {"95588", "10086"}
    office_cells = {r["cell"] for r in reader.unique if r["msisdn"] in office}
    positions = {(r["carrier"], r["cell"]) for r in reader.unique if r["msisdn"] in office}
    assert office_cells and len({c for _, c in positions}) <= 6  # one site: a few sectors
    office_calls = sorted(
        (r["ts"], r["peer"])
        for r in reader.unique
        if r["msisdn"] in office and r["dir"] == "out" and r["date"] == START
    )
    dialled = [p for _, p in office_calls]
    assert sum(b > a for a, b in zip(dialled, dialled[1:])) / len(dialled) > 0.95  # a sorted customer list
    couriers = [n for n in negatives if n["kind"] == "courier"]
    assert len(couriers) >= 5 and all(n["date"] == "" for n in couriers)
    crowd = [n for n in negatives if n["kind"] == "crowd"]
    assert len(crowd) >= 150 and {n["date"] for n in crowd} == {(START + timedelta(days=DAYS // 2)).isoformat()}
    # a courier moves through several cells in a day; a den SIM does not
    courier = couriers[0]["number"]
    day_cells = {r["cell"] for r in reader.unique if r["msisdn"] == courier and r["date"] == START}
    assert len(day_cells) >= 4


def test_crowd_congests_the_stadium(landing, reader):
    root, _, _ = landing
    crowd = next(c for c in truth(root, "congestion") if c["cause"] == "crowd")
    stadium = set(crowd["cells"].split(";"))
    day = date.fromisoformat(crowd["date"])

    def evening_load(d):
        return sum(
            1
            for r in reader.unique
            if r["date"] == d
            and r["cell"] in stadium
            and r["dir"] == "out"
            and 19 <= datetime.fromtimestamp(r["ts"], TZ).hour < 22
        )

    assert evening_load(day) > 5 * max(1, evening_load(day - timedelta(days=1)))


def test_scenario_and_bad_arguments(landing, tmp_path):
    root, _, _ = landing
    scenario = json.loads((root / "truth" / "scenario.json").read_text(encoding="utf-8"))
    assert scenario == {"start": START.isoformat(), "days": DAYS, "timezone": "Asia/Shanghai", **ARGS}
    with pytest.raises(ValueError):
        simulate(tmp_path, START, 0)


# --- evasive dens and the newer honest look-alikes (issue 13) ------------------------------------

EVASIVE_DAYS = 4  # the low-and-slow room starts on the third day
EVASIVE = dict(subscribers=400, dens=8, seed=11)
BOX_TACS = {"86271805", "35566009", "86440103", "35874106"}


@pytest.fixture(scope="module")
def evasive(tmp_path_factory) -> tuple[Path, Reader]:
    root = tmp_path_factory.mktemp("evasive") / "landing"
    simulate(root, START, EVASIVE_DAYS, **EVASIVE)
    return root, Reader(root)


def den_of(root: Path, kind: str) -> tuple[list[dict], dict[str, dict[str, str]]]:
    """The truth rows of the (only) den of `kind`, and its SIMs per date: msisdn -> imei."""
    rows = [d for d in truth(root, "dens") if d["kind"] == kind]
    assert len({d["den_id"] for d in rows}) == 1, kind
    sims = defaultdict(dict)
    for s in truth(root, "den_sims"):
        if s["den_id"] == rows[0]["den_id"]:
            sims[s["date"]][s["msisdn"]] = s["imei"]
    return rows, sims


def positions(root: Path) -> dict[tuple[str, str], tuple[float, float]]:
    return {
        (c, row["cell_id"]): (float(row["lat"]), float(row["lon"]))
        for c, rows in read_cells(root).items()
        for row in rows
    }


def local_hour(ts: int) -> float:
    moment = datetime.fromtimestamp(ts, TZ)
    return moment.hour + moment.minute / 60


def test_evasive_city_is_deterministic_too(evasive, tmp_path):
    root, _ = evasive
    simulate(tmp_path, START, EVASIVE_DAYS, **EVASIVE)
    first, second = all_files(root), all_files(tmp_path)
    assert list(first) == list(second) and [n for n in first if first[n] != second[n]] == []


def test_numbers_from_the_far_end_never_meet_the_front():
    import numpy as np

    from simulator.numbers import NumberPlan

    plan = NumberPlan.build(np.random.default_rng(1), np.array([10, 10, 10]), spare=0)
    size = plan.segments[0].size * 10_000
    front, back = plan.draw(0, size // 2), plan.draw_from_end(0, size - size // 2)
    assert np.unique(np.r_[front, back]).size == size
    with pytest.raises(ValueError):
        plan.draw(0, 1)
    with pytest.raises(ValueError):
        plan.draw_from_end(0, 1)


def test_new_den_kinds_one_each_with_their_patterns(evasive):
    root, _ = evasive
    dens = truth(root, "dens")
    assert list(dens[0])[-2:] == ["route", "route_radius_m"]  # new columns at the end
    kinds = {d["den_id"]: (d["kind"], d["pattern"]) for d in dens}
    assert sorted(kinds.values()) == sorted(
        [
            ("goip_shared", "per_sim"),
            ("goip_fresh", "round_robin"),
            ("room", "shuffled_blocks"),
            ("sms_blaster", "per_sim"),
            ("goip_hopping", "round_robin"),
            ("low_slow", "leaked_list"),
            ("twin_boxes", "round_robin"),
            ("goip_car", "round_robin"),
        ]
    )
    for d in dens:
        assert (d["route"] == "") == (d["kind"] != "goip_car") and (d["route_radius_m"] == "0") == (d["route"] == "")
    evasive_dens = {
        den for den, (kind, _) in kinds.items() if kind in ("goip_hopping", "low_slow", "twin_boxes", "goip_car")
    }
    assert {v["den_id"] for v in truth(root, "victims")} >= evasive_dens  # each evasive kind has victims


def test_hopping_box_shows_a_never_seen_imei_on_every_call(evasive):
    root, reader = evasive
    rows, sims = den_of(root, "goip_hopping")
    assert len(rows) == EVASIVE_DAYS
    everyone_else = {r["imei"] for r in reader.unique if r["msisdn"] not in {m for d in sims.values() for m in d}}
    seen = []
    for day, members in sims.items():
        assert 8 <= len(members) <= 16
        out = sorted(
            (
                (r["ts"], r["msisdn"], r["imei"], int(r["peer"][1:]))
                for r in reader.unique
                if r["date"].isoformat() == day and r["dir"] == "out" and r["msisdn"] in members
            ),
            key=lambda call: (call[0], call[3]),
        )  # a second's calls in dialling order
        assert len(out) > 500
        seen += [imei for _, _, imei, _ in out]
        assert all(luhn_ok(imei) and imei[:8] not in PHONE_TACS for _, _, imei, _ in out)
        first = {}
        for _, msisdn, imei, _ in out:
            first.setdefault(msisdn, imei)
        assert first == {m: imei for m, imei in members.items() if m in first}  # truth: the day's first IMEI
        peers = [p for *_, p in out]  # round-robin: one ascending list
        assert sum(b > a for a, b in zip(peers, peers[1:])) / (len(peers) - 1) > 0.99
        shown = {m: {imei for _, n, imei, _ in out if n == m} for m in members}
        backs = [
            r for r in reader.unique if r["date"].isoformat() == day and r["dir"] == "in" and r["msisdn"] in members
        ]
        assert all(r["imei"] in shown[r["msisdn"]] for r in backs)  # a call-back sees the latest IMEI
    assert len(set(seen)) == len(seen) and not set(seen) & everyone_else


def test_low_slow_room_uses_bought_sims_to_call_a_leaked_list(evasive):
    root, reader = evasive
    rows, sims = den_of(root, "low_slow")
    dates = [(START + timedelta(days=i)).isoformat() for i in range(EVASIVE_DAYS)]
    assert [d["date"] for d in rows] == dates[2:] and len({d["lat"] for d in rows}) == 1
    room = set(sims[dates[2]])
    assert 6 <= len(room) <= 10 and all(set(sims[d]) == room for d in dates[2:])
    handsets = set(sims[dates[2]].values())
    assert len(handsets) == len(room) and {h[:8] for h in handsets} <= PHONE_TACS
    not_residents = {
        n["number"]
        for n in truth(root, "hard_negatives")
        if n["kind"] in ("telemarketing", "debt_collection", "sim_shop")
    }
    den_sims = {s["msisdn"] for s in truth(root, "den_sims")}
    residents = {r["msisdn"] for r in reader.unique} - not_residents - den_sims
    by_day = defaultdict(list)
    for r in reader.unique:
        if r["msisdn"] in room and r["dir"] == "out":
            by_day[r["date"].isoformat()].append(r)
    for day in dates[:2]:  # a normal past: the residents' own calls, their own phones
        assert {r["msisdn"] for r in by_day[day]} and not {r["imei"] for r in by_day[day]} & handsets
    callers_of = defaultdict(set)
    answered = []
    for day in dates[2:]:
        calls = by_day[day]
        assert all(r["imei"] in handsets and r["svc"] == "voice" for r in calls)  # none of the seller's own
        assert {r["peer"] for r in calls} <= residents  # strangers from the list
        per_sim = Counter(r["msisdn"] for r in calls)
        assert all(15 <= n <= 45 for n in per_sim.values()) and len(per_sim) == len(room)
        assert all(9 <= local_hour(r["ts"]) < 22 for r in calls)
        cells = {(r["carrier"], r["cell"]) for r in calls}
        assert len({cell for _, cell in cells}) <= 9 and set(c for _, c in cells) <= set(rows[0]["cells"].split(";"))
        for r in calls:
            callers_of[r["peer"]].add(r["msisdn"])
        answered += [r["dur"] for r in calls if r["dur"] > 0]
        peers = [int(r["peer"][1:]) for r in sorted(calls, key=lambda r: r["ts"])]
        assert 0.3 < sum(b > a for a, b in zip(peers, peers[1:])) / len(peers) < 0.7  # no sequence
    assert sum(len(s) >= 2 for s in callers_of.values()) >= 30  # the same residents, hit by several SIMs
    assert all(d <= 15 or d >= 300 for d in answered)  # bimodal: a hang-up or a long talk
    assert 0.15 < sum(d >= 300 for d in answered) / len(answered) < 0.4
    # call-backs: calls from residents it called, apart from the former owner's circle still ringing the number
    known = {
        (r["msisdn"], r["peer"]) for r in reader.unique if r["msisdn"] in room and r["date"].isoformat() < dates[2]
    }
    total = sum(len(by_day[d]) for d in dates[2:])
    backs = [
        r
        for r in reader.unique
        if r["msisdn"] in room
        and r["dir"] == "in"
        and r["peer"] in callers_of
        and (r["msisdn"], r["peer"]) not in known
    ]
    assert len(backs) <= 0.04 * total
    assert {v["date"] for v in truth(root, "victims") if v["den_id"] == rows[0]["den_id"]} == set(dates[2:])


def test_twin_boxes_are_one_den_with_two_box_imeis_at_one_point(evasive):
    root, reader = evasive
    rows, sims = den_of(root, "twin_boxes")
    where = positions(root)
    assert len({(d["lat"], d["lon"]) for d in rows}) == 1
    for day, members in sims.items():
        boxes = set(members.values())
        assert len(boxes) == 2 and all(b[:8] in BOX_TACS for b in boxes) and 16 <= len(members) <= 24
        out = sorted(
            (r["ts"], int(r["peer"][1:]), r["imei"], (r["carrier"], r["cell"]))
            for r in reader.unique
            if r["date"].isoformat() == day and r["dir"] == "out" and r["msisdn"] in members
        )
        peers = [p for _, p, _, _ in out]
        assert sum(b > a for a, b in zip(peers, peers[1:])) / (len(peers) - 1) > 0.99  # ONE list
        box = [imei for _, _, imei, _ in out]
        assert sum(a != b for a, b in zip(box, box[1:])) / len(box) > 0.3  # dealt to both boxes
        near = [metres(rows[0]["lat"], rows[0]["lon"], *where[cell]) for *_, cell in out]
        assert sum(m < 230 for m in near) / len(near) > 0.8 and max(near) < 1500  # one site


def test_car_box_changes_site_every_hour_along_a_road(evasive):
    root, reader = evasive
    rows, sims = den_of(root, "goip_car")
    where = positions(root)
    assert len({imei for members in sims.values() for imei in members.values()}) == 1
    assert not set.intersection(*(set(m) for m in sims.values()))  # fresh SIMs daily
    for d in rows:
        route = [tuple(map(float, p.split(","))) for p in d["route"].split(";")]
        assert 5 <= len(route) <= 7 and len(set(route)) == len(route)
        assert all(900 < metres(*a, *b) < 1400 for a, b in zip(route, route[1:]))  # consecutive sites
        assert abs(int(d["route_radius_m"]) - max(metres(d["lat"], d["lon"], *p) for p in route)) < 3
        members = sims[d["date"]]
        hourly = defaultdict(Counter)
        for r in reader.unique:
            if r["date"].isoformat() == d["date"] and r["dir"] == "out" and r["msisdn"] in members:
                cell = where[r["carrier"], r["cell"]]
                site = min(route, key=lambda p: metres(*p, *cell))
                if metres(*site, *cell) < 20:
                    hourly[int(local_hour(r["ts"]))][site] += 1
        sites = []
        for hour in sorted(hourly):
            site, n = hourly[hour].most_common(1)[0]
            assert n >= 0.8 * sum(hourly[hour].values())  # all its SIMs on that hour's site
            if not sites or sites[-1] != site:
                sites.append(site)
        assert len(set(sites)) >= 5 and len(sites) >= len(hourly) - 2  # a new mast every working hour
        assert list(dict.fromkeys(sites)) == route  # truth lists them in order of first use


def test_debt_collection_calls_the_same_debtors_again_and_hears_back(evasive):
    root, reader = evasive
    phones = {n["number"] for n in truth(root, "hard_negatives") if n["kind"] == "debt_collection"}
    whitelist = {normalise(w["number"]) for w in csv.DictReader((root / "whitelist.csv").open(encoding="utf-8"))}
    assert 6 <= len(phones) <= 10 and not phones & whitelist
    records = [r for r in reader.unique if r["msisdn"] in phones]
    assert {r["imei"][:8] for r in records} <= PHONE_TACS and len({r["imei"] for r in records}) == len(phones)
    assert len({r["cell"] for r in records}) <= 6 and {r["date"] for r in records} == {
        START + timedelta(days=i) for i in range(EVASIVE_DAYS)
    }
    earlier: set[str] = set()
    for i in range(EVASIVE_DAYS):
        day = START + timedelta(days=i)
        out = [r for r in records if r["date"] == day and r["dir"] == "out"]
        assert all(35 <= n <= 70 for n in Counter(r["msisdn"] for r in out).values())
        assert all(9 <= local_hour(r["ts"]) < 12 or 13.5 <= local_hour(r["ts"]) < 18 for r in out)
        callees = {r["peer"] for r in out}
        if i:
            assert len(callees & earlier) / len(callees) > 0.5  # most debtors were called before
        earlier |= callees
        talks = [r["dur"] for r in out]
        assert 0.3 < sum(d > 0 for d in talks) / len(talks) < 0.5 and all(d == 0 or 60 <= d <= 900 for d in talks)
        rang_back = {r["peer"] for r in records if r["date"] == day and r["dir"] == "in"} & callees
        assert 0.12 < len(rang_back) / len(callees) < 0.45


def test_estate_agents_dial_a_segment_in_order_on_the_move(evasive):
    root, reader = evasive
    agents = {n["number"] for n in truth(root, "hard_negatives") if n["kind"] == "estate_agent"}
    assert 3 <= len(agents) <= 5
    where = positions(root)
    out = [r for r in reader.unique if r["msisdn"] in agents and r["dir"] == "out"]
    segment, n = Counter(r["peer"][:-4] for r in out).most_common(1)[0]  # one segment for the agency
    assert n > 0.6 * len(out)
    cold = sorted((r for r in out if r["peer"][:-4] == segment), key=lambda r: r["ts"])
    for i in range(EVASIVE_DAYS):
        day = START + timedelta(days=i)
        blocks, starts, at = [], set(), defaultdict(set)
        for agent in agents:
            mine = [r for r in cold if r["date"] == day and r["msisdn"] == agent]
            dialled = {int(r["peer"][1:]) for r in mine}  # the run, not a call to a friend
            mine = [r for r in mine if {int(r["peer"][1:]) - 1, int(r["peer"][1:]) + 1} & dialled]
            numbers = [int(r["peer"][1:]) for r in mine]
            steps = [b - a for a, b in zip(numbers, numbers[1:])]
            assert len(numbers) >= 10 and sum(s == 1 for s in steps) / len(steps) > 0.9  # next number, none skipped
            blocks.append((numbers[0], numbers[-1]))
            span = local_hour(mine[-1]["ts"]) - local_hour(mine[0]["ts"])
            assert 1.2 <= span <= 4 and 5 <= len(mine) / max(span, 1) <= 20  # a person's pace
            starts.add(int(local_hour(mine[0]["ts"])))
            for r in mine:
                at[int(local_hour(r["ts"]))].add((agent, where[r["carrier"], r["cell"]]))
            assert len({where[r["carrier"], r["cell"]] for r in mine}) >= 2  # on the move
            assert all(15 <= r["dur"] <= 120 for r in mine if r["dur"])
        assert max(starts) - min(starts) <= 1  # the same hours
        blocks.sort()
        assert all(a[1] < b[0] for a, b in zip(blocks, blocks[1:]))  # consecutive blocks
        for seen in at.values():  # never two agents within 100 m in the same hour
            assert all(metres(*pa, *pb) > 100 for a, pa in seen for b, pb in seen if a != b)
    assert 0.2 < sum(r["dur"] > 0 for r in cold) / len(cold) < 0.4
    backs = [r for r in reader.unique if r["msisdn"] in agents and r["dir"] == "in" and r["peer"][:-4] == segment]
    assert 0.03 <= len(backs) / len(cold) <= 0.12


def test_sim_shop_activates_new_sims_that_leave_with_their_buyers(evasive):
    root, reader = evasive
    sold = {n["number"] for n in truth(root, "hard_negatives") if n["kind"] == "sim_shop"}
    where = positions(root)
    first_day = {}
    for r in sorted(reader.unique, key=lambda r: r["ts"]):
        if r["msisdn"] in sold:
            first_day.setdefault(r["msisdn"], r)
    assert len(first_day) >= 0.95 * len(sold)
    assert all(10 <= n <= 30 for n in Counter(r["date"] for r in first_day.values()).values())
    shop = Counter(where[r["carrier"], r["cell"]] for r in first_day.values()).most_common(1)[0][0]
    tested = [r for r in first_day.values() if r["dir"] == "out" and r["dur"] <= 40]  # a short test call ...
    assert len(tested) >= 0.95 * len(first_day)
    assert all(metres(*shop, *where[r["carrier"], r["cell"]]) < 20 for r in tested)  # ... in one shop
    assert {r["imei"][:8] for r in first_day.values()} <= PHONE_TACS
    assert len({r["imei"] for r in first_day.values()}) == len(first_day)  # the buyers' phones
    later = [r for r in reader.unique if r["msisdn"] in sold and r["date"] > first_day[r["msisdn"]]["date"]]
    assert later and sum(metres(*shop, *where[r["carrier"], r["cell"]]) > 20 for r in later) / len(later) > 0.9


CLASSIC_TRUTH_SHA256 = "94669aa852398ff38e5cb0e11424471ebacfe2bee053504b1f4fb70cdf0937da"  # HEAD 86c185f


def test_four_classic_dens_make_the_calls_they_always_made(tmp_path):
    """--dens 4 gives, den for den, the truth the simulator gave before the evasive kinds and the newer
    look-alikes existed (new columns aside): they draw from their own streams."""
    simulate(tmp_path, START, 2, subscribers=200, dens=4, seed=9)
    digest = hashlib.sha256()
    for name, width in (("dens", 9), ("den_sims", 6), ("victims", 6)):
        with (tmp_path / "truth" / f"{name}.csv").open(encoding="utf-8", newline="") as f:
            for row in csv.reader(f):
                digest.update(",".join(row[:width]).encode() + b"\n")
    assert digest.hexdigest() == CLASSIC_TRUTH_SHA256
