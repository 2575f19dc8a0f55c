"""The night's numbers for the report, gathered from the lake and the outbox with Polars/PyArrow.

Everything here is small (run summaries, flags, dens, the cell inventory) except `lake/cdr`, which
is only ever scanned lazily: the needed columns, the needed dates (hive partitions), and a filter on
the congested sites' cells or the dens' SIMs pushed into the scan. No Spark session is started.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from detectors.local.sites import CELL_SCHEMA, cell_sites  # noqa: F401  (the report's sites are detect's)
from detectors.rules.sites import distance_m
from jobs.config import Config
from jobs.feedback import precision, store
from jobs.io import inventory, layout, summaries
from jobs.io.lake_polars import has_day, read_day, scan_days
from jobs.numbers import national
from schemas.tables import CDR, DEN, FLAG, SPOOFED

MOVED_M = 500.0  # a den whose position moved farther than this since its previous night "moved"
MAX_CONGESTED_SITES = 6  # the congestion chart shows at most this many sites, highest score first
TREND_NIGHTS = 14  # the trend charts look back this many nights (D included)
FIELD_NIGHTS = 30  # the share of leads not yet visited counts the leads of this many nights (D included)
TOP_PRESENTED = 10  # the spoofing section lists this many presented numbers, most legs first
PARTIAL_FILE = layout.PARTIAL_FILE


# ---------------------------------------------------------------- run summaries, flags and the outbox
# (the lake's tables are read by jobs.io.lake_polars: `read_day`, `has_day`, `scan_days`)


def read_ingest_summary(config: Config, day: dt.date) -> dict | None:
    """lake/_runs/ingest/date=D/summary.json, or None when ingest has not run for D."""
    return summaries.read_summary(config, "ingest", day)


def carrier_counts(summary: dict | None) -> pl.DataFrame:
    """carrier, files, read, accepted, quarantined, duplicates: one row per carrier that delivered."""
    schema = {
        "carrier": pl.String,
        "files": pl.Int64,
        "read": pl.Int64,
        "accepted": pl.Int64,
        "quarantined": pl.Int64,
        "duplicates": pl.Int64,
    }
    rows = [
        {"carrier": c, **{k: int(v.get(k, 0)) for k in list(schema)[1:]}}
        for c, v in sorted((summary or {}).get("carriers", {}).items())
    ]
    return pl.DataFrame(rows, schema=schema, orient="row")


def quarantine_reasons(summary: dict | None) -> pl.DataFrame:
    """carrier, reason, rows; most rows first."""
    rows = [
        (c, reason, int(n))
        for c, v in (summary or {}).get("carriers", {}).items()
        for reason, n in v.get("quarantined_by_reason", {}).items()
    ]
    return pl.DataFrame(rows, schema={"carrier": pl.String, "reason": pl.String, "rows": pl.Int64}, orient="row").sort(
        ["rows", "carrier", "reason"], descending=[True, False, False]
    )


def flag_counts(flags: pl.DataFrame) -> pl.DataFrame:
    """detector, entity_type, flags, mean_score."""
    return (
        flags.group_by("detector", "entity_type")
        .agg(pl.len().cast(pl.Int64).alias("flags"), pl.col("score").mean().alias("mean_score"))
        .sort("detector", "entity_type")
    )


def count_csv_rows(path: Path) -> int | None:
    """Data rows of an outbox CSV (header excluded), None when the file is missing."""
    if not path.is_file():
        return None
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return max(0, sum(1 for _ in csv.reader(handle)) - 1)


def lead_files(outbox_day: Path) -> dict[str, str]:
    """district -> its lead file relative to outbox/D/ (`leads/<district>.csv`), as exported."""
    folder = outbox_day / layout.LEADS_DIR
    return {p.stem: f"leads/{p.name}" for p in sorted(folder.glob("*.csv"))} if folder.is_dir() else {}


# ---------------------------------------------------------------- dens: new, continuing, moved


def earlier_dens(config: Config, day: dt.date, nights: int) -> pl.DataFrame:
    """lake/dens rows of the `nights` nights before `day`, with their `date`."""
    frames = [
        read_day(
            config, DEN, day - dt.timedelta(days=back), ["den_id", "lat", "lon", "radius_m", "priority"]
        ).with_columns(pl.lit(day - dt.timedelta(days=back)).alias("date"))
        for back in range(1, nights + 1)
    ]
    return pl.concat(frames)


def den_status(tonight: pl.DataFrame, earlier: pl.DataFrame, day: dt.date, moved_m: float = MOVED_M) -> pl.DataFrame:
    """Tonight's dens with `status` (new: first seen tonight; moved: its position is more than
    `moved_m` from its latest earlier night's; continuing otherwise), `moved_m` (metres from that
    position, null without one), `previous_date`, `prev_lat` and `prev_lon`."""
    latest = (
        earlier.sort("date", descending=True)
        .unique("den_id", keep="first")
        .select(
            "den_id",
            pl.col("lat").alias("prev_lat"),
            pl.col("lon").alias("prev_lon"),
            pl.col("date").alias("previous_date"),
        )
    )
    frame = tonight.join(latest, on="den_id", how="left")
    known = frame.select(pl.all_horizontal(pl.col("lat", "lon", "prev_lat", "prev_lon").is_not_null())).to_series()
    distance = np.full(frame.height, np.nan)
    if known.any():
        rows = frame.filter(known)
        distance[known.to_numpy()] = distance_m(
            rows["lat"].to_numpy(), rows["lon"].to_numpy(), rows["prev_lat"].to_numpy(), rows["prev_lon"].to_numpy()
        )
    frame = frame.with_columns(pl.Series("moved_m", distance).fill_nan(None))
    status = (
        pl.when(pl.col("first_seen") >= pl.lit(day))
        .then(pl.lit("new"))
        .when(pl.col("moved_m") > moved_m)
        .then(pl.lit("moved"))
        .otherwise(pl.lit("continuing"))
    )
    return frame.with_columns(status.alias("status"))


# ---------------------------------------------------------------- the cell inventory and its sites


def read_cells(config: Config, warnings: list[str] | None = None) -> pl.DataFrame:
    """landing/cells/<carrier>.csv of every configured carrier: carrier, cell_id, lat, lon, site_name,
    district, read by header and checked by `jobs.io.inventory` as detect reads them. A carrier without
    an inventory file is left out, its `MissingInventory` error a warning (the page still renders);
    the warnings are appended to `warnings`."""
    rows, notes = [], []
    for carrier in sorted(config.carriers):
        try:
            cells = inventory.read_cells(config, [carrier])
        except inventory.MissingInventory as missing:
            notes.append(f"{missing}; its cells are left out of the report")
            continue
        rows += cells.tuples(tuple(CELL_SCHEMA))
        notes += cells.warnings
    if warnings is not None:
        warnings += notes
    return pl.DataFrame(rows, schema=CELL_SCHEMA, orient="row")


def sites_of(located_cells: pl.DataFrame) -> pl.DataFrame:
    """One row per site: site, lat, lon, label, district, n_cells."""
    return (
        located_cells.group_by("site")
        .agg(
            pl.col("site_lat").first().alias("lat"),
            pl.col("site_lon").first().alias("lon"),
            pl.col("site_label").first().alias("label"),
            pl.col("district").first().alias("district"),
            pl.len().alias("n_cells"),
        )
        .sort("site")
    )


def congested_sites(flags: pl.DataFrame, located_cells: pl.DataFrame, limit: int = MAX_CONGESTED_SITES) -> pl.DataFrame:
    """The sites of the congestion detector's cell flags: site, label, district, score (the best of its
    flagged cells), flagged cell ids; highest score first, at most `limit`."""
    cells = flags.filter((pl.col("detector") == "congestion") & (pl.col("entity_type") == "cell"))
    return (
        located_cells.join(cells.select(pl.col("entity_id").alias("cell_id"), "score"), on="cell_id")
        .group_by("site")
        .agg(
            pl.col("site_label").first().alias("label"),
            pl.col("district").first().alias("district"),
            pl.col("score").max().alias("score"),
            pl.col("cell_id").sort().alias("flagged_cells"),
        )
        .sort(["score", "label", "site"], descending=[True, False, False])
        .head(limit)
    )


# ---------------------------------------------------------------- lazy scans of lake/cdr


def _local_hour(timezone: str) -> pl.Expr:
    return pl.col("start_time").dt.convert_time_zone(timezone).dt.hour().cast(pl.Int32).alias("hour")


def site_hourly(config: Config, day: dt.date, site_cells: pl.DataFrame, history_days: int) -> pl.DataFrame:
    """site, date, hour, n: outgoing calls and SMS per local hour at each site of `site_cells`
    (site, carrier, cell_id) on `day` and the `history_days` days before it."""
    schema = {"site": pl.Int64, "date": pl.Date, "hour": pl.Int32, "n": pl.Int64}
    days = [day - dt.timedelta(days=back) for back in range(history_days, -1, -1)]
    scan = scan_days(config, CDR, days)
    if scan is None or site_cells.is_empty():
        return pl.DataFrame(schema=schema)
    wanted = site_cells.select("site", "carrier", "cell_id").lazy()
    return (
        scan.select("date", "carrier", "cell_id", "direction", "start_time")
        .filter((pl.col("direction") == "out") & pl.col("cell_id").is_in(site_cells["cell_id"].unique().to_list()))
        .join(wanted, on=["carrier", "cell_id"])
        .group_by("site", "date", _local_hour(config.timezone))
        .agg(pl.len().cast(pl.Int64).alias("n"))
        .collect()
        .cast(schema)
        .sort("site", "date", "hour")
    )


def congestion_series(hourly: pl.DataFrame, day: dt.date, earlier: list[dt.date] | None = None) -> pl.DataFrame:
    """site_hourly -> site, hour (0..23), tonight, same_hour_median (the hour's median over the earlier
    days, hours without traffic counted as 0), site_median (the median of every hour of the earlier
    days: the congestion detector's baseline) and earlier_days. `earlier`: the earlier days the lake
    has (default: those with traffic in `hourly`), so a day on which a site was silent counts as 0."""
    schema = {
        "site": pl.Int64,
        "hour": pl.Int32,
        "tonight": pl.Int64,
        "same_hour_median": pl.Float64,
        "site_median": pl.Float64,
        "earlier_days": pl.Int64,
    }
    if hourly.is_empty():
        return pl.DataFrame(schema=schema)
    dates = sorted(set(hourly["date"].to_list()) | set(earlier or ()) | {day})
    grid = (
        pl.DataFrame({"site": hourly["site"].unique().sort()})
        .join(pl.DataFrame({"date": dates}, schema={"date": pl.Date}), how="cross")
        .join(pl.DataFrame({"hour": list(range(24))}, schema={"hour": pl.Int32}), how="cross")
    )
    full = grid.join(hourly, on=["site", "date", "hour"], how="left").with_columns(pl.col("n").fill_null(0))
    earlier = full.filter(pl.col("date") < day)
    tonight = full.filter(pl.col("date") == day).select("site", "hour", pl.col("n").alias("tonight"))
    same_hour = earlier.group_by("site", "hour").agg(pl.col("n").median().alias("same_hour_median"))
    site = earlier.group_by("site").agg(
        pl.col("n").median().alias("site_median"), pl.col("date").n_unique().cast(pl.Int64).alias("earlier_days")
    )
    return (
        tonight.join(same_hour, on=["site", "hour"], how="left")
        .join(site, on="site", how="left")
        .with_columns(pl.col("earlier_days").fill_null(0))
        .cast(schema)
        .sort("site", "hour")
    )


def den_hourly(config: Config, day: dt.date, dens: pl.DataFrame) -> pl.DataFrame:
    """den_id, hour, n: the outgoing calls and SMS of each den's SIMs per local hour of `day`."""
    schema = {"den_id": pl.String, "hour": pl.Int32, "n": pl.Int64}
    members = dens.select("den_id", pl.col("numbers").alias("msisdn")).explode("msisdn").drop_nulls()
    scan = scan_days(config, CDR, [day])
    if scan is None or members.is_empty():
        return pl.DataFrame(schema=schema)
    return (
        scan.select("msisdn", "direction", "start_time")
        .filter((pl.col("direction") == "out") & pl.col("msisdn").is_in(members["msisdn"].unique().to_list()))
        .join(members.lazy(), on="msisdn")
        .group_by("den_id", _local_hour(config.timezone))
        .agg(pl.len().cast(pl.Int64).alias("n"))
        .collect()
        .cast(schema)
        .sort("den_id", "hour")
    )


# ---------------------------------------------------------------- trends over the last nights


def trends(config: Config, day: dt.date, nights: int = TREND_NIGHTS) -> pl.DataFrame:
    """One row per (night, series, name) with a value, for the nights up to `day` that ingest ran for:
    series `rows` (accepted CDRs per carrier), `quarantined` (per carrier), `flags` (per detector),
    `dens` (per priority). Only nights <= `day`, so a later rerun gives the same report."""
    rows = []
    for back in range(nights - 1, -1, -1):
        night = day - dt.timedelta(days=back)
        summary = read_ingest_summary(config, night)
        if summary is None:
            continue
        for carrier, counts in sorted(summary.get("carriers", {}).items()):
            rows.append((night, "rows", carrier, int(counts.get("accepted", 0))))
            rows.append((night, "quarantined", carrier, int(counts.get("quarantined", 0))))
        if has_day(config, FLAG, night):
            for r in read_day(config, FLAG, night, ["detector"]).group_by("detector").len().iter_rows():
                rows.append((night, "flags", r[0], int(r[1])))
        if has_day(config, DEN, night):
            for r in read_day(config, DEN, night, ["priority"]).group_by("priority").len().iter_rows():
                rows.append((night, "dens", r[0], int(r[1])))
    return pl.DataFrame(
        rows, schema={"date": pl.Date, "series": pl.String, "name": pl.String, "value": pl.Int64}, orient="row"
    ).sort("series", "name", "date")


# ---------------------------------------------------------------- field outcomes (lake/feedback)


@dataclass
class FieldOutcomes:
    """What the field units reported, as known on the report's night."""

    day: dt.date
    feedback_rows: int  # rows in lake/feedback: 0 = nothing imported yet
    over_time: pl.DataFrame  # precision.OVER_TIME_SCHEMA: each den's latest outcome visited by `day`, per visit day
    leads: int  # leads (dens not suppressed) of the FIELD_NIGHTS nights up to `day`
    not_visited: int  # of them, without a visit by `day`

    @property
    def not_visited_share(self) -> float | None:
        return self.not_visited / self.leads if self.leads else None


def field_outcomes(config: Config, day: dt.date, nights: int = FIELD_NIGHTS) -> FieldOutcomes:
    """lake/feedback up to `day` (visited_on <= day, so a later import of later visits leaves the
    page as it was) and the leads of the `nights` nights up to `day`, through jobs.feedback.precision:
    the same latest-outcome and attribution rules as `cdrwatch evaluate --feedback`."""
    feedback = store.read_feedback(config)
    if feedback.is_empty():
        return FieldOutcomes(day, 0, pl.DataFrame(schema=precision.OVER_TIME_SCHEMA), 0, 0)
    window = [day - dt.timedelta(days=back) for back in range(nights - 1, -1, -1)]
    leads = precision.attribute_visits(
        precision.lead_rows(precision.read_den_nights(config, window)), feedback, visited_until=day
    )
    waiting, total = precision.not_visited(leads)
    return FieldOutcomes(
        day, feedback.height, precision.outcomes_over_time(store.latest_visits(feedback, day)), total, waiting
    )


# ---------------------------------------------------------------- caller-ID spoofing (lake/spoofed)

IMPERSONATED = "local subscriber (impersonated, not a suspect)"
NO_DISTRICT = "(no district)"
SPOOFING_SERVICES = ("voice", "sms")


@dataclass
class SpoofingNight:
    """What the spoofing detector judged on the night. `ran` is False when neither lake/spoofed/date=D
    nor its run summary exists: a lake from before the detector, shown as not run, never as zero."""

    day: dt.date
    ran: bool
    summary: dict | None  # lake/_runs/detect/date=D/spoofing.json; None: not written
    legs: pl.DataFrame  # lake/spoofed rows of the night (SPOOFED's columns)

    @property
    def not_judged(self) -> int:
        return sum(int(n) for n in ((self.summary or {}).get("not_judged") or {}).values())


def read_spoofing_summary(config: Config, day: dt.date) -> dict | None:
    """lake/_runs/detect/date=D/spoofing.json, None when detect wrote none for D; one that cannot be
    read is an error naming the file and the rerun, as for the other run summaries."""
    return summaries.read_spoofing(config, day)


def spoofing_night(config: Config, day: dt.date) -> SpoofingNight:
    """The night's spoofed legs and the detector's judgement counts (small reads)."""
    summary = read_spoofing_summary(config, day)
    return SpoofingNight(
        day, summary is not None or has_day(config, SPOOFED, day), summary, read_day(config, SPOOFED, day)
    )


def spoofed_hourly(legs: pl.DataFrame, timezone: str) -> pl.DataFrame:
    """hour (local), service, n: spoofed legs per local hour and service; hours without legs left out."""
    schema = {"hour": pl.Int32, "service": pl.String, "n": pl.Int64}
    return (
        legs.group_by(_local_hour(timezone), "service")
        .agg(pl.len().cast(pl.Int64).alias("n"))
        .select(list(schema))
        .cast(schema)
        .sort("hour", "service")
    )


def _answered() -> pl.Expr:
    return ((pl.col("service") == "voice") & (pl.col("duration_s") > 0)).sum().cast(pl.Int64).alias("answered")


def top_presented(legs: pl.DataFrame, limit: int = TOP_PRESENTED) -> pl.DataFrame:
    """number (national form), shown as (the protected number's name, else the impersonated local
    subscriber: a victim, never a suspect), legs, receivers, answered (voice legs with a duration);
    most legs first, at most `limit`."""
    schema = {"number": pl.String, "shown as": pl.String, "legs": pl.Int64, "receivers": pl.Int64, "answered": pl.Int64}
    if legs.is_empty():
        return pl.DataFrame(schema=schema)
    counted = (
        legs.group_by("presented")
        .agg(
            pl.col("protected").drop_nulls().first(),
            pl.len().cast(pl.Int64).alias("legs"),
            pl.col("receiver").n_unique().cast(pl.Int64).alias("receivers"),
            _answered(),
        )
        .sort(["legs", "receivers", "presented"], descending=[True, True, False])
        .head(limit)
    )
    return counted.select(
        pl.col("presented").map_elements(national, return_dtype=pl.String).alias("number"),
        pl.col("protected").fill_null(IMPERSONATED).alias("shown as"),
        "legs",
        "receivers",
        "answered",
    )


def spoofed_districts(legs: pl.DataFrame) -> pl.DataFrame:
    """district (the receivers'), legs, receivers, answered, campaigns; most legs first."""
    schema = {
        "district": pl.String,
        "legs": pl.Int64,
        "receivers": pl.Int64,
        "answered": pl.Int64,
        "campaigns": pl.Int64,
    }
    return (
        legs.with_columns(pl.col("district").fill_null(NO_DISTRICT))
        .group_by("district")
        .agg(
            pl.len().cast(pl.Int64).alias("legs"),
            pl.col("receiver").n_unique().cast(pl.Int64).alias("receivers"),
            _answered(),
            pl.col("campaign_id").n_unique().cast(pl.Int64).alias("campaigns"),
        )
        .select(list(schema))
        .cast(schema)
        .sort(["legs", "district"], descending=[True, False])
    )


# ---------------------------------------------------------------- the night as a whole


@dataclass
class NightNumbers:
    """The night's headline numbers: what the report's cards and nightly's summary table show."""

    day: dt.date
    carriers: pl.DataFrame  # carrier_counts
    reasons: pl.DataFrame  # quarantine_reasons
    flags: pl.DataFrame  # flag_counts
    dens: pl.DataFrame  # tonight's dens with status (den_status)
    warnings: int | None  # rows of outbox/D/warnings.csv (None: not exported)
    ingest_warnings: list[str] = field(default_factory=list)
    inventory_warnings: list[str] = field(default_factory=list)  # the cell inventories' (build_report fills it)
    missing_carriers: list[str] = field(default_factory=list)
    partial_note: str | None = None  # the text of outbox/D/PARTIAL.txt, if any
    not_seen: list[str] = field(default_factory=list)  # dens of the previous night not found tonight

    @property
    def rows_ingested(self) -> int:
        return int(self.carriers["accepted"].sum()) if self.carriers.height else 0

    @property
    def quarantined(self) -> int:
        return int(self.carriers["quarantined"].sum()) if self.carriers.height else 0

    @property
    def n_flags(self) -> int:
        return int(self.flags["flags"].sum()) if self.flags.height else 0

    @property
    def partial(self) -> bool:
        return bool(self.missing_carriers) or self.partial_note is not None

    def dens_by(self, column: str) -> dict[str, int]:
        return {k: int(v) for k, v in self.dens.group_by(column).len().sort(column).iter_rows()}


def night_numbers(config: Config, day: dt.date) -> NightNumbers:
    """Gather the night's numbers from lake/_runs, lake/flags, lake/dens and outbox/D (small reads)."""
    summary = read_ingest_summary(config, day)
    outbox_day = layout.outbox_day(config, day)
    dens = read_day(config, DEN, day)
    earlier = earlier_dens(config, day, config.dens.lookback_nights)
    previous = earlier.filter(pl.col("date") == day - dt.timedelta(days=1))
    partial = outbox_day / layout.PARTIAL_FILE
    return NightNumbers(
        day=day,
        carriers=carrier_counts(summary),
        reasons=quarantine_reasons(summary),
        flags=flag_counts(read_day(config, FLAG, day)),
        dens=den_status(dens, earlier, day),
        warnings=count_csv_rows(outbox_day / layout.WARNINGS_FILE),
        ingest_warnings=list((summary or {}).get("warnings", [])),
        missing_carriers=sorted((summary or {}).get("missing_carriers") or []),
        partial_note=partial.read_text(encoding="utf-8", errors="replace").strip() if partial.is_file() else None,
        not_seen=sorted(set(previous["den_id"]) - set(dens["den_id"])),
    )
