"""One conformance suite that every detector in `detectors.DETECTORS` passes (PyOD/river style):
the flag shape (with FLAG's types for the detail columns a detector fills), determinism, empty
input, and the whitelist honoured, on a small hand-built night with a den in it and a low-and-slow
room (so that every detector has something to find)."""

import datetime as dt
import random
from dataclasses import replace

import pytest
from builders import LOCAL, cdr_row
from pyspark.sql import functions as F

from detectors import DETECTORS
from detectors.base import FLAG_DETAILS, FLAG_FIELDS, Night, prepare_night, run_detectors
from schemas.tables import CDR, FLAG, HOTLIST

DAY = dt.date(2026, 11, 24)
DEN_SIMS = [f"+861700000{i:04d}" for i in range(1, 9)]
ROOM_SIMS = [f"+861370000{i:04d}" for i in range(1, 5)]
WHITELISTED = DEN_SIMS[0]
SITES = {  # carrier, cell_id -> site; site A has a cell in every carrier, as real co-sited masts do
    ("cm", "4100-20001"): ("SA", 30.60, 104.05, "锦江区001号基站", "锦江区"),
    ("cu", "460-01-23000-11"): ("SA", 30.60, 104.05, "锦江春熙路站", "锦江区"),
    ("ct", "ct00001"): ("SA", 30.60, 104.05, "锦江-001", "锦江区"),
    ("cm", "4100-20002"): ("SB", 30.61, 104.06, "锦江区002号基站", "锦江区"),
    ("cm", "4100-20003"): ("SC", 30.62, 104.07, "锦江区003号基站", "锦江区"),
}
CELLS = list(SITES)
FLAG_TYPES = {f.name: f.dataType for f in FLAG.spark().fields}


def _residents(day, rng, rows):
    """60 residents calling friends all day at sites B and C (and a few at A)."""
    for r in range(60):
        msisdn = f"+8613800{r:06d}"
        carrier, cell = CELLS[3 + r % 2] if r % 10 else CELLS[0]
        for k in range(rng.randint(3, 9)):
            when = dt.datetime.combine(
                day, dt.time(rng.randint(7, 22), rng.randint(0, 59), rng.randint(0, 59)), tzinfo=LOCAL
            )
            friend = f"+8613800{rng.randint(0, 59):06d}"
            duration = rng.choice([0, 35, 60, 120, 300])
            rows.append(
                cdr_row(
                    f"R{day}{r}-{k}",
                    carrier,
                    msisdn,
                    friend,
                    "out",
                    "voice",
                    when,
                    duration,
                    f"46000{r:010d}",
                    f"8689120300{r:05d}",
                    cell,
                )
            )
            f = int(friend[-6:])  # the friend's carrier records the same call, one second later
            f_carrier, f_cell = CELLS[3 + f % 2] if f % 10 else CELLS[0]
            rows.append(
                cdr_row(
                    f"R{day}{r}-{k}-in",
                    f_carrier,
                    friend,
                    msisdn,
                    "in",
                    "voice",
                    when + dt.timedelta(seconds=1),
                    duration,
                    f"46000{f:010d}",
                    f"8689120300{f:05d}",
                    f_cell,
                )
            )


def _spoofer(day, rows):
    """An overseas gateway ringing residents: six calls showing resident 7's number (who never placed
    them), two showing 110; only the receivers' carrier records them."""
    for k in range(8):
        r = 20 + k
        carrier, cell = CELLS[3 + r % 2] if r % 10 else CELLS[0]
        when = dt.datetime.combine(day, dt.time(15, 3 * k), tzinfo=LOCAL)
        shown = "110" if k >= 6 else "+8613800000007"
        rows.append(
            cdr_row(
                f"S{day}{k}",
                carrier,
                f"+8613800{r:06d}",
                shown,
                "in",
                "voice",
                when,
                240 if k in (2, 6) else 0,
                f"46000{r:010d}",
                f"8689120300{r:05d}",
                cell,
            )
        )


def _den(day, rows):
    """8 SIMs of three carriers in one box at site A, dialling 139-1234-xxxx round-robin 09:00-12:00."""
    start = dt.datetime.combine(day, dt.time(9), tzinfo=LOCAL)
    for k in range(8 * 170):
        sim = k % 8
        carrier, cell = CELLS[sim % 3]
        when = start + dt.timedelta(seconds=k * 7.5)
        rows.append(
            cdr_row(
                f"D{day}{k}",
                carrier,
                DEN_SIMS[sim],
                f"+861391234{k:04d}",
                "out",
                "voice",
                when,
                0 if k % 5 else 12,
                f"4600{sim % 3}9{sim:010d}",
                "860000001234563",
                cell,
            )
        )


def _room(day, rows, tonight):
    """4 ordinary phones at site C (a low-and-slow room): a normal life on earlier days; tonight 16
    calls each to a list of residents (neighbouring SIMs share 8), answered ones a hang-up or a long talk."""
    listed = [f"+86{150 + n % 9}{(n * 7919) % 10**8:08d}" for n in range(40)]
    carrier, cell = CELLS[4]
    for i, sim in enumerate(ROOM_SIMS):
        device = f"8689120310{i:05d}"
        if not tonight:
            friend = f"+8618900{i:06d}"
            rows.append(
                cdr_row(
                    f"L{day}{i}",
                    carrier,
                    sim,
                    friend,
                    "out",
                    "voice",
                    dt.datetime.combine(day, dt.time(19), tzinfo=LOCAL),
                    90,
                    f"46000{sim[-10:]}",
                    device,
                    cell,
                )
            )
            continue
        for k in range(16):
            when = dt.datetime.combine(day, dt.time(9, i), tzinfo=LOCAL) + dt.timedelta(minutes=25 * k)
            duration = 0 if k % 3 else (600 if k % 12 == 0 else 5)
            rows.append(
                cdr_row(
                    f"L{day}{i}-{k}",
                    carrier,
                    sim,
                    listed[(8 * i + k) % 40],
                    "out",
                    "voice",
                    when,
                    duration,
                    f"46000{sim[-10:]}",
                    device,
                    cell,
                )
            )


def night_rows() -> tuple[list[tuple], list[tuple], list[tuple]]:
    """The night's CDR rows, the three earlier days' rows, and the sites' rows (SITE_COLUMNS): the
    same for every engine that builds this night."""
    rng = random.Random(5)
    today, history = [], []
    for back in (3, 2, 1):
        _residents(DAY - dt.timedelta(days=back), rng, history)
        _room(DAY - dt.timedelta(days=back), history, tonight=False)
    _residents(DAY, rng, today)
    _den(DAY, today)
    _spoofer(DAY, today)
    _room(DAY, today, tonight=True)
    sites = [
        (c, cell, lat, lon, name, district, key, lat, lon, name)
        for (c, cell), (key, lat, lon, name, district) in SITES.items()
    ]
    return today, history, sites


# The den's box, seized from a den raided a week ago: what the hotlist detector looks for.
SEIZED_BOX = (
    "860000001234563",
    "imei",
    "D20261117-01",
    "raided",
    DAY - dt.timedelta(days=7),
    DAY + dt.timedelta(days=90),
    None,
    None,
)


@pytest.fixture(scope="module")
def night(spark):
    today, history, site_rows = night_rows()
    cdr = spark.createDataFrame(today, CDR.spark())
    past = spark.createDataFrame(history, CDR.spark())
    sites = spark.createDataFrame(
        site_rows,
        "carrier string, cell_id string, lat double, lon double, site_name string, district string, "
        "site_key string, site_lat double, site_lon double, site_label string",
    )
    whitelist = spark.createDataFrame([(WHITELISTED,)], "number string")
    hotlist = spark.createDataFrame([SEIZED_BOX], HOTLIST.spark())
    return replace(prepare_night(DAY, cdr, past, sites, whitelist), hotlist=hotlist)


@pytest.fixture(scope="module")
def all_flags(night, test_config):
    """`run_detectors` over every detector: the FLAG frame detect writes (computed once, cached)."""
    detectors = [cls(getattr(test_config.detectors, name)) for name, cls in DETECTORS.items()]
    flags = run_detectors(detectors, night).cache()
    flags.count()
    yield flags
    flags.unpersist()


@pytest.fixture(scope="module")
def empty_night(spark, night):
    empty = night.cdr.limit(0)
    return Night(DAY, empty, empty, night.whitelist)


@pytest.mark.parametrize("name", DETECTORS)
def test_flags_have_the_flag_shape_and_find_the_den_deterministically(name, night, all_flags, test_config):
    detector = DETECTORS[name](getattr(test_config.detectors, name))
    flags = detector.flags(night)
    assert set(FLAG_FIELDS) <= set(flags.columns) <= set(FLAG_FIELDS + FLAG_DETAILS), "only FLAG's columns"
    for field in flags.schema.fields:
        if field.name in FLAG_DETAILS:
            assert field.dataType == FLAG_TYPES[field.name], f"{name}: {field.name} is {field.dataType}"
    rows = flags.select(*FLAG_FIELDS).collect()
    assert rows, f"{name} found nothing on a night with a den"
    for row in rows:
        assert row.entity_type in ("msisdn", "imei", "cell", "presented")
        assert 0.0 <= row.score <= 1.0
        assert row.evidence and len(row.evidence) < 500
    assert len({(r.entity_type, r.entity_id) for r in rows}) == len(rows), "one row per entity"
    # deterministic: the same rows as the detector's own run inside run_detectors (all_flags); congestion
    # there also weighs the SIMs the other detectors flagged tonight, so only its cells can be compared
    again = all_flags.where(F.col("detector") == name).select(*FLAG_FIELDS).collect()
    if name == "congestion":
        rows, again = [r[:2] for r in rows], [r[:2] for r in again]
    assert sorted(map(tuple, rows)) == sorted(map(tuple, again))


@pytest.mark.parametrize("name", DETECTORS)
def test_empty_night_gives_no_flags(name, empty_night, test_config):
    detector = DETECTORS[name](getattr(test_config.detectors, name))
    flags = detector.flags(empty_night)
    assert set(FLAG_FIELDS) <= set(flags.columns)
    assert flags.count() == 0


def test_whitelisted_numbers_are_never_flagged(night, all_flags):
    flags = all_flags
    assert flags.columns == FLAG.names
    flagged_sims = {r.entity_id for r in flags.where(F.col("entity_type") == "msisdn").collect()}
    assert WHITELISTED not in flagged_sims
    assert set(DEN_SIMS[1:]) <= flagged_sims
    assert night.cdr.where(F.col("msisdn") == WHITELISTED).count() == 0


def test_every_detector_gives_the_flag_schema_with_typed_details(all_flags):
    """The detail columns a detector does not fill are typed nulls, so detect writes one schema."""
    assert [(f.name, f.dataType) for f in all_flags.schema.fields] == [
        (f.name, f.dataType) for f in FLAG.spark().fields
    ]
    rows = all_flags.collect()
    assert {r.detector for r in rows} == set(DETECTORS)
    for r in rows:
        if r.detector != "sequential":  # the swept range and how it was dialled are sequential's alone
            assert (r.segment, r.range_lo, r.range_hi, r.pattern) == (None, None, None, None)


def test_filled_details_are_consistent(all_flags, night):
    """Whatever a detector fills makes sense together: a known site, a window inside the night (its
    end after its start), a range inside its segment."""
    sites = {key for key, *_ in SITES.values()}
    midnight = dt.datetime.combine(DAY, dt.time(0), tzinfo=LOCAL).timestamp()
    for r in all_flags.collect():
        assert r.site_key is None or r.site_key in sites, r
        assert (r.window_start is None) == (r.window_end is None), r
        if r.window_start is not None:  # instants: compared as seconds since the epoch
            assert midnight <= r.window_start.timestamp() <= r.window_end.timestamp() <= midnight + 86400, r
        if r.segment is not None:
            assert r.range_lo.startswith(f"+86{r.segment}") and r.range_hi.startswith(f"+86{r.segment}"), r
            assert r.range_lo <= r.range_hi and r.pattern, r
