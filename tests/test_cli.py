"""The command line: one clear line on bad input; nightly runs every step and ends with a summary."""

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from jobs.cli import main


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("cdrwatch")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    for command in ("simulate", "ingest", "detect", "dens", "export", "nightly", "report", "evaluate"):
        assert command in result.stdout


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["ingest", "--date", "2026-02-30"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        "cdrwatch ingest: error: argument --date: '2026-02-30' is not a date (YYYY-MM-DD) "
        "(see cdrwatch ingest --help)\n"
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["ingest", "--date", "2026-11-20", "--set", "ingest.rows_per_file=-1"],
            "cdrwatch: error: conf ingest.rows_per_file: Input should be greater than 0",
        ),
        (
            ["ingest", "--date", "2026-11-20", "--conf", "/nonexistent.yaml"],
            "cdrwatch: error: /nonexistent.yaml: no such configuration file",
        ),
        (
            ["nightly", "--from", "2026-11-22", "--to", "2026-11-20"],
            "cdrwatch: error: nightly: --to 2026-11-20 is before --from 2026-11-22",
        ),
        (
            ["simulate", "--start", "2026-11-20", "--days", "0", "--out", "/tmp/x"],
            "cdrwatch: error: simulate: --days must be positive",
        ),
    ],
)
def test_bad_input_is_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message)
    assert err.count("\n") == 1


def test_report_before_dens_names_the_step_to_run(tmp_path, capsys):
    assert (
        main(["report", "--date", "2026-11-20", "--lake", str(tmp_path / "lake"), "--outbox", str(tmp_path / "outbox")])
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("cdrwatch: error: ") and "no dens for 2026-11-20 (run cdrwatch dens first)" in err
    assert err.count("\n") == 1


def test_nightly_runs_every_step_per_night_and_ends_with_a_summary_table(monkeypatch, capsys, tmp_path):
    from jobs import pipeline

    ran = []
    summary = {
        "date": "2026-11-21",
        "outbox": "/o/2026-11-21",
        "dens": {"武侯区": 2, "锦江区": 0},
        "unlocated": 1,
        "warnings": 5,
    }

    def runner(step):
        def run(config, day, run):
            ran.append((step, day))
            paths = {"report": str(tmp_path / "outbox" / str(day) / "report.html")} if step == "report" else {}
            return pipeline.StepResult(step, day, paths=paths, detail=summary if step == "export" else None)

        return run

    for step in pipeline.NIGHTLY:
        monkeypatch.setitem(pipeline.STEPS, step, replace(pipeline.STEPS[step], run=runner(step)))
    assert (
        main(
            [
                "nightly",
                "--from",
                "2026-11-20",
                "--to",
                "2026-11-21",
                "--lake",
                str(tmp_path / "lake"),
                "--outbox",
                str(tmp_path / "outbox"),
            ]
        )
        == 0
    )
    assert [s for s, _ in ran] == ["ingest", "validate", "feedback", "detect", "dens", "export", "report"] * 2
    captured = capsys.readouterr()
    assert "dens on 2026-11-21: 武侯区 2, 锦江区 0 (1 unlocated); warnings: 5" in captured.out
    assert "/o/2026-11-21/leads" in captured.out
    assert "nightly summary" in captured.out
    for night in ("2026-11-20", "2026-11-21"):
        line = next(line for line in captured.out.splitlines() if line.startswith(f"│ {night}"))
        assert f"{night}/report.html" in line  # relative to the outbox; nothing in the lake: zero counts
        assert [c.strip() for c in line.split("│")[2:9]] == ["0", "0", "0", "0", "0/0/0", "–", "no"]
    assert f"reports: {tmp_path / 'outbox'}/<night>/report.html" in captured.out
    assert "not built yet" not in captured.out
