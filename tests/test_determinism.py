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


def fuzzy_city(seed=11, groups=4, size=15, trios=40):
    """Edges of one big fuzzy component (`groups` loose groups of `size` SIMs with many links
    across, so Louvain has choices to make) and `trios` small dens with a device each, so that the
    big component is less than half the graph: networkx then iterates a subgraph view's node set,
    whose order follows PYTHONHASHSEED (the bug)."""
    rng = random.Random(seed)
    names = [f"+86133{g}{i:05d}" for g in range(groups) for i in range(size)]
    edges = []
    for i, x in enumerate(names):
        for y in names[i + 1:]:
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
    assert len(big) >= 3 and sum(map(len, big)) == 60          # the big component was split by Louvain
    assert len(expected) == 40 + len(big)                       # the trios are dens; the lone SIM is not
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
        done = subprocess.run([sys.executable, "-c", _CLUSTER, str(edges)], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "PYTHONHASHSEED": str(seed)}, check=True)
        runs[seed] = json.loads(done.stdout)
    assert sum(g[0].startswith("+86133") for g in runs[0]) >= 3   # Louvain did split (the part that was unstable)
    assert all(runs[seed] == runs[0] for seed in HASH_SEEDS), {s: [len(g) for g in r[:4]] for s, r in runs.items()}


# --- end to end: dens + export of one simulated night under hash seeds and shuffle partitions -------

START = dt.date(2026, 11, 10)
DAYS = 2
# One process per hash seed (a JVM start each); seed 0's process also reruns at 8 and 16 shuffle
# partitions (the session's SQL conf is reset by each `--set`): 8 runs of dens + export, 6 JVMs.
PARTITIONS = {0: (4, 8, 16), **{seed: (4,) for seed in HASH_SEEDS if seed}}

_STEPS = """
import json, sys
from pyspark.sql import SparkSession
from jobs.cli import main
day, runs, common = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]
for lake, outbox, partitions in runs:
    argv = ["--date", day, "--lake", lake, "--outbox", outbox, "--set", f"spark.shuffle_partitions={partitions}",
            *common]
    if main(["dens", *argv]) or main(["export", *argv]):
        sys.exit(1)
    print("shuffle partitions", SparkSession.getActiveSession().conf.get("spark.sql.shuffle.partitions"))
"""


@pytest.fixture(scope="module")
def detected(tmp_path_factory, spark):
    """A small simulated city (600 subscribers, 2 dens, 2 days) ingested and detected once through
    the CLI, and the first night's dens (the last night's ids look back at them)."""
    from jobs.cli import main
    from jobs.simulate import simulate

    root = tmp_path_factory.mktemp("determinism")
    simulate(root / "landing", START, DAYS, subscribers=600, dens=2, seed=5)
    argv = ["--landing", str(root / "landing"), "--lake", str(root / "lake"), "--outbox", str(root / "outbox"),
            "--set", "spark.master=local[2]", "--set", "spark.shuffle_partitions=2"]
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


def test_the_outbox_is_the_same_under_every_hash_seed_and_shuffle_partitioning(detected):
    last = START + dt.timedelta(days=DAYS - 1)
    common = ["--landing", str(detected / "landing"), "--set", "spark.master=local[1]",
              "--set", "spark.driver_memory=1g"]
    outboxes, dens, started = {}, {}, time.monotonic()
    for seed, partitionings in PARTITIONS.items():
        runs = []
        for partitions in partitionings:
            run = detected / f"run-{seed}-{partitions}"
            shutil.copytree(detected / "lake", run / "lake")   # each run its own copy of the detected lake
            runs.append((str(run / "lake"), str(run / "outbox"), partitions))
        done = subprocess.run([sys.executable, "-c", _STEPS, str(last), json.dumps(runs), *common], cwd=ROOT,
                              capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": str(seed)},
                              timeout=1800)   # generous: a loaded 2-core machine is slow
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert [line for line in done.stdout.splitlines() if line.startswith("shuffle partitions")] == \
            [f"shuffle partitions {p}" for p in partitionings]
        for lake, outbox, partitions in runs:
            outboxes[seed, partitions] = _outbox(Path(outbox) / str(last))
            dens[seed, partitions] = _dens(Path(lake), last)
    print(f"{len(outboxes)} runs of dens + export in {len(PARTITIONS)} processes: {time.monotonic() - started:.0f} s")
    first = outboxes[0, 4]
    assert any(name.endswith(".xlsx") for name in first) and any(name.endswith(".csv") for name in first)
    assert len(dens[0, 4]) >= 2 and all(len(d["numbers"]) >= 3 for d in dens[0, 4])
    assert len(outboxes) == 8
    for key in outboxes:
        assert dens[key] == dens[0, 4], key
        assert sorted(outboxes[key]) == sorted(first), key
        assert [name for name in first if outboxes[key][name] != first[name]] == [], key
