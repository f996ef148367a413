"""What hardware this machine has: CPU model and vector/matrix features, CUDA GPUs, Apple MPS,
and whether GPU power can be read (NVML) — so results say where they were measured and how
energy was obtained.
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field
from typing import Any

#: CPU flags worth reporting for inference speed, with what they mean. Names as Linux prints them
#: in /proc/cpuinfo (py-cpuinfo uses the same names on other systems).
CPU_FEATURES: dict[str, str] = {
    "avx2": "256-bit SIMD (AVX2)",
    "fma": "fused multiply-add",
    "avx512f": "512-bit SIMD (AVX-512 foundation)",
    "avx512_vnni": "AVX-512 VNNI: int8 dot products (fast int8 inference)",
    "avx_vnni": "AVX-VNNI: int8 dot products on 256-bit vectors",
    "avx512_bf16": "AVX-512 bf16 dot products",
    "amx_tile": "AMX tiles (Intel Advanced Matrix Extensions)",
    "amx_int8": "AMX int8 matrix multiply",
    "amx_bf16": "AMX bf16 matrix multiply",
    "asimd": "Arm NEON (Advanced SIMD)",
    "asimddp": "Arm int8 dot product (SDOT/UDOT)",
    "sve": "Arm Scalable Vector Extension",
}


@dataclass(frozen=True)
class CpuInfo:
    model: str
    arch: str
    cores_logical: int
    cores_physical: int | None
    features: dict[str, bool] = field(default_factory=dict)

    @property
    def int8_dot_product(self) -> bool:
        """True when the CPU has int8 dot-product instructions (VNNI, AMX or Arm SDOT)."""
        f = self.features
        return any(f.get(k) for k in ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp"))

    @property
    def is_x86(self) -> bool:
        return self.arch.lower() in ("x86_64", "amd64", "i386", "i686", "x86")

    @property
    def is_arm(self) -> bool:
        return self.arch.lower() in ("aarch64", "arm64") or self.arch.lower().startswith("arm")


@dataclass(frozen=True)
class Int8Scheme:
    """How int8 weights and activations are laid out so the CPU's int8 kernels compute exactly.

    ``reduce_range`` means 7-bit weights ([-64, 63]): x86 CPUs without VNNI multiply uint8
    activations by int8 weights with ``vpmaddubsw``, which adds two products into a *saturating*
    int16 — 255·127·2 overflows, 255·64·2 = 32,640 does not. VNNI/AMX accumulate straight into
    int32 and Arm's kernels widen before adding, so full 8-bit weights are exact there.
    """

    activation_type: str  # "uint8"
    weight_type: str  # "int8"
    reduce_range: bool
    instructions: str  # the int8 instructions the choice is made for, e.g. "AVX2 without VNNI"
    reason: str

    @property
    def label(self) -> str:
        act = "U8" if self.activation_type == "uint8" else "S8"
        return f"{act}S{7 if self.reduce_range else 8}"


def int8_instructions(cpu: CpuInfo) -> str:
    """The int8 arithmetic the CPU offers, in words: "AVX-512 VNNI", "AVX2 without VNNI", ..."""
    f = cpu.features
    if cpu.is_x86:
        if f.get("amx_int8"):
            return "AMX int8"
        if f.get("avx512_vnni"):
            return "AVX-512 VNNI"
        if f.get("avx_vnni"):
            return "AVX-VNNI"
        if f.get("avx512f"):
            return "AVX-512 without VNNI"
        if f.get("avx2"):
            return "AVX2 without VNNI"
        return "SSE (no AVX2, no VNNI)"
    if cpu.is_arm:
        return "Arm dot product (SDOT/UDOT)" if f.get("asimddp") else "Arm NEON without dot product"
    return f"unknown int8 instructions on {cpu.arch or 'this architecture'}"


def int8_scheme(cpu: CpuInfo | None = None) -> Int8Scheme:
    """The static-int8 scheme that is exact on ``cpu`` (this machine's CPU by default).

    Always uint8 activations × int8 weights (U8S8: ONNX Runtime's fast x86 kernels; int8 activations
    ran several times slower there). Weights use 7 bits on x86 without an int8 dot-product
    instruction, where 8-bit weights saturate, and on an unknown architecture, where we cannot tell.
    """
    cpu = cpu or cpu_info()
    what = int8_instructions(cpu)
    if cpu.is_x86 and cpu.int8_dot_product:
        return Int8Scheme("uint8", "int8", False, what,
                          f"{what} accumulates uint8×int8 products in int32, so full 8-bit weights are exact")
    if cpu.is_arm:
        return Int8Scheme("uint8", "int8", False, what,
                          f"{what}: Arm int8 kernels widen products before adding, so full 8-bit weights are exact")
    if cpu.is_x86:
        return Int8Scheme("uint8", "int8", True, what,
                          f"{what}: uint8×int8 pairs are summed in saturating int16 (vpmaddubsw) and 8-bit "
                          "weights can overflow; 7-bit weights (reduce_range) keep every sum exact")
    return Int8Scheme("uint8", "int8", True, what,
                      f"{what}: 7-bit weights (reduce_range) are exact on every int8 kernel")


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_bytes: int
    capability: str
    device: str  # "cuda:0"


@dataclass(frozen=True)
class HardwareReport:
    cpu: CpuInfo
    cuda: tuple[GpuInfo, ...]
    mps: bool
    nvml: bool
    nvml_reason: str
    rapl: bool

    def devices(self) -> list[str]:
        """Every device a candidate can be measured on here: ``cpu``, ``cuda:N``, ``mps``."""
        return ["cpu"] + [g.device for g in self.cuda] + (["mps"] if self.mps else [])

    def energy_method(self, device: str = "cpu") -> str:
        """Which energy figure a measurement on ``device`` can give (CodeCarbon's sources)."""
        if device.startswith("cuda"):
            if self.nvml:
                return "measured: CodeCarbon reads GPU power through NVML"
            return f"not measured on the GPU ({self.nvml_reason}); CPU energy is a CodeCarbon estimate"
        if device == "mps":
            return "not measured on the Apple GPU (CodeCarbon reads it only through powermetrics as root)"
        if self.rapl:
            return "measured: CodeCarbon reads the CPU energy counters (RAPL)"
        return "estimate: CodeCarbon TDP × load model (no RAPL counters readable)"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["devices"] = self.devices()
        d["int8_dot_product"] = self.cpu.int8_dot_product
        return d


def cpu_info() -> CpuInfo:
    """CPU model, core counts and the :data:`CPU_FEATURES` flags, from /proc/cpuinfo on Linux and
    from py-cpuinfo (a CodeCarbon dependency) elsewhere."""
    model, flags = _proc_cpuinfo()
    if not model or not flags:
        try:
            import cpuinfo  # py-cpuinfo

            info = cpuinfo.get_cpu_info()
            model = model or str(info.get("brand_raw") or "")
            flags = flags or {str(f) for f in info.get("flags", [])}
        except Exception:  # py-cpuinfo absent or failing: keep what we have
            pass
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    physical = None
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except Exception:
        physical = None
    return CpuInfo(
        model=model, arch=platform.machine(), cores_logical=os.cpu_count() or 1,
        cores_physical=physical, features={k: k in flags for k in CPU_FEATURES},
    )


def _proc_cpuinfo() -> tuple[str, set[str]]:
    model, flags = "", set[str]()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "hardware", "processor") and not model and not value.strip().isdigit():
                    model = value.strip()
                elif key in ("flags", "features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model, flags


def cuda_devices() -> list[GpuInfo]:
    """CUDA GPUs torch can use (empty on a CPU-only build or machine)."""
    try:
        import torch

        if not torch.cuda.is_available():
            return []
        out = []
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            out.append(GpuInfo(i, p.name, int(p.total_memory), f"{p.major}.{p.minor}", f"cuda:{i}"))
        return out
    except Exception:
        return []


def mps_available() -> bool:
    """Apple-silicon GPU through torch's MPS backend."""
    try:
        import torch

        return bool(torch.backends.mps.is_available())
    except Exception:
        return False


def nvml_status() -> tuple[bool, str]:
    """Whether GPU power can be read through NVML (what CodeCarbon uses), and why not."""
    try:
        import pynvml  # nvidia-ml-py, a CodeCarbon dependency
    except ImportError:
        return False, "pynvml (nvidia-ml-py) is not installed"
    try:
        pynvml.nvmlInit()
    except Exception as err:
        return False, f"NVML did not initialise ({type(err).__name__}: no NVIDIA driver or GPU)"
    try:
        n = pynvml.nvmlDeviceGetCount()
        if n == 0:
            return False, "NVML found no NVIDIA GPU"
        pynvml.nvmlDeviceGetPowerUsage(pynvml.nvmlDeviceGetHandleByIndex(0))
        return True, f"NVML reads the power of {n} GPU(s)"
    except Exception as err:
        return False, f"NVML cannot read GPU power ({type(err).__name__})"
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def rapl_readable() -> bool:
    """Whether the Linux RAPL energy counters CodeCarbon reads are present and readable."""
    base = "/sys/class/powercap/intel-rapl/intel-rapl:0/energy_uj"
    try:
        with open(base) as fh:
            fh.read()
        return True
    except OSError:
        return False


def detect() -> HardwareReport:
    """Everything above in one report (takes well under a second; no GPU work is started)."""
    nvml, reason = nvml_status()
    return HardwareReport(cpu=cpu_info(), cuda=tuple(cuda_devices()), mps=mps_available(),
                          nvml=nvml, nvml_reason=reason, rapl=rapl_readable())
