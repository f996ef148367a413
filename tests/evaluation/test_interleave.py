"""Interleaved timing and the "say only what was measured" rule.

Nothing here asserts how fast anything is: the jittered pair is built so that its per-round
ratios fall on both sides of 1 by construction (sleeps of 5 ms and 80 ms against a 20 ms
reference), whatever the machine's speed or load: a sleeper woken late on a busy machine (a few ms)
cannot turn a 5 ms call into one slower than a 20 ms one, as it could a 0.5 ms call against 2 ms.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from optim.candidate import Candidate
from optim.compare import comparison_table, headline, recommend
from optim.evaluation import noise
from optim.evaluation.interleave import measure_together
from optim.evaluation.load import LoadMonitor


class Sleeper(torch.nn.Module):
    """A model whose latency is whatever its schedule of sleeps says, call after call."""

    def __init__(self, delays_ms: list[float]) -> None:
        super().__init__()
        self.delays = [d / 1e3 for d in delays_ms]
        self.calls = 0
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.delays[self.calls % len(self.delays)])
        self.calls += 1
        return self.fc(x)


X = np.random.default_rng(0).random((20, 4), dtype=np.float32)


def _cand(delays_ms: list[float]) -> Candidate:
    return Candidate(Sleeper(delays_ms).eval(), "classification", (4,), 3)


@pytest.fixture(scope="module")
def jittered():
    """Reference: 20 ms every call. Candidate: 5 ms and 80 ms alternately (one call per block),
    so its rounds alternate between ~4× faster and ~4× slower than the reference."""
    cands = {"c0": _cand([20.0]), "c1": _cand([5.0, 80.0])}
    return measure_together(cands, X, batch_n=1, threads=1, budget_s=0.05, energy_s=0.0, reference="c0",
                            rounds=11, block_repeats=1, seed=0)


def _row(cid: str, timing: dict) -> dict:
    return {"candidate_id": cid, "recipe": "baseline" if cid == "c0" else "jittered", "family": "test", "status": "ok",
            "metric_name": "accuracy", "metric_value": 0.9, "size_bytes": 1000, **timing}


def test_noisy_pair_reads_no_measurable_difference(jittered):
    c1 = jittered["c1"]
    assert c1["latency_rounds"] == 11 and c1["latency_repeats_b1"] == 11
    lo, hi = c1["speedup_b1_ci_lo"], c1["speedup_b1_ci_hi"]
    assert lo < 1.0 < hi  # rounds on both sides of 1: the interval must include it
    assert lo <= c1["speedup_b1"] <= hi
    verdict = noise.ratio_verdict(c1, "speedup_b1")
    assert verdict.text == noise.NO_DIFFERENCE and verdict.better is None and "95% CI" in verdict.interval
    base, cand = _row("c0", jittered["c0"]), _row("c1", c1)
    line = headline(base, cand, figures=True)
    assert "no measurable difference in speed" in line and "faster" not in line and "slower" not in line
    table = comparison_table([base, cand]).set_index("ID")
    assert table.at["c1", "Latency b1 vs baseline"] == noise.NO_DIFFERENCE
    assert table.attrs["intervals"]["c1"]["Latency b1 vs baseline"].startswith("95% CI")
    # Same size, same accuracy, no measurable speed-up: nothing to recommend over the baseline.
    assert recommend([base, cand])[0] == "c0"
    from optim.report import render_report_html

    page = render_report_html({"id": "r1", "status": "done", "spec": {"model": "m", "data": "d"}}, [base, cand])
    assert "jittered</code> (test): same size, no measurable difference in speed" in page
    assert 'title="95% CI' in page  # the interval on hover in the report's table


def test_intervals_bracket_the_medians_and_cv_flags_jitter(jittered):
    for row in jittered.values():
        for key in ("latency_ms_p50_b1", "latency_ms_p95_b1"):
            lo, hi = row[f"{key}_ci_lo"], row[f"{key}_ci_hi"]
            assert lo <= row[key] <= hi
        assert row["batch_n"] == 1 and row["latency_ms_p50_bN"] == row["latency_ms_p50_b1"]
        assert 0.0 <= row["load_other_cpu_pct"] <= 100.0 and row["measure_s"] > 0
    # The candidate's round medians alternate 5 / 80 ms: far beyond the stability bound.
    assert jittered["c1"]["latency_cv"] > 0.5 and jittered["c1"]["measurement_stable"] is False
    assert "speedup_b1" not in jittered["c0"]  # the reference has no ratio to itself
    assert "unstable timing" in noise.stability_note(jittered["c1"])


def test_a_broken_candidate_fails_alone():
    class Broken(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("kaputt")

    out = measure_together({"c0": _cand([0.0]), "c1": Candidate(Broken(), "classification", (4,), 3)}, X,
                           batch_n=4, threads=1, budget_s=0.01, energy_s=0.0, reference="c0", rounds=3)
    assert out["c1"] == {"error": "RuntimeError: kaputt"}
    assert out["c0"]["latency_rounds"] == 3 and out["c0"]["latency_ms_p50_b1"] > 0


# --- the rule, on fixed numbers -------------------------------------------------------------------
@pytest.mark.parametrize("point, lo, hi, text, better", [
    (2.1, 1.8, 2.4, "2.1× faster", True),
    (0.5, 0.45, 0.55, "2× slower", False),
    (1.05, 0.9, 1.3, noise.NO_DIFFERENCE, None),
    (1.02, 1.01, 1.03, noise.NO_DIFFERENCE, None),  # measurable but under SAME_PCT
    (1.06, 1.04, 1.08, "6% faster", True),
    (400.0, 0.5, 800.0, noise.NO_DIFFERENCE, None),  # a 400× claim from one noisy window
])
def test_ratio_verdict(point, lo, hi, text, better):
    v = noise.ratio_verdict({"speedup_b1": point, "speedup_b1_ci_lo": lo, "speedup_b1_ci_hi": hi}, "speedup_b1")
    assert (v.text, v.better, v.measured) == (text, better, True)


def test_energy_verdict_and_gain():
    row = {"energy_ratio": 0.5, "energy_ratio_ci_lo": 0.45, "energy_ratio_ci_hi": 0.56,
           "speedup_b1": 1.1, "speedup_b1_ci_lo": 0.95, "speedup_b1_ci_hi": 1.2,
           "energy_j_per_1k": 1.0, "latency_ms_p50_b1": 1.0, "size_bytes": 50}
    base = {"energy_j_per_1k": 2.0, "latency_ms_p50_b1": 1.1, "size_bytes": 100}
    assert noise.metric_verdict(row, base, "energy_j_per_1k").text == "2× less energy"
    assert noise.gain_ratio(row, base, "energy_j_per_1k") == pytest.approx(2.0)
    assert noise.gain_ratio(row, base, "latency_ms_p50_b1") == 1.0  # interval includes 1
    assert noise.gain_ratio(row, base, "size_bytes") == 2.0  # exact figures keep their ratio
    assert noise.ratio_verdict({}, "speedup_b1") is None


def test_bootstrap_is_deterministic_and_brackets_the_median():
    r = np.array([0.9, 1.1, 1.0, 1.05, 0.95, 1.2, 0.8])
    med = lambda s: np.median(s, axis=1)  # noqa: E731
    assert noise.bootstrap(r, med, seed=3) == noise.bootstrap(r, med, seed=3)
    lo, hi = noise.bootstrap(r, med)
    assert lo < np.median(r) == 1.0 < hi
    assert all(math.isnan(x) for x in noise.bootstrap(np.array([1.0]), med))


def test_load_monitor_reads_shares():
    with LoadMonitor() as load:
        end = time.process_time() + 0.05
        while time.process_time() < end:  # CPU work of this process: counted as ours, not other
            pass
    assert 0.0 < load.own_pct <= 100.0 and 0.0 <= load.other_pct <= 100.0 and load.seconds > 0


def test_load_warning_only_when_busy():
    rows = [{"status": "ok", "load_other_cpu_pct": 10.0}]
    assert noise.load_warning(rows) is None
    busy = noise.load_warning([{"status": "ok", "load_other_cpu_pct": 60.0, "measurement_stable": False}])
    assert "busy" in busy and "60%" in busy and "1 row(s) are marked unstable" in busy


def test_windows_billed_zero_joules_are_dropped_not_read_as_free():
    """A CodeCarbon window that read 0 J (its process share read 0% under load) is no reading:
    it must not turn into "−100% energy" for the candidate, nor into a ratio of 0."""
    from optim.evaluation.interleave import _energy_summary, _ratios

    lat = {"latency_ms_p50_bN": 8.0, "latency_ms_p50_bN_ci_lo": 7.5, "latency_ms_p50_bN_ci_hi": 8.5}
    good = [(2.0, 0.1, 100.0, 0.5)] * 4
    s = _energy_summary(good + [(0.0, 0.0, 100.0, 0.5)] * 3, "estimate", True, 0, lat, 8)
    assert s["energy_windows_dropped"] == 3 and s["energy_windows"] == 4
    assert s["energy_power_w"] == pytest.approx(4.0)          # 2 J / 0.5 s, the zero windows left out
    assert s["energy_j_per_1k"] == pytest.approx(4.0 * 1.0)   # 4 W × (8 ms / 8 per batch) × 1,000
    none = _energy_summary([(0.0, 0.0, 100.0, 0.5)] * 3, "estimate", True, 0, lat, 8)
    assert math.isnan(none["energy_j_per_1k"]) and "read 0 J" in none["energy_method"]

    times = {(c, "b1"): [np.full(20, 1.0)] * 3 for c in ("ref", "c1")}
    windows = {"ref": good, "c1": [(0.0, 0.0, 100.0, 0.5), (1.0, 0.05, 100.0, 0.5),
                                   (0.0, 0.0, 100.0, 0.5), (1.0, 0.05, 100.0, 0.5)]}
    r = _ratios(times, windows, "ref", "c1", has_bn=False, seed=0)
    assert r["energy_ratio"] == pytest.approx(0.5)  # 1 J vs 2 J per window over the two real pairs
    only_zero = _ratios(times, {"ref": good, "c1": [(0.0, 0.0, 100.0, 0.5)] * 4}, "ref", "c1",
                        has_bn=False, seed=0)
    assert "energy_ratio" not in only_zero
