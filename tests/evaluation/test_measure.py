"""measure_candidate end to end on a small trained digits MLP and its ONNX version."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from optim.candidate import Candidate, OnnxModel
from optim.dataset import Dataset
from optim.evaluation.environment import environment_info
from optim.evaluation.measure import compare_to_parent, measure_candidate
from optim.onnx_convert import torch_to_onnx_bytes
from optim.training import TrainSettings, fit

REQUIRED = ("metric_name", "metric_value", "accuracy", "size_bytes", "size_bytes_gzip", "params",
            "nonzero_params", "macs", "latency_ms_p50_b1", "latency_ms_p95_b1", "latency_ms_p50_bN",
            "latency_ms_p95_bN", "batch_n", "throughput_sps", "latency_repeats_b1", "threads",
            "energy_j_per_1k", "co2_g_per_1k", "energy_method", "energy_is_estimate")


@pytest.fixture(scope="module")
def trained():
    from sklearn.datasets import load_digits

    from optim.archs import mlp

    d = load_digits()
    splits = Dataset("digits", d.data.astype(np.float32), d.target.astype(np.int64), "classification").splits()
    torch.manual_seed(0)
    X = splits.train.X
    model = mlp(64, (64,), 10, mean=X.mean(0), std=X.std(0))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small batches: one thread is fastest on a shared machine
    try:
        fit(model, splits.train, splits.val, "classification", TrainSettings(epochs=5, batch_size=32, lr=3e-3))
    finally:
        torch.set_num_threads(threads)
    model.eval()
    torch_cand = Candidate(model, "classification", (64,), 10)
    onnx_cand = Candidate(OnnxModel(torch_to_onnx_bytes(model, (64,))), "classification", (64,), 10)
    return torch_cand, onnx_cand, splits


@pytest.fixture(scope="module")
def rows(trained):
    import tempfile
    from pathlib import Path

    from optim.context import RunContext

    torch_cand, onnx_cand, splits = trained
    ctx = RunContext(data=splits, threads=1, batch_size=16, latency_budget_s=0.05, energy_inferences=200,
                     workdir=Path(tempfile.mkdtemp()))
    base = measure_candidate(torch_cand, ctx)
    return base, measure_candidate(onnx_cand, ctx, parent=base), ctx


def test_all_columns_present_and_finite(rows):
    for row in rows[:2]:
        for key in REQUIRED:
            assert key in row, key
            if not isinstance(row[key], str):
                assert math.isfinite(float(row[key])), (key, row[key])
        assert row["metric_name"] == "accuracy" and row["metric_value"] == row["accuracy"]
        assert row["threads"] == 1 and row["batch_n"] == 16
        assert row["energy_j_per_1k"] > 0 and row["energy_method"]
        assert row["macs"] == 64 * 64 + 64 * 10


def test_trained_and_equal_across_runtimes(rows, trained):
    base, onnx_row, _ = rows
    assert base["accuracy"] >= 0.9
    assert onnx_row["accuracy"] == base["accuracy"]
    assert base["params"] == onnx_row["params"] == 64 * 64 + 64 + 64 * 10 + 10


def test_sizes_are_serialized_lengths(rows, trained):
    base, onnx_row, _ = rows
    assert base["size_bytes"] == len(trained[0].serialize()[1])
    assert onnx_row["size_bytes"] == len(trained[1].model.model_bytes)


def test_parent_comparison(rows):
    base, onnx_row, _ = rows
    assert "slower_than_parent" not in base
    assert onnx_row["size_ratio"] == pytest.approx(onnx_row["size_bytes"] / base["size_bytes"])
    assert onnx_row["speedup_b1"] == pytest.approx(base["latency_ms_p50_b1"] / onnx_row["latency_ms_p50_b1"])
    assert onnx_row["metric_delta"] == 0.0
    assert onnx_row["larger_than_parent"] == (onnx_row["size_bytes"] > base["size_bytes"])
    assert onnx_row["slower_than_parent"] == (onnx_row["latency_ms_p50_b1"] > 1.05 * base["latency_ms_p50_b1"])


def test_compare_to_parent_thresholds():
    parent = {"latency_ms_p50_b1": 1.0, "size_bytes": 1000, "metric_value": 0.9}
    near = compare_to_parent({"latency_ms_p50_b1": 1.04, "size_bytes": 1000, "metric_value": 0.95}, parent)
    assert near["slower_than_parent"] is False and near["larger_than_parent"] is False
    assert near["metric_delta"] == pytest.approx(0.05)
    far = compare_to_parent({"latency_ms_p50_b1": 1.2, "size_bytes": 1001, "metric_value": 0.9}, parent)
    assert far["slower_than_parent"] is True and far["larger_than_parent"] is True
    assert far["speedup_b1"] == pytest.approx(1 / 1.2)
    missing = compare_to_parent({"size_bytes": 10}, parent)
    assert missing["slower_than_parent"] is False and math.isnan(missing["speedup_b1"])


def test_regression_columns(trained):
    """A regression candidate gets rmse, mae and r2 with r2 as the metric."""
    import tempfile
    from pathlib import Path

    from optim.context import RunContext
    from optim.dataset import DataSplits, Split

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3)).astype(np.float32)
    y = (X @ np.array([1.0, -2.0, 0.5], np.float32)).astype(np.float32)
    lin = torch.nn.Linear(3, 1)
    with torch.no_grad():
        lin.weight[:] = torch.tensor([[1.0, -2.0, 0.5]])
        lin.bias.zero_()
    split = Split(X, y)
    splits = DataSplits(split, split, split, "regression", 1)
    ctx = RunContext(data=splits, threads=1, batch_size=8, latency_budget_s=0.02, energy_inferences=50,
                     workdir=Path(tempfile.mkdtemp()))
    row = measure_candidate(Candidate(lin.eval(), "regression", (3,), 1), ctx)
    assert row["metric_name"] == "r2" and row["r2"] == pytest.approx(1.0, abs=1e-5)
    assert row["rmse"] == pytest.approx(0.0, abs=1e-4) and "accuracy" not in row
    assert row["macs"] == 3


def test_environment_info():
    info = environment_info()
    assert info["cpu_model"] and info["cpu_logical_cores"] >= 1
    assert info["cpu_physical_cores"] is None or 1 <= info["cpu_physical_cores"] <= info["cpu_logical_cores"]
    assert info["ram_gb"] > 0.1
    assert info["torch"] == torch.__version__.split("+")[0]
    for key in ("onnxruntime", "codecarbon", "python", "os", "optim"):
        assert info[key]
    assert set(info["cpu_flags"]) <= {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile",
                                      "amx_int8", "amx_bf16"}
