"""Cell congestion's fixed numbers, on both engines (`detectors.congestion`, `detectors.local.congestion`)."""

from __future__ import annotations

MAD_SCALE = 1.4826  # MAD -> standard deviation for normally distributed counts
MIN_POISSON_MEAN = 1.0  # the noise floor sqrt(max(median, 1)): a site with no baseline is Poisson(1)
TOP_SIMS = 5  # "share of the busiest SIMs" looks at this many
DEN_LIKE = 0.5  # concentration from which the evidence says den-like
