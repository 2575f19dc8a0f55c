"""`cdrwatch export --date D`: lake/dens + lake/victims (date D) -> outbox/D/ (DESIGN.md "Outputs").

* `leads/<district>.csv`: one file per district of the cell inventories, only that district's dens
  (header-only when it has none), columns `LEAD_COLUMNS` (or fixed Chinese headers);
* `warnings.csv`: residents at risk, columns `WARNING_COLUMNS`;
* `analysts/unlocated_dens.csv`: dens that cannot go to a field unit (no position, no district,
  or only foreign members).
* `PARTIAL.txt`: only on a partial night (a carrier had delivered nothing when the day was
  ingested), one line naming the missing carriers.

Every CSV has an `.xlsx` twin beside it (same rows): a CSV opened by double-click in Excel/WPS
turns long digit strings into numbers (an IMEI becomes 8.6E+14, a landline loses its leading 0),
so officers open the workbook, where numbers and IMEIs are text cells; scripts read the CSV.

The tables are small: they are collected and written with Python's csv module and xlsxwriter.
Every CSV is UTF-8 with BOM, numbers are in national format, no text cell starts with a formula
character, and a rerun writes the same bytes. The whole `outbox/D/` is built beside the target and
swapped in.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from jobs import lake
from jobs.config import Config
from jobs.errors import CdrwatchError
from schemas.tables import DEN, LEAD_COLUMNS, VICTIMS, WARNING_COLUMNS

BOM = "\ufeff"
PRIORITY_ORDER = {"high": 0, "medium": 1, "low": 2}
CHINESE_LEAD_HEADERS = {
    "den_id": "窝点编号", "priority": "优先级", "score": "评分", "district": "辖区", "lat": "纬度", "lon": "经度",
    "radius_m": "半径米", "cells": "小区", "site_names": "基站名称", "active_hours": "活跃时段",
    "first_seen": "首次发现", "last_seen": "最近发现", "nights_active": "活跃天数", "n_numbers": "号码数",
    "numbers": "号码", "n_imeis": "设备数", "imeis": "设备IMEI", "n_calls": "呼叫次数",
    "n_distinct_callees": "被叫号码数", "n_victims": "受害人数", "signals": "信号", "evidence": "证据",
}
UNLOCATED_COLUMNS = (*LEAD_COLUMNS, "reason")
CHINESE_UNLOCATED_HEADERS = {**CHINESE_LEAD_HEADERS, "reason": "原因"}
INJECTION_START = ("=", "+", "-", "@", "\t", "\r")


# ---------------------------------------------------------------- cell formatting (pure)

def national(number: str | None) -> str:
    """E.164 -> the form a Chinese analyst dials: `+8613912345678` -> `13912345678` (mobile),
    `+862885551234` -> `02885551234` (landline, trunk prefix 0), `+85512345678` -> `0085512345678`
    (foreign, international prefix 00). Anything else (service numbers) is returned unchanged."""
    if not number:
        return ""
    if number.startswith("+86"):
        rest = number[3:]
        return rest if (len(rest) == 11 and rest.startswith("1")) else "0" + rest
    if number.startswith("+"):
        return "00" + number[1:]
    return number


def is_foreign(number: str) -> bool:
    return number.startswith("+") and not number.startswith("+86")


def safe_text(value: str | None) -> str:
    """A text cell Excel/WPS will not run as a formula: line breaks become spaces, and a cell
    starting with = + - @ (or tab/CR) gets a leading single quote."""
    if value is None:
        return ""
    text = value.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    return "'" + text if text.startswith(INJECTION_START) else text


def _joined(values: Iterable[str] | None, fmt=lambda v: v) -> str:
    return ";".join(fmt(v) for v in (values or []) if v is not None)


def _one_line(text: str | None) -> str | None:
    return None if text is None else text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


# Decimal places of the float columns, in the CSV and in the spreadsheet alike.
PLACES = {"score": 3, "lat": 6, "lon": 6, "radius_m": 0}
Cell = str | int | float | None


def lead_cells(den: dict[str, Any], reason: str | None = None) -> list[Cell]:
    """One den as typed cells (LEAD_COLUMNS order; plus `reason` when given): text is what an
    officer reads (national numbers, `;`-joined lists), not yet escaped for CSV."""
    numbers = den["numbers"] or []
    imeis = den["imeis"] or []
    row: list[Cell] = [
        den["den_id"], den["priority"], den["score"], den["district"], den["lat"], den["lon"], den["radius_m"],
        _joined(den["cells"]), _joined(den["site_names"]), _one_line(den["active_hours"]),
        _date(den["first_seen"]), _date(den["last_seen"]), den["nights_active"],
        len(numbers), _joined(numbers, national), len(imeis), _joined(imeis),
        den["n_calls"], den["n_distinct_callees"], den["n_victims"],
        _joined(den["signals"]), _one_line(den["evidence"]),
    ]
    return row + [reason] if reason is not None else row


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
    if not den["district"]:
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


def xlsx_bytes(header: list[str], rows: list[list[Cell]], places: list[int | None]) -> bytes:
    """The same table as an Excel workbook, for officers: numbers, IMEIs and lists are *text* cells
    (a CSV opened by double-click loses them: 15-digit IMEIs become 8.6E+14, landlines lose their
    leading 0), counts and coordinates are numbers. Text is never a formula, so it needs no quote
    prefix. Fixed document properties make a rerun byte-identical."""
    import xlsxwriter

    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, "strings_to_numbers": False,
                                        "strings_to_formulas": False, "strings_to_urls": False})
    book.set_properties({"created": dt.datetime(2000, 1, 1), "title": "cdrwatch"})
    bold = book.add_format({"bold": True})
    formats = {p: book.add_format({"num_format": "0." + "0" * p if p else "0"}) for p in set(places) if p is not None}
    sheet = book.add_worksheet("cdrwatch")
    sheet.write_row(0, 0, header, bold)
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row):
            if value is None:
                continue
            if isinstance(value, (int, float)):
                sheet.write_number(r, c, value, formats.get(places[c]))
            else:
                sheet.write_string(r, c, value)
    for c, name in enumerate(header):
        sheet.set_column(c, c, min(60, max(10, len(name) + 2)))
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, max(len(rows), 1), len(header) - 1)
    book.close()
    return buffer.getvalue()


def district_file_name(district: str) -> str:
    """The file stem of a district's lead files (`leads/<stem>.csv` and `.xlsx`)."""
    return district.replace("/", "_").replace("\\", "_")


# ---------------------------------------------------------------- the step

def build_outbox(dens: list[dict[str, Any]], victims: list[dict[str, Any]], districts: Iterable[str],
                 whitelist: set[str], *, timezone: str, warning_min_call_s: int = 0,
                 chinese_headers: bool = False) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The files of outbox/D/ (relative path -> bytes) and a summary; pure, no I/O."""
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

    by_district: dict[str, list[dict[str, Any]]] = {d: [] for d in districts if d}
    unlocated: list[tuple[dict[str, Any], str]] = []
    for den in kept:
        reason = unlocated_reason(den)
        if reason is not None:
            unlocated.append((den, reason))
        else:
            by_district.setdefault(den["district"], []).append(den)

    lead_header = [CHINESE_LEAD_HEADERS[c] for c in LEAD_COLUMNS] if chinese_headers else list(LEAD_COLUMNS)
    unlocated_header = ([CHINESE_UNLOCATED_HEADERS[c] for c in UNLOCATED_COLUMNS] if chinese_headers
                        else list(UNLOCATED_COLUMNS))
    tables: dict[str, tuple[list[str], list[list[Cell]]]] = {}
    for district in sorted(by_district):
        tables[f"leads/{district_file_name(district)}"] = (lead_header,
                                                           [lead_cells(d) for d in by_district[district]])
    tables["analysts/unlocated_dens"] = (unlocated_header, [lead_cells(d, r) for d, r in unlocated])

    zone = ZoneInfo(timezone)
    warnings: list[list[Cell]] = []
    for v in victims:
        if v["den_id"] in dropped_dens or v["number"] in whitelist or v["longest_call_s"] < warning_min_call_s:
            continue
        local = dt.datetime.fromtimestamp(v["first_contact_epoch"], zone)
        warnings.append([national(v["number"]), v["district"] or "", v["den_id"],
                         local.strftime("%Y-%m-%d %H:%M:%S"), v["longest_call_s"], v["n_calls"]])
    warnings.sort(key=lambda r: (r[1], r[2], r[0]))
    tables["warnings"] = (list(WARNING_COLUMNS), warnings)

    files: dict[str, bytes] = {}
    for stem, (header, rows) in tables.items():
        columns = list(UNLOCATED_COLUMNS) if stem == "analysts/unlocated_dens" else (
            list(WARNING_COLUMNS) if stem == "warnings" else list(LEAD_COLUMNS))
        places = [PLACES.get(c) for c in columns]
        files[f"{stem}.csv"] = csv_bytes(header, ([csv_cell(v, p) for v, p in zip(row, places)] for row in rows))
        files[f"{stem}.xlsx"] = xlsx_bytes(header, rows, places)

    summary = {
        "dens": {d: len(v) for d, v in sorted(by_district.items())},
        "high": {d: sum(x["priority"] == "high" for x in v) for d, v in sorted(by_district.items())},
        "unlocated": len(unlocated),
        "dropped_whitelisted_dens": len(dropped_dens),
        "dropped_whitelisted_numbers": whitelisted_numbers,
        "warnings": len(warnings),
    }
    return files, summary


PARTIAL_FILE = "PARTIAL.txt"


def missing_carriers(config: Config, day: dt.date) -> list[str]:
    """Carriers that had delivered nothing when the day was ingested (`missing_carriers` of the
    ingest run summary): their subscribers are absent from the night, so its leads are partial."""
    path = lake.run_summary_path(config, "ingest", day)
    if not path.is_file():
        return []
    return list(json.loads(path.read_text(encoding="utf-8")).get("missing_carriers", []))


def partial_note(day: dt.date, missing: list[str]) -> bytes:
    """The one line of outbox/D/PARTIAL.txt."""
    return (f"partial night {day.isoformat()}: no files from carrier(s) {', '.join(missing)} when it was ingested;"
            f" their subscribers are missing from these leads\n").encode("utf-8")


def write_outbox_day(target: Path, files: dict[str, bytes]) -> None:
    """Write `files` as the folder `target` atomically: built in a temporary folder beside it,
    then swapped in whole (the previous folder, if any, is put aside and deleted after)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    staged = target.parent / f".{target.name}.{token}.new"
    aside = target.parent / f".{target.name}.{token}.old"
    try:
        for relative, data in files.items():
            path = staged / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        lake._swap([(staged, target)], aside)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
        shutil.rmtree(aside, ignore_errors=True)


def export_date(config: Config, day: dt.date, *, spark=None, console=None) -> dict[str, Any]:
    """The `cdrwatch export` step for `day`: writes outbox/D/ and returns a summary
    (dens and high-priority dens per district, unlocated dens, warnings, files written)."""
    from pyspark.sql import functions as F
    from rich.console import Console
    from rich.table import Table

    from jobs.detect import read_cells, read_whitelist
    from jobs.spark import spark_session

    console = console or Console()
    dens_path = lake.partition_path(config, DEN, day)
    if not dens_path.is_dir():
        raise CdrwatchError(f"{dens_path}: no dens for {day} (run cdrwatch dens first)")
    spark = spark or spark_session(config)
    dens = [r.asDict(recursive=True) for r in lake.read_partition(config, spark, DEN, day).collect()]
    victims = [r.asDict() for r in lake.read_partition(config, spark, VICTIMS, day)
               .withColumn("first_contact_epoch", F.col("first_contact").cast("long")).collect()]
    districts = sorted(r.district for r in read_cells(config, spark).select("district").distinct().collect()
                       if r.district)
    whitelist = {r.number for r in read_whitelist(config, spark).collect()}

    files, summary = build_outbox(dens, victims, districts, whitelist, timezone=config.timezone,
                                  warning_min_call_s=config.export.warning_min_call_s,
                                  chinese_headers=config.export.chinese_headers)
    missing = missing_carriers(config, day)
    if missing:
        files[PARTIAL_FILE] = partial_note(day, missing)
    target = Path(config.paths.outbox) / day.isoformat()
    write_outbox_day(target, files)
    summary = {"date": day.isoformat(), "outbox": str(target), **summary, "missing_carriers": missing,
               "files": sorted(str(target / f) for f in files)}

    table = Table(title=f"export {day}: {sum(summary['dens'].values())} dens -> {target}")
    for name in ("district", "dens", "high", "file"):
        table.add_column(name, justify="right" if name in ("dens", "high") else "left")
    for district, n in summary["dens"].items():
        table.add_row(district, str(n), str(summary["high"][district]),
                      str(target / "leads" / (district_file_name(district) + ".csv")))
    console.print(table)
    console.print(f"warnings: {summary['warnings']} residents -> {target / 'warnings.csv'}")
    if summary["unlocated"]:
        console.print(f"unlocated dens: {summary['unlocated']} -> {target / 'analysts' / 'unlocated_dens.csv'}")
    if summary["dropped_whitelisted_dens"]:
        console.print(f"dropped {summary['dropped_whitelisted_dens']} dens made only of whitelisted numbers")
    if missing:
        console.print(f"[yellow]partial:[/] no files from {', '.join(missing)} -> {target / PARTIAL_FILE}")
    return summary
