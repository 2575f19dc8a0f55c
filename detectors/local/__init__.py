"""Detectors of the `local` engine: Polars ports of `detectors/`, in-process, no JVM (see base.py).

`DETECTORS` maps each ported detector's conf name to its class, in the order `detectors.DETECTORS`
runs them; a detector is listed here once the differential tests hold it equal to its Spark twin.
"""

from detectors.local.congestion import CellCongestion
from detectors.local.hotlist import HotlistMatch
from detectors.local.low_slow import LowSlowRoom
from detectors.local.sequential import SequentialDialling
from detectors.local.simbox import SimBox
from detectors.local.spoofing import CallerIdSpoofing

DETECTORS = {
    "sequential": SequentialDialling,
    "goip": SimBox,
    "low_slow": LowSlowRoom,
    "congestion": CellCongestion,
    "hotlist": HotlistMatch,
    "spoofing": CallerIdSpoofing,
}
