"""The same jobs on a real Spark cluster: a standalone master and worker on 127.0.0.1, started from the
installed pyspark, and `cdrwatch nightly` submitted to it with spark-submit (the package as
--py-files) must give the leads of the local-mode run, byte for byte."""

import json
import os
import socket
import subprocess
import time
import urllib.request

import pytest

from jobs import orchestrate

pytestmark = pytest.mark.slow

STARTUP_S = 120


def free_port(preferred: int | None = None) -> int:
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise RuntimeError("no free port")


def master_state(webui: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{webui}/json/", timeout=5) as response:
        return json.load(response)


@pytest.fixture
def standalone_cluster(tmp_path):
    """spark://127.0.0.1:<port> with one worker (2 cores, 2 GB); both JVMs stopped by pid afterwards."""
    spark_home = orchestrate.spark_home()
    port, webui = free_port(7177), free_port()
    env = {**os.environ, "SPARK_HOME": str(spark_home), "SPARK_LOCAL_IP": "127.0.0.1"}
    spark_class = str(spark_home / "bin" / "spark-class")
    url = f"spark://127.0.0.1:{port}"
    commands = {
        "master": [
            spark_class,
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--webui-port",
            str(webui),
        ],
        "worker": [
            spark_class,
            "org.apache.spark.deploy.worker.Worker",
            url,
            "--host",
            "127.0.0.1",
            "--cores",
            "2",
            "--memory",
            "2g",
            "--webui-port",
            str(free_port()),
            "--work-dir",
            str(tmp_path / "work"),
        ],
    }
    processes: dict[str, subprocess.Popen] = {}
    try:
        for name, command in commands.items():
            processes[name] = subprocess.Popen(
                command, env=env, stdout=(tmp_path / f"{name}.log").open("wb"), stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + STARTUP_S
        while True:
            try:
                if master_state(webui).get("aliveworkers") == 1:
                    break
            except OSError:
                pass
            dead = [name for name, p in processes.items() if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join((tmp_path / f"{n}.log").read_text(errors="replace")[-2000:] for n in commands)
                pytest.fail(f"standalone cluster did not come up ({dead or 'timeout'}):\n{logs}")
            time.sleep(1)
        yield url, webui
    finally:
        for process in processes.values():  # spark-class execs java: the pid is the JVM's
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_nightly_on_a_standalone_cluster_gives_the_local_leads(
    week_exported, standalone_cluster, tmp_path, monkeypatch
):
    """The week's first night has no earlier night, so a fresh run of it alone on the `spark` engine
    must match the run that the shared week fixture made through `cdrwatch` in this process (on the
    default `local` engine: the cluster's leads equal the embedded engine's)."""
    url, webui = standalone_cluster
    night = week_exported.dates[0]
    conf = tmp_path / "cluster.yaml"
    conf.write_text(
        json.dumps(
            {
                "paths": {
                    "landing": str(week_exported.root / "landing"),
                    "lake": str(tmp_path / "lake"),
                    "outbox": str(tmp_path / "outbox"),
                },
                "engine": "spark",
                "spark": {
                    "master": url,
                    "shuffle_partitions": 2,
                    "driver_memory": "1g",
                    "extra": {"spark.executor.memory": "1g"},
                },
            }
        )
    )
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")  # the driver, reachable by the executors on loopback

    orchestrate.run_step("nightly", night, conf, cache_dir=tmp_path / "submit")

    apps = master_state(webui)["completedapps"]
    assert [(a["name"], a["state"], a["cores"]) for a in apps] == [("cdrwatch", "FINISHED", 2)]
    local = week_exported.root / "outbox" / night.isoformat() / "leads"
    cluster = tmp_path / "outbox" / night.isoformat() / "leads"
    names = sorted(p.name for p in local.glob("*.csv"))
    assert names and sorted(p.name for p in cluster.glob("*.csv")) == names
    for name in names:
        assert (cluster / name).read_bytes() == (local / name).read_bytes(), name
    assert sum(len((local / n).read_text(encoding="utf-8-sig").splitlines()) - 1 for n in names) >= 1
    assert not (tmp_path / "outbox" / night.isoformat() / "PARTIAL.txt").exists()
    summary = json.loads((tmp_path / "lake" / "_runs" / "ingest" / f"date={night}" / "summary.json").read_text())
    assert summary["missing_carriers"] == [] and sorted(summary["carriers"]) == ["cm", "ct", "cu"]
