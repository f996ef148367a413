"""Multiply-accumulates (MACs) per sample, for torch and ONNX candidates alike.

Only the operations that dominate cost are counted (matrix multiplies and convolutions); one MAC
is one multiply plus one add, so MACs = FLOPs / 2 for these ops. Element-wise work (activations,
scaling, bias adds, pooling) is not counted, as in the papers the anchors quote.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

from optim.candidate import Candidate

#: ONNX ops counted, by family: how to read (input index of A, input index of the weight).
_ONNX_MATMUL = {"MatMul": 0, "MatMulInteger": 0, "QLinearMatMul": 0, "FusedMatMul": 0,
                "MatMulIntegerToFloat": 0, "DynamicQuantizeMatMul": 0}
_ONNX_GEMM = {"Gemm": 0, "QGemm": 0}
_ONNX_CONV = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3, "FusedConv": 1}


def count_macs(candidate: Candidate) -> int | None:
    """MACs for one sample; ``candidate.info["macs"]`` wins (e.g. early exit's average).

    torch: :class:`torch.utils.flop_counter.FlopCounterMode` over one sample of the whole pipeline
    (transform then model), with formulas added for ``torch.ao`` quantized Linear/Conv ops, which
    it does not know; when the counter cannot run the module, forward hooks on Linear/Conv modules
    (float and quantized) with their actual output shapes. ONNX: shapes from ONNX Runtime's
    symbolic shape inference (or ``onnx.shape_inference``) at batch 1; Conv, ConvInteger,
    QLinearConv, Gemm, QGemm, MatMul, MatMulInteger and QLinearMatMul are counted. ``None`` when
    it cannot be known (a counted node without shapes).
    """
    override = candidate.info.get("macs")
    if override is not None:
        return int(round(float(override)))
    try:
        if candidate.kind == "onnx":
            return onnx_macs(candidate.model.proto())
        return torch_macs(candidate.torch_module(), candidate.input_shape)
    except Exception:  # counting is informative only; never fail a measurement over it
        return None


# --- torch ----------------------------------------------------------------------------------------
def torch_macs(module: Any, input_shape: tuple[int, ...]) -> int | None:
    """MACs of ``module`` on one zero sample of ``input_shape``."""
    import torch

    x = torch.zeros((1, *input_shape), dtype=torch.float32)
    module.eval()
    try:
        from torch.utils.flop_counter import FlopCounterMode

        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            with FlopCounterMode(display=False, custom_mapping=_quantized_flop_formulas()) as counter:
                module(x)
        return int(counter.get_total_flops() // 2)
    except Exception:
        return _hook_macs(module, x)


def _quantized_flop_formulas() -> dict[Any, Callable[..., int]]:
    """FLOP formulas for torch.ao quantized ops (FlopCounterMode counts them as zero otherwise).

    Formulas receive input shapes and the packed-weight object; the output shape comes as
    ``out_shape``. A linear op's MACs are ``out.numel() * in_features``; a conv's are
    ``out.numel() * (in_channels / groups) * prod(kernel)``.
    """
    import torch

    q = torch.ops.quantized

    def linear(x_shape: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return 2 * math.prod(out_shape) * int(x_shape[-1])

    def conv(x_shape: Any, packed: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        weight = packed.unpack()[0]
        return 2 * math.prod(out_shape) * math.prod(weight.shape[1:])

    table: dict[Any, Callable[..., int]] = {}
    for names, formula in (
        (("linear", "linear_relu", "linear_dynamic", "linear_relu_dynamic", "linear_dynamic_fp16",
          "linear_relu_dynamic_fp16", "linear_leaky_relu", "linear_tanh"), linear),
        (("conv1d", "conv2d", "conv3d", "conv1d_relu", "conv2d_relu", "conv3d_relu", "conv2d_add",
          "conv2d_add_relu"), conv),
    ):
        for name in names:
            try:
                table[getattr(q, name)] = formula
            except (AttributeError, RuntimeError):  # op not built into this torch
                continue
    return table


def _hook_macs(module: Any, x: Any) -> int | None:
    """Forward hooks over Linear/Conv modules (float and torch.ao quantized) with real output shapes."""
    import torch

    total = 0
    seen = False

    def on_forward(m: Any, inputs: Any, out: Any) -> None:
        nonlocal total, seen
        if not isinstance(out, torch.Tensor):
            return
        seen = True
        if _is_conv(m):
            w = m.weight() if callable(m.weight) else m.weight
            total += out.numel() * math.prod(w.shape[1:])
        else:
            in_features = int(getattr(m, "in_features", inputs[0].shape[-1]))
            total += out.numel() * in_features

    if isinstance(module, torch.jit.ScriptModule):
        return None  # hooks cannot attach to TorchScript; nothing else to try
    handles = [m.register_forward_hook(on_forward) for m in module.modules() if _is_linear(m) or _is_conv(m)]
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            module(x)
    except Exception:
        return None
    finally:
        for h in handles:
            h.remove()
    if not seen and any(True for _ in module.parameters()):
        return None
    return int(total)


def _is_quantized_module(m: Any) -> bool:
    return ".quantized." in type(m).__module__ + "."


def _is_linear(m: Any) -> bool:
    import torch.nn as nn

    # Quantized fused modules (LinearReLU) subclass the quantized Linear and carry in_features.
    return isinstance(m, nn.Linear) or (_is_quantized_module(m) and hasattr(m, "in_features"))


def _is_conv(m: Any) -> bool:
    import torch.nn as nn

    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return True
    return _is_quantized_module(m) and hasattr(m, "kernel_size") and "Transpose" not in type(m).__name__


# --- ONNX -----------------------------------------------------------------------------------------
def onnx_macs(proto: Any) -> int | None:
    """MACs of an ONNX graph for one sample, from inferred shapes at batch size 1."""
    shapes = _onnx_shapes(proto)
    if shapes is None:
        return None
    total = 0
    for node in proto.graph.node:
        op = node.op_type
        if op not in _ONNX_MATMUL and op not in _ONNX_GEMM and op not in _ONNX_CONV:
            continue
        out = shapes.get(node.output[0])
        if out is None:
            return None
        if op in _ONNX_CONV:
            w = shapes.get(node.input[_ONNX_CONV[op]])
            if w is None:
                return None
            total += math.prod(out) * math.prod(w[1:])
        elif op in _ONNX_GEMM:
            a = shapes.get(node.input[0])
            if a is None:
                return None
            trans_a = any(at.name == "transA" and at.i for at in node.attribute)
            k = a[0] if trans_a else a[-1]
            total += math.prod(out) * k
        else:
            a = shapes.get(node.input[0])
            if a is None:
                return None
            total += math.prod(out) * a[-1]
    return int(total)


def _onnx_shapes(proto: Any) -> dict[str, tuple[int, ...]] | None:
    """Static shapes of every value (inputs, outputs, intermediates, constants) at batch 1."""
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    init_names = {i.name for i in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in init_names:
            continue
        dims = inp.type.tensor_type.shape.dim
        for i, d in enumerate(dims):
            if not d.HasField("dim_value"):
                if i != 0:
                    return None  # a free dimension other than the batch: no single answer
                d.Clear()
                d.dim_value = 1
    # Output batch dims were symbolic too: drop them so inference fills in concrete values.
    for out in model.graph.output:
        for d in out.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.Clear()
    inferred = None
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    except Exception:
        inferred = None
    if inferred is None:
        try:
            inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
        except Exception:
            return None
    shapes: dict[str, tuple[int, ...]] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if vi.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = tuple(int(d.dim_value) for d in dims)
    for init in inferred.graph.initializer:
        shapes[init.name] = tuple(int(d) for d in init.dims)
    from optim.evaluation.size import onnx_constants

    for name, arr in onnx_constants(inferred).items():
        shapes.setdefault(name, tuple(arr.shape))
    return shapes
