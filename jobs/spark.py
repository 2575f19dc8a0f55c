"""The one place a SparkSession is made: master, timezone and settings all come from `Config`."""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from jobs.config import Config

_LOG4J = resources.files("conf").joinpath("log4j2.properties")


def spark_session(config: Config):
    """Get or create the process's SparkSession, configured from `config.spark` and `config.timezone`.

    Workers must run this interpreter (it has pyarrow); the session clock is the conf timezone so
    that dates and hours mean local time in every job and notebook.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if config.spark.master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(config.spark.master)
        .appName(config.spark.app_name)
        .config("spark.driver.memory", config.spark.driver_memory)
        .config("spark.sql.session.timeZone", config.timezone)
        .config("spark.sql.shuffle.partitions", str(config.spark.shuffle_partitions))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={_LOG4J}")
        # ingest decodes GBK with decode(bytes, 'GBK'): Spark 4 allows only UTF-*/ASCII/Latin-1
        # without javaCharsets, and raises on a malformed byte without codingErrorAction (with it,
        # bad bytes become U+FFFD, which is how ingest detects them).
        .config("spark.sql.legacy.javaCharsets", "true")
        .config("spark.sql.legacy.codingErrorAction", "true")
    )
    for key, value in config.spark.extra.items():
        builder = builder.config(key, str(value).lower() if isinstance(value, bool) else str(value))
    with _jvm_console_to(spark_log_path()):
        session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    session.conf.set("spark.sql.session.timeZone", config.timezone)
    return session


def spark_log_path() -> Path:
    """Where the JVM's own console output goes (launcher notices, Spark's log4j errors)."""
    return Path(tempfile.gettempdir()) / f"cdrwatch-spark-{os.getpid()}.log"


@contextmanager
def _jvm_console_to(path: Path):
    """Start the JVM with its stderr in `path`, so the user's terminal shows cdrwatch's own output
    only; Spark errors still reach Python as exceptions. A JVM already running is left as it is."""
    from pyspark import SparkContext

    if SparkContext._active_spark_context is not None:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
