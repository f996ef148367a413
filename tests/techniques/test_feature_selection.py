"""Feature selection: fewer features, same accuracy, and the exported model still takes raw columns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from optim.candidate import Candidate, OnnxModel
from optim.errors import ConfigError
from optim.registry import get
from optim.techniques._train_common import val_metric
from optim.techniques.feature_selection import FillInputs, PCAProject, SelectColumns, narrow_input
from optim.testing import fingerprint


@pytest.fixture(scope="module")
def cancer(load_sample):
    return load_sample("breast-cancer-mlp")


def _select(name, candidate, splits, ctx_for, **settings):
    technique = get(name)
    (out,) = technique.run(candidate, technique.config(**settings), ctx_for(splits))
    return out


def test_kbest_10_keeps_accuracy_and_exports_onnx_with_30_inputs(cancer, ctx_for):
    from optim.onnx_convert import torch_to_onnx_bytes

    candidate, splits = cancer
    before = fingerprint(candidate)
    out = _select("select-kbest", candidate, splits, ctx_for, k=10)
    assert fingerprint(candidate) == before
    base_acc = val_metric(candidate, splits.test, splits.task)
    acc = val_metric(out, splits.test, splits.task)
    assert acc >= base_acc - 0.02, (base_acc, acc)
    kept = out.info["kept_features"]
    assert len(kept) == 10 and set(kept) <= set(splits.feature_names)
    assert "worst concave points" in kept  # the single strongest F-score on WDBC
    assert isinstance(out.transform, SelectColumns)
    assert [splits.feature_names[i] for i in out.transform.idx.tolist()] == kept
    first = next(m for m in out.model.modules() if isinstance(m, nn.Linear))
    assert first.in_features == 10
    assert out.input_shape == (30,)
    assert len(out.info["learning_curve"]) == 30
    onnx_bytes = torch_to_onnx_bytes(out.torch_module(), out.input_shape)
    session = OnnxModel(onnx_bytes)
    assert session.session().get_inputs()[0].shape[1] == 30
    X = splits.test.X
    np.testing.assert_allclose(session.run(X), out.predict(X), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name, settings, n_kept", [
    ("select-kbest", {"k": 3, "score_func": "mutual_info"}, 3),
    ("select-rfe", {"k": 5, "step": 5}, 5),
    ("select-lasso", {"alpha": 0.05}, None),
    ("pca", {"components": 5}, 5),
    ("pca", {"variance": 0.9}, None),
])
def test_each_selector_keeps_few_features_and_stays_accurate(name, settings, n_kept, cancer, ctx_for):
    candidate, splits = cancer
    out = _select(name, candidate, splits, ctx_for, epochs=20, **settings)
    kept = out.info["kept_features"]
    if n_kept is not None:
        assert len(kept) == n_kept
    assert 1 <= len(kept) < 30 and out.info["n_features_in"] == 30
    # WDBC is nearly linearly separable on a handful of features (UCI: 97.5% with 3); the
    # majority class alone is 63%, the 30-feature model 95.6%; 114 test rows: one error = 0.9 point.
    assert val_metric(out, splits.test, splits.task) >= 0.88, (name, kept)
    assert out.predict(splits.test.X[:3]).shape == (3, 2)
    if name == "pca":
        assert isinstance(out.transform, PCAProject) and kept[0] == "pc1"
        if "variance" in settings:
            assert out.info["explained_variance_total"] >= 0.9


def test_chained_selection_names_and_scratch_init(cancer, ctx_for):
    candidate, splits = cancer
    kbest = _select("select-kbest", candidate, splits, ctx_for, k=10, epochs=5, init="scratch")
    pca = _select("pca", kbest, splits, ctx_for, components=3, epochs=10)
    assert pca.info["n_features_in"] == 10 and pca.info["kept_features"] == ["pc1", "pc2", "pc3"]
    assert isinstance(pca.transform, nn.Sequential)
    assert pca.predict(splits.test.X).shape == (len(splits.test), 2)  # still the 30 raw columns
    assert pca.recipe == "select-kbest:k=10,epochs=5,init=scratch+pca:components=3,epochs=10"


def test_regression_selection(load_sample, ctx_for):
    candidate, splits = load_sample("diabetes-mlp")
    out = _select("select-kbest", candidate, splits, ctx_for, k=5, epochs=10)
    assert len(out.info["kept_features"]) == 5
    assert np.isfinite(out.predict(splits.test.X)).all()
    assert val_metric(out, splits.test, splits.task) >= 0.2  # R² (the full model: ~0.45)


def test_generic_module_with_batchnorm_first():
    torch.manual_seed(0)
    net = nn.Sequential(nn.BatchNorm1d(6), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    X = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
    narrow = narrow_input(net, 6, X[:, [1, 4]], idx=np.array([1, 4]))
    assert narrow[0].num_features == 2 and narrow[1].in_features == 2
    assert torch.equal(narrow[1].weight, net[1].weight[:, [1, 4]])
    assert net[1].in_features == 6  # the original is untouched


@pytest.mark.parametrize("name, settings", [("select-kbest", {"k": 30}), ("pca", {"components": 30})])
def test_keeping_everything_without_retraining_changes_nothing(name, settings, cancer, ctx_for):
    # The narrowed first layer is the old one composed with the reconstruction of the old inputs:
    # with nothing dropped (30 of 30 columns, or all 30 components) it is the original model.
    candidate, splits = cancer
    out = _select(name, candidate, splits, ctx_for, epochs=0, **settings)
    np.testing.assert_allclose(out.predict(splits.test.X), candidate.predict(splits.test.X), atol=1e-3, rtol=1e-3)


def test_supports_and_bad_settings(cancer, load_sample, ctx_for):
    candidate, splits = cancer
    kbest = get("select-kbest")
    with pytest.raises(ConfigError, match=r"k=31 is larger than the number of input features \(30\); rule: 1 ≤ k ≤ 30"):
        _select("select-kbest", candidate, splits, ctx_for, k=31)
    with pytest.raises(ConfigError, match=r"components=40 is larger"):
        _select("pca", candidate, splits, ctx_for, components=40)
    with pytest.raises(ConfigError, match=r"alpha=50 sets every coefficient to zero"):
        _select("select-lasso", candidate, splits, ctx_for, alpha=50)
    cnn, _ = load_sample("digits-cnn")
    assert kbest.supports(cnn) is None  # through FillInputs (test below)
    image = Candidate(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), "classification", (1, 8, 8), 10)
    assert "tabular" in kbest.supports(image)
    onnx = Candidate(OnnxModel(b""), "classification", (30,), 2)
    assert "ONNX" in kbest.supports(onnx)


def test_a_conv_first_model_reads_the_kept_features_through_fill_inputs(load_sample, ctx_for):
    # digits-cnn's first layer is a Conv2d over the 64 pixels: it cannot be narrowed, so the kept
    # pixels go back to their places and the dropped ones are fixed at their training mean.
    cnn, splits = load_sample("digits-cnn")
    X = splits.test.X[:40]
    everything = _select("select-kbest", cnn, splits, ctx_for, k=64, epochs=0)
    np.testing.assert_allclose(everything.predict(X), cnn.predict(X), atol=1e-4, rtol=1e-4)
    few = _select("select-kbest", cnn, splits, ctx_for, k=12, epochs=0)
    fill, net = few.model
    assert isinstance(fill, FillInputs) and "Conv2d" in few.info["input_not_narrowed"]
    idx = few.info["kept_indices"]
    means = splits.train.X.mean(axis=0)
    rebuilt = fill(torch.from_numpy(X[:, idx])).numpy()
    np.testing.assert_allclose(rebuilt[:, idx], X[:, idx])
    dropped = np.setdiff1d(np.arange(64), idx)
    np.testing.assert_allclose(rebuilt[:, dropped], np.broadcast_to(means[dropped], (40, len(dropped))), rtol=1e-5)
    np.testing.assert_allclose(few.predict(X), cnn.predict(np.where(np.isin(np.arange(64), idx), X, means)),
                               atol=1e-4, rtol=1e-4)


def test_fill_inputs_inverts_a_full_pca_projection():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 5))
    mean = X.mean(axis=0)
    components = np.linalg.qr(rng.normal(size=(5, 5)))[0].T  # 5 orthonormal axes
    z = torch.from_numpy(((X - mean) @ components.T).astype(np.float32))
    back = FillInputs(5, inverse=np.linalg.pinv(components), offset=mean)(z).numpy()
    np.testing.assert_allclose(back, X, atol=1e-5)


def test_an_onnx_mlp_whose_standardization_became_constants_is_narrowed(tmp_path, ctx_for):
    # torch.onnx.export turns ``(x - mean) / std`` into Sub/Div nodes with constant tensors;
    # feature selection folds them into one Standardize and narrows it with the first Linear.
    import io

    from optim.io.models import load_model
    from tests.matrix_models import make_dataset

    class Standardized(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.linspace(-1, 1, 6))
            self.register_buffer("std", torch.linspace(0.5, 2, 6))
            self.fc1, self.fc2 = nn.Linear(6, 16), nn.Linear(16, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(torch.relu(self.fc1((x - self.mean) / self.std)))

    torch.manual_seed(0)
    buf = io.BytesIO()
    torch.onnx.export(Standardized().eval(), (torch.zeros(2, 6),), buf, dynamo=False, opset_version=17,
                      input_names=["input"], dynamic_axes={"input": {0: "batch"}})
    (tmp_path / "std.onnx").write_bytes(buf.getvalue())
    dataset = make_dataset("tabular")
    candidate, splits = load_model(tmp_path / "std.onnx", dataset=dataset), dataset.splits()
    X = splits.test.X
    same = _select("select-kbest", candidate, splits, ctx_for, k=6, epochs=0)
    np.testing.assert_allclose(same.predict(X), candidate.predict(X), atol=1e-4, rtol=1e-4)
    out = _select("select-kbest", candidate, splits, ctx_for, k=3, epochs=0)
    assert "input_not_narrowed" not in out.info
    assert not any(isinstance(m, FillInputs) for m in out.model.modules())
    first = next(m for m in out.model.modules() if isinstance(m, nn.Linear))
    assert first.in_features == 3
