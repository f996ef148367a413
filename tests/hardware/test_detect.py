"""Hardware detection: CPU model and features as the OS reports them, GPUs, NVML, energy labels."""

from __future__ import annotations

import pytest
import torch

from optim.hardware.detect import CPU_FEATURES, cpu_info, detect, nvml_status


def _proc_flags() -> set[str] | None:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith(("flags", "features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


def test_cpu_model_and_features_match_what_the_os_reports():
    info = cpu_info()
    assert info.model and info.model != "unknown CPU"
    assert info.cores_logical >= 1 and set(info.features) == set(CPU_FEATURES)
    flags = _proc_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo on this system")
    for name in CPU_FEATURES:
        assert info.features[name] == (name in flags), name
    vnni = {"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"} & flags
    assert info.int8_dot_product == bool(vnni)


def test_devices_always_include_the_cpu_and_every_cuda_gpu_torch_sees():
    report = detect()
    devices = report.devices()
    assert devices[0] == "cpu"
    assert len(report.cuda) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert [d for d in devices if d.startswith("cuda")] == [f"cuda:{i}" for i in range(len(report.cuda))]
    assert ("mps" in devices) == report.mps
    d = report.as_dict()
    assert d["devices"] == devices and d["cpu"]["model"] == report.cpu.model


def test_energy_method_says_what_is_measured_and_what_is_estimated():
    report = detect()
    cpu = report.energy_method("cpu")
    assert ("RAPL" in cpu) if report.rapl else ("estimate" in cpu and "TDP" in cpu)
    gpu = report.energy_method("cuda:0")
    if report.nvml:
        assert "NVML" in gpu and "measured" in gpu
    else:
        assert "not measured" in gpu and report.nvml_reason in gpu
    ok, reason = nvml_status()
    assert ok == report.nvml and reason


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_cuda_gpus_are_described():  # pragma: no cover - GPU only
    gpu = detect().cuda[0]
    assert gpu.memory_bytes > 0 and gpu.name and gpu.device == "cuda:0"
