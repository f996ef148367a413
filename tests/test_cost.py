"""optim.cost: recipe time estimates from MACs, data size and training budget; the calibration
is cached in OPTIM_HOME; the ETA converges on measured step times."""

from __future__ import annotations

import json

import pytest

from optim import cost
from optim.errors import ConfigError

# A fixed machine: estimates below are exact arithmetic, never a timing of this machine.
CAL = cost.Calibration(train_s_per_batch=1e-3, train_s_per_mac=1e-9, infer_s_per_mac=3e-10, threads=1, torch="x")
ARGS = {"macs": 100_000, "n_rows": 10_000, "cal": CAL, "latency_budget_s": 0.5, "energy_inferences": 2000}


def test_training_budget_drives_the_estimate() -> None:
    q = cost.estimate_recipe("quantize-dynamic", **ARGS)
    assert q.training_epochs == 0 and q.variants == 1
    # No training: two latency budgets, the energy inferences and the fixed overhead, plus one evaluation.
    assert q.seconds == pytest.approx(2 * 0.5 + 2000 * 1e5 * 3e-10 + cost.CANDIDATE_OVERHEAD_S + 2000 * 1e5 * 3e-10)
    d30 = cost.estimate_recipe("distill:epochs=30", **ARGS)
    d60 = cost.estimate_recipe("distill:epochs=60", **ARGS)
    assert d30.training_epochs == pytest.approx(30 * 2.33)  # teacher forwards + the no-teacher control
    per_epoch = 7000 / 64 * 1e-3 + 7000 * 1e5 * 1e-9
    assert d60.seconds - d30.seconds == pytest.approx(30 * 2.33 * per_epoch + 2000 * 1e5 * 3e-10 * 30 * 2.33)
    h20 = cost.estimate_recipe("hpo", **ARGS)  # 20 trials of retrain (20 epochs), pruned trials stop early
    assert h20.training_epochs == pytest.approx(20 * 20 * 0.6)
    assert cost.estimate_recipe("hpo:trials=10", **ARGS).training_epochs == pytest.approx(h20.training_epochs / 2)
    assert h20.seconds < cost.WARN_S < cost.estimate_recipe("hpo", **{**ARGS, "macs": 1_000_000}).seconds
    assert cost.estimate_recipe("hpo", **{**ARGS, "macs": 1_000_000}).warn and not q.warn
    sweep = cost.estimate_recipe("prune-magnitude:sparsity=0.5|0.9,finetune_epochs=2", **ARGS)
    assert sweep.variants == 2 and sweep.training_epochs == 4
    with pytest.raises(ConfigError):
        cost.estimate_recipe("no-such-technique", **ARGS)


def test_calibration_is_measured_once_and_cached(optim_home) -> None:
    cal = cost.calibrate(threads=1)
    assert cal.train_s_per_mac > 0 and cal.train_s_per_batch > 0 and cal.infer_s_per_mac > 0
    saved = json.loads((optim_home / "cost_calibration.json").read_text())
    assert saved["train_s_per_mac"] == cal.train_s_per_mac
    saved["train_s_per_mac"] = 0.5  # the cached file is what a second call returns: no second timing
    (optim_home / "cost_calibration.json").write_text(json.dumps(saved))
    assert cost.calibrate(threads=1).train_s_per_mac == 0.5
    assert len(cost.estimate_run(["quantize-dynamic", "retrain"], macs=1000, n_rows=100)) == 2


def test_eta_converges_on_measured_steps() -> None:
    # Early on the estimate dominates; from 25% done only the measured rate counts.
    assert cost.eta_s(0, 0.0, estimate_s=600) == 600
    assert cost.eta_s(100, 0.5, estimate_s=600) == pytest.approx(100)
    assert cost.eta_s(10, 0.1, estimate_s=600) == pytest.approx(0.4 * 90 + 0.6 * 590)
    assert cost.eta_s(30, 1.0) == 0 and cost.eta_s(30, 0.0) is None
    assert [cost.format_duration(s) for s in (12, 300, 7200)] == ["~12 s", "~5 min", "~2.0 h"]
