"""Telephone numbers and device identities: carriers' segments, outside pools, IMSI and IMEI.

Numbers are handled as int64 holding the E.164 digits (8613912345678, 862885551234, 855...);
short service numbers are their digits (95588) and are told apart by being below 10**6.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

MOBILE_BASE = 86 * 10**11  # +86 followed by an 11-digit mobile number
SEGMENT_SIZE = 10_000  # a 7-digit prefix (139-1234) holds 10,000 numbers
SUBSCRIBERS_PER_SEGMENT = 3000  # residents per local segment (so most numbers belong to nobody)
SERVICE_LIMIT = 10**6  # anything below is a short service number, kept as digits


@dataclass(frozen=True)
class CarrierPlan:
    code: str
    share: float  # of the city's residents
    prefixes: tuple[int, ...]  # 3-digit mobile prefixes
    mcc_mnc: tuple[int, ...]  # IMSI heads


CARRIER_PLANS = (
    CarrierPlan("cm", 0.55, (134, 135, 136, 137, 138, 139, 150, 151, 152, 158, 188), (46000, 46002, 46007)),
    CarrierPlan("cu", 0.20, (130, 131, 132, 155, 156, 186), (46001, 46006)),
    CarrierPlan("ct", 0.25, (133, 153, 180, 189), (46003, 46011)),
)
CARRIER_SHARES = np.array([p.share for p in CARRIER_PLANS])

PHONE_TACS = np.array([86891203, 35693803, 35891510, 35420409, 35332811, 86753104])
"""Type allocation codes of the handsets ordinary people (and fraud-room operators) carry."""
BOX_TACS = np.array([86271805, 35566009, 86440103, 35874106])
"""TACs that GOIP / SMS-blaster boxes report; never a phone's."""

SERVICE_NUMBERS = np.array([95588, 95533, 95555, 95599, 95566, 10086, 10010, 10000, 12345, 12315, 95511, 95518])
SERVICE_WEIGHTS = np.array([12, 8, 8, 5, 4, 20, 10, 10, 8, 3, 6, 6], dtype=float)
PROTECTED_SHORT = np.array([110, 96110, 12345, 12368])
"""Short numbers (besides the banks' 95xxx) a resident's phone never rings from: police, anti-fraud,
government and court hotlines. Shown on an incoming call, they are spoofed (改号, issue 16)."""
SERVICE_LANDLINE_BASE = 862860000000
"""An organisation rings its customers back from a Chengdu landline of its own: 028-6009 5588 for 95588."""
LANDLINE_AREAS = np.array([28, 28, 28, 28, 28, 28, 10, 21, 20, 23])  # mostly Chengdu 028
OVERSEAS = ((855, 9), (63, 10), (1, 10), (44, 10), (81, 10), (65, 8), (60, 9))  # (country code, digits)


def luhn_digit(body: np.ndarray) -> np.ndarray:
    """IMEI check digit of 14-digit bodies (every second digit from the right doubled)."""
    body = np.asarray(body, dtype=np.int64)
    total = np.zeros(body.shape, dtype=np.int64)
    rest = body.copy()
    for position in range(14):  # from the rightmost digit leftwards
        digit = rest % 10
        rest //= 10
        if position % 2 == 0:
            digit = digit * 2
            digit = np.where(digit > 9, digit - 9, digit)
        total += digit
    return (10 - total % 10) % 10


def make_imei(tac: np.ndarray, serial: np.ndarray) -> np.ndarray:
    body = np.asarray(tac, dtype=np.int64) * 10**6 + np.asarray(serial, dtype=np.int64)
    return body * 10 + luhn_digit(body)


@dataclass
class Identities:
    """Hands out IMSIs and IMEIs that were never used before, so a shared device is a real signal."""

    rng: np.random.Generator
    imsis: set[int] = field(default_factory=set)
    imeis: set[int] = field(default_factory=set)

    def _fresh(self, draw, n: int, used: set[int]) -> np.ndarray:
        out: list[int] = []
        while len(out) < n:
            for value in draw(int((n - len(out)) * 1.1) + 4).tolist():
                if value not in used:
                    used.add(value)
                    out.append(value)
                    if len(out) == n:
                        break
        return np.array(out, dtype=np.int64)

    def imsi(self, carrier: np.ndarray) -> np.ndarray:
        carrier = np.asarray(carrier)
        out = np.empty(carrier.size, dtype=np.int64)
        for c, plan in enumerate(CARRIER_PLANS):
            where = np.flatnonzero(carrier == c)
            heads = np.array(plan.mcc_mnc)

            def draw(k, heads=heads):
                return self.rng.choice(heads, k) * 10**10 + self.rng.integers(0, 10**10, k)

            out[where] = self._fresh(draw, where.size, self.imsis)
        return out

    def imei(self, n: int, tacs: np.ndarray | None = None, random_tac: bool = False) -> np.ndarray:
        """Phones draw from `tacs`; GOIP boxes with fresh IMEIs invent random TACs."""

        def draw(k):
            if random_tac:
                tac = self.rng.integers(10_000_000, 99_999_999, k)
                tac = np.where(np.isin(tac, PHONE_TACS), tac + 1, tac)
            else:
                tac = self.rng.choice(tacs, k)
            return make_imei(tac, self.rng.integers(0, 10**6, k))

        return self._fresh(draw, n, self.imeis)


@dataclass
class NumberPlan:
    """Local segments per carrier; hands out numbers nobody holds yet (residents first, then SIMs)."""

    segments: list[np.ndarray]  # per carrier: sorted 7-digit prefixes
    _free: list[np.ndarray]  # per carrier: shuffled unused numbers (E.164 ints)
    _next: list[int]
    _tail: list[int] = field(default_factory=lambda: [0, 0, 0])  # numbers handed out from the far end

    @classmethod
    def build(cls, rng: np.random.Generator, residents_per_carrier: np.ndarray, spare: int) -> "NumberPlan":
        segments, free = [], []
        taken: set[int] = set()
        for c, plan in enumerate(CARRIER_PLANS):
            need = residents_per_carrier[c] + spare
            n_seg = max(
                3, math.ceil(residents_per_carrier[c] / SUBSCRIBERS_PER_SEGMENT), math.ceil(need / (SEGMENT_SIZE * 0.8))
            )
            chosen: list[int] = []
            while len(chosen) < n_seg:
                seg = int(rng.choice(plan.prefixes)) * 10**4 + int(rng.integers(0, 10**4))
                if seg not in taken:
                    taken.add(seg)
                    chosen.append(seg)
            seg = np.sort(np.array(chosen, dtype=np.int64))
            numbers = MOBILE_BASE + (seg[:, None] * SEGMENT_SIZE + np.arange(SEGMENT_SIZE)).ravel()
            segments.append(seg)
            free.append(rng.permutation(numbers))
        return cls(segments, free, [0, 0, 0])

    def draw(self, carrier: int, n: int) -> np.ndarray:
        start = self._next[carrier]
        if start + n > self._free[carrier].size - self._tail[carrier]:
            raise ValueError(f"carrier {CARRIER_PLANS[carrier].code}: local segments exhausted")
        self._next[carrier] = start + n
        return self._free[carrier][start : start + n]

    def draw_from_end(self, carrier: int, n: int) -> np.ndarray:
        """Numbers from the far end of the free list, so whatever draws from the front (residents,
        the classic dens) gets the very numbers it got before this second customer existed."""
        end = self._free[carrier].size - self._tail[carrier]
        if end - n < self._next[carrier]:
            raise ValueError(f"carrier {CARRIER_PLANS[carrier].code}: local segments exhausted")
        self._tail[carrier] += n
        return self._free[carrier][end - n : end][::-1]

    def draw_mixed(self, carrier: np.ndarray, from_end: bool = False) -> np.ndarray:
        out = np.empty(len(carrier), dtype=np.int64)
        for c in range(len(CARRIER_PLANS)):
            where = np.flatnonzero(carrier == c)
            out[where] = (self.draw_from_end if from_end else self.draw)(c, where.size)
        return out

    @property
    def local_prefixes(self) -> np.ndarray:
        return np.sort(np.concatenate(self.segments))

    def dial_list_size(self) -> int:
        return self.local_prefixes.size * SEGMENT_SIZE

    def dial_number(self, position: np.ndarray) -> np.ndarray:
        """The number at `position` of the city's local segments in ascending order (wrapping)."""
        prefixes = self.local_prefixes
        position = np.asarray(position, dtype=np.int64) % (prefixes.size * SEGMENT_SIZE)
        return MOBILE_BASE + prefixes[position // SEGMENT_SIZE] * SEGMENT_SIZE + position % SEGMENT_SIZE


@dataclass
class OutsidePools:
    """Numbers outside the modelled city: they only ever appear on the resident's side."""

    out_of_region: np.ndarray
    landlines: np.ndarray
    overseas: np.ndarray

    @classmethod
    def build(cls, rng: np.random.Generator, n_residents: int, local_prefixes: np.ndarray) -> "OutsidePools":
        n = max(2000, n_residents // 2)
        prefixes = np.concatenate([p.prefixes for p in CARRIER_PLANS])
        seg = rng.choice(prefixes, n) * 10**4 + rng.integers(0, 10**4, n)
        seg = np.where(np.isin(seg, local_prefixes), seg + 1, seg)
        seg = np.where(np.isin(seg, local_prefixes), seg + 1, seg)  # two clashes in a row: vanishingly rare
        mobile = np.unique(MOBILE_BASE + seg * SEGMENT_SIZE + rng.integers(0, SEGMENT_SIZE, n))
        mobile = mobile[~np.isin((mobile - MOBILE_BASE) // SEGMENT_SIZE, local_prefixes)]
        area = rng.choice(LANDLINE_AREAS, n)
        landline = np.unique(86 * 10**10 + area * 10**8 + rng.integers(6, 9, n) * 10**7 + rng.integers(0, 10**7, n))
        m = max(300, n_residents // 50)
        country = rng.integers(0, len(OVERSEAS), m)
        cc = np.array([OVERSEAS[i][0] for i in country])
        digits = np.array([OVERSEAS[i][1] for i in country])
        national = 10 ** (digits - 1) * rng.integers(2, 10, m) + rng.integers(0, 10**8, m) % 10 ** (digits - 1)
        overseas = np.unique(cc * 10**digits + national)
        return cls(rng.permutation(mobile), rng.permutation(landline), rng.permutation(overseas))

    def draw(self, kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
        if kind == "service":
            return rng.choice(SERVICE_NUMBERS, n, p=SERVICE_WEIGHTS / SERVICE_WEIGHTS.sum())
        pool = {"out_of_region": self.out_of_region, "landline": self.landlines, "overseas": self.overseas}[kind]
        # popularity is skewed: a few numbers (relatives, shops) are called often
        index = np.minimum((rng.pareto(1.2, n) * pool.size / 20).astype(np.int64), pool.size - 1)
        return pool[index]


def is_protected(number: np.ndarray) -> np.ndarray:
    """Whether each number is a protected short number: 110, 96110, 12345, 12368 or a bank's 95xxx."""
    number = np.asarray(number, dtype=np.int64)
    return np.isin(number, PROTECTED_SHORT) | ((number >= 95000) & (number < 96000))


def ring_from_landline(number: np.ndarray, svc: np.ndarray) -> np.ndarray:
    """Voice calls of a protected short number come from the organisation's landline instead (its SMS
    notices keep the short number): a bank or hotline never rings a mobile from 95588 or 12345, so
    the pipeline may call every such incoming voice leg spoofed. No random draw."""
    number = np.asarray(number, dtype=np.int64)
    return np.where((np.asarray(svc) == 0) & is_protected(number), SERVICE_LANDLINE_BASE + number, number)


def lake_number(number: int) -> str:
    """The lake's form of a number: +digits, or digits for short service numbers."""
    return str(number) if number < SERVICE_LIMIT else f"+{number}"
