"""onnx2torch converters for the ONNX ``GRU`` and ``LSTM`` operators, which onnx2torch 1.5 lacks.

Each becomes a real ``nn.GRU`` / ``nn.LSTM`` (so dynamic int8, pruning of what feeds it, and
training apply), with the gate blocks reordered from ONNX's layout (GRU: z, r, h; LSTM: i, o, f, c)
to PyTorch's (GRU: r, z, n; LSTM: i, f, g, o). Only what PyTorch's layers compute is accepted:
default activations, no clip, no peepholes, GRU with ``linear_before_reset=1``, sequence-first
layout (``layout=0``), full-length sequences. Imported for its side effect (registration).
"""

from __future__ import annotations

from typing import Any

import torch
from onnx2torch.node_converters.registry import add_converter
from onnx2torch.utils.common import OnnxMapping, OnnxToTorchModule, OperationConverterResult
from torch import nn

_GRU_ORDER = (1, 0, 2)  # ONNX z, r, h → PyTorch r, z, n
_LSTM_ORDER = (0, 2, 3, 1)  # ONNX i, o, f, c → PyTorch i, f, g, o


class OnnxRecurrent(nn.Module, OnnxToTorchModule):
    """Runs an ``nn.GRU`` / ``nn.LSTM`` with ONNX's inputs and outputs (Y is [seq, dirs, batch, H])."""

    def __init__(self, rnn: nn.Module, n_outputs: int) -> None:
        super().__init__()
        self.rnn = rnn
        self.n_outputs = n_outputs

    def forward(self, x: torch.Tensor, initial_h: torch.Tensor | None = None,
                initial_c: torch.Tensor | None = None) -> Any:
        dirs = 2 if self.rnn.bidirectional else 1
        if isinstance(self.rnn, nn.LSTM):
            state = None if initial_h is None else (initial_h, initial_c if initial_c is not None
                                                    else torch.zeros_like(initial_h))
            y, (h, c) = self.rnn(x, state)
        else:
            y, h = self.rnn(x, initial_h)
            c = None
        seq, batch = y.shape[0], y.shape[1]
        y = y.reshape(seq, batch, dirs, -1).transpose(1, 2)
        outs = (y, h) if c is None else (y, h, c)
        return outs[0] if self.n_outputs == 1 else outs[:self.n_outputs]


def _unsupported(node: Any, what: str) -> NotImplementedError:
    return NotImplementedError(f"ONNX {node.operation_type} with {what} has no nn.{node.operation_type} equivalent")


def _converter(node: Any, graph: Any, lstm: bool) -> OperationConverterResult:
    attrs = node.attributes
    if attrs.get("layout", 0) != 0:
        raise _unsupported(node, "layout=1")
    if attrs.get("clip") is not None:
        raise _unsupported(node, "clip")
    default_acts = ["Sigmoid", "Tanh", "Tanh"] if lstm else ["Sigmoid", "Tanh"]
    acts = list(attrs.get("activations", []))
    if acts and [a.decode() if isinstance(a, bytes) else a for a in acts][:len(default_acts)] != default_acts:
        raise _unsupported(node, f"activations {acts}")
    if not lstm and attrs.get("linear_before_reset", 0) != 1:
        raise _unsupported(node, "linear_before_reset=0")
    inputs = list(node.input_values) + [""] * 8
    for name in inputs[1:3]:
        if name not in graph.initializers:
            raise _unsupported(node, "weights computed in the graph")
    if inputs[4]:
        raise _unsupported(node, "sequence_lens")
    if lstm and inputs[7]:
        raise _unsupported(node, "peepholes")
    W = graph.initializers[inputs[1]].to_torch()
    R = graph.initializers[inputs[2]].to_torch()
    B = graph.initializers[inputs[3]].to_torch() if inputs[3] in graph.initializers else None
    if inputs[3] and B is None:
        raise _unsupported(node, "biases computed in the graph")
    dirs, hidden = W.shape[0], int(attrs.get("hidden_size", R.shape[-1]))
    direction = attrs.get("direction", "forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    if direction == "reverse":
        raise _unsupported(node, "direction=reverse")
    order = _LSTM_ORDER if lstm else _GRU_ORDER

    def reorder(t: torch.Tensor) -> torch.Tensor:
        blocks = t.reshape(len(order), hidden, *t.shape[1:])
        return torch.cat([blocks[i] for i in order]).contiguous()

    cls = nn.LSTM if lstm else nn.GRU
    rnn = cls(W.shape[2], hidden, bias=True, bidirectional=dirs == 2)
    with torch.no_grad():
        for d in range(dirs):
            sfx = "_l0" + ("_reverse" if d == 1 else "")
            getattr(rnn, "weight_ih" + sfx).copy_(reorder(W[d]))
            getattr(rnn, "weight_hh" + sfx).copy_(reorder(R[d]))
            if B is not None:
                b_ih, b_hh = B[d].split(len(order) * hidden)
                getattr(rnn, "bias_ih" + sfx).copy_(reorder(b_ih))
                getattr(rnn, "bias_hh" + sfx).copy_(reorder(b_hh))
            else:
                getattr(rnn, "bias_ih" + sfx).zero_()
                getattr(rnn, "bias_hh" + sfx).zero_()
    # A zero initial state (ConstantOfShape of the input's batch size, as PyTorch's exporter writes
    # it) is the layers' default: dropped, so a traced copy of the graph does not fix the batch size.
    states = inputs[5:7] if lstm else inputs[5:6]
    mapped = [inputs[0]] + ([] if all(not n or _zeros(graph, n) for n in states) else states)
    while mapped and not mapped[-1]:
        mapped.pop()
    return OperationConverterResult(
        torch_module=OnnxRecurrent(rnn, len(node.output_values)),
        onnx_mapping=OnnxMapping(inputs=tuple(mapped), outputs=node.output_values),
    )


def _zeros(graph: Any, name: str) -> bool:
    """Whether ONNX value ``name`` is a ConstantOfShape of zeros."""
    try:
        producer, _ = graph.value_as_node_output(name)
    except KeyError:
        return False
    if producer.operation_type != "ConstantOfShape":
        return False
    value = producer.attributes.get("value")
    return value is None or not bool(torch.as_tensor(value.to_torch() if hasattr(value, "to_torch") else value).any())


@add_converter(operation_type="GRU", version=7)
@add_converter(operation_type="GRU", version=14)
def _gru(node: Any, graph: Any) -> OperationConverterResult:
    return _converter(node, graph, lstm=False)


@add_converter(operation_type="LSTM", version=7)
@add_converter(operation_type="LSTM", version=14)
def _lstm(node: Any, graph: Any) -> OperationConverterResult:
    return _converter(node, graph, lstm=True)
