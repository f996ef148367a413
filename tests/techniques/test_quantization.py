"""Quantization: static int8 (ONNX Runtime QDQ), QAT, half precision, dynamic — numeric gates."""

from __future__ import annotations

import numpy as np
import pytest

from optim.errors import ConfigError
from optim.hardware.detect import int8_scheme
from optim.registry import get
from optim.testing import fingerprint


def accuracy(candidate, split) -> float:
    return float((candidate.predict(split.X).argmax(1) == split.y).mean())


def size_bytes(candidate) -> int:
    return len(candidate.serialize()[1])


def test_static_int8_digits_cnn_keeps_accuracy_at_under_a_third_of_the_size(load_sample, ctx_for):
    base, splits = load_sample("digits-cnn")
    before = fingerprint(base)
    tech = get("quantize-static")
    out = tech.run(base, tech.config(calibration="minmax"), ctx_for(splits))[0]
    assert fingerprint(base) == before
    assert out.kind == "onnx" and out.transform is None
    acc_base, acc_q = accuracy(base, splits.test), accuracy(out, splits.test)
    assert acc_q >= acc_base - 0.01, (acc_base, acc_q)
    ratio = size_bytes(out) / size_bytes(base)
    assert ratio <= 0.3, ratio
    assert out.info["per_channel"] is True and out.info["preprocess"] == "quant_pre_process"
    # The default scheme is the one exact on this CPU (7-bit weights on x86 without VNNI), said in the row.
    scheme = int8_scheme()
    assert out.info["reduce_range"] is scheme.reduce_range and out.info["int8_scheme"] == scheme.label
    assert out.info["cpu_int8"] == scheme.instructions and scheme.reason in out.info["scheme_reason"]
    ops = {n.op_type for n in out.model.proto().graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # An already-quantized model is refused with the reason, not quantized twice.
    assert "already quantized" in tech.supports(out)


def test_static_int8_with_7_bit_weights_is_fp32_level_on_any_cpu(load_sample, ctx_for):
    # 7-bit weights never saturate an int8 kernel, so this holds on AVX2, VNNI, AMX and Arm alike.
    base, splits = load_sample("digits-cnn")
    tech = get("quantize-static")
    out = tech.run(base, tech.config(reduce_range="on", calibration_samples=128), ctx_for(splits))[0]
    assert out.info["int8_scheme"] == "U8S7" and "set by the user" in out.info["scheme_reason"]
    assert accuracy(out, splits.test) >= accuracy(base, splits.test) - 0.006


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_static_calibration_methods_on_mlp(method, load_sample, ctx_for):
    base, splits = load_sample("digits-mlp")
    tech = get("quantize-static")
    out = tech.run(base, tech.config(calibration=method, calibration_samples=128, per_channel=False), ctx_for(splits))[0]
    assert out.info["calibration"] == method and out.info["calibration_samples"] == 128
    assert accuracy(out, splits.test) >= accuracy(base, splits.test) - 0.015
    assert size_bytes(out) <= 0.35 * size_bytes(base)


def test_static_bad_settings_name_the_setting():
    tech = get("quantize-static")
    with pytest.raises(ConfigError, match="calibration"):
        tech.Config.from_strings("quantize-static", {"calibration": "kl"})
    with pytest.raises(ConfigError, match=r"calibration_samples=0"):
        tech.config(calibration_samples=0)


def test_qat_gives_a_real_int8_model(load_sample, ctx_for):
    import torch

    base, splits = load_sample("digits-cnn")
    before = fingerprint(base)
    tech = get("quantize-qat")
    out = tech.run(base, tech.config(epochs=1), ctx_for(splits))[0]
    assert fingerprint(base) == before
    quantized = [m for m in out.model.modules() if type(m).__module__.startswith("torch.ao.nn.quantized")]
    assert quantized, "no int8 module after convert"
    packed = [m for m in quantized if hasattr(m, "weight") and callable(m.weight)]
    assert all(m.weight().dtype == torch.qint8 for m in packed)
    assert accuracy(out, splits.test) >= accuracy(base, splits.test) - 0.02
    assert size_bytes(out) <= 0.45 * size_bytes(base)
    assert len(out.info["learning_curve"]) == 1


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_half_halves_the_size_and_keeps_predictions(dtype, load_sample, ctx_for):
    base, splits = load_sample("digits-mlp")
    tech = get("half")
    out = tech.run(base, tech.config(dtype=dtype), ctx_for(splits))[0]
    pred = out.predict(splits.test.X)
    assert pred.dtype == np.float32
    agree = float((pred.argmax(1) == base.predict(splits.test.X).argmax(1)).mean())
    assert agree >= 0.99, agree
    assert size_bytes(out) <= 0.6 * size_bytes(base)
    assert all(p.dtype != __import__("torch").float32 for p in out.model.parameters())


def test_half_refuses_onnx(load_sample, ctx_for):
    base, splits = load_sample("digits-mlp")
    tech = get("quantize-static")
    onnx_candidate = tech.run(base, tech.config(calibration_samples=32), ctx_for(splits))[0]
    assert "ONNX" in get("half").supports(onnx_candidate)
    assert "ONNX" in get("quantize-qat").supports(onnx_candidate)


def test_dynamic_torch_backend_still_works(load_sample, ctx_for):
    base, splits = load_sample("digits-mlp")
    tech = get("quantize-dynamic")
    out = tech.run(base, tech.config(backend="torch"), ctx_for(splits))[0]
    assert accuracy(out, splits.test) >= accuracy(base, splits.test) - 0.01
    assert size_bytes(out) <= 0.45 * size_bytes(base)
