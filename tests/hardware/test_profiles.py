"""Device profiles: the edge profile in a fresh capped process, peak memory, and catalog columns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optim.candidate import Candidate, OnnxModel
from optim.hardware.profiles import EDGE, DeviceProfile, catalog_columns, measure_profile, profile_columns


class _Hungry(torch.nn.Module):
    """A model whose forward needs ~400 MB of scratch memory: over a 64 MB cap."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scratch = torch.ones((x.shape[0], 100_000_000))
        return x[:, :2] + scratch[:, :2]


def test_profile_columns_measure_the_shipped_file_with_one_thread_and_batch_1(load_sample, ctx_for):
    cand, splits = load_sample("digits-mlp")
    cols = profile_columns(cand, ctx_for(splits))
    assert cols["artifact_edge"] == "torchscript" and cols["devices_measured"].split(",")[0] == "cpu"
    assert 0 < cols["latency_ms_p50_edge"] <= cols["latency_ms_p95_edge"]
    assert cols["load_ms_edge"] > 0 and cols["first_inference_ms_edge"] > 0
    assert cols["fits_memory_cap_edge"] is True and cols["memory_cap_mb_edge"] == EDGE.memory_cap_mb
    # the model adds memory (its weights alone are 0.2 MB) but far less than the cap
    assert 0 < cols["peak_mem_mb_edge"] < EDGE.memory_cap_mb
    assert "device_profile_error" not in cols


def test_onnx_candidates_run_under_onnx_runtime_alone(load_sample):
    from optim.onnx_convert import torch_to_onnx_bytes

    cand, splits = load_sample("digits-mlp")
    onnx_cand = Candidate(OnnxModel(torch_to_onnx_bytes(cand.torch_module(), (64,)), graph_optimization="basic"),
                          "classification", (64,), 10)
    res = measure_profile(onnx_cand, splits.test.X, budget_s=0.05)
    assert res["artifact"] == "onnx" and res["latency_ms_p50"] > 0 and res["repeats"] >= len(splits.test)
    # onnxruntime without torch: the runtime itself is much smaller than torch's
    assert res["runtime_mem_mb"] < 400


def test_a_model_over_the_memory_cap_is_reported_not_crashed():
    hungry = Candidate(_Hungry().eval(), "regression", (4,), 2)
    res = measure_profile(hungry, np.zeros((4, 4), np.float32), DeviceProfile("tiny", memory_cap_mb=64),
                          budget_s=0.01)
    assert res["fits_memory_cap"] is False and "memory cap of 64 MB" in res["error"]
    free = measure_profile(hungry, np.zeros((1, 4), np.float32), DeviceProfile("roomy", memory_cap_mb=None),
                           budget_s=0.01)
    assert free["fits_memory_cap"] is True and free["peak_mem_mb"] > 350  # the 400 MB scratch shows


def test_catalog_columns_per_device_scale_with_macs():
    full = catalog_columns(1_000_000, 400_000, input_bytes=256)
    half = catalog_columns(500_000, 200_000, input_bytes=256)
    lat = [k for k in full if k.startswith("est_latency_ms_")]
    assert len(lat) == 9 and "est_latency_ms_jetson_orin_nano" in full
    for k in lat:
        assert 0 < half[k] < full[k]
    assert all(full[k.replace("latency_ms", "energy_j_per_1k")] > 0 for k in lat)
    assert "estimate" in full["est_method"] and "coral-edge-tpu:int8" in full["est_dtypes"]
    assert full["est_cloud_latency_ms"] > full["est_network_ms"] >= 50.0
    assert "est_cloud_latency_ms" not in catalog_columns(1_000_000, 400_000)
    assert catalog_columns(float("nan"), 1) == {}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_each_present_gpu_is_measured(load_sample, ctx_for):  # pragma: no cover - GPU only
    cand, splits = load_sample("digits-mlp")
    cols = profile_columns(cand, ctx_for(splits))
    assert "cuda:0" in cols["devices_measured"] and cols["latency_ms_p50_b1_cuda0"] > 0
