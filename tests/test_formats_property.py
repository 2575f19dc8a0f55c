"""Property: whatever a parser accepts, the lake's Great Expectations suite passes.

Hypothesis writes deliveries of records whose every field is drawn from a mix of good forms and
junk (wrong lengths, letters, control characters, far dates, quotes, Chinese); the rows that the
format's parser and `classify` accept are validated with the real suite, which must pass. The
parsers quarantine row by row; the suite is only the backstop.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs import formats, validate
from jobs.config import load_config
from jobs.ingest import accepted_rows, classify, read_lines

pytestmark = pytest.mark.slow

DAY = dt.date(2026, 11, 20)
CN_HEADER = "话单标识,本机号码,对端号码,业务类型,开始时间,时长,IMSI,IMEI,LAC,CI"

junk = st.text(
    alphabet=st.sampled_from(list("0123456789+-# \"'\t\r\x00\x7fAbc锦江区") + ["\ufeff", "\u00a0"]), max_size=20
)
digits = st.integers(min_value=0, max_value=18).flatmap(
    lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n)
)
mobile = st.builds(
    lambda p, n: p + "1" + n,
    st.sampled_from(["", "86", "+86", "0086"]),
    st.text(alphabet="0123456789", min_size=10, max_size=10),
)
number = st.one_of(
    mobile, st.sampled_from(["95588", "10086", "028-85551234", "+85512345678", "BANK", "", "1"]), digits, junk
)
when = st.one_of(
    st.datetimes(min_value=dt.datetime(2026, 11, 19, 20), max_value=dt.datetime(2026, 11, 21, 4)),
    st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2030, 1, 1)),
)
record = st.fixed_dictionaries(
    {
        "id": st.one_of(st.text(alphabet="ABC0123456789", min_size=1, max_size=6), junk),
        "msisdn": st.one_of(mobile, number),
        "peer": number,
        "kind": st.sampled_from(["主叫", "被叫", "短信发", "短信收", "呼转", ""]),
        "when": when,
        "seconds": st.one_of(st.integers(min_value=-5, max_value=100_000).map(str), junk),
        "imsi": st.one_of(digits, junk),
        "imei": st.one_of(
            digits, st.builds(lambda n: "86" + n, st.text(alphabet="0123456789", min_size=13, max_size=13)), junk
        ),
    }
)


def _cn_line(r) -> str:
    return ",".join(
        [
            r["id"],
            r["msisdn"],
            r["peer"],
            r["kind"],
            r["when"].strftime("%Y-%m-%d %H:%M:%S"),
            r["seconds"],
            r["imsi"],
            r["imei"],
            "4101",
            "20096",
        ]
    )


def _json_line(r) -> str:
    kind = {"主叫": ("out", "voice"), "被叫": ("in", "voice"), "短信发": ("out", "sms"), "短信收": ("in", "sms")}
    direction, service = kind.get(r["kind"], ("sideways", "fax"))
    ts = int(r["when"].replace(tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp() * 1000)
    return json.dumps(
        {
            "id": r["id"],
            "subscriber": r["msisdn"],
            "peer": r["peer"],
            "dir": direction,
            "svc": service,
            "ts": ts,
            "dur": r["seconds"],
            "imsi": r["imsi"],
            "imei": r["imei"],
            "cell": "ct1",
        },
        ensure_ascii=False,
    )


@settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
@given(records=st.lists(record, min_size=30, max_size=80))
def test_whatever_a_parser_accepts_the_suite_passes(spark, records):
    config = load_config()
    with tempfile.TemporaryDirectory() as tmp:
        landing = Path(tmp)
        folder = landing / "cm" / DAY.isoformat()
        folder.mkdir(parents=True)
        cn_file, json_file = folder / "a.csv", folder / "a.jsonl.gz"
        cn_file.write_bytes(
            ("\n".join([CN_HEADER, *[_cn_line(r).replace("\n", " ") for r in records]]) + "\n").encode("utf-8")
        )
        json_file.write_bytes(gzip.compress(("\n".join(_json_line(r) for r in records) + "\n").encode()))
        for fmt, path in (("cn_csv", cn_file), ("jsonl", json_file)):
            parsed = formats.reader(fmt).parse(read_lines(spark, [path], landing), config.timezone)
            rows = classify(parsed.withColumn("carrier", _lit("cm")).withColumn("arrived", _lit(False)), DAY, 0)
            accepted = accepted_rows(rows).cache()
            outcome = validate.validate_cdr_partition(accepted, "cm", DAY, config, [])
            assert outcome.success, (fmt, outcome.failures)
            accepted.unpersist()


def _lit(value):
    from pyspark.sql import functions as F

    return F.lit(value)
