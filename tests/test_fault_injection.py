"""Bad deliveries, injected on purpose: every line of every file is accounted for, no good row is
lost, and a bad value costs its row, a bad file its file, a bad carrier-day that carrier-day.

`FAULTS` is the table "What a bad delivery gets" of docs/operations.md: one delivery file per fault
kind, all ingested in one run (with the real Great Expectations suite on what was accepted), each
line with the outcome it must get. A test here keeps the two tables the same.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
from builders import CN_HEADER, cn, config_for, pipe

from jobs import formats, validate
from jobs.ingest import CONFLICT_PREFIX, Counts, run_ingest
from jobs.io.lake_spark import read_partition
from jobs.io.manifest import Entry, write_manifest
from schemas.tables import CDR, QUARANTINE, ROUTED

DAY = dt.date(2026, 11, 20)
NEXT = DAY + dt.timedelta(days=1)
ACCEPTED, DUPLICATE, ROUTED_OUT = "accepted", "duplicate", "routed"


def js(rid, **fields):
    record = {
        "id": rid,
        "subscriber": "+8613342491460",
        "peer": "13912345678",
        "dir": "out",
        "svc": "voice",
        "ts": 1795147255000,
        "dur": 19,
        "imsi": "460110123456789",
        "imei": "356938031234567",
        "cell": "ct00535",
    }
    record.update(fields)
    return json.dumps(record, ensure_ascii=False)


def csv_file(*lines: str, header: str = CN_HEADER, end: str = "\n") -> bytes:
    return (end.join([header, *lines]) + end).encode()


@dataclass(frozen=True)
class Fault:
    """One bad (or awkward) delivery file and what each of its data lines must become."""

    kind: str
    gets: str  # docs/operations.md: what the delivery gets
    carrier: str
    name: str
    data: bytes
    outcomes: tuple[str, ...]  # per data line: accepted | duplicate | routed | a quarantine reason
    lines: int | None = None  # physical lines when not derivable (damaged files)


def _faults() -> list[Fault]:
    f = []

    def add(kind, gets, carrier, name, data, *outcomes, lines=None):
        f.append(Fault(kind, gets, carrier, name, data, tuple(outcomes), lines))

    add(
        "quotes around fields",
        "row quarantined (`bad record id` / `served number not a subscriber number`)",
        "cm",
        "quotes.csv",
        csv_file(
            '"Q1",13912345678,95588,主叫,2026-11-20 08:00:00,5,,,1,2',
            'Q2,"13912345678",95588,主叫,2026-11-20 08:00:00,5,,,1,2',
            cn("Q3"),
        ),
        "bad record id",
        "served number not a subscriber number",
        ACCEPTED,
    )
    add(
        "bare CR inside a field",
        "row quarantined (`control character in line`)",
        "cm",
        "cr.csv",
        csv_file(cn("CR1", imei="86891203\r8201668"), cn("CR2")),
        "control character in line",
        ACCEPTED,
    )
    add(
        "NUL byte inside a field",
        "row quarantined (`control character in line`)",
        "cu",
        "nul.txt",
        (pipe("NU1", site="锦江\x00区") + "\n" + pipe("NU2") + "\n").encode("gbk"),
        "control character in line",
        ACCEPTED,
    )
    add(
        "BOM in the middle of a file",
        "row quarantined (`bad record id`)",
        "cm",
        "bom.csv",
        csv_file("\ufeff" + cn("BO1"), cn("BO2")),
        "bad record id",
        ACCEPTED,
    )
    add(
        "very long field (200 kB)",
        "row quarantined, the other rows accepted",
        "cu",
        "long.txt",
        (pipe("LO1", site="站" * 100_000) + "\n" + pipe("L" * 200_000) + "\n" + pipe("LO3") + "\n").encode("gbk"),
        ACCEPTED,
        "bad record id",
        ACCEPTED,
    )
    add(
        "several JSON objects on one line",
        "row quarantined (`trailing data after json object`)",
        "ct",
        "two.jsonl.gz",
        gzip.compress((js("TW1") + js("TW2") + "\n" + js("TW3") + "\n").encode()),
        "trailing data after json object",
        ACCEPTED,
    )
    add(
        "nested JSON value",
        "row quarantined (`broken json`)",
        "ct",
        "nested.jsonl.gz",
        gzip.compress((js("NE1", cell={"lac": 1}) + "\n" + js("NE2") + "\n").encode()),
        "broken json",
        ACCEPTED,
    )
    add(
        "GB18030-only text in a GBK file",
        "row quarantined (`undecodable bytes`)",
        "cu",
        "gb18030.txt",
        (pipe("GB1", site="锦江区𠀀号").encode("gb18030") + b"\n" + pipe("GB2").encode("gbk") + b"\n"),
        "undecodable bytes",
        ACCEPTED,
    )
    add(
        "gzip named .csv",
        "read as gzip (by its bytes, not its name)",
        "cm",
        "zipped.csv",
        gzip.compress(csv_file(cn("GZ1"), cn("GZ2"))),
        ACCEPTED,
        ACCEPTED,
    )
    add("plain text named .csv.gz", "read as plain text", "cm", "plain.csv.gz", csv_file(cn("PL1")), ACCEPTED)
    add(
        "several gzip members",
        "every member read",
        "cm",
        "members.csv.gz",
        gzip.compress(csv_file(cn("ME1"))) + gzip.compress((cn("ME2") + "\n").encode()),
        ACCEPTED,
        ACCEPTED,
    )
    whole = gzip.compress(csv_file(*[cn(f"TR{i}") for i in range(300)]))
    add(
        "truncated gzip",
        "lines before the damage accepted, a cut last line quarantined; night partial",
        "cm",
        "truncated.csv.gz",
        whole[: len(whole) * 2 // 3],
    )
    add(
        "glob characters in the file name",
        "read exactly once, by its own name",
        "cm",
        "cm_a[1]{x}*?.csv",
        csv_file(cn("GL1")),
        ACCEPTED,
    )
    add(
        "comma, percent, hash and Chinese in the file name",
        "read exactly once",
        "cm",
        "移动,%20#1.csv",
        csv_file(cn("CH1")),
        ACCEPTED,
    )
    add(
        "a sibling whose name the glob would match",
        "read once, not twice",
        "cm",
        "cm_a1.csv",
        csv_file(cn("SI1")),
        ACCEPTED,
    )
    add(
        "empty (0-byte) file",
        "counted, nothing lost; a carrier-day of only empty files is partial",
        "cu",
        "empty.txt",
        b"",
    )
    add(
        "IMSI of 14 digits",
        "row quarantined (`bad imsi`)",
        "cm",
        "imsi.csv",
        csv_file(cn("IM1", imsi="46000689064443"), cn("IM2")),
        "bad imsi",
        ACCEPTED,
    )
    add(
        "IMEI of 13 digits or TAC 00",
        "row quarantined (`bad imei`)",
        "ct",
        "imei.jsonl.gz",
        gzip.compress(
            "\n".join([js("IE1", imei="3569380312345"), js("IE2", imei="003569380312345"), js("IE3")]).encode()
        ),
        "bad imei",
        "bad imei",
        ACCEPTED,
    )
    add(
        "duration over a day",
        "row quarantined (`duration out of range`)",
        "cm",
        "duration.csv",
        csv_file(cn("DU1", seconds="90000"), cn("DU2")),
        "duration out of range",
        ACCEPTED,
    )
    add(
        "SMS with a duration",
        "row quarantined (`sms with a duration`)",
        "cu",
        "sms.txt",
        (pipe("SM1", service="S") + "\n" + pipe("SM2") + "\n").encode("gbk"),
        "sms with a duration",
        ACCEPTED,
    )
    add(
        "landline as the served number",
        "row quarantined (`served number not a subscriber number`)",
        "cm",
        "landline.csv",
        csv_file(cn("LA1", msisdn="028-85551234"), cn("LA2")),
        "served number not a subscriber number",
        ACCEPTED,
    )
    add(
        "record stamped 00:00:00 of the next day",
        "kept in lake/routed, lands in the next date's partition",
        "cm",
        "heartbeat.csv",
        csv_file(cn("HB1", when="2026-11-21 00:00:00"), cn("HB2")),
        ROUTED_OUT,
        ACCEPTED,
    )
    add(
        "record ten days old",
        "row quarantined (`event outside delivery date`)",
        "cm",
        "old.csv",
        csv_file(cn("OL1", when="2026-11-10 08:00:00"), cn("OL2")),
        "event outside delivery date",
        ACCEPTED,
    )
    add(
        "exact duplicate",
        "counted as a duplicate, one row kept",
        "cm",
        "dup.csv",
        csv_file(cn("DP1"), cn("DP1")),
        ACCEPTED,
        DUPLICATE,
    )
    add(
        "corrected re-send (same id, other content)",
        "first kept, the other quarantined as `conflicting duplicate of <file>:<line>`",
        "cm",
        "conflict.csv",
        csv_file(cn("CO1"), cn("CO1", seconds="31")),
        ACCEPTED,
        CONFLICT_PREFIX + "cm/2026-11-20/conflict.csv:2",
    )
    add(
        "header that is not the format's",
        "whole file quarantined (`file header does not match the format`); night partial",
        "cm",
        "header.csv",
        csv_file(cn("HD1"), header=CN_HEADER.replace("IMEI", "IMEI号")),
        "file header does not match the format",
    )
    add(
        "CRLF line ends and no final newline",
        "accepted",
        "cu",
        "crlf.txt",
        (pipe("CL1") + "\r\n" + pipe("CL2")).encode("gbk"),
        ACCEPTED,
        ACCEPTED,
    )
    add(
        "blank line",
        "row quarantined (`wrong field count`)",
        "cu",
        "blank.txt",
        (pipe("BL1") + "\n\n" + pipe("BL2") + "\n").encode("gbk"),
        ACCEPTED,
        "wrong field count (1, expected 11)",
        ACCEPTED,
    )
    return f


FAULTS = _faults()
DELIVERY_FAULTS = {  # docs/operations.md rows proven by the tests below rather than by a file of FAULTS
    "manifest that does not match": "night partial, each missing/extra/mismatched file named",
    "folder inside a delivery folder": "reported as a warning, not read",
    "carrier-day that fails Great Expectations": "that carrier's rows quarantined (`carrier-day failed validation`), "
    "the other carriers commit, night partial",
    "carrier whose only file is empty": "night partial (`the delivery is empty`)",
    "record of the day delivered in the next day's folder": "kept in lake/routed; lands when its date is (re-)ingested",
    "delivery date in the future": "refused with a one-line error",
}


def gx_check(config, day):
    def check(carrier, accepted):
        return validate.validate_cdr_partition(accepted, carrier, day, config, [])

    return check


@pytest.fixture(scope="module")
def faulty(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    for fault in FAULTS:
        path = root / "landing" / fault.carrier / DAY.isoformat() / fault.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(fault.data)
    for carrier, name, data in (
        ("cm", "good.csv", csv_file(*[cn(f"OKM{i}") for i in range(20)])),
        ("cu", "good.txt", "".join(pipe(f"OKU{i}") + "\n" for i in range(20)).encode("gbk")),
        ("ct", "good.jsonl.gz", gzip.compress("".join(js(f"OKT{i}") + "\n" for i in range(20)).encode())),
    ):
        (root / "landing" / carrier / DAY.isoformat() / name).write_bytes(data)
    config = config_for(root)
    report = run_ingest(config, DAY, spark, check=gx_check(config, DAY))
    tables = {
        t.name: {(r.source_file, r.source_line): r for r in read_partition(config, spark, t, DAY).collect()}
        for t in (CDR, QUARANTINE, ROUTED)
    }
    return SimpleNamespace(root=root, config=config, report=report, tables=tables)


@pytest.mark.slow
def test_every_file_balances_against_its_own_line_count(faulty):
    report = faulty.report
    for fault in FAULTS:
        name = f"{fault.carrier}/{DAY.isoformat()}/{fault.name}"
        counts, facts = report.files[fault.carrier][name], report.facts[name]
        header = 1 if fault.carrier == "cm" and facts.lines and fault.kind != "header that is not the format's" else 0
        assert counts.balanced, fault.kind
        assert counts.read == facts.lines - header, fault.kind
        written = sum(1 for t in faulty.tables.values() for (f, _) in t if f == name)
        assert written == counts.accepted + counts.quarantined_total + counts.conflicts + counts.routed, fault.kind


@pytest.mark.slow
def test_the_great_expectations_suite_passed_on_everything_accepted(faulty):
    assert faulty.report.validation == {"cm": "passed", "ct": "passed", "cu": "passed"}


@pytest.mark.slow
@pytest.mark.parametrize("fault", [f for f in FAULTS if f.outcomes], ids=lambda f: f.kind)
def test_each_line_gets_its_outcome(faulty, fault):
    name = f"{fault.carrier}/{DAY.isoformat()}/{fault.name}"
    first = 2 if fault.carrier == "cm" else 1
    got = []
    for line in range(first, first + len(fault.outcomes)):
        key = (name, line)
        if key in faulty.tables["cdr"]:
            got.append(ACCEPTED)
        elif key in faulty.tables["routed"]:
            got.append(ROUTED_OUT)
        elif key in faulty.tables["quarantine"]:
            got.append(faulty.tables["quarantine"][key].reason)
        else:
            got.append(DUPLICATE)
    assert tuple(got) == fault.outcomes


@pytest.mark.slow
def test_no_accepted_record_is_lost(faulty):
    """Every record id the faults expect accepted is in the lake exactly once."""
    ids = [r.record_id for r in faulty.tables["cdr"].values()]
    assert len(ids) == len(set(ids))
    for fault in (f for f in FAULTS if f.outcomes):
        name = f"{fault.carrier}/{DAY.isoformat()}/{fault.name}"
        assert sum(1 for (f, _) in faulty.tables["cdr"] if f == name) == fault.outcomes.count(ACCEPTED), fault.kind


@pytest.mark.slow
def test_a_truncated_gzip_keeps_what_can_be_read(faulty):
    name = f"cm/{DAY.isoformat()}/truncated.csv.gz"
    counts = faulty.report.files["cm"][name]
    assert counts.accepted > 50 and counts.read < 300
    assert set(counts.quarantined) <= {formats.CUT_BY_DAMAGE}
    assert any("truncated.csv.gz is damaged" in r for r in faulty.report.partial_reasons)


@pytest.mark.slow
def test_file_names_are_read_exactly(faulty):
    rows = faulty.tables["cdr"]
    for fault_name, rid in (("cm_a[1]{x}*?.csv", "GL1"), ("移动,%20#1.csv", "CH1"), ("cm_a1.csv", "SI1")):
        assert [r.record_id for (f, _), r in rows.items() if f == f"cm/{DAY.isoformat()}/{fault_name}"] == [rid]


@pytest.mark.slow
def test_the_night_is_partial_for_the_file_level_faults_only(faulty):
    reasons = faulty.report.partial_reasons
    assert any("header.csv: header does not match" in r for r in reasons)
    assert any("truncated.csv.gz is damaged" in r for r in reasons)
    assert len(reasons) == 2, reasons


@pytest.mark.slow
def test_a_carrier_day_failing_validation_costs_only_that_carrier(spark, tmp_path):
    for carrier, name, data in (
        ("cm", "a.csv", csv_file(cn("V1"), cn("V2"))),
        ("cu", "a.txt", (pipe("U1") + "\n" + pipe("U2") + "\n").encode("gbk")),
    ):
        path = tmp_path / "landing" / carrier / DAY.isoformat() / name
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
    config = config_for(tmp_path)
    real = gx_check(config, DAY)

    def check(carrier, accepted):
        outcome = real(carrier, accepted)
        if carrier == "cu":  # injected: as if a value slipped past the parser
            return SimpleNamespace(
                success=False,
                failures=("expect_column_values_to_match_regex(imsi): 1 of 2",),
                suspect=False,
                volume=outcome.volume,
            )
        return outcome

    report = run_ingest(config, DAY, spark, check=check)
    assert report.files["cu"]["cu/2026-11-20/a.txt"] == Counts(read=2, quarantined={formats.FAILED_VALIDATION: 2})
    assert report.files["cm"]["cm/2026-11-20/a.csv"] == Counts(read=2, accepted=2)
    assert read_partition(config, spark, CDR, DAY, "cu").count() == 0
    quarantined = read_partition(config, spark, QUARANTINE, DAY, "cu").collect()
    assert sorted((r.source_line, r.reason, r.raw) for r in quarantined) == [
        (1, formats.FAILED_VALIDATION, pipe("U1")),
        (2, formats.FAILED_VALIDATION, pipe("U2")),
    ]
    assert read_partition(config, spark, CDR, DAY, "cm").count() == 2
    assert any(r.startswith("cu: failed validation") for r in report.partial_reasons)
    assert "ct: no files for 2026-11-20" in report.partial_reasons


@pytest.mark.slow
def test_an_empty_delivery_and_a_bad_manifest_make_the_night_partial(spark, tmp_path):
    cm = tmp_path / "landing" / "cm" / DAY.isoformat()
    cu = tmp_path / "landing" / "cu" / DAY.isoformat()
    cm.mkdir(parents=True)
    cu.mkdir(parents=True)
    (cm / "a.csv").write_bytes(csv_file(cn("M1"), cn("M2")))
    (cm / "b.csv").write_bytes(csv_file(cn("M3")))
    write_manifest(cm, [Entry("a.csv", 3, "0" * 64), Entry("lost.csv", 10, "1" * 64)])
    (cm / "archive").mkdir()
    (cu / "a.txt").write_bytes(b"")
    report = run_ingest(config_for(tmp_path), DAY, spark)
    assert "cu: the delivery is empty (1 file(s), 0 rows)" in report.partial_reasons
    manifest = [r for r in report.partial_reasons if r.startswith("cm: the delivery does not match its manifest")]
    assert len(manifest) == 1
    for problem in (
        "lost.csv is listed but not delivered",
        "b.csv is delivered but not listed",
        "a.csv: sha256 differs from the manifest",
        "a.csv: 2 rows, the manifest says 3",
    ):
        assert any(problem in w for w in report.warnings), problem
    assert any("folder(s) inside cm/2026-11-20/ are not read" in w and "archive" in w for w in report.warnings)
    assert report.files["cm"]["cm/2026-11-20/a.csv"].accepted == 2  # a bad manifest loses no row


@pytest.mark.slow
def test_a_matching_manifest_is_a_complete_delivery(spark, tmp_path):
    from jobs.io.manifest import entry_for

    cm = tmp_path / "landing" / "cm" / DAY.isoformat()
    cm.mkdir(parents=True)
    (cm / "a.csv.gz").write_bytes(gzip.compress(csv_file(cn("K1"), cn("K2"))))
    write_manifest(cm, [entry_for(cm / "a.csv.gz", has_header=True)])
    report = run_ingest(config_for(tmp_path), DAY, spark)
    assert not [r for r in report.partial_reasons if r.startswith("cm")]
    assert not [w for w in report.warnings if "MANIFEST" in w]


@pytest.mark.slow
def test_records_in_another_days_folder_land_in_their_own_date(spark, tmp_path):
    """A heartbeat of D+1 in D's file, and a late record of D in D+1's folder."""
    config = config_for(tmp_path)
    d, n = tmp_path / "landing" / "cm" / DAY.isoformat(), tmp_path / "landing" / "cm" / NEXT.isoformat()
    d.mkdir(parents=True)
    n.mkdir(parents=True)
    (d / "a.csv").write_bytes(csv_file(cn("R1"), cn("R2", when="2026-11-21 00:00:00")))
    (n / "a.csv").write_bytes(
        csv_file(cn("R3", when="2026-11-21 09:00:00"), cn("R4", when="2026-11-20 23:59:00"), cn("R1"))
    )  # R1 re-sent late: a duplicate when D is ingested again
    first = run_ingest(config, DAY, spark)
    assert first.routed_out == {"2026-11-21": 1}
    second = run_ingest(config, NEXT, spark)
    assert second.routed_out == {"2026-11-20": 2}
    assert second.arrived == {"cm/2026-11-20/a.csv": 1}
    assert sorted((r.record_id, r.source_file) for r in read_partition(config, spark, CDR, NEXT, "cm").collect()) == [
        ("R2", "cm/2026-11-20/a.csv"),
        ("R3", "cm/2026-11-21/a.csv"),
    ]
    assert any("rerun: cdrwatch nightly --date 2026-11-20" in w for w in second.warnings)
    again = run_ingest(config, DAY, spark)  # the re-ingest docs/operations.md tells the user to run
    assert sorted(r.record_id for r in read_partition(config, spark, CDR, DAY, "cm").collect()) == ["R1", "R4"]
    assert again.files["cm"]["cm/2026-11-21/a.csv"] == Counts(read=2, accepted=1, duplicates=1)
    assert again.routed_out == {"2026-11-21": 1}
    rerun = run_ingest(config, NEXT, spark)  # idempotent: the same rows again
    assert sorted(r.record_id for r in read_partition(config, spark, CDR, NEXT, "cm").collect()) == ["R2", "R3"]
    assert rerun.routed_out == {"2026-11-20": 2}


@pytest.mark.slow
def test_a_future_date_is_refused(spark, tmp_path):
    from jobs.errors import CdrwatchError

    (tmp_path / "landing").mkdir()
    future = dt.date.today() + dt.timedelta(days=3)
    with pytest.raises(CdrwatchError, match=r"^ingest: .* is in the future"):
        run_ingest(config_for(tmp_path), future, spark)


OPERATIONS_DOC = Path(__file__).resolve().parents[1] / "docs" / "operations.md"


def documented_fault_kinds(text: str) -> list[str]:
    """The first column of the table under the heading "What a bad delivery gets" (any level), up to
    the next heading; the table's header row left out."""
    heading = re.search(r"^#+ What a bad delivery gets\s*$", text, re.M)
    assert heading, f"{OPERATIONS_DOC.name} has no heading 'What a bad delivery gets'"
    section = text[heading.end() :].split("\n#", 1)[0]
    return [line.split("|")[1].strip() for line in section.splitlines() if re.match(r"^\| [^-]", line)][1:]


def test_operations_doc_names_every_fault_kind():
    kinds = documented_fault_kinds(OPERATIONS_DOC.read_text(encoding="utf-8"))
    assert sorted(kinds) == sorted([f.kind for f in FAULTS] + list(DELIVERY_FAULTS))
    assert len(kinds) >= 20
