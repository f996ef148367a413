"""onnx-runtime: torch → ONNX Runtime with the outputs checked, ONNX re-wrapped, providers validated."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optim.candidate import Candidate, OnnxModel
from optim.errors import ConfigError
from optim.experiment import parse_recipe
from optim.registry import get
from optim.techniques.edge import ATOL, RTOL, installed_providers
from tests.hardware import apply_technique


@pytest.fixture(scope="module")
def cnn(load_sample):
    return load_sample("digits-cnn")


@pytest.fixture(scope="module")
def cnn_onnx(cnn, tmp_path_factory):
    cand, splits = cnn
    return apply_technique("onnx-runtime", cand, splits, tmp_path_factory.mktemp("ort"), graph_optimization="extended")[
        0
    ]


def test_torch_candidate_becomes_onnx_runtime_with_matching_outputs(cnn, cnn_onnx):
    cand, splits = cnn
    out = cnn_onnx
    assert out.kind == "onnx" and out.transform is None
    assert out.model.graph_optimization == "extended"
    assert out.model.providers == ("CPUExecutionProvider",)
    X = splits.test.X
    want, got = cand.predict(X), out.predict(X)
    # the stated tolerance: |onnx - torch| <= ATOL + RTOL * |torch| on every output
    assert np.all(np.abs(got - want) <= ATOL + RTOL * np.abs(want))
    assert out.info["max_abs_diff_vs_torch"] < ATOL
    assert (got.argmax(1) == want.argmax(1)).all()
    assert out.serialize()[0] == "model.onnx"


def test_onnx_candidate_is_rewrapped_with_new_settings(cnn, cnn_onnx, ctx_for):
    _, splits = cnn
    tech = get("onnx-runtime")
    outs = []
    for level in ("disable", "basic", "all"):
        (o,) = tech.run(cnn_onnx, tech.config(graph_optimization=level), ctx_for(splits))
        assert o.model.model_bytes == cnn_onnx.model.model_bytes and o.model.graph_optimization == level
        assert o.lineage[-1].technique == "onnx-runtime" and len(o.lineage) == len(cnn_onnx.lineage) + 1
        outs.append(o.predict(splits.test.X[:50]))
    for o in outs[1:]:
        np.testing.assert_allclose(o, outs[0], atol=ATOL, rtol=RTOL)
    assert cnn_onnx.model.graph_optimization == "extended"  # the input was not changed


def test_the_transform_is_baked_into_the_graph(cnn, ctx_for):
    _, splits = cnn
    torch.manual_seed(0)
    transform = torch.nn.Linear(64, 12)  # stands for a PCA / column selection in front of the model
    model = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(12, 10)).eval()
    cand = Candidate(model, "classification", (64,), 10, transform=transform.eval())
    (out,) = get("onnx-runtime").run(cand, get("onnx-runtime").config(), ctx_for(splits))
    assert out.transform is None and out.input_shape == (64,)
    X = splits.test.X[:40]
    np.testing.assert_allclose(out.predict(X), cand.predict(X), atol=ATOL, rtol=RTOL)


def test_provider_must_be_installed_and_is_a_public_setting():
    have = installed_providers()
    assert "cpu" in have
    (recipe,) = parse_recipe("onnx-runtime:graph_optimization=all,provider=cpu")
    assert recipe.steps[0].config.provider == "cpu"
    assert len(parse_recipe("onnx-runtime:graph_optimization=disable|basic|extended|all")) == 4
    missing = next((p for p in ("cuda", "tensorrt", "coreml", "openvino") if p not in have), None)
    if missing is None:
        pytest.skip("every provider we would test as missing is installed here")
    with pytest.raises(ConfigError) as err:
        get("onnx-runtime").config(provider=missing)
    assert f"provider={missing!r}" in str(err.value) and "installed: " in str(err.value)
    with pytest.raises(ConfigError) as err:
        get("onnx-runtime").config(graph_optimization="max")
    assert "graph_optimization" in str(err.value) and "extended" in str(err.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_cuda_provider_when_onnxruntime_gpu_is_installed(cnn, ctx_for):  # pragma: no cover - GPU only
    if "cuda" not in installed_providers():
        pytest.skip("onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)")
    cand, splits = cnn
    (out,) = get("onnx-runtime").run(cand, get("onnx-runtime").config(provider="cuda"), ctx_for(splits))
    assert out.model.providers[0] == "CUDAExecutionProvider"
    np.testing.assert_allclose(out.predict(splits.test.X[:32]), cand.predict(splits.test.X[:32]), atol=1e-3, rtol=1e-2)


def test_onnx_model_keeps_settings_through_pickling(cnn_onnx):
    import pickle

    clone = pickle.loads(pickle.dumps(cnn_onnx))
    assert isinstance(clone.model, OnnxModel) and clone.model.graph_optimization == "extended"
