"""count_macs: exact counts by hand for an MLP and a CNN; torch, quantized and ONNX agree."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch
import torch.nn as nn

from optim.archs import digits_cnn, mlp
from optim.candidate import Candidate, OnnxModel
from optim.evaluation.flops import _hook_macs, count_macs
from optim.onnx_convert import torch_to_onnx_bytes

# LeNet-300-100 shape on 64 inputs: one MAC per weight of each Linear.
MLP_MACS = 64 * 300 + 300 * 100 + 100 * 10  # 50,200
# digits_cnn(width=32) on 1×8×8, 3×3 convs with padding 1, two 2×2 max-pools:
CNN_MACS = (
    32 * 8 * 8 * (1 * 9)        # conv1: 32 out channels at 8×8, 1×3×3 each
    + 32 * 8 * 8 * (32 * 9)     # conv2: 32 at 8×8, 32×3×3
    + 64 * 4 * 4 * (32 * 9)     # conv3 after the first pool: 64 at 4×4, 32×3×3
    + (64 * 4) * 64             # fc1 after the second pool: 256 -> 64
    + 64 * 10                   # fc2
)  # 920,192


def _cand(model) -> Candidate:
    return Candidate(model, "classification", (64,), 10)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    m, c = mlp(64, (300, 100), 10).eval(), digits_cnn(10).eval()
    return {"mlp": (m, torch_to_onnx_bytes(m, (64,)), MLP_MACS),
            "cnn": (c, torch_to_onnx_bytes(c, (64,)), CNN_MACS)}


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_torch_and_onnx_counts_equal_the_hand_count(models, name):
    module, onnx_bytes, expected = models[name]
    assert count_macs(_cand(module)) == expected
    assert count_macs(_cand(OnnxModel(onnx_bytes))) == expected
    # The hook fallback (used when FlopCounterMode cannot run a module) agrees too.
    assert _hook_macs(module, torch.zeros(1, 64)) == expected


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_quantized_models_keep_their_macs(models, name):
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from torch.ao.quantization import quantize_dynamic as torch_quantize_dynamic

    module, onnx_bytes, expected = models[name]
    q = torch_quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8)
    assert count_macs(_cand(q)) == expected  # quantized::linear_dynamic has its own formula
    assert _hook_macs(q, torch.zeros(1, 64)) == expected
    # TorchScript of a quantized model (what a user loads from .pt) is counted as well.
    assert count_macs(_cand(torch.jit.trace(q, torch.zeros(1, 64)))) == expected

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "a.onnx"), os.path.join(tmp, "b.onnx")
        with open(src, "wb") as fh:
            fh.write(onnx_bytes)
        # MatMulInteger and ConvInteger nodes
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm", "Conv"])
        with open(dst, "rb") as fh:
            assert count_macs(_cand(OnnxModel(fh.read()))) == expected


def test_static_quantized_fx_cnn_counts_quantized_convs(models):
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    x = torch.rand(8, 64) * 16
    prepared = prepare_fx(digits_cnn(10).eval(), get_default_qconfig_mapping("x86"), (x,))
    prepared(x)
    q = convert_fx(prepared)  # quantized ConvReLU2d / LinearReLU modules, quantized::conv2d_relu ops
    assert count_macs(_cand(q)) == CNN_MACS
    assert _hook_macs(q, torch.zeros(1, 64)) == CNN_MACS


def test_info_macs_override_wins(models):
    module = models["mlp"][0]
    cand = _cand(module).derive(_step(), info={"macs": 1234.4})
    assert count_macs(cand) == 1234


def test_unknown_shapes_give_none():
    from onnx import TensorProto, helper, numpy_helper

    # A free sequence length besides the batch: MACs per sample have no single value.
    w = numpy_helper.from_array(torch.ones(8, 4).numpy(), name="w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    assert count_macs(Candidate(OnnxModel(model.SerializeToString()), "classification", (5, 8), 4)) is None
    # With the sequence length fixed it is known: 5 × 8 × 4.
    graph.input[0].type.tensor_type.shape.dim[1].Clear()
    graph.input[0].type.tensor_type.shape.dim[1].dim_value = 5
    fixed = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    assert count_macs(Candidate(OnnxModel(fixed.SerializeToString()), "classification", (5, 8), 4)) == 160


def _step():
    from optim.candidate import Step

    return Step("test")
