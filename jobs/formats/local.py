"""The carriers' raw formats read with Polars: the local engine's twin of the Spark readers
(`jobs.formats.cn_csv`, `pipe_gbk`, `jsonl`), giving the same PARSED_COLUMNS with the same values
and the same quarantine reasons for the same lines (tests/test_engines_ingest.py runs both).

`parse(format_name, lines, timezone)`: `lines` has `source_file, source_line, bytes`, as Spark's
`read_lines` gives them. Text is decoded as the JVM decodes it (UTF-8 with U+FFFD for each invalid
sequence, GBK as Java's GBK charset), and the Spark readers' Java regexes are matched with Java's
meaning of `$` (also before one final line terminator) and `.` (no line terminator).
"""

from __future__ import annotations

import codecs
import json
import math
from collections.abc import Callable
from decimal import Decimal

import polars as pl

from jobs import formats
from jobs.numbers import polars_e164
from schemas.raw import (
    CN_CSV,
    CN_CSV_SERVICES,
    JSONL,
    JSONL_DIRECTIONS,
    JSONL_SERVICES,
    PIPE_GBK,
    PIPE_GBK_DIRECTIONS,
    PIPE_GBK_SERVICES,
)

REPLACEMENT = "\ufffd"
_JAVA_END = r"(?:\r\n|[\n\r\x{85}\x{2028}\x{2029}])?$"  # Java's `$`: the end, or before a final line terminator
_JAVA_DOT = r"[^\n\r\x{85}\x{2028}\x{2029}]"  # Java's `.`
_JAVA_SPACE = r"[ \t\n\x0B\f\r]"  # Java's `\s` (ASCII)
_TYPES = {
    "source_line": pl.Int64,
    "is_header": pl.Boolean,
    "start_time": pl.Datetime("us", "UTC"),
    "duration_s": pl.Int32,
}
PARSED_SCHEMA = {name: _TYPES.get(name, pl.String) for name in formats.PARSED_COLUMNS}


def parse(format_name: str, lines: pl.DataFrame, timezone: str) -> pl.DataFrame:
    """`lines` (source_file, source_line, bytes) parsed by `format_name`'s rules: PARSED_COLUMNS."""
    return _PARSERS[formats.layout(format_name).name](lines, timezone)


# ---------------------------------------------------------------- text as the JVM decodes it


def java_regex(regex: str) -> str:
    """A Java regex of the Spark readers written for Polars (Rust): `$`, `.`, `\\s` and `\\S` with
    Java's meaning (outside character classes; the readers use none of them inside one)."""
    out, in_class, i = [], False, 0
    while i < len(regex):
        char = regex[i]
        if char == "\\":
            escaped = regex[i : i + 2]
            out.append(
                {"\\s": _JAVA_SPACE, "\\S": "[^" + _JAVA_SPACE[1:]}.get(escaped, escaped) if not in_class else escaped
            )
            i += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class and out and out[-1] not in ("[", "[^"):
            in_class = False
        out.append(_JAVA_DOT if char == "." and not in_class else char)
        i += 1
    text = "".join(out)
    return text[:-1] + _JAVA_END if regex.endswith("$") and not regex.endswith("\\$") else text


def rlike(value: pl.Expr, regex: str) -> pl.Expr:
    """Spark's `value.rlike(regex)` (a Java find) for the readers' regexes (none uses a lookahead,
    which Rust's regex lacks)."""
    return value.str.contains(java_regex(regex))


def strip_cr(text: pl.Expr) -> pl.Expr:
    r"""Spark's `regexp_replace(text, '\r$', '')` with Java's `$`: a final '\r' goes, and one before a
    final line terminator ('\r', U+0085, U+2028, U+2029) too."""
    return (
        pl.when(text.str.ends_with("\r\r"))
        .then(text.str.strip_suffix("\r\r"))
        .when(text.str.contains(r"\r[\x{85}\x{2028}\x{2029}]$"))
        .then(text.str.replace(r"\r([\x{85}\x{2028}\x{2029}])$", "$1"))
        .otherwise(text.str.strip_suffix("\r"))
    )


def _decode_lines(lines: pl.Series, decode: Callable[[bytes], str]) -> pl.Series:
    """Each line's bytes as text: the lines decoded together (neither codec here lets an invalid
    sequence swallow a '\\n'), one by one only if that ever split them differently."""
    pieces = lines.to_list()
    if not pieces:
        return pl.Series(values=[], dtype=pl.String)
    texts = decode(b"\n".join(pieces)).split("\n")
    if len(texts) != len(pieces):
        texts = [decode(piece) for piece in pieces]
    return pl.Series(values=texts, dtype=pl.String)


def utf8(data: bytes) -> str:
    """UTF-8 with U+FFFD for each maximal invalid subsequence: what Spark's make_valid_utf8 gives."""
    return data.decode("utf-8", errors="replace")


def utf8_lines(lines: pl.Series) -> tuple[pl.Series, pl.Series]:
    """Each line as UTF-8 text (`utf8`) and whether it is valid UTF-8 (Spark's is_valid_utf8).
    Valid text is taken as it is by Polars; a chunk that Polars refuses is halved until the invalid
    lines are found, and only those are decoded in Python."""
    if len(lines) <= _UTF8_CHUNK:
        try:
            return lines.cast(pl.String), pl.repeat(True, len(lines), dtype=pl.Boolean, eager=True)
        except pl.exceptions.ComputeError:  # an invalid line somewhere in the chunk
            if len(lines) == 1:
                return _decode_lines(lines, utf8), pl.Series(values=[_is_utf8(lines[0])], dtype=pl.Boolean)
    half = min(_UTF8_CHUNK, (len(lines) + 1) // 2)
    parts = [utf8_lines(lines.slice(start, half)) for start in range(0, len(lines), half)]
    return pl.concat([t for t, _ in parts]), pl.concat([v for _, v in parts])


_UTF8_CHUNK = 20_000


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


# Where Java's GBK charset differs from Python's `gbk` codec: pairs Python cannot read that Java maps
# (the user-defined areas: as gb18030 maps them, except these runs: first pair, last pair, first
# code point), one pair both map differently, and how many bytes an invalid pair costs.
_JAVA_GBK_RUNS = (
    (0xA8BF, 0xA8BF, 0xE7C8),
    (0xA989, 0xA995, 0xE7E7),
    (0xFE50, 0xFE50, 0xE815),
    (0xFE54, 0xFE58, 0xE819),
    (0xFE5A, 0xFE60, 0xE81F),
    (0xFE62, 0xFE65, 0xE827),
    (0xFE68, 0xFE6B, 0xE82D),
    (0xFE6E, 0xFE75, 0xE833),
    (0xFE77, 0xFE7D, 0xE83C),
    (0xFE80, 0xFE8F, 0xE844),
    (0xFE92, 0xFE9F, 0xE856),
)
_JAVA_GBK_DIFFERS = {"\u2295": "\u2641"}  # A892: Python's gbk gives U+2295, Java's U+2641


def _java_gbk_error(error: UnicodeDecodeError) -> tuple[str, int]:
    data, at = error.object, error.start
    lead = data[at]
    if 0x81 <= lead <= 0xFE and at + 1 < len(data):
        trail = data[at + 1]
        pair = lead << 8 | trail
        for first, last, code in _JAVA_GBK_RUNS:
            if first <= pair <= last:
                return chr(code + pair - first), at + 2
        try:
            mapped = bytes(data[at : at + 2]).decode("gb18030")
        except UnicodeDecodeError:
            mapped = ""
        if len(mapped) == 1:
            return mapped, at + 2
        if trail >= 0x40 and trail != 0x7F:
            return REPLACEMENT, at + 2
    return REPLACEMENT, at + 1


codecs.register_error("cdrwatch-java-gbk", _java_gbk_error)


def gbk(data: bytes) -> str:
    """GBK as Spark's decode(bytes, 'GBK') reads it (Java's charset, bad bytes as U+FFFD)."""
    text = data.decode("gbk", errors="cdrwatch-java-gbk")
    for python, java in _JAVA_GBK_DIFFERS.items():
        text = text.replace(python, java)
    return text


# ---------------------------------------------------------------- values (jobs.normalise's twins)


def blank_to_null(text: pl.Expr) -> pl.Expr:
    trimmed = text.str.strip_chars(" ")
    return pl.when(trimmed != "").then(trimmed)


def lookup(code: pl.Expr, mapping: dict[str, str]) -> pl.Expr:
    return code.str.strip_chars(" ").replace_strict(mapping, default=None, return_dtype=pl.String)


def _digits_to_int(text: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Digits (perhaps before a final line terminator, which Java's `$` lets through) as a number."""
    return text.str.strip_chars_end("\r\n\x85\u2028\u2029").cast(dtype, strict=False)


def local_timestamp(text: pl.Expr, shape: str, pattern: str, timezone: str) -> pl.Expr:
    """Local wall-clock text in `timezone` as an instant (UTC); NULL unless it has exactly the
    shape and is a real time. A wall-clock time in a gap (a spring-forward) moves on by the gap,
    an ambiguous one takes the earlier offset, as java.time resolves them."""
    t = text.str.strip_chars(" ")
    naive = pl.when(t.str.contains(shape)).then(t).str.strptime(pl.Datetime("us"), pattern, strict=False, exact=True)
    zoned = naive.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
    later = (naive + pl.duration(hours=1)).dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
    return pl.coalesce(zoned, later).dt.convert_time_zone("UTC")


def epoch_millis(text: pl.Expr) -> pl.Expr:
    t = text.str.strip_chars(" ")
    millis = _digits_to_int(t, pl.Int64)
    return pl.when(rlike(t, r"^-?[0-9]{1,15}$")).then(pl.from_epoch(millis, "ms")).cast(pl.Datetime("us", "UTC"))


def whole_seconds(text: pl.Expr) -> pl.Expr:
    t = text.str.strip_chars(" ")
    return pl.when(rlike(t, r"^[0-9]{1,9}$")).then(_digits_to_int(t, pl.Int32))


def hhmmss_seconds(text: pl.Expr) -> pl.Expr:
    t = text.str.strip_chars(" ")
    h, m, s = (t.str.slice(start, 2).cast(pl.Int32, strict=False) for start in (0, 2, 4))
    return pl.when(rlike(t, r"^[0-9]{2}[0-5][0-9][0-5][0-9]$")).then(h * 3600 + m * 60 + s)


def cell_key(lac: pl.Expr, ci: pl.Expr) -> pl.Expr:
    lac, ci = blank_to_null(lac), blank_to_null(ci)
    return pl.when(lac.is_not_null() & ci.is_not_null()).then(pl.concat_str(lac, pl.lit("-"), ci))


# ---------------------------------------------------------------- reasons (jobs.formats' twins)


def first_reason(*checks: tuple[pl.Expr, pl.Expr | str]) -> pl.Expr:
    """The reason of the first check whose condition holds, NULL if none does."""
    result = None
    for condition, reason in checks:
        reason = pl.lit(reason, pl.String) if isinstance(reason, str) else reason
        result = pl.when(condition).then(reason) if result is None else result.when(condition).then(reason)
    return result.otherwise(pl.lit(None, pl.String))


def wrong_field_count(count: pl.Expr, expected: int) -> pl.Expr:
    return pl.format("wrong field count ({}, expected {})", count, pl.lit(expected))


def canonical_reason(text: pl.Expr, v: dict[str, pl.Expr]) -> pl.Expr:
    """jobs.formats.canonical_reason: the shapes every format shares, after the format's own reasons."""
    other_ok = pl.any_horizontal(*[rlike(v["other_party"], regex) for regex in formats.OTHER_PARTY_REGEXES])
    return first_reason(
        (text.str.contains(formats.CONTROL_REGEX), formats.CONTROL_CHARACTER),
        (~rlike(v["record_id"], formats.RECORD_ID_REGEX), formats.BAD_RECORD_ID),
        (~rlike(v["msisdn"], formats.MSISDN_REGEX), formats.NOT_A_SUBSCRIBER),
        (v["other_party"].is_not_null() & ~other_ok, formats.BAD_OTHER_PARTY),
        (v["imsi"].is_not_null() & ~rlike(v["imsi"], formats.IMSI_REGEX), formats.BAD_IMSI),
        (v["imei"].is_not_null() & ~rlike(v["imei"], formats.IMEI_REGEX), formats.BAD_IMEI),
        (v["cell_id"].is_not_null() & v["cell_id"].str.contains(formats.CONTROL_REGEX), formats.CONTROL_CHARACTER),
        ((v["duration_s"] < 0) | (v["duration_s"] > formats.MAX_DURATION_S), formats.DURATION_OUT_OF_RANGE),
        ((v["service"] == "sms") & (v["duration_s"] != 0), formats.SMS_WITH_DURATION),
    )


def parsed(
    frame: pl.DataFrame | pl.LazyFrame, *, raw: pl.Expr, is_header: pl.Expr, reason: pl.Expr, **values: pl.Expr
) -> pl.DataFrame:
    """jobs.formats.parsed: `frame` projected to PARSED_COLUMNS, typed as Spark types them. One lazy
    plan, collected once: the values that the reasons test again are computed once (common
    subexpressions), as Spark's `with_columns` projections compute them once."""
    columns = {"raw": raw, "is_header": is_header, **values}
    typed = frame.lazy().select(
        pl.col("source_file").cast(pl.String),
        pl.col("source_line").cast(pl.Int64),
        *[
            columns[name].cast(PARSED_SCHEMA[name]).alias(name)
            for name in formats.PARSED_COLUMNS[2:]
            if name != "reason"
        ],
        reason.alias("_format_reason"),
    )
    shared = canonical_reason(pl.col("raw"), {name: pl.col(name) for name in values})
    return (
        typed.with_columns(
            pl.when(~pl.col("is_header")).then(pl.coalesce(pl.col("_format_reason"), shared)).alias("reason")
        )
        .select(list(formats.PARSED_COLUMNS))
        .collect()
    )


def _fields(text: pl.Expr, separator: str, names: tuple[str, ...]) -> tuple[pl.Expr, dict[str, pl.Expr]]:
    fields = text.str.split(separator)
    return fields.list.len(), {name: fields.list.get(i, null_on_oob=True) for i, name in enumerate(names)}


# ---------------------------------------------------------------- the three formats


def parse_cn_csv(lines: pl.DataFrame, timezone: str) -> pl.DataFrame:
    is_header = pl.col("source_line") == 1
    texts, valid = utf8_lines(lines["bytes"])
    frame = lines.with_columns(_text=texts, _valid=valid).with_columns(_text=strip_cr(pl.col("_text")))
    frame = frame.with_columns(
        _text=pl.when(is_header).then(pl.col("_text").str.strip_prefix("\ufeff")).otherwise(pl.col("_text"))
    )
    text = pl.col("_text")
    count, field = _fields(text, ",", CN_CSV.fields)
    services = {kind: service for kind, (_, service) in CN_CSV_SERVICES.items()}
    directions = {kind: direction for kind, (direction, _) in CN_CSV_SERVICES.items()}
    record_id, msisdn = blank_to_null(field["话单标识"]), blank_to_null(field["本机号码"])
    service = lookup(field["业务类型"], services)
    start_time = local_timestamp(
        field["开始时间"], r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-5][0-9]$", "%Y-%m-%d %H:%M:%S", timezone
    )
    duration_s = whole_seconds(field["时长"])
    n = len(CN_CSV.fields)
    reason = first_reason(
        (~pl.col("_valid"), formats.UNDECODABLE),
        (count != n, wrong_field_count(count, n)),
        (record_id.is_null(), formats.EMPTY_RECORD_ID),
        (msisdn.is_null(), formats.EMPTY_SERVED_NUMBER),
        (service.is_null(), formats.UNKNOWN_SERVICE),
        (start_time.is_null(), formats.BAD_TIMESTAMP),
        (duration_s.is_null(), formats.NON_NUMERIC_DURATION),
    )
    return parsed(
        frame,
        raw=text,
        is_header=is_header,
        reason=reason,
        record_id=record_id,
        msisdn=polars_e164(msisdn),
        other_party=polars_e164(field["对端号码"]),
        direction=lookup(field["业务类型"], directions),
        service=service,
        start_time=start_time,
        duration_s=duration_s,
        imsi=blank_to_null(field["IMSI"]),
        imei=blank_to_null(field["IMEI"]),
        cell_id=cell_key(field["LAC"], field["CI"]),
    )


def parse_pipe_gbk(lines: pl.DataFrame, timezone: str) -> pl.DataFrame:
    frame = lines.with_columns(_text=_decode_lines(lines["bytes"], gbk)).with_columns(_text=strip_cr(pl.col("_text")))
    text = pl.col("_text")
    count, field = _fields(text, "|", PIPE_GBK.fields)
    record_id, msisdn = blank_to_null(field["record_id"]), blank_to_null(field["msisdn"])
    direction = lookup(field["direction"], PIPE_GBK_DIRECTIONS)
    service = lookup(field["service"], PIPE_GBK_SERVICES)
    start_time = local_timestamp(field["start"], r"^[0-9]{12}[0-5][0-9]$", "%Y%m%d%H%M%S", timezone)
    duration_s = hhmmss_seconds(field["duration"])
    n = len(PIPE_GBK.fields)
    reason = first_reason(
        (text.str.contains(REPLACEMENT, literal=True), formats.UNDECODABLE),
        (count != n, wrong_field_count(count, n)),
        (record_id.is_null(), formats.EMPTY_RECORD_ID),
        (msisdn.is_null(), formats.EMPTY_SERVED_NUMBER),
        (direction.is_null(), formats.UNKNOWN_DIRECTION),
        (service.is_null(), formats.UNKNOWN_SERVICE),
        (start_time.is_null(), formats.BAD_TIMESTAMP),
        (duration_s.is_null(), formats.NON_NUMERIC_DURATION),
    )
    return parsed(
        frame,
        raw=text,
        is_header=pl.lit(False),
        reason=reason,
        record_id=record_id,
        msisdn=polars_e164(msisdn),
        other_party=polars_e164(field["other_party"]),
        direction=direction,
        service=service,
        start_time=start_time,
        duration_s=duration_s,
        imsi=blank_to_null(field["imsi"]),
        imei=blank_to_null(field["imei"]),
        cell_id=blank_to_null(field["cell"]),
    )


# jobs.formats.jsonl's shape regexes (possessive quantifiers dropped: the alternatives are disjoint).
_STRING_LITERAL = r'"(?:[^"\\]|\\' + _JAVA_DOT + r')*"'
_ONE_FLAT_OBJECT = java_regex(r"^\s*\{[^{}\[\]]*\}\s*$")
_TRAILING = java_regex(r"^\s*\{[^{}]*\}\s*\S")
_JSON_SPACE = " \t\r\n"
_DECODER = json.JSONDecoder(parse_constant=lambda name: _not_json(name))


def _not_json(name: str):
    raise ValueError(f"{name} is not JSON")


def _json_text(value) -> str | None:
    """A JSON value as Spark's from_json reads it into a string field (Jackson's text of it)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _java_double(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _java_double(value: float) -> str:
    """Java's Double.toString: plain decimal in [1e-3, 1e7), else d.dddE<n> (shortest digits)."""
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    sign = "-" if math.copysign(1, value) < 0 else ""
    if value == 0:
        return f"{sign}0.0"
    _, digits, exponent = Decimal(repr(abs(value))).as_tuple()
    text = "".join(map(str, digits))
    point = len(text) + exponent  # digits before the decimal point
    text = text.rstrip("0") or "0"
    if 1e-3 <= abs(value) < 1e7:
        if point <= 0:
            return f"{sign}0.{'0' * -point}{text}"
        return f"{sign}{text[:point].ljust(point, '0')}.{text[point:] or '0'}"
    return f"{sign}{text[0]}.{text[1:] or '0'}E{point - 1}"


def _no_surrogates(value: str | None) -> str | None:
    return value if value is None else value.encode("utf-8", errors="replace").decode("utf-8")


def _json_object(text: str) -> dict | None:
    """The first JSON value of the line, as Jackson reads it for from_json: an object, or None when
    the line does not start with a whole, valid object (what follows the object is not read)."""
    start = len(text) - len(text.lstrip(_JSON_SPACE))
    if not text.startswith("{", start):
        return None
    try:
        value, _ = _DECODER.raw_decode(text, start)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than any parser reads
        return None
    return value if isinstance(value, dict) else None


# A plain line: the contract's object, its keys in the contract's order, each once, with plain values
# (strings without escapes or control characters, non-negative integers, true/false/null) and only
# spaces and tabs between tokens: what the carriers write. Jackson and Python's json read such a line
# alike, so Polars cuts its fields with one regex; every other line is read by Python's json
# (`_json_object`) and checked for its shape.
_PLAIN_STRING = r'"[^"\\\x00-\x1F]*"'
_PLAIN_VALUE = rf"({_PLAIN_STRING}|0|[1-9][0-9]*|true|false|null)"
_PLAIN_LINE = (
    r"^[ \t]*\{[ \t]*"
    + r"[ \t]*,[ \t]*".join(rf'"{name}"[ \t]*:[ \t]*{_PLAIN_VALUE}' for name in JSONL.fields)
    + r"[ \t]*\}[ \t\r]*$"
)


def _plain_value(token: pl.Expr) -> pl.Expr:
    """A plain value as `_json_text` gives it: a string's characters, an integer's digits, true or
    false as words, null as null."""
    return (
        pl.when(token.str.starts_with('"'))
        .then(token.str.slice(1, token.str.len_chars() - 2))
        .when(token != "null")
        .then(token)
    )


def _read_json_lines(texts: pl.Series) -> pl.DataFrame:
    """Lines read one by one with Python's json, as Jackson reads them for from_json: the fields as
    text (`_f_<name>`), `_object` (the line starts with a whole, valid object) and the shape checks."""
    objects = [_json_object(text) for text in texts.to_list()]
    absent = (None,) * len(JSONL.fields)
    rows = [
        absent if o is None else tuple(v if v.__class__ is str else _json_text(v) for v in map(o.get, JSONL.fields))
        for o in objects
    ]
    schema = {f"_f_{name}": pl.String for name in JSONL.fields}
    try:
        read = pl.DataFrame(rows, schema=schema, orient="row")
    except UnicodeEncodeError:  # a lone surrogate escape (\\ud800): Java's UTF-8 writes it as '?'
        rows = [tuple(_no_surrogates(v) for v in row) for row in rows]
        read = pl.DataFrame(rows, schema=schema, orient="row")
    shape = strip_cr(pl.col("_shape")).str.replace_all(_STRING_LITERAL, '""')
    return (
        read.with_columns(_shape=texts, _object=pl.Series([o is not None for o in objects], dtype=pl.Boolean))
        .with_columns(_trailing=shape.str.contains(_TRAILING), _flat=shape.str.contains(_ONE_FLAT_OBJECT))
        .drop("_shape")
    )


def parse_jsonl(lines: pl.DataFrame, timezone: str) -> pl.DataFrame:
    """`timezone` is unused: ts is an instant already. Plain lines (`_PLAIN_LINE`) are cut into fields
    by Polars; the others are read one by one with Python's json, as Jackson would read them."""
    texts, valid = utf8_lines(lines["bytes"])
    fields = [f"_f_{name}" for name in JSONL.fields]
    cut = (
        pl.DataFrame({"_text": texts})
        .select(pl.col("_text").str.extract_groups(_PLAIN_LINE).struct.rename_fields(fields).alias("_cut"))
        .unnest("_cut")
    )
    plain = valid & cut[fields[0]].is_not_null()
    values = cut.select(
        *[_plain_value(pl.col(name)).alias(name) for name in fields],
        _object=pl.lit(True),
        _trailing=pl.lit(False),
        _flat=pl.lit(True),
    )
    others = (~plain).arg_true()
    if len(others):
        read = _read_json_lines(texts.gather(others))
        values = pl.DataFrame([values[name].clone().scatter(others, read[name]) for name in read.columns])
    frame = (
        lines.with_columns(
            _text=texts,
            _valid=valid,
        )
        .hstack(values)
        .with_columns(_text=strip_cr(pl.col("_text")))
    )
    text = pl.col("_text")
    field = {name: pl.col(f"_f_{name}") for name in JSONL.fields}
    record_id, msisdn = blank_to_null(field["id"]), blank_to_null(field["subscriber"])
    direction = lookup(field["dir"], JSONL_DIRECTIONS)
    service = lookup(field["svc"], JSONL_SERVICES)
    start_time = epoch_millis(field["ts"])
    duration_s = whole_seconds(field["dur"])
    reason = first_reason(
        (~pl.col("_valid"), formats.UNDECODABLE),
        (~pl.col("_object"), formats.BROKEN_JSON),
        (pl.col("_trailing"), formats.TRAILING_JSON),
        (~pl.col("_flat"), formats.BROKEN_JSON),
        *[(field[name].is_null(), f"missing field {name}") for name in JSONL.fields],
        (record_id.is_null(), formats.EMPTY_RECORD_ID),
        (msisdn.is_null(), formats.EMPTY_SERVED_NUMBER),
        (direction.is_null(), formats.UNKNOWN_DIRECTION),
        (service.is_null(), formats.UNKNOWN_SERVICE),
        (start_time.is_null(), formats.BAD_TIMESTAMP),
        (duration_s.is_null(), formats.NON_NUMERIC_DURATION),
    )
    return parsed(
        frame,
        raw=text,
        is_header=pl.lit(False),
        reason=reason,
        record_id=record_id,
        msisdn=polars_e164(msisdn),
        other_party=polars_e164(field["peer"]),
        direction=direction,
        service=service,
        start_time=start_time,
        duration_s=duration_s,
        imsi=blank_to_null(field["imsi"]),
        imei=blank_to_null(field["imei"]),
        cell_id=blank_to_null(field["cell"]),
    )


_PARSERS = {"cn_csv": parse_cn_csv, "pipe_gbk": parse_pipe_gbk, "jsonl": parse_jsonl}
