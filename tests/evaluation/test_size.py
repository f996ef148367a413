"""size_report: serialized bytes, gzip bytes, parameters and non-zeros for torch and ONNX."""

from __future__ import annotations

import gzip
import os
import tempfile

import numpy as np
import torch
import torch.nn as nn

from optim.archs import mlp
from optim.candidate import Candidate, OnnxModel
from optim.evaluation.size import size_report
from optim.onnx_convert import torch_to_onnx_bytes

MLP_PARAMS = 64 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10  # 50,610 (LeNet-300-100 on 8×8 digits)


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return mlp(64, (300, 100), 10).eval()


def _cand(model, **kw) -> Candidate:
    return Candidate(model, "classification", (64,), 10, **kw)


def _pruned(fraction: float = 0.5) -> tuple[nn.Module, int]:
    """The MLP with its smallest ``fraction`` of each weight matrix zeroed; returns the zero count."""
    m = _mlp()
    zeros = 0
    with torch.no_grad():
        for layer in m:
            if isinstance(layer, nn.Linear):
                w = layer.weight
                k = int(w.numel() * fraction)
                idx = w.abs().flatten().argsort()[:k]
                w.view(-1)[idx] = 0.0
                zeros += k
    return m, zeros


def _ort_dynamic(onnx_bytes: bytes) -> bytes:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "a.onnx"), os.path.join(tmp, "b.onnx")
        with open(src, "wb") as fh:
            fh.write(onnx_bytes)
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
        with open(dst, "rb") as fh:
            return fh.read()


def test_torch_size_is_the_serialized_file_and_params_are_exact():
    cand = _cand(_mlp())
    rep = size_report(cand)
    name, data = cand.serialize()
    assert rep["model_file"] == name == "model.pt"
    assert rep["size_bytes"] == len(data)
    assert rep["size_bytes_gzip"] == len(gzip.compress(data, compresslevel=9, mtime=0))
    # Input scaling (Standardize mean/std buffers) is not a parameter.
    assert rep["params"] == MLP_PARAMS
    assert rep["nonzero_params"] == MLP_PARAMS
    # fp32 weights dominate the file: within 15% of 4 bytes per parameter.
    assert 4 * MLP_PARAMS <= rep["size_bytes"] <= 1.15 * 4 * MLP_PARAMS


def test_pruned_zeros_are_counted_and_show_in_the_gzip_size():
    dense = size_report(_cand(_mlp()))
    m, zeros = _pruned(0.5)
    rep = size_report(_cand(m))
    assert rep["params"] == MLP_PARAMS
    assert rep["nonzero_params"] == MLP_PARAMS - zeros
    # A dense file does not shrink when weights are zero; its compressed form does.
    assert abs(rep["size_bytes"] - dense["size_bytes"]) < 0.02 * dense["size_bytes"]
    assert rep["size_bytes_gzip"] < 0.75 * dense["size_bytes_gzip"]


def test_pruning_reparametrisation_counts_the_effective_weight():
    import torch.nn.utils.prune as prune

    m = _mlp()
    prune.l1_unstructured(m[1], "weight", amount=0.5)  # weight_orig (param) + weight_mask (buffer)
    rep = size_report(_cand(m))
    assert rep["params"] == MLP_PARAMS
    assert rep["nonzero_params"] == MLP_PARAMS - 64 * 300 // 2


def test_dynamic_quantized_torch_weights_are_unpacked():
    from torch.ao.quantization import quantize_dynamic

    m, zeros = _pruned(0.5)
    q = quantize_dynamic(m, {nn.Linear}, dtype=torch.qint8)
    fp32 = size_report(_cand(m))
    rep = size_report(_cand(q))
    assert rep["params"] == MLP_PARAMS
    # Pruned zeros stay zero in int8; rounding can only add zeros.
    assert rep["nonzero_params"] <= MLP_PARAMS - zeros
    assert rep["nonzero_params"] >= MLP_PARAMS - zeros - 0.02 * MLP_PARAMS
    assert rep["size_bytes"] <= 0.35 * fp32["size_bytes"]


def test_onnx_params_match_torch_including_int8_initializers():
    m, zeros = _pruned(0.5)
    fp32_bytes = torch_to_onnx_bytes(m, (64,))
    onnx_rep = size_report(_cand(OnnxModel(fp32_bytes)))
    assert onnx_rep["size_bytes"] == len(fp32_bytes)
    assert onnx_rep["model_file"] == "model.onnx"
    assert onnx_rep["params"] == MLP_PARAMS
    assert onnx_rep["nonzero_params"] == MLP_PARAMS - zeros

    q_bytes = _ort_dynamic(fp32_bytes)
    q_rep = size_report(_cand(OnnxModel(q_bytes)))
    assert q_rep["params"] == MLP_PARAMS  # int8 weights (MatMulInteger) + fp32 biases (Add)
    assert MLP_PARAMS - zeros - 0.02 * MLP_PARAMS <= q_rep["nonzero_params"] <= MLP_PARAMS - zeros
    assert q_rep["size_bytes"] <= 0.35 * onnx_rep["size_bytes"]


def test_onnx_qdq_per_channel_weights_counted_against_their_zero_points():
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    m, zeros = _pruned(0.5)
    rng = np.random.default_rng(0)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"input": (rng.random((8, 64)) * 16).astype(np.float32)} for _ in range(2)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "a.onnx"), os.path.join(tmp, "b.onnx")
        with open(src, "wb") as fh:
            fh.write(torch_to_onnx_bytes(m, (64,)))
        # uint8 weights: zero points are not 0, so a pruned weight is stored as its zero point.
        quantize_static(src, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QUInt8, activation_type=QuantType.QUInt8)
        with open(dst, "rb") as fh:
            rep = size_report(_cand(OnnxModel(fh.read())))
    assert rep["params"] == MLP_PARAMS
    assert MLP_PARAMS - zeros - 0.03 * MLP_PARAMS <= rep["nonzero_params"] <= MLP_PARAMS - zeros


def test_size_file_named_by_a_technique_is_what_is_measured():
    blob = b"\x00" * 1234
    cand = _cand(_mlp(), info={"size_file": "model.huff"}, extra_files={"model.huff": blob})
    rep = size_report(cand)
    assert rep["model_file"] == "model.huff"
    assert rep["size_bytes"] == 1234
    assert rep["size_bytes_gzip"] < 100
    assert rep["params"] == MLP_PARAMS


def test_batchnorm_running_stats_are_not_params():
    m = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)).eval()
    rep = size_report(Candidate(m, "classification", (4,), 3))
    assert rep["params"] == 4 * 3 + 3 + 3 + 3  # linear weight+bias, BN weight+bias
