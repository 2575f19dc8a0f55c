"""Ingest on both engines: the Polars readers give the Spark readers' values and reasons line for line,
and `run_ingest_local` writes the lake tables and the run summary that `run_ingest` writes, on a small
simulated city and on the nasty deliveries of the fault-injection tests."""

import datetime as dt
import gzip
import json

import polars as pl
import pytest
from builders import CN_HEADER, cn, config_for, pipe
from polars.testing import assert_frame_equal
from test_fault_injection import FAULTS, csv_file, js
from test_formats import CN_LINES, PIPE_LINES, _json

from jobs import formats
from jobs.formats import local as local_formats
from jobs.ingest import read_lines, run_ingest
from jobs.ingest_local import read_lines as read_lines_local
from jobs.ingest_local import run_ingest_local
from jobs.io import lake_polars
from jobs.io.layout import run_summary_path
from jobs.io.manifest import Entry, write_manifest
from schemas.tables import CDR, QUARANTINE, ROUTED

DAY = dt.date(2026, 11, 20)
NEXT = DAY + dt.timedelta(days=1)
TZ = "Asia/Shanghai"


# ---------------------------------------------------------------- the readers, line by line


def both_parse(spark, tmp_path, fmt, name, data: bytes):
    """`data` as landing/x/2026-11-20/<name>, parsed by each engine: (Spark rows, Polars rows) as
    lists of dicts sorted by line, start_time as epoch microseconds."""
    from pyspark.sql import functions as F

    landing = tmp_path / "landing"
    path = landing / "x" / "2026-11-20" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    spark_rows = (
        formats.reader(fmt)
        .parse(read_lines(spark, [path], landing), TZ)
        .withColumn("start_time", F.unix_micros("start_time"))
        .orderBy("source_line")
        .collect()
    )
    local = local_formats.parse(fmt, read_lines_local([path], landing), TZ)
    assert tuple(local.columns) == formats.PARSED_COLUMNS
    local = local.with_columns(pl.col("start_time").dt.epoch("us")).sort("source_line")
    return [r.asDict() for r in spark_rows], local.to_dicts()


def assert_same_rows(spark_rows, local_rows, lines=None):
    assert len(spark_rows) == len(local_rows)
    differ = [
        (lines[s["source_line"] - 1] if lines else s["source_line"], {k: (v, p[k]) for k, v in s.items() if p[k] != v})
        for s, p in zip(spark_rows, local_rows, strict=True)
        if s != p
    ]
    assert differ == []


CN_NASTY = [
    "CM9,13912345678,95588,主叫,2026-11-20 08:00:05,12\r,,,1,2",  # a CR before the end of a field
    " CM10 , 13912345678 ,95588, 主叫 , 2026-11-20 08:00:05 , 5 ,,,1,2",
    "\tCM11,13912345678,95588,主叫,2026-11-20 08:00:05,5,,,1,2",
    "CM12,13912345678,95588,主叫,2026-11-20T08:00:05,5,,,1,2",
    "CM13,13912345678,95588,主叫,2026-11-20 08:00:05.123,5,,,1,2",
    "CM14,13912345678,95588,主叫,2026-2-3 08:00:05,5,,,1,2",
    "CM15,13912345678,95588,主叫,2026-11-31 08:00:00,5,,,1,2",
    "CM16,13912345678,95588,主叫,2026-11-20 24:00:00,5,,,1,2",
    "CM17,13912345678,95588,主叫,2026-11-20 23:59:60,5,,,1,2",
    "CM18,13912345678,95588,主叫,1988-04-10 02:30:00,5,,,1,2",  # in a DST gap of old Shanghai time
    "CM19,13912345678,95588,主叫,1988-09-11 01:30:00,5,,,1,2",  # ambiguous
    "CM20,13912345678,95588,主叫,2026-11-20 08:00:05,+5,,,1,2",
    "CM21,13912345678,95588,主叫,2026-11-20 08:00:05,-5,,,1,2",
    "CM22,13912345678,95588,主叫,2026-11-20 08:00:05,5.0,,,1,2",
    "CM23,13912345678,95588,主叫,2026-11-20 08:00:05,0005,,,1,2",
    "CM24,13912345678,95588,主叫,2026-11-20 08:00:05,1234567890,,,1,2",
    "CM25,13912345678,95588,主叫,2026-11-20 08:00:05,999999999,,,1,2",
    "CM26,13912345678,95588,短信发,2026-11-20 08:00:05,5,,,1,2",
    "CM27,13912345678,95588,短信收,2026-11-20 08:00:05,0,460001234567890,001234567890123,1,2",
    "CM28,13912345678,95588,主叫,2026-11-20 08:00:05,5,46000123456789,86891203820166,1,",
    "CM29\u2028,13912345678,95588,主叫,2026-11-20 08:00:05,5,,,1,2",  # Java's `$` lets a final U+2028 by
    "CM30,13912345678,+855 1234,主叫,2026-11-20 08:00:05,5,,,1,2",
    "CM31,13912345678,9558,主叫,2026-11-20 08:00:05,5,,,1,2,",
    "CM32,13912345678,95588,主叫,2026-11-20 08:00:05,5,,,1",
    "CM33,0086139123456789,95588,被叫,2026-11-20 08:00:05,5,,,1,2",
    "CM34,13912345678,95588,主叫,2026-11-20 08:00:05,5,,,\x7f,2",
    "\r",
    "CM35,13912345678,95588,主叫,2026-11-20 08:00:05,5,,,1,2\r\r",
    "CM36,13912345678,95588,主叫,2026-11-20 08:00:05,5,,,1,2\r\u0085",
    "CM37,13912345678,95588,主叫,2026-11-20 08:00:05,5,,,1,2\r\r\r",
    "CM38," + "1" * 70 + ",95588,主叫,2026-11-20 08:00:05,5,,,1,2",
    "C" * 65 + ",13912345678,95588,主叫,2026-11-20 08:00:05,5,,,1,2",
]
CN_BAD_BYTES = [b"CM4,139\xff", b"\xc3(", b"\xed\xa0\x80,x", b"CM40,\xe4\xb8", b"\xf0\x9f\x98\x80,ok"]


def test_cn_csv_lines_read_the_same(spark, tmp_path):
    lines = [CN_HEADER.encode()] + [
        line.encode() if line is not None else b"CM4,139\xff" for line in [*CN_LINES, *CN_NASTY]
    ]
    lines += CN_BAD_BYTES
    data = b"\xef\xbb\xbf" + b"\n".join(lines) + b"\n"
    assert_same_rows(*both_parse(spark, tmp_path, "cn_csv", "a.csv", data), lines)
    crlf = b"\xef\xbb\xbf" + b"\r\n".join(lines)  # CRLF, no final newline, gzip
    assert_same_rows(*both_parse(spark, tmp_path, "cn_csv", "b.csv.gz", gzip.compress(crlf)), lines)


PIPE_NASTY_BYTES = [
    pipe("CU20", site="锦江区").encode("gbk") + b"\xaa\xa1",  # user-defined area: private use in Java
    pipe("CU21", site="x").encode("gbk") + b"\xa8\x92\xa8\xbf\xfe\x50\xa9\x89",  # where Java's table differs
    pipe("CU22", site="x").encode("gbk") + b"\x80",
    pipe("CU23", site="x").encode("gbk") + b"\x81",  # a lead byte at the end
    pipe("CU24", site="x").encode("gbk") + b"\x81\xff|",
    pipe("CU25", site="x").encode("gbk") + b"\x81\x7f",
    pipe("CU26", site="x").encode("gbk") + b"\xff\xfe",
    pipe("CU27", start="20261120120060").encode("gbk"),
    pipe("CU28", start="20261131120000").encode("gbk"),
    pipe("CU29", duration="000160").encode("gbk"),
    pipe("CU30", duration="240000").encode("gbk"),
    pipe("CU31", duration=" 000010 ").encode("gbk"),
    pipe("CU32", direction=" 1 ", service="S", duration="000000").encode("gbk"),
    pipe("CU33", msisdn="8613010731369").encode("gbk") + b"|extra",
    b"",
    b"\r",
    "CU34|13010731369|||158|0|V|20261120120017|000153|cell|站\r\r".encode("gbk"),
]


def test_pipe_gbk_lines_read_the_same(spark, tmp_path):
    lines = [line.encode("gbk") if line is not None else b"CU8|130|\x81\x30|x" for line in PIPE_LINES]
    lines += PIPE_NASTY_BYTES
    assert_same_rows(*both_parse(spark, tmp_path, "pipe_gbk", "a.txt", b"\r\n".join(lines) + b"\r\n"), lines)


def test_gbk_decodes_every_byte_pair_as_java_does(spark):
    """Every one- and two-byte sequence: Java's GBK (Spark's decode) and the local engine's agree."""
    from pyspark.sql import functions as F

    pairs = [bytes([a]) for a in range(256) if a != 10]
    pairs += [bytes([a, b]) for a in range(0x80, 0x100) for b in range(256) if b != 10]
    frame = spark.createDataFrame([(bytearray(p),) for p in pairs], "b binary")
    java = [r.t for r in frame.select(F.decode("b", "GBK").alias("t")).collect()]
    local = [local_formats.gbk(p) for p in pairs]
    assert [(p.hex(), j) for p, j, t in zip(pairs, java, local, strict=True) if j != t] == []


JSON_NASTY = [
    _json(id=12345),
    _json(id=1.5e16),
    _json(id=True),
    _json(id=1.5),
    _json(ts="1795147255000"),
    _json(ts=1.7951472e12),
    _json(ts=-1),
    _json(ts=" 1795147255000 "),
    _json(dur="19"),
    _json(dur=19.0),
    _json(dur=1e400),
    _json(cell="a{b}[c]"),
    _json(cell='quote " inside'),
    _json(cell="\u2028"),
    _json(id="CT\u2028"),
    _json(id="\u0000"),
    _json(id="LONE").replace("LONE", "CT\\ud800x"),  # a lone surrogate escape
    _json(id="PAIR").replace("PAIR", "CT\\ud83d\\ude00"),
    _json(peer=[1, 2]),
    "  " + _json() + "  ",
    _json() + "x",
    _json() + "}",
    _json() + " {",
    "{}",
    '{"id": NaN}',
    '{"id": "a", "id": "b", "subscriber": "+8613342491460"}',
    _json()[:-1] + ', "extra": 1}',
    _json()[:-1] + ', "ID": 1}',
    _json().replace(", ", ",\t"),
    '{"id": "x"',
    "{",
    "null",
    '"text"',
    "  ",
    '{"id": "a\\u0041"}',
    '{"id": "\\x"}',
    '{"id": 01}',
    '{"id": "line\tbreak"}',
    '{"id": "a"} // comment',
    "{'id': 'x'}",
    # lines the local parser cuts by regex (plain: no escapes, integers, spaces): each must read as Jackson reads it
    _json(id=0),
    _json(id="CT-0").replace('"dur": 19', '"dur": -0'),
    _json(cell="a,b} [x]: y \"id\": 5"),
    _json(cell='a,b} [x]: "id" 5'),
    _json(cell="del\x7f 中文 ünï"),
    _json(peer="id", cell="subscriber"),
    _json().replace('": ', '" :\t').replace(", ", " , "),
    _json() + "\r",
    _json() + " \t ",
    _json(imei=None, cell=None),
    _json(dur=123456789012345678901234567890),
    _json(dur=True, svc=False),
    _json().replace('"dur": 19', '"dur": 019'),
    _json().replace('"dur": 19', '"dur": 1e3'),
    '{"subscriber": "+8613342491460", "id": "CTa", "x": {"id": "CTb"}}',
    '{"Id": "CT1", "id": "CT2"}',
]


def test_jsonl_lines_read_the_same(spark, tmp_path):
    lines = [_json(), _json(id="CT2", svc="sms", dur=0, peer="+85512345678"), '{"id": "CT3", "subscriber": ']
    lines += [_json(id="CT4", dur=...), _json(id="CT10", dur=None), "", "[1, 2]", _json(id="CT14").replace('"', "'")]
    lines += [_json(id="CT15", imei=...), _json(id="CT17", cell="") + ",", *JSON_NASTY]
    raw = [line.encode() for line in lines] + [b'{"id": "CT13\xff"}', js("TW1").encode() + js("TW2").encode()]
    data = gzip.compress(b"\n".join(raw) + b"\n")
    assert_same_rows(*both_parse(spark, tmp_path, "jsonl", "a.jsonl.gz", data), raw)


def test_lines_are_the_files_physical_lines(spark, tmp_path):
    """Empty files, a lone newline, several gzip members, a gzip named .txt, a damaged gzip: the lines
    Spark reads (through `link_inputs`, as ingest does) and the lines the local engine reads."""
    from jobs.ingest import link_inputs
    from jobs.io.landing_files import inspect_file

    whole = gzip.compress(b"".join(b"line %d\n" % i for i in range(3000)))
    files = {
        "empty.txt": b"",
        "newline.txt": b"\n",
        "two.txt": b"a\n\nb",
        "members.txt": gzip.compress(b"a\nb") + gzip.compress(b"c\n"),
        "zipped.txt": gzip.compress(b"x\r\ny\r\n"),
        "damaged.txt": whole[: len(whole) * 2 // 3],
    }
    landing = tmp_path / "landing"
    folder = landing / "cu" / "2026-11-20"
    folder.mkdir(parents=True)
    paths = []
    for name, data in files.items():
        (folder / name).write_bytes(data)
        paths.append(folder / name)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    read_from = link_inputs(paths, {p: inspect_file(p) for p in paths}, inputs)
    spark_lines = sorted(tuple(r) for r in read_lines(spark, paths, landing, read_from).collect())
    local = read_lines_local(paths, landing)
    assert sorted(local.iter_rows()) == [(f, n, bytes(b)) for f, n, b in spark_lines]
    assert local.group_by("source_file").len().sort("source_file").rows() == sorted(
        (f"cu/2026-11-20/{p.name}", inspect_file(p).lines) for p in paths if inspect_file(p).lines
    )


# ---------------------------------------------------------------- whole ingests, lake and summary


def lake_rows(config, table, days):
    """Every row of `table` on `days`, all columns, sorted by date, carrier, source_file, source_line."""
    scan = lake_polars.scan_days(config, table, days)
    if scan is None:
        return pl.DataFrame(schema=table.polars())
    return scan.select(table.names).collect().sort("date", "carrier", "source_file", "source_line")


def assert_same_ingest(spark_config, local_config, days, day):
    for table in (CDR, QUARANTINE, ROUTED):
        assert_frame_equal(lake_rows(spark_config, table, days), lake_rows(local_config, table, days))
    summaries = [
        json.loads(run_summary_path(c, "ingest", day).read_text("utf-8")) for c in (spark_config, local_config)
    ]
    assert summaries[0] == summaries[1]


def twin_configs(tmp_path):
    """Two lakes on one landing zone: (Spark's config, the local engine's config)."""
    spark_config = config_for(tmp_path)
    local_config = config_for(tmp_path, **{"paths.lake": tmp_path / "lake_local"})
    return spark_config, local_config


def run_both(spark, configs, day, check=None):
    spark_report = run_ingest(configs[0], day, spark, check=check)
    local_report = run_ingest_local(configs[1], day, check=check)
    assert spark_report.as_dict() == local_report.as_dict()
    assert spark_report.numbered == local_report.numbered
    return spark_report, local_report


def deliver_faults(landing):
    """The fault-injection deliveries of D, good files of every carrier, and the awkward rest: a
    folder inside a delivery, a manifest that does not match, a record of D in D+1's folder (and
    one of D+1 in D's), a re-sent record, a conflicting one across days."""
    for fault in FAULTS:
        path = landing / fault.carrier / DAY.isoformat() / fault.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(fault.data)
    for carrier, name, data in (
        ("cm", "good.csv", csv_file(*[cn(f"OKM{i}") for i in range(20)])),
        ("cu", "good.txt", "".join(pipe(f"OKU{i}") + "\n" for i in range(20)).encode("gbk")),
        ("ct", "good.jsonl.gz", gzip.compress("".join(js(f"OKT{i}") + "\n" for i in range(20)).encode())),
    ):
        (landing / carrier / DAY.isoformat() / name).write_bytes(data)
    (landing / "cm" / DAY.isoformat() / "inner").mkdir()
    nxt = landing / "cm" / NEXT.isoformat()
    nxt.mkdir(parents=True)
    (nxt / "a.csv").write_bytes(
        csv_file(
            cn("N1", when="2026-11-21 09:00:00"),
            cn("N2", when="2026-11-20 23:59:00"),  # late: routed to D, arrives when D is ingested again
            cn("OKM1"),  # re-sent late: a duplicate of D's good.csv
            cn("OKM2", seconds="99"),  # re-sent changed: a conflict
        )
    )
    cu_next = landing / "cu" / NEXT.isoformat()
    cu_next.mkdir(parents=True)
    (cu_next / "b.txt").write_bytes((pipe("NU1", start="20261121080000") + "\r\n").encode("gbk"))
    write_manifest(cu_next, [Entry("b.txt", 5, "0" * 64), Entry("missing.txt", 1, "0" * 64)])


@pytest.mark.slow
def test_the_engines_ingest_nasty_deliveries_alike(spark, tmp_path):
    deliver_faults(tmp_path / "landing")
    configs = twin_configs(tmp_path)
    days = [DAY, NEXT]
    for day in (DAY, NEXT, DAY):  # D's record of D+1 arrives in D+1, D+1's late record of D in the rerun of D
        run_both(spark, configs, day)
        assert_same_ingest(*configs, days, day)


@pytest.mark.slow
def test_the_engines_quarantine_a_failed_carrier_alike(spark, tmp_path):
    deliver_faults(tmp_path / "landing")
    configs = twin_configs(tmp_path)
    seen = []

    class Outcome:
        def __init__(self, carrier, rows):
            self.success = carrier != "cu"
            self.failures = [] if self.success else [f"stub: {rows} rows"]
            self.suspect = carrier == "ct"
            self.volume = f"{rows} rows"

    def check(carrier, accepted):
        rows = accepted.count() if hasattr(accepted, "rdd") else accepted.height
        seen.append((carrier, rows, sorted(accepted.columns)))
        return Outcome(carrier, rows)

    run_both(spark, configs, DAY, check=check)
    assert_same_ingest(*configs, [DAY], DAY)
    half = len(seen) // 2
    assert seen[:half] == seen[half:] and [c for c, _, _ in seen[:half]] == ["cm", "ct", "cu"]


def test_local_ingest_alone_with_a_stub_check(tmp_path):
    """The local engine on its own (no Spark): a header-mismatch file, a duplicate, a routed record."""
    cm = tmp_path / "landing" / "cm" / DAY.isoformat()
    cm.mkdir(parents=True)
    (cm / "a.csv").write_bytes(csv_file(cn("A1"), cn("A1"), cn("A2", when="2026-11-21 00:00:01"), cn("A3", when="x")))
    (cm / "b.csv").write_bytes(csv_file(cn("B1"), header=CN_HEADER.replace("IMSI", "imsi")))
    config = config_for(tmp_path, **{"carriers.cu": "null", "carriers.ct": "null"})

    class Passed:
        success, failures, suspect, volume = True, [], False, "normal"

    got = []
    report = run_ingest_local(config, DAY, check=lambda carrier, rows: got.append((carrier, rows.height)) or Passed())
    assert got == [("cm", 1)]
    counts = report.files["cm"]
    assert (counts["cm/2026-11-20/a.csv"].accepted, counts["cm/2026-11-20/a.csv"].duplicates) == (1, 1)
    assert counts["cm/2026-11-20/a.csv"].routed == 1
    assert counts["cm/2026-11-20/b.csv"].quarantined == {formats.HEADER_MISMATCH: 2}  # its header line too
    assert report.validation == {"cm": "passed"} and report.partial
    assert lake_rows(config, QUARANTINE, [DAY])["reason"].sort().to_list() == [
        "bad timestamp",
        formats.HEADER_MISMATCH,
        formats.HEADER_MISMATCH,
    ]


@pytest.mark.slow
def test_the_ingest_steps_validate_alike(spark, tmp_path):
    """`ingest_date` (Spark, GX on Spark) and `ingest_date_local` (Polars, GX through pandas): the same
    lake, run summary and saved validation verdicts (GX's own result objects differ in their
    backend's details, such as the batch's metadata)."""
    from jobs.ingest import ingest_date
    from jobs.ingest_local import ingest_date_local
    from jobs.io.layout import run_dir

    deliver_faults(tmp_path / "landing")
    spark_config, local_config = twin_configs(tmp_path)
    spark_report = ingest_date(spark_config, DAY, spark=spark)
    local_report = ingest_date_local(local_config, DAY)
    assert spark_report.as_dict() == local_report.as_dict()
    assert_same_ingest(spark_config, local_config, [DAY], DAY)
    for carrier in ("cm", "cu", "ct"):
        saved = [
            json.loads((run_dir(c, "ingest", DAY) / f"validation_{carrier}.json").read_text("utf-8"))
            for c in (spark_config, local_config)
        ]
        verdicts = [
            {
                **{k: v for k, v in result.items() if k != "gx_result"},
                "expectations": [
                    (r["expectation_config"]["type"], r["expectation_config"]["kwargs"].get("column"), r["success"])
                    for r in result["gx_result"]["results"]
                ],
            }
            for result in saved
        ]
        assert verdicts[0] == verdicts[1], carrier


def test_utf8_lines_chunk_by_chunk(monkeypatch):
    """Lines are decoded a chunk at a time: a chunk with an invalid line is read line by line, its
    neighbours natively, and every line comes back in place with its own verdict."""
    monkeypatch.setattr(local_formats, "_UTF8_CHUNK", 3)
    lines = [b"a", "\u4e2d".encode(), b"\xff", b"", b"ok\r", b"\xe4\xb8", b"\xed\xa0\x80x", b"z"]
    texts, valid = local_formats.utf8_lines(pl.Series(lines, dtype=pl.Binary))
    assert texts.to_list() == [line.decode("utf-8", errors="replace") for line in lines]
    assert valid.to_list() == [True, True, False, True, True, False, False, True]
    empty = local_formats.utf8_lines(pl.Series([], dtype=pl.Binary))
    assert (empty[0].to_list(), empty[1].to_list()) == ([], [])
