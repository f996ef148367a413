"""Torch → ONNX conversion shared by export and every ONNX-based technique."""

from __future__ import annotations

import copy
import hashlib
import io
import os
import tempfile
import threading
import warnings
from collections import OrderedDict
from typing import Any, Literal

import numpy as np

from optim.errors import ExportError

#: Conversions kept per process, keyed by the module's content: exporting MobileNetV3 takes 25-60 s
#: on 2 cores, and quantize-static, quantize-dynamic, onnx-runtime and export all start from the same
#: fp32 graph of the same parent. Bounded by entries and bytes.
_CACHE: OrderedDict[str, bytes] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_MAX_ENTRIES = 16
_CACHE_MAX_BYTES = 512 * 1024 * 1024


def module_key(module: Any, input_shape: tuple[int, ...], opset: int) -> str:
    """A hash of what the exported graph depends on: every submodule's type, the module's text,
    its parameters and buffers (values, dtypes, shapes), the input shape and the opset."""
    import torch

    h = hashlib.sha256(f"{tuple(input_shape)}|{opset}|{module!r}".encode())
    for m in module.modules():
        h.update(f"{type(m).__module__}.{type(m).__qualname__};".encode())
    for name, value in module.state_dict().items():
        h.update(name.encode())
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        else:
            h.update(repr(value).encode())
    return h.hexdigest()


def torch_to_onnx_bytes(module: Any, input_shape: tuple[int, ...], *, opset: int = 18,
                        exporter: Literal["dynamo", "torchscript"] = "dynamo") -> bytes:
    """ONNX bytes of ``module`` with a dynamic batch dimension, weights inside the one file.

    ``exporter`` is tried first and the other one if it fails: the dynamo exporter
    (``external_data=False`` keeps one file) or the TorchScript-based one, which handles some
    modules dynamo cannot (e.g. traced ones) and converts in a fraction of the time. The module is
    copied first, never changed; the result is cached by the module's content, so the same parent
    is exported once however many ONNX-based techniques start from it.
    """
    try:
        key = f"{exporter}:{module_key(module, input_shape, opset)}"
    except Exception:  # a module whose state cannot be hashed: convert without the cache
        key = ""
    with _CACHE_LOCK:
        if key and key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    was_training = bool(getattr(module, "training", False))
    try:
        work = copy.deepcopy(module)
    except Exception:  # e.g. some TorchScript modules: export reads the weights, only the mode changes
        work = module
    try:
        data = _export(work, input_shape, opset, exporter)
    finally:
        if work is module:
            module.train(was_training)
    if key:
        with _CACHE_LOCK:
            _CACHE[key] = data
            while len(_CACHE) > _CACHE_MAX_ENTRIES or sum(map(len, _CACHE.values())) > _CACHE_MAX_BYTES:
                _CACHE.popitem(last=False)
    return data


def _export(module: Any, input_shape: tuple[int, ...], opset: int,
            exporter: Literal["dynamo", "torchscript"] = "dynamo") -> bytes:
    import torch

    if isinstance(module, torch.jit.ScriptModule):
        # The TorchScript exporter inlines a ScriptModule's graph in place: export a fresh copy so
        # the caller's model (a candidate's, shared with later variants) stays as it was.
        from optim.io.convert import script_copy

        module = script_copy(module)
    module.eval()
    example = (torch.randn((2, *input_shape), dtype=torch.float32),)
    errors: list[str] = []

    def dynamo() -> bytes:
        batch = torch.export.Dim("batch", min=1, max=4096)
        program = torch.onnx.export(
            module, example, dynamo=True, external_data=False, optimize=True,
            dynamic_shapes=({0: batch},), input_names=["input"], output_names=["output"],
            opset_version=opset, verbose=False, report=False,
        )
        assert program is not None  # dynamo=True returns a program (None is the legacy exporter's)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.onnx")
            program.save(path, external_data=False)
            with open(path, "rb") as fh:
                return strip_debug_info(fh.read())

    def torchscript() -> bytes:
        buf = io.BytesIO()
        # The legacy exporter also writes to a file object; torch's stub says path only.
        torch.onnx.export(
            module, example, buf, dynamo=False, input_names=["input"], output_names=["output"],  # type: ignore[arg-type]
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=min(opset, 17),
        )
        data = strip_debug_info(buf.getvalue())
        if exporter == "torchscript":  # chosen for speed, so prove it computes what torch does
            # Other rows than the traced ones (a trace bakes in data-dependent branches), of the same
            # shape (a new batch size makes oneDNN build new kernels: seconds on MobileNetV3).
            rows = np.random.default_rng(0).standard_normal(tuple(example[0].shape)).astype(np.float32)
            check_onnx_matches(data, module, rows)
        return data

    order = [("dynamo", dynamo), ("torchscript", torchscript)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, convert in sorted(order, key=lambda item: item[0] != exporter):
            try:
                return convert()
            except Exception as err:  # try the other exporter; keep every reason for the message
                errors.append(f"{name}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    raise ExportError("could not convert this model to ONNX (" + "; ".join(errors) + ").",
                      hint="Export it as TorchScript instead, or convert the model before quantizing it.")


def strip_debug_info(model_bytes: bytes) -> bytes:
    """Drop per-node metadata (the exporter's stack traces and FX node dumps) and doc strings.

    They run to tens of kB on a small model, about a third of an int8 digits-cnn file, and the
    runtime never reads them; a file meant to be shipped leaves them out.
    """
    import onnx

    model = onnx.load_model_from_string(model_bytes)
    graphs = [model.graph] + [f for f in model.functions]
    for graph in graphs:
        for node in graph.node:
            del node.metadata_props[:]
            node.doc_string = ""
    model.graph.doc_string = ""
    for value in list(model.graph.input) + list(model.graph.output) + list(model.graph.initializer):
        del value.metadata_props[:]  # the exporter's graph-signature notes, per tensor
    return model.SerializeToString()


def check_onnx_matches(onnx_bytes: bytes, module: Any, X: np.ndarray, *, atol: float = 1e-4,
                       rtol: float = 1e-3) -> float:
    """Run ``onnx.checker`` and compare ONNX Runtime's outputs with torch's on ``X``.

    Returns the largest absolute difference; raises ExportError when it exceeds the tolerance.
    """
    import onnx
    import onnxruntime as ort
    import torch

    try:
        onnx.checker.check_model(onnx.load_model_from_string(onnx_bytes))
    except Exception as err:
        raise ExportError(f"the exported ONNX model fails onnx.checker: {err}") from None
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    X = np.asarray(X, dtype=np.float32)
    got = sess.run(None, {name: X})[0]
    module.eval()
    with torch.inference_mode():
        want = module(torch.from_numpy(X)).float().numpy()
    diff = float(np.max(np.abs(got - want))) if got.size else 0.0
    if not np.allclose(got, want, atol=atol, rtol=rtol):
        raise ExportError(
            f"the ONNX model's outputs differ from PyTorch's by up to {diff:.3g} "
            f"(tolerance atol={atol:g}, rtol={rtol:g}); it was not written."
        )
    return diff


#: Operators that carry weights: the layers quantization and its accuracy control act on.
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
_NAME_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def compact_onnx(model_bytes: bytes) -> bytes:
    """The same computation in fewer bytes, for a file meant to be shipped.

    What made Neural Compressor's int8 digits-cnn 13% smaller than ONNX Runtime's QDQ output, done
    here without touching a kernel: identical constants (zero points, shared scales) stored once;
    short tensor names; attributes equal to their schema default, per-tensor metadata, value_info
    and unused opset imports dropped; a Quantize→Dequantize pair that only rounds a graph output
    removed (the int8 kernel before it emits float). Names of weighted layers are kept, so reports
    can point at them. Graphs with subgraphs (If/Loop) keep their names: inner graphs refer to them.
    """
    import onnx
    from onnx import numpy_helper

    m = onnx.load_model_from_string(model_bytes)
    g = m.graph
    outs = {o.name for o in g.output}
    producer = {o: n for n in g.node for o in n.output}
    uses: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    for dq in [n for n in g.node if n.op_type == "DequantizeLinear" and n.output[0] in outs]:
        q = producer.get(dq.input[0])
        src = producer.get(q.input[0]) if q is not None and q.op_type == "QuantizeLinear" else None
        if (
            q is not None
            and src is not None
            and uses.get(q.output[0]) == 1
            and uses.get(q.input[0]) == 1
            and q.input[0] not in outs
        ):
            src.output[list(src.output).index(q.input[0])] = dq.output[0]
            g.node.remove(q)
            g.node.remove(dq)
    first: dict[tuple, str] = {}
    alias = {}
    for init in g.initializer:
        key = (init.data_type, tuple(init.dims), numpy_helper.to_array(init).tobytes())
        alias[init.name] = first.setdefault(key, init.name)
    for n in g.node:
        n.input[:] = [alias.get(x, x) for x in n.input]
    used = {i for n in g.node for i in n.input} | outs
    kept = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)
    del g.value_info[:]
    for v in list(g.input) + list(g.output) + list(g.initializer):
        del v.metadata_props[:]
        v.doc_string = ""
    del m.metadata_props[:]
    _drop_default_attributes(m)
    if not any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in g.node for a in n.attribute):
        _short_names(g)
    domains = {n.domain for n in g.node} | {""}
    opsets = [o for o in m.opset_import if o.domain in domains]
    del m.opset_import[:]
    m.opset_import.extend(opsets)
    return m.SerializeToString()


def _drop_default_attributes(m: Any) -> None:
    import onnx

    version = {o.domain: o.version for o in m.opset_import}
    for n in m.graph.node:
        try:
            schema = onnx.defs.get_schema(n.op_type, version.get(n.domain, 1), n.domain)
        except Exception:  # an operator onnx does not know (a custom domain): leave it as is
            continue
        kept = []
        for a in n.attribute:
            spec = schema.attributes.get(a.name)
            if spec is not None and spec.default_value.type != onnx.AttributeProto.UNDEFINED:
                default = onnx.AttributeProto()
                default.CopyFrom(spec.default_value)
                default.name = a.name
                if default.SerializeToString() == a.SerializeToString():
                    continue
            if a.name == "auto_pad" and a.s == b"NOTSET":  # the default, though the schema states none
                continue
            kept.append(a)
        if len(kept) != len(n.attribute):
            del n.attribute[:]
            n.attribute.extend(kept)


def _short_names(g: Any) -> None:
    keep = {i.name for i in g.input} | {o.name for o in g.output} | {""}
    names: dict[str, str] = {}

    def short(name: str) -> str:
        if name in keep:
            return name
        if name not in names:
            k, s = len(names), ""
            while True:
                s = _NAME_DIGITS[k % 36] + s
                k //= 36
                if not k:
                    break
            names[name] = s
        return names[name]

    for init in g.initializer:
        init.name = short(init.name)
    for n in g.node:
        n.input[:] = [short(x) for x in n.input]
        n.output[:] = [short(x) for x in n.output]
        if n.op_type not in WEIGHTED_OPS:
            n.name = ""
