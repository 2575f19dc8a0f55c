"""Configuration: defaults load, overrides apply, and every mistake names its key."""

import pytest

from jobs.config import load_config
from jobs.errors import ConfigError


def test_defaults_describe_a_local_run():
    config = load_config()
    assert config.timezone == "Asia/Shanghai"
    assert {code: c.format for code, c in config.carriers.items()} == {"cm": "cn_csv", "cu": "pipe_gbk", "ct": "jsonl"}
    assert config.spark.master == "local[*]"
    assert str(config.paths.lake) == "data/lake"


def test_set_overrides_parse_yaml_scalars():
    config = load_config(
        overrides=[
            "detectors.goip.min_score=0.75",
            "spark.master=spark://10.0.0.5:7077",
            "export.chinese_headers=true",
            "spark.extra.spark.executor.cores=4",
        ]
    )
    assert config.detectors.goip.min_score == 0.75
    assert config.spark.master == "spark://10.0.0.5:7077"
    assert config.export.chinese_headers is True
    assert config.spark.extra == {"spark.executor.cores": 4}


def test_conf_file_merges_over_defaults(tmp_path):
    conf = tmp_path / "site.yaml"
    conf.write_text("paths:\n  lake: /srv/lake\ncarriers:\n  cu: null\n  cb: {format: jsonl}\n", encoding="utf-8")
    config = load_config(conf)
    assert str(config.paths.lake) == "/srv/lake"
    assert str(config.paths.landing) == "data/landing"
    assert sorted(config.carriers) == ["cb", "cm", "ct"]


def test_with_paths_replaces_only_given_paths():
    config = load_config().with_paths(lake="/tmp/l", landing=None)
    assert str(config.paths.lake) == "/tmp/l" and str(config.paths.landing) == "data/landing"


@pytest.mark.parametrize(
    "override, message",
    [
        ("detectors.goip.min_scor=0.7", "unknown configuration key 'detectors.goip.min_scor'"),
        ("detectors.goip.min_score=abc", "conf detectors.goip.min_score: Input should be a valid number"),
        ("detectors.goip.min_score=1.5", "conf detectors.goip.min_score: Input should be less than or equal to 1"),
        ("carriers.cm.format=xml", "conf carriers.cm.format: unknown format 'xml' (known: cn_csv, jsonl, pipe_gbk)"),
        ("timezone=Mars/Olympus", "conf timezone: unknown timezone 'Mars/Olympus'"),
        ("spark.shuffle_partitions=0", "conf spark.shuffle_partitions: Input should be greater than 0"),
        ("nonsense", "--set 'nonsense': expected dotted.key=value"),
    ],
)
def test_bad_settings_name_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_conf_file_names_file_and_line(tmp_path):
    conf = tmp_path / "broken.yaml"
    conf.write_text("paths:\n  lake: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken.yaml:\d+: not valid YAML"):
        load_config(conf)
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "absent.yaml")
    (tmp_path / "typo.yaml").write_text("ingest:\n  rows_per_fil: 10\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"typo.yaml: unknown configuration key 'ingest.rows_per_fil'"):
        load_config(tmp_path / "typo.yaml")
