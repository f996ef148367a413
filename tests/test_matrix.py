"""The applicability matrix: models nobody in the project wrote (torchvision ResNet, MobileNet,
ShuffleNet and EfficientNet families, a custom residual CNN, a custom MLP class with BatchNorm1d and
Dropout, a GRU classifier, an MLP regressor), saved as scripted and traced TorchScript, ``.pt2`` and
ONNX, times every registered technique. Every cell is ok or refused with a specific reason; none
crashes, and what ``supports()`` allows runs.

Every model × format is loaded and every technique's ``supports()`` is asked (640 cells, cheap);
each technique then really runs on one representative cell (:data:`RUN_CELL`: every format five
times, every model at least once, the costly techniques on the small models) with a few training
steps, and its first candidate is exported as ``optim export`` writes it and must reproduce the
candidate's test metric within 1 point. ``python benchmarks/matrix.py`` runs all 640 cells and
exports every ok cell's candidates (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import collections
import warnings

import pytest
import torch

from tests.matrix_models import FORMATS, MODELS, export_check, make_dataset, prune_zeroing_first, run_cell, save_model

pytestmark = pytest.mark.slow

#: Technique → the (model, format) cell it runs on here.
RUN_CELL = {
    "pca": ("gru", "onnx"), "select-kbest": ("resnet", "trace"), "select-lasso": ("gru", "pt2"),
    "select-rfe": ("regressor", "script"), "prune-magnitude": ("gru", "script"),
    "prune-structured": ("shufflenet", "pt2"), "half": ("mobilenet", "onnx"),
    "quantize-dynamic": ("residual-cnn", "trace"), "quantize-qat": ("regressor", "pt2"),
    "quantize-static": ("tabular-mlp", "onnx"), "distill": ("efficientnet", "script"), "hpo": ("regressor", "onnx"),
    "federated": ("regressor", "trace"), "onnx-runtime": ("tabular-mlp", "pt2"),
    "hardware-target": ("tabular-mlp", "script"),
    "retrain": ("residual-cnn", "pt2"), "cluster": ("gru", "trace"), "huffman": ("mobilenet", "script"),
    "low-rank": ("resnet", "onnx"), "early-exit": ("shufflenet", "trace"),
}
#: Reasons that would be false for these models (each has Linear/Conv layers).
FALSE_REASONS = ("no Linear or Conv layer", "no Linear, LSTM or GRU layer", "could not check")
#: Techniques that must apply to every model in every format (weight techniques and quantization).
UNIVERSAL = ("prune-magnitude", "cluster", "low-rank", "quantize-dynamic", "quantize-static", "quantize-qat",
             "half", "onnx-runtime", "hardware-target", "retrain", "hpo", "federated", "distill",
             "select-kbest", "select-rfe", "select-lasso", "pca")
#: The only refusals these models may get, each with the words its reason must hold.
EXPECTED_REFUSALS = {
    "huffman": "apply cluster first",  # it codes clustered weights; run after cluster below
    "early-exit": "needs a classifier",  # the regressor
    "prune-structured": "GRU layers are not prunable by channel",
}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """(model name, format) → (candidate, splits), every model saved in every format and loaded."""
    from optim.io.models import load_model

    tmp = tmp_path_factory.mktemp("matrix")
    out = {}
    for mm in MODELS:
        torch.manual_seed(0)
        module = mm.build().eval()
        dataset = make_dataset(mm.dataset)
        splits = dataset.splits()
        for fmt in FORMATS:
            path = save_model(module, fmt, dataset.X, tmp / f"{mm.name}-{fmt}.bin")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[mm.name, fmt] = (load_model(path, dataset=dataset), splits)
    return out


def test_the_run_cells_cover_every_technique_format_and_model():
    from optim.registry import all_techniques

    assert set(RUN_CELL) == {t.name for t in all_techniques()}
    assert collections.Counter(f for _, f in RUN_CELL.values()) == dict.fromkeys(FORMATS, 5)
    assert {m for m, _ in RUN_CELL.values()} == {m.name for m in MODELS}


def test_every_model_in_every_format_converts_to_an_editable_graph(loaded):
    for (name, fmt), (cand, _) in loaded.items():
        conv = cand.info["conversion"]
        assert cand.editable is not None, (name, fmt, conv.get("reason"))
        assert conv["max_abs_diff"] <= 1e-4, (name, fmt, conv)


def test_supports_is_specific_for_every_cell(loaded):
    from optim.applicability import applicability

    ok = total = 0
    refused = collections.Counter()
    for (name, fmt), (cand, splits) in loaded.items():
        for tech, app in applicability(cand, splits).items():
            total += 1
            ok += app.ok
            if tech in UNIVERSAL:
                assert app.ok, (name, fmt, tech, app.reason)
            if not app.ok:
                refused[tech] += 1
                assert not any(bad in app.reason for bad in FALSE_REASONS), (name, fmt, tech, app.reason)
                words = EXPECTED_REFUSALS.get(tech, ())
                assert any(w in app.reason for w in ((words,) if isinstance(words, str) else words)), (
                    name, fmt, tech, app.reason)
    assert total == len(MODELS) * len(FORMATS) * 20
    # 612 of 640: huffman waits for cluster on 20 cells (the MLPs' small layers already share ≤ 256
    # values), early exit needs a classifier (4), the GRU model refuses structured pruning (4);
    # ShuffleNet's channel shuffles are followed (test_structured_pruning_follows_channel_shuffles).
    assert refused == {"huffman": 20, "early-exit": 4, "prune-structured": 4}, refused
    assert ok / total >= 0.95, ok / total


@pytest.mark.parametrize("technique", sorted(RUN_CELL))
def test_what_supports_allows_runs(technique, loaded, tmp_path):
    from optim.applicability import reason_for
    from optim.registry import get

    model, fmt = RUN_CELL[technique]
    cand, splits = loaded[model, fmt]
    if technique != "huffman":  # huffman's run applies cluster first, as its `requires` says
        assert reason_for(technique, cand, splits) is None
    outputs: list = []
    status, detail = run_cell(cand, splits, get(technique), tmp_path, outputs)
    assert status == "ok", (model, fmt, technique, status, detail)
    assert outputs
    # exported as `optim export` writes it (candidate folder, read back, TorchScript / ONNX), the
    # file reproduces the candidate's test metric within 1 point
    check = export_check(outputs[0], splits, tmp_path)
    assert check.get("delta_points", 99.0) <= 1.0, (model, fmt, technique, check)
    if technique == "quantize-dynamic":  # the residual CNN's weights are 96% Conv: flagged, not silent
        assert outputs[0].info["quantized_weight_share"] < 0.05
        assert "Conv weights stay float32" in outputs[0].info["little_effect"]
    if technique in ("select-kbest", "pca") and model != "tabular-mlp":  # a Conv / GRU reads the features
        assert "cannot be narrowed" in outputs[0].info["input_not_narrowed"]


def test_structured_pruning_follows_channel_shuffles(loaded):
    """ShuffleNet converted from ONNX records its channel shuffles as reshapes with constant sizes:
    they become ``ChannelShuffle`` modules (sizes read at run time) and Torch-Pruning removes whole
    blocks across them. Zeroing the channels each pruning group removes, then removing them, leaves
    the outputs as they were (taking the shuffle for an element-wise op removes other channels
    downstream: 3.5e-4 off here)."""
    import copy

    import torch_pruning as tp

    from optim.techniques._channel_shuffle import ChannelShuffle, shuffle_aware_pruner
    from optim.techniques.pruning import _structured_targets

    cand, splits = loaded["shufflenet", "onnx"]
    module = copy.deepcopy(cand.editable).eval()
    x = torch.from_numpy(splits.test.X[:16])
    with torch.no_grad():
        original = module(x)
    pruner = shuffle_aware_pruner(module, x, importance=tp.importance.GroupMagnitudeImportance(p=1), pruning_ratio=0.5,
                                  ignored_layers=[_structured_targets(module)[-1]])
    assert sum(isinstance(m, ChannelShuffle) for m in module.modules()) == 3
    groups, worst = prune_zeroing_first(pruner, module, x)
    assert groups >= 3 and worst <= 1e-6, (groups, worst)
    assert sum(p.numel() for p in module.parameters()) < 0.5 * sum(p.numel() for p in cand.editable.parameters())
    assert module(x).shape == original.shape
