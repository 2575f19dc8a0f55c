"""The field units' answers to a night's leads, made up from the simulator's truth (issue 15).

`write_field_feedback(landing, outbox, day)` reads what export sent the field for night `day`
(`outbox/<day>/leads/*.csv`) and writes what officers would send back the next day,
`landing/feedback/field_<day+1>.csv`, in the columns `cdrwatch feedback import` reads:

* a lead holding (most of) the numbers of a den raided the next day (truth/raids.csv): `raided`,
  with the seized SIMs and box IMEIs;
* a lead of another truth den: `confirmed`; a lead whose numbers are mostly a lawful SMS gateway's:
  `legitimate`; anything else: `false_lead`;
* field units visit only a share of the confirmed and false leads (the same dens for a seed); a raid
  and a lawful business are always reported; a den answered in an earlier file is not answered again,
  except to report the raid of a den first only confirmed.

The file is GBK without BOM on odd ordinal days (as WPS saves a CSV in China), UTF-8 with BOM
otherwise; the same inputs give the same bytes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from jobs.io.files import write_atomic
from jobs.numbers import e164, national
from schemas.tables import CHINESE_LEAD_HEADERS, FEEDBACK_INPUT_COLUMNS

FEEDBACK_COLUMNS = ("den_id", *FEEDBACK_INPUT_COLUMNS)
LEAD_HEADERS = {
    name: (name, CHINESE_LEAD_HEADERS[name]) for name in ("den_id", "numbers")
}  # ours, export's Chinese ones
NOTES = {
    "confirmed": "确认为诈骗窝点，已布控",
    "legitimate": "合法快递通知平台，已备案核实",
    "false_lead": "现场无异常",
}
RAID_NOTE = "现场查获GOIP设备{boxes}台及SIM卡{sims}张，抓获{people}人"
GATEWAY_KIND = "sms_gateway"
FILE_NAME = re.compile(r"field_(\d{4}-\d{2}-\d{2})\.csv")


@dataclass(frozen=True)
class Lead:
    den_id: str
    numbers: frozenset[str]  # E.164


@dataclass(frozen=True)
class FieldTruth:
    """What the ground holds on one night: each truth den's numbers, the raids, the lawful gateways' numbers."""

    den_numbers: dict[str, frozenset[str]]
    raids: dict[str, dict[str, str]]
    gateway_numbers: frozenset[str]


def write_field_feedback(landing: Path, outbox: Path, day: date, *, seed: int = 1, share: float = 0.7) -> Path | None:
    """Write `landing/feedback/field_<day+1>.csv`, the field's answers to night `day`'s leads; None (and
    nothing written) when there were no leads or nothing to answer."""
    landing, outbox = Path(landing), Path(outbox)
    leads = read_leads(outbox / day.isoformat() / "leads")
    if not leads:
        return None
    visited_on = day + timedelta(days=1)
    truth = read_field_truth(landing / "truth", day)
    answered = answered_before(landing / "feedback", visited_on)
    rows = field_answers(leads, truth, visited_on, answered, seed=seed, share=share)
    if not rows:
        return None
    return write_atomic(
        landing / "feedback" / f"field_{visited_on.isoformat()}.csv", encode(rows, gbk=day.toordinal() % 2 == 1)
    )


def field_answers(
    leads: list[Lead], truth: FieldTruth, visited_on: date, answered: dict[str, str], *, seed: int, share: float
) -> list[dict[str, str]]:
    """One feedback row per lead the field visits and has not answered already, sorted by den id."""
    rows = {}
    for lead in sorted(leads, key=lambda lead: lead.den_id):
        row = _answer(lead, truth, visited_on, seed, share)
        if row is None or lead.den_id in rows:
            continue
        earlier = answered.get(lead.den_id)
        if earlier is not None and not (row["outcome"] == "raided" and earlier == "confirmed"):
            continue
        rows[lead.den_id] = row
    return list(rows.values())


def _answer(lead: Lead, truth: FieldTruth, visited_on: date, seed: int, share: float) -> dict[str, str] | None:
    """Whoever holds most of the lead's numbers is what officers find: a truth den (it wins ties with the
    gateways), a lawful gateway (it must hold the majority), or nothing."""
    overlap = {den: len(lead.numbers & numbers) for den, numbers in truth.den_numbers.items()}
    den = min(overlap, key=lambda d: (-overlap[d], d)) if overlap else None
    gateway = len(lead.numbers & truth.gateway_numbers)
    row = dict.fromkeys(FEEDBACK_COLUMNS, "")
    row.update(den_id=lead.den_id, visited_on=visited_on.isoformat())
    if den is not None and overlap[den] > 0 and overlap[den] >= gateway:
        raid = truth.raids.get(den)
        if raid is not None and raid["raided_on"] == visited_on.isoformat():
            numbers, imeis = _split(raid["numbers"]), _split(raid["imeis"])
            people = 1 + int(_draw(seed, lead.den_id, "people") * 4)
            return {
                **row,
                "outcome": "raided",
                "notes": RAID_NOTE.format(boxes=len(imeis), sims=len(numbers), people=people),
                "numbers_seized": ";".join(national(n) for n in numbers),
                "imeis_seized": ";".join(imeis),
            }
        outcome = "confirmed"
    elif 2 * gateway > len(lead.numbers):
        return {**row, "outcome": "legitimate", "notes": NOTES["legitimate"]}
    else:
        outcome = "false_lead"
    if _draw(seed, lead.den_id, "visit") >= share:
        return None
    return {**row, "outcome": outcome, "notes": NOTES[outcome]}


def _draw(seed: int, den_id: str, what: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, den id, what): the same lead gets the same answer."""
    digest = hashlib.sha256(f"{seed}/{den_id}/{what}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


# --- reading -------------------------------------------------------------------------------------


def read_leads(folder: Path) -> list[Lead]:
    """Every lead of the night's district files (UTF-8 with BOM), numbers back in E.164."""
    leads = []
    for path in sorted(Path(folder).glob("*.csv")):
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                continue
            where = {name: _column(header, aliases, path) for name, aliases in LEAD_HEADERS.items()}
            for record in reader:
                if len(record) > max(where.values()) and record[where["den_id"]].strip():
                    leads.append(
                        Lead(
                            record[where["den_id"]].strip(),
                            frozenset(e164(n) for n in _split(record[where["numbers"]])),
                        )
                    )
    return leads


def _column(header: list[str], aliases: tuple[str, ...], path: Path) -> int:
    for name in aliases:
        if name in header:
            return header.index(name)
    raise ValueError(f"{path}: no column {aliases[0]} in the lead file's header")


def read_field_truth(truth: Path, day: date) -> FieldTruth:
    den_numbers: dict[str, set[str]] = {}
    for row in _read_csv(truth / "den_sims.csv"):
        if row["date"] == day.isoformat():
            den_numbers.setdefault(row["den_id"], set()).add(row["msisdn"])
    raids = {row["den_id"]: row for row in _read_csv(truth / "raids.csv", missing_ok=True)}
    gateways = frozenset(
        row["number"] for row in _read_csv(truth / "hard_negatives.csv") if row["kind"] == GATEWAY_KIND
    )
    return FieldTruth({den: frozenset(numbers) for den, numbers in den_numbers.items()}, raids, gateways)


def answered_before(folder: Path, visited_on: date) -> dict[str, str]:
    """den id -> latest outcome in the field files of days before `visited_on` (written by this module)."""
    latest: dict[str, str] = {}
    files = sorted((m.group(1), p) for p in Path(folder).glob("field_*.csv") if (m := FILE_NAME.fullmatch(p.name)))
    for day, path in files:
        if day >= visited_on.isoformat():
            continue
        for row in csv.DictReader(io.StringIO(decode(path.read_bytes()), newline="")):
            latest[row["den_id"]] = row["outcome"]
    return latest


def _read_csv(path: Path, missing_ok: bool = False) -> list[dict[str, str]]:
    if missing_ok and not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


# --- writing -------------------------------------------------------------------------------------


def encode(rows: list[dict[str, str]], gbk: bool) -> bytes:
    """CRLF CSV with our header: GBK without BOM (WPS), or UTF-8 with BOM (Excel)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(FEEDBACK_COLUMNS)
    writer.writerows([row[c] for c in FEEDBACK_COLUMNS] for row in rows)
    text = buffer.getvalue()
    return text.encode("gbk") if gbk else ("\ufeff" + text).encode("utf-8")


def decode(data: bytes) -> str:
    """A feedback CSV as either encoding wrote it."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("gbk")


def _split(cell: str) -> list[str]:
    return [part.strip() for part in (cell or "").split(";") if part.strip()]
