"""Low-and-slow call rooms: a few ordinary phones in one flat, calling a leaked list of residents.

A room of 6-10 ordinary handsets, with SIMs bought from residents (so each has a normal history
of calls with its contacts), places only 20-45 calls a day per SIM at a person's pace to numbers
scattered over every segment: no shared IMEI, no regular gaps, no sequence, below every per-SIM
volume threshold of `goip` and `sequential`. What gives it away is the group: several SIMs living
at one site whose outgoing calls go to *strangers* (no contact in either direction in the history
days, nor earlier tonight), who are almost never called back, whose answered calls are *bimodal*
(the resident hangs up within seconds, or a victim talks for many minutes), and who call the same
residents (one list dealt out among them, tonight or on the days before).

Looked at: outgoing voice calls to mobiles (+861…). A SIM is a room member when, tonight:

| threshold            | value | the room                         | keeps out                                      |
|----------------------|-------|----------------------------------|------------------------------------------------|
| `min_history_days`   | 1     | -                                | without an earlier day every number is a       |
|                      |       |                                  | stranger: friends, a call centre's debtors     |
| `min_calls`          | 15    | 20-45 calls a day per SIM        | a resident's few calls, a phone shop's 1-3     |
|                      |       |                                  | test calls per new SIM; the shares below need  |
|                      |       |                                  | a dozen calls to mean anything                 |
| `min_home_share`     | 0.6   | a flat: ~85 % of its events at 1 | couriers (8-15 sites a day), estate agents     |
|                      |       | site (the rest via the next mast)| (a different site every hour)                  |
| `min_stranger_share` | 0.8   | ~100 % (a leaked list)           | residents (mostly their contacts), the debt    |
|                      |       |                                  | collector once its debtors were called before  |
| `max_callback_ratio` | 0.1   | <= 2 % of callees call back      | couriers 20-40 % (estate agents, 5-10 %, and   |
|                      |       | (0.1: 2 of 20 callees still in)  | debt collectors fail the other rows)           |
| `hangup_s`           | 20    | a hang-up: 2-15 s                | estate agents' talks start at 15 s: a few      |
| `long_call_s`        | 300   | a victim: 300-2400 s             | ~30 % of debt talks (60-900 s) fall short of   |
|                      |       |                                  | it (at 180 s only ~14 %: too few to tell)      |
| `max_middle_share`   | 0.2   | none between the two ends        | estate agents (15-120 s: nearly all between),  |
|                      |       |                                  | debt collection (60-900 s: ~30 % between)      |
| `min_hangup_share`   | 0.3   | ~75 % of answered calls          | debt collection and estate agents (hardly any  |
|                      |       | (7 answered: 99 % have 3+)       | talk of a few seconds)                         |

(shares of its calls; the call-back ratio: numbers that rang or texted it after it called them,
over its distinct callees; the bimodality: over its answered calls, duration > 0.) One end is not
required per SIM: a SIM with 7 answered calls has no victim on one night in eight. The talks are
what keeps a debt-collection room out on every night: on its first nights, with the debtors dealt
to whichever phone is free, most of a phone's callees are new to it, and a debtor rings back only
the phone that called first (20-35 % of debtors over 6-10 phones: ~10 % of a phone's callees), but
none of its answered calls is a hang-up and ~30 % end between the ends.

A room is a home site (where the SIM had most of its events tonight) with at least `min_sims` (4)
members — the room has 6-10, so two may miss a criterion on a slow day; estate agents never share
a site and one stranger-calling SIM is not a room — whose lists overlap: at least
`min_shared_callees` (3) of the members' strangers tonight were called by two or more members,
tonight or in the history days. Tonight alone finds a room on its first night when its SIMs share
the list's residents the same day; the history days find it from its second night even when each
resident is called by one SIM a day. Callers who merely share a site (residents of one block, two
independent call centres) call different people: a shared stranger is a coincidence among millions
of numbers, three are a list.

Score of the room (each part 0..1; every member gets it, rounded to 2 decimals):

    0.20 × min(1, members / 8)                      size
  + 0.25 × the members' calls to strangers / their calls
  + 0.20 × (1 - answered calls between the ends / answered calls)        bimodality
  + 0.20 × min(1, shared residents / 20)            overlap
  + 0.15 × max(0, 1 - call-back ratio / `max_callback_ratio`)              silence

Flags: one per member (`msisdn`), with the room's `site_key` and its first and last call tonight
(`window_start`, `window_end`); the evidence gives the room's numbers and the SIM's own. With fewer
than `min_history_days` days of history nothing is flagged and `note` says why. The history is
read only for the SIMs that already look like room members tonight (a semi-join before any pair).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from detectors.base import Detector, Night
from detectors.rules.low_slow import (
    ENDINGS,
    FULL_ROOM_SIMS,
    FULL_SHARED_CALLEES,
    PAIR,
    SIM_COLUMNS,
    W_BIMODAL,
    W_OVERLAP,
    W_SILENCE,
    W_SIZE,
    W_STRANGERS,
    _duration,
)
from detectors.rules.sequential import MOBILE_CALLEE


class LowSlowRoom(Detector):
    """Flags the SIMs (msisdn) of low-and-slow call rooms; see the module docstring."""

    name = "low_slow"

    def flags(self, night: Night) -> DataFrame:
        """One flag per member of every room tonight. The suspects' and the members' pairs are a few
        SIMs' callees: each is materialised once (`localCheckpoint`), so the history semi-join and the
        room's several aggregates read them instead of re-planning tonight's shuffle in every branch."""
        s = self.settings
        suspects = (
            with_sim_profile(callee_pairs(busy_rows(night.cdr, s.min_calls), s), s)
            .where("room_like")
            .crossJoin(F.broadcast(_enough_history(night.earlier().days(), s.min_history_days)))
            .transform(lambda pairs: at_shared_sites(pairs, s.min_sims))
        ).localCheckpoint()
        contacts = earlier_contacts(night.earlier().contacts, suspects)
        members = (
            with_strangers(suspects, contacts)
            .where(F.col("n_strangers") >= s.min_stranger_share * F.col("n_calls"))
            .transform(lambda pairs: at_shared_sites(pairs, s.min_sims))
        ).localCheckpoint()
        rooms = room_stats(members, shared_callees(members, contacts), s)
        flagged = members.select(*SIM_COLUMNS, "n_strangers").distinct().join(rooms, "site_key")
        return flagged.select(
            F.lit("msisdn").alias("entity_type"),
            F.col("msisdn").alias("entity_id"),
            F.col("score"),
            evidence(s).alias("evidence"),
            F.col("site_key"),
            F.col("room_first").alias("window_start"),
            F.col("room_last").alias("window_end"),
        )

    def note(self, night: Night) -> str | None:
        """Says so when there is too little history to tell strangers from contacts."""
        have = night.earlier().days().count()
        need = self.settings.min_history_days
        if have >= need:
            return None
        return (
            f"no history yet ({have} of {need} days): strangers cannot be told from contacts without "
            f"earlier days, no room flagged"
        )


def _enough_history(days: DataFrame, min_days: int) -> DataFrame:
    """One row with no columns when `days` (one row per history day) has >= `min_days`, else none
    (cross-joined: lazy)."""
    return days.agg(F.count("*").alias("days")).where(F.col("days") >= min_days).select()


# --- tonight: one shuffle by msisdn -------------------------------------------------------------


def busy_rows(cdr: DataFrame, min_calls: int) -> DataFrame:
    """Tonight's rows of SIMs with >= `min_calls` outgoing voice calls to mobiles (`out_call`), with the
    SIM's events (`n_events`) and its events at the row's site (`site_events`). Every window and
    aggregate from here to `with_sim_profile` groups by msisdn (and more): one shuffle."""
    c = F.col
    sim = Window.partitionBy("msisdn")
    out_call = (
        (c("direction") == "out")
        & (c("service") == "voice")
        & F.coalesce(c("other_party").rlike(MOBILE_CALLEE), F.lit(False))
    )
    return (
        cdr.withColumn("out_call", out_call)
        .withColumn("sim_calls", F.sum(c("out_call").cast("int")).over(sim))
        .where(c("sim_calls") >= min_calls)
        .withColumn("n_events", F.count("*").over(sim))
        .withColumn("site_events", F.count("*").over(Window.partitionBy("msisdn", "site_key")))
        .drop("sim_calls")
    )


def callee_pairs(rows: DataFrame, s) -> DataFrame:
    """One row per SIM and number it called or heard from tonight: its calls to the number, how they
    ended (answered, hang-ups <= `hangup_s`, conversations >= `long_call_s`, in between), whether the
    first event between them was this SIM's call (`first_is_call`: no earlier contact tonight),
    whether the number rang or texted back after the SIM called it (`called_back`), and the SIM's
    events and busiest site among this pair's rows (`home`)."""
    c = F.col
    call = c("out_call")
    answered = call & (c("duration_s") > 0)
    hangup = answered & (c("duration_s") <= s.hangup_s)
    long = call & (c("duration_s") >= s.long_call_s)
    first_call = F.min(F.when(call, c("start_time")))
    return (
        rows.where(c("other_party").isNotNull())
        .groupBy(*PAIR)
        .agg(
            F.count_if(call).alias("calls"),
            F.count_if(answered).alias("answered"),
            F.count_if(hangup).alias("hangups"),
            F.count_if(long).alias("long"),
            F.count_if(answered & ~hangup & ~long).alias("middle"),
            F.min(F.struct("start_time", "record_id", "out_call"))["out_call"].alias("first_is_call"),
            first_call.alias("first_call"),
            F.max(F.when(call, c("start_time"))).alias("last_call"),
            F.coalesce(F.max(F.when(c("direction") == "in", c("start_time"))) > first_call, F.lit(False)).alias(
                "called_back"
            ),
            F.max("n_events").alias("n_events"),
            F.max(F.when(c("site_key").isNotNull(), F.struct("site_events", "site_key", "site_label"))).alias("home"),
        )
    )


def with_sim_profile(pairs: DataFrame, s) -> DataFrame:
    """Each pair with its SIM's night (`SIM_COLUMNS`): calls, callees, call-backs, how its answered
    calls ended, first and last call, home site (most events; ties: the larger key) and `room_like`:
    it lives at its home site, is hardly called back and its answered calls are bimodal (everything
    but strangers, which needs the history)."""
    c = F.col
    sim = Window.partitionBy("msisdn")
    home = F.max("home").over(sim)
    profiled = (
        pairs.withColumn("n_calls", F.sum("calls").over(sim))
        .withColumn("n_callees", F.count_if(c("calls") > 0).over(sim))
        .withColumn("n_callbacks", F.count_if(c("called_back")).over(sim))
        .select("*", *(F.sum(e).over(sim).alias(f"n_{e}") for e in ENDINGS))
        .withColumn("first_call", F.min("first_call").over(sim))
        .withColumn("last_call", F.max("last_call").over(sim))
        .withColumn("home_events", home["site_events"])
        .withColumn("site_key", home["site_key"])
        .withColumn("site_label", home["site_label"])
    )
    room_like = (
        c("site_key").isNotNull()
        & (c("home_events") >= s.min_home_share * c("n_events"))
        & (c("n_callbacks") <= s.max_callback_ratio * c("n_callees"))
        & (c("n_answered") > 0)
        & (c("n_middle") <= s.max_middle_share * c("n_answered"))
        & (c("n_hangups") >= s.min_hangup_share * c("n_answered"))
    )
    return profiled.withColumn("room_like", F.coalesce(room_like, F.lit(False)))


def sim_profiles(pairs: DataFrame, s) -> DataFrame:
    """One row per SIM of `callee_pairs` with `SIM_COLUMNS` (for a look at why a SIM is in or out)."""
    return with_sim_profile(pairs, s).select(*SIM_COLUMNS).distinct()


def at_shared_sites(pairs: DataFrame, min_sims: int) -> DataFrame:
    """The pairs of SIMs whose home site has >= `min_sims` SIMs among `pairs`."""
    sims_there = F.size(F.collect_set("msisdn").over(Window.partitionBy("site_key")))
    return pairs.withColumn("site_sims", sims_there).where(F.col("site_sims") >= min_sims).drop("site_sims")


# --- strangers and shared lists (history of the suspects only) ----------------------------------


def earlier_contacts(contacts: DataFrame, suspects: DataFrame) -> DataFrame:
    """(msisdn, other_party) for every number a suspect had any event with in the history days, and
    whether it called that number (`called_before`, for the shared list), from the daily contacts
    (`DailyHistory.contacts`) cut to the suspects first."""
    return (
        contacts.join(F.broadcast(suspects.select("msisdn").distinct()), "msisdn", "left_semi")
        .groupBy(*PAIR)
        .agg(F.max("called").alias("called_before"))
    )


def with_strangers(suspects: DataFrame, contacts: DataFrame) -> DataFrame:
    """The suspects' pairs with a call, `stranger` when the first event between them tonight was the
    SIM's call and they had no contact in the history days, and the SIM's `n_strangers`."""
    known = contacts.select(*PAIR, F.lit(True).alias("known"))
    return (
        suspects.where(F.col("calls") > 0)
        .join(known, PAIR, "left")
        .withColumn("stranger", F.col("first_is_call") & F.col("known").isNull())
        .drop("known")
        .withColumn("n_strangers", F.count_if("stranger").over(Window.partitionBy("msisdn")))
    )


def shared_callees(members: DataFrame, contacts: DataFrame) -> DataFrame:
    """site_key, n_shared: the room's strangers tonight whom 2+ of its members called, tonight or in
    the history days."""
    home = members.select("msisdn", "site_key").distinct()
    listed = members.where("stranger").select("site_key", "other_party").distinct()
    before = contacts.where("called_before").join(home, "msisdn").select("site_key", *PAIR)
    by_many = (
        members.select("site_key", *PAIR)
        .unionByName(before)
        .distinct()
        .groupBy("site_key", "other_party")
        .agg(F.count("*").alias("callers"))
        .where(F.col("callers") >= 2)
    )
    return (
        by_many.join(listed, ["site_key", "other_party"], "left_semi")
        .groupBy("site_key")
        .agg(F.count("*").alias("n_shared"))
    )


# --- the room -----------------------------------------------------------------------------------


def room_stats(members: DataFrame, shared: DataFrame, s) -> DataFrame:
    """Per room (a home site whose members' lists overlap): its size, totals, span and score, from
    its members' pairs."""
    c = F.col
    rooms = members.groupBy("site_key").agg(
        F.countDistinct("msisdn").alias("room_sims"),
        F.sum("calls").alias("room_calls"),
        F.count_if("stranger").alias("room_strangers"),
        F.count("*").alias("room_callees"),
        F.count_if("called_back").alias("room_callbacks"),
        *(F.sum(e).alias(f"room_{e}") for e in ENDINGS),
        F.min("first_call").alias("room_first"),
        F.max("last_call").alias("room_last"),
        F.min("site_label").alias("room_label"),
    )
    callback_ratio = c("room_callbacks") / c("room_callees")
    silence = (
        F.lit(1.0) if s.max_callback_ratio == 0 else F.greatest(F.lit(0.0), 1 - callback_ratio / s.max_callback_ratio)
    )
    score = (
        W_SIZE * F.least(F.lit(1.0), c("room_sims") / FULL_ROOM_SIMS)
        + W_STRANGERS * c("room_strangers") / c("room_calls")
        + W_BIMODAL * (1 - c("room_middle") / c("room_answered"))
        + W_OVERLAP * F.least(F.lit(1.0), c("n_shared") / FULL_SHARED_CALLEES)
        + W_SILENCE * silence
    )
    return (
        rooms.join(shared, "site_key")
        .where(c("n_shared") >= s.min_shared_callees)
        .withColumn("score", F.round(score, 2).cast("double"))
    )


def evidence(s) -> Column:
    """'Low-and-slow room: 8 SIMs at 锦江区012号基站 09:03–17:55, calls to 212 strangers (96 % of 221
    calls), 3 call-backs, 11 conversations of 5 minutes or more, 41 hang-ups within 20 s; 37 residents
    called by 2+ of these SIMs; this SIM: 27 calls, 26 to strangers'"""
    c = F.col
    return F.format_string(
        f"Low-and-slow room: %d SIMs at %s %s–%s, calls to %d strangers (%d %% of %d calls), %d call-back%s, "
        f"%d conversation%s of {_duration(s.long_call_s)} or more, %d hang-up%s within {s.hangup_s} s; "
        f"%d residents called by 2+ of these SIMs; this SIM: %d calls, %d to strangers",
        c("room_sims"),
        c("room_label"),
        F.date_format("room_first", "HH:mm"),
        F.date_format("room_last", "HH:mm"),
        c("room_strangers"),
        F.round(c("room_strangers") * 100 / c("room_calls")).cast("int"),
        c("room_calls"),
        c("room_callbacks"),
        _plural(c("room_callbacks")),
        c("room_long"),
        _plural(c("room_long")),
        c("room_hangups"),
        _plural(c("room_hangups")),
        c("n_shared"),
        c("n_calls"),
        c("n_strangers"),
    )


def _plural(n: Column) -> Column:
    return F.when(n == 1, F.lit("")).otherwise(F.lit("s"))
