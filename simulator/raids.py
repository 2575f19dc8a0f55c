"""A raid: police take the first box den down one night; its box comes back with fresh SIMs elsewhere.

This is what a hotlist of seized devices is for (issue 15): the den works days 1..N as before,
places no call at all on day N+1 (the raid), and from day N+2 on the same box (the same IMEI)
works again with SIMs never used before, from another residential site of its district at least
800 m away. The place is drawn from its own stream, so a run without a raid is the run it always was.
"""

from __future__ import annotations

import math

import numpy as np

from simulator.city import KM_LAT, KM_LON, City
from simulator.dens import Den, true_offset

RAID_KINDS = (("goip_shared",), ("goip_fresh", "sms_blaster", "goip_hopping", "twin_boxes"))
"""Which den is raided: the first goip_shared box, else the first den that is another kind of box."""
MIN_MOVE_M = 800.0


def check_raid(raid_after: int | None, days: int) -> None:
    """The den must work at least one day, be raided on a later one and be back on a day after that."""
    if raid_after is not None and not 1 <= raid_after <= days - 2:
        raise ValueError(
            f"simulate: raid_after={raid_after} does not fit {days} day(s): the den works days 1..N, "
            f"is raided on day N+1 and back on day N+2, so 1 <= N <= days - 2 ({days - 2})"
        )


def raided_den(dens: list[Den]) -> Den:
    for kinds in RAID_KINDS:
        for den in dens:
            if den.kind in kinds:
                return den
    raise ValueError(
        f"simulate: raid_after needs a box den ({', '.join(sum(RAID_KINDS, ()))}); none of this "
        f"run's {len(dens)} den(s) is one (use dens >= 1)"
    )


def plan_raid(rng: np.random.Generator, city: City, dens: list[Den], raid_after: int, avoid: set[int]) -> Den:
    """Mark the raided den: no calls on day index `raid_after`, then at its new place (none of `avoid`)."""
    den = raided_den(dens)
    last = raid_after - 1  # its last night before the raid
    old_site = den.site(last)
    old_lat, old_lon = den.position(last, city)
    homes = np.argsort(-city.residential, kind="stable")[: city.n_sites // 3]
    district = city.site_district[old_site]
    same = [int(s) for s in rng.permutation(homes) if city.site_district[s] == district]
    anywhere = [int(s) for s in rng.permutation(city.n_sites)]
    for site in same + anywhere:
        if site == old_site or site in avoid:
            continue
        offset = true_offset(rng)
        lat = city.site_lat[site] + offset[1] / 1000 * KM_LAT
        lon = city.site_lon[site] + offset[0] / 1000 * KM_LON
        if _metres(old_lat, old_lon, lat, lon) >= MIN_MOVE_M:
            den.raided_on, den.back_site, den.back_offset_m = raid_after, site, offset
            return den
    raise ValueError("simulate: no free site for the raided den to come back to")


def _metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return 1000 * math.hypot((lat1 - lat2) / KM_LAT, (lon1 - lon2) / KM_LON)
