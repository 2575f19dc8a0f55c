"""Field precision (`cdrwatch evaluate --feedback`) and the report's field outcomes, on a hand-built lake.

Three nights of dens (the first written before the field-history columns existed) and two imported
feedback files, one a re-saved copy of the other imported a day later. No Spark is started.
"""

import datetime as dt
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from jobs.config import load_config
from jobs.errors import CdrwatchError
from jobs.feedback import precision, store
from jobs.feedback.precision import NO_FEEDBACK, field_precision
from jobs.report import build_report, data
from schemas.tables import DEN, FEEDBACK

N1, N2, N3 = dt.date(2026, 11, 20), dt.date(2026, 11, 21), dt.date(2026, 11, 22)
UTC = dt.timezone.utc
HISTORY_COLUMNS = ("last_visit", "last_outcome", "related_to", "suppressed")


def den(den_id, priority, signals, district, *, suppressed=None, day=N1):
    return dict(
        den_id=den_id,
        score=0.8,
        priority=priority,
        district=district,
        lat=30.6,
        lon=104.0,
        radius_m=100.0,
        numbers=["+8613900000001"],
        imeis=["861234567890123"],
        cells=["4100-1"],
        site_names=["锦江区001号基站"],
        active_hours="09-12",
        first_seen=N1,
        last_seen=day,
        nights_active=1,
        n_calls=50,
        n_distinct_callees=40,
        n_victims=1,
        signals=list(signals),
        evidence="a den",
        segments=["1391234"],
        suppressed=suppressed,
    )


def write_dens(lake: Path, day: dt.date, rows: list[dict], *, old: bool = False) -> None:
    """lake/dens/date=D/part-00000.parquet as Spark writes it; `old`: without the field-history columns."""
    dropped = {"date", *(HISTORY_COLUMNS if old else ())}
    schema = pa.schema([f for f in DEN.arrow() if f.name not in dropped])
    folder = lake / "dens" / f"date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{k: v for k, v in r.items() if k in schema.names} for r in rows]
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / "part-00000.parquet")


def write_feedback(lake: Path, name: str, source_file: str, imported_at: dt.datetime, visits) -> None:
    """lake/feedback/<name>.parquet: one imported file; `visits` are (den_id, visited_on, outcome), rows 2, 3, ..."""
    rows = [
        dict(
            den_id=d,
            visited_on=on,
            outcome=outcome,
            notes=None,
            numbers_seized=[],
            imeis_seized=[],
            source_file=source_file,
            source_row=i + 2,
            file_sha256=name * 4,
            imported_at=imported_at,
        )
        for i, (d, on, outcome) in enumerate(visits)
    ]
    (lake / "feedback").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=FEEDBACK.arrow()), lake / "feedback" / f"{name}.parquet")


def day(n: int) -> dt.date:
    return dt.date(2026, 11, n)


@pytest.fixture
def lake(tmp_path):
    """Leads A B C D F G H over three nights; E is suppressed every night, F on the second.

    A turns high on N2 and low on N3: its visit on 11-22 is the N2 lead's. B is visited twice: not_found
    on 11-23 (first file) beats false_lead on 11-21 (second file, imported later). A's raid in the
    first file was re-saved as confirmed in the second: the later import wins. D is visited on its
    first lead night, G before it (not a visit of this lead), F on 11-23, after its only lead night."""
    root = tmp_path
    lake = root / "lake"
    write_dens(
        lake,
        N1,
        [
            den("A", "medium", ["goip"], "锦江区"),
            den("B", "medium", ["sequential"], "武侯区"),
            den("C", "low", ["congestion"], "锦江区"),
        ],
        old=True,
    )
    write_dens(
        lake,
        N2,
        [
            den("A", "high", ["goip", "congestion"], "锦江区", day=N2),
            den("D", "high", ["goip"], "青羊区", day=N2),
            den("E", "medium", ["congestion"], "青羊区", suppressed="legitimate on 2026-11-19", day=N2),
            den("F", "low", ["sequential"], "武侯区", suppressed="false_lead on 2026-11-18", day=N2),
            den("G", "low", ["congestion"], "武侯区", day=N2),
        ],
    )
    write_dens(
        lake,
        N3,
        [
            den("A", "low", ["goip"], "锦江区", day=N3),
            den("B", "high", ["sequential", "goip"], "武侯区", day=N3),
            den("E", "medium", ["congestion"], "青羊区", suppressed="legitimate on 2026-11-19", day=N3),
            den("F", "medium", ["congestion"], "武侯区", day=N3),
            den("H", "high", [], None, day=N3),
        ],
    )
    config = load_config(
        overrides=[f"paths.lake={lake}", f"paths.landing={root / 'landing'}", f"paths.outbox={root / 'outbox'}"]
    )
    return config


@pytest.fixture
def fed(lake):
    root = Path(lake.paths.lake)
    write_feedback(
        root,
        "aaaaaaaaaaaaaaaa",
        "锦江区.xlsx",
        dt.datetime(2026, 11, 23, 8, tzinfo=UTC),
        [
            ("A", day(22), "raided"),
            ("B", day(23), "not_found"),
            ("D", day(21), "confirmed"),
            ("E", day(21), "legitimate"),
            ("G", day(19), "false_lead"),
        ],
    )
    write_feedback(
        root,
        "bbbbbbbbbbbbbbbb",
        "锦江区 (2).xlsx",
        dt.datetime(2026, 11, 24, 8, tzinfo=UTC),
        [("A", day(22), "confirmed"), ("B", day(21), "false_lead"), ("F", day(23), "legitimate")],
    )
    return lake


COUNTS = ["leads", "visited", "raided", "confirmed", "not_found", "false_lead", "legitimate"]


def rows(table: pl.DataFrame, key: str) -> list[tuple]:
    return table.select(key, *COUNTS, pl.col("precision").round(4)).rows()


def test_each_lead_counts_once_under_the_lead_the_officers_acted_on(fed):
    result = field_precision(fed, N1, N3)
    leads = {r["den_id"]: r for r in result.leads.iter_rows(named=True)}
    assert sorted(leads) == ["A", "B", "C", "D", "F", "G", "H"]  # E is suppressed every night
    assert (leads["A"]["night"], leads["A"]["priority"], leads["A"]["outcome"]) == (N2, "high", "confirmed")
    assert (leads["B"]["night"], leads["B"]["visited_on"], leads["B"]["outcome"]) == (N3, day(23), "not_found")
    assert (leads["D"]["night"], leads["D"]["outcome"]) == (N2, "confirmed")  # visited on its first lead night
    assert (leads["F"]["night"], leads["F"]["priority"], leads["F"]["outcome"]) == (N3, "medium", "legitimate")
    assert (leads["G"]["night"], leads["G"]["outcome"]) == (N2, None)  # its visit predates the lead
    assert (leads["C"]["night"], leads["H"]["signals"], leads["H"]["district"]) == (N1, "none", "(no district)")


def test_precision_per_priority_signals_and_district(fed):
    result = field_precision(fed, N1, N3)
    assert rows(result.by_priority, "priority") == [
        ("high", 4, 3, 0, 2, 1, 0, 0, 0.6667),
        ("medium", 1, 1, 0, 0, 0, 0, 1, 0.0),
        ("low", 2, 0, 0, 0, 0, 0, 0, None),
    ]
    assert rows(result.by_signals, "signals") == [
        ("congestion", 3, 1, 0, 0, 0, 0, 1, 0.0),
        ("congestion+goip", 1, 1, 0, 1, 0, 0, 0, 1.0),
        ("goip", 1, 1, 0, 1, 0, 0, 0, 1.0),
        ("goip+sequential", 1, 1, 0, 0, 1, 0, 0, 0.0),
        ("none", 1, 0, 0, 0, 0, 0, 0, None),
    ]
    assert rows(result.by_district, "district") == [
        ("(no district)", 1, 0, 0, 0, 0, 0, 0, None),
        ("武侯区", 3, 2, 0, 0, 1, 0, 1, 0.0),
        ("锦江区", 2, 1, 0, 1, 0, 0, 0, 1.0),
        ("青羊区", 1, 1, 0, 1, 0, 0, 0, 1.0),
    ]
    assert result.total == {
        "what": "all",
        "leads": 7,
        "visited": 4,
        "raided": 0,
        "confirmed": 2,
        "not_found": 1,
        "false_lead": 0,
        "legitimate": 1,
        "precision": 0.5,
    }
    assert result.not_visited == (3, 7)
    assert result.over_time.rows() == [
        (day(21), "confirmed", 1),
        (day(22), "confirmed", 1),
        (day(23), "not_found", 1),
        (day(23), "legitimate", 1),
    ]


def test_the_range_decides_which_leads_and_nights_count(fed):
    result = field_precision(fed, N2, N3)
    assert sorted(result.leads["den_id"]) == ["A", "B", "D", "F", "G", "H"]  # C was a lead on N1 only
    assert rows(result.by_priority, "priority")[2] == ("low", 1, 0, 0, 0, 0, 0, 0, None)
    # B's first lead night in the range is N3 (11-22): its false_lead of 11-21 is not a candidate, not_found is
    b = result.leads.filter(pl.col("den_id") == "B").row(0, named=True)
    assert (b["night"], b["outcome"]) == (N3, "not_found")


def test_the_latest_visit_wins_then_the_latest_import():
    at = [dt.datetime(2026, 11, 23, 8, tzinfo=UTC), dt.datetime(2026, 11, 24, 8, tzinfo=UTC)]
    feedback = pl.DataFrame(
        {
            "den_id": ["A", "A", "B", "B", "C", "C"],
            "visited_on": [day(22), day(22), day(23), day(21), day(20), day(20)],
            "outcome": ["raided", "confirmed", "not_found", "false_lead", "not_found", "raided"],
            "source_file": ["a.csv", "a.csv", "a.csv", "b.csv", "a.csv", "a.csv"],
            "source_row": [2, 2, 3, 3, 9, 4],
            "imported_at": [at[0], at[1], at[0], at[1], at[0], at[0]],
        }
    )
    assert store.latest_visits(feedback).select("den_id", "visited_on", "outcome").rows() == [
        ("A", day(22), "confirmed"),
        ("B", day(23), "not_found"),
        ("C", day(20), "not_found"),
    ]  # C: the later row


def test_an_old_dens_partition_reads_as_leads_and_history_columns_as_null(lake):
    dens = precision.read_den_nights(lake, [N1, N2, dt.date(2026, 11, 30)])  # 11-30: no partition
    first = dens.filter(pl.col("date") == N1)
    assert sorted(first["den_id"]) == ["A", "B", "C"] and first["suppressed"].null_count() == 3
    assert dens.filter(pl.col("suppressed").is_not_null())["den_id"].sort().to_list() == ["E", "F"]


def test_no_feedback_says_so_in_one_line(lake):
    result = field_precision(lake, N1, N3)
    assert result.renderables() == [NO_FEEDBACK]
    assert result.not_visited == (7, 7) and result.total["precision"] is None


def test_a_range_without_dens_is_one_error(lake):
    with pytest.raises(
        CdrwatchError,
        match=r"dens: no dens for 2026-12-01\.\.2026-12-03 \(run cdrwatch nightly "
        r"--from 2026-12-01 --to 2026-12-03 first\)",
    ):
        field_precision(lake, day(30) + dt.timedelta(days=1), day(30) + dt.timedelta(days=3))
    write_dens(Path(lake.paths.lake), dt.date(2026, 12, 1), [])
    with pytest.raises(CdrwatchError, match=r"its 1 night in the lake hold no den"):
        field_precision(lake, dt.date(2026, 12, 1), dt.date(2026, 12, 3))
    with pytest.raises(CdrwatchError, match="before --from"):
        field_precision(lake, N3, N1)


def test_the_printed_tables(fed):
    console = Console(width=160, record=True, color_system=None)
    for renderable in field_precision(fed, N1, N3).renderables():
        console.print(renderable)
    text = console.export_text()
    assert "field precision 2026-11-20..2026-11-22 per priority" in text
    lines = text.splitlines()
    high = next(line for line in lines if line.startswith("│ high"))
    assert cells(high) == ["high", "4", "3", "0", "2", "1", "0", "0", "0.67"]
    assert cells(next(line for line in lines if line.startswith("│ low")))[-1] == "–"
    assert sum(1 for line in lines if line.startswith("│ all ")) == 3  # a total row under each table
    assert "field precision 2026-11-20..2026-11-22 per signal combination" in text
    assert "leads not yet visited: 3 of 7 (43%) · 3 of 3 nights in lake/dens" in text
    day_23 = next(line for line in lines if line.startswith("│ 2026-11-23"))
    assert cells(day_23) == ["2026-11-23", "0", "0", "1", "0", "1", "2"]


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.split("│")[1:-1]]


# ---------------------------------------------------------------- the report


def test_report_field_outcomes_know_only_the_visits_up_to_the_night(fed):
    field = data.field_outcomes(fed, N3)
    assert field.feedback_rows == 8
    # each den's latest outcome visited by 11-22, every den (E's too, and G's before its lead): B's
    # not_found of 11-23 is not known yet, so its false_lead of 11-21 is its latest
    assert field.over_time.rows() == [
        (day(19), "false_lead", 1),
        (day(21), "confirmed", 1),
        (day(21), "false_lead", 1),
        (day(21), "legitimate", 1),
        (day(22), "confirmed", 1),
    ]
    assert (field.not_visited, field.leads) == (4, 7)  # C, F (visited 11-23), G, H
    assert field.not_visited_share == pytest.approx(4 / 7)
    assert (data.field_outcomes(fed, day(23)).not_visited, data.field_outcomes(fed, day(23)).leads) == (3, 7)
    # the last 30 nights only: on 12-21, N1's and N2's leads have left the window, N3's remain
    later = data.field_outcomes(fed, dt.date(2026, 12, 21))
    assert (later.not_visited, later.leads) == (1, 4)  # A B F visited, H not


def test_report_page_has_the_field_section(fed):
    page, _ = build_report(fed, N3)
    assert 'id="chart-field-outcomes"' in page and page.count("Plotly.newPlot(") == 7
    assert "Leads not yet visited: <b>4</b> of\n<b>7</b> (57%)" in page
    assert 'href="#field"' in page


def test_outcome_chart_stacks_outcomes_in_their_colours(fed):
    from jobs.report.figures import OUTCOME_COLOURS, outcome_chart

    fig = outcome_chart(data.field_outcomes(fed, N3).over_time)
    traces = [(t.name, t.marker.color, list(t.y)) for t in fig.data]
    assert traces == [
        ("confirmed", OUTCOME_COLOURS["confirmed"], [0, 1, 1]),
        ("false lead", OUTCOME_COLOURS["false_lead"], [1, 1, 0]),
        ("legitimate", OUTCOME_COLOURS["legitimate"], [0, 1, 0]),
    ]
    assert list(fig.data[0].x) == ["2026-11-19", "2026-11-21", "2026-11-22"] and fig.layout.barmode == "stack"


def test_report_without_feedback_says_so_without_a_chart(lake):
    page, _ = build_report(lake, N3)
    assert 'id="no-feedback"' in page and "no field feedback in lake/feedback" in page
    assert 'id="chart-field-outcomes"' not in page and page.count("Plotly.newPlot(") == 6
