"""Latency and throughput, measured the same way for torch and ONNX Runtime candidates.

Fixed thread count (recorded), warm-up calls, then timed calls until a time budget is filled
(at least :data:`MIN_REPEATS`), each call timed on its own with ``time.perf_counter``; median
and p95 per batch size. The model is called directly (torch module under ``inference_mode``,
ONNX Runtime ``session.run``) on inputs prepared beforehand, so the figure is the model's, not
the Python batching around it.
"""

from __future__ import annotations

import gc
import itertools
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from optim.candidate import _ORT_DTYPES, Candidate

MIN_REPEATS = 5
#: Upper bound on timed calls per batch size, so a microsecond-fast model stops early.
MAX_REPEATS = 100_000


class Runner:
    """Calls a candidate's model on prepared batches with a fixed thread count.

    Use as a context manager: torch's intra-op thread count is set on entry and restored on exit
    (only ``set_num_threads``: the inter-op pool cannot be resized once work has started). ONNX
    Runtime candidates use their session for that thread count.
    """

    def __init__(self, candidate: Candidate, threads: int) -> None:
        self.candidate = candidate
        self.threads = int(threads)
        self._old_threads: int | None = None
        self._call: Callable[[Any], Any] | None = None

    def __enter__(self) -> Runner:
        if self.candidate.kind == "onnx":
            sess = self.candidate.model.session(self.threads)
            inp = sess.get_inputs()[0]
            self._dtype = _ORT_DTYPES.get(inp.type, np.float32)
            name = inp.name
            self._call = lambda x: sess.run(None, {name: x})
        else:
            import torch

            self._old_threads = torch.get_num_threads()
            torch.set_num_threads(self.threads)
            module = self.candidate.torch_module()
            module.eval()
            self._dtype = np.float32
            self._inference = torch.inference_mode()
            self._inference.__enter__()
            self._call = module
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.candidate.kind != "onnx":
            import torch

            self._inference.__exit__(*exc)
            if self._old_threads is not None:
                torch.set_num_threads(self._old_threads)

    def batch(self, X: np.ndarray, size: int) -> Any:
        """The first ``size`` rows of ``X`` (tiled if ``X`` is shorter), ready for the model."""
        X = np.asarray(X)
        if len(X) == 0:
            raise ValueError("cannot measure latency without input rows")
        if len(X) < size:
            X = np.concatenate([X] * (size // len(X) + 1))
        x = np.ascontiguousarray(X[:size].astype(self._dtype, copy=False))
        if self.candidate.kind == "onnx":
            return x
        import torch

        return torch.from_numpy(x.astype(np.float32, copy=False))

    def __call__(self, x: Any) -> Any:
        assert self._call is not None, "use Runner as a context manager"
        return self._call(x)



def time_calls(fn: Callable[[], Any], *, budget_s: float, warmup: int = 3,
               min_repeats: int = MIN_REPEATS, max_repeats: int = MAX_REPEATS) -> np.ndarray:
    """Wall time in milliseconds of each timed call of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(max(0, warmup)):
        fn()
    times: list[float] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside one call would show as a latency outlier (timeit does this too)
    try:
        start = time.perf_counter()
        while len(times) < max_repeats:
            t0 = time.perf_counter()
            fn()
            t1 = time.perf_counter()
            times.append((t1 - t0) * 1e3)
            if len(times) >= min_repeats and t1 - start >= budget_s:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return np.asarray(times, dtype=np.float64)


def measure_latency(candidate: Candidate, X: np.ndarray, *, batch_sizes: Sequence[int] = (1, 32),
                    threads: int = 1, budget_s: float = 0.5, warmup: int = 3) -> dict[str, Any]:
    """Median and p95 latency at batch 1 and batch N, throughput at batch N.

    ``batch_sizes`` is ``(1, N)``: the first is reported as ``_b1``, the last as ``_bN``.
    ``budget_s`` is the time of timed calls per batch size. Returns ``latency_ms_p50_b1``,
    ``latency_ms_p95_b1``, ``latency_ms_p50_bN``, ``latency_ms_p95_bN``, ``batch_n``,
    ``throughput_sps`` (samples per second at batch N from the median), ``latency_repeats_b1``,
    ``latency_repeats_bN``, ``threads`` and, on Linux, ``peak_mem_mb`` (growth of the process's
    peak resident memory over its resident memory before the batch-N calls).
    """
    sizes = [int(b) for b in batch_sizes]
    if not sizes or min(sizes) < 1:
        raise ValueError(f"batch_sizes must be positive integers, got {batch_sizes!r}")
    b1, bn = sizes[0], sizes[-1]
    out: dict[str, Any] = {"threads": int(threads), "batch_n": bn}
    with Runner(candidate, threads) as run:
        # Batch 1 cycles through up to 64 different rows: a model whose cost depends on its input
        # (early exit) is timed on a mix of easy and hard samples, not on one row's path.
        Xa = np.asarray(X)
        singles = [run.batch(Xa[i:], b1) for i in range(0, min(len(Xa), 64 * b1), b1)] or [run.batch(Xa, b1)]
        nxt = itertools.cycle(singles).__next__
        t1 = time_calls(lambda: run(nxt()), budget_s=budget_s, warmup=warmup)
        xn = run.batch(X, bn)
        rss_before = _reset_peak_rss()
        tn = time_calls(lambda: run(xn), budget_s=budget_s, warmup=warmup) if bn != b1 else t1
        peak = _peak_rss()
    out.update({
        "latency_ms_p50_b1": float(np.median(t1)),
        "latency_ms_p95_b1": float(np.percentile(t1, 95)),
        "latency_repeats_b1": int(len(t1)),
        "latency_ms_p50_bN": float(np.median(tn)),
        "latency_ms_p95_bN": float(np.percentile(tn, 95)),
        "latency_repeats_bN": int(len(tn)),
    })
    out["throughput_sps"] = bn / (out["latency_ms_p50_bN"] / 1e3) if out["latency_ms_p50_bN"] > 0 else float("nan")
    if rss_before is not None and peak is not None:
        out["peak_mem_mb"] = max(0.0, (peak - rss_before) / 2**20)
    return out


# --- peak memory (Linux: /proc/self/clear_refs resets VmHWM, the peak resident set) --------------
def proc_status_bytes(field: str) -> int | None:
    """A size field of /proc/self/status (e.g. ``VmRSS``, ``VmHWM``) in bytes; None off Linux."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak_rss() -> int | None:
    """Reset the peak-RSS watermark; return the current RSS (None where unsupported)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return None
    return proc_status_bytes("VmRSS")


def _peak_rss() -> int | None:
    return proc_status_bytes("VmHWM")
