"""Ingest against the simulator's truth: every count and every corrupt line, exactly."""

import csv

import pytest

from jobs.io.lake_spark import read_partition
from jobs.io.layout import run_summary_path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ingested(week_ingested):
    week = week_ingested
    return week.truth, week.config, {day: _report(week.config, day) for day in week.dates}


def _report(config, day):
    """The run summary JSON back as an IngestReport-like view: carrier -> counts."""
    import json
    from types import SimpleNamespace

    summary = json.loads(run_summary_path(config, "ingest", day).read_text(encoding="utf-8"))
    carriers = {
        c: SimpleNamespace(
            read=v["read"], accepted=v["accepted"], quarantined_total=v["quarantined"], duplicates=v["duplicates"]
        )
        for c, v in summary["carriers"].items()
    }
    files = {c: [f for f in summary["files"] if f["carrier"] == c] for c in carriers}
    return SimpleNamespace(carriers=carriers, files=files, warnings=summary["warnings"])


def _truth(folder, name):
    with open(folder / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_counts_equal_truth_per_carrier_and_date(ingested, week_ingested):
    """Per date folder: its files and lines as written. The carriers' clocks are apart (the week's
    --clock-skew), so a few records near midnight carry the neighbouring date: routed out of this
    folder (still valid: counted with the accepted), and into the other date's ingest, where they
    arrive from lake/routed (left out here: not this folder's files)."""
    truth, _, reports = ingested
    keys = ("files", "rows", "corrupt", "duplicated", "accepted")
    expected = {(r["date"], r["carrier"]): {k: int(r[k]) for k in keys} for r in _truth(truth, "counts.csv")}
    got = {}
    for day, report in reports.items():
        for carrier, files in report.files.items():
            delivered = [f for f in files if not f.get("arrived_from_routed")]
            got[(day.isoformat(), carrier)] = {
                "files": len(delivered),
                "rows": sum(f["read"] for f in delivered),
                "corrupt": sum(f["quarantined"] for f in delivered),
                "duplicated": sum(f["duplicates"] for f in delivered),
                "accepted": sum(f["accepted"] + f["routed"] for f in delivered),
            }
    assert got == expected
    assert all("delivered in" in w for report in reports.values() for w in report.warnings), "only routing notes"
    assert sum(f["routed"] for report in reports.values() for files in report.files.values() for f in files) > 0


def test_quarantined_lines_are_the_corrupt_lines(ingested, spark, week_ingested):
    truth, config, _ = ingested
    expected = sorted(
        (r["date"], r["carrier"], r["source_file"], int(r["line"])) for r in _truth(truth, "corrupt_lines.csv")
    )
    got = sorted(
        (day.isoformat(), r.carrier, r.source_file, r.source_line)
        for day in week_ingested.dates
        for r in read_partition(config, spark, "quarantine", day).collect()
    )
    assert got == expected


REASONS_OF_KIND = {  # simulator's corruption kind -> the reasons ingest may give it
    "truncated": ("wrong field count", "broken json"),
    "bad_encoding": ("undecodable bytes",),
    "bad_timestamp": ("bad timestamp", "missing field ts"),
    "bad_duration": ("non-numeric duration",),
    "empty_msisdn": ("empty served number",),
    "missing_field": ("missing field",),
    "broken_json": ("broken json",),
}


def test_each_corrupt_line_has_the_reason_of_its_kind(ingested, spark, week_ingested):
    truth, config, _ = ingested
    reasons = {
        (day.isoformat(), r.source_file, r.source_line): r.reason
        for day in week_ingested.dates
        for r in read_partition(config, spark, "quarantine", day).collect()
    }
    wrong = [
        (r["source_file"], r["line"], r["kind"], reasons.get((r["date"], r["source_file"], int(r["line"]))))
        for r in _truth(truth, "corrupt_lines.csv")
        if not (reasons.get((r["date"], r["source_file"], int(r["line"]))) or "").startswith(REASONS_OF_KIND[r["kind"]])
    ]
    assert wrong == []


def test_every_partition_was_validated_and_saved(ingested, week_ingested):
    import json

    _, config, _ = ingested
    for day in week_ingested.dates:
        runs = run_summary_path(config, "ingest", day).parent
        for carrier in ("cm", "cu", "ct"):
            saved = json.loads((runs / f"validation_{carrier}.json").read_text(encoding="utf-8"))
            assert saved["success"] is True and saved["failures"] == []
