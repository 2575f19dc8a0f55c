"""The `local` engine's detectors: the same shape as `detectors.base`, on Polars, in-process.

A local detector is a pure function of Polars frames: `Detector(settings).flags(night)` returns the
same rows, columns and values as the Spark detector of the same name on the same night (the
differential tests in tests/test_engines.py hold the two to that, character for character). Frames
are lazy where they are CDR-sized and collected once per detector; thresholds are passed in.

Two things differ from Spark and are handled here once: Spark's session time zone is explicit
(`LocalNight.timezone`, the carriers' local time for hours and clock text), and Spark rounds the
decimal form of a double half up where Polars rounds its binary value half to even (`spark_round`;
Java's `%.2f` likewise: `detectors.local.text.fixed`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import ClassVar

import polars as pl

from detectors.local.history import DailyHistory, daily_history
from schemas.tables import FLAG

FLAG_FIELDS = ("entity_type", "entity_id", "score", "evidence")
FLAG_DETAILS = tuple(c.name for c in FLAG.columns if c.name not in ("detector", *FLAG_FIELDS, "date"))
SITE_COLUMNS = ("site_key", "site_lat", "site_lon", "site_label", "district")


@dataclass(frozen=True)
class LocalNight:
    """One date's CDRs with their sites, the earlier days and the whitelist (see `detectors.base.Night`):
    `cdr` and `history` are LazyFrames with the lake's CDR columns plus the site columns, whitelisted
    subscribers' own records removed; `timezone` is the carriers' local time."""

    day: date
    cdr: pl.LazyFrame
    history: pl.LazyFrame
    whitelist: pl.DataFrame
    timezone: str
    earlier_flags: pl.DataFrame | None = None
    past: DailyHistory | None = None
    hotlist: pl.DataFrame | None = None
    spoofed: pl.DataFrame | None = None

    def earlier(self) -> DailyHistory:
        return self.past if self.past is not None else daily_history(self.history, self.timezone)


class Detector(ABC):
    name: ClassVar[str]

    def __init__(self, settings) -> None:
        self.settings = settings

    @abstractmethod
    def flags(self, night: LocalNight) -> pl.DataFrame:
        """Rows `entity_type, entity_id, score, evidence` and any of `FLAG_DETAILS` with FLAG's types."""

    def note(self, night: LocalNight) -> str | None:
        return None


def prepare_night(
    day: date, cdr: pl.LazyFrame, history: pl.LazyFrame, sites: pl.DataFrame, whitelist: pl.DataFrame, timezone: str
) -> LocalNight:
    """Attach each record's physical site and drop whitelisted subscribers' own records."""
    site_columns = sites.lazy().select("carrier", "cell_id", *SITE_COLUMNS)
    listed = whitelist.lazy().select(pl.col("number").alias("msisdn"))

    def located(frame: pl.LazyFrame) -> pl.LazyFrame:
        return frame.join(site_columns, on=["carrier", "cell_id"], how="left").join(listed, on="msisdn", how="anti")

    return LocalNight(day, located(cdr), located(history), whitelist, timezone)


def run_detectors(detectors: list[Detector], night: LocalNight) -> pl.DataFrame:
    """All detectors' flags for the night in the lake's FLAG shape; whitelisted numbers never appear."""
    schema = FLAG.polars()
    frames: list[pl.DataFrame] = []
    for detector in detectors:
        earlier = pl.concat(frames) if frames else None
        flags = with_flag_details(detector.flags(replace(night, earlier_flags=earlier)))
        frames.append(flags.with_columns(pl.lit(detector.name).alias("detector")))
    flags = pl.concat(frames) if frames else pl.DataFrame(schema={**schema})
    listed = night.whitelist.select(pl.col("number").alias("entity_id"))
    return (
        flags.join(listed, on="entity_id", how="anti")
        .with_columns(clamp01(pl.col("score")).alias("score"), pl.lit(night.day).alias("date"))
        .select(list(schema))
        .cast(schema)
    )


def with_flag_details(flags: pl.DataFrame) -> pl.DataFrame:
    """`FLAG_FIELDS` and every one of `FLAG_DETAILS`, the ones the detector does not know as typed nulls."""
    types = FLAG.polars()
    details = [
        pl.col(name) if name in flags.columns else pl.lit(None, types[name]).alias(name) for name in FLAG_DETAILS
    ]
    return flags.select(*FLAG_FIELDS, *details).cast({name: types[name] for name in (*FLAG_FIELDS, *FLAG_DETAILS)})


def clamp01(score: pl.Expr) -> pl.Expr:
    return pl.min_horizontal(pl.lit(1.0), pl.max_horizontal(pl.lit(0.0), score.cast(pl.Float64)))


def spark_round(value: pl.Expr, decimals: int = 0) -> pl.Expr:
    """Spark's `round` of a double: half up on its shortest decimal form (Spark rounds
    `BigDecimal(Double.toString(x))`; Polars would round the binary value, half to even). A value
    that is not finite (a division by zero, null in Spark) is null. Per value: for flag-sized frames."""
    step = Decimal(1).scaleb(-decimals)

    def rounded(v: float) -> float | None:
        return float(Decimal(repr(v)).quantize(step, rounding=ROUND_HALF_UP)) if math.isfinite(v) else None

    return value.cast(pl.Float64).map_elements(rounded, return_dtype=pl.Float64, skip_nulls=True)


def local(instant: pl.Expr, timezone: str) -> pl.Expr:
    """An instant (UTC) as the carriers' wall-clock time, for hours and clock text."""
    return instant.dt.convert_time_zone(timezone)


def flag_frame(columns: dict[str, pl.DataType] | None = None) -> pl.DataFrame:
    """An empty frame with the flag fields (and `columns`), for a detector that finds nothing."""
    types = FLAG.polars()
    return pl.DataFrame(schema={**{name: types[name] for name in FLAG_FIELDS}, **(columns or {})})
