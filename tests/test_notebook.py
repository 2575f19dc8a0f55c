"""notebooks/explore.ipynb runs top to bottom on the simulated week (the lake the other tests built).

The kernel is this interpreter (a kernelspec written for the test and put first on JUPYTER_PATH), so
the notebook sees the same installed packages as the tests. The executed copy is written to the
test's tmp_path only; the committed notebook keeps no outputs.
"""

import json
import re
import sys
from pathlib import Path

import polars as pl
import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "explore.ipynb"


def _this_python_as_kernel(folder: Path) -> None:
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (cdrwatch tests)",
                "language": "python",
            }
        )
    )


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_committed_notebook_has_no_outputs():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert nb.metadata.kernelspec.name == "python3"


@pytest.mark.slow
def test_notebook_runs_on_the_simulated_week(week_exported, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    week = week_exported
    day = week.dates[-1]
    _this_python_as_kernel(tmp_path / "jupyter")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    for name, folder in (("LAKE", "lake"), ("LANDING", "landing"), ("OUTBOX", "outbox")):
        monkeypatch.setenv(f"CDRWATCH_{name}", str(week.root / folder))
    monkeypatch.setenv("CDRWATCH_DATE", day.isoformat())

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    finally:
        nbformat.write(nb, tmp_path / "explore.executed.ipynb")
    print(f"executed notebook: {tmp_path / 'explore.executed.ipynb'}")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(o.output_type != "error" for c in code for o in c.outputs)
    out = "\n".join(_text(c) for c in code)

    assert f"night {day.isoformat()}" in out
    flags = pl.read_parquet(week.root / "lake" / "flags" / f"date={day}" / "*.parquet")
    in_lake = flags.filter(pl.col("detector") == "sequential").height
    found = re.search(
        r"sequential flags in the lake: (\d+); by hand with the conf: (\d+); "
        r"with min_sim_calls=100: (\d+)",
        out,
    )
    assert found, out
    assert int(found[1]) == int(found[2]) == in_lake > 0  # by hand = what `cdrwatch detect` wrote
    assert int(found[3]) <= in_lake
    local = re.search(r"sequential flags on the local engine: (\d+) \(Spark: (\d+)\)", out)
    assert local, out
    assert int(local[1]) == int(local[2]) == in_lake  # the same night through Polars, no JVM

    dens = pl.read_parquet(week.root / "lake" / "dens" / f"date={day}" / "*.parquet")
    top = dens.sort(["score", "den_id"], descending=[True, False]).row(0, named=True)
    assert f"den {top['den_id']}: {len(top['numbers'])} SIMs, {top['n_calls']} outgoing calls/SMS" in out
    assert top["evidence"] in out

    plots = [
        o
        for c in code
        for o in c.outputs
        if o.output_type in ("display_data", "execute_result") and "application/vnd.plotly.v1+json" in o.data
    ]
    assert len(plots) == 1
    figure = plots[0].data["application/vnd.plotly.v1+json"]
    assert {trace["name"] for trace in figure["data"]} <= set(week.config.carriers)
    assert re.search(rf"{top['n_calls']} calls/SMS in \d+ hours; busiest hour: \d\d:00", out)
