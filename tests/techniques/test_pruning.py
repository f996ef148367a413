"""Pruning: unstructured magnitude (iterative, sparse size) and structured (MACs really drop)."""

from __future__ import annotations

import numpy as np
import pytest

from optim.errors import ConfigError
from optim.registry import get
from optim.testing import fingerprint


def accuracy(candidate, split) -> float:
    return float((candidate.predict(split.X).argmax(1) == split.y).mean())


def test_magnitude_iterative_reaches_target_and_reports_sparse_size(load_sample, ctx_for):
    base, splits = load_sample("digits-mlp")
    before = fingerprint(base)
    tech = get("prune-magnitude")
    out = tech.run(base, tech.config(sparsity=0.9, steps=2, finetune_epochs=2, lr=3e-3, scope="lamp"),
                   ctx_for(splits))[0]
    assert fingerprint(base) == before
    assert out.info["achieved_sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert [r["step"] for r in out.info["learning_curve"]] == [1, 1, 2, 2]
    assert [r["epoch"] for r in out.info["learning_curve"]] == [1, 2, 3, 4]
    # Relative-index sparse encoding: 10% of the weights at 32 bits + small indices.
    assert out.info["size_bytes_sparse"] < 0.2 * out.info["size_bytes_dense_params"]
    assert accuracy(out, splits.test) >= accuracy(base, splits.test) - 0.03
    # The zeros are permanent: plain weight tensors, no pruning re-parametrization left.
    assert not any(n.endswith("_orig") for n, _ in out.model.named_parameters())


def test_magnitude_scopes(load_sample, ctx_for):
    base, splits = load_sample("digits-mlp")
    tech = get("prune-magnitude")
    ctx = ctx_for(splits)
    layer = tech.run(base, tech.config(sparsity=0.8, scope="layer"), ctx)[0].info["layer_sparsity"]
    assert all(v == pytest.approx(0.8, abs=1e-3) for v in layer.values()), layer
    lamp = tech.run(base, tech.config(sparsity=0.8, scope="lamp"), ctx)[0].info["layer_sparsity"]
    last = list(lamp)[-1]
    assert lamp[last] < 0.8, lamp  # LAMP keeps the small classifier layer denser


@pytest.mark.parametrize("value", [1.0, -0.1])
def test_magnitude_bad_sparsity_is_a_config_error(value):
    with pytest.raises(ConfigError) as err:
        get("prune-magnitude").config(sparsity=value)
    assert "sparsity" in str(err.value) and str(value) in str(err.value) and "≤" in str(err.value)


def test_structured_half_the_channels_cuts_macs_and_still_exports(load_sample, ctx_for):
    from optim.evaluation.flops import count_macs
    from optim.onnx_convert import check_onnx_matches, torch_to_onnx_bytes

    base, splits = load_sample("digits-cnn")
    before = fingerprint(base)
    tech = get("prune-structured")
    out = tech.run(base, tech.config(sparsity=0.5, finetune_epochs=1), ctx_for(splits))[0]
    assert fingerprint(base) == before
    macs_base, macs_out = count_macs(base), count_macs(out)
    assert macs_out <= 0.55 * macs_base, (macs_base, macs_out)
    params = lambda c: sum(p.numel() for p in c.model.parameters())  # noqa: E731
    assert params(out) < 0.5 * params(base)
    assert out.info["layer_widths"]["16"] == 10  # the classes are kept
    assert accuracy(out, splits.test) >= accuracy(base, splits.test) - 0.06
    module = out.torch_module()
    diff = check_onnx_matches(torch_to_onnx_bytes(module, out.input_shape), module, splits.test.X[:32])
    assert diff < 1e-4


@pytest.mark.parametrize("importance", ["l2", "taylor"])
def test_structured_importance_criteria_pick_different_channels(importance, load_sample, ctx_for):
    base, splits = load_sample("digits-cnn")
    tech = get("prune-structured")
    ctx = ctx_for(splits)
    l1 = tech.run(base, tech.config(importance="l1", finetune_epochs=0), ctx)[0]
    other = tech.run(base, tech.config(importance=importance, finetune_epochs=0), ctx)[0]
    assert l1.model[2].weight.shape == other.model[2].weight.shape
    assert not np.allclose(l1.model[2].weight.detach().numpy(), other.model[2].weight.detach().numpy())


def test_structured_bn_scale_needs_batch_norm(load_sample, ctx_for):
    base, splits = load_sample("digits-mlp")
    with pytest.raises(ConfigError, match="bn_scale"):
        get("prune-structured").run(base, get("prune-structured").config(importance="bn_scale"), ctx_for(splits))


def _gru_candidate():
    import torch

    from optim.candidate import Candidate
    from tests.matrix_models import GRUClassifier, make_dataset

    torch.manual_seed(0)
    return Candidate(GRUClassifier(5, 3, 3).eval(), "classification", (15,), 3), make_dataset("sequence").splits()


def test_magnitude_pruning_finds_gru_weights(ctx_for):
    base, splits = _gru_candidate()
    tech = get("prune-magnitude")
    out = tech.run(base, tech.config(sparsity=0.5, scope="layer", finetune_epochs=1), ctx_for(splits))[0]
    sparsity = out.info["layer_sparsity"]
    assert set(sparsity) == {"gru.weight_ih_l0", "gru.weight_hh_l0", "fc"}
    assert all(v == pytest.approx(0.5, abs=0.01) for v in sparsity.values()), sparsity
    # the zeros stay after fine-tuning
    assert float((out.model.gru.weight_hh_l0 == 0).float().mean()) == pytest.approx(0.5, abs=0.01)
    assert np.isfinite(out.predict(splits.test.X)).all()
    assert get("prune-structured").supports(base).startswith("GRU layers are not prunable by channel")


def test_structured_prunes_a_shufflenet_with_split_blocks(tmp_path):
    """torchvision's ShuffleNetV2 splits each stride-1 block's shuffled input in two, which
    Torch-Pruning 1.6 cannot follow: the channels crossing split, concat and shuffle are kept
    (and named), those inside a branch are pruned; zeroing what each group removes, then removing
    it, leaves the outputs unchanged, and the pruned graph exports to ONNX."""
    import copy
    import warnings

    import torch
    import torch.nn as nn
    import torch_pruning as tp
    import torchvision.models as tvm

    from optim.io.models import load_model
    from optim.techniques._channel_shuffle import shuffle_aware_pruner
    from optim.techniques.base import working_copy
    from optim.techniques.pruning import _structured_targets
    from tests.matrix_models import export_check, make_dataset, prune_zeroing_first, run_cell, save_model

    class OnImages(nn.Module):  # 8×8 pixels as 64 features, tiled to 3×32×32
        def __init__(self) -> None:
            super().__init__()
            # torchvision's ShuffleNetV2 with one stride-2 and one stride-1 (split) block per stage,
            # narrow: the same graph constructs as shufflenet_v2_x0_5 at a fraction of its conversion time
            self.net = tvm.ShuffleNetV2([2, 2, 2], [8, 16, 32, 64, 128], num_classes=4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x.reshape(x.shape[0], 1, 8, 8).repeat(1, 3, 4, 4))

    torch.manual_seed(0)
    dataset = make_dataset("images")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cand = load_model(save_model(OnImages().eval(), "onnx", dataset.X, tmp_path / "shufflenet.onnx"),
                          dataset=dataset)
        tech = get("prune-structured")
        assert tech.supports(working_copy(tech, cand)) is None
        module = copy.deepcopy(working_copy(tech, cand).model).eval()
        x = torch.from_numpy(dataset.X[:8])
        before = sum(p.numel() for p in module.parameters())
        pruner = shuffle_aware_pruner(module, x, importance=tp.importance.GroupMagnitudeImportance(p=1),
                                      pruning_ratio=0.5, ignored_layers=[_structured_targets(module)[-1]])
        # Kept whole: per stage, the convs whose outputs cross the concat (2 in the stride-2 block, 1 in
        # the stride-1 block) and, from stage 3, the stride-2 block's depthwise conv fed by the previous
        # shuffle: 3 × 8 + 4 × 16 + 4 × 32 channels in 11 layers.
        assert len(pruner.unprunable_channels) == 11 and sum(pruner.unprunable_channels.values()) == 216
        groups, worst = prune_zeroing_first(pruner, module, x)
        # pruned: conv1 with the first depthwise conv, each block's branch interior (6), conv5
        assert groups == 8 and worst <= 1e-6, (groups, worst)
        assert sum(p.numel() for p in module.parameters()) < 0.6 * before
        assert module(x).shape == (8, 4)
    # the technique's row: it runs, names the kept channels, and exports as `optim export` writes it
    splits, outputs = dataset.splits(), []
    assert run_cell(cand, splits, tech, tmp_path, outputs) == ("ok", "")
    info = outputs[0].info
    assert info["params_after"] < 0.6 * info["params_before"] and sum(info["unprunable_channels"].values()) == 216
    assert export_check(outputs[0], splits, tmp_path).get("delta_points", 99.0) <= 1.0
