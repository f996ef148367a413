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


def _cpu(arch: str, *flags: str):
    from optim.hardware.detect import CpuInfo

    return CpuInfo("test CPU", arch, 2, 2, {k: k in flags for k in CPU_FEATURES})


@pytest.mark.parametrize("arch, flags, reduce_range, instructions", [
    ("x86_64", ("avx2", "fma"), True, "AVX2 without VNNI"),
    ("x86_64", ("avx2", "avx512f"), True, "AVX-512 without VNNI"),
    ("x86_64", ("avx2", "avx512f", "avx512_vnni"), False, "AVX-512 VNNI"),
    ("x86_64", ("avx2", "avx_vnni"), False, "AVX-VNNI"),
    ("AMD64", ("avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_int8"), False, "AMX int8"),
    ("x86_64", (), True, "SSE (no AVX2, no VNNI)"),
    ("aarch64", ("asimd", "asimddp"), False, "Arm dot product (SDOT/UDOT)"),
    ("aarch64", ("asimd",), False, "Arm NEON without dot product"),
    ("riscv64", (), True, "unknown int8 instructions on riscv64"),
])
def test_int8_scheme_is_the_exact_one_for_the_instructions(arch, flags, reduce_range, instructions):
    from optim.hardware.detect import int8_scheme

    scheme = int8_scheme(_cpu(arch, *flags))
    assert (scheme.reduce_range, scheme.instructions) == (reduce_range, instructions)
    assert scheme.activation_type == "uint8" and scheme.weight_type == "int8"
    assert scheme.label == ("U8S7" if reduce_range else "U8S8")
    assert instructions in scheme.reason
    assert ("7-bit" in scheme.reason) == reduce_range


def test_int8_scheme_defaults_to_this_machines_cpu():
    from optim.hardware.detect import int8_scheme

    assert int8_scheme() == int8_scheme(cpu_info())
