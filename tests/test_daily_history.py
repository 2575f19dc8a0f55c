"""The earlier days as daily aggregates (#14): what `detect` stores for its night and later nights
read must be exactly what the raw CDRs of those days give, and a re-ingested day must not be read
from aggregates of its older version."""

import datetime as dt
import json
from dataclasses import replace

import pytest
from pyspark.sql import functions as F

from detectors.history import daily_history
from jobs.io import layout
from jobs.night import NightCache, load_night, release_night
from schemas.tables import DAILY

pytestmark = pytest.mark.slow


def _rows(frame, columns):
    return sorted(tuple(r) for r in frame.select(*columns).collect())


def _same_history(a, b):
    for name, columns in (
        ("sims", ("date", "msisdn", "n_out", "n_in")),
        ("devices", ("date", "imei", "msisdn", "sim")),
        ("site_hours", ("date", "site_key", "hour", "n")),
        ("contacts", ("date", "msisdn", "other_party", "called")),
    ):
        assert _rows(getattr(a, name), columns) == _rows(getattr(b, name), columns), name


def test_detect_stores_the_aggregates_of_its_night(week_detected):
    for table in DAILY:
        days = {p.name for p in (week_detected.root / "lake" / table.name).iterdir() if p.name.startswith("date=")}
        assert days == {f"date={d.isoformat()}" for d in week_detected.dates}, table.name
    marker = layout.daily_marker_path(week_detected.config, week_detected.dates[0])
    assert json.loads(marker.read_text())["date"] == week_detected.dates[0].isoformat()


def test_the_stored_aggregates_are_what_the_raw_days_give(week_detected):
    """On the week's (local) lake: the history read from the stored aggregates is the raw days', and
    every detector flags the same whichever way the earlier days are read. The Spark engine writes
    the same aggregates (tests/test_engines_e2e.py) and reads them alike (the test below)."""
    import polars as pl
    from polars.testing import assert_frame_equal

    from detectors.local import DETECTORS as LOCAL_DETECTORS
    from detectors.local.base import run_detectors as run_local_detectors
    from detectors.local.history import daily_history as local_daily_history
    from jobs.night_local import load_local_night

    config, day = week_detected.config, week_detected.dates[5]
    notes = []
    night = load_local_night(config, day, notes=notes)
    assert notes == []
    raw = local_daily_history(night.history, night.timezone)
    for name in ("sims", "devices", "site_hours", "contacts"):
        stored = getattr(night.past, name).collect()
        again = getattr(raw, name).collect().select(stored.columns).cast(stored.schema)
        assert stored.height > 0, name
        assert_frame_equal(stored.sort(pl.all(), nulls_last=False), again.sort(pl.all(), nulls_last=False))
    detectors = [cls(getattr(config.detectors, n)) for n, cls in LOCAL_DETECTORS.items()]
    from_aggregates = run_local_detectors(detectors, night).sort(pl.all(), nulls_last=False)
    from_raw = run_local_detectors(detectors, replace(night, past=None)).sort(pl.all(), nulls_last=False)
    assert from_aggregates.height > 0
    assert_frame_equal(from_aggregates, from_raw)


def test_a_day_whose_cdrs_changed_is_read_from_its_raw_rows(week_detected, spark):
    config, day = week_detected.config, week_detected.dates[4]
    earlier = day - dt.timedelta(days=1)
    marker = layout.daily_marker_path(config, earlier)
    kept = marker.read_text()
    marker.write_text(json.dumps({"date": earlier.isoformat(), "cdr": "an older ingest"}))
    try:
        notes = []
        night = load_night(config, spark, day, notes=notes)
        assert (
            len(notes) == 1
            and f"1 earlier day(s) read from raw CDRs, no current daily aggregates ({earlier.isoformat()})" in notes[0]
        )
        _same_history(night.past, daily_history(night.history))
        assert night.past.sims.where(F.col("date") == F.lit(earlier)).count() > 0
        night.cdr.unpersist()
    finally:
        marker.write_text(kept)


def test_dens_reads_the_located_night_detect_kept_while_its_inputs_are_unchanged(week_detected, spark):
    """In one session, dens takes detect's cached located rows instead of reading the night again,
    but never when the CDRs, the cells or the whitelist differ from what they were made of."""
    config, day = week_detected.config, week_detected.dates[-1]
    cache = NightCache()
    night = load_night(config, spark, day, cache=cache)
    cache.keep(config, spark, day, night.cdr)
    whitelist = layout.whitelist_path(config)
    before = whitelist.read_bytes() if whitelist.is_file() else None
    try:
        assert load_night(config, spark, day, cache=cache).cdr is night.cdr
        assert load_night(config, spark, day).cdr is not night.cdr  # no cache passed: read again
        assert load_night(config, spark, week_detected.dates[-2], cache=cache).cdr is not night.cdr
        whitelist.write_bytes((before or b"number,owner\n").rstrip(b"\n") + b"\n+8613900000001,test\n")
        changed = load_night(config, spark, day, cache=cache).cdr
        assert changed is not night.cdr
        changed.unpersist()
    finally:
        if before is None:
            whitelist.unlink()
        else:
            whitelist.write_bytes(before)
        release_night(night.cdr, cache)
    assert load_night(config, spark, day, cache=cache).cdr is not night.cdr
