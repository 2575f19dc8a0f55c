"""Ingest against the simulator's truth: every count and every corrupt line, exactly."""
import csv
import datetime as dt

import pytest

from jobs.cli import main
from jobs.config import load_config
from jobs.lake import read_partition, run_summary_path
from jobs.simulate import simulate

START = dt.date(2026, 11, 20)
DAYS = (START, START + dt.timedelta(days=1))


@pytest.fixture(scope="module")
def ingested(spark, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    simulate(tmp / "landing", START, len(DAYS), subscribers=800, dens=2, seed=3)
    paths = ["--landing", str(tmp / "landing"), "--lake", str(tmp / "lake"), "--set", "spark.shuffle_partitions=2"]
    for day in DAYS:  # through the real command line, validation included
        assert main(["ingest", "--date", day.isoformat(), *paths]) == 0
    config = load_config(overrides=[f"paths.landing={tmp / 'landing'}", f"paths.lake={tmp / 'lake'}"])
    reports = {day: _report(config, day) for day in DAYS}
    return tmp / "landing" / "truth", config, reports


def _report(config, day):
    """The run summary JSON back as an IngestReport-like view: carrier -> counts."""
    import json
    from types import SimpleNamespace

    summary = json.loads(run_summary_path(config, "ingest", day).read_text(encoding="utf-8"))
    carriers = {c: SimpleNamespace(read=v["read"], accepted=v["accepted"], quarantined_total=v["quarantined"],
                                   duplicates=v["duplicates"]) for c, v in summary["carriers"].items()}
    files = {c: [f for f in summary["files"] if f["carrier"] == c] for c in carriers}
    return SimpleNamespace(carriers=carriers, files=files, warnings=summary["warnings"])


def _truth(folder, name):
    with open(folder / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_counts_equal_truth_per_carrier_and_date(ingested):
    truth, _, reports = ingested
    keys = ("files", "rows", "corrupt", "duplicated", "accepted")
    expected = {(r["date"], r["carrier"]): {k: int(r[k]) for k in keys} for r in _truth(truth, "counts.csv")}
    got = {(day.isoformat(), carrier): {"files": len(report.files[carrier]), "rows": counts.read,
                                        "corrupt": counts.quarantined_total, "duplicated": counts.duplicates,
                                        "accepted": counts.accepted}
           for day, report in reports.items() for carrier, counts in report.carriers.items()}
    assert got == expected
    assert all(not report.warnings for report in reports.values())


def test_quarantined_lines_are_the_corrupt_lines(ingested, spark):
    truth, config, _ = ingested
    expected = sorted((r["date"], r["carrier"], r["source_file"], int(r["line"]))
                      for r in _truth(truth, "corrupt_lines.csv"))
    got = sorted((day.isoformat(), r.carrier, r.source_file, r.source_line)
                 for day in DAYS for r in read_partition(config, spark, "quarantine", day).collect())
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


def test_each_corrupt_line_has_the_reason_of_its_kind(ingested, spark):
    truth, config, _ = ingested
    reasons = {(day.isoformat(), r.source_file, r.source_line): r.reason
               for day in DAYS for r in read_partition(config, spark, "quarantine", day).collect()}
    wrong = [(r["source_file"], r["line"], r["kind"], reasons.get((r["date"], r["source_file"], int(r["line"]))))
             for r in _truth(truth, "corrupt_lines.csv")
             if not (reasons.get((r["date"], r["source_file"], int(r["line"]))) or "").startswith(
                 REASONS_OF_KIND[r["kind"]])]
    assert wrong == []


def test_every_partition_was_validated_and_saved(ingested):
    import json

    _, config, _ = ingested
    for day in DAYS:
        runs = run_summary_path(config, "ingest", day).parent
        for carrier in ("cm", "cu", "ct"):
            saved = json.loads((runs / f"validation_{carrier}.json").read_text(encoding="utf-8"))
            assert saved["success"] is True and saved["failures"] == []
