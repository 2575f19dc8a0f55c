"""The lake's layout is a contract other tools read (docs/contracts.md "2. Lake"): checked here on the
simulated week with pyarrow alone, the way an outside reader would open it."""

import pyarrow.parquet as pq
import pytest

from detectors import DETECTORS

pytestmark = pytest.mark.slow

CDR_CONTRACT = {
    "record_id",
    "msisdn",
    "other_party",
    "direction",
    "service",
    "start_time",
    "duration_s",
    "imsi",
    "imei",
    "cell_id",
    "source_file",
}
FLAG_CONTRACT = {"detector", "entity_type", "entity_id", "score", "evidence"}


def _columns(folder):
    files = sorted(folder.rglob("*.parquet"))
    assert files, f"{folder}: no parquet files"
    return set(pq.read_schema(files[0]).names)


def test_lake_folders_and_columns(week_detected):
    lake = week_detected.root / "lake"
    for day in week_detected.dates:
        carriers = sorted(p.name for p in (lake / "cdr" / f"date={day}").iterdir())
        assert carriers == ["carrier=cm", "carrier=ct", "carrier=cu"]
        for carrier in carriers:
            assert CDR_CONTRACT <= _columns(lake / "cdr" / f"date={day}" / carrier)
        assert "reason" in _columns(lake / "quarantine" / f"date={day}")
        assert FLAG_CONTRACT <= _columns(lake / "flags" / f"date={day}")
    assert not (lake / "_staging").exists() or not any((lake / "_staging").iterdir())


def test_flags_read_back_with_pyarrow(week_detected):
    day = week_detected.dates[-1]
    table = pq.read_table(week_detected.root / "lake" / "flags" / f"date={day}")
    rows = table.to_pylist()
    # the simulated week has a den for every detector; `hotlist` needs field feedback, which the week has none of
    assert {r["detector"] for r in rows} == set(DETECTORS) - {"hotlist"}
    assert all(0.0 <= r["score"] <= 1.0 and r["evidence"] for r in rows)
