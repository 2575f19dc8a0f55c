"""The dens step's graph, clustering and description on tiny hand-built nights."""

import datetime as dt
import io
import random

import pytest
from pyspark.sql import functions as F

from detectors.base import Night
from jobs.dens import find_dens
from jobs.dens.cluster import den_groups, suspect_graph
from jobs.dens.core import active_hours, dialling_pattern, evidence, weighted_position
from jobs.dens.graph import cap_degree, collect_edges, strong_edges, suspect_edges
from jobs.render import den_table
from schemas.tables import FLAG

DAY = dt.date(2026, 11, 24)
CDR = (
    "msisdn string, other_party string, direction string, service string, start_time string, "
    "duration_s int, imsi string, imei string, carrier string, cell_id string, site_key string, "
    "site_lat double, site_lon double, site_label string, district string"
)
BOX = "86000000000001"
A, B, C, FAR = "+8613300000001", "+8613300000002", "+8613300000003", "+8613800000009"


def flag(detector, entity_type, entity_id, score, **details):
    """A row of lake/flags (FLAG's columns); `details` are its typed detail columns, None if not given."""
    values = dict(
        detector=detector, entity_type=entity_type, entity_id=entity_id, score=score, evidence="", date=DAY, **details
    )
    return tuple(values.get(name) for name in FLAG.names)


def at(hour, minute=0):
    return f"{DAY} {hour:02d}:{minute:02d}:00"  # local time of the session, cast below


def row(msisdn, callee, hour, minute=0, imei=None, site="S1"):
    return (
        msisdn,
        callee,
        "out",
        "voice",
        at(hour, minute),
        0,
        f"i{msisdn[-4:]}",
        imei or f"h{msisdn[-4:]}",
        "cm",
        f"c-{site}",
        site,
        30.6,
        104.0,
        f"{site}基站",
        "锦江区",
    )


@pytest.fixture(scope="module")
def night(spark):
    """A box (A, B) and an operator (C) at S1, a lone flagged SIM far away, and the residents."""
    rows = []
    for k in range(6):  # A and B: the box, at S1, dialling 139-1234 in the same hours
        rows.append(row(A, f"+86139123400{k:02d}", 9, k, imei=BOX))
        rows.append(row(B, f"+86139123410{k:02d}", 9, k, imei=BOX))
    for h in (9, 10, 11):  # C: own phone, same site and hours, same segment
        rows.append(row(C, f"+86139123420{h:02d}", h))
        rows.append(row(C, A, h, 30))  # and calls A
    rows += [row(A, "+8613912340100", 10), row(A, "+8613912340101", 11)]
    rows.append(row(FAR, "+8615000000000", 3, site="S9"))  # flagged, alone elsewhere
    flags = [
        flag("goip", "msisdn", A, 0.9),
        flag("goip", "imei", BOX, 0.9),
        flag(
            "sequential",
            "msisdn",
            C,
            0.8,
            segment="1391234",
            range_lo="+8613912342009",
            range_hi="+8613912342011",
            pattern="in ascending order by this SIM alone",
        ),
        flag("goip", "msisdn", FAR, 0.7),
    ]
    victim, hotline, brief = "+8613999990001", "+8613999990002", "+8613999990003"
    at_s1 = ("cm", "c-S1", "S1", 30.6, 104.0, "S1基站", "锦江区")
    rows += [
        (B, victim, "out", "voice", at(14, 5), 400, "iB", BOX, *at_s1),  # talked 400 s: a victim
        (B, victim, "out", "voice", at(15, 0), 0, "iB", BOX, *at_s1),  # rang again, unanswered
        (
            victim,
            "+8613000000000",
            "out",
            "voice",
            at(19),
            60,
            "iv",
            "hv",  # lives at S7
            "cu",
            "c-S7",
            "S7",
            30.7,
            104.1,
            "S7基站",
            "成华区",
        ),
        (A, hotline, "out", "voice", at(14, 10), 900, "iA", BOX, *at_s1),  # whitelisted
        (A, brief, "out", "voice", at(14, 20), 30, "iA", BOX, *at_s1),
    ]  # too short to be at risk
    cdr = spark.createDataFrame(rows, CDR).withColumn("start_time", F.col("start_time").cast("timestamp"))
    whitelist = spark.createDataFrame([(hotline,)], "number string")
    return Night(DAY, cdr, cdr, whitelist), spark.createDataFrame(flags, FLAG.spark()), victim


@pytest.fixture(scope="module")
def edges(night):
    before_the_victims = night[0].cdr.where(F.hour("start_time") < 14)
    frame = suspect_edges(before_the_victims, night[1])
    return {(r.a, r.b): r.asDict() for r in frame.collect()}


@pytest.mark.slow
def test_the_step_finds_one_den_with_its_victim(night, test_config):
    rows, victims, _, warnings = find_dens(test_config, night[0], night[1], earlier=[])
    assert warnings == []
    assert len(rows) == 1
    den = rows[0]
    assert den["den_id"] == "D20261124-01" and den["numbers"] == [A, B, C] and den["imeis"][0] == BOX
    assert den["district"] == "锦江区" and den["lat"] == pytest.approx(30.6) and den["radius_m"] == 100.0
    assert den["signals"] == ["goip", "sequential"] and den["n_victims"] == 1
    assert den["active_hours"].startswith("09-12")
    assert "3 SIMs (cm 3) and 1 GOIP device and 2 handsets at S1基站" in den["evidence"]
    # C's sequential flag, read from its columns (its evidence text is empty here)
    assert ", dialling 139-1234-2009…2011 in ascending order by this SIM alone; " in den["evidence"]
    (v,) = victims.collect()
    assert (v.number, v.district, v.den_id, v.longest_call_s, v.n_calls) == (night[2], "成华区", "D20261124-01", 400, 2)


def test_sims_in_a_flagged_device_are_linked_to_each_other(edges):
    assert edges[(A, B)]["shared_id"] == 1.0  # B is unflagged, tied by the box
    # B's one site-hour is A's too: overlap 1, damped by min(1, 1/3) for a single shared hour
    assert edges[(A, B)]["colocation"] == pytest.approx(1 / 3)


def test_colocation_and_segment_weights_are_overlaps_damped_by_count(edges):
    ac = edges[(A, C)]
    # A: S1 at 9, 10, 11; C: S1 at 9, 10, 11 -> 3 shared of 3
    assert ac["colocation"] == pytest.approx(1.0)
    # segment 1391234 in window 3 (9-12h): both, one shared key of one -> 1 x min(1, 1/3)
    assert ac["segment"] == pytest.approx(1 / 3)
    assert ac["mutual_call"] == 0.5
    assert ac["weight"] == pytest.approx(ac["colocation"] + ac["segment"] + ac["mutual_call"] + ac["callees"])


def test_a_lone_flagged_sim_has_no_edge(edges):
    assert not any(FAR in pair for pair in edges)


def test_clusters_are_components_and_the_same_every_run():
    edges = [
        ("a1", "a2", 2.0),
        ("a2", "a3", 1.0),
        ("b1", "b2", 2.0),
        ("b2", "b3", 2.0),
        ("a3", "b1", 0.2),
        ("imei:x", "a1", 1.0),
    ]
    graph = suspect_graph(edges, ["a1", "z"], min_edge_weight=0.5)
    groups = den_groups(graph, seed=7, min_sims=3)
    assert groups == [["a1", "a2", "a3", "imei:x"], ["b1", "b2", "b3"]]
    assert den_groups(suspect_graph(list(reversed(edges)), ["z", "a1"], 0.5), seed=7, min_sims=3) == groups


def test_louvain_splits_two_dens_joined_by_one_link_deterministically():
    def clique(prefix):
        names = [f"{prefix}{i:02d}" for i in range(12)]
        return [(x, y, 2.0) for i, x in enumerate(names) for y in names[i + 1 :]]

    edges = clique("p") + clique("q") + [("p00", "q00", 0.6)]
    runs = [den_groups(suspect_graph(edges, min_edge_weight=0.5), seed=7, split_min_nodes=20) for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]
    assert [g[0] for g in runs[0]] == ["p00", "q00"] and all(len(g) == 12 for g in runs[0])


def test_position_is_weighted_by_calls_with_a_floor_on_the_radius():
    lat, lon, radius = weighted_position([30.0, 30.01], [104.0, 104.0], [3, 1])
    assert lat == pytest.approx(30.0025) and lon == pytest.approx(104.0)
    # 0.0025 deg ~ 278 m from the busy site, 0.0075 deg ~ 834 m from the other: mean 417 m
    assert radius == pytest.approx(0.75 * 278 + 0.25 * 834, rel=0.01)
    assert weighted_position([30.0], [104.0], [5])[2] == 100.0


def test_active_hours_are_merged_ranges():
    assert active_hours({9: 50, 10: 60, 11: 40, 14: 55, 15: 50, 16: 1, 17: 45}) == "09-12;14-16;17-18"


@pytest.mark.slow
def test_a_night_without_flags_has_no_dens(night, test_config):
    no_flags = night[1].limit(0)
    rows, victims, _, _ = find_dens(test_config, night[0], no_flags, earlier=[])
    assert rows == [] and victims.count() == 0


def test_evidence_reads_like_a_lead():
    text = evidence(
        sims={"+861": "cm", "+862": "cm", "+863": "cu"},
        n_boxes=1,
        n_handsets=0,
        main_site="锦江区023号基站",
        radius_m=180.0,
        hours="09-12;14-18",
        n_calls=3442,
        n_sms=0,
        n_callees=3310,
        top_segment="1391234",
        n_victims=4,
        min_call_s=180,
    )
    assert text == (
        "3 SIMs (cm 2, cu 1) and 1 GOIP device at 锦江区023号基站 (±180 m), 09-12;14-18, "
        "3,442 calls to 3,310 numbers, most to 139-1234-xxxx; 4 residents talked over 3 min"
    )


def test_evidence_names_the_dialling_pattern_of_the_sequential_flag():
    pattern = dialling_pattern(
        "1391234", "+8613912340000", "+8613912340411", "in ascending order round-robin by 13 SIMs"
    )
    assert pattern == "139-1234-0000…0411 in ascending order round-robin by 13 SIMs"
    assert dialling_pattern(None, None, None, None) is None  # a goip or congestion flag
    assert dialling_pattern("1391234", "+8613912340000", "+8613912340411", None) is None
    text = evidence(
        sims={"+861": "cm"},
        n_boxes=0,
        n_handsets=1,
        main_site=None,
        radius_m=None,
        hours="09-12",
        n_calls=400,
        n_callees=398,
        top_segment="1391234",
        n_victims=0,
        min_call_s=180,
        pattern=pattern,
    )
    assert text == (
        "1 SIM (cm 1) and 1 handset, 09-12, 400 calls to 398 numbers, dialling 139-1234-0000…0411 "
        "in ascending order round-robin by 13 SIMs; 0 residents talked over 3 min"
    )


# --- determinism and the bound --------------------------------------------------------------------


def test_weights_that_differ_in_the_last_bits_give_the_same_graph():
    # 0.1 + 0.2 + 0.3 summed in two orders: 0.6000000000000001 and 0.6
    one, other = (0.1 + 0.2) + 0.3, 0.1 + (0.2 + 0.3)
    assert one != other
    g1, g2 = suspect_graph([("a", "b", one)], (), 0.6), suspect_graph([("a", "b", other)], (), 0.6)
    assert list(g1.edges(data=True)) == list(g2.edges(data=True)) == [("a", "b", {"weight": 0.6})]


EDGES = "a string, b string, weight double"


def test_the_degree_cap_keeps_each_nodes_heaviest_links(spark):
    # a hub with 10 spokes (weights 1.00..1.09) and a clique of 6 (weight 2): max_degree 3
    spokes = [("hub", f"s{i}", 1.0 + i / 100) for i in range(10)]
    names = [f"c{i}" for i in range(6)]
    clique = [(x, y, 2.0) for i, x in enumerate(names) for y in names[i + 1 :]]
    edges = spark.createDataFrame(spokes + clique, EDGES)
    kept = {(r.a, r.b): r.weight for r in cap_degree(edges, 3).collect()}
    n_nodes = 11 + 6
    assert len(kept) <= 3 * n_nodes
    # every spoke is the heaviest (only) link of its spoke node: all 10 stay, although the hub keeps 3
    assert {b for a, b in kept if a == "hub"} == {f"s{i}" for i in range(10)}
    # in the clique (all ties), each node keeps its links to the 3 lowest other ids
    clique_kept = sorted(p for p in kept if p[0].startswith("c"))
    assert clique_kept == [
        ("c0", "c1"),
        ("c0", "c2"),
        ("c0", "c3"),
        ("c0", "c4"),
        ("c0", "c5"),
        ("c1", "c2"),
        ("c1", "c3"),
        ("c1", "c4"),
        ("c1", "c5"),
        ("c2", "c3"),
        ("c2", "c4"),
        ("c2", "c5"),
    ]


def test_a_big_star_and_clique_are_bounded_and_the_heaviest_edges_survive(spark):
    # two hubs sharing 60 spokes, plus a 30-clique with uneven weights: max_degree 5
    spokes = [(h, f"s{i:02d}", 0.5 + (i % 7) / 10) for h in ("h1", "h2") for i in range(60)]
    names = [f"c{i:02d}" for i in range(30)]
    clique = [
        (x, y, 1.0 + ((i * 31 + j) % 11) / 100)
        for i, x in enumerate(names)
        for j, y in enumerate(names[i + 1 :], start=i + 1)
    ]
    everything = spokes + clique
    kept = {(r.a, r.b) for r in cap_degree(spark.createDataFrame(everything, EDGES), 5).collect()}
    n_nodes = 2 + 60 + 30
    assert len(kept) <= 5 * n_nodes < len(everything)
    # the reference: each node's 5 heaviest links (ties: the other end's id), united
    expected = set()
    for node in {n for a, b, _ in everything for n in (a, b)}:
        mine = sorted((-w, b if a == node else a, (a, b)) for a, b, w in everything if node in (a, b))
        expected |= {pair for *_, pair in mine[:5]}
    assert kept == expected
    assert all((h, f"s{i:02d}") in kept for h in ("h1", "h2") for i in range(60))  # a spoke's own 2 links stay
    assert sum(a.startswith("c") for a, _ in kept) <= 5 * 30 < len(clique)


def test_collect_edges_thresholds_caps_and_warns(spark):
    rows = [
        ("a", "b", 0.4999999),
        ("a", "c", 0.4999999999999),
        ("a", "d", 0.9),
        ("b", "c", 0.7),
        ("c", "d", 0.7),
        ("b", "d", 0.6),
    ]
    edges = spark.createDataFrame(rows, EDGES)
    strong = {(r.a, r.b): r.weight for r in strong_edges(edges, 0.5).collect()}
    assert strong == {("a", "c"): 0.5, ("a", "d"): 0.9, ("b", "c"): 0.7, ("c", "d"): 0.7, ("b", "d"): 0.6}
    kept, warnings = collect_edges(edges, min_edge_weight=0.5, max_degree=40, max_edges=10)
    assert kept == [("a", "d", 0.9), ("b", "c", 0.7), ("c", "d", 0.7), ("b", "d", 0.6), ("a", "c", 0.5)]
    assert warnings == []
    kept, warnings = collect_edges(edges, min_edge_weight=0.5, max_degree=40, max_edges=3)
    assert kept == [("a", "d", 0.9), ("b", "c", 0.7), ("c", "d", 0.7)]  # heaviest first, ties by (a, b)
    assert len(warnings) == 1 and "5 links" in warnings[0] and "only the 3 heaviest" in warnings[0]


def test_the_collected_edges_do_not_depend_on_the_partitioning(spark):
    rng = random.Random(3)
    rows = [
        (f"n{rng.randrange(40):02d}", f"m{rng.randrange(40):02d}", rng.choice([0.5, 0.7, 1.0, 1.3])) for _ in range(400)
    ]
    rows = list({(a, b): (a, b, w) for a, b, w in rows}.values())
    results, before = [], spark.conf.get("spark.sql.shuffle.partitions")
    try:
        for parts in (1, 3, 7):
            spark.conf.set("spark.sql.shuffle.partitions", str(parts + 1))
            frame = spark.createDataFrame(rows, EDGES).repartition(parts)
            results.append(collect_edges(frame, min_edge_weight=0.6, max_degree=4, max_edges=50))
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", before)
    assert results[0] == results[1] == results[2] and len(results[0][0]) == 50 and results[0][1]


def test_site_names_with_markup_are_printed_as_text():
    from rich.console import Console

    den = dict(
        den_id="D20261124-01",
        priority="high",
        score=0.9,
        district="锦江[/]区",
        numbers=[A, B],
        imeis=[BOX],
        n_calls=5,
        n_victims=0,
        first_seen=DAY,
        last_seen=DAY,
        nights_active=1,
        evidence="2 SIMs at [bold]S1[/]基站 (±100 m) [/]",
    )
    out = io.StringIO()
    Console(file=out, width=400).print(den_table([den], "dens [/] -> /lake/[x]"))
    text = out.getvalue()
    assert "锦江[/]区" in text and "[bold]S1[/]基站" in text and "dens [/] -> /lake/[x]" in text


def test_a_shared_segment_without_being_together_is_no_link(spark):
    """Estate agents each cold-calling one segment from wherever they walk: segment links, no place."""
    rows = []
    agents = ["+8613300000011", "+8613300000012", "+8613300000013"]
    for i, agent in enumerate(agents):
        for h in (9, 12, 15):  # three 3-hour windows on one segment: a full segment link
            for k in range(4):
                rows.append(row(agent, f"+861391234{i}{h:02d}{k}", h, 10 * k, site=f"W{i}{h}"))
    cdr = spark.createDataFrame(rows, CDR).withColumn("start_time", F.col("start_time").cast("timestamp"))
    flags = spark.createDataFrame([flag("sequential", "msisdn", a, 0.9) for a in agents], FLAG.spark())
    edges = suspect_edges(cdr, flags)
    assert {r.segment for r in edges.collect()} == {1.0} and edges.count() == 3  # they do share the segment
    assert strong_edges(edges, 0.5, min_together=0.2).count() == 0
    kept, _ = collect_edges(edges, min_edge_weight=0.5, max_degree=40, max_edges=10, min_together=0.2)
    assert kept == []


def test_the_graph_has_no_device_nodes(edges):
    assert not any(node.startswith("imei:") for pair in edges for node in pair)


@pytest.mark.slow
def test_a_box_inventing_an_imei_per_call_is_one_den(spark, test_config):
    """Every call of 4 SIMs shows a new IMEI, each flagged as a device: the den does not dissolve into
    one-SIM stars, and the graph has only the SIMs as nodes."""
    sims = [f"+861330000010{i}" for i in range(4)]
    rows, flags = [], []
    for i, sim in enumerate(sims):  # each flag names the site, as goip's do (the SIM's main site)
        flags.append(flag("goip", "msisdn", sim, 0.9, site_key="S1"))
        for h in (9, 10, 11):
            for k in range(10):
                device = f"8600000{i}{h:02d}{k:02d}0001"
                rows.append(row(sim, f"+8613912{i}{h:02d}{k:03d}", h, 5 * k, imei=device))
                flags.append(flag("goip", "imei", device, 0.9, site_key="S1"))
    cdr = spark.createDataFrame(rows, CDR).withColumn("start_time", F.col("start_time").cast("timestamp"))
    night = Night(DAY, cdr, cdr, spark.createDataFrame([], "number string"))
    found = find_dens(test_config, night, spark.createDataFrame(flags, FLAG.spark()), earlier=[])
    assert [den["numbers"] for den in found.rows] == [sims]
    assert (
        len(found.rows[0]["imeis"]) == 120 and "120 IMEIs (a new IMEI on almost every call" in found.rows[0]["evidence"]
    )


def test_a_flagged_resident_of_a_dens_block_is_not_linked_to_it_by_the_place_alone(spark):
    """An estate agent lives by a box's site (there every hour the box works, ordinary calls) and is
    flagged for a sweep he made across town: sharing the box's hours at its site is not working with
    it. Operators of a room, flagged at the room's site, stay linked by the place they share."""
    box, resident = ["+8613300000021", "+8613300000022"], "+8613300000029"
    room = ["+8613300000031", "+8613300000032", "+8613300000033"]
    rows = []
    for h in (9, 10, 11):
        for i, sim in enumerate(box):
            rows += [row(sim, f"+861391234{i}{h:02d}{k}", h, 10 * k, imei="86000000000021") for k in range(4)]
        rows.append(row(resident, "+8615000000001", h, 30))  # calls home, at the box's site
        rows += [row(sim, f"+86150{i}{h:02d}00001", h, 20, site="S2") for i, sim in enumerate(room)]
    flags = [flag("goip", "msisdn", sim, 0.9, site_key="S1") for sim in box]
    flags += [
        flag("goip", "imei", "86000000000021", 0.9, site_key="S1"),
        flag("sequential", "msisdn", resident, 0.86, site_key="S5"),
    ]
    flags += [flag("low_slow", "msisdn", sim, 0.7, site_key="S2") for sim in room]
    cdr = spark.createDataFrame(rows, CDR).withColumn("start_time", F.col("start_time").cast("timestamp"))
    edges = {(r.a, r.b): r for r in suspect_edges(cdr, spark.createDataFrame(flags, FLAG.spark())).collect()}
    for sim in box:
        pair = tuple(sorted((sim, resident)))
        assert pair not in edges or (edges[pair].colocation == 0.0 and edges[pair].weight == 0.0)
    assert edges[tuple(box)].shared_id == 1.0 and edges[tuple(box)].colocation == pytest.approx(1.0)
    room_pairs = [(a, b) for a in room for b in room if a < b]
    assert all(edges[p].colocation == pytest.approx(1.0) for p in room_pairs)  # only the place, flagged there
    kept, _ = collect_edges(
        suspect_edges(cdr, spark.createDataFrame(flags, FLAG.spark())),
        min_edge_weight=0.5,
        max_degree=40,
        max_edges=100,
        min_together=0.2,
    )
    linked = {n for a, b, _ in kept for n in (a, b)}
    assert resident not in linked and set(box) <= linked and set(room) <= linked
