"""Render a study's dashboard: one self-contained HTML file (plotly.js inlined, no network to open it).

The numbers come from `dashboard_data.py` (pure functions, tested); this module only draws them. The
first screen answers four questions side by side with the front plot:
1. the front: selected on the search split (mean over seeds), the official dev score beside it;
2. the seed methods (baselines): mean ± std over seeds;
3. what beat what: the front's search points against the best baseline, on dev, with a Welch interval;
4. what to export: the command for the front point within the budget with the best selected score
   (chosen on the search split, never on dev; its dev claim quoted).
Beside every point, its task head's parameter count (trained and exported with it, not in the budget) and
the learning rate it trained at (`lr`).
The plot: score vs stored parameters (% of the backbone, log axis, 0-parameter points at a place of their
own on the left) up to a little past the budget; front, dominated, stopped and failed trials drawn
differently; the seed methods as labelled markers with ± std.
Below: hypervolume after each search trial, the dimension effects that have anything to compare, the
top parameter importances, and the front's design points in full.
"""
from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from ..core.errors import PETLError
from ..search.optuna_bridge.records import TrialRecord, counts, fill_learning_rates, read_records
from ..search.optuna_bridge.storage import open_study
from ..search.language.study import StudySpec
from ..training.metrics import floor
from .comparison import seeds_text
from .dashboard_data import (FrontPlot, Overview, PlotPoint, effect_panels, front_plot, hypervolume_curve,
                             importances, overview, top_importances)
from .front import Method, head_text, lr_text, other_scores, study_head_params
from .summary import study_references

# group: (legend name, colour, symbol, size)
STYLE = {"front": ("front: search points", "#1f77b4", "circle", 11),
         "dominated": ("dominated search points", "#b0b0b0", "circle", 8),
         "pruned": ("stopped early (no score)", "#ff7f0e", "x", 8),
         "failed": ("failed (no score)", "#d62728", "x-thin", 9),
         "baselines": ("seed methods: baselines, mean ± std over seeds", "#2ca02c", "diamond-open", 14)}


def _hover(p: PlotPoint, metric: str, on: str) -> str:
    task_head = f" + {p.head_params:,} task head, not in the budget" if p.head_params is not None else ""
    where = (f"{p.percent:.3f}% of the backbone ({p.stored_params:,} stored Δh{task_head}), "
             f"lr {lr_text(p.learning_rate)}")
    head = f"#{p.number} {p.kind}: {html.escape(p.label)}<br>{where}"
    if p.seeds == 0:
        return f"{head}<br>{html.escape(p.reason or 'no score')}"
    dev = f"{p.dev:.4f} ± {p.dev_std:.4f}" if p.dev is not None else "-"
    return (f"{head}<br>{metric} on the {on}: {p.y:.4f} ± {p.std:.4f} over {p.seeds} seed(s)"
            f"<br>{metric} on dev: {dev}")


def front_figure(plot: FrontPlot, metric: str) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    for group, (name, color, symbol, size) in STYLE.items():
        points = plot.groups[group]
        if not points:
            continue
        marker = {"color": color, "symbol": symbol, "size": size, "line": {"width": 1, "color": "#333"}}
        extra: dict[str, Any] = {"mode": "markers"}
        if group == "baselines":
            marker["line"] = {"width": 2, "color": color}
            extra = {"mode": "markers+text", "text": [p.label for p in points], "textposition": "middle left",
                     "error_y": {"type": "data", "array": [p.std for p in points], "visible": True}}
        fig.add_trace(go.Scatter(
            x=[p.x for p in points], y=[p.y for p in points], name=f"{name} ({len(points)})",
            marker=marker, customdata=[_hover(p, metric, plot.selected_on) for p in points],
            hovertemplate="%{customdata}<extra></extra>", **extra))
    if plot.line:
        fig.add_trace(go.Scatter(x=[x for x, _ in plot.line], y=[y for _, y in plot.line], mode="lines",
                                 line={"shape": "hv", "color": "#1f77b4", "width": 1.5}, hoverinfo="skip",
                                 name=f"Pareto front ({len(plot.line)} points, baselines included)"))
    axis = plot.axis
    if axis.gap is not None:  # the zero place is not on the log scale: shade it off
        fig.add_vrect(x0=10 ** axis.range[0], x1=axis.gap, fillcolor="#eeeeee", line_width=0, layer="below")
    fig.add_shape(type="line", x0=axis.budget, x1=axis.budget, y0=0, y1=1, yref="paper",
                  line={"dash": "dash", "color": "#666", "width": 1.5})
    # an annotation on a log axis takes log10(x) (a shape takes x itself)
    fig.add_annotation(x=math.log10(axis.budget), y=1, yref="paper", text=f"budget {axis.budget:g}%",
                       showarrow=False, xanchor="center", yanchor="bottom", font={"color": "#444"})
    fig.update_layout(
        title={"text": f"the front: {metric} vs stored Δh parameters", "x": 0.01},
        xaxis={"type": "log", "range": list(axis.range), "tickvals": list(axis.tickvals),
               "ticktext": list(axis.ticktext), "title": "stored Δh parameters (% of the backbone, log scale)"},
        yaxis_title=f"{metric} ({plot.selected_on}, mean over seeds)", height=540, template="plotly_white",
        margin={"l": 60, "r": 20, "t": 60, "b": 40}, legend={"orientation": "h", "y": -0.16, "x": 0})
    return fig


def hypervolume_figure(records: list[TrialRecord], spec: StudySpec, metric: str) -> Any:
    import plotly.graph_objects as go

    curve = hypervolume_curve(records, spec.budget, floor(metric))
    fig = go.Figure(go.Scatter(x=[n for n, _ in curve], y=[v for _, v in curve], mode="lines+markers",
                               name="hypervolume"))
    fig.update_layout(title=f"hypervolume of ({metric}, 1 - stored/budget) after each search trial",
                      xaxis_title="trial number", yaxis_title="hypervolume", height=380, template="plotly_white")
    return fig


def effects_figure(shown: dict[str, list[Any]], metric: str, on: str) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(shown)
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names)
    for i, dimension in enumerate(names):
        row, col = divmod(i, cols)
        effects = shown[dimension]
        # dots with ± std bars, not bars from zero: the differences are a few points of the metric
        fig.add_trace(go.Scatter(
            x=[f"{100 * e.band[0]:.3g}–{100 * e.band[1]:.3g}%<br>{e.value}" for e in effects],
            y=[e.mean for e in effects], mode="markers", showlegend=False, marker={"size": 9},
            error_y={"type": "data", "array": [e.std for e in effects], "visible": True},
            text=[f"{dimension} = {e.value}, n={e.n}" for e in effects],
            hovertemplate="%{text}<br>mean " + metric + " %{y:.4f}<extra></extra>"), row=row + 1, col=col + 1)
    fig.update_layout(title=f"effect of each design dimension on {metric} ({on}), within budget bands (×4 wide)",
                      height=380 * rows, template="plotly_white")
    for row in range(1, rows + 1):
        fig.update_yaxes(title_text=f"mean {metric}", row=row, col=1)
    return fig


def importance_figure(study: Any, metric: str) -> Any:
    import plotly.graph_objects as go

    scores, note = importances(study)
    bars = top_importances(scores)
    fig = go.Figure(go.Bar(x=[v for _, v in bars][::-1], y=[k for k, _ in bars][::-1], orientation="h"))
    fig.update_layout(title=f"parameter importances for {metric} ({note}; the top {min(10, len(scores))})",
                      height=max(300, 28 * len(bars) + 120), template="plotly_white",
                      xaxis_title="importance (Optuna's default evaluator)")
    return fig


HEAD_TITLE = ("parameters of the task head (BERT: pooler + classifier) trained and exported with the point; "
              "not in the budget")
LR_TITLE = "the learning rate the point trained at (part of the design)"


def _head(m: Method) -> str:
    """The point's task head parameter count, as a cell."""
    return f"<td class='head'>{head_text(m.head_params)}</td>"


def _lr(m: Method) -> str:
    """The rate the point trained at, as a cell."""
    return f"<td class='lr'>{lr_text(m.learning_rate)}</td>"


def _label(m: Method) -> str:
    """The design point, cut to the column (whole on hover), with a ⚠ per flag (its text on hover)."""
    flags = "".join(f" <span class='flag' title='{html.escape(f)}'>⚠</span>" for f in m.flags)
    return f"<td class='label' title='{html.escape(m.label)}'>{html.escape(m.label)}{flags}</td>"


def overview_html(view: Overview, metric: str) -> str:
    """The four answers, compactly: front, seed methods, what beat what, what to export."""
    on = html.escape(view.selected_on)
    head = (f"<tr><th>#</th><th>kind</th><th>% backbone</th><th title='{HEAD_TITLE}'>head</th>"
            f"<th title='{LR_TITLE}'>lr</th><th>{html.escape(metric)} {on}</th><th>{html.escape(metric)} dev</th>"
            "<th>design point</th></tr>")

    def row(m: Method) -> str:
        return (f"<tr data-trial='{m.number}'><td>{m.number}</td><td>{m.kind}</td>"
                f"<td>{100 * m.stored_fraction:.3f}%</td>{_head(m)}{_lr(m)}<td>{seeds_text(m.scores)}</td>"
                f"<td>{seeds_text(m.dev)}</td>{_label(m)}</tr>")

    parts = [f"<p id='nothing-learnt' class='warning'><b>{html.escape(view.nothing_learnt)}</b></p>"]  \
        if view.nothing_learnt else []
    parts += [f"<h2>Front <small>(selected on the {on}, mean ± std (seeds); dev beside it)</small></h2>",
              f"<table id='summary-front'><thead>{head}</thead><tbody>{''.join(row(m) for m in view.front)}"
              "</tbody></table>",
              "<h2>Seed methods <small>(baselines, mean ± std over seeds)</small></h2>",
              f"<table id='summary-baselines'><thead>{head}</thead><tbody>"
              f"{''.join(row(m) for m in view.baselines) or '<tr><td colspan=8>none</td></tr>'}</tbody></table>",
              "<h2>What beat what <small>(front search points vs the best baseline, on dev)</small></h2>"]
    if view.reference is None:
        parts.append("<p id='summary-claims'>No baseline in this study: nothing to compare with.</p>")
    else:
        ref = view.reference
        rows = []
        for c in view.claims:
            m = c.point
            if c.comparison is None:
                diff = "-"
            else:
                interval = "" if math.isnan(c.comparison.low) else \
                    f" [{c.comparison.low:+.4f}, {c.comparison.high:+.4f}]"
                diff = f"{c.comparison.difference:+.4f}{interval}"
            cls = " class='holds'" if c.holds else ""
            rows.append(f"<tr data-trial='{m.number}'{cls}><td>{m.number}</td><td>{100 * m.stored_fraction:.3f}%"
                        f"</td>{_head(m)}{_lr(m)}<td>{seeds_text(m.dev)}</td><td>{diff}</td>"
                        f"<td class='verdict'>{html.escape(c.verdict)}</td></tr>")
        parts.append(
            f"<p>Against <b>{html.escape(ref.label)}</b> (#{ref.number}, the best baseline on the {on}; dev "
            f"{seeds_text(ref.dev)}, {100 * ref.stored_fraction:.3f}%, head "
            f"{head_text(ref.head_params)}, lr {lr_text(ref.learning_rate)}):</p>"
            "<table id='summary-claims'><thead><tr><th>#</th><th>% backbone</th>"
            f"<th title='{HEAD_TITLE}'>head</th><th title='{LR_TITLE}'>lr</th><th>dev (seeds)</th>"
            "<th>− baseline [95% CI]</th><th>verdict</th></tr></thead><tbody>"
            + ("".join(rows) or "<tr><td colspan=7>no front search point stores no more</td></tr>")
            + "</tbody></table>")
    parts.append("<h2>What to export</h2>")
    if view.export is None:
        parts.append(f"<p id='summary-export'>Nothing to recommend: {html.escape(view.no_export or '')}.</p>")
    else:
        e = view.export
        parts.append(f"<p id='summary-export' data-trial='{e.number}'>#{e.number} {html.escape(e.label)}: "
                     f"{html.escape(e.why)}.<br><code>{html.escape(e.command)}</code></p>")
    return "<div id='overview'>" + "".join(parts) + "</div>"


def front_table_html(view: Overview, metric: str) -> str:
    rows = []
    for m in view.front:
        dev = f"{m.dev_mean:.4f}" if m.dev else "-"
        rows.append(f"<tr><td>{m.number}</td><td>{m.kind}</td><td>{len(m.scores)}</td><td>{m.mean:.4f}</td>"
                    f"<td>{dev}</td><td>{m.stored_params:,}</td><td>{100 * m.stored_fraction:.3f}%</td>"
                    f"{_head(m)}{_lr(m)}"
                    f"<td>{html.escape(m.label)}</td><td>{html.escape(other_scores(m, metric)) or '-'}</td>"
                    f"<td><code>{html.escape(json.dumps(m.record.config, sort_keys=True))}</code></td></tr>")
    return ("<table id='front-table'><thead><tr><th>trial</th><th>kind</th><th>seeds</th><th>" + html.escape(metric) +
            f" ({html.escape(view.selected_on)}, selected on)</th><th>" + html.escape(metric) +
            f" (dev)</th><th>stored</th><th>% backbone</th><th title='{HEAD_TITLE}'>head</th>"
            f"<th title='{LR_TITLE}'>lr</th><th>design point</th>"
            "<th>other scores</th><th>config</th>"
            "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _drawn_line(plot: FrontPlot) -> str:
    g = {k: len(v) for k, v in plot.groups.items()}
    seeds = sum(p.seeds for p in plot.groups["baselines"])
    text = (f"Drawn: {g['front'] + g['dominated']} search points ({g['front']} on the front, {g['dominated']} "
            f"dominated), {g['baselines']} seed methods ({seeds} trained seeds), {g['pruned']} stopped early, "
            f"{g['failed']} failed.")
    missing = [f"{n} {what}" for what, n in (("reseeds (in their point's mean)", plot.not_drawn["reseed"]),
                                            ("duplicates (on their original)", plot.not_drawn["duplicate"]),
                                            ("over the budget (never trained)", plot.not_drawn["over_budget"]),
                                            ("not fitting the model (never trained)", plot.not_drawn["misfit"]),
                                            ("without a size", plot.not_drawn["no_size"])) if n]
    return text + (" Not drawn: " + ", ".join(missing) + "." if missing else "")


def render(records: list[TrialRecord], spec: StudySpec, study: Any, metric: str) -> str:
    """The whole report as one HTML document."""
    from plotly.offline import get_plotlyjs

    records = fill_learning_rates(records, spec.fixed_learning_rate)  # trials stored before they recorded it
    references = study_references(study)
    plot = front_plot(records, metric, spec.budget, references)
    view = overview(records, metric, budget_fraction=spec.budget, study_file=spec.source, study_name=spec.name,
                    references=references)
    shown, empty = effect_panels(records)

    def block(name: str, fig: Any) -> str:
        return fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"{name}-plot",
                           config={"responsive": True})

    effects = block("effects", effects_figure(shown, metric, view.selected_on)) if shown else ""
    nothing = (f"<p id='effects-note' class='note'>Nothing to compare yet for: {', '.join(empty)} (no budget band holds two of "
               f"their values).</p>" if empty else "")
    summary = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts(records).items() if v)
    described = spec.description.rstrip(".") + ". " if spec.description else ""
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(spec.name)}: petl-search dashboard</title>
<style>body{{font-family:sans-serif;margin:1em 1.5em;max-width:1500px}} h1{{margin:0 0 .2em}}
p.meta{{margin:.2em 0;color:#444;font-size:14px}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:4px 6px;vertical-align:top}} code{{font-size:11px;word-break:break-all}}
#top{{display:grid;grid-template-columns:minmax(0,1.25fr) minmax(0,1fr);gap:1em;align-items:start}}
#overview h2{{font-size:15px;margin:.6em 0 .25em}} #overview h2 small{{font-weight:normal;color:#666}}
#overview table{{font-size:12px;width:100%}} #overview td,#overview th{{padding:2px 4px;white-space:nowrap}}
#overview td.label{{max-width:14em;overflow:hidden;text-overflow:ellipsis}} #overview p{{margin:.25em 0;font-size:13px}}
#overview td.verdict{{white-space:normal}} #overview tr.holds td{{background:#e8f5e9}}
#overview code{{font-size:12px;background:#f4f4f4;padding:1px 3px}} .warning{{background:#fff3e0;padding:.4em}}
.flag{{color:#d62728;cursor:help}} p.note{{font-size:13px;color:#555;margin:1em 0 0}} p.drawn{{font-size:12px;color:#555;margin:0}}</style>
<script type="text/javascript">{get_plotlyjs()}</script></head>
<body><h1>{html.escape(spec.name)}</h1>
<p class="meta">{html.escape(described)}{html.escape(spec.model)} on {html.escape(spec.task)}, budget
{100 * spec.budget:g}% of the backbone's parameters (stored Δh; the task head each point trains and exports
besides, {head_text(study_head_params(records))} parameters, is not in it). Trials: {html.escape(summary)}.</p>
<div id="top"><section id="front">{block("front", front_figure(plot, metric))}
<p class="drawn" id="front-drawn">{html.escape(_drawn_line(plot))}</p></section>
{overview_html(view, metric)}</div>
<section id="hypervolume">{block("hypervolume", hypervolume_figure(records, spec, metric))}</section>
<section id="effects">{nothing}{effects}</section>
<section id="importances">{block("importances", importance_figure(study, metric))}</section>
<section id="front-points"><h2>Front points</h2>{front_table_html(view, metric)}</section>
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
    path.write_text(render(records, spec, study, metric=spec.main_metric))
    return path
