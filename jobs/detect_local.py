"""`cdrwatch detect --date D` on the `local` engine: the twin of `jobs.detect` on Polars, in-process.

extract (`jobs.night_local.load_local_night`: lazy scans of the night and the daily history) ->
judge the night's incoming legs for spoofing (`jobs.spoofing_local`) -> transform
(`detectors.local.run_detectors`, pure) -> load (`lake_polars.replace_date`, atomic): the same
lake/flags, lake/spoofed and daily aggregates as the Spark step writes.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace

import polars as pl

from detectors.local import DETECTORS, history
from detectors.local.base import LocalNight, run_detectors, spark_round
from jobs import spoofing_local
from jobs.config import Config
from jobs.detect_result import DetectResult
from jobs.io import files, layout
from jobs.io.daily import cdr_fingerprint
from jobs.io.lake_polars import replace_date
from jobs.night_local import load_local_night
from schemas.tables import CELL_HOUR, CONTACT_DAY, DEVICE_DAY, FLAG, SIM_DAY

log = logging.getLogger(__name__)


def detect_date_local(config: Config, day: dt.date) -> tuple[DetectResult, LocalNight]:
    """The detect step on Polars: flags of every detector for `day` written to lake/flags/date=D,
    with the spoofing judgement and tonight's daily aggregates; returns the located night for dens."""
    warnings: list[str] = []
    history_notes: list[str] = []
    night = load_local_night(config, day, warnings, history_notes)
    night = replace(night, cdr=night.cdr.collect().lazy())  # read once: every detector and dens scan it
    judgement = spoofing_local.judge_night_local(config, night, warnings)
    night = replace(night, spoofed=judgement.legs)
    detectors = [cls(getattr(config.detectors, name)) for name, cls in DETECTORS.items()]
    flags = run_detectors(detectors, night)
    rows = replace_date(config, FLAG, day, flags, sort_by=("detector", "entity_type", "entity_id"))
    write_daily(config, day, night)
    spoofing_local.write_judgement(config, day, judgement)
    summary = (
        flags.group_by("detector", "entity_type")
        .agg(pl.len().alias("flags"), spark_round(pl.col("score").mean(), 2).alias("mean_score"))
        .sort("detector", "entity_type")
    )
    notes = [f"{detector.name}: {note}" for detector in detectors if (note := detector.note(night))]
    notes += [f"spoofing: {line}"] if (line := spoofing_local.note(judgement.summary)) else []
    notes += history_notes
    log.info("detect %s: %d flags", day, rows)
    result = DetectResult(
        day,
        rows,
        layout.partition_path(config, FLAG, day),
        [tuple(r) for r in summary.iter_rows()],
        notes,
        warnings,
    )
    return result, night


def write_daily(config: Config, day: dt.date, night: LocalNight) -> None:
    """Tonight's daily aggregates from its located, whitelist-free rows (as `jobs.night.write_daily`):
    the marker naming the CDR partition they summarise is removed first and written last."""
    marker = layout.daily_marker_path(config, day)
    marker.unlink(missing_ok=True)
    cdr = night.cdr
    for table, frame, order in (
        (SIM_DAY, history.sim_days(cdr), ("msisdn",)),
        (DEVICE_DAY, history.device_days(cdr), ("imei", "msisdn", "sim")),
        (CELL_HOUR, history.cell_hours(cdr, config.timezone), ("carrier", "cell_id", "hour")),
        (CONTACT_DAY, history.contact_days(cdr), ("msisdn", "other_party")),
    ):
        replace_date(config, table, day, frame.collect(), sort_by=order)
    files.write_json(marker, {"date": day.isoformat(), "cdr": cdr_fingerprint(config, day)})
