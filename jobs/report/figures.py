"""The report's plotly figures, built from the frames of `jobs.report.data` (pure: no I/O).

Offline by construction: the map is a plain cartesian plot (x = longitude, y = latitude, equal
metres per pixel both ways) of the cell inventory's sites, so no tile server or topojson is needed.
Text from the data (site names, evidence) is HTML-escaped before plotly sees it: plotly.js renders
a subset of HTML in labels and hover text.
"""

from __future__ import annotations

import html
import math

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from schemas.tables import OUTCOMES

PRIORITY_COLOURS = {"high": "#c62828", "medium": "#ef6c00", "low": "#1e88e5"}
PRIORITY_ORDER = ("high", "medium", "low")
OUTCOME_COLOURS = {
    "raided": "#8b0000",
    "confirmed": "#fb8c00",
    "not_found": "#9e9e9e",
    "false_lead": "#81d4fa",
    "legitimate": "#2e7d32",
}
SERIES_COLOURS = ("#3949ab", "#00897b", "#8e24aa", "#f9a825", "#6d4c41", "#546e7a")
FONT = "system-ui, -apple-system, 'Segoe UI', 'Noto Sans CJK SC', 'WenQuanYi Micro Hei', 'Microsoft YaHei', sans-serif"
M_PER_DEG_LAT = 110_540.0
M_PER_DEG_LON_EQUATOR = 111_320.0


def esc(value) -> str:
    return html.escape("" if value is None else str(value))


def _layout(fig: go.Figure, height: int, **extra) -> go.Figure:
    extra.setdefault("margin", dict(l=50, r=20, t=40, b=40))
    fig.update_layout(template="plotly_white", height=height, font=dict(family=FONT, size=12), **extra)
    return fig


def _empty(text: str, height: int = 220) -> go.Figure:
    """A figure that says why there is nothing to draw (it still renders, so the page keeps its shape)."""
    fig = go.Figure()
    fig.add_annotation(
        text=esc(text), showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font=dict(size=15, color="#607080")
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, height)


def den_map(sites: pl.DataFrame, dens: pl.DataFrame) -> go.Figure:
    """Sites as grey points, district names at their sites' centre, dens as circles of their radius
    (true to scale, visible when zoomed in) with a marker sized by radius and labelled with the den
    id, coloured by priority; a moved den has a dashed line from its previous position."""
    if sites.is_empty() and dens.is_empty():
        return _empty("No cell inventory and no dens: nothing to map", 300)
    fig = go.Figure()
    located = dens.filter(pl.col("lat").is_not_null() & pl.col("lon").is_not_null())
    lat0 = float((sites["lat"] if sites.height else located["lat"]).mean())
    lon_scale = math.cos(math.radians(lat0))
    if sites.height:
        fig.add_trace(
            go.Scatter(
                x=sites["lon"].to_list(),
                y=sites["lat"].to_list(),
                mode="markers",
                name="cell sites",
                marker=dict(size=5, color="#9aa7b4", line=dict(width=0)),
                hovertext=[
                    f"{esc(label)}<br>{esc(district)}"
                    for label, district in zip(sites["label"].to_list(), sites["district"].to_list())
                ],
                hoverinfo="text",
            )
        )
        centres = (
            sites.drop_nulls("district")
            .group_by("district")
            .agg(pl.col("lat").mean(), pl.col("lon").mean())
            .sort("district")
        )
        fig.add_trace(
            go.Scatter(
                x=centres["lon"].to_list(),
                y=centres["lat"].to_list(),
                mode="text",
                name="districts",
                text=[esc(d) for d in centres["district"].to_list()],
                hoverinfo="skip",
                showlegend=False,
                textfont=dict(size=17, color="rgba(55,71,79,0.35)"),
            )
        )
    for den in located.filter(pl.col("status") == "moved").iter_rows(named=True):
        if den["prev_lat"] is not None:
            fig.add_trace(
                go.Scatter(
                    x=[den["prev_lon"], den["lon"]],
                    y=[den["prev_lat"], den["lat"]],
                    mode="lines+markers",
                    line=dict(color=PRIORITY_COLOURS.get(den["priority"], "#555"), dash="dash", width=1.5),
                    marker=dict(size=[7, 0], symbol="x"),
                    showlegend=False,
                    hoverinfo="text",
                    hovertext=f"{esc(den['den_id'])} moved {den['moved_m'] / 1000:.1f} km since {den['previous_date']}",
                )
            )
    label_positions = _label_positions(located, lon_scale)
    for priority in PRIORITY_ORDER:
        group = located.filter(pl.col("priority") == priority).sort("den_id")
        if group.is_empty():
            continue
        colour = PRIORITY_COLOURS[priority]
        for den in group.iter_rows(named=True):
            r = den["radius_m"] or 0.0
            dlat, dlon = r / M_PER_DEG_LAT, r / (M_PER_DEG_LON_EQUATOR * lon_scale)
            fig.add_shape(
                type="circle",
                xref="x",
                yref="y",
                x0=den["lon"] - dlon,
                x1=den["lon"] + dlon,
                y0=den["lat"] - dlat,
                y1=den["lat"] + dlat,
                line=dict(color=colour, width=1.5),
                fillcolor=colour,
                opacity=0.25,
                layer="below",
            )
        fig.add_trace(
            go.Scatter(
                x=group["lon"].to_list(),
                y=group["lat"].to_list(),
                mode="markers+text",
                name=f"{priority} priority den",
                text=[esc(d) for d in group["den_id"].to_list()],
                textposition=[label_positions.get(d, "top center") for d in group["den_id"].to_list()],
                textfont=dict(size=12, color=colour),
                marker=dict(
                    size=[min(40.0, 12 + (r or 0) / 20) for r in group["radius_m"].to_list()],
                    color=colour,
                    opacity=0.55,
                    line=dict(color=colour, width=2),
                ),
                hovertext=[den_hover(d) for d in group.iter_rows(named=True)],
                hoverinfo="text",
            )
        )
    fig.update_xaxes(
        title_text="longitude",
        scaleanchor="y",
        scaleratio=lon_scale,
        showgrid=True,
        gridcolor="#e3e8ee",
        zeroline=False,
        tickformat=".2f",
    )
    fig.update_yaxes(title_text="latitude", showgrid=True, gridcolor="#e3e8ee", zeroline=False, tickformat=".2f")
    return _layout(
        fig,
        640,
        plot_bgcolor="#f7f9fb",
        hovermode="closest",
        legend=dict(orientation="h", yanchor="bottom", y=1.01, x=0),
    )


def _label_positions(dens: pl.DataFrame, lon_scale: float, near_deg: float = 0.012) -> dict[str, str]:
    """den_id -> where its label goes: above the marker, or below when a den labelled before it (north
    to south) is close enough for the two labels to collide."""
    placed: list[tuple[float, float, str]] = []
    positions = {}
    north_first = dens.sort(["lat", "den_id"], descending=[True, False]).select("den_id", "lat", "lon")
    for den_id, lat, lon in north_first.iter_rows():
        clash = any(
            abs(lat - plat) < near_deg and abs(lon - plon) * lon_scale < 4 * near_deg and pos == "top center"
            for plat, plon, pos in placed
        )
        positions[den_id] = "bottom center" if clash else "top center"
        placed.append((lat, lon, positions[den_id]))
    return positions


def den_hover(den: dict) -> str:
    radius = f"±{den['radius_m']:.0f} m" if den.get("radius_m") is not None else "no radius"
    return "<br>".join(
        [
            f"<b>{esc(den['den_id'])}</b> · {esc(den['priority'])} · score {den['score']:.2f} · {esc(den['status'])}",
            f"{esc(den['district'])} · {esc('; '.join((den['site_names'] or [])[:3]))} ({radius})",
            f"{len(den['numbers'] or [])} SIMs, {len(den['imeis'] or [])} IMEIs, {den['n_calls']:,} calls, "
            f"{den['n_victims']} victims · active {esc(den['active_hours'])}",
        ]
    )


def congestion_chart(series: pl.DataFrame, congested: pl.DataFrame, why_empty: str | None = None) -> go.Figure:
    """Small multiples, one per congested site: tonight's outgoing calls/SMS per hour (bars), the same
    hour's median over the earlier nights (dotted) and the site's baseline, the median of every hour
    of the earlier nights (dashed: the congestion detector's). `why_empty` explains an empty chart."""
    if congested.is_empty():
        return _empty(f"No congested site tonight ({why_empty or 'the congestion detector flagged no cell'})")
    sites = list(congested.iter_rows(named=True))
    cols = 2 if len(sites) > 1 else 1
    rows = math.ceil(len(sites) / cols)
    height = 110 + 260 * rows
    fig = make_subplots(
        rows=rows,
        cols=cols,
        horizontal_spacing=0.07,
        vertical_spacing=75 / height,
        subplot_titles=[f"{esc(s['label'])} ({esc(s['district'])}) · score {s['score']:.2f}" for s in sites],
    )
    hours = list(range(24))
    for i, site in enumerate(sites):
        row, col = i // cols + 1, i % cols + 1
        data = series.filter(pl.col("site") == site["site"]).sort("hour")
        if data.is_empty():
            continue
        first = i == 0
        fig.add_trace(
            go.Bar(
                x=hours,
                y=data["tonight"].to_list(),
                name="tonight",
                marker_color="#c62828",
                legendgroup="tonight",
                showlegend=first,
                hovertemplate="%{x}:00 tonight: %{y} out<extra></extra>",
            ),
            row=row,
            col=col,
        )
        if data["earlier_days"][0] > 0:
            fig.add_trace(
                go.Scatter(
                    x=hours,
                    y=data["same_hour_median"].to_list(),
                    mode="lines",
                    name="same hour, median of earlier nights",
                    line=dict(color="#37474f", dash="dot"),
                    legendgroup="same",
                    showlegend=first,
                    hovertemplate="%{x}:00 earlier nights: %{y}<extra></extra>",
                ),
                row=row,
                col=col,
            )
            fig.add_trace(
                go.Scatter(
                    x=hours,
                    y=data["site_median"].to_list(),
                    mode="lines",
                    name=f"site baseline: median of every hour ({data['earlier_days'][0]} earlier nights)",
                    line=dict(color="#1e88e5", dash="dash"),
                    legendgroup="base",
                    showlegend=first,
                    hovertemplate="baseline %{y}/h<extra></extra>",
                ),
                row=row,
                col=col,
            )
    fig.update_xaxes(
        tickmode="array",
        tickvals=list(range(0, 24, 3)),
        ticktext=[f"{h:02d}" for h in range(0, 24, 3)],
        range=[-0.5, 23.5],
    )
    fig.update_yaxes(rangemode="tozero", title_text="out/h", title_standoff=4)
    fig.update_annotations(font_size=13)
    return _layout(
        fig,
        height,
        bargap=0.15,
        legend=dict(orientation="h", yanchor="bottom", y=1 + 40 / height, x=0),
        margin=dict(l=55, r=20, t=80, b=40),
    )


def den_activity_chart(hourly: pl.DataFrame, dens: pl.DataFrame) -> go.Figure:
    """A heatmap: each den (rows, highest priority at the top) by local hour, outgoing calls/SMS."""
    if dens.is_empty():
        return _empty("No dens tonight")
    order = den_order(dens)
    counts = {(r[0], r[1]): r[2] for r in hourly.iter_rows()}
    z = [[counts.get((den, h), 0) for h in range(24)] for den in order]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[f"{h:02d}" for h in range(24)],
            y=[esc(d) for d in order],
            colorscale="YlOrRd",
            xgap=1,
            ygap=1,
            colorbar=dict(title=dict(text="out/h"), thickness=12),
            hovertemplate="%{y} %{x}:00 · %{z} outgoing calls/SMS<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category", title_text="local hour")
    return _layout(fig, 130 + 30 * len(order), margin=dict(l=120, r=20, t=20, b=45))


def den_order(dens: pl.DataFrame) -> list[str]:
    """Den ids by priority, then score (highest first), then id: the order of the table and the charts."""
    rank = {p: i for i, p in enumerate(PRIORITY_ORDER)}
    rows = sorted(
        dens.select("den_id", "priority", "score").iter_rows(),
        key=lambda r: (rank.get(r[1], len(rank)), -(r[2] or 0.0), r[0]),
    )
    return [r[0] for r in rows]


def trend_chart(trends: pl.DataFrame, series: str, title: str, stacked: bool) -> go.Figure:
    """One series of `data.trends` over the nights: stacked bars (rows, dens) or lines (flags); the page
    puts `title` above it."""
    data = trends.filter(pl.col("series") == series)
    if data.is_empty():
        return _empty(f"No {title.lower()} yet", 260)
    nights = sorted(set(trends["date"].to_list()))
    x = [d.isoformat() for d in nights]
    names = sorted(
        set(data["name"].to_list()),
        key=lambda n: (PRIORITY_ORDER.index(n) if n in PRIORITY_ORDER else len(PRIORITY_ORDER), n),
    )
    fig = go.Figure()
    for i, name in enumerate(names):
        values = {d: v for d, v in data.filter(pl.col("name") == name).select("date", "value").iter_rows()}
        y = [values.get(d, 0) for d in nights]
        colour = PRIORITY_COLOURS.get(name, SERIES_COLOURS[i % len(SERIES_COLOURS)])
        if stacked:
            fig.add_trace(go.Bar(x=x, y=y, name=esc(name), marker_color=colour))
        else:
            fig.add_trace(go.Scatter(x=x, y=y, name=esc(name), mode="lines+markers", line=dict(color=colour)))
    fig.update_xaxes(type="category", tickangle=0, tickvals=x, ticktext=[d.strftime("%m-%d") for d in nights])
    fig.update_yaxes(rangemode="tozero")
    return _layout(
        fig,
        280,
        barmode="stack",
        legend=dict(orientation="h", yanchor="top", y=-0.2, x=0),
        margin=dict(l=55, r=15, t=24, b=70),
    )


def outcome_chart(over_time: pl.DataFrame) -> go.Figure:
    """Field visits per visit day (`data.field_outcomes`' over_time), stacked by outcome: found dens
    (raided, confirmed) at the bottom, cleared ones on top."""
    if over_time.is_empty():
        return _empty("No visit reported yet", 260)
    days = sorted(set(over_time["visited_on"].to_list()))
    x = [d.isoformat() for d in days]
    present = set(over_time["outcome"].to_list())
    fig = go.Figure()
    for i, outcome in enumerate([o for o in OUTCOMES if o in present] + sorted(present - set(OUTCOMES))):
        values = dict(over_time.filter(pl.col("outcome") == outcome).select("visited_on", "visits").iter_rows())
        fig.add_trace(
            go.Bar(
                x=x,
                y=[values.get(d, 0) for d in days],
                name=esc(outcome.replace("_", " ")),
                marker_color=OUTCOME_COLOURS.get(outcome, SERIES_COLOURS[i % len(SERIES_COLOURS)]),
                hovertemplate=f"%{{x}} · {esc(outcome)}: %{{y}}<extra></extra>",
            )
        )
    one_day_ticks = (days[-1] - days[0]).days <= 20  # else plotly's own ticks; never hours within a day
    fig.update_xaxes(type="date", tickformat="%m-%d", dtick=86_400_000 if one_day_ticks else None)
    fig.update_yaxes(rangemode="tozero", title_text="visits", dtick=1 if over_time["visits"].max() <= 5 else None)
    return _layout(
        fig,
        300,
        barmode="stack",
        margin=dict(l=55, r=15, t=24, b=70),
        legend=dict(orientation="h", yanchor="top", y=-0.18, x=0, traceorder="normal"),
    )


SERVICE_COLOURS = {"voice": "#c62828", "sms": "#1e88e5"}


def spoofing_hours_chart(hourly: pl.DataFrame) -> go.Figure:
    """Spoofed legs per local hour (`data.spoofed_hourly`), stacked by service: voice, then SMS."""
    if hourly.is_empty():
        return _empty("No spoofed leg tonight", 260)
    hours = list(range(24))
    present = set(hourly["service"].to_list())
    fig = go.Figure()
    for i, service in enumerate([s for s in SERVICE_COLOURS if s in present] + sorted(present - set(SERVICE_COLOURS))):
        counts = dict(hourly.filter(pl.col("service") == service).select("hour", "n").iter_rows())
        fig.add_trace(
            go.Bar(
                x=hours,
                y=[counts.get(h, 0) for h in hours],
                name=esc(service),
                marker_color=SERVICE_COLOURS.get(service, SERIES_COLOURS[i % len(SERIES_COLOURS)]),
                hovertemplate=f"%{{x}}:00 · {esc(service)}: %{{y}} spoofed<extra></extra>",
            )
        )
    fig.update_xaxes(
        tickmode="array",
        tickvals=list(range(0, 24, 3)),
        ticktext=[f"{h:02d}" for h in range(0, 24, 3)],
        range=[-0.5, 23.5],
        title_text="local hour",
    )
    fig.update_yaxes(rangemode="tozero", title_text="spoofed legs")
    return _layout(
        fig,
        300,
        barmode="stack",
        bargap=0.15,
        margin=dict(l=55, r=15, t=24, b=45),
        legend=dict(orientation="h", yanchor="bottom", y=1.01, x=0, traceorder="normal"),
    )
