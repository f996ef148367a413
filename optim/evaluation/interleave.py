"""Interleaved timing: every candidate of a run measured together, in rounds, with intervals.

Why: timing candidates one after another lets drift and other programs' load land on whichever
candidate happens to be measured at that moment, so a ratio of two medians can be off by any
factor (a baseline timed during a burst of load looked 400× slower than a variant timed after
it). Here all candidates are timed in the same phase, after each has been warmed up:

1. **Latency rounds.** ``rounds`` rounds; in each, every (candidate, batch size) unit runs a short
   block of ``k`` calls, the units in a new shuffled order each round. ``k`` is chosen from the
   warm-up so a block lasts ``budget_s / rounds`` (each unit gets ``budget_s`` of timed calls in
   total, as before). Every call is timed on its own with ``perf_counter``; the garbage collector
   is off during the phase (``timeit`` does the same).
2. **Energy windows.** Then ``energy windows`` rounds of one CodeCarbon task per candidate at
   batch N, shuffled the same way, each at least :data:`ENERGY_MIN_WINDOW_S` long.
3. **Summaries.** p50 / p95 over all timed calls with a bootstrap interval over rounds; ratios
   against the reference (the baseline) **paired by round** — the baseline's and the candidate's
   block in the same round saw the same load, and every bootstrap resample keeps them together —
   (:mod:`optim.evaluation.noise` decides what an interval means for the reader). Energy per
   1,000 inferences over all windows with its interval, and the candidate ÷ baseline energy
   ratio per round with its interval. Other processes' CPU share during the phase is recorded
   (:class:`~optim.evaluation.load.LoadMonitor`).
"""

from __future__ import annotations

import gc
import itertools
import math
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from functools import partial
from typing import Any

import numpy as np

from optim.candidate import Candidate
from optim.evaluation import noise
from optim.evaluation.latency import Runner, _peak_rss, _reset_peak_rss
from optim.evaluation.load import LoadMonitor

#: Latency rounds per run (fewer for slow models, never fewer than MIN_ROUNDS).
ROUNDS = 10
MIN_ROUNDS = 5
#: Warm-up per unit: at least this many calls and this long, before anything is timed.
WARMUP_CALLS = 3
WARMUP_S = 0.02
MAX_BLOCK_REPEATS = 100_000
#: Shortest CodeCarbon window. Without RAPL its CPU figure is TDP × this process's CPU-time share
#: from counters that tick every 10 ms, so 0.25 s resolves that share to about ±4% (a probe of
#: 0.1–2.5 s windows of the same work gave the same watts within that); its 1-second monitor
#: samples are not needed because every window ends with a final sample.
ENERGY_MIN_WINDOW_S = 0.25
MIN_ENERGY_WINDOWS = 3
#: Per-round quantiles kept for the bootstrap of p50 / p95 (exact for blocks up to this size).
_QUANTILES = 101

Progress = Callable[[str, float], None]


def _call_with(run: Callable[[Any], Any], nxt: Callable[[], Any]) -> Any:
    """One timed call on the next input of a cycle."""
    return run(nxt())


def _row_percentile(s: np.ndarray, p: float) -> np.ndarray:
    """Percentile ``p`` of each row of ``s`` (resamples in rows)."""
    return np.asarray(np.percentile(s.reshape(len(s), -1), p, axis=1))


def measure_together(candidates: Mapping[str, Candidate], X: np.ndarray, *, batch_n: int = 32,
                     threads: int = 1, budget_s: float = 0.5, energy_s: float = 1.0,
                     energy_inferences: int = 0, reference: str | None = None, meter: Any = None,
                     rounds: int = ROUNDS, block_repeats: int | None = None, seed: int = 0,
                     progress: Progress | None = None) -> dict[str, dict[str, Any]]:
    """Latency, throughput and energy columns of every candidate, measured interleaved.

    ``candidates`` maps an id to a Candidate; ``reference`` (an id) gets no ratios and every
    other candidate gets ``speedup_b1`` / ``speedup_bN`` / ``energy_ratio`` against it, each with
    ``_ci_lo`` / ``_ci_hi``. Per candidate: ``latency_ms_p50_b1``, ``latency_ms_p95_b1``,
    ``latency_ms_p50_bN``, ``latency_ms_p95_bN`` (each with ``_ci_lo`` / ``_ci_hi``), ``batch_n``,
    ``throughput_sps``, ``latency_repeats_b1`` / ``_bN``, ``latency_rounds``, ``latency_cv``
    (largest coefficient of variation of per-round medians over the two batch sizes),
    ``measurement_stable``, ``threads``, ``peak_mem_mb`` (Linux), ``load_other_cpu_pct``,
    ``measure_s`` (seconds this candidate was run for timing and energy, warm-up included) and,
    with a ``meter`` (:class:`~optim.evaluation.energy.EnergyMeter`) and ``energy_s > 0``:
    ``energy_j_per_1k`` (+ interval), ``co2_g_per_1k``, ``energy_method``,
    ``energy_is_estimate``, ``energy_window_s``, ``energy_windows``, ``energy_power_w`` (mean
    power over the windows) and ``energy_s_per_1k`` (wall seconds per 1,000 inferences in the
    windows: energy = power × this). A candidate whose model
    raises gets ``{"error": "..."}`` and the others go on. ``block_repeats`` fixes ``k`` (tests).
    """
    b1, bn = 1, max(1, int(batch_n))
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, Any]] = {cid: {} for cid in candidates}
    errors: dict[str, str] = {}
    spent: dict[str, float] = {cid: 0.0 for cid in candidates}
    say = progress or (lambda m, f: None)
    Xa = np.asarray(X)
    with LoadMonitor() as load, ExitStack() as stack:
        # --- open every runner and prepare its inputs ---------------------------------------
        units: list[tuple[str, str, Callable[[], Any]]] = []
        for cid, cand in candidates.items():
            try:
                run = stack.enter_context(Runner(cand, threads))
                # Batch 1 cycles through up to 64 rows: a model whose cost depends on its input
                # (early exit) is timed on a mix of easy and hard samples, not one row's path.
                singles = [run.batch(Xa[i:], b1) for i in range(0, min(len(Xa), 64))] or [run.batch(Xa, b1)]
                nxt = itertools.cycle(singles).__next__
                xn = run.batch(Xa, bn)
                units.append((cid, "b1", partial(_call_with, run, nxt)))
                if bn != b1:
                    units.append((cid, "bN", partial(run, xn)))
                # Peak memory of one batch-N call, from a clean watermark.
                before = _reset_peak_rss()
                t0 = time.perf_counter()
                run(xn)
                spent[cid] += time.perf_counter() - t0
                peak = _peak_rss()
                if before is not None and peak is not None:
                    out[cid]["peak_mem_mb"] = max(0.0, (peak - before) / 2**20)
            except Exception as err:  # noqa: BLE001 - one broken candidate must not stop the others
                errors[cid] = f"{type(err).__name__}: {err}"
        units = [u for u in units if u[0] not in errors]

        gc_was_enabled = gc.isenabled()
        gc.disable()  # a collection inside one call would show as a latency outlier
        try:
            # --- warm-up and block sizes ----------------------------------------------------
            say("warming up every candidate", 0.0)
            per_call: dict[tuple[str, str], float] = {}
            for cid, label, fn in units:
                try:
                    per_call[(cid, label)], secs = _warm_up(fn)
                    spent[cid] += secs
                except Exception as err:  # noqa: BLE001
                    errors[cid] = f"{type(err).__name__}: {err}"
            units = [u for u in units if u[0] not in errors]
            slowest = max(per_call.values(), default=0.0)
            n_rounds = max(1, int(rounds))
            if block_repeats is None and slowest > 0 and n_rounds > MIN_ROUNDS:
                # A slow model (one call longer than a block) would overrun its budget 10×: fewer rounds.
                n_rounds = max(MIN_ROUNDS, min(n_rounds, int(4 * budget_s / slowest)))
            block_s = budget_s / n_rounds
            reps = {(cid, label): int(block_repeats) if block_repeats else
                    int(min(MAX_BLOCK_REPEATS, max(1, round(block_s / max(per_call[(cid, label)], 1e-9)))))
                    for cid, label, _ in units}
            times: dict[tuple[str, str], list[np.ndarray]] = {(cid, label): [] for cid, label, _ in units}

            # --- latency rounds -------------------------------------------------------------
            for r in range(n_rounds):
                say(f"timing round {r + 1}/{n_rounds} (all candidates interleaved)", 0.1 + 0.6 * r / n_rounds)
                for i in rng.permutation(len(units)):
                    cid, label, fn = units[int(i)]
                    if cid in errors:
                        continue
                    try:
                        block, secs = _block(fn, reps[(cid, label)], 2.0 * block_s)
                    except Exception as err:  # noqa: BLE001
                        errors[cid] = f"{type(err).__name__}: {err}"
                        continue
                    times[(cid, label)].append(block)
                    spent[cid] += secs
        finally:
            if gc_was_enabled:
                gc.enable()

        # --- energy windows -----------------------------------------------------------------
        windows: dict[str, list[tuple[float, float, float, float]]] = {cid: [] for cid in candidates}
        energy_method = ""
        is_estimate = True
        if meter is not None and energy_s > 0:
            energy_method = meter.method  # the first task pays CodeCarbon's hardware detection
            is_estimate = meter.is_estimate
            n_windows = max(MIN_ENERGY_WINDOWS, int(round(energy_s / ENERGY_MIN_WINDOW_S)))
            window_s = max(ENERGY_MIN_WINDOW_S, energy_s / n_windows)
            min_calls = max(1, math.ceil(int(energy_inferences) / n_windows / bn))
            batch_units = {cid: fn for cid, label, fn in units if label == ("bN" if bn != b1 else "b1")}
            if not energy_method.startswith("unavailable"):
                for w in range(n_windows):
                    say(f"energy window {w + 1}/{n_windows} (CodeCarbon, interleaved)", 0.7 + 0.3 * w / n_windows)
                    for i in rng.permutation(len(batch_units)):
                        cid = list(batch_units)[int(i)]
                        if cid in errors:
                            continue
                        try:
                            windows[cid].append(_energy_window(meter, batch_units[cid], window_s, min_calls, bn))
                            spent[cid] += windows[cid][-1][3]
                        except Exception as err:  # noqa: BLE001
                            errors[cid] = f"{type(err).__name__}: {err}"
    say("summarising", 1.0)

    # --- summaries ----------------------------------------------------------------------------
    for k, cid in enumerate(candidates):
        row = out[cid]
        if cid in errors:
            out[cid] = {"error": errors[cid]}
            continue
        row.update({"threads": int(threads), "batch_n": bn, "latency_rounds": len(times.get((cid, "b1"), []))})
        cvs = []
        for label in ("b1", "bN"):
            blocks = times.get((cid, label if bn != b1 else "b1"), [])
            row.update(_latency_summary(blocks, label, seed + 31 * k))
            cvs.append(noise.cv([np.median(b) for b in blocks]))
        p50n = row.get("latency_ms_p50_bN", float("nan"))
        row["throughput_sps"] = bn / (p50n / 1e3) if p50n > 0 else float("nan")
        finite = [c for c in cvs if not math.isnan(c)]
        row["latency_cv"] = max(finite) if finite else float("nan")
        row["measurement_stable"] = bool(finite) and row["latency_cv"] <= noise.STABLE_CV
        row["load_other_cpu_pct"] = load.other_pct
        row["measure_s"] = spent[cid]
        if meter is not None and energy_s > 0:
            row.update(_energy_summary(windows[cid], energy_method, is_estimate, seed + 31 * k, row, bn))
    if reference is not None and reference in out and "error" not in out[reference]:
        for k, cid in enumerate(candidates):
            if cid == reference or "error" in out[cid]:
                continue
            out[cid].update(_ratios(times, windows, reference, cid, bn != b1, seed + 7 * k, by_time=is_estimate))
    return out


# --- pieces ---------------------------------------------------------------------------------------
def _warm_up(fn: Callable[[], Any]) -> tuple[float, float]:
    """Untimed-for-the-result calls until WARMUP_CALLS and WARMUP_S; (median call s, total s)."""
    start = time.perf_counter()
    durations: list[float] = []
    while len(durations) < WARMUP_CALLS or time.perf_counter() - start < WARMUP_S:
        t0 = time.perf_counter()
        fn()
        durations.append(time.perf_counter() - t0)
        if len(durations) >= 10_000:
            break
    tail = durations[len(durations) // 2:]  # the first calls allocate; the later ones are typical
    return float(np.median(tail)), time.perf_counter() - start


def _block(fn: Callable[[], Any], k: int, max_s: float) -> tuple[np.ndarray, float]:
    """Up to ``k`` timed calls (ms each), after one untimed call when the block has several (the
    first call after another candidate ran finds cold caches; a slow model's single call is kept).
    The block ends early after ``max_s`` (at least one timed call): on a loaded machine calls
    stall far beyond the warm-up's estimate, and the budget, not ``k``, must bound the run."""
    start = time.perf_counter()
    if k > 1:
        fn()
    out = np.empty(k, dtype=np.float64)
    n = 0
    while n < k:
        t0 = time.perf_counter()
        fn()
        t1 = time.perf_counter()
        out[n] = (t1 - t0) * 1e3
        n += 1
        if t1 - start > max_s:
            break
    return out[:n], time.perf_counter() - start


def _energy_window(meter: Any, fn: Callable[[], Any], window_s: float, min_calls: int,
                   per_call: int) -> tuple[float, float, float, float]:
    """One CodeCarbon task: (energy J, CO₂ g, inferences, seconds)."""
    calls = 0
    with meter.cost() as block:
        start = time.perf_counter()
        while calls < min_calls or time.perf_counter() - start < window_s:
            fn()
            calls += 1
    if block.method.startswith("unavailable"):
        raise RuntimeError(block.method)
    return float(block.energy_j), float(block.co2_g), float(calls * per_call), float(block.seconds)


def _latency_summary(blocks: list[np.ndarray], label: str, seed: int) -> dict[str, Any]:
    nan = float("nan")
    if not blocks:
        return {f"latency_ms_p50_{label}": nan, f"latency_ms_p95_{label}": nan, f"latency_repeats_{label}": 0}
    allv = np.concatenate(blocks)
    compact = _compact(blocks)
    out: dict[str, Any] = {f"latency_repeats_{label}": int(len(allv))}
    for name, pct in (("p50", 50.0), ("p95", 95.0)):
        key = f"latency_ms_{name}_{label}"
        point = float(np.percentile(allv, pct))
        lo, hi = noise.bootstrap(compact, partial(_row_percentile, p=pct), seed=seed)
        out[key] = point
        lo_col, hi_col = noise.ci_cols(key)
        out[lo_col] = min(lo, point) if math.isfinite(lo) else nan
        out[hi_col] = max(hi, point) if math.isfinite(hi) else nan
    return out


def _compact(blocks: list[np.ndarray]) -> np.ndarray:
    """Each round reduced to the same number of quantiles (equal weight per round, blocks of any
    length): the bootstrap resamples rounds of this ``(rounds, quantiles)`` array."""
    levels = np.linspace(0.0, 1.0, _QUANTILES)
    return np.stack([np.quantile(b, levels) for b in blocks])


#: How an estimated energy figure is made (appended to the meter's method label).
BY_TIME = ("energy = mean power over the interleaved CodeCarbon windows × median time per inference at "
           "batch N (the latency table's), so energy and time agree")


def _window_power(s: np.ndarray) -> np.ndarray:
    """Mean power (W) of windows ``(..., n, 4)`` of (J, g CO₂, inferences, seconds)."""
    return s[..., 0].sum(axis=-1) / s[..., 3].sum(axis=-1)


def _energy_summary(windows: list[tuple[float, float, float, float]], method: str, is_estimate: bool,
                    seed: int, latency: Mapping[str, Any], bn: int) -> dict[str, Any]:
    """Energy per 1,000 inferences and its interval.

    A hardware reading (RAPL and the like) is used as read: joules over inferences in the
    windows. An estimate is power × time anyway (CodeCarbon's TDP × CPU share, RAM watts), so
    its time half is taken from the latency measurement — the median at batch N — rather than the
    windows' mean: on a busy machine a few calls stalled by other programs would otherwise make a
    model that is measurably faster read as using more energy. ``energy_j_per_1k_windows`` keeps
    the windows' own figure beside it.
    """
    nan = float("nan")
    # A window CodeCarbon billed 0 J is not a reading (nothing draws zero power: on a busy machine
    # its process share can read 0% between two samples): dropping it keeps a "−100% energy" out.
    dropped = sum(1 for x in windows if not x[0] > 0)
    windows = [x for x in windows if x[0] > 0]
    if not windows:
        return {
            "energy_j_per_1k": nan,
            "co2_g_per_1k": nan,
            "energy_is_estimate": True,
            "energy_method": method if method.startswith("unavailable") else
            f"unavailable: {'every energy window read 0 J' if dropped else 'no energy window finished'}",
        }
    w = np.asarray(windows, dtype=float)
    per_1k = lambda s: s[..., 0].sum(axis=-1) / s[..., 2].sum(axis=-1) * 1000.0  # noqa: E731
    windows_1k = float(per_1k(w))
    power = float(_window_power(w)) if w[:, 3].sum() > 0 else nan
    out: dict[str, Any] = {
        "energy_method": method, "energy_is_estimate": bool(is_estimate),
        "energy_window_s": float(w[:, 3].sum()), "energy_windows": int(len(w)),
        "energy_power_w": power, "energy_s_per_1k": float(w[:, 3].sum() / w[:, 2].sum() * 1000.0),
        "energy_j_per_1k_windows": windows_1k, "energy_windows_dropped": dropped,
    }
    p50 = float(latency.get("latency_ms_p50_bN", nan))
    if is_estimate and p50 > 0 and math.isfinite(power):
        p_lo, p_hi = noise.bootstrap(w, _window_power, seed=seed)
        t, t_lo, t_hi = (float(latency.get(k, nan)) / bn for k in
                         ("latency_ms_p50_bN", "latency_ms_p50_bN_ci_lo", "latency_ms_p50_bN_ci_hi"))
        point, lo, hi = power * t, p_lo * t_lo, p_hi * t_hi  # W × s per 1,000 inferences = J
        out["energy_method"] = f"{method}; {BY_TIME}"
    else:
        point = windows_1k
        lo, hi = noise.bootstrap(w, per_1k, seed=seed)
    lo_col, hi_col = noise.ci_cols("energy_j_per_1k")
    co2_per_j = float(w[:, 1].sum() / w[:, 0].sum()) if w[:, 0].sum() > 0 else nan
    out.update({"energy_j_per_1k": point, lo_col: min(lo, point) if math.isfinite(lo) else nan,
                hi_col: max(hi, point) if math.isfinite(hi) else nan, "co2_g_per_1k": point * co2_per_j})
    return out


def _ratios(times: Mapping[tuple[str, str], list[np.ndarray]], windows: Mapping[str, list[tuple]],
            ref: str, cid: str, has_bn: bool, seed: int, *, by_time: bool = False) -> dict[str, Any]:
    """Speed-ups (reference ÷ candidate p50) and the energy ratio (candidate ÷ reference per
    1,000 inferences), with intervals from a **paired** bootstrap over rounds: each resample takes
    the same rounds for both, so a round's load, which hit both alike, cancels in the ratio.
    The point is the ratio of the figures the table shows. With ``by_time`` (an estimate: power ×
    time) the energy ratio is the windows' power ratio × the batch-N latency ratio, and its
    interval the product of the two intervals' ends (conservative)."""
    out: dict[str, Any] = {}
    for label in ("b1", "bN"):
        src = label if has_bn else "b1"
        base, cand = times.get((ref, src), []), times.get((cid, src), [])
        n = min(len(base), len(cand))
        key = f"speedup_{label}"
        lo_col, hi_col = noise.ci_cols(key)
        if n == 0:
            out.update({key: float("nan"), lo_col: float("nan"), hi_col: float("nan")})
            continue
        point = float(np.median(np.concatenate(base[:n])) / np.median(np.concatenate(cand[:n])))
        paired = np.stack([_compact(base[:n]), _compact(cand[:n])], axis=1)  # (rounds, 2, quantiles)
        lo, hi = noise.bootstrap(paired, lambda s: np.median(s[:, :, 0].reshape(len(s), -1), axis=1)
                                 / np.median(s[:, :, 1].reshape(len(s), -1), axis=1), seed=seed)
        out.update({key: point, lo_col: min(lo, point) if math.isfinite(lo) else float("nan"),
                    hi_col: max(hi, point) if math.isfinite(hi) else float("nan")})
    # Windows pair by round; a pair where either side read 0 J is no reading (see _energy_summary).
    pairs = [(c, b) for c, b in zip(windows.get(cid, []), windows.get(ref, []), strict=False) if c[0] > 0 and b[0] > 0]
    if pairs:
        paired = np.asarray(pairs, dtype=float)  # (windows, 2, 4)
        col = 3 if by_time else 2  # per second (power) or per inference (energy), each side
        per = lambda s: s[..., 0].sum(axis=-2) / s[..., col].sum(axis=-2)  # noqa: E731
        ratio = lambda s: per(s)[..., 0] / per(s)[..., 1]  # noqa: E731
        point = float(ratio(paired))
        lo, hi = noise.bootstrap(paired, ratio, seed=seed + 1)
        if by_time:  # × the time ratio (candidate ÷ reference = 1 / speed-up at batch N)
            sp, sp_lo, sp_hi = out["speedup_bN"], out["speedup_bN_ci_lo"], out["speedup_bN_ci_hi"]
            point, lo, hi = point / sp, lo / sp_hi, hi / sp_lo
        lo_col, hi_col = noise.ci_cols("energy_ratio")
        out.update({"energy_ratio": point, lo_col: min(lo, point) if math.isfinite(lo) else float("nan"),
                    hi_col: max(hi, point) if math.isfinite(hi) else float("nan")})
    return out
