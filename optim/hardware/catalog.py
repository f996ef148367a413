"""A catalog of target devices and a roofline estimate of latency and energy on each.

Nothing here is measured. Every figure carries the source it was taken from; figures we derived
ourselves (cores × clock × operations per cycle) say so. The estimate is a *roofline* (Williams,
Waterman, Patterson, CACM 2009): an inference takes at least ``ops / peak_ops`` (compute bound)
and at least ``bytes / bandwidth`` (memory bound), whichever is longer. It assumes the device runs
at its documented peak with no kernel-launch, framework or scheduling overhead, so it is a
**lower bound** on latency, usually by a wide margin for small models. Energy is that latency times
the device's power figure (TDP or measured maximum): the device drawing full power for that time.

Cloud vs edge adds what a remote call costs on top of the cloud device's compute: a network round
trip and uploading the input at a stated uplink bandwidth (defaults below; both are assumptions
the caller can change).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from optim.errors import ConfigError

#: What every estimate is labelled with, in results and in the dashboard.
ESTIMATE_LABEL = ("roofline estimate from catalog peak figures (not measured; a lower bound on "
                  "latency: peak throughput, no runtime overhead)")

#: The numeric types peak figures are given for. One MAC is two operations (TOPS convention).
DTYPES = ("fp32", "tf32", "bf16", "fp16", "int8")

#: Default network assumptions for the cloud-vs-edge comparison (assumptions, not measurements).
DEFAULT_RTT_S = 0.050        # a typical mobile (4G/LTE) round trip to a cloud region
DEFAULT_UPLINK_MBPS = 10.0   # megabits per second of upload


@dataclass(frozen=True)
class Figure:
    """One documented number and where it comes from."""

    value: float
    source: str


@dataclass(frozen=True)
class Device:
    """A device of the catalog: peak throughput per dtype (operations/s), memory bandwidth
    (bytes/s), power (W), and the source of each figure.

    ``onchip_bytes``: a device that keeps the model's parameters in on-chip memory once loaded
    (the Coral Edge TPU caches up to ~8 MB); below that size, memory traffic is not the limit.
    """

    key: str
    name: str
    kind: str  # "edge" or "cloud"
    peak_ops: Mapping[str, Figure]
    memory_bw: Figure
    power_w: Figure
    onchip_bytes: int = 0
    notes: str = ""
    fallback: tuple[str, ...] = field(default=("fp32", "bf16", "fp16", "int8"))

    def dtype_for(self, dtype: str) -> str:
        """The dtype the device would run a model stored as ``dtype`` at.

        The same dtype when the device documents it; else the first documented one in
        ``fallback`` order (a CPU without int8 dot products runs int8 at about its fp32 rate; an
        int8-only accelerator needs the model quantized to int8).
        """
        if dtype in self.peak_ops:
            return dtype
        for d in self.fallback:
            if d in self.peak_ops:
                return d
        return next(iter(self.peak_ops))


def _f(value: float, source: str) -> Figure:
    return Figure(float(value), source)


_NV_A100 = "NVIDIA A100 Tensor Core GPU datasheet (SXM4 80GB), dense (non-sparse) figures"
_NV_H100 = "NVIDIA H100 Tensor Core GPU datasheet (SXM5), dense figures = half the datasheet's 'with sparsity' values"
_TPU4 = "Google Cloud TPU v4 documentation (cloud.google.com/tpu/docs/v4)"
_INTEL = ("Intel ARK, Xeon Platinum 8480+ (56 cores, 2.0 GHz base, 350 W TDP, 8 channels DDR5-4800); "
          "Intel optimization manual: AMX does 1024 bf16 / 2048 int8 ops per cycle per core, AVX-512 "
          "2 FMA × 16 fp32 per cycle")

#: The catalog, keyed by the name used in column names and in ``hardware-target:device=KEY``.
CATALOG: dict[str, Device] = {d.key: d for d in (
    Device(
        key="rpi4", name="Raspberry Pi 4 Model B (4× Cortex-A72 @ 1.5 GHz)", kind="edge",
        peak_ops={"fp32": _f(4 * 1.5e9 * 8, "derived: 4 cores × 1.5 GHz × 8 fp32 FLOP/cycle (one 128-bit "
                                            "NEON FMA per cycle on Cortex-A72); our arithmetic")},
        memory_bw=_f(12.8e9, "derived: LPDDR4-3200 (Raspberry Pi 4 product brief) on a 32-bit bus"),
        power_w=_f(6.4, "secondary: ~6.4 W measured at full CPU load in reviews (official supply 15.3 W)"),
        notes="No int8 dot-product instructions (Armv8.0): int8 models run at about the fp32 rate.",
    ),
    Device(
        key="rpi5", name="Raspberry Pi 5 (4× Cortex-A76 @ 2.4 GHz)", kind="edge",
        peak_ops={
            "fp32": _f(4 * 2.4e9 * 16, "derived: 4 cores × 2.4 GHz × 16 fp32 FLOP/cycle (two 128-bit NEON "
                                       "FMA pipes on Cortex-A76); our arithmetic"),
            "fp16": _f(4 * 2.4e9 * 32, "derived: as fp32 with 8 fp16 lanes per 128-bit FMA (Armv8.2 FP16)"),
            "int8": _f(4 * 2.4e9 * 64, "derived: 4 cores × 2.4 GHz × two 128-bit SDOT per cycle "
                                       "(16 int8 MACs each) = 64 ops/cycle; our arithmetic"),
        },
        memory_bw=_f(17.1e9, "derived: LPDDR4X-4267 (Raspberry Pi 5 product brief) on a 32-bit bus"),
        power_w=_f(12.0, "secondary: reviews report ~10–14 W under heavy load (official supply 27 W)"),
    ),
    Device(
        key="jetson-orin-nano", name="NVIDIA Jetson Orin Nano 8GB (Super mode, JetPack 6.1)", kind="edge",
        peak_ops={
            "int8": _f(33.5e12, "NVIDIA Jetson Orin Nano Super datasheet: 67 INT8 TOPS with sparsity; "
                                "dense = half"),
            "fp16": _f(16.75e12, "derived: Ampere tensor cores run fp16 at half the int8 rate"),
            "fp32": _f(1024 * 2 * 1.02e9, "derived: 1024 CUDA cores × 2 FLOP (FMA) × 1.02 GHz GPU clock "
                                          "(Super datasheet)"),
        },
        memory_bw=_f(102e9, "NVIDIA Jetson Orin Nano Super datasheet: 102 GB/s LPDDR5 (68 GB/s before Super)"),
        power_w=_f(25.0, "NVIDIA Jetson Orin Nano Super datasheet: 7–25 W module power modes (25 W max)"),
    ),
    Device(
        key="coral-edge-tpu", name="Google Coral Edge TPU (USB Accelerator)", kind="edge",
        peak_ops={"int8": _f(4e12, "Coral docs (coral.ai/docs/edgetpu/faq): 4 TOPS fixed-point, 2 W")},
        memory_bw=_f(0.625e9, "USB 3.0 link (5 Gbit/s) to the host: parameters beyond the on-chip cache "
                              "are streamed over it (Coral docs, 'parameter data caching')"),
        power_w=_f(2.0, "Coral docs: 2 W at 4 TOPS (0.5 W per TOPS)"),
        onchip_bytes=8 * 2**20,
        notes="Runs only int8 TensorFlow Lite models compiled for the Edge TPU; ~8 MB on-chip SRAM "
              "caches parameters.",
        fallback=("int8",),
    ),
    Device(
        key="phone-npu", name="Apple A17 Pro Neural Engine (iPhone 15 Pro)", kind="edge",
        peak_ops={"int8": _f(35e12, "Apple newsroom, Sept 2023: 35 trillion operations per second (precision "
                                    "not stated by Apple; int8 assumed, secondary)")},
        memory_bw=_f(51.2e9, "secondary: LPDDR5-6400 on a 64-bit bus (teardown reports); our arithmetic"),
        power_w=_f(5.0, "assumed: Apple publishes no power figure; ~5 W is a sustained phone SoC budget"),
        notes="Core ML runs fp16 or int8 on the Neural Engine; the one documented figure is 35 TOPS.",
        fallback=("int8",),
    ),
    Device(
        key="xeon-8480", name="Intel Xeon Platinum 8480+ (Sapphire Rapids, 56 cores)", kind="cloud",
        peak_ops={
            "fp32": _f(56 * 2.0e9 * 64, "derived from " + _INTEL + " (at base clock); our arithmetic"),
            "bf16": _f(56 * 2.0e9 * 1024, "derived from " + _INTEL + " (AMX bf16, base clock)"),
            "int8": _f(56 * 2.0e9 * 2048, "derived from " + _INTEL + " (AMX int8, base clock)"),
        },
        memory_bw=_f(307.2e9, "derived: Intel ARK 8 channels × DDR5-4800 × 8 bytes"),
        power_w=_f(350.0, "Intel ARK: 350 W TDP"),
    ),
    Device(
        key="a100", name="NVIDIA A100 SXM4 80GB", kind="cloud",
        peak_ops={
            "fp32": _f(19.5e12, _NV_A100 + ": FP32 19.5 TFLOPS"),
            "tf32": _f(156e12, _NV_A100 + ": TF32 Tensor Core 156 TFLOPS"),
            "bf16": _f(312e12, _NV_A100 + ": BF16 Tensor Core 312 TFLOPS"),
            "fp16": _f(312e12, _NV_A100 + ": FP16 Tensor Core 312 TFLOPS"),
            "int8": _f(624e12, _NV_A100 + ": INT8 Tensor Core 624 TOPS"),
        },
        memory_bw=_f(2039e9, _NV_A100 + ": HBM2e 2,039 GB/s"),
        power_w=_f(400.0, _NV_A100 + ": max TDP 400 W"),
    ),
    Device(
        key="h100", name="NVIDIA H100 SXM5 80GB", kind="cloud",
        peak_ops={
            "fp32": _f(67e12, _NV_H100 + ": FP32 67 TFLOPS"),
            "tf32": _f(494.5e12, _NV_H100 + ": TF32 Tensor Core 989 TFLOPS sparse"),
            "bf16": _f(989.5e12, _NV_H100 + ": BF16 Tensor Core 1,979 TFLOPS sparse"),
            "fp16": _f(989.5e12, _NV_H100 + ": FP16 Tensor Core 1,979 TFLOPS sparse"),
            "int8": _f(1979e12, _NV_H100 + ": INT8 Tensor Core 3,958 TOPS sparse"),
        },
        memory_bw=_f(3.35e12, _NV_H100 + ": HBM3 3.35 TB/s"),
        power_w=_f(700.0, _NV_H100 + ": max TDP up to 700 W"),
    ),
    Device(
        key="tpu-v4", name="Google Cloud TPU v4 (one chip)", kind="cloud",
        peak_ops={
            "bf16": _f(275e12, _TPU4 + ": 275 teraflops peak per chip (bf16 or int8)"),
            "int8": _f(275e12, _TPU4 + ": 275 teraflops peak per chip (bf16 or int8)"),
        },
        memory_bw=_f(1200e9, _TPU4 + ": HBM2 32 GiB, 1200 GBps"),
        power_w=_f(192.0, _TPU4 + ": measured min/mean/max power 90/170/192 W (max used)"),
        notes="fp32 models run with bf16 matrix multiplies (XLA's default precision on TPU).",
        fallback=("bf16", "int8"),
    ),
)}

#: The cloud device the cloud-vs-edge comparison sends requests to by default.
DEFAULT_CLOUD = "a100"


@dataclass(frozen=True)
class Estimate:
    """A roofline estimate for one inference on one device. Unpacks as ``latency_s, energy_j``."""

    device: str
    dtype: str
    latency_s: float
    energy_j: float
    compute_s: float
    memory_s: float
    bound: str  # "compute" or "memory"
    label: str = ESTIMATE_LABEL
    sources: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[float]:
        yield self.latency_s
        yield self.energy_j


def device(key: str) -> Device:
    """The catalog device called ``key``; ConfigError listing the known keys otherwise."""
    try:
        return CATALOG[key]
    except KeyError:
        raise ConfigError(f"device={key!r}: not in the device catalog; known: {', '.join(CATALOG)}.") from None


def estimate(macs: float, bytes_moved: float, device_key: str, dtype: str = "fp32") -> Estimate:
    """Roofline latency (s) and energy (J) of one inference of ``macs`` multiply-accumulates that
    moves ``bytes_moved`` bytes to or from memory, on catalog device ``device_key``.

    ``latency = max(2·macs / peak_ops[dtype], bytes_moved / memory_bw)`` and
    ``energy = latency × power``. An estimate, labelled as one (:data:`ESTIMATE_LABEL`): it is a
    lower bound on latency (peak throughput, no runtime overhead).
    """
    if dtype not in DTYPES:
        raise ConfigError(f"dtype={dtype!r}: unknown; allowed: {', '.join(DTYPES)}.")
    if not (macs >= 0 and bytes_moved >= 0):
        raise ConfigError(f"macs={macs!r}, bytes_moved={bytes_moved!r}: both must be ≥ 0.")
    dev = device(device_key)
    run_dtype = dev.dtype_for(dtype)
    peak = dev.peak_ops[run_dtype]
    compute_s = 2.0 * float(macs) / peak.value
    streamed = max(0.0, float(bytes_moved) - dev.onchip_bytes) if dev.onchip_bytes else float(bytes_moved)
    memory_s = streamed / dev.memory_bw.value
    latency = max(compute_s, memory_s)
    return Estimate(
        device=dev.key, dtype=run_dtype, latency_s=latency, energy_j=latency * dev.power_w.value,
        compute_s=compute_s, memory_s=memory_s, bound="compute" if compute_s >= memory_s else "memory",
        sources=(peak.source, dev.memory_bw.source, dev.power_w.source),
    )


@dataclass(frozen=True)
class CloudVsEdge:
    """Edge: the model on the edge device. Cloud: upload + round trip + the model on a cloud device."""

    edge: Estimate
    cloud: Estimate
    network_s: float
    rtt_s: float
    uplink_mbps: float
    input_bytes: int

    @property
    def edge_latency_s(self) -> float:
        return self.edge.latency_s

    @property
    def cloud_latency_s(self) -> float:
        return self.cloud.latency_s + self.network_s

    @property
    def faster(self) -> str:
        return "edge" if self.edge_latency_s <= self.cloud_latency_s else "cloud"


def cloud_vs_edge(macs: float, bytes_moved: float, input_bytes: int, edge_device: str,
                  cloud_device: str = DEFAULT_CLOUD, dtype: str = "fp32", *,
                  rtt_s: float = DEFAULT_RTT_S, uplink_mbps: float = DEFAULT_UPLINK_MBPS) -> CloudVsEdge:
    """Estimated latency of running on ``edge_device`` vs sending the input to ``cloud_device``.

    The cloud path adds ``rtt_s`` (one network round trip) and ``input_bytes × 8 / uplink`` (the
    upload; the answer, a few logits, is assumed to fit in the round trip). Defaults: 50 ms RTT
    and 10 Mbit/s uplink, assumptions for a mobile connection.
    """
    if rtt_s < 0:
        raise ConfigError(f"rtt_s={rtt_s!r}: must be ≥ 0 seconds.")
    if uplink_mbps <= 0:
        raise ConfigError(f"uplink_mbps={uplink_mbps!r}: must be > 0 megabits per second.")
    edge = estimate(macs, bytes_moved, edge_device, dtype)
    cloud = estimate(macs, bytes_moved, cloud_device, dtype)
    network_s = rtt_s + float(input_bytes) * 8.0 / (uplink_mbps * 1e6)
    return CloudVsEdge(edge, cloud, network_s, rtt_s, uplink_mbps, int(input_bytes))


def catalog_table() -> list[dict[str, object]]:
    """Every device with its figures and sources, as rows for a table (the dashboard, the CLI)."""
    rows = []
    for dev in CATALOG.values():
        row: dict[str, object] = {"device": dev.key, "name": dev.name, "kind": dev.kind}
        for dt in DTYPES:
            fig = dev.peak_ops.get(dt)
            row[f"peak_tops_{dt}"] = fig.value / 1e12 if fig else None
        row["memory_bw_gbs"] = dev.memory_bw.value / 1e9
        row["power_w"] = dev.power_w.value
        row["sources"] = "; ".join(
            [f"{dt}: {f.source}" for dt, f in dev.peak_ops.items()]
            + [f"bandwidth: {dev.memory_bw.source}", f"power: {dev.power_w.source}"]
        )
        row["notes"] = dev.notes
        rows.append(row)
    return rows
