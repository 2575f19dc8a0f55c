"""detectors.low_slow: a room of ordinary phones calling one leaked list of residents is flagged as
a group, with its site, span and evidence; a debt-collection room, moving estate agents, couriers,
residents sharing a site and their family, one stranger-calling SIM alone and a phone shop are
not; a night without history flags nothing. One hand-built night with one history day."""

import datetime as dt
import random

import pytest
from builders import LOCAL, SiteCdr, make_night
from chispa import assert_df_equality

from detectors.base import FLAG_FIELDS, Night
from detectors.low_slow import LowSlowRoom, busy_rows, callee_pairs, sim_profiles

DAY = dt.date(2026, 11, 24)
YESTERDAY = DAY - dt.timedelta(days=1)
SITES = {
    k: (k, 30.6 + i / 100, 104.0 + i / 100, f"锦江区{i:03d}号基站", "锦江区")
    for i, k in enumerate(["ROOM", "DEBT", "BLOCK", "LONE", "SHOP", "OLDHOME", *(f"ROUTE{i}" for i in range(8))])
}

ROOM = [f"+861370010{i:04d}" for i in range(6)]
DEBT = [f"+861370020{i:04d}" for i in range(6)]
AGENTS = [f"+861370030{i:04d}" for i in range(4)]
COURIERS = [f"+861370040{i:04d}" for i in range(4)]
RESIDENTS = [f"+861370050{i:04d}" for i in range(6)]
LONE = "+8613700600000"
SHOP = [f"+861370070{i:04d}" for i in range(10)]


def residents_list(rng, n):
    """`n` distinct residents' numbers scattered over many segments (a leaked list: no sequence)."""
    numbers = set()
    while len(numbers) < n:
        numbers.add(f"+86{rng.choice(['135', '136', '150', '158', '182', '186', '188'])}{rng.randint(0, 99999999):08d}")
    return sorted(numbers, key=lambda _: rng.random())


LISTED = residents_list(random.Random(11), 130)  # the room's: 0-83; the lone caller's: 100-129
FRIEND = "+8618900000000"  # the first room SIM's former owner's friend


def Cdr():
    """CDR rows at the room unless told, every SIM in its own phone."""
    return SiteCdr(SITES, "ROOM", imei=lambda msisdn: f"8689120300{msisdn[-5:]}")


def at(hour, minute=0, day=DAY):
    return dt.datetime.combine(day, dt.time(0), tzinfo=LOCAL) + dt.timedelta(hours=hour, minutes=minute)


def room(today, past):
    """6 phones in one flat; SIM i calls residents 12i..12i+23 of the list every 20 minutes (neighbours
    share 12 residents); a third answered: the 1st and 13th a victim talking 10+ minutes, the rest hang
    up in 5 s. Yesterday the SIMs still had their former owners' lives; SIM 1 also called two residents
    whom SIM 0 calls tonight. Tonight one resident rings SIM 0 back, and SIM 0 calls an old friend."""
    for i, sim in enumerate(ROOM):
        for f in range(4):
            friend = FRIEND if (i, f) == (0, 0) else f"+8618900{i:02d}{f:04d}"
            past.add(sim, friend, "out", at(18, 10 * f, YESTERDAY), seconds=90, site="OLDHOME")
            past.add(sim, friend, "in", at(20, 10 * f, YESTERDAY), seconds=60, site="OLDHOME")
        for k in range(24):
            seconds = 0 if k % 3 else (600 + 100 * i if k % 12 == 0 else 5)
            today.add(sim, LISTED[12 * i + k], "out", at(9, i + 20 * k), seconds=seconds)
    past.add(ROOM[1], LISTED[0], "out", at(10, 0, YESTERDAY), site="OLDHOME")
    past.add(ROOM[1], LISTED[1], "out", at(10, 5, YESTERDAY), seconds=8, site="OLDHOME")
    today.add(ROOM[0], LISTED[5], "in", at(12), seconds=30)
    today.add(ROOM[0], FRIEND, "out", at(19), seconds=120)


def debt_collectors(today, past):
    """An unregistered debt-collection room, as on its early nights: the debtors are dealt out to the
    phones afresh every day, so tonight each phone calls 30 debtors it never called (others did); 40 %
    answered with 1-15 minute talks; a debtor rings back the phone that called first (3 per phone)."""
    debtor = [f"+86159000{d:05d}" for d in range(90)]
    for j, sim in enumerate(DEBT):
        for d in range(25):
            past.add(sim, debtor[(15 * j + 45 + d) % 90], "out", at(9, 15 * d, YESTERDAY), seconds=240, site="DEBT")
        for d in range(30):
            called = debtor[(15 * j + d) % 90]
            seconds = 60 + 29 * d if d % 5 in (0, 2) else 0
            today.add(sim, called, "out", at(9, 15 * d + j), seconds=seconds, site="DEBT")
            if d % 10 == 0:
                today.add(sim, called, "in", at(9, 15 * d + j + 30), seconds=120, site="DEBT")


def estate_agents(today, past):
    """4 agents cold-calling a segment in ascending order, 10 calls an hour while moving between sites,
    30 % answered 30-120 s, one call-back each."""
    for a, sim in enumerate(AGENTS):
        past.add(sim, f"+8613900{a:02d}0000", "out", at(11, 0, YESTERDAY), seconds=60, site="ROUTE0")
        for k in range(30):
            callee = f"+86137{a + 1:04d}{2 * k:04d}"
            seconds = 30 + (k * 37) % 91 if k % 10 in (0, 3, 6) else 0
            today.add(sim, callee, "out", at(9, 6 * k), seconds=seconds, site=f"ROUTE{(2 * a + k // 6) % 8}")
        today.add(sim, f"+86137{a + 1:04d}0000", "in", at(15), seconds=40, site=f"ROUTE{(2 * a + 4) % 8}")


def couriers(today, past):
    """4 couriers: 40 short calls a day to customers along a route of 8 sites, 30 % ring back."""
    for c, sim in enumerate(COURIERS):
        past.add(sim, f"+8613900{c:02d}9999", "out", at(11, 0, YESTERDAY), seconds=30, site="ROUTE1")
        for k in range(40):
            customer = f"+86186{c:02d}{k:06d}"
            today.add(sim, customer, "out", at(8, 15 * k), seconds=20 + k % 40 if k % 5 else 0, site=f"ROUTE{k // 5}")
            if k % 10 in (1, 4, 7):
                today.add(sim, customer, "in", at(8, 15 * k + 5), seconds=15, site=f"ROUTE{k // 5}")


def block_residents(today, past):
    """6 residents of one block: mostly calls with their family (the same 10 numbers for all) and own
    friends, known from yesterday; short or long, never called back tonight; 2 new numbers each."""
    family = [f"+8615800{n:06d}" for n in range(10)]
    for r, sim in enumerate(RESIDENTS):
        friends = [f"+8615801{r:02d}{n:04d}" for n in range(5)]
        for n, number in enumerate(family + friends):
            past.add(sim, number, "in" if n % 2 else "out", at(19, n, YESTERDAY), seconds=200, site="BLOCK")
        for k in range(20):
            number = (family + friends)[k % 15] if k < 18 else f"+8615802{r:02d}{k:04d}"
            today.add(
                sim, number, "out", at(8, 30 * k + r), seconds=(5 if k % 4 == 1 else 700) if k % 2 else 0, site="BLOCK"
            )


def lone_caller(today, past):
    """One SIM behaving like a room member, alone at its site."""
    past.add(LONE, "+8618911112222", "out", at(19, 0, YESTERDAY), seconds=100, site="LONE")
    for k in range(30):
        seconds = 0 if k % 3 else (900 if k % 12 == 0 else 6)
        today.add(LONE, LISTED[100 + k], "out", at(9, 15 * k), seconds=seconds, site="LONE")


def phone_shop(today):
    """10 new SIMs activated at a shop, 2 test calls each."""
    for s, sim in enumerate(SHOP):
        for k in range(2):
            today.add(sim, f"+861380013{s:02d}{k:02d}", "out", at(14, s + k), seconds=10, site="SHOP")


def build_night(spark):
    today, past = Cdr(), Cdr()
    room(today, past)
    debt_collectors(today, past)
    estate_agents(today, past)
    couriers(today, past)
    block_residents(today, past)
    lone_caller(today, past)
    phone_shop(today)
    return make_night(spark, DAY, today.frame(spark), past.frame(spark))


@pytest.fixture(scope="module")
def settings(test_config):
    return test_config.detectors.low_slow


@pytest.fixture(scope="module")
def night(spark):
    return build_night(spark)


@pytest.fixture(scope="module")
def flagged(night, settings):
    """{msisdn: flag row} of the night."""
    rows = LowSlowRoom(settings).flags(night).collect()
    assert all(set(FLAG_FIELDS) <= set(r.asDict()) for r in rows)
    return {r.entity_id: r for r in rows}


@pytest.fixture(scope="module")
def profiles(night, settings):
    """Every busy SIM's tonight profile (before strangers), by msisdn."""
    pairs = callee_pairs(busy_rows(night.cdr, settings.min_calls), settings)
    return {r.msisdn: r for r in sim_profiles(pairs, settings).collect()}


def test_the_room_is_flagged_as_one_group_with_its_site_and_span(spark, night, settings):
    flags = (
        LowSlowRoom(settings)
        .flags(night)
        .select("entity_type", "entity_id", "score", "site_key", "window_start", "window_end")
    )
    expected = spark.createDataFrame(
        [("msisdn", sim, 0.93, "ROOM", at(9), at(19)) for sim in ROOM],
        "entity_type string, entity_id string, score double, site_key string, window_start timestamp, "
        "window_end timestamp",
    )
    assert_df_equality(flags, expected, ignore_row_order=True, ignore_nullable=True)


def test_evidence_gives_the_rooms_numbers_and_the_sims_own(flagged):
    assert flagged[ROOM[0]].evidence == (
        "Low-and-slow room: 6 SIMs at 锦江区000号基站 09:00–19:00, calls to 144 strangers (99 % of 145 calls), "
        "1 call-back, 12 conversations of 5 minutes or more, 36 hang-ups within 20 s; 62 residents called by "
        "2+ of these SIMs; this SIM: 25 calls, 24 to strangers"
    )
    assert flagged[ROOM[1]].evidence.endswith("this SIM: 24 calls, 24 to strangers")
    assert len({r.evidence.split(";")[0] for r in flagged.values()}) == 1, "one room, one description"


def test_only_the_rooms_sims_are_flagged(flagged):
    assert set(flagged) == set(ROOM)


def test_debt_collectors_are_kept_out_by_their_talks(profiles, flagged):
    """Strangers, few call-backs and one site, as a room: but no answered call is a hang-up, and a third
    of them end between a hang-up and a conversation."""
    for sim in DEBT:
        debt = profiles[sim]
        assert (debt.n_calls, debt.n_callees, debt.n_callbacks, debt.home_events) == (30, 30, 3, 33)
        assert debt.n_hangups == 0 and debt.n_middle == 4 and debt.n_answered == 12
        assert not debt.room_like
    assert not set(DEBT) & set(flagged)


def test_without_the_talk_lengths_the_debt_collectors_would_be_a_room(night, settings):
    """What the two duration thresholds are for (on a collector's early nights)."""
    blind = settings.model_copy(update={"max_middle_share": 1.0, "min_hangup_share": 0.0})
    assert {r.entity_id for r in LowSlowRoom(blind).flags(night).collect()} == {*ROOM, *DEBT}


def test_moving_agents_and_couriers_live_at_no_site(profiles):
    for sim in AGENTS + COURIERS:
        assert profiles[sim].home_events < 0.6 * profiles[sim].n_events and not profiles[sim].room_like
    assert all(profiles[sim].n_middle == profiles[sim].n_answered for sim in AGENTS), "15-120 s: between the ends"
    assert all(profiles[sim].n_callbacks >= 12 for sim in COURIERS)


def test_residents_look_like_a_room_tonight_but_call_their_contacts(profiles, flagged):
    """Bimodal, never called back, many at one site, sharing numbers: only the strangers tell them apart."""
    assert all(profiles[sim].room_like for sim in RESIDENTS)
    assert not set(RESIDENTS) & set(flagged)


def test_a_lone_stranger_caller_and_a_phone_shop_are_not_rooms(profiles, flagged):
    assert profiles[LONE].room_like and LONE not in flagged, "one SIM: below min_sims"
    assert not set(SHOP) & set(profiles), "2 calls each: below min_calls"


def test_without_history_nothing_is_flagged_and_note_says_why(night, settings):
    bare = Night(DAY, night.cdr, night.history.limit(0), night.whitelist)
    detector = LowSlowRoom(settings)
    assert detector.flags(bare).count() == 0
    assert detector.note(bare) == (
        "no history yet (0 of 1 days): strangers cannot be told from contacts without earlier days, no room flagged"
    )
    assert detector.note(night) is None


def test_fewer_members_than_min_sims_is_no_room(night, settings):
    stricter = settings.model_copy(update={"min_sims": 7})
    assert LowSlowRoom(stricter).flags(night).count() == 0


def test_flags_are_deterministic(night, settings, flagged):
    again = LowSlowRoom(settings).flags(night).orderBy("entity_id").collect()
    assert [(r.entity_id, r.score, r.evidence) for r in again] == [
        (r.entity_id, r.score, r.evidence) for r in sorted(flagged.values(), key=lambda r: r.entity_id)
    ]
