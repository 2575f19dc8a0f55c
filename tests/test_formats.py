"""jobs.formats: each raw format read from tiny hand-written files, every line accounted for."""

import datetime as dt
import gzip
import json
from zoneinfo import ZoneInfo

import pytest

from jobs import formats
from jobs.errors import CdrwatchError
from jobs.ingest import read_lines
from schemas.raw import RAW_LAYOUTS

TZ = "Asia/Shanghai"
CN_HEADER = "话单标识,本机号码,对端号码,业务类型,开始时间,时长,IMSI,IMEI,LAC,CI"


def parse(spark, tmp_path, fmt, name, data: bytes):
    """Write `data` to landing/cm/2026-11-20/<name>, parse it; {line: Row}."""
    path = tmp_path / "landing" / "cm" / "2026-11-20" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    frame = formats.reader(fmt).parse(read_lines(spark, [path], tmp_path / "landing"), TZ)
    assert tuple(frame.columns) == formats.PARSED_COLUMNS
    rows = {r.source_line: r for r in frame.collect()}
    assert {r.source_file for r in rows.values()} == {f"cm/2026-11-20/{name}"}
    return rows


def shanghai(*fields):
    """An instant given as Shanghai wall-clock time, comparable with what collect() returns (naive,
    in the OS zone) through .timestamp()."""
    return dt.datetime(*fields, tzinfo=ZoneInfo(TZ)).timestamp()


def reasons(rows):
    return {line: r.reason for line, r in sorted(rows.items())}


def test_registry_finds_a_module_per_configured_format():
    for name, layout in RAW_LAYOUTS.items():
        assert formats.reader(name).LAYOUT is layout
    with pytest.raises(CdrwatchError, match="unknown format 'xml'"):
        formats.reader("xml")


CN_LINES = [
    "CM1,13912345678,028-85551234,主叫,2026-11-20 08:00:05,65,460001234567890,868912038201668,4101,20096",  # 2
    "CM2,8613912345679,95588,短信收,2026-11-20 09:00:00,0,,,,",  # 3 ok, no cell
    "CM3,13912345678,95588,主叫,2026-11-20 09:00:00",  # 4 short
    None,  # 5 bad UTF-8
    "CM5,13912345678,95588,主叫,2026-11-20 25:00:00,5,,,3,4",  # 6
    "CM6,13912345678,95588,被叫,2026-11-20 10:00:00,1m,,,3,4",  # 7
    "CM7,,95588,主叫,2026-11-20 10:00:00,5,,,3,4",  # 8
    "CM8,13912345678,95588,呼转,2026-11-20 10:00:00,5,,,3,4",  # 9
    ",13912345678,95588,主叫,2026-11-20 10:00:00,5,,,3,4",  # 10
    "",  # 11 blank line
]


def _cn_csv_bytes(line_end=b"\n"):
    body = [line.encode() if line is not None else "CM4,139\xff".encode("latin-1") for line in CN_LINES]
    return b"\xef\xbb\xbf" + line_end.join([CN_HEADER.encode(), *body]) + line_end


@pytest.mark.parametrize("name,line_end", [("a.csv", b"\n"), ("b.csv.gz", b"\r\n")])
def test_cn_csv(spark, tmp_path, name, line_end):
    rows = parse(spark, tmp_path, "cn_csv", name, _cn_csv_bytes(line_end))
    assert rows[1].is_header and rows[1].raw == CN_HEADER and rows[1].reason is None  # BOM and \r gone
    assert reasons(rows) == {
        1: None,
        2: None,
        3: None,
        4: "wrong field count (5, expected 10)",
        5: "undecodable bytes",
        6: "bad timestamp",
        7: "non-numeric duration",
        8: "empty served number",
        9: "unknown service",
        10: "empty record id",
        11: "wrong field count (1, expected 10)",
    }
    ok = rows[2]
    assert (
        ok.record_id,
        ok.msisdn,
        ok.other_party,
        ok.direction,
        ok.service,
        ok.duration_s,
        ok.imsi,
        ok.imei,
        ok.cell_id,
    ) == (
        "CM1",
        "+8613912345678",
        "+862885551234",
        "out",
        "voice",
        65,
        "460001234567890",
        "868912038201668",
        "4101-20096",
    )
    assert ok.start_time.timestamp() == shanghai(2026, 11, 20, 8, 0, 5)
    sms = rows[3]
    assert (sms.msisdn, sms.other_party, sms.direction, sms.service, sms.imsi, sms.cell_id) == (
        "+8613912345679",
        "95588",
        "in",
        "sms",
        None,
        None,
    )
    assert rows[5].raw == "CM4,139\ufffd"  # quarantine keeps the text, bad bytes shown as U+FFFD


def test_cn_csv_header_is_line_one_only(spark, tmp_path):
    rows = parse(spark, tmp_path, "cn_csv", "h.csv", f"{CN_HEADER}\n{CN_HEADER}\n".encode())
    assert rows[1].is_header and not rows[2].is_header
    assert rows[2].reason == "unknown service"
    assert formats.reader("cn_csv").HEADER == CN_HEADER


PIPE_LINES = [
    "CU1|13010731369|460012883288459|354204099837445|15877668272|0|V|20261120120017|000153|460-01-23004-583|锦江区194号基站",
    "CU2|13010731369|460012883288459|354204099837445|0085512345678|1|S|20261120120117|000000|460-01-23004-583|",
    "CU3|13010731369|||158|2|V|20261120120017|000153|cell|站",
    "CU4|13010731369|||158|0|X|20261120120017|000153|cell|站",
    "CU5|13010731369|||158|0|V|2026112012|000153|cell|站",
    "CU6|13010731369|||158|0|V|20261120120017|0001xx|cell|站",
    "CU7|13010731369|||158|0|V|20261120120017|000153|cell",
    None,
    "CU9| |||158|0|V|20261120120017|000153|cell|站",
]


def test_pipe_gbk(spark, tmp_path):
    body = [line.encode("gbk") if line is not None else b"CU8|130|\x81\x30|x" for line in PIPE_LINES]
    rows = parse(spark, tmp_path, "pipe_gbk", "a.txt", b"\r\n".join(body) + b"\r\n")
    assert reasons(rows) == {
        1: None,
        2: None,
        3: "unknown direction",
        4: "unknown service",
        5: "bad timestamp",
        6: "non-numeric duration",
        7: "wrong field count (10, expected 11)",
        8: "undecodable bytes",
        9: "empty served number",
    }
    ok, sms = rows[1], rows[2]
    assert (ok.record_id, ok.msisdn, ok.other_party, ok.direction, ok.service, ok.duration_s, ok.cell_id) == (
        "CU1",
        "+8613010731369",
        "+8615877668272",
        "out",
        "voice",
        113,
        "460-01-23004-583",
    )
    assert ok.start_time.timestamp() == shanghai(2026, 11, 20, 12, 0, 17)
    assert ok.raw == PIPE_LINES[0]  # decoded from GBK, \r stripped
    assert (sms.other_party, sms.direction, sms.service) == ("+85512345678", "in", "sms")
    assert not any(r.is_header for r in rows.values())


def _json(**fields):
    record = {
        "id": "CT1",
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
    return json.dumps({k: v for k, v in record.items() if v is not ...}, ensure_ascii=False)


def test_jsonl(spark, tmp_path):
    lines = [
        _json(),  # 1 ok
        _json(id="CT2", svc="sms", dur=0, peer="+85512345678"),  # 2 ok
        '{"id": "CT3", "subscriber": ',  # 3
        _json(id="CT4", dur=...),  # 4
        _json(id="CT5", ts="yesterday"),  # 5
        _json(id="CT6", dur="12s"),  # 6
        _json(id="CT7", dir="up"),  # 7
        _json(id="CT8", svc="fax"),  # 8
        _json(id="CT9", subscriber=""),  # 9
        _json(id="CT10", dur=None),  # 10 null counts as missing
        "",  # 11
        "[1, 2]",  # 12
        _json(id="CT14").replace('"', "'"),  # 14 single quotes are not JSON
        _json(id="CT15", imei=...),  # 15 every key of the contract is required
        _json(id="CT16", peer=None),  # 16
        _json(id="CT17", cell="") + ",",  # 17 trailing garbage after the object
    ]
    data = "\n".join(lines[:12]).encode() + b"\n" + b'{"id": "CT13\xff"}\n' + "\n".join(lines[12:]).encode()
    rows = parse(spark, tmp_path, "jsonl", "a.jsonl.gz", data)
    assert reasons(rows) == {
        1: None,
        2: None,
        3: "broken json",
        4: "missing field dur",
        5: "bad timestamp",
        6: "non-numeric duration",
        7: "unknown direction",
        8: "unknown service",
        9: "empty served number",
        10: "missing field dur",
        11: "broken json",
        12: "broken json",
        13: "undecodable bytes",
        14: "broken json",
        15: "missing field imei",
        16: "missing field peer",
        17: "trailing data after json object",
    }
    ok = rows[1]
    assert (ok.record_id, ok.msisdn, ok.other_party, ok.direction, ok.service, ok.duration_s, ok.cell_id) == (
        "CT1",
        "+8613342491460",
        "+8613912345678",
        "out",
        "voice",
        19,
        "ct00535",
    )
    assert ok.start_time.timestamp() == 1795147255  # epoch ms UTC
    assert (rows[2].service, rows[2].other_party, rows[2].duration_s) == ("sms", "+85512345678", 0)
