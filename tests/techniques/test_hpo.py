"""hpo: the search beats the untuned default, records every trial, survives a cancel."""

from __future__ import annotations

import json

import pytest

from optim.errors import CancelledError, ConfigError
from optim.registry import get
from optim.techniques._train_common import val_metric
from optim.techniques.hpo import search_space
from optim.techniques.optimizer import RetrainConfig
from optim.testing import fingerprint

TRIAL_KEYS = {"number", "params", "value", "state", "duration_s", "intermediate"}
# A deliberately short budget (2 epochs of SGD with momentum) where the learning rate and batch
# size matter: the untuned default (lr 0.01, batch 64) stops far below what digits allow.
POOR = {"space": ("lr", "batch_size"), "fixed": ("epochs:2", "optimizer:momentum")}


@pytest.fixture(scope="module")
def digits(load_sample):
    return load_sample("digits-mlp")


def _hpo(candidate, ctx, **settings):
    technique = get("hpo")
    return technique.run(candidate, technique.config(**settings), ctx)


def test_tpe_beats_the_untuned_default_and_records_every_trial(digits, ctx_for):
    candidate, splits = digits
    retrain = get("retrain")
    (default,) = retrain.run(candidate, retrain.config(epochs=2, optimizer="momentum"), ctx_for(splits))
    default_val = val_metric(default, splits.val, splits.task)
    before = fingerprint(candidate)
    (best,) = _hpo(candidate, ctx_for(splits), sampler="tpe", trials=8, startup_trials=3, pruner="none",
                   include_default=False, **POOR)
    assert fingerprint(candidate) == before
    info = best.info
    assert info["hpo_best_value"] >= default_val + 0.04, (default_val, info["hpo_trials"])
    assert val_metric(best, splits.val, splits.task) == pytest.approx(info["hpo_best_value"])
    trials = info["hpo_trials"]
    assert [t["number"] for t in trials] == list(range(8))
    assert all(TRIAL_KEYS <= set(t) and t["state"] == "complete" for t in trials)
    assert all(1e-4 <= t["params"]["lr"] <= 0.5 and 16 <= t["params"]["batch_size"] <= 256 for t in trials)
    assert max(t["value"] for t in trials) == info["hpo_best_value"]
    assert set(info["hpo_importance"]) == {"lr", "batch_size"}
    assert sum(info["hpo_importance"].values()) == pytest.approx(1.0)
    assert info["learning_curve"] and info["hpo_best_spec"].startswith("retrain:")
    assert best.lineage[-1].technique == "hpo" and best.lineage[-1].label.startswith("best trial")
    json.dumps(dict(info))  # everything the results table stores is JSON-able


def test_default_trial_pruner_and_log_file(digits, ctx_for):
    candidate, splits = digits
    ctx = ctx_for(splits)
    (best,) = _hpo(candidate, ctx, sampler="random", trials=8, pruner="median", **POOR)
    trials = best.info["hpo_trials"]
    assert trials[0]["default"] is True and trials[0]["params"] == {}
    # The untuned default ran first, so the best can never be worse than not searching.
    assert best.info["hpo_best_value"] >= best.info["hpo_default_value"]
    assert {t["state"] for t in trials} <= {"complete", "pruned"}
    assert all(len(t["intermediate"]) >= 1 for t in trials)
    lines = (ctx.workdir / "hpo" / "optim-hpo-retrain.jsonl").read_text().splitlines()
    assert [json.loads(line)["number"] for line in lines] == [t["number"] for t in trials]


def test_cancel_keeps_the_finished_trials(digits, ctx_for):
    candidate, splits = digits
    checks = {"n": 0}

    def cancel_after_some_epochs() -> bool:
        checks["n"] += 1
        return checks["n"] > 10  # a few trials of 2 epochs finish, then the user presses stop

    ctx = ctx_for(splits, cancel_cb=cancel_after_some_epochs)
    (best,) = _hpo(candidate, ctx, trials=20, pruner="none", **POOR)
    info = best.info
    assert info["cancelled"] is True
    states = [t["state"] for t in info["hpo_trials"]]
    assert states[-1] == "cancelled" and states.count("cancelled") == 1
    assert states.count("complete") >= 2 and len(states) < 20
    finished = [t["value"] for t in info["hpo_trials"] if t["state"] == "complete"]
    assert info["hpo_best_value"] == max(finished)
    with pytest.raises(CancelledError) as err:  # nothing finished: the cancel goes up, records attached
        _hpo(candidate, ctx_for(splits, cancel_cb=lambda: True), trials=3, **POOR)
    assert [t["state"] for t in err.value.hpo_trials] == ["cancelled"]


def test_nsga2_returns_the_pareto_set_of_metric_and_size(digits, ctx_for):
    candidate, splits = digits
    outs = _hpo(candidate, ctx_for(splits), sampler="nsga2", objective2="size", trials=6,
                space=("width", "lr"), fixed=("epochs:2",))
    assert outs and all(o.info["hpo_objective2"] == "size" for o in outs)
    points = [(o.info["hpo_best_value"], o.info["hpo_objective2_value"]) for o in outs]
    for a in points:  # no returned candidate is beaten on both objectives by another
        assert not any(b[0] >= a[0] and b[1] <= a[1] and b != a for b in points)
    assert all(len(t["values"]) == 2 for t in outs[0].info["hpo_trials"] if t["state"] == "complete")
    assert outs[0].info["hpo_pruner"] == "none"
    for out, (_, size) in zip(outs, points):
        assert len(out.serialize()[1]) == pytest.approx(size, rel=0.01)


def test_grid_cmaes_and_a_shared_sqlite_storage(digits, ctx_for, tmp_path):
    candidate, splits = digits
    (grid,) = _hpo(candidate, ctx_for(splits), sampler="grid", trials=50, grid_points=2, pruner="none",
                   space=("optimizer", "lr"), fixed=("epochs:1",))
    combos = {(t["params"]["optimizer"], t["params"]["lr"]) for t in grid.info["hpo_trials"]}
    n_opt = len(RetrainConfig.model_fields["optimizer"].json_schema_extra["search"])
    assert len(combos) == len(grid.info["hpo_trials"]) == 2 * n_opt  # the grid, each point once
    (cma,) = _hpo(candidate, ctx_for(splits), sampler="cmaes", trials=4, space=("lr", "weight_decay"),
                  fixed=("epochs:1",))
    assert cma.info["hpo_trials_complete"] >= 1
    for _ in range(2):  # a second process (here: call) adds to the same study, a file in the run folder
        (shared,) = _hpo(candidate, ctx_for(splits), trials=2, storage="sqlite:///study.db", fixed=("epochs:1",),
                         space=("lr",))
    import optuna

    url = f"sqlite:///{tmp_path / 'work' / 'hpo' / 'study.db'}"
    assert len(optuna.load_study(study_name="optim-hpo-retrain", storage=url).trials) == 4
    assert len(shared.info["hpo_trials"]) == 2


def test_a_refused_combination_fails_its_trial_and_the_search_goes_on(digits, ctx_for):
    candidate, splits = digits
    (best,) = _hpo(candidate, ctx_for(splits), sampler="grid", grid_points=2, trials=10, pruner="none",
                   space=("init", "width"), fixed=("epochs:1",))
    trials = best.info["hpo_trials"]
    assert len(trials) == 4  # init {same, finetune} × width {0.25, 2}
    failed = [t for t in trials if t["state"] == "fail"]
    assert {t["params"]["init"] for t in failed} == {"finetune"} and len(failed) == 2
    assert all("needs init=same" in t["error"] for t in failed)
    assert best.info["hpo_best_params"]["init"] == "same"


def test_search_space_comes_from_the_declarations():
    space = {p.name: p for p in search_space(RetrainConfig)}
    assert {"lr", "epochs", "batch_size", "weight_decay", "optimizer", "scheduler", "width"} <= set(space)
    assert "momentum" not in space and "init" not in space  # no search range declared
    assert space["lr"].log and space["lr"].kind == "float"
    assert space["optimizer"].kind == "categorical" and "lbfgs" not in space["optimizer"].choices
    prune = get("prune-magnitude")
    (sparsity,) = search_space(prune.Config, ("sparsity",), prune.name)
    assert (sparsity.kind, sparsity.low, sparsity.high) == ("float", 0.0, 0.99)  # declared bounds


def test_bad_settings_name_value_and_rule():
    hpo = get("hpo")
    with pytest.raises(ConfigError, match=r"tune='hpo': a search cannot tune itself"):
        hpo.config(tune="hpo")
    with pytest.raises(ConfigError, match=r"tune='nope'.*unknown technique"):
        hpo.config(tune="nope")
    with pytest.raises(ConfigError, match=r"space entry 'foo' is not a setting of retrain"):
        hpo.config(space=("foo",))
    with pytest.raises(ConfigError, match=r"epochs=0.*1 ≤ epochs"):
        hpo.config(fixed=("epochs:0",))
    with pytest.raises(ConfigError, match=r"sampler=cmaes optimises one objective"):
        hpo.config(sampler="cmaes", objective2="size")
    with pytest.raises(ConfigError, match=r"trials=0"):
        hpo.config(trials=0)
