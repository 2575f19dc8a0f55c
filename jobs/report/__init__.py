"""`cdrwatch report --date D`: the night's lake and outbox -> outbox/D/report.html for analysts.

extract (`data`: run summaries, flags, dens, the cell inventory, field feedback, the spoofed legs,
lazy scans of lake/cdr for the congested sites' and the dens' hours, with Polars) -> transform (`figures`: plotly
figures) -> load (`page`: one self-contained HTML page, written atomically into outbox/D/). Runs
after `export`, which replaces outbox/D/ whole: a rerun of export needs a rerun of the report.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import NamedTuple

from jobs.config import Config
from jobs.errors import CdrwatchError
from jobs.io import layout
from jobs.io.files import write_atomic
from jobs.io.lake_polars import has_day, read_day
from jobs.report import data, figures, page
from schemas.tables import CDR, DEN, FLAG

REPORT_FILE = layout.REPORT_FILE


def build_report(config: Config, day: dt.date) -> tuple[str, data.NightNumbers]:
    """The page for `day` (HTML text) and the numbers it shows; reads only, writes nothing."""
    numbers = data.night_numbers(config, day)
    cells = data.cell_sites(data.read_cells(config, numbers.inventory_warnings))
    flags = read_day(config, FLAG, day)
    congested = data.congested_sites(flags, cells)
    baseline_days = config.detectors.congestion.baseline_days
    hourly = data.site_hourly(config, day, cells.join(congested.select("site"), on="site"), baseline_days)
    earlier = [
        day - dt.timedelta(days=back)
        for back in range(1, baseline_days + 1)
        if has_day(config, CDR, day - dt.timedelta(days=back))
    ]
    trends = data.trends(config, day)
    field = data.field_outcomes(config, day)
    field_charts = (
        {"chart-field-outcomes": figures.outcome_chart(field.over_time)} if not field.over_time.is_empty() else {}
    )
    spoofing = data.spoofing_night(config, day)
    spoofing_charts = (
        {"chart-spoofing-hours": figures.spoofing_hours_chart(data.spoofed_hourly(spoofing.legs, config.timezone))}
        if spoofing.ran
        else {}
    )
    parts = page.PageParts(
        numbers=numbers,
        figures={
            "map": figures.den_map(data.sites_of(cells), numbers.dens),
            "chart-congestion": figures.congestion_chart(
                data.congestion_series(hourly, day, earlier), congested, baseline_note(config, day)
            ),
            "chart-den-activity": figures.den_activity_chart(data.den_hourly(config, day, numbers.dens), numbers.dens),
            "chart-trend-rows": figures.trend_chart(trends, "rows", "CDR rows ingested, per carrier", stacked=True),
            "chart-trend-flags": figures.trend_chart(trends, "flags", "Flags, per detector", stacked=False),
            "chart-trend-dens": figures.trend_chart(trends, "dens", "Dens, per priority", stacked=True),
            **field_charts,
            **spoofing_charts,
        },
        lead_files=data.lead_files(layout.outbox_day(config, day)),
        flags_detail=numbers.flags,
        field=field,
        spoofing=spoofing,
        source={
            "lake": str(config.paths.lake),
            "landing": str(config.paths.landing),
            "outbox": str(config.paths.outbox),
            "timezone": config.timezone,
        },
    )
    return page.render(parts), numbers


def baseline_note(config: Config, day: dt.date) -> str | None:
    """Why the congestion detector could not flag anything, when its history was too short."""
    settings = config.detectors.congestion
    have = sum(has_day(config, CDR, day - dt.timedelta(days=back)) for back in range(1, settings.baseline_days + 1))
    if have >= settings.min_baseline_days:
        return None
    return (
        f"only {have} earlier night{'s' if have != 1 else ''} in the lake: the congestion detector needs "
        f"{settings.min_baseline_days} for a baseline"
    )


class ReportWritten(NamedTuple):
    """What `write_report` wrote: the page and the numbers it shows."""

    path: Path
    numbers: data.NightNumbers


def write_report(config: Config, day: dt.date) -> ReportWritten:
    """The `cdrwatch report` step for `day`: writes outbox/D/report.html; its path and the numbers it shows."""
    if not has_day(config, DEN, day):
        raise CdrwatchError(f"{layout.partition_path(config, DEN, day)}: no dens for {day} (run cdrwatch dens first)")
    outbox_day = layout.outbox_day(config, day)
    if not outbox_day.is_dir():
        raise CdrwatchError(f"{outbox_day}: no outbox for {day} (run cdrwatch export first)")
    text, numbers = build_report(config, day)
    path = layout.report_path(config, day)
    write_atomic(path, text)  # readers see the old page or the new one
    return ReportWritten(path, numbers)


def report_date(config: Config, day: dt.date) -> Path:
    """`write_report`, for callers that want only the page's path."""
    return write_report(config, day)[0]
