"""Specialized hardware: a candidate measured on a device this machine has (CPU, CUDA GPU, Apple
MPS) or estimated on a device of the catalog (Raspberry Pi, Jetson, Coral Edge TPU, phone NPU,
server CPU, A100, H100, TPU v4).

The model is not changed: the step adds the device's figures to the candidate's ``info`` (so they
become result columns) — measured ones as ``target_latency_ms_*``, estimated ones as
``target_est_*`` with the estimate's label and sources. Sweeping the device
(``hardware-target:device=cpu|rpi5|a100``) gives one row per device, side by side.

Jouppi et al., "In-Datacenter Performance Analysis of a Tensor Processing Unit", ISCA 2017 (TPU v1:
15–30× faster, 30–80× better TOPS/W than a K80 GPU or Haswell CPU); Coral Edge TPU documentation
(4 TOPS at 2 W); Williams, Waterman, Patterson, "Roofline", CACM 2009 (the estimate).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from optim.candidate import Candidate
from optim.config import TechniqueConfig
from optim.context import RunContext
from optim.errors import UnsupportedError
from optim.hardware.catalog import CATALOG, DEFAULT_CLOUD, ESTIMATE_LABEL
from optim.registry import register_technique
from optim.techniques.base import Technique

#: Devices measured on this machine when present.
PRESENT_DEVICES = ("cpu", "cuda", "mps")


class HardwareTargetConfig(TechniqueConfig):
    device: Literal["auto", "cpu", "cuda", "mps", "rpi4", "rpi5", "jetson-orin-nano", "coral-edge-tpu",
                    "phone-npu", "xeon-8480", "a100", "h100", "tpu-v4"] = Field(
        "auto",
        description="Where the model should run. cpu / cuda / mps: measured on this machine (cuda and mps "
        "only when present); a catalog device: estimated from MACs and bytes (roofline, labelled as an "
        "estimate); auto: the fastest device present here (cuda, then mps, then cpu).",
        json_schema_extra={"sweep": ["cpu", "rpi4", "rpi5", "jetson-orin-nano", "coral-edge-tpu", "a100"]},
    )
    dtype: Literal["auto", "fp32", "bf16", "fp16", "int8"] = Field(
        "auto",
        description="Number format assumed for a catalog estimate; auto: the candidate's own (int8 when "
        "quantized, fp16/bf16 when halved, else fp32).",
    )
    threads: int | None = Field(None, ge=1, le=1024,
                                description="CPU threads for a measurement on cpu (default: the run's).")


@register_technique
class HardwareTarget(Technique[HardwareTargetConfig]):
    """Measure the candidate on a present device or estimate it on a catalog device.

    Jouppi et al., ISCA 2017; Coral Edge TPU docs; roofline model (Williams et al., CACM 2009).
    """

    name = "hardware-target"
    family = "hardware"
    Config = HardwareTargetConfig
    summary = "Measured on CPU/CUDA/MPS when present, estimated on catalog devices (Pi, Jetson, Edge TPU, A100...)."
    reference = "Jouppi et al., ISCA 2017; Coral Edge TPU docs; Williams et al., Roofline, CACM 2009"
    sweep_field = "device"
    fast_config = {"device": "cpu"}

    def apply(self, candidate: Candidate, config: HardwareTargetConfig, ctx: RunContext) -> Candidate:
        from optim.hardware.detect import detect

        report = detect()
        dev = config.device
        if dev == "auto":
            dev = "cuda" if report.cuda else ("mps" if report.mps else "cpu")
        if dev in PRESENT_DEVICES:
            info = self._measure(candidate, dev, config, ctx, report)
        else:
            info = self._estimate(candidate, dev, config)
        return candidate.derive(self.step(config, label=f"device={dev}"), info=info)

    def _measure(self, candidate: Candidate, dev: str, config: HardwareTargetConfig, ctx: RunContext,
                 report: Any) -> dict[str, Any]:
        from optim.hardware.profiles import measure_on_device

        if dev == "cuda" and not report.cuda:
            raise UnsupportedError(
                "hardware-target: device=cuda: no CUDA GPU on this machine (torch.cuda.is_available() is "
                "False). Choose cpu, or a catalog device for an estimate (jetson-orin-nano, a100, h100)."
            )
        if dev == "mps" and not report.mps:
            raise UnsupportedError(
                "hardware-target: device=mps: no Apple-silicon GPU here (torch.backends.mps.is_available() is "
                "False). Choose cpu, or a catalog device for an estimate."
            )
        device = "cuda:0" if dev == "cuda" else dev
        threads = config.threads or ctx.threads
        X = ctx.data.test.X if len(ctx.data.test) else ctx.data.val.X
        res = measure_on_device(candidate, X, device, budget_s=ctx.latency_budget_s, threads=threads,
                                batch_n=ctx.batch_size)
        if device == "cpu":
            name = f"{report.cpu.model} ({report.cpu.cores_logical} logical cores, {threads} thread(s) used)"
        else:
            gpu = next((g for g in report.cuda if g.device == device), None)
            name = gpu.name if gpu else device
        info: dict[str, Any] = {
            "target_device": device, "target_kind": "measured", "target_device_name": name,
            "target_latency_ms_p50_b1": res["latency_ms_p50_b1"], "target_latency_ms_p95_b1": res["latency_ms_p95_b1"],
            "target_latency_ms_p50_bN": res["latency_ms_p50_bN"], "target_throughput_sps": res["throughput_sps"],
            "target_energy_method": report.energy_method(device),
        }
        if device == "cpu":
            info["target_cpu_features"] = ",".join(k for k, v in report.cpu.features.items() if v)
        if device.startswith("cuda") and report.nvml:
            info.update(_gpu_energy(candidate, X, device, ctx))
        return info

    def _estimate(self, candidate: Candidate, dev: str, config: HardwareTargetConfig) -> dict[str, Any]:
        from optim.evaluation.flops import count_macs
        from optim.hardware.catalog import cloud_vs_edge, estimate

        macs = count_macs(candidate)
        if macs is None:
            raise UnsupportedError(
                "hardware-target: the model's multiply-accumulates could not be counted, so no estimate can "
                "be made for a catalog device (measure it on cpu instead)."
            )
        size_bytes = len(candidate.serialize()[1])
        input_bytes = 4 * int(np.prod(candidate.input_shape))
        dtype = config.dtype if config.dtype != "auto" else model_dtype(candidate)
        moved = size_bytes + input_bytes
        est = estimate(macs, moved, dev, dtype)
        device = CATALOG[dev]
        info: dict[str, Any] = {
            "target_device": dev, "target_kind": "estimated", "target_device_name": device.name,
            "target_est_latency_ms": est.latency_s * 1e3, "target_est_energy_j_per_1k": est.energy_j * 1e3,
            "target_est_bound": est.bound, "target_est_dtype": est.dtype, "target_est_method": ESTIMATE_LABEL,
            "target_est_sources": list(est.sources), "target_est_macs": int(macs), "target_est_bytes": int(moved),
        }
        if device.notes:
            info["target_device_notes"] = device.notes
        if est.dtype != dtype:
            info["target_est_note"] = f"the model is {dtype}; {dev} runs {est.dtype}, so it would need converting"
        if device.kind == "edge":
            cve = cloud_vs_edge(macs, moved, input_bytes, dev, DEFAULT_CLOUD, dtype)
            info.update({"target_est_cloud_latency_ms": cve.cloud_latency_s * 1e3,
                         "target_est_network_ms": cve.network_s * 1e3, "target_est_faster": cve.faster,
                         "target_est_cloud_assumptions": f"{DEFAULT_CLOUD}, {cve.rtt_s * 1e3:.0f} ms round trip, "
                                                         f"{cve.uplink_mbps:g} Mbit/s uplink"})
        return info


def model_dtype(candidate: Candidate) -> str:
    """The number format the candidate computes in: int8 (torch.ao quantized modules, ONNX integer or
    QDQ ops), fp16 / bf16 (half-precision parameters), else fp32."""
    if candidate.kind == "onnx":
        ops = {n.op_type for n in candidate.model.proto().graph.node}
        if ops & {"QLinearConv", "QLinearMatMul", "MatMulInteger", "ConvInteger", "DynamicQuantizeLinear",
                  "DequantizeLinear", "QGemm", "DynamicQuantizeMatMul"}:
            return "int8"
        return "fp32"
    import torch

    module = candidate.torch_module()
    if any("quantized" in type(m).__module__ for m in module.modules()):
        return "int8"
    dtypes = {p.dtype for p in module.parameters()}
    if torch.float16 in dtypes:
        return "fp16"
    if torch.bfloat16 in dtypes:
        return "bf16"
    return "fp32"


def _gpu_energy(candidate: Candidate, X: np.ndarray, device: str, ctx: RunContext) -> dict[str, Any]:
    """Energy per 1,000 batch-1 inferences on the GPU, from CodeCarbon (which reads NVML here)."""
    import copy

    import torch

    from optim.evaluation.energy import EnergyMeter

    if candidate.kind != "torch":
        return {}
    module = copy.deepcopy(candidate.torch_module()).to(device).eval()
    x = torch.from_numpy(np.asarray(X[:1], np.float32)).to(device)

    def run() -> None:
        with torch.inference_mode():
            for _ in range(100):
                module(x)
        torch.cuda.synchronize()

    res = EnergyMeter.shared(ctx.country_iso_code).measure(run, 100)
    return {"target_energy_j_per_1k": res.get("energy_j_per_1k"), "target_energy_method": res.get("energy_method")}
