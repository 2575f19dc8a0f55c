"""Shared fixtures: one SparkSession for the whole test session (starting one costs ~10 s)."""
import pytest

from jobs.config import load_config


@pytest.fixture(scope="session")
def test_config():
    """The default conf, sized for tests: two local cores, two shuffle partitions."""
    return load_config(overrides=["spark.master=local[2]", "spark.shuffle_partitions=2", "spark.driver_memory=2g"])


@pytest.fixture(scope="session")
def spark(test_config):
    from jobs.spark import spark_session

    session = spark_session(test_config)
    yield session
    session.stop()
