"""Model size: bytes of the file as shipped, its gzip size, parameters and non-zero parameters.

``size_bytes`` is the length of ``candidate.serialize()`` (TorchScript or ONNX bytes, or the file a
technique names in ``info["size_file"]``), never a parameter count times four: int8 weights,
pruned zeros and format overhead all show as they really are on disk. ``size_bytes_gzip`` is the
same bytes through ``gzip -9``: sparsity and weight sharing only shrink a dense file once it is
compressed, which is how Deep Compression (Han et al., ICLR 2016) and TF-MOT ("zipped" size)
report them.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any

import numpy as np

from optim.candidate import Candidate


def size_report(candidate: Candidate) -> dict[str, Any]:
    """``size_bytes``, ``size_bytes_gzip``, ``params``, ``nonzero_params`` and ``model_file``.

    Parameters are the weights and biases the model computes with: torch parameters (a pruning
    re-parametrisation's effective ``weight`` rather than ``weight_orig``), buffers named
    ``weight``/``bias``, and the packed weights of ``torch.ao`` quantized modules (unpacked);
    for ONNX, the initializers that feed a weight or bias input of a compute node (also through
    ``DequantizeLinear``/``Reshape``/``Transpose``, and bias ``Add`` after a quantized MatMul).
    Normalisation statistics (batch-norm running stats, input scaling) are not parameters.
    """
    name, data = candidate.serialize()
    params, nonzero = count_params(candidate)
    return {
        "model_file": name,
        "size_bytes": len(data),
        # mtime=0 keeps the figure (and the bytes) reproducible run to run.
        "size_bytes_gzip": len(gzip.compress(data, compresslevel=9, mtime=0)),
        "params": params,
        "nonzero_params": nonzero,
    }


def count_params(candidate: Candidate) -> tuple[int, int]:
    """``(params, nonzero_params)`` of the candidate's model (and its torch transform)."""
    if candidate.kind == "onnx":
        tensors = list(_onnx_weights(candidate.model.proto()))
    else:
        tensors = list(_torch_weights(candidate.torch_module()))
    total = sum(int(w.size) for w, _ in tensors)
    nonzero = sum(int(np.count_nonzero(w != zp)) for w, zp in tensors)
    return total, nonzero


# --- torch ----------------------------------------------------------------------------------------
def _torch_weights(module: Any) -> Iterator[tuple[np.ndarray, Any]]:
    """(values, zero) for every weight tensor of ``module``, each tensor once."""
    import torch

    seen: set[int] = set()
    alive: list[Any] = []  # keep tensors referenced so id() of an unpacked copy is never reused

    def emit(t: Any) -> Iterator[tuple[np.ndarray, Any]]:
        if not isinstance(t, torch.Tensor) or id(t) in seen:
            return
        seen.add(id(t))
        alive.append(t)
        if t.is_quantized:
            # A pruned weight stays exactly zero after quantization (its zero point maps to 0.0).
            t = t.dequantize()
        yield t.detach().float().cpu().numpy(), 0

    for m in module.modules():
        packed = _quantized_weight_bias(m)
        if packed is not None:
            for t in packed:
                yield from emit(t)
            continue
        params = dict(m.named_parameters(recurse=False))
        for pname, p in params.items():
            if pname.endswith("_orig"):
                # torch.nn.utils.prune: the weight the module computes with is orig * mask.
                yield from emit(getattr(m, pname[: -len("_orig")], p))
            else:
                yield from emit(p)
        for bname, b in m.named_buffers(recurse=False):
            if bname in ("weight", "bias") and bname not in params and b is not None and b.is_floating_point():
                yield from emit(b)


def _quantized_weight_bias(m: Any) -> tuple[Any, ...] | None:
    """Unpacked (weight, bias) of a torch.ao quantized Linear/Conv (static or dynamic), else None."""
    import torch

    if isinstance(m, torch.jit.ScriptModule):
        # The same modules read back from TorchScript (a candidate reopened from its folder, or
        # sent by a Ray worker): a Linear's packed params are a submodule with ``_weight_bias``, a
        # Conv's a script object with ``unpack``.
        packed = getattr(m, "_packed_params", None)
        try:
            if getattr(m, "original_name", "") == "LinearPackedParams":
                return tuple(t for t in m._weight_bias() if t is not None)
            if isinstance(packed, torch.ScriptObject) and hasattr(packed, "unpack"):
                return tuple(t for t in packed.unpack() if t is not None)
        except Exception:  # noqa: BLE001 — not packed weights after all: counted as plain modules
            return None
        return None
    weight = getattr(m, "weight", None)
    if not callable(weight) or not type(m).__module__.startswith(("torch.ao.nn.quantized", "torch.nn.quantized",
                                                                  "torch.ao.nn.intrinsic.quantized")):
        return None
    try:
        w = weight()
        b = m.bias() if callable(getattr(m, "bias", None)) else None
    except Exception:  # a quantized module without packed weights (e.g. Quantize stubs)
        return None
    return tuple(t for t in (w, b) if t is not None)


# --- ONNX -----------------------------------------------------------------------------------------
#: op type -> {input index of a weight/bias: input index of its zero point, or None}.
WEIGHT_SLOTS: dict[str, dict[int, int | None]] = {
    "Conv": {1: None, 2: None},
    "ConvTranspose": {1: None, 2: None},
    "Gemm": {0: None, 1: None, 2: None},
    "MatMul": {0: None, 1: None},
    "ConvInteger": {1: 3},
    "MatMulInteger": {0: 2, 1: 3},
    "QLinearConv": {3: 5, 8: None},
    "QLinearMatMul": {0: 2, 3: 5},
    "QGemm": {3: 5, 6: None},  # com.microsoft
    "MatMulIntegerToFloat": {1: 5, 6: None},  # com.microsoft: A, B, a_scale, b_scale, a_zp, b_zp, bias
    "DynamicQuantizeMatMul": {1: 3, 4: None},  # com.microsoft: A, B, b_scale, b_zp, bias
    "FusedConv": {1: None, 2: None},
    "FusedMatMul": {0: None, 1: None},
    "BatchNormalization": {1: None, 2: None},  # scale and bias; running stats are not parameters
    "InstanceNormalization": {1: None, 2: None},
    "LayerNormalization": {1: None, 2: None},
    "Gather": {0: None},  # embedding tables
    "LSTM": {1: None, 2: None, 3: None},
    "GRU": {1: None, 2: None, 3: None},
    "RNN": {1: None, 2: None, 3: None},
}
#: Ops a weight may pass through on its way to a slot (input 0 carries the tensor).
_PASS_THROUGH = {"DequantizeLinear", "Reshape", "Transpose", "Cast", "Identity", "Unsqueeze", "Squeeze", "Flatten"}
#: Ops between a compute node and the Add of its bias (ORT dynamic quantization rescales first).
_RESCALE = {"Mul", "Cast", "Reshape", "Identity"}


def onnx_constants(proto: Any) -> dict[str, np.ndarray]:
    """Initializers and Constant-node tensors of the main graph, by value name."""
    from onnx import numpy_helper

    consts = {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    consts[node.output[0]] = numpy_helper.to_array(attr.t)
    return consts


def _onnx_weights(proto: Any) -> Iterator[tuple[np.ndarray, Any]]:
    consts = onnx_constants(proto)
    producer = {out: node for node in proto.graph.node for out in node.output}

    def source(value: str, zp: tuple[str, int] | None) -> tuple[str | None, tuple[str, int] | None]:
        """The constant behind ``value`` (following pass-through ops) and its zero point."""
        for _ in range(8):
            if value in consts:
                return value, zp
            node = producer.get(value)
            if node is None or node.op_type not in _PASS_THROUGH or not node.input:
                return None, None
            if node.op_type == "DequantizeLinear" and len(node.input) > 2 and node.input[2]:
                zp = (node.input[2], _attr(node, "axis", 1))
            value = node.input[0]
        return None, None

    found: dict[str, tuple[str, int] | None] = {}
    compute_outputs: set[str] = set()
    for node in proto.graph.node:
        slots = WEIGHT_SLOTS.get(node.op_type)
        if not slots:
            continue
        compute_outputs.update(node.output)
        for idx, zp_idx in slots.items():
            if idx >= len(node.input) or not node.input[idx]:
                continue
            zp = None
            if zp_idx is not None and zp_idx < len(node.input) and node.input[zp_idx]:
                # Integer ops: the zero point of input B is per output column (its last axis).
                zp = (node.input[zp_idx], 0 if node.op_type in ("QLinearConv", "ConvInteger") else -1)
            name, zp = source(node.input[idx], zp)
            if name is not None and name not in found:
                found[name] = zp
    # Bias Add after a compute node (possibly rescaled): ORT's dynamic int8 MatMul/Conv pattern.
    for node in proto.graph.node:
        if node.op_type != "Add" or len(node.input) != 2:
            continue
        a, b = node.input
        for const_in, other in ((a, b), (b, a)):
            name, zp = source(const_in, None)
            if name is not None and name not in found and _from_compute(other, producer, compute_outputs):
                found[name] = zp
    for name, zp in found.items():
        w = consts[name]
        if w.dtype.kind not in "fiub" or w.dtype == np.int64:  # int64 constants are shapes/indices
            continue
        yield w, _zero_point(consts, zp, w)


def _from_compute(value: str, producer: dict, compute_outputs: set[str]) -> bool:
    for _ in range(6):
        if value in compute_outputs:
            return True
        node = producer.get(value)
        if node is None or node.op_type not in _RESCALE:
            return False
        value = node.input[0]
    return False


def _zero_point(consts: dict[str, np.ndarray], zp: tuple[str, int] | None, w: np.ndarray) -> Any:
    """The zero point broadcastable against ``w`` (per-tensor scalar or per-channel along an axis)."""
    if zp is None or zp[0] not in consts:
        return 0
    z = consts[zp[0]]
    if z.size <= 1:
        return z.reshape(()).astype(w.dtype)
    axis = zp[1] % w.ndim
    shape = [1] * w.ndim
    shape[axis] = z.size
    return z.reshape(shape).astype(w.dtype)


def _attr(node: Any, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(a.i)
    return default
