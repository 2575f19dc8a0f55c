"""Typed configuration: `conf/default.yaml`, merged with `--conf FILE` and `--set key=value`.

Every key is declared here, so an unknown key or a value of the wrong type is an error that names
the key; the rest of the code receives one immutable `Config` and never reads YAML itself.
"""

from __future__ import annotations

import copy
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from jobs.errors import ConfigError
from schemas.raw import RAW_LAYOUTS


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Paths(_Section):
    landing: Path
    lake: Path
    outbox: Path


class Carrier(_Section):
    format: str

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in RAW_LAYOUTS:
            raise ValueError(f"unknown format {value!r} (known: {', '.join(sorted(RAW_LAYOUTS))})")
        return value


class Spark(_Section):
    master: str
    app_name: str
    driver_memory: str
    shuffle_partitions: int = Field(gt=0)
    extra: dict[str, str | int | float | bool] = {}


class Ingest(_Section):
    rows_per_file: int = Field(gt=0)
    volume_history_days: int = Field(gt=0)
    volume_min_ratio: float = Field(ge=0, le=1)
    late_days: int = Field(ge=0, le=7)


class Sequential(_Section):
    window_minutes: int = Field(gt=0, le=1440)
    max_gap: int = Field(gt=0)
    min_run: int = Field(gt=1)
    min_coverage: float = Field(gt=0, le=1)
    max_step: int = Field(gt=0)
    min_order: float = Field(ge=0, le=1)
    min_sim_calls: int = Field(gt=0)
    min_sim_share: float = Field(ge=0, le=1)


class Goip(_Section):
    min_score: float = Field(ge=0, le=1)
    min_calls: int = Field(gt=0)
    shared_imsis: int = Field(gt=1)
    rare_tac_devices: int = Field(ge=1)
    max_sites: int = Field(ge=1)
    short_call_s: int = Field(gt=0)
    max_gap_cv: float = Field(gt=0)
    max_callback_ratio: float = Field(ge=0, le=1)
    min_sms_callees: int = Field(gt=0)


class LowSlow(_Section):
    min_history_days: int = Field(gt=0)
    min_calls: int = Field(gt=0)
    min_home_share: float = Field(ge=0, le=1)
    min_stranger_share: float = Field(ge=0, le=1)
    max_callback_ratio: float = Field(ge=0, le=1)
    hangup_s: int = Field(gt=0)
    long_call_s: int = Field(gt=0)
    max_middle_share: float = Field(ge=0, le=1)
    min_hangup_share: float = Field(ge=0, le=1)
    min_sims: int = Field(gt=1)
    min_shared_callees: int = Field(gt=0)


class Congestion(_Section):
    baseline_days: int = Field(gt=0)
    min_baseline_days: int = Field(gt=0)
    min_robust_z: float = Field(gt=0)
    min_hour_calls: int = Field(gt=0)
    full_robust_z: float = Field(gt=0)
    heavy_sim_calls_per_hour: float = Field(gt=0)
    min_heavy_sims: int = Field(gt=0)


class Hotlist(_Section):
    near_site_m: float = Field(ge=0)
    min_near_sims: int = Field(ge=1)


class ProtectedNumber(_Section):
    number: str = Field(pattern=r"^[0-9x]{3,20}$")
    name: str
    services: list[Literal["voice", "sms"]] = ["voice", "sms"]


class Spoofing(_Section):
    tolerance_s: int = Field(ge=0, le=3600)
    duration_tolerance_s: int = Field(ge=0)
    duration_tolerance_share: float = Field(ge=0, le=1)
    subscriber_days: int = Field(ge=0, le=90)
    campaign_gap_minutes: int = Field(gt=0)
    long_call_s: int = Field(gt=0)
    max_unmatched_share: float = Field(gt=0, le=1)
    guard_min_legs: int = Field(ge=1)
    protected: list[ProtectedNumber] = []


class Detectors(_Section):
    sequential: Sequential
    goip: Goip
    low_slow: LowSlow
    congestion: Congestion
    hotlist: Hotlist
    spoofing: Spoofing


class Feedback(_Section):
    hotlist_days: int = Field(gt=0)
    suppress_nights: int = Field(gt=0)
    suppress_min_overlap: float = Field(gt=0, le=1)


class Dens(_Section):
    min_edge_weight: float = Field(ge=0)
    seed: int
    match_min_overlap: float = Field(ge=0, le=1)
    match_max_distance_m: float = Field(ge=0)
    split_min_nodes: int = Field(gt=1)
    min_sims: int = Field(ge=1)
    lookback_nights: int = Field(ge=1)
    priority_high: float = Field(ge=0, le=1)
    priority_medium: float = Field(ge=0, le=1)
    max_degree: int = Field(gt=0)
    max_edges: int = Field(gt=0)
    min_together: float = Field(ge=0, le=1)
    merge_distance_m: float = Field(ge=0)
    merge_min_overlap: float = Field(ge=0, le=1)


class Export(_Section):
    warning_min_call_s: int = Field(ge=0)
    chinese_headers: bool


class Schedule(_Section):
    """The nightly Airflow DAG (dags/cdr_nightly.py): one run per local calendar day of the conf timezone."""

    start_date: date
    catchup: bool
    landing_deadline_minutes: float = Field(ge=0)
    late_carrier: Literal["continue", "fail"]
    poke_interval_s: float = Field(gt=0)
    retries: int = Field(ge=0)
    retry_delay_minutes: float = Field(ge=0)
    require_manifest: bool
    settle_minutes: float = Field(ge=0)
    one_task: bool = False


Engine = Literal["local", "spark"]
ENGINES: tuple[str, ...] = ("local", "spark")


class Config(_Section):
    paths: Paths
    timezone: str
    engine: Engine = "local"
    carriers: dict[str, Carrier] = Field(min_length=1)
    spark: Spark
    ingest: Ingest
    detectors: Detectors
    feedback: Feedback
    dens: Dens
    export: Export
    schedule: Schedule

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}") from None
        return value

    def with_paths(self, **paths: str | Path | None) -> Config:
        """The same configuration with some of landing/lake/outbox replaced (CLI flags)."""
        given = {k: Path(v) for k, v in paths.items() if v is not None}
        return self.model_copy(update={"paths": self.paths.model_copy(update=given)})


def load_config(conf_file: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Default YAML, then `conf_file` merged over it, then each `dotted.key=value` override."""
    raw = yaml.safe_load(resources.files("conf").joinpath("default.yaml").read_text(encoding="utf-8"))
    if conf_file is not None:
        raw = _merge(raw, _read_yaml(Path(conf_file)), str(conf_file))
    for item in overrides:
        _apply_override(raw, item)
    if isinstance(raw.get("carriers"), dict):  # `cu: null` in a conf file switches a carrier off
        raw["carriers"] = {code: fmt for code, fmt in raw["carriers"].items() if fmt is not None}
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_describe(err)) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return data


def _merge(base: dict[str, Any], over: dict[str, Any], source: str, prefix: str = "") -> dict[str, Any]:
    """Deep-merge `over` into a copy of `base`; keys absent from the defaults are refused here
    (except under free-form mappings: carriers and spark.extra) so the message can name the file."""
    merged = copy.deepcopy(base)
    for key, value in over.items():
        dotted = f"{prefix}{key}"
        free_form = prefix in ("carriers.", "spark.extra.") or dotted in ("carriers", "spark.extra")
        if key not in merged and not free_form:
            raise ConfigError(f"{source}: unknown configuration key {dotted!r}")
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value, source, f"{dotted}.")
        else:
            merged[key] = value
    return merged


def _apply_override(raw: dict[str, Any], item: str) -> None:
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected dotted.key=value")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    key = key.strip()
    # spark.* settings contain dots themselves: everything after spark.extra. is one key
    parts = ["spark", "extra", key[len("spark.extra.") :]] if key.startswith("spark.extra.") else key.split(".")
    nested: Any = value
    for part in reversed(parts):
        nested = {part: nested}
    raw.update(_merge(raw, nested, f"--set {key}"))


def _describe(err: ValidationError) -> str:
    """Pydantic's report as one line per problem: `dotted.key: what is wrong (got value)`."""
    lines = []
    for problem in err.errors():
        key = ".".join(str(p) for p in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown configuration key"
        elif problem["type"] == "missing":
            message = "missing"
        got = problem.get("input")
        shown = "" if problem["type"] in ("extra_forbidden", "missing") or isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"conf {key}: {message}{shown}")
    return "; ".join(lines)
