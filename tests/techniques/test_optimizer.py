"""retrain: every optimizer trains and records its curve; schedules, clipping, targets, width."""

from __future__ import annotations

import pytest
import torch

from optim.errors import ConfigError
from optim.registry import get
from optim.techniques._train_common import count_params, val_metric
from optim.techniques.optimizer import OPTIMIZERS
from optim.testing import fingerprint

CURVE_KEYS = {"epoch", "train_loss", "val_metric", "seconds", "lr"}


@pytest.fixture(scope="module")
def digits(load_sample):
    return load_sample("digits-mlp")


def _retrain(candidate, splits, ctx_for, **settings):
    technique = get("retrain")
    (out,) = technique.run(candidate, technique.config(**settings), ctx_for(splits))
    return out


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_each_optimizer_trains_from_scratch_and_records_its_curve(optimizer, digits, ctx_for):
    candidate, splits = digits
    before = fingerprint(candidate)
    out = _retrain(candidate, splits, ctx_for, optimizer=optimizer, epochs=3)
    assert fingerprint(candidate) == before
    curve = out.info["learning_curve"]
    assert [r["epoch"] for r in curve] == [1, 2, 3]
    assert all(CURVE_KEYS <= set(r) for r in curve)
    # Fresh weights give ~10% on ten digits; three epochs with any of these optimizers at its
    # default learning rate get far above that.
    assert out.info["best_val_metric"] >= 0.8, (optimizer, curve)
    assert val_metric(out, splits.val, splits.task) == pytest.approx(out.info["best_val_metric"])
    assert out.info["optimizer"] == optimizer
    assert out.info["target_source"] == "baseline validation metric"
    assert out.info["target_metric"] == pytest.approx(val_metric(candidate, splits.val, splits.task))
    assert out.lineage[-1].label == optimizer


def test_same_initialization_is_shared_and_reproducible(digits, ctx_for):
    candidate, splits = digits
    a = _retrain(candidate, splits, ctx_for, optimizer="sgd", epochs=1, lr=1e-12)
    b = _retrain(candidate, splits, ctx_for, optimizer="adam", epochs=1, lr=1e-12)
    # With a vanishing step both stay at the seeded initial weights: the same start point.
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.allclose(pa, pb, atol=1e-8)
    assert a.info["best_val_metric"] < 0.5  # really re-initialised, not the trained baseline
    c = _retrain(candidate, splits, ctx_for, optimizer="adam", epochs=2)
    d = _retrain(candidate, splits, ctx_for, optimizer="adam", epochs=2)
    assert [r["val_metric"] for r in c.info["learning_curve"]] == [r["val_metric"] for r in d.info["learning_curve"]]


def test_finetune_reaches_the_baseline_target_in_the_first_epoch(digits, ctx_for):
    candidate, splits = digits
    out = _retrain(candidate, splits, ctx_for, init="finetune", epochs=2, lr=1e-5, stop_at_target=True)
    assert out.info["epochs_to_target"] == 1
    assert out.info["epochs_run"] == 1  # stop_at_target
    assert out.info["seconds_to_target"] > 0
    # CodeCarbon is a dependency: the training energy (an estimate) is always there.
    assert out.info["train_energy_j"] > 0
    assert 0 < out.info["energy_to_target_j"] <= out.info["train_energy_j"] + 1e-9
    assert out.info["train_energy_method"]


def test_explicit_target_and_epochs_to_target(digits, ctx_for):
    candidate, splits = digits
    out = _retrain(candidate, splits, ctx_for, epochs=4, target_metric=1.01)
    assert out.info["epochs_to_target"] is None and out.info["seconds_to_target"] is None
    assert out.info["epochs_run"] == 4 and out.info["target_source"] == "setting"
    out = _retrain(candidate, splits, ctx_for, epochs=4, target_metric=0.5)
    first = next(r["epoch"] for r in out.info["learning_curve"] if r["val_metric"] >= 0.5)
    assert out.info["epochs_to_target"] == first


def test_schedules_warmup_and_clipping_shape_the_learning_rate(digits, ctx_for):
    candidate, splits = digits
    cos = _retrain(candidate, splits, ctx_for, epochs=4, scheduler="cosine", lr=0.01, clip_norm=1.0)
    lrs = [r["lr"] for r in cos.info["learning_curve"]]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < 1e-3
    warm = _retrain(candidate, splits, ctx_for, epochs=4, warmup=2, lr=0.01, clip_value=0.5)
    lrs = [r["lr"] for r in warm.info["learning_curve"]]
    assert lrs[0] < lrs[1] == pytest.approx(0.01)
    for optimizer in ("momentum", "adagrad"):  # with and without a momentum to cycle
        one = _retrain(candidate, splits, ctx_for, epochs=3, scheduler="onecycle", optimizer=optimizer)
        assert one.info["best_val_metric"] >= 0.8


def test_width_scales_the_network(digits, ctx_for):
    candidate, splits = digits
    out = _retrain(candidate, splits, ctx_for, epochs=3, width=0.5)
    assert out.info["trained_params"] == count_params(out.model)
    assert count_params(out.model) < 0.6 * count_params(candidate.model)
    assert out.info["best_val_metric"] >= 0.8


def test_bad_settings_name_value_and_rule(digits, ctx_for):
    candidate, splits = digits
    with pytest.raises(ConfigError, match=r"width=0.5 needs init=same"):
        _retrain(candidate, splits, ctx_for, width=0.5, init="finetune")
    with pytest.raises(ConfigError, match=r"warmup=1 with scheduler=onecycle"):
        _retrain(candidate, splits, ctx_for, scheduler="onecycle", warmup=1)
    with pytest.raises(ConfigError, match=r"optimizer="):
        get("retrain").config(optimizer="sgdx")
    with pytest.raises(ConfigError, match=r"lr=0"):
        get("retrain").config(lr=0)


def test_regression_from_fresh_weights_learns_targets_in_their_units(load_sample, ctx_for):
    candidate, splits = load_sample("diabetes-mlp")  # targets 25–346: raw MSE from a fresh init crawls
    out = _retrain(candidate, splits, ctx_for, epochs=20)
    assert val_metric(out, splits.test, splits.task) >= 0.25  # R²; the bundled model: ~0.33
    pred = out.predict(splits.test.X)
    assert 100 < float(pred.mean()) < 200  # z-scored during training, folded back into the last layer
