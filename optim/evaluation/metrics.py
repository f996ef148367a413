"""Task metrics. Each metric's direction lives in the catalogue (:mod:`optim.evaluation.catalogue`)."""

from __future__ import annotations

import numpy as np

from optim.dataset import Task
from optim.evaluation.catalogue import ACCURACY, R2, MetricSpec

PRIMARY = {"classification": ACCURACY, "regression": R2}


def primary_metric(task: Task) -> MetricSpec:
    """The metric a run ranks candidates by: accuracy or R²."""
    return PRIMARY[task]


def task_metrics(outputs: np.ndarray, y: np.ndarray, task: Task) -> dict[str, float]:
    """``accuracy`` (classification) or ``rmse``, ``mae`` and ``r2`` (regression) from raw outputs."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if task == "classification":
        pred = outputs.argmax(axis=1) if outputs.ndim == 2 else (outputs > 0).astype(int)
        return {"accuracy": float((pred == np.asarray(y)).mean()) if len(y) else float("nan")}
    pred = outputs.reshape(len(outputs), -1)[:, 0]
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    err = pred - y
    ss_res = float((err ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return {
        "rmse": float(np.sqrt((err ** 2).mean())),
        "mae": float(np.abs(err).mean()),
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
    }


def score(outputs: np.ndarray, y: np.ndarray, task: Task) -> float:
    """The primary metric (higher is better for both tasks)."""
    return task_metrics(outputs, y, task)[primary_metric(task).name]


def invalid_rows(outputs: np.ndarray) -> int:
    """Rows of ``outputs`` holding a NaN or an infinity: no metric computed from them means anything."""
    out = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    return int((~np.isfinite(out)).any(axis=1).sum())
