"""Detectors: pure Spark transforms from a night of CDRs to flags (see detectors/base.py).

`DETECTORS` maps each detector's conf name (`detectors.<name>` in conf) to its class, in the order
they run. Add a detector: a module here with a `Detector` subclass (returning the FLAG detail
columns it knows, e.g. `site_key` and the window; see `base.FLAG_DETAILS`), an entry below, its
thresholds in conf/default.yaml and jobs/config.py, and it is run, written and evaluated.
"""

from detectors.congestion import CellCongestion
from detectors.hotlist import HotlistMatch
from detectors.low_slow import LowSlowRoom
from detectors.sequential import SequentialDialling
from detectors.simbox import SimBox
from detectors.spoofing import CallerIdSpoofing

DETECTORS = {
    "sequential": SequentialDialling,
    "goip": SimBox,
    "low_slow": LowSlowRoom,
    "congestion": CellCongestion,
    "hotlist": HotlistMatch,
    "spoofing": CallerIdSpoofing,
}
