"""The GX suite on both engines: a Polars partition (the `local` engine, through GX's pandas data
source) gets the verdicts, failure texts, volume line and saved JSON that the same rows get as a
Spark DataFrame. Few GX runs: each case breaks many things at once."""

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from test_validate import DAY, frame, good_rows, local

from jobs.validate import save_validation, validate_cdr_partition
from schemas.tables import CDR


def everything_broken():
    """Every expectation broken at least once (nulls where the lake refuses them, a duplicated id
    twice, bad numbers and devices, durations out of range, an sms that lasted, an instant outside
    the day), several offending values where the text shows more than one."""
    rows = good_rows()
    rows[1].update(record_id="cm-0", imei="0012345678901234")  # duplicated id; IMEI reporting body 00
    rows[3].update(record_id="cm-2", duration_s=86_401)
    rows[4].update(record_id=None)
    rows[5].update(carrier="cu", duration_s=-5)
    rows[6].update(service="mms", duration_s=None)
    rows[7].update(other_party="028-85551234")
    rows[8].update(service="sms", duration_s=30)
    rows[9].update(start_time=local(2026, 3, 2, 0, 0))  # the end of the day is excluded
    rows[10].update(imsi="46000123", start_time=None, direction="sideways")
    rows[11].update(imei="86ABCDEF012345", msisdn="13912345678")
    rows[0].update(start_time=local(2026, 2, 28, 23, 30), carrier=None)
    return rows


CASES = {
    # rows, recent accepted counts, columns dropped
    "good, enough volume": (good_rows, [20, 25], ()),
    "everything broken, volume far under the median": (everything_broken, [100, 300, 120], ()),
    "a missing column, no history": (good_rows, [], ("imei",)),
}


def comparable(saved: Path) -> dict:
    """A saved validation without what differs between any two runs or names the engine: GX's load
    time, its batch's data type and pandas fingerprint, and the tracebacks (GX's own line numbers)."""
    data = json.loads(saved.read_text(encoding="utf-8"))
    meta = data["gx_result"]["meta"]
    for key in ("batch_markers", "batch_spec"):
        meta.pop(key)
    for result in data["gx_result"]["results"]:
        for info in (result.get("exception_info") or {}).values():
            if isinstance(info, dict):
                info.pop("exception_traceback", None)
    return data


@pytest.mark.parametrize("case", list(CASES))
def test_a_polars_partition_gets_the_spark_partitions_outcome(case, spark, test_config, tmp_path):
    build, recent, dropped = CASES[case]
    rows = build()
    spark_outcome = validate_cdr_partition(frame(spark, rows).drop(*dropped), "cm", DAY, test_config, recent)
    local_outcome = validate_cdr_partition(
        pl.DataFrame(rows, schema=CDR.polars()).drop(dropped), "cm", DAY, test_config, recent
    )
    for field in ("success", "suspect", "row_count", "volume", "failures"):
        assert getattr(local_outcome, field) == getattr(spark_outcome, field), field
    if case.startswith("everything"):
        assert len(spark_outcome.failures) == 15 and spark_outcome.suspect  # every check but the columns
    assert comparable(save_validation(local_outcome, tmp_path / "local.json")) == comparable(
        save_validation(spark_outcome, tmp_path / "spark.json")
    )
    assert (tmp_path / "local.html").is_file()


def test_validate_imports_no_spark():
    """The local engine's ingest validates without a JVM: the module imports no pyspark of its own."""
    code = "import sys, jobs.validate; sys.exit('pyspark' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0
