"""The SIM-box indicators' weights and fixed numbers, on both engines (`detectors.simbox`, `detectors.local.simbox`)."""

from __future__ import annotations

WEIGHTS = {
    "shared_device": 0.30,
    "fake_imei": 0.20,
    "hopping_sim": 0.20,
    "swapped_device": 0.10,
    "regular_gaps": 0.20,
    "stationary": 0.10,
    "outgoing_only": 0.10,
    "many_callees": 0.10,
    "brief_calls": 0.10,
    "no_callbacks": 0.10,
    "sms_blast": 0.10,
    "new_sim": 0.10,
}
MIN_OUT_SHARE = 0.9  # share of a SIM's events that are outgoing for "outgoing only"
MIN_CALLEE_RATIO = 0.8  # distinct callees per outgoing event for "many callees"
MIN_BRIEF_SHARE = 0.8  # share of outgoing calls unanswered or short for "brief calls"
SWAP_IMSIS = 2  # IMSIs on one handset over the week for "swapped device"
IQR_PER_SD = 1.349  # interquartile range of a normal distribution, in standard deviations
TAC_DIGITS = 8
IMEI_PATTERN = "^[0-9]{15}$"
