"""Picked candidates side by side, and runs of the same model and data compared in one table.

Pure functions over result rows (``Store.rows``): the dashboard's Compare and History pages draw
what these return, and a script can call them the same way.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

Rows = Sequence[Mapping[str, Any]]

#: At most this many candidates side by side: wider than three columns no longer reads as a comparison.
MAX_PICKED = 3


def lineage_text(row: Mapping[str, Any]) -> list[str]:
    """The steps that made a candidate, one line each: ``technique · key=value, ...`` (settings
    left at their default are not stored in the lineage, so they are not listed)."""
    lines = []
    for step in row.get("lineage") or []:
        cfg = dict(step.get("config") or {})
        settings = ", ".join(f"{k}={v}" for k, v in cfg.items()) or str(step.get("label") or "") or "defaults"
        lines.append(f"{step.get('technique')} · {settings}")
    return lines or ["(the model as loaded)"]


def side_by_side(rows: Rows, ids: Sequence[str]) -> pd.DataFrame:
    """Every column of the comparison table for the picked candidates, one column each (in the
    order picked); values as text so a column mixes numbers and words. Unknown ids are skipped."""
    import pandas as pd

    from optim.compare import comparison_table
    from optim.presentation import format_number

    df = comparison_table(rows)
    known = [i for i in ids if i in set(df["ID"])]
    if not known:
        return pd.DataFrame()
    t = df.set_index("ID").loc[known].drop(columns=[c for c in ("details", "lineage") if c in df.columns])
    t.insert(1, "Steps", [" → ".join(lineage_text(by)) for by in
                          (next(r for r in rows if r.get("candidate_id") == i) for i in known)])

    def text(v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "—"
        if isinstance(v, bool):
            return "yes" if v else "no"
        return format_number(v) if isinstance(v, (int, float)) else str(v)

    out = t.T.map(text)
    out.index.name = "Field"
    return out


def mark_candidates(fig: Any, ids: Sequence[str]) -> Any:
    """A copy of a figure whose markers carry candidate ids (``customdata``) with the picked
    candidates ringed — the figure itself (often cached) is not changed."""
    import plotly.graph_objects as go

    if fig is None or not ids:
        return fig
    out = go.Figure(fig)
    xs, ys = [], []
    for trace in fig.data:
        cd = getattr(trace, "customdata", None)
        if cd is None or getattr(trace, "x", None) is None or getattr(trace, "y", None) is None:
            continue
        for c, x, y in zip(cd, trace.x, trace.y):
            if (c[0] if isinstance(c, (list, tuple)) else c) in ids:
                xs.append(x)
                ys.append(y)
    if xs:
        out.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="markers",
                name="picked",
                hoverinfo="skip",
                marker={"size": 26, "symbol": "square-open", "color": "#7c3aed", "line": {"width": 3}},
            )
        )
    return out


def same_setup(run: Mapping[str, Any]) -> tuple[str, str, str | None, str | None]:
    """What makes two runs comparable: the same model, data, target column and task."""
    from optim.errors import OptimError
    from optim.io.models import sample_data_ref

    spec = run.get("spec") or {}
    model, data = str(spec.get("model")), str(spec.get("data"))
    try:  # a sample's data spelled "sample" or "sample:digits" is the same data
        data = sample_data_ref(model, data) or data
    except OptimError:  # a sample this version no longer ships: compare by the stored text
        pass
    return model, data, spec.get("target"), spec.get("task")


def combine_runs(runs: Sequence[tuple[str, Rows]]) -> list[dict[str, Any]]:
    """The rows of several runs of the same model and data as one run's rows: ids become
    ``<run>/<candidate>`` and the first run's baseline is the baseline every delta is against.

    The run's own Pareto marks are dropped (they were computed within one run)."""
    out: list[dict[str, Any]] = []
    for n, (run_id, rows) in enumerate(runs):
        for r in rows:
            row = copy.deepcopy(dict(r))
            is_base = r.get("candidate_id") == "c0"
            row["candidate_id"] = f"{run_id}/{r.get('candidate_id')}"
            row["run_id"] = run_id
            row["pareto"] = False
            if is_base and n > 0:
                row["recipe"] = f"baseline (run {run_id})"  # only the first run's baseline is the reference
            elif is_base:
                row["recipe"] = "baseline"
            out.append(row)
    return out


def by_run(rows: Rows) -> list[dict[str, Any]]:
    """Rows from :func:`combine_runs` with ``family`` set to their run, so a chart colours by run
    (baselines keep the baseline marker)."""
    out = []
    for r in rows:
        row = dict(r)
        if row.get("family") != "baseline":
            row["family"] = f"run {row.get('run_id')}"
        out.append(row)
    return out


def runs_table(rows: Rows) -> pd.DataFrame:
    """The comparison table of :func:`combine_runs` rows, with a ``Run`` column after the ID."""
    from optim.compare import comparison_table

    df = comparison_table(rows)
    df.insert(1, "Run", [str(r.get("run_id", "")) for r in rows])
    return df


def runs_chart(rows: Rows, x: str = "latency_ms_p50_b1") -> Any | None:
    """The Pareto scatter of :func:`combine_runs` rows, one colour per run."""
    from optim.charts import pareto_scatter

    return pareto_scatter(by_run(rows), x)
