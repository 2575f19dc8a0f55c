"""Export end to end: the simulated week through `cdrwatch export`, against the simulator's truth.

The shapes of docs/contracts.md "4. Outbox" are checked here, by the project's own code."""

import csv
import re

import polars as pl
import pytest

from jobs.cli import main
from jobs.export import LEAD_FILE_COLUMNS
from jobs.numbers import national
from schemas.tables import WARNING_FILE_COLUMNS

pytestmark = pytest.mark.slow

BOM = b"\xef\xbb\xbf"


def _read(path, header):
    raw = path.read_bytes()
    assert raw.startswith(BOM), path
    rows = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    assert rows and rows[0] == list(header), path
    for i, row in enumerate(rows[1:], start=2):
        assert len(row) == len(header), (path, i)
        for cell in row:
            assert not (cell[:1] in ("=", "+", "-", "@") and not re.fullmatch(r"[+-]?\d+(\.\d+)?", cell)), (path, i)
    return [dict(zip(header, r)) for r in rows[1:]]


def _truth(week, name, day=None):
    frame = pl.read_csv(week.truth / name, infer_schema=False)
    return frame.filter(pl.col("date") == day.isoformat()) if day is not None else frame


def _districts(week):
    names = set()
    for path in (week.root / "landing" / "cells").glob("*.csv"):
        names |= set(pl.read_csv(path, infer_schema=False)["district"].drop_nulls())
    return names


def _leads(week, day):
    """{district: rows} of outbox/D/leads, checking the shapes on the way."""
    folder = week.root / "outbox" / day.isoformat() / "leads"
    leads = {}
    for path in sorted(folder.glob("*.csv")):
        rows = _read(path, LEAD_FILE_COLUMNS)
        for row in rows:
            assert row["district"] == path.stem
            float(row["lat"]), float(row["lon"])
            numbers = row["numbers"].split(";")
            assert int(row["n_numbers"]) == len(numbers)
            assert not any(re.fullmatch(r"(\+|00)?86\d{11}", n) for n in numbers), row["numbers"]
        leads[path.stem] = rows
    return leads


def test_outbox_shapes(week_exported):
    week = week_exported
    districts = _districts(week)
    for day in week.dates:
        assert set(_leads(week, day)) == districts, day
        _read(week.root / "outbox" / day.isoformat() / "warnings.csv", WARNING_FILE_COLUMNS)


def test_every_truth_den_is_a_lead_in_its_district(week_exported):
    week = week_exported
    day = week.dates[-1]
    leads = _leads(week, day)
    sims = _truth(week, "den_sims.csv", day)
    for t in _truth(week, "dens.csv", day).iter_rows(named=True):
        members = {national(n) for n in sims.filter(pl.col("den_id") == t["den_id"])["msisdn"]}
        best = max((len(members & set(r["numbers"].split(";"))) for r in leads[t["district"]]), default=0)
        assert best > len(members) / 2, (t["den_id"], t["district"])


def test_leads_are_real_dens(week_exported):
    week = week_exported
    real = total = 0
    for day in week.dates:
        den_numbers = {national(n) for n in _truth(week, "den_sims.csv", day)["msisdn"]}
        for rows in _leads(week, day).values():
            for row in rows:
                numbers = set(row["numbers"].split(";"))
                total += 1
                real += len(numbers & den_numbers) >= 0.9 * len(numbers)
    print(f"lead precision {real}/{total}")
    assert total and real / total >= 0.9


def test_warnings_reach_the_victims(week_exported):
    week = week_exported
    found = total = 0
    for day in week.dates:
        warned = {
            r["number"] for r in _read(week.root / "outbox" / day.isoformat() / "warnings.csv", WARNING_FILE_COLUMNS)
        }
        truth = {national(n) for n in _truth(week, "victims.csv", day)["number"]}
        found += len(warned & truth)
        total += len(truth)
    print(f"victims warned {found}/{total}")
    assert found / total >= 0.8


def test_no_hard_negative_in_any_lead(week_exported):
    week = week_exported
    negatives = {national(n) for n in _truth(week, "hard_negatives.csv")["number"]}
    for day in week.dates:
        for rows in _leads(week, day).values():
            for row in rows:
                assert not (set(row["numbers"].split(";")) & negatives), (day, row["den_id"])


def test_rerun_is_byte_identical(week_exported):
    week = week_exported
    day = week.dates[-1]
    out = week.root / "outbox" / day.isoformat()
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main(["export", "--date", day.isoformat(), *week.argv]) == 0
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
