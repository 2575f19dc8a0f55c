"""docs/contracts.md is the project's statement of its interfaces: its tables are read back here and
compared with the code that defines them, so neither can change without the other."""

import re
from pathlib import Path

import pytest

from schemas.raw import RAW_LAYOUTS
from schemas.tables import LEAD_COLUMNS, TABLES, WARNING_COLUMNS, WARNING_FILE_COLUMNS

DOC = Path(__file__).resolve().parents[1] / "docs" / "contracts.md"
TEXT = DOC.read_text(encoding="utf-8")
HEADING = re.compile(r"^(#+) (.*)$")


def section(title: str) -> str:
    """The text under the first heading matching the regex `title`, up to the next heading of the
    same or a higher level."""
    lines = TEXT.splitlines()
    for i, line in enumerate(lines):
        found = HEADING.match(line)
        if found and re.search(title, found.group(2)):
            level = len(found.group(1))
            end = next(
                (j for j in range(i + 1, len(lines)) if (h := HEADING.match(lines[j])) and len(h.group(1)) <= level),
                len(lines),
            )
            return "\n".join(lines[i + 1 : end])
    raise AssertionError(f"docs/contracts.md has no heading matching {title!r}")


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the markdown tables in `text` (header and separator rows left out)."""
    rows, previous = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("|") and not re.fullmatch(r"\s*\|[\s|:-]+\|\s*", line):
            if previous.lstrip().startswith("|"):
                rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        previous = line if line.lstrip().startswith("|") else ""
    return rows


def unquoted(cell: str) -> str:
    return cell.strip("`")


def numbered(text: str) -> list[list[str]]:
    """Rows of numbered tables (first cell 1, 2, ...), checked to be numbered in order."""
    rows = [r for r in table_rows(text) if r[0].isdigit()]
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))
    return rows


@pytest.mark.parametrize("table", TABLES.values(), ids=TABLES.keys())
def test_every_table_is_documented_with_its_exact_columns_in_order(table):
    body = section(rf"^Table `{table.name}`")
    documented = [(unquoted(r[1]), unquoted(r[2]), r[3]) for r in numbered(body)]
    assert documented == [(c.name, c.type, "yes" if c.nullable else "no") for c in table.columns]
    partitioned = re.search(r"^Partitioned by: (.*)$", body, re.M)
    assert partitioned, f"table {table.name}: no 'Partitioned by:' line"
    columns = re.sub(r"\([^)]*\)", "", partitioned.group(1)).split(". ")[0]  # `date`, `carrier`. Files ...
    assert tuple(re.findall(r"`(\w+)`", columns)) == table.partition_by


def test_no_table_is_documented_that_the_code_does_not_have():
    documented = {m.group(2) for line in TEXT.splitlines() if (m := re.match(r"^(#+) Table `(\w+)`", line))}
    assert documented == set(TABLES)


def test_outbox_csvs_have_the_exact_columns_in_order():
    from jobs.export import (
        CHINESE_LEAD_HEADERS,
        CHINESE_UNLOCATED_HEADERS,
        LEAD_FILE_COLUMNS,
        SUPPRESSED_COLUMNS,
        UNLOCATED_COLUMNS,
    )

    leads = numbered(section(r"^`leads/<district>\.csv`"))
    assert LEAD_FILE_COLUMNS[: len(LEAD_COLUMNS)] == LEAD_COLUMNS  # the contract's columns first, the rest after
    assert tuple(unquoted(r[1]) for r in leads) == LEAD_FILE_COLUMNS
    assert [r[2] for r in leads] == [CHINESE_LEAD_HEADERS[c] for c in LEAD_FILE_COLUMNS]
    suppressed = section(r"^`analysts/suppressed\.csv`")
    assert SUPPRESSED_COLUMNS == (*LEAD_COLUMNS, "last_visit", "last_outcome", "related_to", "reason")
    assert (
        f"the {len(LEAD_COLUMNS)} lead columns, `last_visit`, `last_outcome`, `related_to`, then `reason`" in suppressed
    )
    warnings = numbered(section(r"^`warnings\.csv`"))
    assert tuple(unquoted(r[1]) for r in warnings) == WARNING_FILE_COLUMNS
    assert WARNING_FILE_COLUMNS[: len(WARNING_COLUMNS)] == WARNING_COLUMNS
    unlocated = section(r"^`analysts/unlocated_dens\.csv`")
    assert UNLOCATED_COLUMNS == (*LEAD_COLUMNS, "reason")
    assert f"the {len(LEAD_COLUMNS)} lead columns above" in unlocated
    assert f"`reason` ({CHINESE_UNLOCATED_HEADERS['reason']})" in unlocated


def test_every_file_export_and_report_write_is_documented():
    from jobs.export import MEMBERS_SHEET, PARTIAL_FILE, build_outbox
    from jobs.report import REPORT_FILE

    files, _ = build_outbox([], [], ["锦江区"], set(), timezone="Asia/Shanghai")
    outbox = section(r"^4\. Outbox")
    for name in sorted(files):
        stem, suffix = name.rsplit(".", 1)
        shown = "leads/<district>" if stem == "leads/锦江区" else stem
        assert f"outbox/D/{shown}.csv" in outbox and suffix in ("csv", "xlsx"), name
    assert "(+ .xlsx)" in outbox and f"sheet `{MEMBERS_SHEET}`" in outbox
    for name in (PARTIAL_FILE, REPORT_FILE):
        assert f"outbox/D/{name}" in outbox and re.search(rf"^### `{re.escape(name)}`", outbox, re.M), name


def test_every_quarantine_reason_is_documented():
    from jobs import formats
    from jobs.ingest import CONFLICT_PREFIX

    documented = [unquoted(r[0]) for r in table_rows(section(r"^Table `quarantine`")) if r[0].startswith("`")]
    fixed = [
        value
        for name, value in vars(formats).items()
        if name.isupper() and not name.startswith("_") and isinstance(value, str) and "REGEX" not in name
    ]
    assert fixed and not [reason for reason in fixed if reason not in documented]
    for shape in ("wrong field count (", "missing field ", CONFLICT_PREFIX):
        assert any(reason.startswith(shape) for reason in documented), shape


def test_raw_layouts_and_landing_files_are_the_documented_ones():
    from jobs.io import inventory, manifest

    landing = section(r"^1\. Landing zone")
    cn_csv, pipe_gbk, jsonl = (section(rf"^Format `{name}`") for name in ("cn_csv", "pipe_gbk", "jsonl"))
    assert "\n" + ",".join(RAW_LAYOUTS["cn_csv"].fields) + "\n" in cn_csv
    assert "\n" + "|".join(RAW_LAYOUTS["pipe_gbk"].fields) + "\n" in pipe_gbk
    assert [unquoted(k) for r in table_rows(jsonl) for k in r[0].split(", ")] == list(RAW_LAYOUTS["jsonl"].fields)
    for name, text in (("cn_csv", cn_csv), ("pipe_gbk", pipe_gbk), ("jsonl", jsonl)):
        assert all(f"`{glob}`" in text for glob in RAW_LAYOUTS[name].file_globs), name
    assert "header exactly `" + ",".join(manifest.COLUMNS) + "`" in section(r"^`_MANIFEST\.csv`")
    assert "naming at least `" + ",".join(inventory.COLUMNS) + "`" in landing


def _options(parser) -> set[str]:
    return {o for action in parser._actions for o in action.option_strings if o.startswith("--") and o != "--help"}


def test_every_cli_command_and_option_is_documented():
    import argparse

    from jobs.cli import build_parser

    def subcommands(parser) -> dict:
        found = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        return found.choices if found else {}

    parser = build_parser()
    commands = {}  # `feedback import` is a command of its own
    for name, sub in subcommands(parser).items():
        commands.update({f"{name} {action}": p for action, p in subcommands(sub).items()} or {name: sub})
    cli = section(r"^5\. Command line")
    rows = {
        unquoted(r[0]).removeprefix("cdrwatch "): " ".join(r[1:])
        for r in table_rows(cli)
        if r[0].startswith("`cdrwatch ")
    }
    assert set(rows) == set(commands)
    every = set.intersection(*(_options(p) for p in commands.values()))
    common = " ".join(r[0] for r in table_rows(cli) if r[0].startswith("`-"))

    def documented(option: str, text: str) -> bool:
        return re.search(rf"`{re.escape(option)}[ `]", text) is not None

    assert not [o for o in sorted(every | _options(parser)) if not documented(o, common)]
    for name, sub in commands.items():
        assert not [o for o in sorted(_options(sub) - every) if not documented(o, rows[name])], name


def test_nightly_runs_the_documented_steps_and_the_exit_codes_are_listed():
    from jobs.pipeline import NIGHTLY

    cli = section(r"^5\. Command line")
    nightly = next(" ".join(r) for r in table_rows(cli) if r[0] == "`cdrwatch nightly`")
    steps = re.search(r"in order \(((?:`\w+`, )*`\w+`)\)", nightly)
    assert steps and tuple(unquoted(s) for s in steps.group(1).split(", ")) == NIGHTLY
    codes = {unquoted(r[0]) for r in table_rows(cli) if re.fullmatch(r"`\d+`", r[0])}
    assert codes == {"0", "1", "2", "130"}
