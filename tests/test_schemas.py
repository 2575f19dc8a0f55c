"""Each table is declared once; its Spark and Arrow forms must say the same thing, and the contract
columns are those of docs/contracts.md (tests/test_contracts_doc.py checks every table against it)."""

import pyarrow as pa
import pytest
from pyspark.sql.pandas.types import to_arrow_schema

from schemas import CDR, LEAD_COLUMNS, RAW_LAYOUTS, TABLES, WARNING_COLUMNS
from schemas.table import Column


@pytest.mark.parametrize("table", TABLES.values(), ids=TABLES.keys())
def test_spark_and_arrow_schemas_agree(table):
    from_spark = to_arrow_schema(table.spark(), timezone="UTC")
    assert from_spark.names == table.arrow().names
    for derived, declared in zip(from_spark, table.arrow()):
        assert derived.type == declared.type, derived.name
        assert derived.nullable == declared.nullable, derived.name


def test_cdr_has_the_contract_columns():
    contract = {
        "record_id",
        "carrier",
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
    assert contract <= set(CDR.names)
    assert CDR.arrow().field("start_time").type == pa.timestamp("us", tz="UTC")
    assert CDR.partition_by == ("date", "carrier")


def test_outbox_columns_are_the_contract():
    assert LEAD_COLUMNS == (
        "den_id",
        "priority",
        "score",
        "district",
        "lat",
        "lon",
        "radius_m",
        "cells",
        "site_names",
        "active_hours",
        "first_seen",
        "last_seen",
        "nights_active",
        "n_numbers",
        "numbers",
        "n_imeis",
        "imeis",
        "n_calls",
        "n_distinct_callees",
        "n_victims",
        "signals",
        "evidence",
    )
    assert WARNING_COLUMNS == ("number", "district", "den_id", "first_contact", "longest_call_s", "n_calls")


def test_raw_layouts_match_the_contract():
    assert RAW_LAYOUTS["cn_csv"].fields == (
        "话单标识",
        "本机号码",
        "对端号码",
        "业务类型",
        "开始时间",
        "时长",
        "IMSI",
        "IMEI",
        "LAC",
        "CI",
    )
    assert len(RAW_LAYOUTS["pipe_gbk"].fields) == 11
    assert RAW_LAYOUTS["jsonl"].fields == (
        "id",
        "subscriber",
        "peer",
        "dir",
        "svc",
        "ts",
        "dur",
        "imsi",
        "imei",
        "cell",
    )


def test_unknown_column_type_is_refused():
    with pytest.raises(ValueError, match="unknown type 'float16'"):
        Column("x", "float16")
