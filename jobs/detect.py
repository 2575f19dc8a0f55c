"""`cdrwatch detect --date D`: lake/cdr (D and the days before) -> lake/flags/date=D.

extract (`load_night`: the night's CDRs, the baseline days, the cells' sites, the whitelist) ->
transform (`detectors.run_detectors`, pure) -> load (`lake.replace_date`, atomic).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.storagelevel import StorageLevel

from detectors import DETECTORS
from detectors.base import Night, prepare_night, run_detectors
from detectors.sites import cell_sites
from jobs import lake
from jobs.config import Config
from jobs.errors import CdrwatchError
from jobs.normalise import e164
from schemas.tables import CDR, CELL, FLAG


def read_cells(config: Config, spark: SparkSession) -> DataFrame:
    """Every configured carrier's inventory `landing/cells/<carrier>.csv`, with a `carrier` column."""
    schema = ", ".join(f"{c.name} {c.type}" for c in CELL.columns if c.name != "carrier")
    frames = []
    for carrier in config.carriers:
        path = Path(config.paths.landing) / "cells" / f"{carrier}.csv"
        if not path.is_file():
            raise CdrwatchError(f"{path}: cell inventory of carrier {carrier} is missing")
        frames.append(spark.read.option("header", True).option("mode", "FAILFAST").schema(schema).csv(str(path))
                      .withColumn("carrier", F.lit(carrier)))
    cells = frames[0]
    for frame in frames[1:]:
        cells = cells.unionByName(frame)
    return cells


def read_whitelist(config: Config, spark: SparkSession) -> DataFrame:
    """landing/whitelist.csv (optional) as one column `number`, normalised to E.164."""
    path = Path(config.paths.landing) / "whitelist.csv"
    if not path.is_file():
        return spark.createDataFrame([], "number string")
    raw = spark.read.option("header", True).csv(str(path))
    if "number" not in raw.columns:
        raise CdrwatchError(f"{path}: no column 'number' (columns: {', '.join(raw.columns)})")
    return raw.select(e164(F.col("number")).alias("number")).where(F.col("number").isNotNull()).distinct()


def read_cdr_range(config: Config, spark: SparkSession, first: dt.date, last: dt.date) -> DataFrame:
    """lake/cdr rows with first <= date <= last (partition pruning: only those dates are read)."""
    root = lake.table_path(config, CDR)
    if not root.is_dir() or last < first:
        return spark.createDataFrame([], CDR.spark())
    return (spark.read.schema(CDR.spark()).parquet(str(root))
            .where(F.col("date").between(F.lit(first), F.lit(last))).select(*CDR.names))


SIM_AGE_DAYS = 7   # how far back a SIM's first appearance is looked for


def history_days(config: Config) -> int:
    """Earlier days a night needs: the congestion baseline and the SIM-age look-back."""
    return max(config.detectors.congestion.baseline_days, SIM_AGE_DAYS)


def load_night(config: Config, spark: SparkSession, day: dt.date) -> Night:
    """Everything the detectors need for `day`, ready for `run_detectors`."""
    if not lake.partition_path(config, CDR, day).is_dir():
        raise CdrwatchError(f"{lake.partition_path(config, CDR, day)}: no CDRs for {day} (run cdrwatch ingest first)")
    cdr = lake.read_partition(config, spark, CDR, day)
    history = read_cdr_range(config, spark, day - dt.timedelta(days=history_days(config)),
                             day - dt.timedelta(days=1))
    whitelist = spark.createDataFrame(read_whitelist(config, spark).collect(), "number string")  # small: in memory
    night = prepare_night(day, cdr, history, cell_sites(read_cells(config, spark)), whitelist)
    # every detector reads the night several times: keep the located rows instead of re-reading Parquet
    return replace(night, cdr=night.cdr.persist(StorageLevel.MEMORY_AND_DISK),
                   history=night.history.persist(StorageLevel.MEMORY_AND_DISK))


def detect_date(config: Config, day: dt.date, *, spark: SparkSession | None = None, console=None) -> int:
    """The `cdrwatch detect` step: flags of every detector for `day`, written to lake/flags/date=D;
    returns the number of flags."""
    from rich.console import Console
    from rich.table import Table

    from jobs.spark import spark_session

    console = console or Console()
    spark = spark or spark_session(config)
    night = load_night(config, spark, day)
    detectors = [cls(getattr(config.detectors, name)) for name, cls in DETECTORS.items()]
    flags = run_detectors(detectors, night).persist()
    try:
        rows = lake.replace_date(config, FLAG, day, flags, sort_by=("detector", "entity_type", "entity_id"))
        summary = flags.groupBy("detector", "entity_type").agg(F.count("*").alias("flags"),
                                                              F.round(F.avg("score"), 2).alias("mean_score")) \
            .orderBy("detector", "entity_type").collect()
    finally:
        flags.unpersist()
        night.cdr.unpersist()
        night.history.unpersist()
    table = Table(title=f"detect {day}: {rows} flags -> {lake.partition_path(config, FLAG, day)}")
    for name in ("detector", "entity", "flags", "mean score"):
        table.add_column(name, justify="right" if name in ("flags", "mean score") else "left")
    for r in summary:
        table.add_row(r.detector, r.entity_type, str(r.flags), f"{r.mean_score:.2f}")
    console.print(table)
    for detector in detectors:
        note = detector.note(night)
        if note:
            console.print(f"{detector.name}: {note}")
    return rows
