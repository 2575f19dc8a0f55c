"""The one shape every detector has, and the night of data it looks at.

A detector is a pure function of Spark DataFrames: `Detector(settings).flags(night)` returns one
row per suspicious entity (`entity_type, entity_id, score, evidence`), higher score = more
suspicious, 0..1, plus whichever of FLAG's typed detail columns (`FLAG_DETAILS`: site, swept range,
dialling pattern, time window) it knows; `run_detectors` adds the others as typed nulls, so every
detector's flags have one shape and later steps read columns, never the evidence. It reads
nothing from disk and knows nothing of Airflow or the CLI, so an analyst can run it from a
notebook on any slice of the lake. Thresholds are passed in, never looked up.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from datetime import date
from typing import ClassVar

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from detectors.history import DailyHistory, daily_history
from schemas.tables import FLAG

FLAG_FIELDS = ("entity_type", "entity_id", "score", "evidence")  # every detector returns these
FLAG_DETAILS = tuple(c.name for c in FLAG.columns if c.name not in ("detector", *FLAG_FIELDS, "date"))


@dataclass(frozen=True)
class Night:
    """One date's CDRs with their sites, the earlier days, and the whitelist.

    `cdr` and `history` have the lake's CDR columns plus `site_key, site_lat, site_lon, site_label,
    district` (see `prepare_night`); whitelisted subscribers' own records are already removed.
    `earlier_flags` holds the flags of the detectors that ran before this one (FLAG shape), so a
    detector may use them as context (congestion asks how much of a cell's load is flagged SIMs).

    `hotlist` holds what the field found (raided/confirmed dens' numbers, devices, sites) that applies
    tonight, None when nothing does.

    Detectors read the earlier days through `earlier()`: the lake's daily aggregates when `detect`
    loaded them (`past`), else the same aggregates computed from `history`'s raw rows."""

    day: date
    cdr: DataFrame
    history: DataFrame
    whitelist: DataFrame
    earlier_flags: DataFrame | None = None
    past: DailyHistory | None = None
    hotlist: DataFrame | None = None  # lake/hotlist entries that apply tonight (HOTLIST columns), for `hotlist`
    spoofed: DataFrame | None = (
        None  # tonight's spoofed legs (SPOOFED columns) when `detect` judged them, for `spoofing`
    )

    def earlier(self) -> DailyHistory:
        return self.past if self.past is not None else daily_history(self.history)


class Detector(ABC):
    name: ClassVar[str]

    def __init__(self, settings) -> None:
        self.settings = settings

    @abstractmethod
    def flags(self, night: Night) -> DataFrame:
        """Rows `entity_type, entity_id, score, evidence` for the night, and any of `FLAG_DETAILS` with
        FLAG's types."""

    def note(self, night: Night) -> str | None:
        """A line for the run's output when the detector could not look properly (no baseline...)."""
        return None


def prepare_night(day: date, cdr: DataFrame, history: DataFrame, sites: DataFrame, whitelist: DataFrame) -> Night:
    """Attach each record's physical site (by carrier and cell id) and drop whitelisted subscribers'
    own records, so that no detector can flag them or count their traffic."""
    site_columns = sites.select("carrier", "cell_id", "site_key", "site_lat", "site_lon", "site_label", "district")

    def located(frame: DataFrame) -> DataFrame:
        return frame.join(F.broadcast(site_columns), ["carrier", "cell_id"], "left").join(
            F.broadcast(whitelist.select(F.col("number").alias("msisdn"))), "msisdn", "left_anti"
        )

    return Night(day, located(cdr), located(history), whitelist)


def run_detectors(detectors: list[Detector], night: Night) -> DataFrame:
    """All detectors' flags for the night in the lake's FLAG shape; whitelisted numbers never appear."""
    flags = None
    for detector in detectors:
        # flags are small: materialise each detector's once, so later detectors that read them as
        # context do not recompute the earlier detectors' plans
        frame = (
            with_flag_details(detector.flags(replace(night, earlier_flags=flags)))
            .withColumn("detector", F.lit(detector.name))
            .localCheckpoint(eager=True)
        )
        flags = frame if flags is None else flags.unionByName(frame)
    flags = flags.join(
        F.broadcast(night.whitelist.select(F.col("number").alias("entity_id"))), "entity_id", "left_anti"
    )
    return flags.select(
        F.col("detector"),
        F.col("entity_type"),
        F.col("entity_id"),
        clamp01(F.col("score")).alias("score"),
        F.col("evidence"),
        F.lit(night.day).cast("date").alias("date"),
        *FLAG_DETAILS,
    ).select(*FLAG.names)


def with_flag_details(flags: DataFrame) -> DataFrame:
    """`FLAG_FIELDS` and every one of `FLAG_DETAILS`, the ones the detector does not know as nulls of
    FLAG's type (a detector's own detail columns keep theirs: the conformance suite checks them)."""
    types = {f.name: f.dataType for f in FLAG.spark().fields}
    details = [
        F.col(name) if name in flags.columns else F.lit(None).cast(types[name]).alias(name) for name in FLAG_DETAILS
    ]
    return flags.select(*FLAG_FIELDS, *details)


def local_time(day: date, minutes: Column) -> Column:
    """The instant `minutes` after local midnight of `day` (the session timezone is the carriers')."""
    return F.timestamp_add("MINUTE", minutes, F.lit(day).cast("timestamp"))


def clamp01(score: Column) -> Column:
    return F.least(F.lit(1.0), F.greatest(F.lit(0.0), score.cast("double")))
