"""The page's two plots as plotly figures (JSON for plotly.js, which the app serves from the installed
plotly package). Built server-side from the page rows, so the plot and its table show the same data;
each bar and point carries its source resource(s) in the hover text."""
from __future__ import annotations

import datetime as dt
import json
from typing import Any, Sequence

from cds_service.explain.view import ExplanationPage, TimelineRow

SETTING_COLOURS = {"metastatic": "#1f5fa8", "adjuvant": "#7b4fa0", "neoadjuvant": "#a0527b", "early": "#7b4fa0",
                   "unknown": "#6b6b6b"}
CONFIG = {"displaylogo": False, "responsive": True, "displayModeBar": "hover",
          "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d", "toggleSpikelines"]}
_FONT = {"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", "size": 13}


def _ms(start: dt.date, end: dt.date) -> float:
    """A bar's length on a date axis is in milliseconds (at least a day, so a one-dose regimen shows)."""
    return max((end - start).days, 1) * 86_400_000


def _sources(refs: Sequence[str], limit: int = 4) -> str:
    shown = "<br>".join(refs[:limit])
    return shown + (f"<br>… and {len(refs) - limit} more" if len(refs) > limit else "")


def timeline_figure(page: ExplanationPage) -> dict[str, Any] | None:
    import plotly.graph_objects as go   # imported on first use: keeps the hook path's start-up light

    rows: list[TimelineRow] = [r for r in page.timeline if r.start is not None and r.end is not None]
    if not rows:
        return None
    labels = [f"{i + 1}. {r.label}" for i, r in enumerate(rows)]
    fig = go.Figure()
    for setting in dict.fromkeys(r.setting for r in rows):
        picked = [(lab, r) for lab, r in zip(labels, rows) if r.setting == setting]
        fig.add_trace(go.Bar(
            orientation="h", name=setting, y=[lab for lab, _ in picked],
            base=[r.start.isoformat() for _, r in picked], x=[_ms(r.start, r.end) for _, r in picked],
            text=[f"{r.regimen} — {r.ended}" for _, r in picked], textposition="inside", insidetextanchor="start",
            marker={"color": SETTING_COLOURS.get(setting, "#6b6b6b")},
            hovertext=[f"<b>{r.label}</b>: {r.regimen}<br>{r.start} → {r.end} ({r.ended})<br>"
                       f"source: {_sources(r.sources)}" for _, r in picked],
            hoverinfo="text", cliponaxis=False))
    sites = [site for site in page.sites if site.date is not None]
    if sites:   # metastatic sites on a row of their own, when each was first recorded; brain in red
        fig.add_trace(go.Scatter(
            name="metastatic site", mode="markers", y=["Metastatic sites"] * len(sites),
            x=[site.date.isoformat() for site in sites],
            marker={"symbol": "diamond", "size": 13, "color": ["#b00020" if site.brain else "#444" for site in sites]},
            hovertext=[f"<b>{'Brain / CNS: ' if site.brain else ''}{site.display or site.site}</b> {site.date}<br>"
                       f"source: {site.source}" for site in sites], hoverinfo="text"))
    if page.progression:   # documented progression, on the same row as the sites
        fig.add_trace(go.Scatter(
            name="progression", mode="markers", y=["Metastatic sites"] * len(page.progression),
            x=[d.isoformat() for d, _ in page.progression],
            marker={"symbol": "x", "size": 12, "color": "#b00020"},
            hovertext=[f"<b>progression</b> {d}<br>source: {src}" for d, src in page.progression], hoverinfo="text"))
    shapes: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    if page.tfi is not None:
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": page.tfi.start.isoformat(),
                       "x1": page.tfi.end.isoformat(), "y0": 0, "y1": 1, "fillcolor": "#f2c14e", "opacity": 0.3,
                       "line": {"width": 0}, "layer": "below"})
        annotations.append({"x": page.tfi.end.isoformat(), "y": 1, "xref": "x", "yref": "paper", "yanchor": "bottom",
                            "xanchor": "right", "yshift": 18, "showarrow": False, "bgcolor": "#f9e3a8",
                            "text": f"treatment-free interval {page.tfi.months:.1f} months"})
    if page.metastatic_since is not None:
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": page.metastatic_since.isoformat(),
                       "x1": page.metastatic_since.isoformat(), "y0": 0, "y1": 1,
                       "line": {"color": "#b00020", "width": 2, "dash": "dot"}})
        annotations.append({"x": page.metastatic_since.isoformat(), "y": 1, "xref": "x", "yref": "paper",
                            "yanchor": "bottom", "xanchor": "right", "showarrow": False, "font": {"color": "#b00020"},
                            "text": f"metastatic disease {page.metastatic_since} ┊"})
    fig.update_layout(
        barmode="overlay", showlegend=True, font=_FONT, height=140 + 44 * (len(rows) + bool(sites or page.progression)),
        margin={"l": 10, "r": 10, "t": 60, "b": 40}, legend={"orientation": "h", "y": -0.25},
        xaxis={"type": "date", "title": None}, yaxis={"autorange": "reversed", "automargin": True},
        shapes=shapes, annotations=annotations, plot_bgcolor="white", paper_bgcolor="white")
    return _as_dict(fig)


def lvef_figure(page: ExplanationPage) -> dict[str, Any] | None:
    import plotly.graph_objects as go

    if not page.lvef:
        return None
    fig = go.Figure(go.Scatter(
        x=[p.date.isoformat() for p in page.lvef], y=[p.value for p in page.lvef], mode="lines+markers",
        name="LVEF", marker={"size": 10, "color": "#1f5fa8"}, line={"color": "#1f5fa8"},
        hovertext=[f"LVEF {p.value:g}% on {p.date}{' (baseline)' if p.baseline else ''}<br>source: {p.source}"
                   for p in page.lvef], hoverinfo="text"))
    shapes: list[dict[str, Any]] = [
        {"type": "rect", "xref": "x", "yref": "paper", "x0": a.isoformat(), "x1": b.isoformat(), "y0": 0, "y1": 1,
         "fillcolor": "#d9e6f5", "opacity": 0.6, "line": {"width": 0}, "layer": "below"} for a, b in page.her2_periods]
    annotations: list[dict[str, Any]] = []
    for level, colour in ((50, "#c77700"), (40, "#b00020")):
        shapes.append({"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": level, "y1": level,
                       "line": {"color": colour, "width": 1.5, "dash": "dash"}})
        annotations.append({"xref": "paper", "yref": "y", "x": 1, "y": level, "xanchor": "right", "yanchor": "bottom",
                            "showarrow": False, "text": f"{level}%", "font": {"color": colour}})
    baseline = next((p for p in page.lvef if p.baseline), None)
    if baseline is not None:
        shapes.append({"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": baseline.value,
                       "y1": baseline.value, "line": {"color": "#555", "width": 1, "dash": "dot"}})
        annotations.append({"xref": "paper", "yref": "y", "x": 0, "y": baseline.value, "xanchor": "left",
                            "yanchor": "bottom", "showarrow": False, "text": f"baseline {baseline.value:g}%"})
    low = min([p.value for p in page.lvef] + [35.0])
    high = max([p.value for p in page.lvef] + [70.0])
    fig.update_layout(
        font=_FONT, height=320, showlegend=False, margin={"l": 10, "r": 10, "t": 20, "b": 40},
        xaxis={"type": "date"}, yaxis={"title": "LVEF (%)", "range": [low - 5, high + 5], "automargin": True},
        shapes=shapes, annotations=annotations, plot_bgcolor="white", paper_bgcolor="white")
    return _as_dict(fig)


def _as_dict(fig: Any) -> dict[str, Any]:
    """Plain JSON data (plotly's encoder handles dates and numpy); the template embeds it with `tojson`."""
    out = json.loads(fig.to_json())
    out["config"] = CONFIG
    return out
