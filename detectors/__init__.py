"""Detectors: pure transforms from a night of CDRs to flags, on each engine (see detectors/base.py for
Spark, detectors/local/base.py for the local engine's Polars twins).

`DETECTORS` maps each detector's conf name (`detectors.<name>` in conf) to its Spark class, in the
order they run; `detectors.local.DETECTORS` does the same for the local engine. Add a detector: a
module here with a `Detector` subclass (returning the FLAG detail columns it knows, e.g. `site_key`
and the window; see `base.FLAG_DETAILS`) and its twin in `local/`, an entry in both registries, its
thresholds in conf/default.yaml and jobs/config.py, and it is run, written and evaluated.

The Spark registry is imported on first use, so that the local engine (`import detectors.local`)
never imports pyspark.
"""


def _spark_detectors() -> dict:
    from detectors.congestion import CellCongestion
    from detectors.hotlist import HotlistMatch
    from detectors.low_slow import LowSlowRoom
    from detectors.sequential import SequentialDialling
    from detectors.simbox import SimBox
    from detectors.spoofing import CallerIdSpoofing

    return {
        "sequential": SequentialDialling,
        "goip": SimBox,
        "low_slow": LowSlowRoom,
        "congestion": CellCongestion,
        "hotlist": HotlistMatch,
        "spoofing": CallerIdSpoofing,
    }


def __getattr__(name: str):
    if name == "DETECTORS":
        globals()["DETECTORS"] = detectors = _spark_detectors()
        return detectors
    raise AttributeError(f"module 'detectors' has no attribute {name!r}")
