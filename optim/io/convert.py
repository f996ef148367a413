"""One editable representation: every model format becomes a ``torch.fx.GraphModule`` whose weights
live in real ``nn.Linear`` / ``nn.Conv*`` / ``nn.BatchNorm*`` / ``nn.LSTM`` / ``nn.GRU`` /
``nn.Embedding`` modules, so the techniques that edit layers (pruning, clustering, low-rank, dynamic
int8, early exit, feature selection, training) apply to models nobody in the project wrote.

Routes (well-kept converters, not our own):

- ``torch.export`` programs (``.pt2``): ``ExportedProgram.module()`` gives an FX graph of ``aten``
  calls on bare parameters; each ``aten.linear`` / ``aten.conv*`` / ``aten.batch_norm`` /
  ``aten.gru`` / ``aten.lstm`` / ``aten.embedding`` / ``aten.layer_norm`` / ``aten.dropout`` call is
  replaced by a call of the matching ``torch.nn`` layer holding the same tensors.
- TorchScript (scripted or traced): a ``nn.Sequential`` of standard layers is rebuilt directly
  (:mod:`optim.io.rebuild`); anything else goes through ONNX (PyTorch's TorchScript exporter, on a
  copy) and ``onnx2torch``.
- ONNX: ``onnx2torch``, after the ONNX optimizer folds constants, the opset is brought to 17 (the
  last ``onnx2torch`` 1.5 reads fully) and ``Reshape``'s ``allowzero`` is cleared where its shape
  has no zero (then the two meanings agree).

A conversion is **kept only if it reproduces the original's outputs** on the user's rows:
``|converted - original| ≤ ATOL + RTOL·|original|`` elementwise. The original stays the baseline
that is measured; techniques start from the graph (see :meth:`optim.candidate.Candidate.for_editing`).
Where conversion fails, the reason names the operator or construct that stopped it.
"""

from __future__ import annotations

import contextlib
import copy
import io
import operator
import time
import warnings
from functools import partial
from typing import Any

import numpy as np

#: The reproduction tolerance (elementwise, as ``numpy.allclose``).
ATOL = 1e-4
RTOL = 1e-3
#: Rows of the user's data the check runs on: at most CHECK_ROWS, fewer for large inputs (about
#: CHECK_VALUES input values in all, at least MIN_CHECK_ROWS rows: 4 images of 3×224×224).
CHECK_ROWS = 64
CHECK_VALUES = 1 << 19
MIN_CHECK_ROWS = 4


class ConversionError(Exception):
    """The model could not be turned into an editable graph; the message names what stopped it."""


def editable_graph(model: Any, fmt: str, X: np.ndarray) -> tuple[Any | None, dict[str, Any]]:
    """``(graph, report)``: an editable torch copy of ``model`` (format ``fmt``: ``torchscript``,
    ``export`` or ``onnx``) that reproduces its outputs on ``X``, or ``(None, report)`` with
    ``report["reason"]`` naming what stopped the conversion. ``model`` is never modified."""
    start = time.perf_counter()
    X = np.asarray(X[:check_rows(X.shape[1:])], dtype=np.float32)
    report: dict[str, Any] = {"tolerance": f"|Δ| ≤ {ATOL:g} + {RTOL:g}·|y|"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph, route = _convert(model, fmt, X)
            graph.eval()
            diff = _check(model, graph, X)
    except ConversionError as err:
        report.update(reason=str(err), seconds=round(time.perf_counter() - start, 2))
        return None, report
    except Exception as err:  # a converter bug: report it as the reason, keep the original
        report.update(reason=f"{type(err).__name__}: {_first_line(err)}", seconds=round(time.perf_counter() - start, 2))
        return None, report
    report.update(route=route, max_abs_diff=float(f"{diff:.3g}"), seconds=round(time.perf_counter() - start, 2),
                  layers=layer_counts(graph))
    return graph, report


def layer_counts(module: Any) -> dict[str, int]:
    """How many editable layers of each kind ``module`` holds (Linear, Conv2d, GRU, ...)."""
    import torch.nn as nn

    kinds = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.modules.batchnorm._BatchNorm, nn.LSTM, nn.GRU,
             nn.Embedding, nn.LayerNorm)
    out: dict[str, int] = {}
    for m in module.modules():
        for k in kinds:
            if isinstance(m, k):
                out[k.__name__.lstrip("_")] = out.get(k.__name__.lstrip("_"), 0) + 1
    return out


def _convert(model: Any, fmt: str, X: np.ndarray) -> tuple[Any, str]:
    if fmt == "export":
        return modularize(copy.deepcopy(model)), "torch.export graph → torch.nn layers"
    if fmt == "torchscript":
        from optim.io.rebuild import editable_module

        rebuilt = editable_module(model, X)
        if rebuilt is not None:
            return rebuilt, "TorchScript nn.Sequential rebuilt layer by layer"
        # PyTorch's exporter has folded the constants already but for recurrent layers' weights (computed
        # by slicing): no second optimizer pass (and its shape inference) otherwise
        graph = from_onnx(script_to_onnx(model, tuple(X.shape[1:])), optimize=None)
        return static_shapes(graph, X), "TorchScript → ONNX → onnx2torch"
    if fmt == "onnx":
        return static_shapes(from_onnx(model.model_bytes), X), "ONNX → onnx2torch"
    raise ConversionError(f"no converter for the {fmt} format")


def check_rows(row_shape: tuple[int, ...]) -> int:
    """How many rows of the user's data the output check runs on, for rows of ``row_shape``."""
    return int(min(CHECK_ROWS, max(MIN_CHECK_ROWS, CHECK_VALUES // max(1, int(np.prod(row_shape))))))


def _check(original: Any, graph: Any, X: np.ndarray) -> float:
    import torch

    if hasattr(original, "run") and hasattr(original, "model_bytes"):  # OnnxModel
        want = original.run(X)
    else:
        with torch.inference_mode():
            want = _first(original(torch.from_numpy(X))).float().numpy()
    with torch.inference_mode():
        got = _first(graph(torch.from_numpy(X))).float().numpy()
    if got.shape != want.shape:
        raise ConversionError(f"the converted graph gives outputs of shape {got.shape}, the original {want.shape}")
    diff = float(np.max(np.abs(got - want))) if got.size else 0.0
    if not np.allclose(got, want, atol=ATOL, rtol=RTOL, equal_nan=True):
        raise ConversionError(f"the converted graph's outputs differ from the original's by up to {diff:.3g} "
                              f"(tolerance {ATOL:g} + {RTOL:g}·|y|)")
    return diff


def _first(out: Any) -> Any:
    return out[0] if isinstance(out, (tuple, list)) else out


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


# --- ONNX → torch (onnx2torch) ------------------------------------------------------------------
#: The opset onnx2torch 1.5 converts completely (opset-18 ReduceMean takes its axes as an input).
ONNX_OPSET = 17


def script_to_onnx(script: Any, input_shape: tuple[int, ...]) -> bytes:
    """ONNX bytes of a TorchScript module, exported from a fresh copy: PyTorch's TorchScript
    exporter inlines the module's graph in place, which would change the caller's model."""
    import torch

    fresh = script_copy(script).eval()
    out = io.BytesIO()
    try:
        # The legacy (TorchScript) exporter also writes to a file object; torch's stub says path only.
        torch.onnx.export(fresh, (torch.zeros((2, *input_shape)),), out, dynamo=False,  # type: ignore[arg-type]
                          opset_version=ONNX_OPSET, input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    except Exception as err:
        raise ConversionError(f"PyTorch's TorchScript → ONNX exporter stopped: {_first_line(err)}") from None
    return out.getvalue()


def script_copy(script: Any) -> Any:
    """An independent copy of a TorchScript module (a ``torch.jit.save`` / ``load`` round trip)."""
    import torch

    buf = io.BytesIO()
    torch.jit.save(script, buf)
    buf.seek(0)
    return torch.jit.load(buf, map_location="cpu").train(script.training)


def prepare_onnx(data: bytes, optimize: bool | None = True) -> Any:
    """The ONNX model as onnx2torch reads it: constants folded (``optimize``; None: only where
    GRU / LSTM / RNN nodes are), opset ≤ 17, Reshape allowzero=0."""
    import onnx
    import onnxscript.optimizer
    from onnx import version_converter

    proto = onnx.load_model_from_string(data)
    if optimize is None:
        optimize = any(node.op_type in ("GRU", "LSTM", "RNN") for node in proto.graph.node)
    try:
        if optimize:
            proto = onnxscript.optimizer.optimize(proto)
        else:
            _drop_initializer_identities(proto)
    except Exception:
        pass  # folding is an aid; onnx2torch reads the unfolded graph too
    opset = _opset(proto)
    if opset > ONNX_OPSET:
        try:
            proto = version_converter.convert_version(proto, ONNX_OPSET)
        except Exception as err:
            raise ConversionError(f"the ONNX opset-{opset} graph could not be brought to opset {ONNX_OPSET} "
                                  f"({_first_line(err)})") from None
    consts = {init.name: init for init in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Reshape":
            for attr in node.attribute:
                if attr.name == "allowzero" and attr.i == 1:
                    shape = consts.get(node.input[1]) if len(node.input) > 1 else None
                    if shape is None or 0 in onnx.numpy_helper.to_array(shape).tolist():
                        raise ConversionError(f"ONNX Reshape {node.name!r} uses allowzero=1 with a shape that may "
                                              f"hold 0, which onnx2torch cannot express")
                    attr.i = 0  # no zero in the shape: both meanings of allowzero agree
    return proto


def _drop_initializer_identities(proto: Any) -> None:
    """Read an initializer directly where PyTorch's exporter passes it through ``Identity`` (it
    writes one per duplicate weight): onnx2torch takes a Conv's bias only from an initializer."""
    consts = {init.name for init in proto.graph.initializer}
    outputs = {o.name for o in proto.graph.output}
    alias = {n.output[0]: n.input[0] for n in proto.graph.node
             if n.op_type == "Identity" and n.input[0] in consts and n.output[0] not in outputs}
    if not alias:
        return
    keep = [n for n in proto.graph.node if not (n.op_type == "Identity" and n.output[0] in alias)]
    for node in keep:
        for i, name in enumerate(node.input):
            if name in alias:
                node.input[i] = alias[name]
    del proto.graph.node[:]
    proto.graph.node.extend(keep)


def _opset(proto: Any) -> int:
    return max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=ONNX_OPSET)


def from_onnx(data: bytes, optimize: bool | None = True) -> Any:
    """An editable torch GraphModule of the ONNX model ``data`` (onnx2torch), or ConversionError
    naming the ONNX operator that has no converter. ``optimize``: as :func:`prepare_onnx`."""
    from onnx2torch import convert
    from onnx2torch.node_converters.registry import get_converter

    from optim.io import _onnx_rnn  # noqa: F401  (registers the GRU and LSTM converters)

    proto = prepare_onnx(data, optimize)
    versions = {o.domain: o.version for o in proto.opset_import}
    missing = []
    for node in proto.graph.node:
        try:
            get_converter(node.op_type, versions.get(node.domain, ONNX_OPSET), node.domain or "")
        except NotImplementedError:
            if node.op_type not in missing:
                missing.append(node.op_type)
    if missing:
        raise ConversionError(f"onnx2torch has no converter for the ONNX operator{'s' if len(missing) > 1 else ''} "
                              f"{', '.join(missing)}")
    try:
        graph = convert(proto)
    except Exception as err:
        raise ConversionError(f"onnx2torch stopped: {type(err).__name__}: {_first_line(err)}") from None
    return graph


class _Reached(Exception):
    """The shape propagation got as far as it needed."""


def static_shapes(gm: Any, X: np.ndarray) -> Any:
    """Replace onnx2torch's runtime shape arithmetic (Shape → Gather → Concat → Reshape, which
    neither exporter nor Torch-Pruning can follow) by ``flatten(x, 1)`` or ``reshape(x, (-1, ...))``
    wherever the batch dimension passes through; the rest of the reshape's shape is what the
    example gives (the check afterwards runs the result)."""
    import torch
    from onnx2torch.node_converters.reshape import OnnxReshape
    from torch.fx.passes.shape_prop import ShapeProp

    reshapes = [node for node in gm.graph.nodes
                if node.op == "call_module" and isinstance(gm.get_submodule(node.target), OnnxReshape)]
    if not reshapes:
        return gm

    class UpToLastReshape(ShapeProp):  # the shapes after the last reshape are not needed: stop there
        def run_node(self, node: Any) -> Any:
            out = super().run_node(node)
            if node is reshapes[-1]:
                raise _Reached
            return out

    n = 7  # a batch size unlike any other dimension of a small model, so it can be told apart
    sample = torch.from_numpy(np.resize(np.asarray(X, np.float32), (n, *X.shape[1:])))
    gm.eval()  # batch norm must not update its statistics on the sample
    try:
        # ShapeProp prints the traceback of a failing node to stderr before raising; that failure is
        # expected here (a model that only takes some batch sizes) and must not reach the CLI's one line.
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
            UpToLastReshape(gm).propagate(sample)
    except _Reached:
        pass
    except Exception:
        return gm  # left as onnx2torch made it
    changed = False
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(gm.get_submodule(node.target), OnnxReshape):
            continue
        src = node.args[0]
        tin = getattr(src, "meta", {}).get("tensor_meta")
        tout = node.meta.get("tensor_meta")
        if tin is None or tout is None or tin.shape[0] != n or tout.shape[0] != n:
            continue
        with gm.graph.inserting_before(node):
            if len(tout.shape) == 2 and tout.shape[1] == int(np.prod(tin.shape[1:])):
                new = gm.graph.call_function(torch.flatten, (src, 1))
            else:
                new = gm.graph.call_function(torch.reshape, (src, (-1, *tout.shape[1:])))
        node.replace_all_uses_with(new)
        gm.graph.erase_node(node)
        changed = True
    if changed:
        gm.graph.eliminate_dead_code()
        gm.delete_all_unused_submodules()
        gm.recompile()
    return gm


# --- torch.export graph → torch.nn layers --------------------------------------------------------
def modularize(gm: Any) -> Any:
    """Replace the ``aten`` layer calls of an unlifted ``torch.export`` graph (``ep.module()``) by
    calls of ``torch.nn`` layers that hold the same tensors; the result is a plain GraphModule.

    ``gm`` is edited (pass a copy). Parameters used by several calls (a conv applied twice) become
    one module called twice.
    """
    import torch
    import torch.fx as fx

    aten = torch.ops.aten
    graph = gm.graph
    built: dict[tuple[Any, ...], str] = {}  # parameter names, or the node itself when it has none
    new_modules: dict[str, Any] = {}

    def attr(node: Any) -> Any:
        if node is None:
            return None
        if not isinstance(node, fx.Node) or node.op != "get_attr":
            raise ConversionError(f"{_op_name(cur)} takes a computed weight (not a stored parameter)")
        obj = gm
        for part in str(node.target).split("."):  # a get_attr target is a dotted name
            obj = getattr(obj, part)
        return obj

    def name_for(param_node: Any, kind: str) -> str:
        base = str(param_node.target).rsplit(".", 1)[0] if isinstance(param_node, fx.Node) else kind
        name = base.replace(".", "_") if base else kind
        while name in new_modules or hasattr(gm, name):
            name += "_"
        return name

    def place(key_nodes: tuple, kind: str, make: Any) -> str:
        key = tuple(n.target if isinstance(n, fx.Node) else repr(n) for n in key_nodes) + (kind,)
        if key not in built:
            name = name_for(key_nodes[0], kind)
            new_modules[name] = make()
            gm.add_module(name, new_modules[name])  # graph.call_module checks the owner has it
            built[key] = name
        return built[key]

    for cur in list(graph.nodes):
        if cur.op == "call_module" and cur.target == "_guards_fn":
            graph.erase_node(cur)  # input-shape guards of the exported program; the check below runs the graph
            continue
        if cur.op != "call_function":
            continue
        t, a = cur.target, list(cur.args) + [None] * 10
        if t is aten.linear.default:
            w, b = attr(a[1]), attr(a[2])
            name = place((a[1], a[2]), "linear", partial(_linear, w, b))
            _swap(graph, cur, name, (a[0],))
        elif t in (aten.conv1d.default, aten.conv2d.default, aten.conv3d.default, aten.conv1d.padding,
                   aten.conv2d.padding, aten.conv3d.padding):
            w, b = attr(a[1]), attr(a[2])
            nd = w.dim() - 2
            stride, padding, dilation, groups = (a[3] or 1), (a[4] if a[4] is not None else 0), (a[5] or 1), (a[6] or 1)
            name = place((a[1], a[2]), f"conv{stride}{padding}{dilation}{groups}",
                         partial(_conv, nd, w, b, stride, padding, dilation, groups))
            _swap(graph, cur, name, (a[0],))
        elif t is aten.batch_norm.default:
            if a[5]:
                raise ConversionError("aten.batch_norm was exported in training mode; export the model in eval mode")
            rm, rv = attr(a[3]), attr(a[4])
            if rm is None:
                raise ConversionError("aten.batch_norm without running statistics (track_running_stats=False)")
            w, b = attr(a[1]), attr(a[2])
            dim = _ndim(a[0])
            name = place((a[3], a[1]), "bn", partial(_batch_norm, dim, w, b, rm, rv, a[6], a[7]))
            _swap(graph, cur, name, (a[0],))
        elif t is aten.dropout.default:
            p = float(a[1])
            new = f"dropout{len(new_modules)}"
            new_modules[new] = torch.nn.Dropout(p)
            gm.add_module(new, new_modules[new])
            _swap(graph, cur, new, (a[0],))
        elif t is aten.layer_norm.default:
            w, b = attr(a[2]), attr(a[3])
            shape, eps = tuple(a[1]), (a[4] if a[4] is not None else 1e-5)
            name = place((a[2] if a[2] is not None else cur, a[3]), "ln", partial(_layer_norm, shape, w, b, eps))
            _swap(graph, cur, name, (a[0],))
        elif t is aten.embedding.default:
            w = attr(a[0])
            pad = a[2] if a[2] is not None and a[2] >= 0 else None
            name = place((a[0],), "emb", partial(_embedding, w, pad))
            _swap(graph, cur, name, (a[1],))
        elif t in (aten.gru.input, aten.lstm.input):
            _recurrent(gm, graph, cur, t is aten.lstm.input, attr, place)
        elif t in (aten.gru.data, aten.lstm.data, aten.rnn_tanh.input, aten.rnn_relu.input):
            raise ConversionError(f"{_op_name(cur)} (packed sequences or a plain RNN) has no editable layer here")
    for node in list(graph.nodes):
        if node.op == "get_attr" and not node.users:
            graph.erase_node(node)
    root = torch.nn.Module()
    for name, module in new_modules.items():
        root.add_module(name, module)
    for node in graph.nodes:  # constants and parameters still read directly (e.g. a learned scale)
        if node.op == "get_attr":
            value = attr_path(gm, node.target)
            flat = node.target.replace(".", "_")
            while hasattr(root, flat) and getattr(root, flat) is not value:
                flat += "_"
            if isinstance(value, torch.nn.Parameter):
                root.register_parameter(flat, value)
            elif isinstance(value, torch.Tensor):
                root.register_buffer(flat, value)
            else:
                setattr(root, flat, value)
            node.target = flat
        elif node.op == "call_module" and node.target not in new_modules:
            root.add_module(node.target.replace(".", "_"), attr_path(gm, node.target))
            node.target = node.target.replace(".", "_")
    # A plain graph of one tensor in, one tensor out (torch.export's pytree code generator returns
    # the output as a 1-tuple and re-flattens inputs), so it traces, pickles and cuts like any other.
    output = next(n for n in graph.nodes if n.op == "output")
    if isinstance(output.args[0], (tuple, list)) and len(output.args[0]) == 1:
        output.args = (output.args[0][0],)
    graph._codegen = fx.graph.CodeGen()
    # ``aten.sym_size.int(x, 0)`` and ``aten.view(x, [n, ...])`` give plain ints when the graph is
    # traced (the TorchScript ONNX exporter), which would bake the example's batch size into every
    # reshape; ``x.size(0)`` and ``x.reshape(...)`` are recorded as such and keep the batch dynamic.
    as_method = {aten.sym_size.int: "size", aten.view.default: "reshape", aten.reshape.default: "reshape",
                 aten._unsafe_view.default: "reshape"}
    for node in list(graph.nodes):
        if node.op == "call_function" and node.target in as_method:
            with graph.inserting_before(node):
                method = graph.call_method(as_method[node.target], node.args, dict(node.kwargs))
            method.meta = dict(node.meta)
            node.replace_all_uses_with(method)
            graph.erase_node(node)
    graph.lint()
    out = fx.GraphModule(root, graph)
    out.recompile()
    return out


def attr_path(module: Any, path: str) -> Any:
    obj = module
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _op_name(node: Any) -> str:
    return str(getattr(node.target, "__name__", node.target)).replace(".default", "")


def _swap(graph: Any, node: Any, module_name: str, args: tuple) -> Any:
    with graph.inserting_before(node):
        new = graph.call_module(module_name, args)
    new.meta = dict(node.meta)  # shapes, which later replacements read
    node.replace_all_uses_with(new)
    graph.erase_node(node)
    return new


def _ndim(node: Any) -> int:
    val = getattr(node, "meta", {}).get("val")
    if val is None:
        raise ConversionError("aten.batch_norm on an input of unknown rank")
    return int(val.dim())


def _param(t: Any) -> Any:
    import torch

    return t if isinstance(t, torch.nn.Parameter) else torch.nn.Parameter(t.detach(), requires_grad=True)


def _linear(w: Any, b: Any) -> Any:
    import torch.nn as nn

    layer = nn.Linear(w.shape[1], w.shape[0], bias=b is not None, device="meta")
    layer.weight = _param(w)
    if b is not None:
        layer.bias = _param(b)
    return layer


def _conv(nd: int, w: Any, b: Any, stride: Any, padding: Any, dilation: Any, groups: int) -> Any:
    import torch.nn as nn

    cls: Any = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[nd]  # one of three; sizes are nd-tuples
    layer = cls(
        w.shape[1] * groups,
        w.shape[0],
        tuple(w.shape[2:]),
        stride=tuple(stride) if isinstance(stride, list) else stride,
        padding=tuple(padding) if isinstance(padding, list) else padding,
        dilation=tuple(dilation) if isinstance(dilation, list) else dilation,
        groups=groups,
        bias=b is not None,
        device="meta",
    )
    layer.weight = _param(w)
    if b is not None:
        layer.bias = _param(b)
    return layer


def _batch_norm(dim: int, w: Any, b: Any, rm: Any, rv: Any, momentum: Any, eps: Any) -> Any:
    import torch.nn as nn

    cls = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}.get(dim)
    if cls is None:
        raise ConversionError(f"aten.batch_norm on a {dim}-d input")
    layer = cls(rm.shape[0], eps=float(eps), momentum=momentum, affine=w is not None)
    if w is not None:
        layer.weight = _param(w)
        layer.bias = _param(b)
    layer.running_mean = rm.detach().clone()
    layer.running_var = rv.detach().clone()
    return layer


def _layer_norm(shape: tuple, w: Any, b: Any, eps: float) -> Any:
    import torch.nn as nn

    layer = nn.LayerNorm(shape, eps=float(eps), elementwise_affine=w is not None, bias=b is not None)
    if w is not None:
        layer.weight = _param(w)
    if b is not None:
        layer.bias = _param(b)
    return layer


def _embedding(w: Any, pad: Any) -> Any:
    import torch.nn as nn

    layer = nn.Embedding(w.shape[0], w.shape[1], padding_idx=pad)
    layer.weight = _param(w)
    return layer


def _recurrent(gm: Any, graph: Any, node: Any, lstm: bool, attr: Any, place: Any) -> None:
    """``aten.gru.input`` / ``aten.lstm.input`` → an ``nn.GRU`` / ``nn.LSTM`` call; the aten op's
    outputs (out, h[, c]) are read from the module's (out, h) / (out, (h, c))."""
    import torch
    import torch.nn as nn

    x, hx, params, has_biases, num_layers, dropout, _train, bidirectional, batch_first = node.args
    tensors = [attr(p) for p in params]
    w_ih0, w_hh0 = tensors[0], tensors[1]
    hidden = w_hh0.shape[1]
    cls = nn.LSTM if lstm else nn.GRU

    def make() -> Any:
        layer = cls(w_ih0.shape[1], hidden, num_layers=num_layers, bias=has_biases, batch_first=batch_first,
                    dropout=float(dropout), bidirectional=bidirectional)
        names = layer._flat_weights_names
        if len(names) != len(tensors):
            raise ConversionError(f"{_op_name(node)} with {len(tensors)} weights (projections?) has no nn equivalent")
        for n, t in zip(names, tensors):
            if tuple(getattr(layer, n).shape) != tuple(t.shape):
                raise ConversionError(f"{_op_name(node)}: weight {n} has shape {tuple(t.shape)}")
            setattr(layer, n, _param(t))
        layer.flatten_parameters()
        return layer

    name = place(tuple(params), "lstm" if lstm else "gru", make)
    zeros = (torch.ops.aten.zeros.default, torch.ops.aten.new_zeros.default)
    states = list(hx) if lstm else [hx]
    if all(getattr(h, "target", None) in zeros and len(h.users) == 1 for h in states):
        # Zero initial states made in float32 by the export: let the layer make them in its own
        # dtype (after a cast to half precision the exported zeros would not match).
        state = None
    else:
        state = tuple(hx) if lstm else hx
    with graph.inserting_before(node):
        call = graph.call_module(name, (x, state))
        out = graph.call_function(operator.getitem, (call, 0))
        h_state = graph.call_function(operator.getitem, (call, 1))
        if lstm:
            h = graph.call_function(operator.getitem, (h_state, 0))
            c = graph.call_function(operator.getitem, (h_state, 1))
            outs = [out, h, c]
        else:
            outs = [out, h_state]
    for user in list(node.users):
        if user.op == "call_function" and user.target is operator.getitem:
            user.replace_all_uses_with(outs[user.args[1]])
            graph.erase_node(user)
        else:
            raise ConversionError(f"{_op_name(node)}'s output tuple is used whole")
    graph.erase_node(node)
