"""Quantization family: int8 weights (and activations) to make models smaller and faster."""

from __future__ import annotations

import os
import tempfile
from typing import Literal

from pydantic import Field

from optim.candidate import Candidate, OnnxModel
from optim.config import TechniqueConfig
from optim.context import RunContext
from optim.registry import register_technique
from optim.techniques.base import Technique


class QuantizeDynamicConfig(TechniqueConfig):
    backend: Literal["auto", "torch", "onnxruntime"] = Field(
        "auto",
        description="Runtime that quantizes and runs the model: torch (torch.ao dynamic quantization "
        "of Linear/LSTM/GRU) or onnxruntime (ONNX Runtime dynamic quantization). auto: the "
        "candidate's own runtime.",
    )
    include_conv: bool = Field(
        False,
        description="ONNX Runtime only: also quantize Conv weights (dynamic int8 convs are usually "
        "slower on CPU than fp32; static int8 is the fast path for convs).",
    )


@register_technique
class QuantizeDynamic(Technique):
    """Dynamic (weight-only ahead of time, activations at run time) int8 quantization.

    Jacob et al., "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
    Inference", CVPR 2018; PyTorch dynamic quantization tutorial (BERT: 438 MB → 181 MB).
    """

    name = "quantize-dynamic"
    family = "quantization"
    Config = QuantizeDynamicConfig
    summary = "int8 weights, activations quantized on the fly (Linear/LSTM layers)."
    reference = "Jacob et al., CVPR 2018; PyTorch dynamic quantization tutorial"

    def supports(self, candidate: Candidate) -> str | None:
        if candidate.kind == "torch":
            import torch.nn as nn

            if not any(isinstance(m, (nn.Linear, nn.LSTM, nn.GRU)) for m in candidate.model.modules()):
                return "the model has no Linear, LSTM or GRU layer to quantize dynamically (try quantize-static)"
        return None

    def apply(self, candidate: Candidate, config: QuantizeDynamicConfig, ctx: RunContext) -> Candidate:
        backend = config.backend
        if backend == "auto":
            backend = "torch" if candidate.kind == "torch" else "onnxruntime"
        if backend == "torch":
            return self._torch(candidate, config)
        return self._onnxruntime(candidate, config)

    def _torch(self, candidate: Candidate, config: QuantizeDynamicConfig) -> Candidate:
        import warnings

        import torch
        import torch.nn as nn

        from optim.errors import UnsupportedError

        if candidate.kind != "torch":
            raise UnsupportedError("quantize-dynamic: backend=torch needs a PyTorch model; this one is ONNX "
                                   "(use backend=onnxruntime).")
        module = candidate.clone_module().eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from torch.ao.quantization import quantize_dynamic

            qmodel = quantize_dynamic(module, {nn.Linear, nn.LSTM, nn.GRU}, dtype=torch.qint8)
        return candidate.derive(self.step(config), model=qmodel, info={"weight_bits": 8, "runtime": "torch"})

    def _onnxruntime(self, candidate: Candidate, config: QuantizeDynamicConfig) -> Candidate:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        from optim.onnx_convert import torch_to_onnx_bytes

        if candidate.kind == "torch":
            fp32 = torch_to_onnx_bytes(candidate.torch_module(), candidate.input_shape)
        else:
            fp32 = candidate.model.model_bytes
        ops = ["MatMul", "Gemm", "LSTM", "GRU", "Attention"] + (["Conv"] if config.include_conv else [])
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = os.path.join(tmp, "fp32.onnx"), os.path.join(tmp, "int8.onnx")
            with open(src, "wb") as fh:
                fh.write(fp32)
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8, op_types_to_quantize=ops)
            with open(dst, "rb") as fh:
                q = fh.read()
        return candidate.derive(self.step(config), model=OnnxModel(q), transform=None,
                                info={"weight_bits": 8, "runtime": "onnxruntime"})
