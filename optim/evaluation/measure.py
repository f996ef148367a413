"""``measure_candidate``: every result column for one candidate, measured the same way for all."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from optim.candidate import Candidate
from optim.context import RunContext
from optim.evaluation.energy import EnergyMeter
from optim.evaluation.flops import count_macs
from optim.evaluation.interleave import measure_together
from optim.evaluation.metrics import invalid_rows, primary_metric, task_metrics
from optim.evaluation.size import size_report

#: A variant whose batch-1 median latency is more than this factor above its parent's is flagged
#: (and, when it was timed interleaved, only if its speed-up interval lies wholly below 1).
SLOWER_TOLERANCE = 1.05


def measure_static(candidate: Candidate, ctx: RunContext) -> dict[str, Any]:
    """Everything that does not depend on time: task metrics, size, parameters, MACs.

    Columns: ``metric_name``, ``metric_value``, the task's metrics (``accuracy``, or ``rmse``,
    ``mae``, ``r2``), ``invalid_outputs`` (test rows whose outputs hold NaN or inf),
    :func:`~optim.evaluation.size.size_report`'s and ``macs``.
    """
    test = ctx.data.test
    row: dict[str, Any] = {}
    spec = primary_metric(candidate.task)
    ctx.progress("measuring accuracy", 0.0)
    # Within the batch sizes the baseline accepts (ctx.max_batch), like the timed calls.
    outputs = candidate.predict(test.X, batch_size=min(256, ctx.max_batch or 256), threads=ctx.threads)
    metrics = task_metrics(outputs, test.y, candidate.task)
    row["invalid_outputs"] = invalid_rows(outputs)
    row["metric_name"] = spec.name
    row["metric_value"] = metrics[spec.name]
    row.update(metrics)
    ctx.progress("measuring size", 0.5)
    row.update(size_report(candidate))
    row["macs"] = count_macs(candidate)
    return row


def measure_timing(candidates: Mapping[str, Candidate], ctx: RunContext, *, reference: str | None = None,
                   meter: EnergyMeter | None = None) -> dict[str, dict[str, Any]]:
    """Latency and energy of every candidate, timed together in interleaved rounds.

    :func:`optim.evaluation.interleave.measure_together` with the run's settings: threads
    ``ctx.threads``, batch N ``ctx.batch_size``, ``ctx.latency_budget_s`` of timed calls per batch
    size and candidate, energy over ``max(ENERGY_MIN_WINDOW_S × 3, 2 × ctx.latency_budget_s)``
    seconds per candidate (at least ``ctx.energy_inferences`` inferences; CodeCarbon, country
    ``ctx.country_iso_code``). Ratios and ``slower_than_parent`` are against ``reference``.
    """
    try:
        meter = meter or EnergyMeter.shared(ctx.country_iso_code)
    except Exception:  # noqa: BLE001 - energy never fails a run (a bad country is caught earlier)
        meter = None
    out = measure_together(candidates, ctx.data.test.X, batch_n=max(1, int(ctx.batch_size)), threads=ctx.threads,
                           budget_s=float(ctx.latency_budget_s), energy_s=2.0 * float(ctx.latency_budget_s),
                           energy_inferences=int(ctx.energy_inferences), reference=reference, meter=meter,
                           seed=ctx.seed, progress=ctx.progress)
    for cid, row in out.items():
        if cid != reference and "speedup_b1" in row:
            row["slower_than_parent"] = _measurably_slower(row)
        if meter is None and "error" not in row:
            row.update({"energy_j_per_1k": float("nan"), "co2_g_per_1k": float("nan"), "energy_is_estimate": True,
                        "energy_method": "unavailable: CodeCarbon could not start"})
    return out


def _measurably_slower(row: Mapping[str, Any]) -> bool:
    """Slower by more than SLOWER_TOLERANCE and the whole speed-up interval below 1."""
    point, hi = float(row.get("speedup_b1", math.nan)), float(row.get("speedup_b1_ci_hi", math.nan))
    if not math.isfinite(point):
        return False
    return point < 1.0 / SLOWER_TOLERANCE and (not math.isfinite(hi) or hi < 1.0)


def measure_candidate(candidate: Candidate, ctx: RunContext, *, parent: dict | None = None,
                      meter: EnergyMeter | None = None) -> dict[str, Any]:
    """Every result column of one candidate: :func:`measure_static` then :func:`measure_timing`.

    The same method as a run (interleaved rounds, here of one candidate), so the figure on the
    Model & data page and the baseline row of a run are comparable; ``measurement_stable`` says
    whether the rounds agreed (show no number until they do). With ``parent`` (the parent's
    row): ``slower_than_parent``, ``larger_than_parent``, ``size_ratio``, ``speedup_b1`` and
    ``metric_delta`` from the two rows' figures (no interval: they were not timed together).
    """
    row = measure_static(candidate, ctx)
    ctx.progress("measuring latency and energy", 0.3)
    timing = measure_timing({"candidate": candidate}, ctx, meter=meter)["candidate"]
    if "error" in timing:
        raise RuntimeError(f"the model failed while being timed: {timing['error']}")
    row.update(timing)
    if parent is not None:
        row.update(compare_to_parent(row, parent))
    ctx.progress("measured", 1.0)
    return row


def compare_to_parent(row: dict[str, Any], parent: dict[str, Any]) -> dict[str, Any]:
    """Flags and ratios of a variant against the row it was derived from."""

    def num(d: dict, key: str) -> float:
        try:
            raw: Any = d.get(key)  # None or text when missing or unmeasured: the except below
            v = float(raw)
        except (TypeError, ValueError):
            return float("nan")
        return v

    lat, plat = num(row, "latency_ms_p50_b1"), num(parent, "latency_ms_p50_b1")
    size, psize = num(row, "size_bytes"), num(parent, "size_bytes")
    nan = float("nan")
    return {
        "slower_than_parent": bool(lat > plat * SLOWER_TOLERANCE) if math.isfinite(lat * plat) else False,
        "larger_than_parent": bool(size > psize) if math.isfinite(size * psize) else False,
        "size_ratio": size / psize if psize > 0 else nan,
        "speedup_b1": plat / lat if lat > 0 else nan,
        "metric_delta": num(row, "metric_value") - num(parent, "metric_value"),
    }
