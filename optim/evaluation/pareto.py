"""The one Pareto implementation: dominance, the front of a matrix, of two axes and of result rows.

A row is on the front when no other row is at least as good in every objective and strictly
better in one (Olive's footprint marks its own front; this marks every technique's). Rows
that failed (``status != "ok"``) or lack an objective (NaN) are never on the front and never
dominate. Identical rows do not dominate each other, so ties all stay. Directions come from
the metric catalogue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from optim.dataset import Task
from optim.evaluation.catalogue import higher_is_better
from optim.evaluation.metrics import primary_metric

Objective = tuple[str, bool]  # (column, higher_is_better)


def DEFAULT_OBJECTIVES(task: Task) -> list[Objective]:  # noqa: N802 - a named constant per task
    """The trade-off a run shows by default: primary metric (max), latency at batch 1 and size (min)."""
    keys = [primary_metric(task).key, "latency_ms_p50_b1", "size_bytes"]
    return [(k, higher_is_better(k)) for k in keys]


def _dominated(scores: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Which rows of ``scores`` dominate ``row`` (every column maximised)."""
    return np.asarray((scores >= row).all(axis=1) & (scores > row).any(axis=1))


def dominates(a: Sequence[float], b: Sequence[float], higher_is_better: Sequence[bool]) -> bool:
    """Whether objective vector ``a`` dominates ``b`` (directions per objective)."""
    sign = np.where(np.asarray(higher_is_better, bool), 1.0, -1.0)
    return bool(_dominated((np.asarray(a, float) * sign)[None, :], np.asarray(b, float) * sign)[0])


def pareto_front(values: Any) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``values`` where every column is to be MAXIMISED.

    Rows with a NaN (or an infinity) are never on the front and never dominate.
    """
    v = np.asarray(values, dtype=float)
    n = len(v)
    if n == 0 or v.ndim != 2:
        return np.zeros(n, dtype=bool)
    valid = np.isfinite(v).all(axis=1)
    mask = np.zeros(n, dtype=bool)
    idx = np.flatnonzero(valid)
    s = v[idx]
    for k, row in enumerate(s):
        mask[idx[k]] = not _dominated(s, row).any()
    return mask


def front_2d(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, *, x_higher_is_better: bool = False,
             y_higher_is_better: bool = True) -> np.ndarray:
    """Pareto mask for two objectives (default: x like latency is minimised, y like accuracy maximised)."""
    xs = np.asarray(x, float) * (1 if x_higher_is_better else -1)
    ys = np.asarray(y, float) * (1 if y_higher_is_better else -1)
    return pareto_front(np.column_stack([xs, ys]) if len(xs) else np.zeros((0, 2)))


def pareto_mask(df: Any, objectives: list[Objective]) -> np.ndarray:
    """Boolean array, True for rows of ``df`` (a pandas DataFrame) on the Pareto front.

    ``objectives`` lists ``(column, higher_is_better)``. A column no row has (every candidate
    failed before it was measured) counts as NaN: no row is on the front.
    """
    import pandas as pd

    n = len(df)
    if n == 0:
        return np.zeros(0, dtype=bool)
    if not objectives:
        raise ValueError("pareto_mask needs at least one objective")
    cols = []
    for col, higher in objectives:
        if col not in df.columns:
            values = np.full(n, np.nan)
        else:
            values = np.asarray(pd.to_numeric(df[col], errors="coerce"), dtype=float)
        cols.append(values if higher else -values)  # maximise every column
    scores = np.stack(cols, axis=1)
    if "status" in df.columns:
        scores[(df["status"].astype(str) != "ok").to_numpy()] = np.nan
    return pareto_front(scores)


def rows_mask(rows: Sequence[Any], objectives: list[Objective]) -> np.ndarray:
    """:func:`pareto_mask` of result rows (dicts, the baseline ``c0`` among them), each timed
    figure as it reads beside the baseline (:func:`optim.evaluation.noise.on_baseline_node`): a row
    timed on another node (``--measure-on per-node``) counts by its ratio to the baseline timed
    there, never by its raw latency, which compares with no other machine's."""
    import pandas as pd

    from optim.evaluation.noise import baseline_of, on_baseline_node

    base = baseline_of(rows)
    df = pd.DataFrame([{**r, **{k: on_baseline_node(r, base, k) for k, _ in objectives if k in r}} for r in rows])
    return pareto_mask(df, objectives)

