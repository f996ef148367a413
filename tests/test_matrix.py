"""The applicability matrix: models nobody in the project wrote (torchvision ResNet, MobileNet,
ShuffleNet and EfficientNet families, a custom residual CNN, a custom MLP class with BatchNorm1d and
Dropout, a GRU classifier, an MLP regressor), saved as scripted and traced TorchScript, ``.pt2`` and
ONNX, times every registered technique. Every cell is ok or refused with a specific reason; none
crashes, and what ``supports()`` allows runs.

Every model × format is loaded and every technique's ``supports()`` is asked; the techniques run on
one format per model (the formats rotate, so each is run on two models) to stay within the suite's
time budget. ``python benchmarks/matrix.py`` runs every cell (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import warnings

import pytest
import torch

from tests.matrix_models import FORMATS, MODELS, make_dataset, run_cell, save_model

pytestmark = pytest.mark.slow

#: The format each model's techniques run on (each format twice).
RUN_FORMAT = {m.name: FORMATS[i % len(FORMATS)] for i, m in enumerate(MODELS)}
#: Reasons that would be false for these models (each has Linear/Conv layers).
FALSE_REASONS = ("no Linear or Conv layer", "no Linear, LSTM or GRU layer", "could not check")
#: Techniques that must apply to every model in every format (weight techniques and quantization).
UNIVERSAL = ("prune-magnitude", "cluster", "huffman", "low-rank", "quantize-dynamic", "quantize-static",
             "half", "onnx-runtime", "hardware-target", "retrain", "hpo", "federated", "distill")


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
        for fmt in FORMATS:
            path = save_model(module, fmt, dataset.X, tmp / f"{mm.name}-{fmt}.bin")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[mm.name, fmt] = (load_model(path, dataset=dataset), dataset.splits())
    return out


def test_every_model_in_every_format_converts_to_an_editable_graph(loaded):
    for (name, fmt), (cand, _) in loaded.items():
        conv = cand.info["conversion"]
        assert cand.editable is not None, (name, fmt, conv.get("reason"))
        assert conv["max_abs_diff"] <= 1e-4, (name, fmt, conv)


def test_supports_is_specific_for_every_cell(loaded):
    from optim.applicability import applicability

    ok = total = 0
    for (name, fmt), (cand, splits) in loaded.items():
        for tech, app in applicability(cand, splits).items():
            total += 1
            ok += app.ok
            if tech in UNIVERSAL and tech != "huffman":  # huffman asks for cluster first (the run test does so)
                assert app.ok, (name, fmt, tech, app.reason)
            if not app.ok:
                assert not any(bad in app.reason for bad in FALSE_REASONS), (name, fmt, tech, app.reason)
    assert total == len(MODELS) * len(FORMATS) * 20
    assert ok / total >= 0.79, (
        ok / total
    )  # 508 of 640 on 2026-11-30 (huffman waits for cluster; images refuse feature selection)


@pytest.mark.parametrize("model", [m.name for m in MODELS])
def test_what_supports_allows_runs(model, loaded, tmp_path):
    from optim.registry import all_techniques

    cand, splits = loaded[model, RUN_FORMAT[model]]
    cells = {t.name: run_cell(cand, splits, t, tmp_path) for t in all_techniques()}
    bad = {k: v for k, v in cells.items() if v[0] in ("failed", "crashed")}
    assert not bad, bad
    for tech in UNIVERSAL:
        assert cells[tech][0] == "ok", (tech, cells[tech])
