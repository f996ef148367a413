"""hardware-target: measured on present devices, estimated on catalog devices, explained when absent."""

from __future__ import annotations

import typing

import pytest
import torch

from optim.errors import UnsupportedError
from optim.experiment import parse_recipe
from optim.hardware.catalog import CATALOG
from optim.registry import get
from optim.techniques.hardware_target import HardwareTargetConfig, model_dtype


@pytest.fixture(scope="module")
def mlp(load_sample):
    return load_sample("digits-mlp")


def test_cpu_is_measured_with_its_features_and_energy_label(mlp, ctx_for):
    cand, splits = mlp
    tech = get("hardware-target")
    (out,) = tech.run(cand, tech.config(device="cpu", threads=1), ctx_for(splits))
    info = out.info
    assert info["target_kind"] == "measured" and info["target_device"] == "cpu"
    assert 0 < info["target_latency_ms_p50_b1"] <= info["target_latency_ms_p95_b1"]
    assert info["target_throughput_sps"] > 0
    assert "estimate" in info["target_energy_method"] or "measured" in info["target_energy_method"]
    assert "1 thread(s)" in info["target_device_name"]
    assert out.model is cand.model and out.lineage[-1].label == "device=cpu"  # nothing about the model changed


def test_catalog_devices_are_estimated_and_labelled(mlp, ctx_for):
    cand, splits = mlp
    tech = get("hardware-target")
    (pi,) = tech.run(cand, tech.config(device="rpi4"), ctx_for(splits))
    info = pi.info
    assert info["target_kind"] == "estimated" and "estimate" in info["target_est_method"]
    assert info["target_est_latency_ms"] > 0 and info["target_est_energy_j_per_1k"] > 0
    assert len(info["target_est_sources"]) == 3 and info["target_est_dtype"] == "fp32"
    assert info["target_est_macs"] == 64 * 300 + 300 * 100 + 100 * 10
    assert info["target_est_faster"] == "edge"  # a 50k-MAC model is not worth a 50 ms round trip
    (coral,) = tech.run(cand, tech.config(device="coral-edge-tpu"), ctx_for(splits))
    assert coral.info["target_est_dtype"] == "int8" and "converting" in coral.info["target_est_note"]
    (a100,) = tech.run(cand, tech.config(device="a100"), ctx_for(splits))
    assert a100.info["target_est_latency_ms"] < info["target_est_latency_ms"]
    assert "target_est_cloud_latency_ms" not in a100.info


def test_absent_devices_are_explained(mlp, ctx_for):
    cand, splits = mlp
    tech = get("hardware-target")
    if not torch.cuda.is_available():
        with pytest.raises(UnsupportedError, match="no CUDA GPU on this machine"):
            tech.run(cand, tech.config(device="cuda"), ctx_for(splits))
    if not torch.backends.mps.is_available():
        with pytest.raises(UnsupportedError, match="device=mps"):
            tech.run(cand, tech.config(device="mps"), ctx_for(splits))
    (auto,) = tech.run(cand, tech.config(), ctx_for(splits))
    assert auto.info["target_device"] == ("cuda:0" if torch.cuda.is_available() else
                                          "mps" if torch.backends.mps.is_available() else "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_cuda_is_measured_when_present(mlp, ctx_for):  # pragma: no cover - GPU only
    cand, splits = mlp
    (out,) = get("hardware-target").run(cand, get("hardware-target").config(device="cuda"), ctx_for(splits))
    assert out.info["target_kind"] == "measured" and out.info["target_latency_ms_p50_b1"] > 0


def test_the_device_setting_lists_every_catalog_device_and_sweeps():
    choices = set(typing.get_args(HardwareTargetConfig.model_fields["device"].annotation))
    assert set(CATALOG) <= choices and {"cpu", "cuda", "mps", "auto"} <= choices
    recipes = parse_recipe("hardware-target:device=cpu|rpi5|a100")
    assert [r.steps[0].config.device for r in recipes] == ["cpu", "rpi5", "a100"]


def test_model_dtype_sees_quantized_models(mlp, ctx_for):
    cand, splits = mlp
    assert model_dtype(cand) == "fp32"
    (q,) = get("quantize-dynamic").run(cand, get("quantize-dynamic").config(backend="torch"), ctx_for(splits))
    assert model_dtype(q) == "int8"
    (est,) = get("hardware-target").run(q, get("hardware-target").config(device="rpi5"), ctx_for(splits))
    assert est.info["target_est_dtype"] == "int8"
