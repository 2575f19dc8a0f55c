"""Field units' answers as they send them: the lead file back with its last columns filled in (.xlsx),
or a CSV (UTF-8 with or without BOM, or GBK as WPS saves it). Pure: bytes in, rows and one-line
problems out; which den ids exist is passed in.

A row is a visit when any of `visited_on, outcome, notes, numbers_seized, imeis_seized` is filled;
the other rows of a returned lead file are leads not visited yet and are counted, not imported. A
visit needs a known den id, a date and one of `OUTCOMES` (or its Chinese word); a bad row is one
line naming the file, the row and the problem, and the file's other rows still import.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from jobs.errors import CdrwatchError
from jobs.numbers import e164, is_telephone
from schemas.tables import CHINESE_LEAD_HEADERS, FEEDBACK_INPUT_COLUMNS, OUTCOMES

# Header names a returned file may use: ours, the Chinese ones export writes, and what officers type.
OFFICERS_HEADERS = {
    "visited_on": ("核查日期",),
    "outcome": ("结果",),
    "notes": ("说明",),
    "imeis_seized": ("查获IMEI",),
}
HEADER_NAMES = {
    name: (name, CHINESE_LEAD_HEADERS[name], *OFFICERS_HEADERS.get(name, ()))
    for name in ("den_id", "visited_on", "outcome", "notes", "numbers_seized", "imeis_seized")
}
REQUIRED = ("den_id", "visited_on", "outcome")
# What officers write in the outcome column besides our words.
OUTCOME_WORDS = {
    "打掉": "raided",
    "已打掉": "raided",
    "捣毁": "raided",
    "已捣毁": "raided",
    "查获": "raided",
    "确认": "confirmed",
    "已确认": "confirmed",
    "属实": "confirmed",
    "未发现": "not_found",
    "未找到": "not_found",
    "查无": "not_found",
    "误报": "false_lead",
    "不属实": "false_lead",
    "合法": "legitimate",
    "合法经营": "legitimate",
    "正常经营": "legitimate",
}
LIST_SPLIT = re.compile(r"[;；,，、\s]+")
DATE_FORMS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d", "%Y年%m月%d日", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M")
EXCEL_EPOCH = dt.date(1899, 12, 30)


@dataclass(frozen=True)
class Visit:
    den_id: str
    visited_on: dt.date
    outcome: str
    notes: str | None
    numbers_seized: tuple[str, ...]
    imeis_seized: tuple[str, ...]
    source_row: int


@dataclass
class ParsedFile:
    """A file's visits, its rejected rows (one line each) and rows that were no visit (not filled in)."""

    visits: list[Visit] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    not_visited: int = 0
    rows: int = 0


def read_number(text: str) -> str | None:
    """A number as an officer writes it (spaces, dashes, brackets allowed) -> the lake's form
    (`jobs.numbers.e164`); None when it is no telephone number."""
    number = e164(re.sub(r"[\s\-()]", "", text))
    return number if is_telephone(number) else None


def parse_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, (int, float)) and 20000 < value < 80000:  # a date cell Excel kept as a serial number
        return EXCEL_EPOCH + dt.timedelta(days=int(value))
    text = str(value).strip()
    for form in DATE_FORMS:
        try:
            return dt.datetime.strptime(text, form).date()
        except ValueError:
            continue
    return None


def _text(value: Any) -> str:
    """A cell as text; a number cell (an IMEI Excel turned into a number) without its `.0`."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _items(text: str) -> list[str]:
    return [item for item in LIST_SPLIT.split(text) if item]


def parse_rows(
    name: str, header: list[Any], rows: Iterable[tuple[int, list[Any]]], known_dens: set[str], today: dt.date
) -> ParsedFile:
    """Visits of `rows` ((row number, cells) after the header) by the columns `header` names."""
    columns: dict[str, int] = {}
    for index, cell in enumerate(header):
        label = _text(cell).lstrip("\ufeff").strip().lower()
        for column, names in HEADER_NAMES.items():
            if label in names and column not in columns:
                columns[column] = index
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise CdrwatchError(
            f"{name}: the header has no column {', '.join(missing)} (a feedback file needs "
            f"{', '.join(REQUIRED)}; optional: notes, numbers_seized, imeis_seized)"
        )
    parsed = ParsedFile()
    for number, cells in rows:
        value = {c: _text(cells[i]) if i < len(cells) else "" for c, i in columns.items()}
        raw_date = cells[columns["visited_on"]] if columns["visited_on"] < len(cells) else None
        if not any(value.values()):
            continue  # a blank line
        parsed.rows += 1
        if not any(value.get(c) for c in FEEDBACK_INPUT_COLUMNS):
            parsed.not_visited += 1  # a lead of the returned file nobody visited yet
            continue
        problem, visit = _visit(value, raw_date, number, known_dens, today)
        if problem:
            parsed.problems.append(f"{name}:{number}: {problem}")
        else:
            parsed.visits.append(visit)
    return parsed


def _visit(
    value: dict[str, str], raw_date: Any, row: int, known_dens: set[str], today: dt.date
) -> tuple[str | None, Visit | None]:
    den_id = value["den_id"]
    if not den_id:
        return "no den_id", None
    if den_id not in known_dens:
        return f"unknown den id {den_id!r} (no such den in lake/dens)", None
    if not value["visited_on"]:
        return "no visited_on date", None
    visited = parse_date(raw_date if raw_date not in (None, "") else value["visited_on"])
    if visited is None:
        return f"visited_on {value['visited_on']!r} is not a date (YYYY-MM-DD)", None
    if visited > today:
        return f"visited_on {visited} is in the future", None
    word = value["outcome"].strip()
    outcome = word.lower() if word.lower() in OUTCOMES else OUTCOME_WORDS.get(word)
    if outcome is None:
        return (
            f"unknown outcome {word!r} (one of {', '.join(OUTCOMES)})"
            if word
            else f"no outcome (one of {', '.join(OUTCOMES)})"
        ), None
    numbers = []
    for item in _items(value.get("numbers_seized", "")):
        if (number := read_number(item)) is None:
            return f"numbers_seized: {item!r} is not a telephone number", None
        numbers.append(number)
    imeis = _items(value.get("imeis_seized", ""))
    for imei in imeis:
        if not (imei.isdigit() and 14 <= len(imei) <= 16):
            return f"imeis_seized: {imei!r} is not an IMEI (14-16 digits)", None
    return None, Visit(
        den_id,
        visited,
        outcome,
        value.get("notes") or None,
        tuple(sorted(set(numbers))),
        tuple(sorted(set(imeis))),
        row,
    )


def decode_csv(name: str, data: bytes) -> str:
    """UTF-8 (with or without BOM), else GBK (WPS's default for a CSV in China; read as GB18030, its superset)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as err:
        raise CdrwatchError(
            f"{name}: neither UTF-8 nor GBK text (byte {err.start}); save it as CSV UTF-8 or as the workbook"
        ) from None


def csv_rows(name: str, data: bytes) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line, cells) rows of a CSV; the line is where the row starts (a note may span lines)."""
    text = decode_csv(name, data)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise CdrwatchError(f"{name}: empty file, no header") from None
    except csv.Error as err:
        raise CdrwatchError(f"{name}:1: not a CSV header ({err})") from None
    rows, start = [], reader.line_num + 1
    try:
        for cells in reader:
            rows.append((start, cells))
            start = reader.line_num + 1
    except csv.Error as err:
        raise CdrwatchError(f"{name}:{start}: not readable as CSV ({err})") from None
    return header, rows


def xlsx_rows(name: str, data: bytes) -> tuple[list[Any], list[tuple[int, list[Any]]]]:
    """Header and (sheet row, cells) rows of the workbook's first sheet (the lead sheet of our files)."""
    import zipfile

    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as err:
        raise CdrwatchError(f"{name}: not a readable .xlsx workbook ({err})") from None
    try:
        sheet = book.worksheets[0]
        rows = [(number, list(cells)) for number, cells in enumerate(sheet.iter_rows(values_only=True), start=1)]
    finally:
        book.close()
    if not rows:
        raise CdrwatchError(f"{name}: the first sheet is empty, no header")
    return rows[0][1], rows[1:]


def parse_file(path: Path, data: bytes, known_dens: set[str], today: dt.date) -> ParsedFile:
    """The visits of one returned file (.xlsx, else CSV), named by `path` in every problem line."""
    name = str(path)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        header, rows = xlsx_rows(name, data)
    elif path.suffix.lower() in (".csv", ".txt"):
        header, rows = csv_rows(name, data)
    else:
        raise CdrwatchError(f"{name}: not a feedback file (.csv or .xlsx)")
    return parse_rows(name, header, rows, known_dens, today)
