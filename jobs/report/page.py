"""report.html: one self-contained page (plotly.js inlined once, no network, no timestamps).

Every text that comes from the data is escaped here (`esc`); figures arrive as plotly figures and are
embedded with fixed div ids, so the same night always gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import plotly.graph_objects as go
import plotly.io as pio
import polars as pl
from plotly.offline import get_plotlyjs

from jobs.feedback.precision import NO_FEEDBACK
from jobs.report.data import (
    FIELD_NIGHTS,
    MOVED_M,
    TOP_PRESENTED,
    TREND_NIGHTS,
    FieldOutcomes,
    NightNumbers,
    SpoofingNight,
    spoofed_districts,
    top_presented,
)
from jobs.report.figures import PRIORITY_COLOURS, den_order, esc

UNLOCATED_FILE = "analysts/unlocated_dens.csv"
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["select2d", "lasso2d"]}

CSS = """
:root { --ink:#1f2933; --muted:#607080; --line:#dde3ea; --bg:#f4f6f9; --card:#fff; --accent:#283593; }
* { box-sizing: border-box; }
body { margin:0; font-family: system-ui,-apple-system,'Segoe UI','Noto Sans CJK SC','WenQuanYi Micro Hei',
       'Microsoft YaHei',sans-serif; color:var(--ink); background:var(--bg); font-size:14px; line-height:1.45; }
header { background:var(--accent); color:#fff; padding:18px 28px 12px; }
header h1 { margin:0; font-size:22px; font-weight:600; }
header .sub { margin:4px 0 8px; color:#c5cae9; font-size:12.5px; }
header nav a { color:#e8eaf6; margin-right:16px; font-size:13px; text-decoration:none;
               border-bottom:1px dotted #9fa8da; }
main { max-width:1320px; margin:0 auto; padding:18px 24px 40px; }
.banner { background:#fff4e5; border:1px solid #f0a840; border-left:6px solid #ef6c00; border-radius:6px;
          padding:10px 14px; margin:0 0 16px; font-weight:500; }
.cards { display:grid; grid-template-columns:repeat(5, minmax(0,1fr)); gap:14px; margin-bottom:18px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
.card h3 { margin:0; font-size:12px; font-weight:600; text-transform:uppercase; letter-spacing:.04em;
           color:var(--muted); }
.card .big { font-size:28px; font-weight:650; margin:2px 0 4px; font-variant-numeric: tabular-nums; }
.card ul { list-style:none; margin:0; padding:0; font-size:12.5px; color:var(--muted); }
.card li { display:flex; justify-content:space-between; gap:8px; }
.card li b { color:var(--ink); font-weight:600; font-variant-numeric: tabular-nums; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:14px 18px;
          margin-bottom:18px; }
section h2 { margin:0 0 4px; font-size:17px; }
section p.note { margin:2px 0 10px; color:var(--muted); font-size:12.5px; }
.grid3 { display:grid; grid-template-columns:repeat(3, minmax(0,1fr)); gap:12px; }
.grid3 h3 { margin:8px 0 0 6px; font-size:13.5px; font-weight:600; color:#37474f; }
.grid2 { display:grid; grid-template-columns:repeat(2, minmax(0,1fr)); gap:18px; }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#f0f3f7; font-weight:600; font-size:12px; color:#445; white-space:nowrap; }
td.num, th.num { text-align:right; font-variant-numeric: tabular-nums; white-space:nowrap; }
td.evidence { color:#445; font-size:12px; min-width:240px; }
.tablewrap { overflow-x:auto; }
td.nowrap { white-space:nowrap; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; color:#fff; font-size:11.5px; font-weight:600; }
.status-new { color:#2e7d32; font-weight:600; } .status-moved { color:#ef6c00; font-weight:600; }
a { color:var(--accent); }
footer { color:var(--muted); font-size:12px; text-align:center; padding:8px 0 24px; }
.big .high { font-size:13px; font-weight:500; color:#c62828; }
p.big-line { margin:4px 0 2px; font-size:16px; } p.big-line b { font-variant-numeric: tabular-nums; }
@media (max-width: 1000px) { .cards { grid-template-columns:repeat(2, minmax(0,1fr)); }
                             .grid3, .grid2 { grid-template-columns:1fr; } }
"""


@dataclass
class PageParts:
    """What the page shows besides the headline numbers."""

    numbers: NightNumbers
    figures: dict[str, go.Figure]  # element id -> figure (map, chart-congestion, ...)
    lead_files: dict[str, str]  # district -> leads/<district>.csv (relative to outbox/D/)
    flags_detail: pl.DataFrame  # data.flag_counts
    source: dict[str, str]  # lake, landing, outbox, timezone: shown in the footer
    field: FieldOutcomes | None = None  # data.field_outcomes; None: not gathered (the section says so)
    spoofing: SpoofingNight | None = None  # data.spoofing_night; None or not ran: "not run for this night"


def figure_div(fig: go.Figure, div_id: str) -> str:
    """The figure as a <div id=div_id> and its script; plotly.js itself is in the page's head."""
    return pio.to_html(
        fig, include_plotlyjs=False, full_html=False, div_id=div_id, config=PLOTLY_CONFIG, default_width="100%"
    )


def _num(value: int | float | None) -> str:
    return "–" if value is None else f"{value:,}"


def _items(pairs) -> str:
    return "".join(f"<li><span>{esc(k)}</span><b>{v}</b></li>" for k, v in pairs)


def _href(relative: str) -> str:
    return esc(quote(relative))


def cards(n: NightNumbers) -> str:
    carriers = [(r["carrier"], _num(r["accepted"])) for r in n.carriers.iter_rows(named=True)]
    by_reason = (
        n.reasons.group_by("reason")
        .agg(pl.col("rows").sum())
        .sort(["rows", "reason"], descending=[True, False])
        .head(3)
    )
    reasons = [(r, _num(v)) for r, v in by_reason.iter_rows()]
    detectors = [
        (d, _num(int(v)))
        for d, v in n.flags.group_by("detector").agg(pl.col("flags").sum()).sort("detector").iter_rows()
    ]
    status = n.dens_by("status") if n.dens.height else {}
    dens = [(s, _num(status.get(s, 0))) for s in ("new", "continuing", "moved")]
    if n.not_seen:
        dens.append(("not seen tonight", _num(len(n.not_seen))))
    priority = n.dens_by("priority") if n.dens.height else {}
    warnings_link = '<a href="warnings.csv">warnings.csv</a>' if n.warnings is not None else "not exported"
    high = priority.get("high", 0)
    return f"""<div class="cards" id="headline">
<div class="card"><h3>CDRs ingested</h3><div class="big">{_num(n.rows_ingested)}</div><ul>{_items(carriers)}</ul></div>
<div class="card"><h3>Quarantined rows</h3><div class="big">{_num(n.quarantined)}</div><ul>{_items(reasons)}</ul></div>
<div class="card"><h3>Flags</h3><div class="big">{_num(n.n_flags)}</div><ul>{_items(detectors)}</ul></div>
<div class="card"><h3>Dens</h3><div class="big">{_num(n.dens.height)}<span class="high"> {high} high</span></div>
<ul>{_items(dens)}</ul></div>
<div class="card"><h3>Residents to warn</h3><div class="big">{_num(n.warnings)}</div>
<ul>{_items([("list", warnings_link)])}</ul></div>
</div>"""


def banner(n: NightNumbers) -> str:
    if not n.partial:
        return ""
    parts = []
    if n.missing_carriers:
        parts.append("no delivery from " + ", ".join(esc(c) for c in n.missing_carriers))
    if n.partial_note:
        parts.append(esc(n.partial_note))
    return (
        f'<div class="banner" id="partial">Partial night: {"; ".join(parts)}. Counts, flags and dens '
        f'cover only what was delivered; a rerun after the late files arrive replaces this report.</div>'
    )


def den_table(n: NightNumbers, lead_files: dict[str, str]) -> str:
    if n.dens.is_empty():
        return '<p class="note">No dens tonight.</p>'
    by_id = {r["den_id"]: r for r in n.dens.iter_rows(named=True)}
    rows = []
    for den_id in den_order(n.dens):
        d = by_id[den_id]
        colour = PRIORITY_COLOURS.get(d["priority"], "#555")
        if d["lat"] is not None and d["district"] in lead_files:
            where = f'<a href="{_href(lead_files[d["district"]])}">{esc(d["district"])}</a>'
        else:
            where = f'{esc(d["district"] or "no district")} · <a href="{_href(UNLOCATED_FILE)}">unlocated</a>'
        status = esc(d["status"])
        if d["status"] == "moved":
            status += f" {d['moved_m'] / 1000:.1f} km"
        rows.append(
            f'<tr id="den-{esc(den_id)}"><td class="nowrap"><b>{esc(den_id)}</b></td>'
            f'<td><span class="badge" style="background:{colour}">{esc(d["priority"])}</span></td>'
            f'<td class="num">{d["score"]:.2f}</td><td class="nowrap status-{esc(d["status"])}">{status}</td>'
            f'<td class="nowrap">{where}</td>'
            f'<td class="num">{len(d["numbers"] or [])}</td><td class="num">{len(d["imeis"] or [])}</td>'
            f'<td class="num">{_num(d["n_calls"])}</td><td class="num">{_num(d["n_victims"])}</td>'
            f'<td>{esc((d["active_hours"] or "").replace(";", "; "))}</td>'
            f'<td>{esc(d["first_seen"])} · {d["nights_active"]} night{"s" if d["nights_active"] != 1 else ""}</td>'
            f'<td>{esc(", ".join(d["signals"] or []))}</td><td class="evidence">{esc(d["evidence"])}</td></tr>'
        )
    head = "".join(
        f'<th{" class=num" if h in ("score", "SIMs", "IMEIs", "calls", "victims") else ""}>{h}</th>'
        for h in (
            "den",
            "priority",
            "score",
            "status",
            "district (leads)",
            "SIMs",
            "IMEIs",
            "calls",
            "victims",
            "active",
            "first seen",
            "signals",
            "evidence",
        )
    )
    return (
        f'<div class="tablewrap"><table id="den-table"><thead><tr>{head}</tr></thead>'
        f'<tbody>{"".join(rows)}</tbody></table></div>'
    )


def _table(frame: pl.DataFrame, numeric: set[str], table_id: str) -> str:
    if frame.is_empty():
        return '<p class="note">none</p>'
    head = "".join(f'<th{" class=num" if c in numeric else ""}>{esc(c)}</th>' for c in frame.columns)

    def cell(column, value) -> str:
        if column not in numeric:
            return f"<td>{esc(value)}</td>"
        return f'<td class="num">{_num(value) if isinstance(value, int) else f"{value:.2f}"}</td>'

    body = "".join(
        "<tr>" + "".join(cell(c, v) for c, v in zip(frame.columns, row)) + "</tr>" for row in frame.iter_rows()
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def reasons_by_carrier(reasons: pl.DataFrame) -> pl.DataFrame:
    """carrier, reason, rows -> one row per reason (most rows first), a column per carrier, a total."""
    if reasons.is_empty():
        return pl.DataFrame(schema={"reason": pl.String, "total": pl.Int64})
    carriers = sorted(set(reasons["carrier"].to_list()))
    wide = reasons.pivot(on="carrier", index="reason", values="rows", aggregate_function="sum").fill_null(0)
    return (
        wide.select("reason", *carriers)
        .with_columns(pl.sum_horizontal(carriers).alias("total"))
        .sort(["total", "reason"], descending=[True, False])
    )


def field_section(field: FieldOutcomes | None, figs: dict[str, go.Figure]) -> str:
    """Field outcomes: the leads of the last nights not yet visited and the chart of outcomes per visit
    day; one line instead when nothing was imported."""
    head = '<section id="field"><h2>Field outcomes</h2>'
    if field is None or field.feedback_rows == 0:
        return f'{head}\n<p class="note" id="no-feedback">{esc(NO_FEEDBACK)}.</p></section>'
    share = f" ({field.not_visited_share:.0%})" if field.not_visited_share is not None else ""
    chart = (
        figure_div(figs["chart-field-outcomes"], "chart-field-outcomes")
        if "chart-field-outcomes" in figs
        else f'<p class="note">No visit reported on or before {field.day}.</p>'
    )
    return f"""{head}
<p class="big-line" id="not-visited">Leads not yet visited: <b>{_num(field.not_visited)}</b> of
<b>{_num(field.leads)}</b>{share}</p>
<p class="note">Leads: the dens of the last {FIELD_NIGHTS} nights up to this one that were not suppressed; visited:
a field unit reported an outcome for the den on or after its first lead night, up to this night. The chart shows each
den's latest outcome (lake/feedback) on the day of that visit: raided and confirmed are dens found on the ground.</p>
{chart}
</section>"""


def spoofing_judgement(spoofing: SpoofingNight) -> str:
    """What the detector judged: the incoming legs showing a local or protected number, how many a
    carrier's outgoing leg explained, how many were spoofed, and what was left unjudged and why."""
    summary = spoofing.summary
    if summary is None:
        legs = spoofing.legs.height
        return (
            f'<p class="note" id="spoofing-judgement">No judgement counts for this night (detect wrote no '
            f'spoofing.json); {_num(legs)} spoofed leg{"s" if legs != 1 else ""} in lake/spoofed.</p>'
        )
    campaigns = summary.get("campaigns")
    in_campaigns = f" in <b>{_num(int(campaigns))}</b> campaign{'s' if campaigns != 1 else ''}" if campaigns else ""
    line = (
        f'<p class="big-line" id="spoofing-judgement">Incoming legs presenting a local subscriber\'s or a '
        f'protected number: <b>{_num(summary.get("incoming_legs"))}</b> · matched to an outgoing leg: '
        f'<b>{_num(summary.get("matched"))}</b> · spoofed: <b>{_num(summary.get("spoofed"))}</b>{in_campaigns} · '
        f'not judged: <b>{_num(spoofing.not_judged)}</b></p>'
    )
    unjudged = sorted((summary.get("unjudged_carriers") or {}).items())
    banner_ = (
        ""
        if not unjudged
        else '<div class="banner" id="spoofing-unjudged">Not judged tonight: '
        + "; ".join(f"numbers of {esc(carrier)} ({esc(cause)})" for carrier, cause in unjudged)
        + ". A call showing one of their subscribers' numbers cannot be told from a real one: none of "
        "them is counted as spoofed.</div>"
    )
    tolerance = summary.get("tolerance_s")
    within = f" within {_num(tolerance)} s" if tolerance is not None else ""
    reasons = sorted(
        ((r, int(n)) for r, n in (summary.get("not_judged") or {}).items()), key=lambda rn: (-rn[1], rn[0])
    )
    by_reason = (
        ""
        if not reasons
        else ' Not judged, by reason:</p><ul class="note" id="spoofing-not-judged">'
        + "".join(f"<li>{esc(r)}: <b>{_num(n)}</b></li>" for r, n in reasons)
        + "</ul>"
    )
    return (
        f'{banner_}{line}\n<p class="note">Matched: a carrier recorded an outgoing leg of the presented number '
        f'to the receiver{within}. Spoofed: none did.{by_reason or "</p>"}'
    )


def spoofing_section(spoofing: SpoofingNight | None, figs: dict[str, go.Figure]) -> str:
    """Caller-ID spoofing: the judgement line, the spoofed legs per hour, the presented numbers and the
    receivers' districts; one line instead when the detector did not run for the night."""
    head = '<section id="spoofing"><h2>Caller-ID spoofing</h2>'
    if spoofing is None or not spoofing.ran:
        day = f"lake/spoofed/date={spoofing.day}" if spoofing is not None else "lake/spoofed"
        return (
            f'{head}\n<p class="note" id="spoofing-not-run">Not run for this night (no {esc(day)} and no '
            f'spoofing summary: the lake predates the spoofing detector, or detect has not run).</p></section>'
        )
    legs = spoofing.legs
    presented = top_presented(legs)
    n_presented = legs["presented"].n_unique() if legs.height else 0
    shown = (
        f"the {TOP_PRESENTED} with most legs of {_num(n_presented)}"
        if n_presented > TOP_PRESENTED
        else f"all {_num(n_presented)}"
    )
    chart = figure_div(figs["chart-spoofing-hours"], "chart-spoofing-hours") if "chart-spoofing-hours" in figs else ""
    return f"""{head}
{spoofing_judgement(spoofing)}
<p class="note">Spoofed legs tonight (lake/spoofed), per local hour of the receiver's carrier's record.</p>
{chart}
<div class="grid2"><div><p class="note">Numbers shown to receivers ({shown}): a protected number, or a local
subscriber's whose phone placed no such call (impersonated, not a suspect). Answered: voice legs with a
duration.</p>
{_table(presented, {"legs", "receivers", "answered"}, "spoofing-presented-table")}</div>
<div><p class="note">Receivers' districts (by the cell of the incoming leg).</p>
{_table(spoofed_districts(legs), {"legs", "receivers", "answered", "campaigns"}, "spoofing-districts-table")}
</div></div>
</section>"""


def render(parts: PageParts) -> str:
    n, figs = parts.numbers, parts.figures
    day = n.day.isoformat()
    unlocated = n.dens.filter(pl.col("lat").is_null() | pl.col("lon").is_null())["den_id"].to_list()
    unlocated_note = (
        f'<p class="note">Not on the map (no position): {esc(", ".join(sorted(unlocated)))} — see '
        f'<a href="{_href(UNLOCATED_FILE)}">{UNLOCATED_FILE}</a>.</p>'
        if unlocated
        else ""
    )
    not_seen = (
        f'<p class="note">Dens of the previous night not found tonight: {esc(", ".join(n.not_seen))}.</p>'
        if n.not_seen
        else ""
    )
    leads = " · ".join(f'<a href="{_href(rel)}">{esc(district)}</a>' for district, rel in parts.lead_files.items())
    ingest_warnings = "".join(f"<li>{esc(w)}</li>" for w in n.ingest_warnings)
    reasons = reasons_by_carrier(n.reasons)
    src = parts.source
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>cdrwatch report {day}</title>
<style>{CSS}</style>
<script>window.PlotlyConfig = {{MathJaxConfig: 'local'}};</script>
<script>{get_plotlyjs()}</script>
</head>
<body>
<header>
<h1>cdrwatch · night of {day}</h1>
<p class="sub">local time {esc(src["timezone"])} · lake {esc(src["lake"])} · outbox {esc(src["outbox"])}</p>
<nav><a href="#map-section">map</a><a href="#dens">dens</a><a href="#congestion">congested sites</a>
<a href="#activity">den activity</a><a href="#spoofing">caller-ID spoofing</a>
<a href="#trends">last nights</a><a href="#field">field outcomes</a>
<a href="#ingest">ingest</a>
<a href="#flags">flags</a></nav>
</header>
<main>
{banner(n)}
{cards(n)}
<section id="map-section"><h2>Dens on the cell grid</h2>
<p class="note">Grey points: cell sites of the carriers' inventories (no basemap). Circles: dens at their estimated
position, marker size by radius (the true radius is drawn to scale; zoom in to see it), colour by priority;
a dashed line joins a moved den to its previous position. Drag to zoom, double-click to reset.</p>
{figure_div(figs["map"], "map")}
{unlocated_note}</section>
<section id="dens"><h2>Dens tonight</h2>
<p class="note">Highest priority first. The district links open that field unit's lead file; status compares each den
with its previous night (moved: more than {MOVED_M:.0f} m). Lead files: {leads or "none exported"}.</p>
{den_table(n, parts.lead_files)}
{not_seen}</section>
<section id="congestion"><h2>Congested sites: outgoing calls per hour against their baseline</h2>
<p class="note">Bars: tonight's outgoing calls and SMS at the site (all carriers' cells). Dashed: the site's baseline,
the median of every hour of the earlier nights (what the congestion detector compares with); dotted: the same hour's
median over the earlier nights (a den that works the same shift every day shows up there too).</p>
{figure_div(figs["chart-congestion"], "chart-congestion")}
</section>
<section id="activity"><h2>Den activity by hour</h2>
<p class="note">Outgoing calls and SMS of each den's SIMs per local hour tonight.</p>
{figure_div(figs["chart-den-activity"], "chart-den-activity")}
</section>
{spoofing_section(parts.spoofing, figs)}
<section id="trends"><h2>Last nights</h2>
<p class="note">Up to {TREND_NIGHTS} nights ending with this one, as far as the lake has them.</p>
<div class="grid3">
<div><h3>CDR rows ingested, per carrier</h3>{figure_div(figs["chart-trend-rows"], "chart-trend-rows")}</div>
<div><h3>Flags, per detector</h3>{figure_div(figs["chart-trend-flags"], "chart-trend-flags")}</div>
<div><h3>Dens, per priority</h3>{figure_div(figs["chart-trend-dens"], "chart-trend-dens")}</div>
</div></section>
{field_section(parts.field, figs)}
<section id="ingest"><h2>Ingest</h2>
<div class="grid2"><div><p class="note">Rows per carrier (read = accepted + quarantined + duplicates).</p>
{_table(n.carriers, {"files", "read", "accepted", "quarantined", "duplicates"}, "ingest-table")}
<ul class="note">{ingest_warnings}</ul></div>
<div><p class="note">Quarantined rows by reason and carrier (lake/quarantine/date={day}).</p>
{_table(reasons, set(reasons.columns) - {"reason"}, "quarantine-table")}</div></div>
</section>
<section id="flags"><h2>Flags per detector</h2>
{_table(parts.flags_detail, {"flags", "mean_score"}, "flags-table")}
</section>
</main>
<footer>cdrwatch report for {day} · landing {esc(src["landing"])}</footer>
</body>
</html>
"""
