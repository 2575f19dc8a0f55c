"""The cell inventories `landing/cells/<carrier>.csv` and the whitelist, read once, by header, checked.

Both are small (thousands of rows), so plain Python reads them and every caller (detect's Spark
DataFrame, the report's Polars frame, export's districts) gets the same checked rows. A bad
inventory would silently misplace every den (swapped lat/lon), crash a step far from its cause
(an empty lat) or double every CDR at a cell (a repeated cell row), so each is a one-line
CdrwatchError naming the file and line. Whitelist entries that are not telephone numbers are not
an error, but are reported: until fixed they whitelist nobody.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import astuple, dataclass
from pathlib import Path

from jobs.config import Config
from jobs.errors import CdrwatchError
from jobs.io.layout import cells_path

COLUMNS = ("cell_id", "lat", "lon", "site_name", "district")
# Where the cells of a country can be, by the conf timezone: a pair outside the box that fits when
# swapped is a lat/lon mix-up, not a cell abroad. (lat min, lat max, lon min, lon max)
COUNTRY_BOXES = {
    zone: (3.0, 54.0, 73.0, 136.0)
    for zone in ("Asia/Shanghai", "Asia/Chongqing", "Asia/Chungking", "Asia/Harbin", "Asia/Urumqi", "PRC")
}


@dataclass(frozen=True)
class Cell:
    carrier: str
    cell_id: str
    lat: float
    lon: float
    site_name: str | None
    district: str


@dataclass
class Cells:
    """The checked cells of every configured carrier (sorted by carrier, cell_id) and the warnings
    worth showing (exact duplicate rows dropped, cells outside the country)."""

    rows: list[Cell]
    warnings: list[str]

    def tuples(self, columns: tuple[str, ...] = ("carrier", *COLUMNS)) -> list[tuple]:
        return [tuple(getattr(cell, c) for c in columns) for cell in self.rows]


def _text(path: Path) -> str:
    """The file as text: UTF-8, a BOM allowed; an undecodable byte is an error naming its line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise CdrwatchError(f"{path}:{line}: not UTF-8 text (byte {data[err.start]:#04x}); save it as UTF-8") from None


def _table(path: Path, wanted: tuple[str, ...]) -> tuple[dict[str, int], list[tuple[int, list[str]]]]:
    """The header's positions of the wanted columns (names trimmed, any case, any order, extra
    columns ignored) and the data rows with their physical line numbers (blank lines skipped)."""
    reader = csv.reader(io.StringIO(_text(path), newline=""))
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        raise CdrwatchError(f"{path}: empty file, expected a header with {', '.join(wanted)}") from None
    except csv.Error as err:
        raise CdrwatchError(f"{path}:1: unreadable header ({err})") from None
    missing = [name for name in wanted if name not in header]
    if missing:
        raise CdrwatchError(
            f"{path}:1: no column {', '.join(repr(m) for m in missing)} "
            f"(columns: {', '.join(header)}; needed: {', '.join(wanted)})"
        )
    twice = sorted({name for name in wanted if header.count(name) > 1})
    if twice:
        raise CdrwatchError(f"{path}:1: column {', '.join(repr(t) for t in twice)} appears more than once")
    rows = []
    for start, fields in _records(reader, path):
        if len(fields) != len(header):
            raise CdrwatchError(f"{path}:{start}: {len(fields)} fields, the header has {len(header)}")
        rows.append((start, fields))
    return {name: header.index(name) for name in wanted}, rows


def _degrees(path: Path, line: int, name: str, text: str) -> float:
    value = text.strip()
    if not value:
        raise CdrwatchError(f"{path}:{line}: {name} is empty")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise CdrwatchError(f"{path}:{line}: {name} {value!r} is not a number")
    return number


def check_position(path: Path, line: int, cell_id: str, lat: float, lon: float, timezone: str) -> str | None:
    """Raise on an impossible or swapped position; a warning for a cell outside the conf's country."""
    box = COUNTRY_BOXES.get(timezone)
    where = f"{path}:{line}: cell {cell_id!r} at lat {lat:g}, lon {lon:g}"
    if box is not None:
        lat_lo, lat_hi, lon_lo, lon_hi = box
        inside = lat_lo <= lat <= lat_hi and lon_lo <= lon <= lon_hi
        if not inside and lat_lo <= lon <= lat_hi and lon_lo <= lat <= lon_hi:
            raise CdrwatchError(
                f"{where} is outside China ({lat_lo:g}..{lat_hi:g} N, {lon_lo:g}..{lon_hi:g} E) "
                f"but inside when swapped: lat/lon swapped?"
            )
    if not -90 <= lat <= 90:
        raise CdrwatchError(f"{where}: lat must be within -90..90")
    if not -180 <= lon <= 180:
        raise CdrwatchError(f"{where}: lon must be within -180..180")
    if box is not None and not inside:
        return f"{where} is outside China ({timezone}); check its position"
    return None


def read_inventory(path: Path, carrier: str, timezone: str) -> tuple[list[Cell], list[str]]:
    """One carrier's inventory: its checked cells in file order, and warnings."""
    path = Path(path)
    positions, rows = _table(path, COLUMNS)
    cells: list[Cell] = []
    seen: dict[str, tuple[int, Cell]] = {}
    warnings = []
    for line, fields in rows:
        value = {name: fields[index].strip() for name, index in positions.items()}
        if not value["cell_id"]:
            raise CdrwatchError(f"{path}:{line}: cell_id is empty")
        if not value["district"]:
            raise CdrwatchError(f"{path}:{line}: cell {value['cell_id']!r} has no district")
        lat = _degrees(path, line, "lat", value["lat"])
        lon = _degrees(path, line, "lon", value["lon"])
        note = check_position(path, line, value["cell_id"], lat, lon, timezone)
        cell = Cell(carrier, value["cell_id"], lat, lon, value["site_name"] or None, value["district"])
        if cell.cell_id in seen:
            first_line, first = seen[cell.cell_id]
            if astuple(first) != astuple(cell):
                raise CdrwatchError(
                    f"{path}:{line}: cell {cell.cell_id!r} is already on line {first_line} with other "
                    f"values; one cell, one row"
                )
            warnings.append(f"{path}:{line}: cell {cell.cell_id!r} repeats line {first_line} exactly; dropped")
            continue
        if note:
            warnings.append(note)
        seen[cell.cell_id] = (line, cell)
        cells.append(cell)
    return cells, warnings


class MissingInventory(CdrwatchError):
    """A configured carrier has no `landing/cells/<carrier>.csv`."""


def read_cells(config: Config, carriers: list[str] | None = None) -> Cells:
    """Every configured carrier's (or `carriers`') `landing/cells/<carrier>.csv`, checked.
    One policy for every step: a missing file is a `MissingInventory` error naming it (CDRs there
    would have no place); only the report, which must still render, catches it and warns."""
    rows, warnings = [], []
    for carrier in sorted(config.carriers if carriers is None else carriers):
        path = cells_path(config, carrier)
        if not path.is_file():
            raise MissingInventory(f"{path}: cell inventory of carrier {carrier} is missing")
        cells, notes = read_inventory(path, carrier, config.timezone)
        rows += cells
        warnings += notes
    rows.sort(key=lambda c: (c.carrier, c.cell_id))
    return Cells(rows, warnings)


def read_whitelist_entries(path: Path) -> list[tuple[int, str]]:
    """landing/whitelist.csv's `number` column as (line, value as written); other columns ignored.
    The whitelist is optional: no file, no entries. Undecodable bytes become U+FFFD: such an entry
    is then reported, the rest still count."""
    path = Path(path)
    if not path.is_file():
        return []
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        return []
    if "number" not in header:
        raise CdrwatchError(f"{path}:1: no column 'number' (columns: {', '.join(header)})")
    index = header.index("number")
    return [(start, fields[index] if index < len(fields) else "") for start, fields in _records(reader, path)]


def _records(reader, path: Path):
    """(line, fields) of each non-blank record after the header; a CSV error names file and line."""
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise CdrwatchError(f"{path}:{start}: unreadable CSV ({err})") from None
        if any(f.strip() for f in fields):
            yield start, fields


PROTECTED_NUMBER = re.compile(r"^[0-9x]{3,20}$")


def read_protected_numbers(path: Path) -> tuple[list[dict], list[str]]:
    """landing/protected_numbers.csv (optional): `number` (digits, 'x' any digit), `name`, optional
    `services` (`voice`, `sms`, `voice;sms`; default both), as conf `detectors.spoofing.protected`
    entries, and one warning (file, line, value) per row that is no such pattern. A missing
    `number` or `name` column is an error naming the file."""
    path = Path(path)
    if not path.is_file():
        return [], []
    reader = csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig", errors="replace"), newline=""))
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        return [], []
    missing = [c for c in ("number", "name") if c not in header]
    if missing:
        raise CdrwatchError(f"{path}:1: no column {', '.join(repr(c) for c in missing)} (columns: {', '.join(header)})")
    entries, warnings = [], []
    for line, fields in _records(reader, path):
        row = dict(zip(header, (f.strip() for f in fields)))
        number = re.sub(r"[\s-]", "", row.get("number", "")).lower()
        services = [s.strip().lower() for s in re.split(r"[;,/ ]+", row.get("services") or "voice;sms") if s.strip()]
        if not PROTECTED_NUMBER.match(number) or not services or set(services) - {"voice", "sms"}:
            warnings.append(
                f"{path}:{line}: protected number {row.get('number', '')!r} (services "
                f"{row.get('services', '')!r}) is not a number pattern with voice/sms; ignored"
            )
            continue
        entries.append({"number": number, "name": row.get("name") or number, "services": services})
    return entries, warnings
