"""Stable den ids: a den keeps its id across a move and a full SIM swap; a new den gets a new one."""

import datetime as dt

from jobs.dens.identity import DenSketch, assign_ids

DAY = dt.date(2026, 11, 23)
SETTINGS = dict(min_overlap=0.3, max_distance_m=1500)


def earlier(den_id, numbers, imeis, lat, lon, segments=(), nights=3):
    return DenSketch(
        key=den_id,
        numbers=frozenset(numbers),
        imeis=frozenset(imeis),
        segments=frozenset(segments),
        lat=lat,
        lon=lon,
        den_id=den_id,
        first_seen=dt.date(2026, 11, 20),
        nights_active=nights,
    )


def tonight(key, numbers, imeis, lat, lon, segments=(), score=0.9):
    return DenSketch(
        key=key,
        numbers=frozenset(numbers),
        imeis=frozenset(imeis),
        segments=frozenset(segments),
        lat=lat,
        lon=lon,
        score=score,
    )


BOX = earlier("D20261120-01", ["+861", "+862"], ["BOX1"], 30.5232, 104.1861)
ROOM = earlier("D20261120-02", ["+863", "+864"], ["H1", "H2"], 30.5985, 103.9349)


def test_a_box_that_moves_next_to_another_den_keeps_its_own_id():
    moved = tonight("k001", ["+865", "+866"], ["BOX1"], 30.6055, 103.9257)  # new SIMs, 1.1 km from ROOM
    room = tonight("k002", ["+863", "+864"], ["H1", "H2"], 30.5985, 103.9349)
    ids = assign_ids(DAY, [moved, room], [BOX, ROOM], **SETTINGS)
    assert ids["k001"] == ("D20261120-01", dt.date(2026, 11, 20), 4)
    assert ids["k002"][0] == "D20261120-02"


def test_a_full_sim_swap_at_the_same_place_keeps_the_id():
    swapped = tonight("k001", ["+867", "+868", "+869"], ["NEW1", "NEW2"], 30.5232, 104.1861)
    assert assign_ids(DAY, [swapped], [BOX], **SETTINGS)["k001"][0] == "D20261120-01"


def test_a_swap_with_a_kept_number_list_is_matched_by_segment():
    old = earlier("D20261120-03", ["+861"], ["X"], 30.0, 104.0, segments=["1391234", "1374243"])
    new = tonight("k001", ["+869"], ["Y"], 30.2, 104.2, segments=["1391234"])
    assert assign_ids(DAY, [new], [old], **SETTINGS)["k001"][0] == "D20261120-03"


def test_new_dens_get_new_ids_by_score_and_the_same_ids_every_run():
    far = [
        tonight("k001", ["+871"], ["Z1"], 31.0, 105.0, score=0.7),
        tonight("k002", ["+872"], ["Z2"], 31.5, 105.5, score=0.95),
    ]
    ids = assign_ids(DAY, far, [BOX, ROOM], **SETTINGS)
    assert ids == {"k002": ("D20261123-01", DAY, 1), "k001": ("D20261123-02", DAY, 1)}
    assert assign_ids(DAY, list(reversed(far)), [ROOM, BOX], **SETTINGS) == ids
