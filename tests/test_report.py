"""The nightly report: its numbers from small hand-built lakes, then report.html for the simulated week.

The units build a lake of a few rows with PyArrow, in the layout Spark writes (hive partitions,
partition columns only in the folder names), and check the numbers the page shows; no Spark is
started. The end-to-end test runs `cdrwatch report` after the other steps of the simulated week.
"""

import datetime as dt
import json
import re
from pathlib import Path
from urllib.parse import unquote

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.config import load_config
from jobs.errors import CdrwatchError
from jobs.report import build_report, data, report_date
from jobs.report.page import reasons_by_carrier
from schemas.tables import CDR, DEN, FLAG

DAY = dt.date(2026, 11, 22)
UTC = dt.timezone.utc


def write_rows(root: Path, table, rows: list[dict], day: dt.date, carrier: str | None = None) -> None:
    """`rows` as one Parquet file of lake/<table>/date=D[/carrier=C]/, without the partition columns."""
    folder = root / "lake" / table.name / f"date={day.isoformat()}"
    folder = folder / f"carrier={carrier}" if carrier else folder
    folder.mkdir(parents=True, exist_ok=True)
    schema = table.arrow()
    schema = pa.schema([f for f in schema if f.name not in table.partition_by])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / "part-00000.parquet")


def figure_traces(page: str, div_id: str) -> list[dict]:
    """The traces of the plotly figure drawn into `div_id`, read back from the page's script."""
    call = re.search(rf'Plotly\.newPlot\(\s*"{div_id}",\s*', page)
    traces, _ = json.JSONDecoder().raw_decode(page, call.end())
    return traces


def den_row(
    den_id,
    *,
    score=0.9,
    priority="high",
    district="锦江区",
    lat=30.60,
    lon=104.00,
    radius_m=100.0,
    numbers=("+8613900000001", "+8613900000002"),
    first_seen=DAY,
    nights=1,
    evidence="3 SIMs at a site",
):
    return dict(
        den_id=den_id,
        score=score,
        priority=priority,
        district=district,
        lat=lat,
        lon=lon,
        radius_m=radius_m,
        numbers=list(numbers),
        imeis=["861234567890123"],
        cells=["4100-1"],
        site_names=["锦江区001号基站"],
        active_hours="09-12",
        first_seen=first_seen,
        last_seen=DAY,
        nights_active=nights,
        n_calls=120,
        n_distinct_callees=110,
        n_victims=2,
        signals=["goip"],
        evidence=evidence,
        segments=["1391234"],
    )


def cdr_row(msisdn, local_hour, *, direction="out", cell="4100-1", minute=0, day=DAY):
    # Asia/Shanghai is UTC+8: local hour h of `day` is h-8 UTC (of the day before when negative)
    at = dt.datetime(day.year, day.month, day.day, tzinfo=UTC) + dt.timedelta(hours=local_hour - 8, minutes=minute)
    return dict(
        record_id=f"{msisdn}-{at.isoformat()}-{direction}",
        msisdn=msisdn,
        other_party="+8613800000000",
        direction=direction,
        service="voice",
        start_time=at,
        duration_s=30,
        imsi=None,
        imei=None,
        cell_id=cell,
        source_file="cm/x.csv",
        source_line=1,
    )


@pytest.fixture
def small(tmp_path):
    """A lake of two nights with three dens tonight (one new, one continuing, one moved 2 km), a
    congested site of two carriers' cells, a run summary with a missing carrier, and an outbox."""
    root = tmp_path
    (root / "landing" / "cells").mkdir(parents=True)
    (root / "landing" / "cells" / "cm.csv").write_text(
        "cell_id,lat,lon,site_name,district\n4100-1,30.600000,104.000000,锦江区001号基站,锦江区\n"
        "4100-2,30.700000,104.100000,<b>武侯</b> & co,武侯区\n",
        encoding="utf-8",
    )
    (root / "landing" / "cells" / "cu.csv").write_text(
        "cell_id,lat,lon,site_name,district\n460-01-1-1,30.600100,104.000100,联通锦江站,锦江区\n", encoding="utf-8"
    )
    yesterday = DAY - dt.timedelta(days=1)
    write_rows(
        root,
        DEN,
        [
            den_row("D1", lat=30.6001, first_seen=yesterday),
            den_row("D2", lat=30.6200, first_seen=yesterday),
            den_row("D9", first_seen=yesterday),
        ],
        yesterday,
    )
    write_rows(
        root,
        DEN,
        [
            den_row("D1", first_seen=yesterday, nights=2, numbers=["+8613900000001"]),  # 11 m from yesterday
            den_row(
                "D2",
                lat=30.6020,
                first_seen=yesterday,
                nights=2,
                priority="medium",
                score=0.7,
                numbers=["+8613900000002"],
            ),  # 2 km away
            den_row(
                "D3",
                district="武侯区",
                lat=None,
                lon=None,
                radius_m=None,
                numbers=["+8613900000003"],
                evidence="</td><script>alert('x')</script> & more",
            ),
        ],
        DAY,
    )
    write_rows(
        root,
        FLAG,
        [
            dict(detector="congestion", entity_type="cell", entity_id="4100-1", score=0.9, evidence="den-like"),
            dict(detector="goip", entity_type="msisdn", entity_id="+8613900000001", score=1.0, evidence="box"),
            dict(detector="goip", entity_type="imei", entity_id="861234567890123", score=1.0, evidence="box"),
        ],
        DAY,
    )
    # the congested site (cm 4100-1 and cu 460-01-1-1, 14 m apart): 2 and 4 calls at 10:00 on the earlier
    # nights, 30 tonight (20 through cm, 10 through cu); an incoming call and another site's call do not count
    before = yesterday - dt.timedelta(days=1)
    write_rows(root, CDR, [cdr_row("+8613900000009", 10, minute=i, day=before) for i in range(2)], before, "cm")
    write_rows(root, CDR, [cdr_row("+8613900000009", 10, minute=i, day=yesterday) for i in range(4)], yesterday, "cm")
    write_rows(
        root,
        CDR,
        [cdr_row("+8613900000001", 10, minute=i) for i in range(20)]
        + [
            cdr_row("+8613900000002", 3, cell="4100-2"),
            cdr_row("+8613900000001", 10, direction="in"),
            cdr_row("+8613900000009", 10, cell="4100-2"),
        ],
        DAY,
        "cm",
    )
    write_rows(root, CDR, [cdr_row("+8613900000003", 10, minute=i, cell="460-01-1-1") for i in range(10)], DAY, "cu")
    runs = root / "lake" / "_runs" / "ingest"
    for night, accepted in ((yesterday - dt.timedelta(days=1), 2), (yesterday, 4), (DAY, 33)):
        (runs / f"date={night}").mkdir(parents=True)
        summary = {
            "date": night.isoformat(),
            "warnings": ["ct: no files for 2026-11-22 — late?"] if night == DAY else [],
            "carriers": {
                "cm": {
                    "format": "cn_csv",
                    "files": 2,
                    "read": accepted + 5,
                    "accepted": accepted,
                    "quarantined": 3,
                    "duplicates": 2,
                    "quarantined_by_reason": {"bad timestamp": 2, "broken <json>": 1},
                },
                "cu": {
                    "format": "pipe_gbk",
                    "files": 1,
                    "read": 11,
                    "accepted": 10,
                    "quarantined": 1,
                    "duplicates": 0,
                    "quarantined_by_reason": {"bad timestamp": 1},
                },
            },
        }
        if night == DAY:
            summary["missing_carriers"] = ["ct"]
        (runs / f"date={night}" / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    outbox = root / "outbox" / DAY.isoformat()
    (outbox / "leads").mkdir(parents=True)
    for district in ("锦江区", "武侯区"):
        (outbox / "leads" / f"{district}.csv").write_bytes(b"\xef\xbb\xbfden_id\r\n")
    (outbox / "warnings.csv").write_bytes(
        "\ufeffnumber,district\r\n13800000000,锦江区\r\n13800000001,锦江区\r\n".encode("utf-8")
    )
    config = load_config(
        overrides=[
            f"paths.landing={root / 'landing'}",
            f"paths.lake={root / 'lake'}",
            f"paths.outbox={root / 'outbox'}",
        ]
    )
    return config


def test_night_numbers_count_what_the_lake_and_outbox_hold(small):
    n = data.night_numbers(small, DAY)
    assert (n.rows_ingested, n.quarantined, n.n_flags, n.warnings) == (33 + 10, 3 + 1, 3, 2)
    assert n.flags.select("detector", "entity_type", "flags").rows() == [
        ("congestion", "cell", 1),
        ("goip", "imei", 1),
        ("goip", "msisdn", 1),
    ]
    assert n.reasons.rows() == [("cm", "bad timestamp", 2), ("cm", "broken <json>", 1), ("cu", "bad timestamp", 1)]
    assert n.missing_carriers == ["ct"] and n.partial
    assert n.not_seen == ["D9"]
    status = dict(n.dens.select("den_id", "status").rows())
    assert status == {"D1": "continuing", "D2": "moved", "D3": "new"}
    moved = dict(n.dens.select("den_id", "moved_m").rows())
    assert moved["D1"] == pytest.approx(11.1, abs=0.2) and moved["D2"] == pytest.approx(2000, rel=0.01)
    assert moved["D3"] is None


def test_a_den_further_than_the_threshold_moved_and_a_night_without_summary_counts_nothing(small):
    tonight = pl.DataFrame({"den_id": ["A"], "lat": [30.0], "lon": [104.0], "first_seen": [DAY - dt.timedelta(days=3)]})
    earlier = pl.DataFrame(
        {
            "den_id": ["A", "A"],
            "lat": [30.0, 30.0 + 600 / 110_540],
            "lon": [104.0, 104.0],
            "radius_m": [100.0, 100.0],
            "priority": ["high", "high"],
            "date": [DAY - dt.timedelta(days=2), DAY - dt.timedelta(days=1)],
        }
    )
    assert data.den_status(tonight, earlier, DAY)["status"].to_list() == ["moved"]  # against the latest night
    assert data.den_status(tonight, earlier.head(1), DAY)["status"].to_list() == ["continuing"]
    empty = data.night_numbers(small, DAY + dt.timedelta(days=5))
    assert (empty.rows_ingested, empty.n_flags, empty.dens.height, empty.warnings, empty.partial) == (
        0,
        0,
        0,
        None,
        False,
    )


def test_cells_of_different_carriers_at_one_mast_are_one_site(small):
    cells = data.cell_sites(data.read_cells(small))
    site = dict(zip(cells["cell_id"], cells["site"]))
    assert site["4100-1"] == site["460-01-1-1"] != site["4100-2"]
    sites = data.sites_of(cells)
    mast = sites.filter(pl.col("site") == site["4100-1"]).row(0, named=True)
    assert (mast["label"], mast["n_cells"]) == ("锦江区001号基站", 2)
    assert mast["lat"] == pytest.approx(30.60005)


def test_congested_site_hours_against_the_earlier_nights(small):
    cells = data.cell_sites(data.read_cells(small))
    congested = data.congested_sites(data.read_day(small, FLAG, DAY), cells)
    assert congested.select("label", "score").rows() == [("锦江区001号基站", 0.9)]
    hourly = data.site_hourly(small, DAY, cells.join(congested.select("site"), on="site"), history_days=7)
    assert hourly.select("date", "hour", "n").rows() == [
        (DAY - dt.timedelta(days=2), 10, 2),
        (DAY - dt.timedelta(days=1), 10, 4),
        (DAY, 10, 30),
    ]
    series = data.congestion_series(hourly, DAY)
    assert series.height == 24
    ten = series.filter(pl.col("hour") == 10).row(0, named=True)
    assert (ten["tonight"], ten["same_hour_median"], ten["site_median"], ten["earlier_days"]) == (30, 3.0, 0.0, 2)
    assert series.filter(pl.col("hour") != 10)["tonight"].sum() == 0
    # a night in the lake without a call at the site counts as 0 calls, not as a missing night
    silent = data.congestion_series(hourly, DAY, earlier=[DAY - dt.timedelta(days=d) for d in (1, 2, 3)])
    ten = silent.filter(pl.col("hour") == 10).row(0, named=True)
    assert (ten["same_hour_median"], ten["earlier_days"]) == (2.0, 3)


def test_den_activity_is_the_members_outgoing_calls_per_local_hour(small):
    dens = data.read_day(small, DEN, DAY)
    hourly = data.den_hourly(small, DAY, dens)
    assert hourly.rows() == [("D1", 10, 20), ("D2", 3, 1), ("D3", 10, 10)]


def test_trends_cover_the_nights_up_to_the_report_date(small):
    trends = data.trends(small, DAY)
    rows = trends.filter(pl.col("series") == "rows").select("date", "name", "value").rows()
    assert rows == [
        (DAY - dt.timedelta(days=2), "cm", 2),
        (DAY - dt.timedelta(days=1), "cm", 4),
        (DAY, "cm", 33),
        (DAY - dt.timedelta(days=2), "cu", 10),
        (DAY - dt.timedelta(days=1), "cu", 10),
        (DAY, "cu", 10),
    ]
    dens = trends.filter(pl.col("series") == "dens").select("date", "name", "value").rows()
    assert dens == [(DAY - dt.timedelta(days=1), "high", 3), (DAY, "high", 2), (DAY, "medium", 1)]
    assert data.trends(small, DAY - dt.timedelta(days=1)).filter(pl.col("date") == DAY).is_empty()


def test_quarantine_reasons_are_pivoted_per_carrier():
    reasons = pl.DataFrame(
        {"carrier": ["cm", "cu", "cm"], "reason": ["bad timestamp", "bad timestamp", "broken json"], "rows": [2, 1, 5]}
    )
    assert reasons_by_carrier(reasons).rows() == [("broken json", 5, 0, 5), ("bad timestamp", 2, 1, 3)]


def test_page_escapes_data_links_leads_and_is_the_same_on_a_rerun(small):
    page, numbers = build_report(small, DAY)
    assert page == build_report(small, DAY)[0]
    assert "<script>alert('x')</script>" not in page and "&lt;/td&gt;&lt;script&gt;alert(&#x27;x&#x27;)" in page
    hover = [text for trace in figure_traces(page, "map") for text in trace.get("hovertext") or []]
    assert "&lt;b&gt;武侯&lt;/b&gt; &amp; co<br>武侯区" in hover  # a site name, as plotly gets it
    assert "broken &lt;json&gt;" in page
    assert 'id="partial"' in page and "no delivery from ct" in page
    assert 'href="leads/%E9%94%A6%E6%B1%9F%E5%8C%BA.csv"' in page  # D1's district, URL-quoted
    assert 'href="analysts/unlocated_dens.csv"' in page  # D3 has no position
    for element in (
        "map",
        "chart-congestion",
        "chart-den-activity",
        "chart-trend-rows",
        "chart-trend-flags",
        "chart-trend-dens",
    ):
        assert f'id="{element}"' in page
    assert page.count("Plotly.newPlot(") == 6
    assert re.search(r"moved 2\.0 km", page)


def test_report_date_writes_the_page_into_the_outbox_atomically(small):
    path = report_date(small, DAY)
    assert path == Path(small.paths.outbox) / DAY.isoformat() / "report.html"
    assert path.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert sorted(p.name for p in path.parent.iterdir()) == ["leads", "report.html", "warnings.csv"]


def test_report_needs_dens_and_an_exported_outbox(small):
    with pytest.raises(CdrwatchError, match=r"no dens for 2026-11-25 \(run cdrwatch dens first\)"):
        report_date(small, DAY + dt.timedelta(days=3))
    write_rows(Path(small.paths.lake).parent, DEN, [den_row("D1")], DAY + dt.timedelta(days=3))
    with pytest.raises(CdrwatchError, match=r"no outbox for 2026-11-25 \(run cdrwatch export first\)"):
        report_date(small, DAY + dt.timedelta(days=3))


# ---------------------------------------------------------------- the simulated week

EXTERNAL_LOAD = re.compile(r"<(?:script|img|iframe|link)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//", re.I)


@pytest.mark.slow
def test_every_night_of_the_week_has_a_self_contained_report(week_reported):
    week = week_reported
    for day in week.dates:
        outbox = week.root / "outbox" / day.isoformat()
        page = (outbox / "report.html").read_text(encoding="utf-8")
        assert not EXTERNAL_LOAD.search(page), day
        assert "<script src" not in page and "<link" not in page and page.count("<script") == 9  # all inline
        dens = pl.read_parquet(week.root / "lake" / "dens" / f"date={day}" / "*.parquet")
        assert dens.height > 0
        for den_id in dens["den_id"]:
            assert f'id="den-{den_id}"' in page, (day, den_id)
        links = [unquote(h) for h in re.findall(r'href="((?:leads|analysts)/[^"]+)"', page)]
        assert {f"leads/{d}.csv" for d in dens.drop_nulls("lat")["district"]} <= set(links), day
        assert all((outbox / link).is_file() for link in links), day
        summary = json.loads((week.root / "lake" / "_runs" / "ingest" / f"date={day}" / "summary.json").read_text())
        accepted = sum(c["accepted"] for c in summary["carriers"].values())
        assert f'<div class="big">{accepted:,}</div>' in page, day


@pytest.mark.slow
def test_the_week_reports_new_continuing_and_moved_dens(week_reported):
    week = week_reported
    first = data.night_numbers(week.config, week.dates[0])
    assert first.dens_by("status") == {"new": first.dens.height}
    truth = pl.read_csv(week.truth / "dens.csv", infer_schema=False)
    moves = truth.filter(pl.col("moved") == "true").group_by("den_id").agg(pl.col("date").min())["date"].to_list()
    assert moves, "the simulated week has a den that moves"
    for night in moves:
        numbers = data.night_numbers(week.config, dt.date.fromisoformat(night))
        assert numbers.dens_by("status").get("moved", 0) >= 1, night
        moved = numbers.dens.filter(pl.col("status") == "moved").row(0, named=True)
        assert moved["moved_m"] > 1000
    last = data.night_numbers(week.config, week.dates[-1])
    assert last.dens_by("status").get("continuing", 0) >= 1
