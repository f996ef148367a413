"""The machine and software a measurement was made on (model cards, RESULTS.md, run records)."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

#: CPU flags that change which int8 / bf16 kernels run (VNNI and AMX make int8 fast).
FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8",
                     "amx_bf16")


def environment_info() -> dict[str, Any]:
    """CPU model, physical/logical cores, flags of interest, RAM, OS and package versions."""
    cpuinfo = _read("/proc/cpuinfo")
    model = _cpuinfo_field(cpuinfo, "model name") or platform.processor() or platform.machine()
    flags = set((_cpuinfo_field(cpuinfo, "flags") or "").split())
    info: dict[str, Any] = {
        "cpu_model": model,
        "cpu_physical_cores": _physical_cores(cpuinfo),
        "cpu_logical_cores": os.cpu_count(),
        "cpu_flags": [f for f in FLAGS_OF_INTEREST if f in flags],
        "ram_gb": _ram_gb(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }
    for dist in ("optim", "torch", "onnxruntime", "onnx", "codecarbon", "numpy"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[dist] = None
    return info


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return ""


def _cpuinfo_field(text: str, name: str) -> str | None:
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def _physical_cores(cpuinfo: str) -> int | None:
    """Distinct (physical id, core id) pairs in /proc/cpuinfo; psutil elsewhere."""
    cores = set()
    phys = core = None
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            phys = value.strip()
        elif key == "core id":
            core = value.strip()
        elif not line.strip():
            if core is not None:
                cores.add((phys, core))
            phys = core = None
    if core is not None:
        cores.add((phys, core))
    if cores:
        return len(cores)
    try:
        import psutil

        return psutil.cpu_count(logical=False)
    except Exception:  # noqa: BLE001
        return None


def _ram_gb() -> float | None:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    try:
        import psutil

        return round(psutil.virtual_memory().total / 2**30, 1)
    except Exception:  # noqa: BLE001
        return None
