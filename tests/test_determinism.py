"""The same input gives the same dens and the same outbox, byte for byte, whatever PYTHONHASHSEED
(set iteration order) and spark.sql.shuffle.partitions (collect and summation order)."""

import datetime as dt
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jobs.dens.cluster import den_groups, suspect_graph

ROOT = Path(__file__).resolve().parents[1]
HASH_SEEDS = range(6)
EXPORT_HASH_SEEDS = range(3)  # a process each: the clustering, where the seed mattered, is checked under all


def fuzzy_city(seed=11, groups=4, size=15, trios=40):
    """Edges of one big fuzzy component (`groups` loose groups of `size` SIMs with many links
    across, so Louvain has choices to make) and `trios` small dens with a device each, so that the
    big component is less than half the graph: networkx then iterates a subgraph view's node set,
    whose order follows PYTHONHASHSEED (the bug)."""
    rng = random.Random(seed)
    names = [f"+86133{g}{i:05d}" for g in range(groups) for i in range(size)]
    edges = []
    for i, x in enumerate(names):
        for y in names[i + 1 :]:
            if rng.random() < (0.5 if x[6] == y[6] else 0.12):
                edges.append((x, y, round(rng.uniform(0.5, 2.0), 3)))
    for c in range(trios):
        trio = [f"+86150{c:03d}{k:04d}" for k in range(3)]
        edges += [(trio[0], trio[1], 1.0), (trio[1], trio[2], 1.0), (f"imei:{c:014d}", trio[0], 1.0)]
    return edges


def groups_of(edges, nodes=()):
    return den_groups(suspect_graph(edges, nodes, 0.5), seed=7, split_min_nodes=20, min_sims=3)


def test_clusters_do_not_depend_on_the_order_of_edges_or_nodes():
    edges = fuzzy_city()
    nodes = sorted({n for a, b, _ in edges for n in (a, b)}) + ["+8619900000000"]
    expected = groups_of(edges, nodes)
    big = [g for g in expected if g[0].startswith("+86133")]
    assert len(big) >= 3 and sum(map(len, big)) == 60  # the big component was split by Louvain
    assert len(expected) == 40 + len(big)  # the trios are dens; the lone SIM is not
    rng = random.Random(5)
    for _ in range(5):
        shuffled = [(b, a, w) if rng.random() < 0.5 else (a, b, w) for a, b, w in edges]
        rng.shuffle(shuffled)
        order = nodes[:]
        rng.shuffle(order)
        assert groups_of(shuffled, order) == expected


_CLUSTER = """
import json, sys
from jobs.dens.cluster import den_groups, suspect_graph
edges = [tuple(e) for e in json.load(open(sys.argv[1]))]
print(json.dumps(den_groups(suspect_graph(edges, (), 0.5), seed=7, split_min_nodes=20, min_sims=3)))
"""


def test_clusters_are_the_same_under_every_hash_seed(tmp_path):
    edges = tmp_path / "edges.json"
    edges.write_text(json.dumps(fuzzy_city()))
    runs = {}
    for seed in HASH_SEEDS:
        done = subprocess.run(
            [sys.executable, "-c", _CLUSTER, str(edges)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            check=True,
        )
        runs[seed] = json.loads(done.stdout)
    assert sum(g[0].startswith("+86133") for g in runs[0]) >= 3  # Louvain did split (the part that was unstable)
    assert all(runs[seed] == runs[0] for seed in HASH_SEEDS), {s: [len(g) for g in r[:4]] for s, r in runs.items()}


# --- end to end: dens + export of one simulated night under shuffle partitions and hash seeds -------

START = dt.date(2026, 11, 10)
DAYS = 2
PARTITIONS = (4, 8, 16)
# Export under each hash seed runs in a process of its own (a JVM start each): only export, on the
# dens written in-process; the dens clustering itself is checked under every seed above.
_EXPORT = """
import sys
from jobs.cli import main
sys.exit(main(["export", *sys.argv[1:]]))
"""


@pytest.fixture(scope="module")
def detected(tmp_path_factory, spark):
    """A small simulated city (600 subscribers, 2 dens, 2 days) ingested and detected once through
    the CLI, and the first night's dens (the last night's ids look back at them)."""
    from jobs.cli import main
    from simulator import simulate

    root = tmp_path_factory.mktemp("determinism")
    simulate(root / "landing", START, DAYS, subscribers=600, dens=2, seed=5)
    argv = [
        "--landing",
        str(root / "landing"),
        "--lake",
        str(root / "lake"),
        "--outbox",
        str(root / "outbox"),
        "--set",
        "spark.master=local[2]",
        "--set",
        "spark.shuffle_partitions=2",
    ]
    for step in ("ingest", "detect"):
        for day in range(DAYS):
            assert main([step, "--date", str(START + dt.timedelta(days=day)), *argv]) == 0, step
    assert main(["dens", "--date", str(START), *argv]) == 0
    return root


def _outbox(path: Path) -> dict[str, bytes]:
    return {str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()}


def _dens(lake: Path, day: dt.date) -> list[dict]:
    rows = pq.read_table(lake / "dens" / f"date={day}").to_pylist()
    return sorted(({k: v for k, v in r.items() if k != "date"} for r in rows), key=lambda r: r["den_id"])


@pytest.mark.slow
def test_the_outbox_is_the_same_under_every_shuffle_partitioning_and_hash_seed(detected, spark):
    from jobs.cli import main

    last = START + dt.timedelta(days=DAYS - 1)
    common = [
        "--date",
        str(last),
        "--engine",
        "spark",
        "--landing",
        str(detected / "landing"),
        "--set",
        "spark.master=local[2]",
    ]
    outboxes, dens, started = {}, {}, time.monotonic()
    try:
        for partitions in PARTITIONS:  # in this process: the session takes each run's setting
            run = detected / f"run-{partitions}"
            shutil.copytree(detected / "lake", run / "lake")
            argv = [
                *common,
                "--lake",
                str(run / "lake"),
                "--outbox",
                str(run / "outbox"),
                "--set",
                f"spark.shuffle_partitions={partitions}",
            ]
            assert main(["dens", *argv]) == 0 and main(["export", *argv]) == 0
            assert spark.conf.get("spark.sql.shuffle.partitions") == str(partitions)
            outboxes["shuffle", partitions] = _outbox(run / "outbox" / str(last))
            dens[partitions] = _dens(run / "lake", last)
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", "2")
    lake = detected / f"run-{PARTITIONS[0]}" / "lake"
    for seed in EXPORT_HASH_SEEDS:
        outbox = detected / f"seed-{seed}"
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                _EXPORT,
                *common,
                "--lake",
                str(lake),
                "--outbox",
                str(outbox),
                "--set",
                "spark.master=local[1]",
                "--set",
                "spark.driver_memory=1g",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1800,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        outboxes["seed", seed] = _outbox(outbox / str(last))
    print(f"{len(outboxes)} outboxes in {time.monotonic() - started:.0f} s")
    first = outboxes["shuffle", PARTITIONS[0]]
    assert any(name.endswith(".xlsx") for name in first) and any(name.endswith(".csv") for name in first)
    assert len(dens[PARTITIONS[0]]) >= 2 and all(len(d["numbers"]) >= 3 for d in dens[PARTITIONS[0]])
    assert all(dens[p] == dens[PARTITIONS[0]] for p in PARTITIONS)
    assert len(outboxes) == len(PARTITIONS) + len(EXPORT_HASH_SEEDS)
    for key, files in outboxes.items():
        assert sorted(files) == sorted(first), key
        assert [name for name in first if files[name] != first[name]] == [], key
