"""A crash- and race-safe lake (issue 11): writers are killed with SIGKILL after each rename of a
partition swap and the next run's repair must leave every partition whole; two runs of one date
race for its lock; data printed through rich is never taken for markup. Plain files, no Spark."""

import datetime as dt
import io
import os
import signal
import time
import traceback
from dataclasses import replace
from pathlib import Path

import pytest
from builders import config_for
from rich.console import Console

from jobs import cli, pipeline, render
from jobs.export import write_outbox_day
from jobs.io import layout, locks, repair, swap
from simulator.evaluate import Evaluation, Score

DAY = dt.date(2026, 11, 20)
OTHER_DAY = DAY + dt.timedelta(days=1)


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def read_tree(root: Path) -> dict[str, str] | None:
    if not root.exists():
        return None
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


class Child:
    """A forked copy of this process running `work(out)` (out: a line-buffered pipe back to the
    test): a SIGKILL hits a real separate process, without the cost of starting Python. The child
    never returns into pytest. `fault` sets its kill point (CDRWATCH_FAULT_KILL_AFTER_RENAME)."""

    def __init__(self, work, fault: int | None = None):
        read, write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            code = 3
            try:
                os.close(read)
                out = os.fdopen(write, "w", buffering=1)
                swap._renames = 0
                os.environ.pop(swap.FAULT_KILL_AFTER_RENAME, None)
                if fault is not None:
                    os.environ[swap.FAULT_KILL_AFTER_RENAME] = str(fault)
                code = work(out) or 0
            except BaseException:
                os.write(write, traceback.format_exc().encode())
            finally:
                os._exit(code)
        os.close(write)
        self.out = os.fdopen(read)
        self.code = None

    def wait(self) -> int:
        """The exit code; minus the signal's number when killed."""
        if self.code is None:
            self.code = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.code

    def running(self) -> bool:
        return self.code is None and os.waitpid(self.pid, os.WNOHANG) == (0, 0)

    def kill(self) -> None:
        if self.code is None:
            os.kill(self.pid, signal.SIGKILL)
            self.wait()


# --------------------------------------------------------------------------- swaps killed mid-way

OLD = {"a": {"part-0.parquet": "old a 0", "part-1.parquet": "old a 1"}, "b": {"part-0.parquet": "old b"}}
NEW = {"a": {"part-0.parquet": "new a"}, "c": {"part-0.parquet": "new c 0", "part-1.parquet": "new c 1"}}
CARRIERS = ("a", "b", "c")  # a: replaced (2 renames), b: removed, no new rows (1), c: new carrier (1)
RENAMES = 4


def staged_day(tmp_path):
    """A lake with carriers a and b of DAY, and a run's staging of a and c, laid out as
    `lake_spark.DayWrite` lays them out; returns (config, swap pairs, aside root)."""
    config = config_for(tmp_path, outbox=True)
    for carrier, files in OLD.items():
        write_tree(layout.partition_path(config, "cdr", DAY, carrier), files)
    run = layout.staging_root(config, DAY) / "0123abcd"
    staged = run / "new" / "cdr" / f"date={DAY}"
    for carrier, files in NEW.items():
        write_tree(staged / f"carrier={carrier}", files)
    pairs = [(staged / f"carrier={c}", layout.partition_path(config, "cdr", DAY, c)) for c in CARRIERS]
    return config, pairs, run / "old"


def swap_in_child(config, pairs, aside, fault):
    child = Child(lambda out: swap.swap_dirs(pairs, aside, layout.journal_dir(config, DAY)), fault=fault)
    return child.wait(), child.out.read()


def carriers_now(config):
    return {c: read_tree(layout.partition_path(config, "cdr", DAY, c)) for c in CARRIERS}


def assert_whole(state):
    """Every carrier partition present is exactly its old or its new content."""
    for carrier, files in state.items():
        assert files in (OLD.get(carrier), NEW.get(carrier)), (carrier, files)


@pytest.mark.parametrize("fault", range(RENAMES + 1))
def test_a_swap_killed_after_any_rename_is_rolled_forward_by_the_next_run(tmp_path, fault):
    config, pairs, aside = staged_day(tmp_path)
    assert swap_in_child(config, pairs, aside, fault)[0] == -signal.SIGKILL
    assert len(list(layout.journal_dir(config, DAY).glob("*.json"))) == 1
    assert_whole({c: files for c, files in carriers_now(config).items() if files is not None})
    reported = []
    with repair.date_lock(config, DAY, "ingest", report=reported.append):
        assert carriers_now(config) == {"a": NEW["a"], "b": None, "c": NEW["c"]}
    assert len(reported) == 1 and reported[0].startswith("repaired a swap interrupted at ")
    assert not (Path(config.paths.lake) / layout.STAGING).exists()
    assert not layout.journal_dir(config, DAY).exists()


def test_without_a_kill_the_swap_leaves_no_journal_and_nothing_to_repair(tmp_path):
    config, pairs, aside = staged_day(tmp_path)
    assert swap_in_child(config, pairs, aside, RENAMES + 1) == (0, "")
    assert carriers_now(config) == {"a": NEW["a"], "b": None, "c": NEW["c"]}
    assert not layout.journal_dir(config, DAY).exists() and list(aside.iterdir()) == []
    assert repair.repair(config, DAY) == []


@pytest.mark.parametrize("repair_fault", [1, 2])
def test_a_repair_that_is_itself_killed_is_finished_by_the_next_one(tmp_path, repair_fault):
    config, pairs, aside = staged_day(tmp_path)
    assert swap_in_child(config, pairs, aside, 1)[0] == -signal.SIGKILL  # a is aside, nothing in its place
    repairing = Child(lambda out: repair.repair(config, DAY), fault=repair_fault)
    assert repairing.wait() == -signal.SIGKILL, repairing.out.read()
    assert_whole({c: files for c, files in carriers_now(config).items() if files is not None})
    assert len(repair.repair(config, DAY)) == 1
    assert carriers_now(config) == {"a": NEW["a"], "b": None, "c": NEW["c"]}


def test_an_error_during_the_swap_undoes_it_and_leaves_no_journal(tmp_path, monkeypatch):
    config, pairs, aside = staged_day(tmp_path)
    real_rename, calls = os.rename, []

    def rename_failing_third(src, dst):
        calls.append(src)
        if len(calls) == 3:
            raise OSError("device gone")
        return real_rename(src, dst)

    monkeypatch.setattr(swap.os, "rename", rename_failing_third)
    with pytest.raises(OSError, match="device gone"):
        swap.swap_dirs(pairs, aside, layout.journal_dir(config, DAY))
    monkeypatch.undo()
    assert carriers_now(config) == {"a": OLD["a"], "b": OLD["b"], "c": None}
    assert read_tree(pairs[0][0]) == NEW["a"]  # staged rows back in staging, for the caller to drop
    assert not layout.journal_dir(config, DAY).exists()


def test_an_outbox_swap_killed_mid_way_is_repaired_only_by_its_own_date(tmp_path):
    config = config_for(tmp_path, outbox=True)
    outbox = Path(config.paths.outbox)
    old = {"leads/east.csv": "old leads", "leads/west.csv": "old west", "warnings.csv": "old warnings"}
    new = {"leads/east.csv": "new leads", "warnings.csv": "new warnings"}
    for day in (DAY, OTHER_DAY):
        write_tree(outbox / day.isoformat(), old)
        target = outbox / day.isoformat()
        child = Child(lambda out: write_outbox_day(target, {k: v.encode() for k, v in new.items()}), fault=1)
        assert child.wait() == -signal.SIGKILL, child.out.read()
        assert not target.exists()  # the old one aside, the new one not yet in
    with repair.date_lock(config, DAY, "export"):
        pass
    assert read_tree(outbox / DAY.isoformat()) == new
    assert read_tree(outbox / OTHER_DAY.isoformat()) is None  # another date's swap is left to its own run
    assert len(list((outbox / layout.OUTBOX_JOURNAL).glob("*.json"))) == 1
    repair.repair(config, OTHER_DAY)
    assert read_tree(outbox / OTHER_DAY.isoformat()) == new
    assert sorted(p.name for p in outbox.iterdir()) == [DAY.isoformat(), OTHER_DAY.isoformat()]


def test_a_run_killed_before_its_swap_leaves_only_staging_which_the_next_run_drops(tmp_path):
    config, pairs, aside = staged_day(tmp_path)
    other = layout.staging_root(config, OTHER_DAY) / "running"
    write_tree(other, {"new/x.parquet": "another date, being staged now"})
    assert repair.repair(config, DAY) == []
    assert carriers_now(config) == {"a": OLD["a"], "b": OLD["b"], "c": None}
    assert not layout.staging_root(config, DAY).exists()
    assert read_tree(other) == {"new/x.parquet": "another date, being staged now"}


# --------------------------------------------------------------------------- one run per date


def holding(config, day, step, seconds, go=None) -> Child:
    """A process that takes `day`'s lock for `step` once `go` exists, and holds it `seconds`."""

    def work(out):
        out.write("ready\n")
        while go is not None and not go.exists():
            time.sleep(0.005)
        try:
            with repair.date_lock(config, day, step):
                out.write("acquired\n")
                time.sleep(seconds)
        except locks.LockHeld as err:
            out.write(f"refused {err}\n")
            return 2

    return Child(work)


@pytest.fixture
def holder(tmp_path):
    """A process holding DAY's lock as `nightly` until it is killed."""
    child = holding(config_for(tmp_path, outbox=True), DAY, "nightly", 120)
    try:
        assert child.out.readline() == "ready\n"
        assert child.out.readline() == "acquired\n"
        yield child
    finally:
        child.kill()


def test_two_runs_of_one_date_race_and_the_second_fails_at_once_naming_the_first(tmp_path):
    go = tmp_path / "go"
    runs = {step: holding(config_for(tmp_path, outbox=True), DAY, step, 3, go) for step in ("ingest", "detect")}
    for child in runs.values():
        assert child.out.readline() == "ready\n"
    go.touch()
    first = {step: child.out.readline() for step, child in runs.items()}
    assert sorted(line.split()[0] for line in first.values()) == ["acquired", "refused"], first
    winner = next(s for s, line in first.items() if line == "acquired\n")
    loser = next(s for s in runs if s != winner)
    assert runs[loser].wait() == 2
    assert runs[winner].running()  # refused while the winner still holds the date
    assert runs[winner].wait() == 0
    assert (
        f"{loser}: date {DAY} is being processed by pid {runs[winner].pid} on {os.uname().nodename} "
        f"({winner}, since 20" in first[loser]
    )


def test_the_lock_is_per_date_and_dies_with_its_holder(tmp_path, holder):
    config = config_for(tmp_path, outbox=True)
    with repair.date_lock(config, OTHER_DAY, "ingest"):
        pass
    started = time.monotonic()
    with pytest.raises(locks.LockHeld, match=rf"pid {holder.pid} on .* \(nightly, since "):
        with repair.date_lock(config, DAY, "ingest"):
            pass
    assert time.monotonic() - started < 2
    holder.kill()
    with repair.date_lock(config, DAY, "ingest"):
        assert locks.holder(layout.lock_path(config, DAY))["pid"] == os.getpid()
    assert locks.holder(layout.lock_path(config, DAY)) is None


def test_the_cli_refuses_a_date_being_processed_with_one_line_naming_the_holder(tmp_path, holder, capsys):
    argv = [
        "--landing",
        str(tmp_path / "landing"),
        "--lake",
        str(tmp_path / "lake"),
        "--outbox",
        str(tmp_path / "outbox"),
    ]
    assert cli.main(["ingest", "--date", DAY.isoformat(), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cdrwatch: error: ingest: date {DAY} is being processed by pid {holder.pid} on ")
    assert "(nightly, since " in err and err.count("\n") == 1


def test_the_lock_is_reentrant_and_repairs_once(tmp_path, monkeypatch):
    config = config_for(tmp_path, outbox=True)
    repairs = []
    monkeypatch.setattr(repair, "repair", lambda config, day: repairs.append(day) or [])
    path = layout.lock_path(config, DAY)
    with repair.date_lock(config, DAY, "nightly"):
        with repair.date_lock(config, DAY, "ingest"):
            assert locks.holder(path)["step"] == "nightly > ingest"
        assert locks.holder(path)["step"] == "nightly"
    assert repairs == [DAY]
    assert locks.holder(path) is None and path.read_text() == ""


def fake_steps(monkeypatch, results: dict, seen: list | None = None) -> None:
    """Replace every step of `jobs.pipeline` by one that records (step, day, the lock's holder) in
    `seen` and returns a StepResult whose detail is `results[step]`."""

    def runner(name):
        def run(config, day, run):
            if seen is not None:
                seen.append((name, day, locks.holder(layout.lock_path(config, day))["step"]))
            paths = {"report": str(Path(config.paths.outbox) / str(day) / "report.html")} if name == "report" else {}
            return pipeline.StepResult(name, day, paths=paths, detail=results.get(name))

        return run

    for name in pipeline.NIGHTLY:
        monkeypatch.setitem(pipeline.STEPS, name, replace(pipeline.STEPS[name], run=runner(name)))


def test_nightly_holds_each_date_while_its_steps_take_it_again(tmp_path, monkeypatch):
    config = config_for(tmp_path, outbox=True)
    seen = []
    exported = {"missing_carriers": [], "dens": {}, "date": "x", "unlocated": 0, "warnings": 0, "outbox": "o"}
    fake_steps(monkeypatch, {"export": exported}, seen)
    monkeypatch.setattr(render, "nightly_table", lambda *args: "table")
    monkeypatch.setattr(cli, "console", Console(file=io.StringIO()))
    args = cli.build_parser().parse_args(["nightly", "--from", DAY.isoformat(), "--to", OTHER_DAY.isoformat()])
    cli.run_nightly(args, config)
    assert seen == [(s, d, f"nightly > {s}") for d in (DAY, OTHER_DAY) for s in pipeline.NIGHTLY]
    assert locks.holder(layout.lock_path(config, DAY)) is None


# --------------------------------------------------------------------------- data is not markup

MARKUP = "[bold]Dist[/] [/]"


def rendered(renderable) -> str:
    console = Console(file=io.StringIO(), width=200, highlight=False, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def test_nightly_prints_data_literally(tmp_path, monkeypatch):
    config = config_for(tmp_path, outbox=True)
    out = io.StringIO()
    exported = {
        "missing_carriers": ["c[/]m"],
        "dens": {MARKUP: 2},
        "date": "2026-11-20",
        "unlocated": 0,
        "warnings": 1,
        "outbox": str(tmp_path / "[red]outbox"),
    }
    fake_steps(monkeypatch, {"export": exported})
    monkeypatch.setattr(render, "nightly_table", lambda *args: "table")
    monkeypatch.setattr(cli, "console", Console(file=out, width=300, highlight=False, color_system=None))
    cli.run_nightly(cli.build_parser().parse_args(["nightly", "--date", DAY.isoformat()]), config)
    text = out.getvalue()
    assert f"dens on 2026-11-20: {MARKUP} 2 (0 unlocated)" in text
    assert f"leads: {tmp_path / '[red]outbox' / 'leads'}" in text
    assert "partial night 2026-11-20: no files from c[/]m (outbox/2026-11-20/PARTIAL.txt)" in text


def test_nightly_table_prints_data_literally(tmp_path, monkeypatch):
    import polars as pl

    from jobs.report import data

    config = config_for(tmp_path, outbox=True)
    numbers = data.NightNumbers(
        DAY,
        pl.DataFrame({"accepted": [5], "quarantined": [1]}),
        pl.DataFrame(),
        pl.DataFrame({"flags": [3]}),
        pl.DataFrame({"status": ["new"]}),
        2,
    )
    monkeypatch.setattr(data, "night_numbers", lambda config, day: numbers)
    report = Path(config.paths.outbox) / DAY.isoformat() / "[bold]report[/].html"
    text = rendered(render.nightly_table(config, [DAY], {DAY: report}))
    assert f"{DAY}/[bold]report[/].html" in text


def test_evaluate_table_prints_data_literally():
    evaluation = Evaluation(DAY, [Score("go[/]ip (SIMs)", 4, 3, 5, note=MARKUP)], {"crowd[/]": ["+86[red]139"]})
    lines = rendered(evaluation.table()).splitlines()
    assert any("go[/]ip (SIMs)" in line and "0.75" in line and "0.60" in line and MARKUP in line for line in lines)
    assert any("hard negatives: crowd[/]" in line and "+86[red]139" in line for line in lines)
