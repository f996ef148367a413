"""distill: a 1/7-size student keeps digits accuracy; the no-teacher control; clear errors."""

from __future__ import annotations

import pytest
import torch

from optim.candidate import Candidate
from optim.errors import ConfigError
from optim.registry import get
from optim.techniques._train_common import count_params, val_metric
from optim.testing import fingerprint


@pytest.fixture(scope="module")
def digits(load_sample):
    return load_sample("digits-mlp")


def _distill(candidate, splits, ctx_for, **settings):
    technique = get("distill")
    return technique.run(candidate, technique.config(**settings), ctx_for(splits))


def test_one_seventh_student_reaches_095_and_the_control_is_beside_it(digits, ctx_for):
    teacher, splits = digits
    before = fingerprint(teacher)
    distilled, control = _distill(teacher, splits, ctx_for, params_ratio=0.14, temperature=4, alpha=0.7, epochs=25)
    assert fingerprint(teacher) == before
    teacher_params = count_params(teacher.model)
    for cand in (distilled, control):
        assert count_params(cand.model) <= teacher_params / 7
        assert cand.info["student_params"] == count_params(cand.model)
        assert len(cand.info["learning_curve"]) == 25
    test_acc = val_metric(distilled, splits.test, splits.task)
    assert test_acc >= 0.95, distilled.info
    assert val_metric(control, splits.test, splits.task) >= 0.9
    # The two rows say which is which, and the control's recipe replays it (alpha=0: hard labels only).
    assert distilled.lineage[-1].label == "distilled" and distilled.info["distilled"] is True
    assert control.lineage[-1].label == "no-teacher" and control.info["distilled"] is False
    assert control.lineage[-1].config["alpha"] == 0.0
    assert control.recipe != distilled.recipe
    # Shown as what it is; the recipe (alpha=0) stays what replays it.
    assert control.title == "distill (no teacher, control)" and "alpha=0," in control.recipe
    assert distilled.title == distilled.recipe
    assert distilled.info["no_teacher_val_metric"] == pytest.approx(control.info["best_val_metric"])
    # Same architecture, different training: the students are not the same weights.
    assert [p.shape for p in distilled.model.parameters()] == [p.shape for p in control.model.parameters()]


def test_small_data_regime_trains_both_students_on_the_same_few_rows(digits, ctx_for):
    teacher, splits = digits
    distilled, control = _distill(teacher, splits, ctx_for, data_fraction=0.03, epochs=40, batch_size=16)
    n = distilled.info["n_train"]
    assert n == control.info["n_train"] == round(0.03 * len(splits.train))
    # Soft targets carry what 38 labelled rows cannot (Hinton et al.'s 3% experiment): the
    # distilled student beats the same student trained on the same rows alone (seeded: ~0.82 vs ~0.77).
    distilled_acc = val_metric(distilled, splits.test, splits.task)
    assert distilled_acc >= 0.7
    assert distilled_acc > val_metric(control, splits.test, splits.task)


def test_named_students_hint_loss_and_cnn_scaling(digits, load_sample, ctx_for):
    teacher, splits = digits
    (named,) = _distill(
        teacher, splits, ctx_for, student="breast-cancer-mlp", epochs=8, no_teacher=False, hint_weight=0.5
    )
    assert named.info["student_arch"] == "breast-cancer-mlp"
    assert named.info["student_widths"] == [64, 32, 16, 10]
    assert not any(m._forward_hooks for m in named.model.modules())  # hint hooks removed
    assert val_metric(named, splits.val, splits.task) >= 0.85
    assert named.serialize()[1]
    cnn, cnn_splits = load_sample("digits-cnn")
    small, _ = _distill(cnn, cnn_splits, ctx_for, params_ratio=0.2, epochs=1)
    assert count_params(small.model) <= 0.2 * count_params(cnn.model)
    assert small.predict(cnn_splits.test.X[:4]).shape == (4, 10)


def test_bad_settings_get_a_clear_error(digits, ctx_for):
    teacher, splits = digits
    with pytest.raises(ConfigError, match=r"temperature=0.*greater than 0"):
        get("distill").config(temperature=0)
    with pytest.raises(ConfigError, match=r"require_smaller=true needs a smaller student") as err:
        _distill(teacher, splits, ctx_for, params_ratio=1.5)
    assert f"{count_params(teacher.model):,}" in str(err.value)
    with pytest.raises(ConfigError, match=r"student='no-such-net': not 'scaled', a bundled architecture"):
        _distill(teacher, splits, ctx_for, student="no-such-net")


def test_a_custom_class_teacher_gets_a_student_narrowed_from_its_own_graph(ctx_for):
    # A custom residual CNN class (not a Sequential): Torch-Pruning narrows a copy of its graph.
    from tests.matrix_models import ResidualCNN, make_dataset

    torch.manual_seed(0)
    splits = make_dataset("images").splits()
    teacher = Candidate(ResidualCNN(4, w=16).eval(), "classification", (64,), 4)
    distilled, control = _distill(teacher, splits, ctx_for, params_ratio=0.3, epochs=1)
    t_params, s_params = count_params(teacher.model), distilled.info["student_params"]
    assert s_params <= 0.3 * t_params and s_params > 0.05 * t_params
    assert "narrowed" in distilled.info["student_arch"]
    assert type(distilled.model).__name__ == "ResidualCNN"  # the teacher's own class, narrower
    conv = distilled.model.stem
    assert conv.out_channels < 16
    assert not torch.equal(conv.weight, teacher.model.stem.weight[:conv.out_channels])  # re-initialised
    assert distilled.predict(splits.test.X).shape == (len(splits.test), 4)
