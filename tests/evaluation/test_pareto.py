"""pareto_mask on hand-made frames: domination, ties, failed rows, NaN, directions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from optim.evaluation.pareto import DEFAULT_OBJECTIVES, pareto_mask

OBJ = [("accuracy", True), ("latency_ms_p50_b1", False), ("size_bytes", False)]


def frame(rows):
    return pd.DataFrame(rows, columns=["status", "accuracy", "latency_ms_p50_b1", "size_bytes"])


def test_dominated_rows_are_off_the_front():
    df = frame([
        ("ok", 0.97, 1.0, 200),   # baseline
        ("ok", 0.96, 0.5, 60),    # faster and smaller, less accurate: front
        ("ok", 0.95, 0.6, 70),    # worse than row 1 in everything: dominated
        ("ok", 0.98, 2.0, 300),   # most accurate: front
        ("ok", 0.97, 1.0, 250),   # same as baseline but larger: dominated
    ])
    assert pareto_mask(df, OBJ).tolist() == [True, True, False, True, False]


def test_exact_ties_stay_on_the_front_together():
    df = frame([("ok", 0.9, 1.0, 100), ("ok", 0.9, 1.0, 100), ("ok", 0.8, 1.0, 100)])
    assert pareto_mask(df, OBJ).tolist() == [True, True, False]


def test_failed_and_nan_rows_never_on_the_front_and_never_dominate():
    df = frame([
        ("ok", 0.90, 1.0, 100),
        ("failed", 0.99, 0.1, 10),      # would dominate everything, but failed
        ("ok", np.nan, 0.1, 10),        # missing metric
        ("ok", 0.80, 2.0, 200),         # dominated by row 0 only
    ])
    assert pareto_mask(df, OBJ).tolist() == [True, False, False, False]


def test_direction_matters():
    df = pd.DataFrame({"status": ["ok", "ok"], "rmse": [1.0, 2.0], "size_bytes": [10, 10]})
    assert pareto_mask(df, [("rmse", False), ("size_bytes", False)]).tolist() == [True, False]
    assert pareto_mask(df, [("rmse", True), ("size_bytes", False)]).tolist() == [False, True]


def test_missing_column_or_empty_frame():
    df = pd.DataFrame({"status": ["failed", "failed"], "error": ["x", "y"]})
    assert pareto_mask(df, OBJ).tolist() == [False, False]
    assert pareto_mask(frame([]), OBJ).tolist() == []
    with pytest.raises(ValueError):
        pareto_mask(frame([("ok", 1, 1, 1)]), [])


def test_default_objectives_by_task():
    assert DEFAULT_OBJECTIVES("classification") == [("accuracy", True), ("latency_ms_p50_b1", False),
                                                     ("size_bytes", False)]
    assert DEFAULT_OBJECTIVES("regression")[0] == ("r2", True)
