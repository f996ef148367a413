"""measure_latency: same procedure for torch and ONNX Runtime, fixed threads, budgeted repeats."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from optim.archs import mlp
from optim.candidate import Candidate, OnnxModel
from optim.evaluation.latency import MIN_REPEATS, measure_latency, time_calls
from optim.onnx_convert import torch_to_onnx_bytes

KEYS = ("latency_ms_p50_b1", "latency_ms_p95_b1", "latency_ms_p50_bN", "latency_ms_p95_bN", "batch_n",
        "throughput_sps", "latency_repeats_b1", "threads")


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    m = mlp(64, (300, 100), 10).eval()
    return (Candidate(m, "classification", (64,), 10),
            Candidate(OnnxModel(torch_to_onnx_bytes(m, (64,))), "classification", (64,), 10))


X = np.random.default_rng(0).random((50, 64), dtype=np.float32) * 16


@pytest.mark.parametrize("kind", [0, 1], ids=["torch", "onnx"])
def test_columns_and_their_relations(pair, kind):
    cand = pair[kind]
    out = measure_latency(cand, X, batch_sizes=(1, 32), threads=1, budget_s=0.05)
    assert set(KEYS) <= set(out)
    assert out["threads"] == 1 and out["batch_n"] == 32
    assert 0 < out["latency_ms_p50_b1"] <= out["latency_ms_p95_b1"]
    assert 0 < out["latency_ms_p50_bN"] <= out["latency_ms_p95_bN"]
    assert out["latency_repeats_b1"] >= MIN_REPEATS
    # A 50 k-MAC MLP runs in well under 5 ms per call, so a 50 ms budget is filled by many calls.
    assert out["latency_repeats_b1"] >= 10
    assert out["throughput_sps"] == pytest.approx(32 / (out["latency_ms_p50_bN"] / 1e3))


def test_torch_threads_are_restored(pair):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out = measure_latency(pair[0], X, batch_sizes=(1, 8), threads=1, budget_s=0.02)
        assert out["threads"] == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_onnx_uses_a_session_for_the_thread_count(pair):
    model = pair[1].model
    measure_latency(pair[1], X, batch_sizes=(1, 4), threads=2, budget_s=0.02)
    assert 2 in model._sessions
    assert model._sessions[2].get_session_options().intra_op_num_threads == 2


def test_batch_larger_than_the_data_is_tiled(pair):
    out = measure_latency(pair[0], X[:3], batch_sizes=(1, 64), threads=1, budget_s=0.02)
    assert out["batch_n"] == 64 and out["latency_ms_p50_bN"] > 0


def test_min_repeats_and_budget():
    calls = []

    def slow() -> None:
        calls.append(1)
        time.sleep(0.02)

    times = time_calls(slow, budget_s=0.001, warmup=2)
    assert len(times) == MIN_REPEATS  # budget long gone, still the minimum number of samples
    assert len(calls) == MIN_REPEATS + 2  # plus warm-up calls, which are not timed
    assert times.min() >= 19.0  # milliseconds: each call timed on its own
    fast = time_calls(lambda: None, budget_s=0.05, warmup=0)
    assert len(fast) > 100  # the budget, not the minimum, bounds a fast call


def test_bad_batch_sizes_rejected(pair):
    with pytest.raises(ValueError, match="batch_sizes"):
        measure_latency(pair[0], X, batch_sizes=(0, 8), threads=1, budget_s=0.01)
