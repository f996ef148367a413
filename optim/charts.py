"""The generic Plotly figures of a run's rows: Pareto scatter, bars, parallel coordinates, sweeps,
learning curves, device estimates; and the helpers technique-specific charts share.

Pure plotly (no UI): the dashboard shows these figures, the report embeds them, the export
writes them (:mod:`optim.rendering`). Every builder takes the run's result rows (baseline
first) and returns ``None`` when the rows hold no data for it, so a caller can simply skip it.
Each is declared with :func:`optim.views.chart`; a technique declares its own charts in its
module the same way (HPO history in ``techniques/hpo.py``, exits in ``techniques/early_exit.py``).
Units and directions come from the metric catalogue.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from optim.compare import MetricColumn, _num, _ok, baseline_of, metric_columns
from optim.evaluation.catalogue import metric_label, pareto_axes
from optim.evaluation.pareto import front_2d
from optim.views import Rows, chart, chart_view, chart_views

num = _num  # a float, or NaN for a missing / non-numeric value (for chart builders elsewhere)

#: Axes a Pareto scatter can plot the task metric against: label → result key (from the catalogue).
PARETO_X = pareto_axes()

# Fixed colours per family so a family looks the same in every chart and every run.
_FAMILY_COLORS = {
    "baseline": "#374151",
    "feature-selection": "#0ea5e9",
    "pruning": "#f97316",
    "quantization": "#2563eb",
    "distillation": "#a855f7",
    "hpo": "#eab308",
    "edge": "#14b8a6",
    "hardware": "#64748b",
    "optimizer": "#ec4899",
    "compression": "#16a34a",
    "adaptive": "#dc2626",
}
_EXTRA_COLORS = ["#7c3aed", "#0891b2", "#b45309", "#be123c", "#4d7c0f", "#1d4ed8", "#9333ea", "#c2410c"]
SERIES = ["#2563eb", "#f97316", "#16a34a", "#a855f7", "#dc2626", "#0891b2", "#ca8a04", "#db2777", "#4b5563"]
_TEMPLATE = "plotly_white"
_FONT = dict(family="Inter, Segoe UI, Helvetica, Arial, sans-serif", size=13)


def family_color(family: str, families: Sequence[str] = ()) -> str:
    """The colour of a family; chained families ("pruning+compression") get stable extra colours."""
    if family in _FAMILY_COLORS:
        return _FAMILY_COLORS[family]
    extras = [f for f in dict.fromkeys(families) if f not in _FAMILY_COLORS]
    i = extras.index(family) if family in extras else abs(hash(family))
    return _EXTRA_COLORS[i % len(_EXTRA_COLORS)]


def plotly_go() -> Any:
    import plotly.graph_objects as go

    return go


def apply_layout(fig: Any, title: str, **kw: Any) -> Any:
    kw.setdefault("margin", dict(l=60, r=30, t=60, b=50))
    kw.setdefault("legend", dict(title_text=""))
    fig.update_layout(template=_TEMPLATE, font=_FONT, title=dict(text=title, x=0.01, xanchor="left"), **kw)
    return fig


def ok_rows(rows: Rows) -> list[Mapping[str, Any]]:
    return [r for r in rows if _ok(r)]


def _column(rows: Rows, key: str) -> MetricColumn | None:
    return next((m for m in metric_columns(rows) if m.key == key), None)


def axis_options(rows: Rows) -> dict[str, str]:
    """The Pareto x axes these rows have data for (label → result key)."""
    ok = ok_rows(rows)
    return {label: key for label, key in pareto_axes().items()
            if sum(not math.isnan(_num(r.get(key))) for r in ok) >= 1}


def _hover(r: Mapping[str, Any]) -> str:
    return f"<b>{r.get('candidate_id')}</b> {r.get('recipe')}<br>{r.get('family')}"


# --- Pareto scatter -------------------------------------------------------------------------------
@chart("pareto", "Pareto front", order=10)
def pareto_scatter(rows: Rows, x: str = "latency_ms_p50_b1", y: str = "metric_value", *,
                   log_x: bool | None = None, highlight: str | None = None) -> Any | None:
    """Task metric (y) against a cost (x: latency, size, energy, MACs), coloured by family.

    The Pareto front of the two plotted objectives (cost down, metric up) is drawn as a step
    line; ``highlight`` rings one candidate (the recommended one). A row timed on another node
    (``--measure-on per-node``) sits where its timed figures read beside the baseline
    (:func:`optim.evaluation.noise.on_baseline_node`); its hover gives the figure measured there.
    """
    from optim.evaluation.noise import NODE_BASELINE, on_baseline_node

    go = plotly_go()
    base = baseline_of(rows)
    ok = [r for r in ok_rows(rows) if not (math.isnan(on_baseline_node(r, base, x))
                                           or math.isnan(on_baseline_node(r, base, y)))]
    mx, my = _column(rows, x), _column(rows, y)
    if not ok or mx is None or my is None:
        return None
    fig = go.Figure()
    xs = np.array([on_baseline_node(r, base, x) / mx.scale for r in ok])
    ys = np.array([on_baseline_node(r, base, y) / my.scale for r in ok])
    # What a scaled point measured on its own node, for its hover.
    elsewhere = [
        "".join(f"<br>timed on {r.get('measured_on') or 'another node'}: {m.axis_label} {_num(r.get(k)) / m.scale:.4g} "
                f"raw, placed by its ratio to the baseline timed there"
                for k, m in ((x, mx), (y, my)) if k in (r.get(NODE_BASELINE) or {}))
        for r in ok]
    on = front_2d(xs, ys, x_higher_is_better=mx.higher_is_better, y_higher_is_better=my.higher_is_better)
    if on.sum() >= 1:
        order = np.argsort(xs[on])
        fx, fy = xs[on][order], ys[on][order]
        fig.add_trace(go.Scatter(x=fx, y=fy, mode="lines", line=dict(shape="hv", color="#9ca3af", width=2, dash="dot"),
                                 name="Pareto front", hoverinfo="skip"))
    families = [str(r.get("family")) for r in ok]
    for fam in dict.fromkeys(families):
        idx = [i for i, f in enumerate(families) if f == fam]
        is_base = fam == "baseline"
        fig.add_trace(
            go.Scatter(
                x=xs[idx],
                y=ys[idx],
                mode="markers+text",
                name=fam,
                # Ids on the front, the baseline and the pick only: a label on every point overlaps.
                text=[
                    str(ok[i].get("candidate_id"))
                    if (on[i] or is_base or ok[i].get("candidate_id") == highlight)
                    else ""
                    for i in idx
                ],
                textposition="top center",
                customdata=[str(ok[i].get("candidate_id")) for i in idx],
                marker=dict(
                    size=[18 if is_base else (15 if on[i] else 11) for i in idx],
                    symbol="star" if is_base else ["circle" if on[i] else "circle-open" for i in idx],
                    color=family_color(fam, families),
                    line=dict(width=2, color=family_color(fam, families)),
                ),
                hovertext=[_hover(ok[i]) + elsewhere[i] for i in idx],
                hovertemplate="%{hovertext}<br>"
                + f"{mx.axis_label}: %{{x:.4g}}<br>{my.axis_label}: %{{y:.4g}}<extra></extra>",
            )
        )
    if highlight is not None:
        hi = [i for i, r in enumerate(ok) if r.get("candidate_id") == highlight]
        if hi:
            fig.add_trace(go.Scatter(x=xs[hi], y=ys[hi], mode="markers", name="recommended",
                                     marker=dict(size=30, symbol="circle-open", color="#16a34a", line=dict(width=3)),
                                     hoverinfo="skip"))
    if log_x is None:
        pos = xs[xs > 0]
        log_x = spans_decade(pos)
    fig.update_xaxes(title_text=mx.axis_label, type="log" if log_x else "linear")
    if log_x:
        fig.update_xaxes(tickvals=_log_ticks(xs[xs > 0]), tickformat=".3~g")
    fig.update_yaxes(title_text=my.axis_label)
    corner = ("right" if mx.higher_is_better else "left", "top" if my.higher_is_better else "bottom")
    fig.add_annotation(text="better", xref="paper", yref="paper", showarrow=False,
                       x=0.99 if corner[0] == "right" else 0.01, y=0.99 if corner[1] == "top" else 0.01,
                       xanchor=corner[0], yanchor=corner[1], font=dict(color="#16a34a", size=12))
    return apply_layout(fig, f"{my.axis_label} vs {mx.axis_label.split(' (')[0].lower()} — Pareto front", height=480)


def spans_decade(values: np.ndarray) -> bool:
    """Whether positive ``values`` span more than 10× (a linear axis would squash the small ones)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    return bool(len(values) >= 2 and values.max() / values.min() > 10)


def _log_ticks(values: np.ndarray) -> list[float]:
    """1-2-5 ticks spanning ``values`` (plotly's default log ticks print bare digits like "7 8 9")."""
    lo, hi = math.floor(math.log10(values.min())), math.ceil(math.log10(values.max()))
    ticks = [k * 10.0 ** e for e in range(lo, hi + 1) for k in (1, 2, 5)]
    return [t for t in ticks if values.min() / 1.5 <= t <= values.max() * 1.5]


# --- grouped bars ---------------------------------------------------------------------------------
@chart("bars", "Per metric", order=20)
def metric_bars(rows: Rows, keys: Sequence[str] | None = None) -> Any | None:
    """One small bar chart per metric (its own unit and scale), a bar per candidate, family colours."""
    from plotly.subplots import make_subplots

    go = plotly_go()
    ok = ok_rows(rows)
    metrics = [m for m in metric_columns(rows) if m.delta != "none"
               and (m.key in keys if keys is not None else m.group == "main")]
    if keys is not None:
        metrics.sort(key=lambda m: list(keys).index(m.key))
    if not ok or not metrics:
        return None
    cols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / cols)
    titles = [m.axis_label + (" ↑" if m.higher_is_better else " ↓") for m in metrics]
    fig = make_subplots(rows=nrows, cols=cols, subplot_titles=titles, vertical_spacing=0.18, horizontal_spacing=0.07)
    families = [str(r.get("family")) for r in ok]
    ids = [str(r.get("candidate_id")) for r in ok]
    for i, m in enumerate(metrics):
        vals = [_num(r.get(m.key)) / m.scale for r in ok]
        fig.add_trace(go.Bar(
            x=ids, y=vals, marker_color=[family_color(f, families) for f in families], showlegend=False,
            text=[f"{v:.3g}" if not math.isnan(v) else "" for v in vals], textposition="outside", cliponaxis=False,
            hovertext=[_hover(r) for r in ok], hovertemplate="%{hovertext}<br>%{y:.4g}<extra></extra>", name=m.short,
        ), row=i // cols + 1, col=i % cols + 1)
        finite = [v for v in vals if not math.isnan(v)]
        if m.delta == "points" and finite:
            # Accuracy bars from zero hide every difference: zoom to the range that matters.
            lo = max(0.0, min(finite) - max(1.0, (max(finite) - min(finite)) * 0.5))
            hi = max(finite) + max(1.0, (max(finite) - lo) * 0.15)  # head room for the labels
            fig.update_yaxes(range=[lo, hi], row=i // cols + 1, col=i % cols + 1)
        elif finite and min(finite) > 0 and spans_decade(np.array(finite)):
            # One outlier (a 50× slower candidate) would flatten every other bar: a log axis keeps them readable.
            fig.update_yaxes(type="log", tickvals=_log_ticks(np.array(finite)), tickformat=".3~g",
                             title_text="log scale", title_font=dict(size=10), row=i // cols + 1, col=i % cols + 1)
        elif finite and min(finite) >= 0:
            fig.update_yaxes(range=[0, max(finite) * 1.18 or 1], row=i // cols + 1, col=i % cols + 1)
    for fam in dict.fromkeys(families):  # a legend of families (bars carry no legend of their own)
        fig.add_trace(go.Bar(x=[None], y=[None], marker_color=family_color(fam, families), name=fam, showlegend=True))
    return apply_layout(fig, "Each metric per candidate (↑ higher is better, ↓ lower is better)",
                   height=300 * nrows + 110, bargap=0.25, legend=dict(orientation="h", y=-0.08),
                   uniformtext=dict(minsize=9, mode="hide"),
                   margin=dict(l=60, r=30, t=100, b=50))


# --- parallel coordinates ------------------------------------------------------------------------
@chart("parallel", "Parallel coordinates", order=30)
def parallel_coordinates(rows: Rows) -> Any | None:
    """Every ok candidate as a line across its metrics (main metrics), coloured by the task metric."""
    go = plotly_go()
    ok = ok_rows(rows)
    metrics = [m for m in metric_columns(rows) if m.group == "main" and m.delta != "none"]
    if len(ok) < 2 or len(metrics) < 2:
        return None
    dims = [dict(label="Candidate", values=list(range(len(ok))), tickvals=list(range(len(ok))),
                 ticktext=[str(r.get("candidate_id")) for r in ok])]
    for m in metrics:
        vals = [_num(r.get(m.key)) / m.scale for r in ok]
        finite = [v for v in vals if not math.isnan(v)]
        if not finite or max(finite) - min(finite) <= 1e-12 * max(1.0, abs(max(finite))):
            continue  # a constant axis separates nothing: every line would cross it at one point
        unit = m.header.split("(", 1)[1].split(",")[0].rstrip(")") if "(" in m.header else ""
        dims.append(dict(label=f"{m.short} ({unit})" if unit else m.short, values=vals, tickformat=".3~g"))
    if len(dims) < 2:
        return None
    # One distinct colour per candidate (the Candidate axis is the colour key), so lines that run
    # close together stay tellable apart; the Candidate axis names each one.
    n = len(ok)
    palette = [SERIES[i % len(SERIES)] for i in range(n)]
    scale = [[i / max(1, n - 1), c] for i, c in enumerate(palette)] if n > 1 else [[0, palette[0]], [1, palette[0]]]
    fig = go.Figure(go.Parcoords(
        dimensions=dims,
        line=dict(color=list(range(n)), colorscale=scale, cmin=0, cmax=max(1, n - 1), showscale=False),
        labelangle=0,
    ))
    return apply_layout(fig, "All candidates across their metrics", height=460, margin=dict(l=70, r=90, t=120, b=40))


# --- sensitivity curves from sweeps ----------------------------------------------------------------
_LABEL_KV = re.compile(r"([A-Za-z_][\w]*)=([-+0-9.eE]+)")


def _step_settings(step: Mapping[str, Any]) -> dict[str, Any]:
    settings = dict(step.get("config") or {})
    for k, v in _LABEL_KV.findall(str(step.get("label") or "")):
        settings.setdefault(k, v)
    return settings


def _default_setting(technique: str, key: str) -> Any:
    """A technique's default for ``key``: lineage configs omit settings left at their default."""
    try:
        from optim.registry import get

        field = get(technique).Config.model_fields.get(key)
    except Exception:  # an unknown (unregistered) technique: no default to fill in
        return None
    return None if field is None else field.default


def sweep_series(rows: Rows, y: str = "metric_value") -> list[dict[str, Any]]:
    """Sweeps found in the rows' lineage: ``[{technique, setting, x: [...], y: [...], ids: [...]}]``.

    Rows that share a chain of techniques form a group; a setting whose (numeric) value differs
    between the group's rows is the swept one. The swept value is read from each row's lineage
    config (or, for a sweep inside one technique, from the step's ``key=value`` label).
    """
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for r in ok_rows(rows):
        lineage = r.get("lineage") or []
        if not lineage or math.isnan(_num(r.get(y))):
            continue
        groups.setdefault(tuple(str(s.get("technique")) for s in lineage), []).append(r)
    series = []
    for chain, members in groups.items():
        if len(members) < 2:
            continue
        for pos, tech in enumerate(chain):
            settings = [_step_settings(m["lineage"][pos]) for m in members]
            keys = list(dict.fromkeys(k for s in settings for k in s))
            for key in keys:
                vals = [_num(s[key] if key in s else _default_setting(tech, key)) for s in settings]
                if any(math.isnan(v) for v in vals) or len(set(vals)) < 2:
                    continue
                order = np.argsort(vals)
                series.append(dict(
                    technique=" + ".join(chain) if len(chain) > 1 else tech, setting=key, step=pos,
                    x=[vals[i] for i in order], y=[_num(members[i].get(y)) for i in order],
                    ids=[str(members[i].get("candidate_id")) for i in order],
                    recipes=[str(members[i].get("recipe")) for i in order],
                ))
    return series


@chart("sensitivity", "Sensitivity (sweeps)", order=40)
def sensitivity_curves(rows: Rows, y: str = "metric_value") -> Any | None:
    """The task metric against each swept setting (sparsity, bits, rank, k features, threshold...),
    one panel per setting, a line per technique, the baseline as a dashed line."""
    from plotly.subplots import make_subplots

    go = plotly_go()
    series = sweep_series(rows, y)
    my = _column(rows, y)
    if not series or my is None:
        return None
    settings = list(dict.fromkeys(s["setting"] for s in series))
    cols = min(3, len(settings))
    nrows = math.ceil(len(settings) / cols)
    fig = make_subplots(
        rows=nrows,
        cols=cols,
        subplot_titles=[f"vs {s}" for s in settings] if len(settings) > 1 else None,
        vertical_spacing=0.2,
        horizontal_spacing=0.08,
    )
    base = baseline_of(rows)
    b = _num(base.get(y)) / my.scale if base else float("nan")
    families = [str(r.get("family")) for r in rows]
    seen: set[str] = set()
    for s in series:
        i = settings.index(s["setting"])
        fam = next((str(r.get("family")) for r in rows if str(r.get("candidate_id")) == s["ids"][0]), "")
        fig.add_trace(go.Scatter(
            x=s["x"], y=[v / my.scale for v in s["y"]], mode="lines+markers", name=s["technique"],
            legendgroup=s["technique"], showlegend=s["technique"] not in seen,
            line=dict(color=family_color(fam, families), width=2), marker=dict(size=9),
            text=[f"<b>{c}</b> {rc}" for c, rc in zip(s["ids"], s["recipes"])],
            hovertemplate="%{text}<br>" + s["setting"] + "=%{x}<br>" + my.axis_label + ": %{y:.4g}<extra></extra>",
        ), row=i // cols + 1, col=i % cols + 1)
        seen.add(s["technique"])
        fig.update_xaxes(title_text=s["setting"], row=i // cols + 1, col=i % cols + 1)
        fig.update_yaxes(title_text=my.axis_label if i % cols == 0 else None, row=i // cols + 1, col=i % cols + 1)
    if not math.isnan(b):
        for i in range(len(settings)):
            label = dict(annotation_text="baseline", annotation_position="bottom right") if i == 0 else {}
            fig.add_hline(y=b, line=dict(color="#374151", dash="dash", width=1), row=i // cols + 1, col=i % cols + 1,
                          **label)
    return apply_layout(fig, f"Sensitivity: {my.axis_label} vs the swept setting", height=360 * nrows + 80,
                   legend=dict(orientation="h", y=-0.2))


# --- training, HPO, early exit -------------------------------------------------------------------
def details(r: Mapping[str, Any]) -> Mapping[str, Any]:
    d = r.get("details")
    return d if isinstance(d, Mapping) else {}


@chart("learning", "Learning curves", order=50)
def learning_curves(rows: Rows) -> Any | None:
    """Validation metric and training loss per epoch for every candidate that trained."""
    from plotly.subplots import make_subplots

    go = plotly_go()
    found = [(r, details(r).get("learning_curve")) for r in ok_rows(rows)]
    curves = [(r, c) for r, c in found if isinstance(c, list) and c and isinstance(c[0], Mapping)]
    if not curves:
        return None
    base = baseline_of(rows) or {}
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            f"Validation {metric_label(str(base.get('metric_name') or 'accuracy')).lower()}",
            "Training loss",
        ),
        horizontal_spacing=0.1,
    )
    families = [str(r.get("family")) for r, _ in curves]
    for k, (r, curve) in enumerate(curves):
        epochs = [p.get("epoch", i + 1) for i, p in enumerate(curve)]
        name = f"{r.get('candidate_id')} {r.get('recipe')}"
        # One colour per candidate in both panels; the family's own when it has one curve only.
        color = family_color(families[k], families) if families.count(families[k]) == 1 else SERIES[k % len(SERIES)]
        for col, key in ((1, "val_metric"), (2, "train_loss")):
            ys = [_num(p.get(key)) for p in curve]
            if all(math.isnan(v) for v in ys):
                continue
            fig.add_trace(go.Scatter(x=epochs, y=ys, mode="lines+markers", name=name, legendgroup=name,
                                     showlegend=col == 1, line=dict(color=color)), row=1, col=col)
    fig.update_xaxes(title_text="epoch")
    return apply_layout(fig, "Learning curves", height=430, legend=dict(orientation="h", y=-0.25))


@chart("devices", "Devices (estimates)", order=90)
def device_estimates(rows: Rows, metric: str = "latency") -> Any | None:
    """Batch-1 latency (or energy per 1,000) of every candidate on the hardware catalog's devices —
    roofline estimates, never measurements — beside what was measured here (this CPU, the edge profile)."""
    go = plotly_go()
    ok = ok_rows(rows)
    prefix = "est_latency_ms_" if metric == "latency" else "est_energy_j_per_1k_"
    devices = list(dict.fromkeys(k[len(prefix):] for r in ok for k in r if k.startswith(prefix)))
    if not devices:
        return None
    measured = ([("this CPU (measured)", "latency_ms_p50_b1"), ("edge profile (measured)", "latency_ms_p50_edge")]
                if metric == "latency" else [("this CPU (measured estimate)", "energy_j_per_1k")])
    columns = [(label, key) for label, key in measured if any(_num(r.get(key)) > 0 for r in ok)]
    columns += [(d.replace("_", " "), prefix + d) for d in devices]
    fig = go.Figure()
    families = [str(r.get("family")) for r in ok]
    for k, r in enumerate(ok):
        vals = [_num(r.get(key)) for _, key in columns]
        color = family_color(families[k], families) if families.count(families[k]) == 1 else SERIES[k % len(SERIES)]
        fig.add_trace(
            go.Bar(
                x=[c for c, _ in columns],
                y=vals,
                name=f"{r.get('candidate_id')} {r.get('recipe')}",
                marker_color=color,
                hovertemplate="%{x}: %{y:.3g}<extra>" + str(r.get("candidate_id")) + "</extra>",
            )
        )
    unit = "latency, batch 1 (ms, log scale)" if metric == "latency" else "energy per 1,000 predictions (J, log scale)"
    fig.update_yaxes(type="log", title_text=unit, exponentformat="power")
    fig.update_xaxes(tickangle=-25)
    method = next((str(r["est_method"]) for r in ok if r.get("est_method")), "roofline estimates")
    fig.add_annotation(text=method[:140], xref="paper", yref="paper", x=0, y=1.08, showarrow=False,
                       xanchor="left", font=dict(size=11, color="#6b7280"))
    return apply_layout(fig, "Catalog devices: estimates beside what was measured here", height=520, barmode="group",
                   margin=dict(l=70, r=30, t=90, b=90))


def build_figure(name: str, rows: Rows, **options: Any) -> Any | None:
    """The figure of the chart ``name`` (``options`` go to its builder, e.g. the Pareto ``x``), or None."""
    return chart_view(name).build(rows, **options) if options else chart_view(name).build(rows)


def all_figures(rows: Rows) -> dict[str, Any]:
    """Every figure the rows have data for (name → figure), default axes, in display order."""
    out = {}
    for view in chart_views():
        fig = view.build(rows)
        if fig is not None:
            out[view.name] = fig
    return out
