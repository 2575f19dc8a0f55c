"""`cdrwatch export --date D`: lake/dens + lake/victims + lake/spoofed (date D) -> outbox/D/ (docs/contracts.md "Outputs").

* `leads/<district>.csv`: one file per district of the cell inventories, only that district's dens
  (header-only when it has none), columns `LEAD_COLUMNS` (or fixed Chinese headers);
* `warnings.csv`: residents at risk, columns `WARNING_FILE_COLUMNS` (always English): the contract's
  `WARNING_COLUMNS`, then `reason`. A den's victim: `den <den_id>`. A resident who talked with a
  spoofed caller (改号, lake/spoofed): a voice leg answered for `export.warning_min_call_s`, or
  answered at all when the presented number is protected (110, a bank...): `den_id` holds the
  campaign id and `reason` is `spoofed <presented number>` (of the longest call);
* `analysts/unlocated_dens.csv`: dens that cannot go to a field unit (no position, no district,
  or only foreign members).
* `analysts/suppressed.csv`: dens the field cleared (false_lead, legitimate) whose behaviour is
  unchanged (`jobs/dens/field.py`): not sent again, listed with the reason; their victims get no
  warning.
* `analysts/spoofing.csv`: one row per spoofing campaign (`SPOOFING_COLUMNS`), every night (header
  only when none). The presented numbers' owners were impersonated: they are listed there, as
  victims, and never in a lead file. A lake from before the spoofing detector has no lake/spoofed:
  no campaigns, no spoofing warnings.

A lead file's columns are `LEAD_COLUMNS`, then `LEAD_HISTORY_COLUMNS` (last visit, its outcome, the
raided dens it is related to), then the empty `FEEDBACK_INPUT_COLUMNS` an officer fills in (the
workbook offers the outcomes as a drop-down) and sends back for `cdrwatch feedback import`.
* `PARTIAL.txt`: only on a partial night (ingest's `partial_reasons`, or for older run summaries
  its `missing_carriers`): a first line saying so, then one reason per line.

District names become file names that cannot collide or escape `leads/` (`district_file_names`):
a name that had to be changed, or that would clash with another on a case-insensitive disk, gets
`_<8 hex of sha256(name)>` appended, which is the same on every run.

Every CSV has an `.xlsx` twin beside it (same rows, same text, same numbers): a CSV opened by
double-click in Excel/WPS turns long digit strings into numbers (an IMEI becomes 8.6E+14, a
landline loses its leading 0), so officers open the workbook, where numbers and IMEIs are text
cells; scripts read the CSV. A cell longer than Excel's 32,767 characters (a 3,000-SIM den's
numbers) would be cut silently, so it holds a pointer instead and the `members` sheet lists the
values one per row.

The tables are small: they are read with Polars (whichever engine wrote the lake) and written with
Python's csv module and xlsxwriter.
Every CSV is UTF-8 with BOM, numbers are in national format, no text cell starts with a formula
character, and a rerun writes the same bytes. The whole `outbox/D/` is built beside the target and
swapped in.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import logging
import math
import re
import unicodedata
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable
from zoneinfo import ZoneInfo

import polars as pl

from jobs.config import Config
from jobs.errors import CdrwatchError
from jobs.io import inventory, lake_polars, layout, summaries
from jobs.io.swap import replace_folder
from jobs.numbers import is_foreign, national
from schemas.tables import (
    CHINESE_LEAD_HEADERS,
    DEN,
    FEEDBACK_INPUT_COLUMNS,
    LEAD_COLUMNS,
    LEAD_HISTORY_COLUMNS,
    OUTCOMES,
    SPOOFED,
    VICTIMS,
    WARNING_FILE_COLUMNS,
)

log = logging.getLogger(__name__)

BOM = "\ufeff"
PRIORITY_ORDER = {"high": 0, "medium": 1, "low": 2}
# A lead file: the contract's columns, what the field already found, then the empty columns an
# officer fills in and sends back (`cdrwatch feedback import`).
LEAD_FILE_COLUMNS = (*LEAD_COLUMNS, *LEAD_HISTORY_COLUMNS, *FEEDBACK_INPUT_COLUMNS)
UNLOCATED_COLUMNS = (*LEAD_COLUMNS, "reason")
SUPPRESSED_COLUMNS = (*LEAD_COLUMNS, *LEAD_HISTORY_COLUMNS, "reason")
CHINESE_UNLOCATED_HEADERS = {**CHINESE_LEAD_HEADERS, "reason": "原因"}
# First characters that make Excel/WPS read a cell as a formula: ASCII, full-width (an IME types
# them) and the small forms; checked after any leading spaces and invisible characters.
FORMULA_START = frozenset("=+-@\uff1d\uff0b\uff0d\uff20\ufe66\ufe62\ufe63\ufe6b")
# Everything str.splitlines() breaks on: a one-line cell must not break a naive reader's rows either.
LINE_BREAK = re.compile("\r\n|[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


# ---------------------------------------------------------------- cell formatting (pure)


def one_line(text: str) -> str:
    """Line breaks (CRLF, CR, LF and the Unicode ones) become spaces: one den, one line."""
    return LINE_BREAK.sub(" ", text)


def _invisible(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) in ("Zs", "Cc", "Cf")


def needs_guard(text: str) -> bool:
    """Would Excel/WPS run this text as a formula? Spreadsheets skip leading blanks (and a CR or
    NBSP smuggles `=` past a plain startswith), so look at the first visible character; a leading
    tab is guarded too (OWASP: it can shift the cell on paste)."""
    if text.startswith("\t"):
        return True
    for ch in text:
        if not _invisible(ch):
            return ch in FORMULA_START
    return False


def safe_text(value: str | None) -> str:
    """A text cell Excel/WPS will not run as a formula: one line, and a leading single quote when
    `needs_guard`. The quote is the CSV's only change to the text."""
    if value is None:
        return ""
    text = one_line(value)
    return "'" + text if needs_guard(text) else text


class Listed(str):
    """A `;`-joined list cell that keeps its items: when the joined text would overflow an Excel
    cell, the workbook lists the items one per row (sheet `members`) instead of cutting them."""

    items: tuple[str, ...]

    def __new__(cls, items: Iterable[str]) -> "Listed":
        items = tuple(items)
        cell = super().__new__(cls, ";".join(items))
        cell.items = items
        return cell


def _joined(values: Iterable[str] | None, fmt=lambda v: v) -> Listed:
    return Listed(fmt(v) for v in (values or []) if v is not None)


def _one_line(text: str | None) -> str | None:
    return None if text is None else one_line(text)


# Decimal places of the float columns, in the CSV and in the spreadsheet alike.
PLACES = {"score": 3, "lat": 6, "lon": 6, "radius_m": 0}
Cell = str | int | float | None


def lead_cells(den: dict[str, Any], reason: str | None = None) -> list[Cell]:
    """One den as typed cells (LEAD_COLUMNS order; plus `reason` when given): text is what an
    officer reads (national numbers, `;`-joined lists), not yet escaped for CSV."""
    numbers = den["numbers"] or []
    imeis = den["imeis"] or []
    row: list[Cell] = [
        den["den_id"],
        den["priority"],
        den["score"],
        den["district"],
        den["lat"],
        den["lon"],
        den["radius_m"],
        _joined(den["cells"]),
        _joined(den["site_names"]),
        _one_line(den["active_hours"]),
        _date(den["first_seen"]),
        _date(den["last_seen"]),
        den["nights_active"],
        len(numbers),
        _joined(numbers, national),
        len(imeis),
        _joined(imeis),
        den["n_calls"],
        den["n_distinct_callees"],
        den["n_victims"],
        _joined(den["signals"]),
        _one_line(den["evidence"]),
    ]
    return row + [reason] if reason is not None else row


def history_cells(den: dict[str, Any]) -> list[Cell]:
    """LEAD_HISTORY_COLUMNS of one den (absent in partitions written before field feedback)."""
    return [_date(den.get("last_visit")), den.get("last_outcome"), _joined(den.get("related_to"))]


def lead_file_cells(den: dict[str, Any]) -> list[Cell]:
    """One row of a district's lead file (LEAD_FILE_COLUMNS): the feedback columns left empty."""
    return [*lead_cells(den), *history_cells(den), *([None] * len(FEEDBACK_INPUT_COLUMNS))]


def csv_cell(value: Cell, places: int | None = None) -> str:
    """A typed cell as CSV text: floats to fixed places, text made formula-safe."""
    if value is None:
        return ""
    if isinstance(value, float):
        return _num(value, places if places is not None else 6)
    if isinstance(value, int):
        return str(value)
    return safe_text(value)


def _num(value: float | None, places: int) -> str:
    if value is None:
        return ""
    text = f"{value:.{places}f}"
    return "0" if places == 0 and text == "-0" else text


def _date(value: dt.date | None) -> str:
    return value.isoformat() if value is not None else ""


def den_order(den: dict[str, Any]) -> tuple:
    return (PRIORITY_ORDER.get(den["priority"], len(PRIORITY_ORDER)), -(den["score"] or 0.0), den["den_id"])


def unlocated_reason(den: dict[str, Any]) -> str | None:
    """Why a den cannot go to a district file, or None if it can."""
    if den["lat"] is None or den["lon"] is None:
        return "no position"
    if not (den["district"] or "").strip():
        return "no district"
    if all(is_foreign(n) for n in den["numbers"]):
        return "only foreign numbers"
    return None


def csv_bytes(header: Iterable[str], rows: Iterable[list[str]]) -> bytes:
    """UTF-8 with BOM, CRLF line ends, minimal quoting."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(list(header))
    writer.writerows(rows)
    return (BOM + buffer.getvalue()).encode("utf-8")


EXCEL_CELL_MAX = 32_767  # characters (UTF-16 units) in one cell; xlsxwriter cuts the rest
MEMBERS_SHEET = "members"


def excel_length(text: str) -> int:
    """Length as Excel counts it: UTF-16 units (an emoji is two)."""
    return len(text.encode("utf-16-le")) // 2


def _pieces(text: str) -> list[str]:
    """`text` cut into consecutive pieces that each fit one cell (for free text that overflows)."""
    pieces, start, size = [], 0, 0
    for i, ch in enumerate(text):
        width = 2 if ord(ch) > 0xFFFF else 1
        if size + width > EXCEL_CELL_MAX:
            pieces.append(text[start:i])
            start, size = i, 0
        size += width
    return pieces + [text[start:]]


def spill(value: str, column: str) -> tuple[str, list[str]]:
    """An overflowing text cell -> (the pointer the cell shows, the values of the members sheet):
    a list cell gives its items (each one row), free text its consecutive pieces."""
    if isinstance(value, Listed):
        values = [piece for item in value.items for piece in _pieces(one_line(item))]
        return f"{len(value.items):,} {column}: see sheet {MEMBERS_SHEET}", values
    values = _pieces(one_line(value))
    return (
        f"{excel_length(value):,} characters of {column}: see sheet {MEMBERS_SHEET}, "
        f"{len(values)} rows to read in order"
    ), values


def xlsx_number(value: int | float, places: int | None) -> int | float | str:
    """The number the workbook holds: a float rounded exactly as the CSV prints it, so both twins
    hold the same value; NaN/inf (which a workbook cannot hold) as the CSV's text."""
    if isinstance(value, float):
        text = _num(value, places if places is not None else 6)
        return float(text) if math.isfinite(value) else text
    return value


def xlsx_bytes(
    header: list[str],
    rows: list[list[Cell]],
    places: list[int | None],
    choices: dict[int, tuple[str, ...]] | None = None,
) -> bytes:
    """The same table as an Excel workbook, for officers: numbers, IMEIs and lists are *text* cells
    (a CSV opened by double-click loses them: 15-digit IMEIs become 8.6E+14, landlines lose their
    leading 0), counts and coordinates are numbers. Text is written with write_string, never as a
    formula; text the CSV guards with a quote gets Excel's own quote prefix (shown without the quote,
    and still text after an officer edits it). A cell that would exceed Excel's limit points to the
    `members` sheet: (first column, kind, value) rows, every value whole. Any write xlsxwriter would
    cut or drop is an error. `choices`: column index -> the values its cells may take (a drop-down,
    e.g. a lead file's `outcome`). Fixed document properties make a rerun byte-identical."""
    import xlsxwriter

    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(
        buffer, {"in_memory": True, "strings_to_numbers": False, "strings_to_formulas": False, "strings_to_urls": False}
    )
    book.set_properties({"created": dt.datetime(2000, 1, 1), "title": "cdrwatch"})
    bold = book.add_format({"bold": True})
    formats = {p: book.add_format({"num_format": "0." + "0" * p if p else "0"}) for p in set(places) if p is not None}
    quoted = None

    def checked(code: int, where: str) -> None:
        if code != 0:
            raise CdrwatchError(f"workbook: {where} could not be written whole (xlsxwriter code {code})")

    def text(sheet, r: int, c: int, value: str) -> None:
        nonlocal quoted
        fmt = None
        if needs_guard(value):
            quoted = quoted or book.add_format({"quote_prefix": True})
            fmt = quoted
        checked(sheet.write_string(r, c, value, fmt), f"{sheet.name}!R{r + 1}C{c + 1}")

    sheet = book.add_worksheet("cdrwatch")
    sheet.write_row(0, 0, header, bold)
    spilled: list[tuple[str, str, str]] = []
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row):
            if value is None:
                continue
            if isinstance(value, (int, float)):
                number = xlsx_number(value, places[c])
                if isinstance(number, str):
                    text(sheet, r, c, number)
                else:
                    checked(sheet.write_number(r, c, number, formats.get(places[c])), f"R{r + 1}C{c + 1}")
                continue
            line = one_line(value)
            if excel_length(line) > EXCEL_CELL_MAX:
                pointer, values = spill(value, header[c])
                key = "" if row[0] is None else str(row[0])
                spilled += [(key, header[c], v) for v in values]
                line = pointer
            text(sheet, r, c, line)
    for c, name in enumerate(header):
        sheet.set_column(c, c, min(60, max(10, len(name) + 2)))
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, max(len(rows), 1), len(header) - 1)
    for c, values in (choices or {}).items():
        sheet.data_validation(
            1, c, max(len(rows), 1), c, {"validate": "list", "source": list(values), "error_type": "warning"}
        )
    if spilled:
        members = book.add_worksheet(MEMBERS_SHEET)
        members.write_row(0, 0, [header[0], "kind", "value"], bold)
        for r, values in enumerate(spilled, start=1):
            for c, value in enumerate(values):
                text(members, r, c, value)
        members.set_column(0, 1, 16)
        members.set_column(2, 2, 24)
        members.freeze_panes(1, 0)
        members.autofilter(0, 0, len(spilled), 2)
    book.close()
    return buffer.getvalue()


# Characters no file name may hold on Windows, macOS or Linux.
UNSAFE_FILE_CHARS = frozenset('<>:"/\\|?*')
WINDOWS_RESERVED = re.compile(
    r"(CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|COM[0-9\u00b9\u00b2\u00b3]|LPT[0-9\u00b9\u00b2\u00b3])", re.IGNORECASE
)
STEM_MAX_BYTES = 100  # UTF-8 bytes of a cleaned name, leaving room for the hash and `.xlsx`


def _name_hash(district: str) -> str:
    return hashlib.sha256(district.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def _clean_stem(district: str) -> str:
    """`district` as a file stem any file system keeps as written: no separators, control or
    invisible format characters, no leading dot (hidden) or trailing dot/space (dropped by
    Windows), not a Windows device name, at most STEM_MAX_BYTES; `district` when empty."""
    stem = "".join(
        "_" if ch in UNSAFE_FILE_CHARS or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") else ch
        for ch in district
    ).strip()
    stem = stem.encode("utf-8", "ignore")[:STEM_MAX_BYTES].decode("utf-8", "ignore").rstrip(". ").strip()
    stem = re.sub(r"^\.+", lambda m: "_" * len(m.group()), stem)
    if WINDOWS_RESERVED.fullmatch(stem.split(".")[0].rstrip(" ")):
        stem = "_" + stem
    return stem or "district"


def _fold(stem: str) -> str:
    """What a case-insensitive, normalising file system (Windows, macOS) compares."""
    return unicodedata.normalize("NFC", stem).casefold()


def district_file_names(districts: Iterable[str]) -> dict[str, str]:
    """District -> the stem of its lead files (`leads/<stem>.csv` and `.xlsx`). A usual name is kept
    as it is. A name that had to be cleaned (`_clean_stem`), and every name that would clash with
    another on a case-insensitive disk, gets `_` + 8 hex of sha256(name) appended: distinct, and
    the same on every run. Raises CdrwatchError if two names still clash (a hash collision)."""
    names = sorted(set(districts))
    stems = {}
    for district in names:
        clean = _clean_stem(district)
        stems[district] = clean if clean == district else f"{clean}_{_name_hash(district)}"
    groups: dict[str, list[str]] = defaultdict(list)
    for district in names:
        groups[_fold(stems[district])].append(district)
    for group in groups.values():
        if len(group) > 1:
            for district in group:
                if stems[district] == district:
                    stems[district] = f"{district}_{_name_hash(district)}"
    seen: dict[str, str] = {}
    for district in names:
        other = seen.setdefault(_fold(stems[district]), district)
        if other != district:
            raise CdrwatchError(
                f"districts {other!r} and {district!r} would share the lead file "
                f"leads/{stems[district]}.csv; rename one in the cell inventory"
            )
    return stems


# ---------------------------------------------------------------- warnings and spoofing (pure)

SPOOFING_COLUMNS = (
    "campaign_id",
    "first_call",
    "last_call",
    "spoofed_legs",
    "answered_calls",
    "long_calls",
    "receivers",
    "warned",
    "presented_numbers",
    "protected_numbers",
    "impersonated_subscribers",
    "receiver_segments",
    "receiver_districts",
    "note",
)
SPOOFING_NOTE = (
    "The presented numbers are not the callers: their owners were impersonated (victims, not suspects), "
    "and the calls came from outside every local carrier, none of which recorded them as outgoing."
)
SEGMENT_DIGITS = 7  # a number segment: the first 7 national digits (139 1234)


def local_time(epoch: int, zone: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(epoch, zone).strftime("%Y-%m-%d %H:%M:%S")


def den_warnings(
    victims: list[dict[str, Any]], skipped_dens: set[str], whitelist: set[str], zone: ZoneInfo, warning_min_call_s: int
) -> list[list[Cell]]:
    """warnings.csv rows (WARNING_FILE_COLUMNS) of the dens' victims; none for a whitelisted resident
    or a den in `skipped_dens` (dropped by the whitelist, cleared by the field)."""
    return [
        [
            national(v["number"]),
            v["district"] or "",
            v["den_id"],
            local_time(v["first_contact_epoch"], zone),
            v["longest_call_s"],
            v["n_calls"],
            f"den {v['den_id']}",
        ]
        for v in victims
        if not (v["den_id"] in skipped_dens or v["number"] in whitelist or v["longest_call_s"] < warning_min_call_s)
    ]


def warns(leg: dict[str, Any], warning_min_call_s: int) -> bool:
    """Did the receiver talk with the spoofed caller long enough to be at risk? A voice leg answered
    for `warning_min_call_s`, or answered at all when the number shown was a protected one (nobody
    at risk hangs up on '110')."""
    answered = leg["service"] == "voice" and leg["duration_s"] > 0
    return answered and (leg["duration_s"] >= warning_min_call_s or leg["protected"] is not None)


def _longest_first(legs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Voice legs, longest first (earliest, then record id, among equals)."""
    return sorted(
        (leg for leg in legs if leg["service"] == "voice"),
        key=lambda leg: (-leg["duration_s"], leg["start_epoch"], leg["record_id"]),
    )


def spoofing_warnings(
    spoofed: list[dict[str, Any]], whitelist: set[str], zone: ZoneInfo, warning_min_call_s: int
) -> list[list[Cell]]:
    """warnings.csv rows (WARNING_FILE_COLUMNS), one per (receiver, campaign) with a leg that `warns`:
    `den_id` is the campaign; first contact, longest call and voice calls are over all that
    campaign's legs to the receiver; district and `reason` (`spoofed <presented>`) come from the
    longest call. A whitelisted receiver is never warned."""
    legs_of: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for leg in spoofed:
        legs_of[(leg["receiver"], leg["campaign_id"])].append(leg)
    rows: list[list[Cell]] = []
    for (receiver, campaign), legs in legs_of.items():
        if receiver in whitelist or not any(warns(leg, warning_min_call_s) for leg in legs):
            continue
        calls = _longest_first(legs)
        district = next((leg["district"] for leg in calls if leg["district"]), "")
        rows.append(
            [
                national(receiver),
                district,
                campaign,
                local_time(min(leg["start_epoch"] for leg in legs), zone),
                calls[0]["duration_s"],
                len(calls),
                f"spoofed {national(calls[0]['presented'])}",
            ]
        )
    return rows


def _most_frequent_first(counts: dict[str, int]) -> list[str]:
    return sorted(counts, key=lambda value: (-counts[value], value))


def spoofing_campaigns(
    spoofed: list[dict[str, Any]], warned: dict[str, int], zone: ZoneInfo, warning_min_call_s: int
) -> list[list[Cell]]:
    """analysts/spoofing.csv rows (SPOOFING_COLUMNS), one per campaign, by first call. `warned`:
    campaign -> receivers warned. Impersonated subscribers are the presented numbers a local
    subscriber holds (`owner_carrier`); segments and districts count receivers, most first."""
    legs_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for leg in spoofed:
        legs_of[leg["campaign_id"]].append(leg)
    rows: list[tuple[int, str, list[Cell]]] = []
    for campaign, legs in legs_of.items():
        receivers = {leg["receiver"] for leg in legs}
        segments: dict[str, int] = defaultdict(int)
        for receiver in receivers:
            segments[national(receiver)[:SEGMENT_DIGITS]] += 1
        districts: dict[str, int] = defaultdict(int)
        for _receiver, district in {(leg["receiver"], leg["district"]) for leg in legs if leg["district"]}:
            districts[district] += 1
        voice = [leg for leg in legs if leg["service"] == "voice"]
        starts = [leg["start_epoch"] for leg in legs]
        answered = [leg["duration_s"] for leg in voice if leg["duration_s"] > 0]
        rows.append(
            (
                min(starts),
                campaign,
                [
                    campaign,
                    local_time(min(starts), zone),
                    local_time(max(starts), zone),
                    len(legs),
                    len(answered),
                    sum(seconds >= warning_min_call_s for seconds in answered),
                    len(receivers),
                    warned.get(campaign, 0),
                    _joined(sorted({leg["presented"] for leg in legs}), national),
                    _joined(sorted({leg["protected"] for leg in legs if leg["protected"] is not None})),
                    _joined(sorted({leg["presented"] for leg in legs if leg["owner_carrier"] is not None}), national),
                    _joined(_most_frequent_first(segments)),
                    _joined(_most_frequent_first(districts)),
                    SPOOFING_NOTE,
                ],
            )
        )
    return [row for _, _, row in sorted(rows, key=lambda r: r[:2])]


# ---------------------------------------------------------------- the step


def build_outbox(
    dens: list[dict[str, Any]],
    victims: list[dict[str, Any]],
    districts: Iterable[str],
    whitelist: set[str],
    *,
    timezone: str,
    warning_min_call_s: int = 0,
    chinese_headers: bool = False,
    spoofed: Iterable[dict[str, Any]] = (),
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The files of outbox/D/ (relative path -> bytes) and a summary; pure, no I/O. `spoofed`: rows
    of lake/spoofed (SPOOFED's columns, `start_time` as `start_epoch`, seconds), none by default."""
    kept: list[dict[str, Any]] = []
    dropped_dens: set[str] = set()
    whitelisted_numbers = 0
    for den in dens:
        numbers = sorted(n for n in (den["numbers"] or []) if n not in whitelist)
        whitelisted_numbers += len(den["numbers"] or []) - len(numbers)
        if not numbers:
            dropped_dens.add(den["den_id"])
            continue
        kept.append({**den, "numbers": numbers})
    kept.sort(key=den_order)

    by_district: dict[str, list[dict[str, Any]]] = {d: [] for d in districts if d and d.strip()}
    unlocated: list[tuple[dict[str, Any], str]] = []
    suppressed = [den for den in kept if den.get("suppressed")]
    silenced = {den["den_id"] for den in suppressed}  # cleared by the field: no lead, no warnings
    for den in kept:
        if den["den_id"] in silenced:
            continue
        reason = unlocated_reason(den)
        if reason is not None:
            unlocated.append((den, reason))
        else:
            by_district.setdefault(den["district"], []).append(den)

    lead_header = [CHINESE_LEAD_HEADERS[c] for c in LEAD_FILE_COLUMNS] if chinese_headers else list(LEAD_FILE_COLUMNS)
    unlocated_header = (
        [CHINESE_UNLOCATED_HEADERS[c] for c in UNLOCATED_COLUMNS] if chinese_headers else list(UNLOCATED_COLUMNS)
    )
    stems = district_file_names(by_district)
    tables: dict[str, tuple[list[str], list[list[Cell]]]] = {}
    for district in sorted(by_district):
        tables[f"leads/{stems[district]}"] = (lead_header, [lead_file_cells(d) for d in by_district[district]])
    tables["analysts/unlocated_dens"] = (unlocated_header, [lead_cells(d, r) for d, r in unlocated])
    suppressed_header = (
        [CHINESE_UNLOCATED_HEADERS[c] for c in SUPPRESSED_COLUMNS] if chinese_headers else list(SUPPRESSED_COLUMNS)
    )
    tables["analysts/suppressed"] = (
        suppressed_header,
        [[*lead_cells(d), *history_cells(d), d["suppressed"]] for d in suppressed],
    )

    zone = ZoneInfo(timezone)
    spoofed = list(spoofed)
    spoof_warnings = spoofing_warnings(spoofed, whitelist, zone, warning_min_call_s)
    warnings = den_warnings(victims, dropped_dens | silenced, whitelist, zone, warning_min_call_s) + spoof_warnings
    warnings.sort(key=lambda r: (r[1], r[2], r[0]))
    tables["warnings"] = (list(WARNING_FILE_COLUMNS), warnings)
    warned: dict[str, int] = defaultdict(int)
    for row in spoof_warnings:
        warned[row[2]] += 1
    campaigns = spoofing_campaigns(spoofed, warned, zone, warning_min_call_s)
    tables["analysts/spoofing"] = (list(SPOOFING_COLUMNS), campaigns)

    files: dict[str, bytes] = {}
    for stem, (header, rows) in tables.items():
        columns = {
            "analysts/unlocated_dens": UNLOCATED_COLUMNS,
            "analysts/suppressed": SUPPRESSED_COLUMNS,
            "warnings": WARNING_FILE_COLUMNS,
            "analysts/spoofing": SPOOFING_COLUMNS,
        }.get(stem, LEAD_FILE_COLUMNS)
        places = [PLACES.get(c) for c in columns]
        choices = {columns.index("outcome"): OUTCOMES} if stem.startswith("leads/") else None
        files[f"{stem}.csv"] = csv_bytes(header, ([csv_cell(v, p) for v, p in zip(row, places)] for row in rows))
        files[f"{stem}.xlsx"] = xlsx_bytes(header, rows, places, choices)

    summary = {
        "dens": {d: len(v) for d, v in sorted(by_district.items())},
        "high": {d: sum(x["priority"] == "high" for x in v) for d, v in sorted(by_district.items())},
        "unlocated": len(unlocated),
        "suppressed": len(suppressed),
        "dropped_whitelisted_dens": len(dropped_dens),
        "dropped_whitelisted_numbers": whitelisted_numbers,
        "warnings": len(warnings),
        "spoofing_campaigns": len(campaigns),
        "spoofing_warnings": len(spoof_warnings),
        "district_files": {d: f"leads/{stems[d]}.csv" for d in sorted(by_district)},
    }
    return files, summary


PARTIAL_FILE = layout.PARTIAL_FILE


def partial_night(config: Config, day: dt.date) -> tuple[list[str], list[str], bytes | None]:
    """(missing carriers, partial reasons, text of PARTIAL.txt or None) from the ingest run summary:
    a night is partial when ingest listed `partial_reasons` (a carrier's files missing, invalid,
    all quarantined or suspiciously few) or, in summaries older than that key, `missing_carriers`.
    A missing carrier that no reason names is added as one, so no gap goes unsaid."""
    summary = summaries.read_summary(config, "ingest", day)
    if summary is None:
        return [], [], None
    missing = [str(c) for c in summary.get("missing_carriers") or []]
    if "partial_reasons" not in summary:
        if not missing:
            return missing, [], None
        note = (
            f"partial night {day.isoformat()}: no files from carrier(s) {', '.join(missing)} when it was ingested;"
            f" their subscribers are missing from these leads\n"
        )
        return missing, [f"{c}: no files for {day.isoformat()}" for c in missing], note.encode("utf-8")
    reasons = [one_line(str(r)).strip() for r in summary["partial_reasons"] or []]
    reasons = [r for r in reasons if r]
    reasons += [
        f"{c}: no files for {day.isoformat()}" for c in missing if not any(r.startswith(f"{c}:") for r in reasons)
    ]
    if not reasons:
        return missing, [], None
    note = (
        f"partial night {day.isoformat()}: the ingested data is incomplete ({len(reasons)} reason(s) below);"
        f" these leads may miss dens\n" + "".join(f"{r}\n" for r in reasons)
    )
    return missing, reasons, note.encode("utf-8")


def write_outbox_day(target: Path, files: dict[str, bytes]) -> None:
    """outbox/D/ replaced whole by `files` (`jobs.io.swap.replace_folder`)."""
    replace_folder(target, files)


def epoch_seconds(column: str) -> pl.Expr:
    """An instant as whole seconds since 1970, floored, as Spark casts a timestamp to long."""
    return pl.col(column).dt.epoch("us") // 1_000_000


def read_inputs(config: Config, day: dt.date) -> tuple[list[dict], list[dict], list[str], set[str], list[dict]]:
    """(dens, victims, districts, whitelist, spoofed legs) of `day`, read with Polars whichever engine
    wrote the lake (all small): the lake tables' rows as dicts, with `first_contact_epoch` (victims)
    and `start_epoch` (spoofed legs) in whole seconds; the inventories' districts; the whitelist in
    the lake's number form. No lake/spoofed for `day` reads as no legs."""
    from jobs.night_local import read_whitelist

    dens = lake_polars.read_day(config, DEN, day).to_dicts()
    victims = lake_polars.read_day(config, VICTIMS, day).with_columns(
        epoch_seconds("first_contact").alias("first_contact_epoch")
    )
    spoofed = lake_polars.read_day(config, SPOOFED, day).with_columns(epoch_seconds("start_time").alias("start_epoch"))
    districts = sorted({cell.district for cell in inventory.read_cells(config).rows if cell.district})
    whitelist = set(read_whitelist(config).get_column("number"))
    return dens, victims.to_dicts(), districts, whitelist, spoofed.to_dicts()


def export_date(config: Config, day: dt.date, *, spark=None) -> dict[str, Any]:
    """The `cdrwatch export` step for `day`: writes outbox/D/ and returns a summary
    (dens and high-priority dens per district, unlocated dens, warnings (all rows of warnings.csv),
    spoofing campaigns and spoofing warnings, files written). No lake/spoofed for `day` (a lake from
    before the spoofing detector) is no spoofing. Engine-free: its inputs are small and read with
    Polars (`read_inputs`) whichever engine ran the night; `spark` is accepted and not used."""
    dens_path = layout.partition_path(config, DEN, day)
    if not dens_path.is_dir():
        raise CdrwatchError(f"{dens_path}: no dens for {day} (run cdrwatch dens first)")
    dens, victims, districts, whitelist, spoofed = read_inputs(config, day)

    files, summary = build_outbox(
        dens,
        victims,
        districts,
        whitelist,
        timezone=config.timezone,
        warning_min_call_s=config.export.warning_min_call_s,
        chinese_headers=config.export.chinese_headers,
        spoofed=spoofed,
    )
    missing, reasons, note = partial_night(config, day)
    if note is not None:
        files[PARTIAL_FILE] = note
    target = layout.outbox_day(config, day)
    write_outbox_day(target, files)
    summary = {
        "date": day.isoformat(),
        "outbox": str(target),
        **summary,
        "missing_carriers": missing,
        "partial_reasons": reasons,
        "files": sorted(str(target / f) for f in files),
    }
    log.info(
        "export %s: %d dens, %d warnings, %d spoofing campaigns -> %s",
        day,
        sum(summary["dens"].values()),
        summary["warnings"],
        summary["spoofing_campaigns"],
        target,
    )
    return summary
