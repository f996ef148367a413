"""Pareto front over result rows of any technique (Olive's footprint marks its own; this marks all).

A row is on the front when no other row is at least as good in every objective and strictly
better in one. Rows that failed (``status != "ok"``) or lack an objective (NaN) are never on
the front and never dominate. Identical rows do not dominate each other, so ties all stay.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optim.dataset import Task
from optim.evaluation.metrics import primary_metric

Objective = tuple[str, bool]  # (column, higher_is_better)


def DEFAULT_OBJECTIVES(task: Task) -> list[Objective]:  # noqa: N802 - a named constant per task
    """The trade-off a run shows by default: primary metric (max), latency at batch 1 and size (min)."""
    return [(primary_metric(task).name, True), ("latency_ms_p50_b1", False), ("size_bytes", False)]


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
    valid = np.isfinite(scores).all(axis=1)
    if "status" in df.columns:
        valid &= (df["status"].astype(str) == "ok").to_numpy()
    mask = np.zeros(n, dtype=bool)
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return mask
    s = scores[idx]
    for k, row in enumerate(s):
        # Row k is dominated if some row is at least as good everywhere and better somewhere.
        dominated = ((s >= row).all(axis=1) & (s > row).any(axis=1)).any()
        mask[idx[k]] = not dominated
    return mask
