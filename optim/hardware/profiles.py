"""Device profiles: every candidate measured under settings that stand for an edge device, plus
catalog estimates for devices this machine does not have.

The **edge profile** runs the shipped artifact (the candidate's TorchScript or ONNX file) in a
fresh Python process with one thread, batch 1, and a memory cap on the process's address space
(Linux ``RLIMIT_AS``, counted above what the runtime itself takes after import). A fresh process
gives what an edge device sees: model load time, first-inference latency, steady batch-1 latency,
and the peak resident memory the model and its inference add (``VmHWM`` growth on Linux,
``ru_maxrss`` elsewhere). The full machine is measured by the main measurement
(``optim.evaluation``); present accelerators (CUDA, MPS) are measured in-process when found.

Entry points for the experiment runner: :func:`profile_columns` (measured) and
:func:`catalog_columns` (estimated).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from optim.candidate import Candidate
from optim.context import RunContext
from optim.evaluation.latency import proc_status_bytes as _status_bytes
from optim.hardware import catalog as _catalog


@dataclass(frozen=True)
class DeviceProfile:
    """Constrained measurement settings standing for a class of device."""

    name: str
    threads: int = 1
    batch_size: int = 1
    #: Address space the process may add after importing its runtime (None: no cap).
    memory_cap_mb: int | None = 512
    description: str = ""


EDGE = DeviceProfile(
    "edge", threads=1, batch_size=1, memory_cap_mb=512,
    description="one thread, batch 1, 512 MB of address space above the runtime, in a fresh process "
                "running the exported file (a Raspberry-Pi-class budget)",
)
PROFILES: dict[str, DeviceProfile] = {EDGE.name: EDGE}

#: Rows of the test split cycled through when timing, so input-dependent models (early exit) are
#: timed on real data rather than on one repeated row.
MAX_ROWS = 256


# --- the edge profile ----------------------------------------------------------------------------
def measure_profile(candidate: Candidate, X: np.ndarray, profile: DeviceProfile = EDGE, *,
                    budget_s: float = 0.5, timeout_s: float | None = None) -> dict[str, Any]:
    """Measure ``candidate`` under ``profile`` in a fresh process on rows of ``X``.

    Returns ``latency_ms_p50``, ``latency_ms_p95``, ``latency_ms_mean``, ``repeats``, ``load_ms``,
    ``first_inference_ms``, ``peak_mem_mb`` (resident memory added by loading the model and
    running it), ``runtime_mem_mb`` (resident memory of the process after importing its runtime),
    ``memory_cap_mb``, ``fits_memory_cap``, ``artifact``, and ``error`` when the run failed.
    """
    X = np.asarray(X, dtype=np.float32)[:MAX_ROWS]
    if len(X) == 0:
        raise ValueError("measure_profile needs at least one input row")
    with tempfile.TemporaryDirectory(prefix="optim-profile-") as tmp:
        job = Path(tmp)
        try:
            artifact = _write_artifact(candidate, job)
        except Exception as err:  # neither TorchScript nor torch.export can hold this module
            return {"error": f"the model could not be written for the {profile.name} profile run "
                             f"({type(err).__name__})", "artifact": None}
        np.save(job / "X.npy", X)
        spec = {"artifact": artifact, "threads": profile.threads, "batch_size": profile.batch_size,
                "memory_cap_mb": profile.memory_cap_mb, "budget_s": float(budget_s)}
        if candidate.kind == "onnx":
            spec.update(providers=list(candidate.model.providers),
                        graph_optimization=candidate.model.graph_optimization)
        (job / "spec.json").write_text(json.dumps(spec))
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(profile.threads)
        timeout = timeout_s if timeout_s is not None else max(60.0, 40 * budget_s)
        try:
            proc = subprocess.run([sys.executable, "-m", "optim.hardware.profiles", str(job)],
                                  capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return {"error": f"the {profile.name} profile run took longer than {timeout:.0f} s", "artifact": artifact}
        out_file = job / "out.json"
        if out_file.exists():
            result = json.loads(out_file.read_text())
        else:
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-1:] or ["no output"]
            result = {"error": f"the {profile.name} profile process failed: {tail[0]}"}
    result["artifact"] = artifact
    result["memory_cap_mb"] = profile.memory_cap_mb
    return result


def _write_artifact(candidate: Candidate, job: Path) -> str:
    """The file the edge process loads: ONNX bytes, TorchScript, or a torch.export program (never a
    pickle: what goes through the disk is read back without unpickling)."""
    if candidate.kind == "onnx":
        (job / "model.onnx").write_bytes(candidate.model.model_bytes)
        return "onnx"
    from optim.candidate import export_program_bytes, torchscript_bytes

    try:
        (job / "model.ts").write_bytes(torchscript_bytes(candidate.torch_module(), candidate.input_shape))
        return "torchscript"
    except Exception:
        (job / "model.pt2").write_bytes(export_program_bytes(candidate.torch_module(), candidate.input_shape))
        return "torch.export"


def _child(job: Path) -> None:
    """Runs in the fresh process: import the runtime, cap memory, load, time, report."""
    spec = json.loads((job / "spec.json").read_text())
    X = np.load(job / "X.npy")
    threads, bsz = int(spec["threads"]), int(spec["batch_size"])
    out: dict[str, Any] = {}
    if spec["artifact"] == "onnx":
        from optim.candidate import OnnxModel

        def load() -> Any:
            model = OnnxModel((job / "model.onnx").read_bytes(), spec.get("providers"),
                              spec.get("graph_optimization", "all"))
            sess = model.session(threads)
            name = sess.get_inputs()[0].name
            return lambda x: sess.run(None, {name: x})

        batches = [X[i:i + bsz] for i in range(0, len(X), bsz)]
    else:
        import torch

        torch.set_num_threads(threads)

        def load() -> Any:
            if spec["artifact"] == "torchscript":
                module = torch.jit.load(str(job / "model.ts"))
            else:
                from optim.candidate import load_export_program

                module = load_export_program((job / "model.pt2").read_bytes())
            module.eval()

            def call(x: Any) -> Any:
                with torch.inference_mode():
                    return module(x)

            return call

        batches = [torch.from_numpy(X[i:i + bsz]) for i in range(0, len(X), bsz)]
    runtime_rss = _rss_bytes()
    out["runtime_mem_mb"] = runtime_rss / 2**20 if runtime_rss else None
    _reset_peak()
    base_rss = _rss_bytes()
    out["fits_memory_cap"] = True
    try:
        _cap_address_space(spec.get("memory_cap_mb"))
        t0 = time.perf_counter()
        call = load()
        out["load_ms"] = (time.perf_counter() - t0) * 1e3
        t0 = time.perf_counter()
        call(batches[0])
        out["first_inference_ms"] = (time.perf_counter() - t0) * 1e3
        for b in batches[: min(len(batches), 20)]:  # warm-up over different rows
            call(b)
        times: list[float] = []
        start = time.perf_counter()
        i = 0
        while len(times) < 20_000:
            b = batches[i % len(batches)]
            t = time.perf_counter()
            call(b)
            t1 = time.perf_counter()
            times.append((t1 - t) * 1e3)
            i += 1
            # At least one pass over the rows, so each row's path (e.g. its exit) counts once.
            if i >= len(batches) and t1 - start >= spec["budget_s"]:
                break
        arr = np.asarray(times)
        out.update(latency_ms_p50=float(np.median(arr)), latency_ms_p95=float(np.percentile(arr, 95)),
                   latency_ms_mean=float(arr.mean()), repeats=int(len(arr)))
    except (MemoryError, RuntimeError) as err:
        if "memory" not in str(err).lower() and not isinstance(err, MemoryError):
            raise
        out["fits_memory_cap"] = False
        out["error"] = f"exceeded the memory cap of {spec.get('memory_cap_mb')} MB: {type(err).__name__}"
    peak = _peak_bytes()
    if peak is not None and base_rss is not None:
        out["peak_mem_mb"] = max(0.0, (peak - base_rss) / 2**20)
    (job / "out.json").write_text(json.dumps(out))


def _rss_bytes() -> int | None:
    rss = _status_bytes("VmRSS")
    if rss is not None:
        return rss
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:
        return None


def _reset_peak() -> None:
    try:  # Linux: writing 5 to clear_refs resets VmHWM (the peak resident set) to the current one
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _peak_bytes() -> int | None:
    hwm = _status_bytes("VmHWM")
    if hwm is not None:
        return hwm
    try:
        import resource

        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(maxrss if sys.platform == "darwin" else maxrss * 1024)
    except Exception:
        return None


def _cap_address_space(cap_mb: int | None) -> None:
    """Limit the address space to what is mapped now plus ``cap_mb`` (Linux; no-op elsewhere)."""
    if not cap_mb:
        return
    vm = _status_bytes("VmSize")
    if vm is None:
        return
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = vm + int(cap_mb) * 2**20
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass


# --- accelerators present on this machine --------------------------------------------------------
def measure_on_device(candidate: Candidate, X: np.ndarray, device: str, *, budget_s: float = 0.5,
                      threads: int = 1, batch_n: int = 32) -> dict[str, Any]:
    """Batch-1 and batch-N latency of ``candidate`` on ``device`` (``cpu``, ``cuda:N``, ``mps``).

    CPU uses the common measurement (:func:`optim.evaluation.latency.measure_latency`). On a GPU the
    torch model is copied to the device (the candidate is not touched) and each call is
    synchronized before the clock stops; ONNX candidates use ONNX Runtime's CUDA provider.
    """
    from optim.evaluation.latency import measure_latency, time_calls

    if device == "cpu":
        res = measure_latency(candidate, X, batch_sizes=(1, batch_n), threads=threads, budget_s=budget_s)
        return {k: res[k] for k in ("latency_ms_p50_b1", "latency_ms_p95_b1", "latency_ms_p50_bN",
                                    "latency_ms_p95_bN", "throughput_sps") if k in res}
    X = np.asarray(X, dtype=np.float32)
    if len(X) < batch_n:
        X = np.concatenate([X] * (batch_n // max(1, len(X)) + 1))
    x1: Any  # arrays for ONNX Runtime, tensors on the device for torch
    xn: Any
    if candidate.kind == "onnx":
        import onnxruntime as ort

        from optim.candidate import OnnxModel

        if not device.startswith("cuda") or "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RuntimeError(f"ONNX Runtime has no execution provider for {device} here")
        model = OnnxModel(candidate.model.model_bytes, ("CUDAExecutionProvider", "CPUExecutionProvider"),
                          candidate.model.graph_optimization)
        x1, xn = X[:1], X[:batch_n]
        t1 = time_calls(lambda: model.run(x1, threads), budget_s=budget_s)
        tn = time_calls(lambda: model.run(xn, threads), budget_s=budget_s)
    else:
        import copy

        import torch

        module = copy.deepcopy(candidate.torch_module()).to(device).eval()
        sync = torch.cuda.synchronize if device.startswith("cuda") else torch.mps.synchronize
        x1 = torch.from_numpy(X[:1]).to(device)
        xn = torch.from_numpy(X[:batch_n]).to(device)

        def run(x: Any) -> None:
            with torch.inference_mode():
                module(x)
            sync()

        t1 = time_calls(lambda: run(x1), budget_s=budget_s)
        tn = time_calls(lambda: run(xn), budget_s=budget_s)
    p50n = float(np.median(tn))
    return {"latency_ms_p50_b1": float(np.median(t1)), "latency_ms_p95_b1": float(np.percentile(t1, 95)),
            "latency_ms_p50_bN": p50n, "latency_ms_p95_bN": float(np.percentile(tn, 95)),
            "throughput_sps": batch_n / (p50n / 1e3) if p50n > 0 else float("nan")}


def device_suffix(device: str) -> str:
    """``cuda:0`` → ``cuda0``: a device name usable in a column name."""
    return device.replace(":", "").replace("-", "_")


# --- what the experiment runner calls ------------------------------------------------------------
def profile_columns(candidate: Candidate, ctx: RunContext, profile: DeviceProfile = EDGE) -> dict[str, Any]:
    """Result columns from the edge profile and from each accelerator present.

    ``latency_ms_p50_edge``, ``latency_ms_p95_edge``, ``latency_ms_mean_edge``, ``load_ms_edge``,
    ``first_inference_ms_edge``, ``peak_mem_mb_edge``, ``memory_cap_mb_edge``,
    ``fits_memory_cap_edge``, ``artifact_edge``; per CUDA/MPS device ``latency_ms_p50_b1_<dev>``
    and ``latency_ms_p50_bN_<dev>``; ``devices_measured``; and ``device_profile_error`` when a
    part failed (the other columns are still given).
    """
    from optim.hardware.detect import cuda_devices, mps_available

    X = ctx.data.test.X if len(ctx.data.test) else ctx.data.val.X
    cols: dict[str, Any] = {}
    errors: list[str] = []
    res = measure_profile(candidate, X, profile, budget_s=ctx.latency_budget_s)
    sfx = profile.name
    for key in ("latency_ms_p50", "latency_ms_p95", "latency_ms_mean", "load_ms", "first_inference_ms",
                "peak_mem_mb", "memory_cap_mb", "fits_memory_cap", "artifact"):
        if key in res:
            cols[f"{key}_{sfx}"] = res[key]
    if res.get("error"):
        errors.append(str(res["error"]))
    measured = ["cpu"]
    accelerators = [g.device for g in cuda_devices()] + (["mps"] if mps_available() else [])
    for dev in accelerators:
        try:
            r = measure_on_device(candidate, X, dev, budget_s=ctx.latency_budget_s, threads=ctx.threads,
                                  batch_n=ctx.batch_size)
            cols[f"latency_ms_p50_b1_{device_suffix(dev)}"] = r["latency_ms_p50_b1"]
            cols[f"latency_ms_p50_bN_{device_suffix(dev)}"] = r["latency_ms_p50_bN"]
            measured.append(dev)
        except Exception as err:  # one device failing must not lose the others
            errors.append(f"{dev}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    cols["devices_measured"] = ",".join(measured)
    if errors:
        cols["device_profile_error"] = "; ".join(errors)
    return cols


def catalog_columns(macs: float, size_bytes: float, input_bytes: int | None = None,
                    dtype: str = "fp32") -> dict[str, Any]:
    """Estimated latency and energy per catalog device, from MACs and bytes (roofline).

    ``est_latency_ms_<device>`` and ``est_energy_j_per_1k_<device>`` for every device of
    :data:`optim.hardware.catalog.CATALOG` (``-`` becomes ``_`` in the key), ``est_method`` (the
    estimate label), ``est_dtypes`` (devices that run another dtype than ``dtype``). Bytes moved
    per inference = ``size_bytes`` (weights read once at batch 1) + ``input_bytes``. With
    ``input_bytes``, also the cloud-vs-edge figures: ``est_cloud_latency_ms`` (upload + round trip
    + compute on :data:`~optim.hardware.catalog.DEFAULT_CLOUD`) and ``est_network_ms``.
    """
    cols: dict[str, Any] = {}
    if macs is None or size_bytes is None or not math.isfinite(float(macs)) or not math.isfinite(float(size_bytes)):
        return cols
    moved = float(size_bytes) + float(input_bytes or 0)
    other_dtypes = []
    for key in _catalog.CATALOG:
        est = _catalog.estimate(float(macs), moved, key, dtype)
        k = key.replace("-", "_")
        cols[f"est_latency_ms_{k}"] = est.latency_s * 1e3
        cols[f"est_energy_j_per_1k_{k}"] = est.energy_j * 1e3
        if est.dtype != dtype:
            other_dtypes.append(f"{key}:{est.dtype}")
    cols["est_method"] = _catalog.ESTIMATE_LABEL
    if other_dtypes:
        cols["est_dtypes"] = f"{dtype} except " + ", ".join(other_dtypes)
    if input_bytes is not None:
        cve = _catalog.cloud_vs_edge(float(macs), moved, int(input_bytes), "rpi5", dtype=dtype)
        cols["est_cloud_latency_ms"] = cve.cloud_latency_s * 1e3
        cols["est_network_ms"] = cve.network_s * 1e3
        cols["est_cloud_assumptions"] = (f"{_catalog.DEFAULT_CLOUD} + {cve.rtt_s * 1e3:.0f} ms round trip + "
                                         f"upload at {cve.uplink_mbps:g} Mbit/s")
    return cols


if __name__ == "__main__":  # the edge profile's fresh process: python -m optim.hardware.profiles JOB_DIR
    _child(Path(sys.argv[1]))
