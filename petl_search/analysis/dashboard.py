"""Render a study's dashboard: one self-contained HTML file (plotly.js inlined, no network to open it).

The numbers come from `report.py` (pure functions, tested); this module only draws them:
1. the Pareto front: metric vs stored parameters (% of the backbone, log axis); front, dominated,
   stopped and failed trials drawn differently; the seed methods labelled where they were evaluated;
2. hypervolume after each search trial;
3. the effect of each design dimension (insertion, representation, composition, heads, form, size,
   scale) on the metric, within budget bands (points compared only with points of similar size);
4. parameter importances (Optuna's default evaluator, over the search trials' sampled parameters);
5. the table of front points with their design points.
"""
from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from ..core.errors import PETLError
from ..search.records import TrialRecord, counts, read_records
from ..search.storage import open_study
from ..search.study import StudySpec
from ..training.metrics import floor
from .dashboard_data import hypervolume_curve, importances, scatter_points, seed_methods
from .effects import DIMENSIONS, dimension_effects
from .front import front, methods

STYLE = {"front": ("#1f77b4", "circle", 11), "dominated": ("#b0b0b0", "circle", 8),
         "pruned": ("#ff7f0e", "x", 8), "failed": ("#d62728", "x-thin", 9)}


def front_figure(records: list[TrialRecord], spec: StudySpec, metric: str) -> Any:
    import plotly.graph_objects as go

    points = scatter_points(records, metric)
    scored = [p for p in points if p.metric is not None]
    bottom = min((p.metric for p in scored), default=0.0) - 0.02
    fig = go.Figure()
    for status, (color, symbol, size) in STYLE.items():
        group = [p for p in points if p.status == status and p.percent]
        if not group:
            continue
        # trials without a metric (stopped, failed) sit on a strip under the lowest score
        ys = [p.metric if p.metric is not None else bottom for p in group]
        fig.add_trace(go.Scatter(
            x=[p.percent for p in group], y=ys, mode="markers", name=f"{status} ({len(group)})",
            marker={"color": color, "symbol": symbol, "size": size, "line": {"width": 1, "color": "#333"}},
            text=[f"#{p.number} {p.kind}: {html.escape(p.label)}" + (f"<br>{html.escape(p.reason or '')}"
                                                                    if p.metric is None else "") for p in group],
            hovertemplate="%{text}<br>%{x:.3f}% of the backbone<br>" + metric + " %{y:.4f}<extra></extra>"))
    line = front(methods(records, metric))
    if line:
        fig.add_trace(go.Scatter(x=[100 * m.stored_fraction for m in line], y=[m.mean for m in line],
                                 mode="lines", line={"shape": "hv", "color": "#1f77b4", "width": 1.5},
                                 name="Pareto front", hoverinfo="skip"))
    seeds = seed_methods(records)
    if seeds:
        fig.add_trace(go.Scatter(
            x=[s["percent"] for s in seeds], y=[s["mean"] for s in seeds], mode="markers+text",
            name="seed methods (mean ± std over seeds)", text=[s["label"] for s in seeds], textposition="top center",
            marker={"symbol": "diamond-open", "size": 14, "color": "#2ca02c", "line": {"width": 2}},
            error_y={"type": "data", "array": [s["std"] for s in seeds], "visible": True},
            hovertemplate="%{text}<br>%{x:.3f}%<br>" + metric + " %{y:.4f}<extra></extra>"))
    fig.add_vline(x=100 * spec.budget, line_dash="dash", line_color="#888",
                  annotation_text=f"budget {100 * spec.budget:g}%")
    fig.update_layout(title=f"{spec.name}: {metric} vs stored Δh parameters", xaxis_type="log",
                      xaxis_title="stored Δh parameters (% of the backbone, log scale)", yaxis_title=f"{metric} (dev)",
                      height=560, template="plotly_white")
    return fig


def hypervolume_figure(records: list[TrialRecord], spec: StudySpec, metric: str) -> Any:
    import plotly.graph_objects as go

    curve = hypervolume_curve(records, spec.budget, floor(metric))
    fig = go.Figure(go.Scatter(x=[n for n, _ in curve], y=[v for _, v in curve], mode="lines+markers",
                               name="hypervolume"))
    fig.update_layout(title=f"hypervolume of ({metric}, 1 - stored/budget) after each search trial",
                      xaxis_title="trial number", yaxis_title="hypervolume", height=380, template="plotly_white")
    return fig


def effects_figure(records: list[TrialRecord], metric: str) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(DIMENSIONS)
    cols = 4
    rows = math.ceil(len(names) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names)
    for i, dimension in enumerate(names):
        row, col = divmod(i, cols)
        effects = dimension_effects(records, dimension)
        if not effects:
            fig.add_annotation(text="no budget band holds two values yet", showarrow=False, x=0, y=0,
                               row=row + 1, col=col + 1)
            continue
        # dots with ± std bars, not bars from zero: the differences are a few points of the metric
        fig.add_trace(go.Scatter(
            x=[f"{100 * e.band[0]:.3g}–{100 * e.band[1]:.3g}%<br>{e.value}" for e in effects],
            y=[e.mean for e in effects], mode="markers", showlegend=False, marker={"size": 9},
            error_y={"type": "data", "array": [e.std for e in effects], "visible": True},
            text=[f"{dimension} = {e.value}, n={e.n}" for e in effects],
            hovertemplate="%{text}<br>mean " + metric + " %{y:.4f}<extra></extra>"), row=row + 1, col=col + 1)
    fig.update_layout(title=f"effect of each design dimension on {metric}, within budget bands (×4 wide)",
                      height=380 * rows, template="plotly_white")
    for row in range(1, rows + 1):
        fig.update_yaxes(title_text=f"mean {metric}", row=row, col=1)
    return fig


def importance_figure(study: Any, metric: str) -> Any:
    import plotly.graph_objects as go

    scores, note = importances(study)
    fig = go.Figure(go.Bar(x=list(scores.values())[::-1], y=list(scores)[::-1], orientation="h"))
    fig.update_layout(title=f"parameter importances for {metric} ({note})", height=max(300, 28 * len(scores) + 120),
                      template="plotly_white", xaxis_title="importance (Optuna's default evaluator)")
    return fig


def front_table_html(records: list[TrialRecord], metric: str) -> str:
    rows = []
    for m in front(methods(records, metric)):
        dev = f"{m.dev_mean:.4f}" if m.dev else "-"
        rows.append(f"<tr><td>{m.number}</td><td>{m.kind}</td><td>{len(m.scores)}</td><td>{m.mean:.4f}</td>"
                    f"<td>{dev}</td><td>{m.stored_params:,}</td><td>{100 * m.stored_fraction:.3f}%</td>"
                    f"<td>{html.escape(m.label)}</td>"
                    f"<td><code>{html.escape(json.dumps(m.record.config, sort_keys=True))}</code></td></tr>")
    return ("<table id='front-table'><thead><tr><th>trial</th><th>kind</th><th>seeds</th><th>" + html.escape(metric) +
            " (selected on)</th><th>" + html.escape(metric) + " (dev)</th><th>stored</th><th>% backbone</th>"
            "<th>design point</th><th>config</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def render(records: list[TrialRecord], spec: StudySpec, study: Any, metric: str) -> str:
    """The whole report as one HTML document."""
    from plotly.offline import get_plotlyjs

    figures = [("front", front_figure(records, spec, metric)), ("hypervolume", hypervolume_figure(records, spec, metric)),
               ("effects", effects_figure(records, metric)), ("importances", importance_figure(study, metric))]
    blocks = "\n".join(f"<section id='{name}'>{fig.to_html(full_html=False, include_plotlyjs=False, div_id=name + '-plot')}"
                       f"</section>" for name, fig in figures)
    summary = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts(records).items() if v)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(spec.name)}: petl-search dashboard</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:4px 6px;vertical-align:top}} code{{font-size:11px;word-break:break-all}}</style>
<script type="text/javascript">{get_plotlyjs()}</script></head>
<body><h1>{html.escape(spec.name)}</h1>
<p>{html.escape(spec.description)}</p>
<p>{html.escape(spec.model)} on {html.escape(spec.task)}, budget {100 * spec.budget:g}% of the backbone's parameters
(stored Δh). Trials: {html.escape(summary)}.</p>
{blocks}
<section id="front-points"><h2>Front points</h2>{front_table_html(records, metric)}</section>
</body></html>
"""


def write_dashboard(spec: StudySpec, out: str | Path | None = None) -> Path:
    """Read the study's storage and write its dashboard (default: dashboards/<name>.html)."""
    study = open_study(spec, create=False)
    records = read_records(study)
    if not any(r.scored for r in records):
        raise PETLError(f"study {spec.name!r} has no completed trials yet: nothing to draw")
    path = Path(out) if out else Path("dashboards") / f"{spec.name}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(records, spec, study, spec.main_metric))
    return path
