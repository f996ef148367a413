"""``measure_candidate``: every result column for one candidate, measured the same way for all."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from optim.candidate import Candidate
from optim.context import RunContext
from optim.evaluation.energy import EnergyMeter
from optim.evaluation.flops import count_macs
from optim.evaluation.latency import Runner, measure_latency
from optim.evaluation.metrics import primary_metric, task_metrics
from optim.evaluation.size import size_report

#: A variant whose batch-1 median latency is more than this factor above its parent's is flagged.
SLOWER_TOLERANCE = 1.05
#: Shortest energy window. CodeCarbon's load counters tick every 10 ms, so 0.25 s keeps the
#: CPU share within a few percent; a run's window is 2 × its latency budget (1 s by default).
ENERGY_MIN_WINDOW_S = 0.25


def measure_candidate(candidate: Candidate, ctx: RunContext, *, parent: dict | None = None,
                      meter: EnergyMeter | None = None) -> dict[str, Any]:
    """Task metrics, size, MACs, latency and energy of ``candidate`` on ``ctx.data.test``.

    Columns: ``metric_name``, ``metric_value``, the task's metrics (``accuracy``, or ``rmse``,
    ``mae``, ``r2``), :func:`~optim.evaluation.size.size_report`'s, ``macs``,
    :func:`~optim.evaluation.latency.measure_latency`'s (threads ``ctx.threads``, batch N
    ``ctx.batch_size``, ``ctx.latency_budget_s`` per batch size), and energy per 1,000
    inferences over ``ctx.energy_inferences`` inferences at batch N (CodeCarbon, country
    ``ctx.country_iso_code``; an estimate, labelled by ``energy_method``). With ``parent`` (the
    parent's row): ``slower_than_parent`` (batch-1 median more than 5% above), ``larger_than_parent``,
    ``size_ratio``, ``speedup_b1`` and ``metric_delta``.
    """
    test = ctx.data.test
    row: dict[str, Any] = {}
    spec = primary_metric(candidate.task)
    ctx.progress("measuring accuracy", 0.0)
    metrics = task_metrics(candidate.predict(test.X, threads=ctx.threads), test.y, candidate.task)
    row["metric_name"] = spec.name
    row["metric_value"] = metrics[spec.name]
    row.update(metrics)

    ctx.progress("measuring size", 0.2)
    row.update(size_report(candidate))
    row["macs"] = count_macs(candidate)

    ctx.progress("measuring latency", 0.3)
    batch_n = max(1, int(ctx.batch_size))
    row.update(measure_latency(candidate, test.X, batch_sizes=(1, batch_n), threads=ctx.threads,
                               budget_s=ctx.latency_budget_s))

    ctx.progress("measuring energy (CodeCarbon estimate)", 0.7)
    row.update(measure_energy(candidate, test.X, ctx, meter=meter))

    if parent is not None:
        row.update(compare_to_parent(row, parent))
    ctx.progress("measured", 1.0)
    return row


def measure_energy(candidate: Candidate, X: np.ndarray, ctx: RunContext, *,
                   meter: EnergyMeter | None = None) -> dict[str, Any]:
    """Energy per 1,000 inferences at batch ``ctx.batch_size``.

    At least ``ctx.energy_inferences`` inferences, repeated for at least
    ``max(ENERGY_MIN_WINDOW_S, 2 × ctx.latency_budget_s)`` seconds (the run's time budget sets
    how long each measurement may take).
    """
    batch_n = max(1, int(ctx.batch_size))
    batches = max(1, math.ceil(int(ctx.energy_inferences) / batch_n))
    nan = float("nan")
    try:
        meter = meter or EnergyMeter.shared(ctx.country_iso_code)
        with Runner(candidate, ctx.threads) as run:
            x = run.batch(X, batch_n)

            def work() -> None:
                for _ in range(batches):
                    run(x)

            window = max(ENERGY_MIN_WINDOW_S, 2.0 * float(ctx.latency_budget_s))
            return meter.measure(work, batches * batch_n, min_seconds=window)
    except Exception as err:  # noqa: BLE001 - energy never fails a run (a bad country is caught earlier)
        return {"energy_j_per_1k": nan, "co2_g_per_1k": nan, "energy_is_estimate": True,
                "energy_method": f"unavailable: {type(err).__name__}: {err}"}


def compare_to_parent(row: dict[str, Any], parent: dict[str, Any]) -> dict[str, Any]:
    """Flags and ratios of a variant against the row it was derived from."""

    def num(d: dict, key: str) -> float:
        try:
            v = float(d.get(key))
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


def measure_baseline(candidate: Candidate, splits: Any, *, threads: int, batch_size: int,
                     latency_budget_s: float, energy_inferences: int) -> dict[str, Any]:
    """:func:`measure_candidate` outside a run (short budgets, a throw-away work folder): the
    Model & data page's first look at the baseline."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="optim-page-") as tmp:
        ctx = RunContext(data=splits, threads=int(threads), batch_size=int(batch_size), workdir=Path(tmp),
                         latency_budget_s=latency_budget_s, energy_inferences=energy_inferences)
        return dict(measure_candidate(candidate, ctx))
