"""Every compiled format becomes an editable torch.fx graph of real nn layers, kept only when it
reproduces the original; a conversion that cannot be made names the operator that stopped it."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from optim.candidate import OnnxModel
from optim.io.convert import ATOL, RTOL, editable_graph, layer_counts
from optim.io.models import _load_export, _load_torchscript
from tests.matrix_models import GRUClassifier, ResidualCNN, dataset_arrays, save_model

LOADERS = {
    "script": ("torchscript", _load_torchscript),
    "trace": ("torchscript", _load_torchscript),
    "pt2": ("export", lambda p: _load_export(p, p.read_bytes())),
    "onnx": ("onnx", lambda p: OnnxModel(p.read_bytes())),
}


@pytest.mark.parametrize("fmt", ["script", "trace", "pt2", "onnx"])
@pytest.mark.parametrize("build, kind, layers", [
    (lambda: GRUClassifier(5, 3, 3), "sequence", {"GRU": 1, "Linear": 1}),
    (lambda: ResidualCNN(4), "images", {"Conv2d": 3, "Linear": 1}),
])
def test_every_format_converts_to_real_layers_that_reproduce_it(tmp_path, fmt, build, kind, layers):
    torch.manual_seed(0)
    module = build().eval()
    X, _, _ = dataset_arrays(kind)
    kind_name, load = LOADERS[fmt]
    original = load(save_model(module, fmt, X, tmp_path / f"m.{fmt}"))
    graph, report = editable_graph(original, kind_name, X)
    assert graph is not None, report
    assert isinstance(graph, torch.fx.GraphModule)
    counts = layer_counts(graph)
    assert {k: counts.get(k, 0) for k in layers} == layers
    with torch.inference_mode():
        want = module(torch.from_numpy(X)).numpy()
        got = graph(torch.from_numpy(X)).numpy()
    assert np.allclose(got, want, atol=ATOL, rtol=RTOL)
    assert report["max_abs_diff"] <= ATOL


def test_torch_export_keeps_batch_norm_and_trains(tmp_path):
    torch.manual_seed(0)
    module = ResidualCNN(4).eval()
    X, _, _ = dataset_arrays("images")
    path = save_model(module, "pt2", X, tmp_path / "m.pt2")
    graph, _ = editable_graph(_load_export(path, path.read_bytes()), "export", X)
    assert layer_counts(graph)["BatchNorm"] == 2
    graph.train()  # a real BatchNorm updates its statistics in training (the exported call had training=False)
    bn = next(m for m in graph.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before = bn.running_mean.clone()
    graph(torch.from_numpy(X))
    assert not torch.equal(before, bn.running_mean)


def test_a_torch_export_graph_keeps_its_batch_dynamic_when_traced_to_onnx(tmp_path):
    # ResidualCNN reshapes to x.shape[0] × 1 × 8 × 8: the TorchScript ONNX exporter (the fast route
    # int8 techniques take) must record that size, not the example's batch of 2.
    from optim.onnx_convert import torch_to_onnx_bytes

    torch.manual_seed(0)
    module = ResidualCNN(4).eval()
    X, _, _ = dataset_arrays("images")
    path = save_model(module, "pt2", X, tmp_path / "m.pt2")
    graph, _ = editable_graph(_load_export(path, path.read_bytes()), "export", X)
    session = OnnxModel(torch_to_onnx_bytes(graph, (64,), exporter="torchscript"))
    with torch.inference_mode():
        want = module(torch.from_numpy(X[:7])).numpy()
    np.testing.assert_allclose(session.run(X[:7]), want, atol=1e-4, rtol=1e-4)


def test_converting_torchscript_to_onnx_leaves_the_module_as_it_was(tmp_path):
    from optim.onnx_convert import torch_to_onnx_bytes

    X, _, _ = dataset_arrays("images")
    script = torch.jit.script(ResidualCNN(4).eval())
    code = script.code
    sizes = {len(torch_to_onnx_bytes(script, (64,))) for _ in range(2)}
    assert script.code == code
    assert len(sizes) == 1  # a second conversion is not larger (the graph was not inlined in place)


def _onnx_with(node: onnx.NodeProto, inits: list, n_in: int, n_out: int, extra_inputs=()) -> OnnxModel:
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", n_in]),
                                            *extra_inputs],
                              [helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, None)], inits)
    return OnnxModel(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())


def test_an_operator_without_converter_is_named():
    model = _onnx_with(helper.make_node("Hardmax", ["input"], ["output"]), [], 4, 4)
    graph, report = editable_graph(model, "onnx", np.ones((3, 4), np.float32))
    assert graph is None
    assert "Hardmax" in report["reason"]


def test_a_gru_pytorch_cannot_express_is_refused_with_its_reason():
    rng = np.random.default_rng(0)
    W = helper.make_tensor("W", TensorProto.FLOAT, [1, 6, 4], rng.normal(size=24).tolist())
    R = helper.make_tensor("R", TensorProto.FLOAT, [1, 6, 2], rng.normal(size=12).tolist())
    node = helper.make_node("GRU", ["x3", "W", "R"], ["output"], hidden_size=2, linear_before_reset=0)
    graph = helper.make_graph(
        [helper.make_node("Unsqueeze", ["input", "axes"], ["x3"]), node], "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)],
        [W, R, helper.make_tensor("axes", TensorProto.INT64, [1], [0])])
    model = OnnxModel(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    graph_module, report = editable_graph(model, "onnx", np.ones((3, 4), np.float32))
    assert graph_module is None
    assert "linear_before_reset=0" in report["reason"]
