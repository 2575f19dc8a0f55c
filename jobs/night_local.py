"""One night for the `local` engine: the twin of `jobs.night.load_night` on Polars, in-process.

The night's CDRs are a lazy scan of the lake's partition (read once, when a detector collects),
located by the same sites as Spark's (`detectors.local.sites`), the whitelist read by the same
number rules (`jobs.numbers`). The earlier days are read as detect's daily aggregates where they are
current, else from raw CDRs, exactly as `jobs.night.earlier_days` does, so detect stays flat in
the look-back.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import polars as pl

from detectors.local import history
from detectors.local.base import LocalNight, prepare_night
from detectors.local.sites import CELL_SCHEMA, cell_sites
from jobs.config import Config
from jobs.errors import CdrwatchError
from jobs.feedback.store import read_hotlist
from jobs.io import daily, inventory, layout
from jobs.io.lake_polars import scan_days
from jobs.numbers import e164, is_telephone
from schemas.table import Table
from schemas.tables import CDR, CELL_HOUR, CONTACT_DAY, DEVICE_DAY, HOTLIST, SIM_DAY


def read_sites(config: Config, warnings: list[str] | None = None) -> pl.DataFrame:
    """Every configured carrier's checked inventory with its physical sites (as detect's)."""
    cells = inventory.read_cells(config)
    if warnings is not None:
        warnings += cells.warnings
    return cell_sites(pl.DataFrame(cells.tuples(tuple(CELL_SCHEMA)), schema=CELL_SCHEMA, orient="row"))


def read_whitelist(config: Config, warnings: list[str] | None = None) -> pl.DataFrame:
    """landing/whitelist.csv as one column `number` in the lake's form; entries that are no telephone
    number are left out and listed in `warnings` with file, line and value."""
    path = layout.whitelist_path(config)
    numbers = set()
    for line, raw in inventory.read_whitelist_entries(path):
        number = e164(raw)
        if is_telephone(number):
            numbers.add(number)
        elif warnings is not None:
            warnings.append(f"{path}:{line}: whitelist number {raw!r} is not a telephone number; it matches no call")
    return pl.DataFrame({"number": sorted(numbers)}, schema={"number": pl.String})


def _scan(config: Config, table: Table, days: list[dt.date]) -> pl.LazyFrame:
    """The table's rows of `days` (its declared columns), empty when it has none of them."""
    frame = scan_days(config, table, days) if days else None
    return pl.LazyFrame(schema=table.polars()) if frame is None else frame.select(table.names)


def earlier_days(
    config: Config, day: dt.date, sites: pl.DataFrame, whitelist: pl.DataFrame, notes: list[str] | None = None
) -> history.DailyHistory:
    """The look-back days as `DailyHistory`: detect's aggregates where current, else computed from the
    day's raw CDRs; the whitelist as it is tonight applies to every number (see `jobs.night.earlier_days`)."""
    days = daily.earlier_days(config, day)
    stored = [d for d in days if daily.has_daily(config, d)]
    raw_days = [d for d in days if d not in stored]
    if (note := daily.history_note(raw_days)) and notes is not None:
        notes.append(note)
    listed = whitelist.lazy().select(pl.col("number").alias("msisdn"))
    raw = _scan(config, CDR, raw_days).join(listed, on="msisdn", how="anti")  # before aggregating

    def both(table: Table, from_raw: pl.LazyFrame) -> pl.LazyFrame:
        columns = table.names
        return pl.concat([_scan(config, table, stored).select(columns), from_raw.select(columns).cast(table.polars())])

    return history.DailyHistory(
        sims=both(SIM_DAY, history.sim_days(raw)).join(listed, on="msisdn", how="anti"),
        devices=both(DEVICE_DAY, history.device_days(raw)).join(listed, on="msisdn", how="anti"),
        site_hours=history.site_hours(both(CELL_HOUR, history.cell_hours(raw, config.timezone)), sites),
        contacts=both(CONTACT_DAY, history.contact_days(raw)).join(listed, on="msisdn", how="anti"),
    )


def load_local_night(
    config: Config, day: dt.date, warnings: list[str] | None = None, notes: list[str] | None = None
) -> LocalNight:
    """Everything the local detectors need for `day`; the inputs' warnings go to `warnings`, how the
    earlier days were read to `notes`."""
    tonight = scan_days(config, CDR, [day])
    if tonight is None:
        raise CdrwatchError(f"{layout.partition_path(config, CDR, day)}: no CDRs for {day} (run cdrwatch ingest first)")
    sites = read_sites(config, warnings)
    whitelist = read_whitelist(config, warnings)
    night = prepare_night(
        day,
        tonight.select(CDR.names),
        _scan(config, CDR, daily.earlier_days(config, day)),
        sites,
        whitelist,
        config.timezone,
    )
    hotlist = read_hotlist(config, day)
    return replace(
        night,
        past=earlier_days(config, day, sites, whitelist, notes),
        hotlist=None if hotlist.is_empty() else hotlist.select(HOTLIST.names),
    )
