"""The runnable early-exit network and how a backbone is cut into blocks (see
:mod:`optim.techniques.early_exit`). Kept apart so that importing the technique registry does not
import torch; pickled candidates refer to these classes by this module's name.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# --- the runnable model ----------------------------------------------------------------------------
class ExitBlock(nn.Module):
    """One stage of the backbone followed by an exit head: returns (features, exit logits)."""

    def __init__(self, stage: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.stage = stage
        self.head = head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.stage(x)
        return h, self.head(h)


class EarlyExitNet(nn.Module):
    """A backbone cut into stages with an exit head after each stage but the last.

    A sample leaves at exit *i* when ``confidence(logits_i) >= threshold``; ``criterion`` 0 is the
    largest softmax probability, 1 is one minus the softmax entropy normalised by ``log(classes)``
    (BranchyNet's entropy rule, turned around so that a higher threshold is stricter in both).
    """

    def __init__(self, blocks: list[ExitBlock], final: nn.Module, threshold: float,
                 criterion: int = 0) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.final = final
        self.threshold = float(threshold)
        self.criterion = int(criterion)
    def confidence(self, logits: torch.Tensor) -> torch.Tensor:
        p = F.softmax(logits, dim=1)
        if self.criterion == 1:
            ent = -(p * torch.log(p.clamp_min(1e-12))).sum(dim=1)
            return 1.0 - ent / math.log(max(2, logits.shape[1]))
        return p.max(dim=1).values

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return self._dynamic(x)
        if torch.jit.is_tracing():
            return self._static(x)
        if torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export():
            return self._exportable(x)
        return self._dynamic(x)

    def _dynamic(self, x: torch.Tensor) -> torch.Tensor:
        """Real early exit: stop at the first confident exit (batch 1), or carry on with only the
        rows still undecided (batch > 1)."""
        if x.shape[0] == 1:
            h = x
            for blk in self.blocks:
                h, logits = blk(h)
                if bool(self.confidence(logits)[0] >= self.threshold):
                    return logits
            return self.final(h)
        idx = torch.arange(x.shape[0], device=x.device)
        out = torch.empty(0)
        started = False
        h = x
        for blk in self.blocks:
            h, logits = blk(h)
            if not started:
                out = torch.zeros((x.shape[0], logits.shape[1]), dtype=logits.dtype, device=logits.device)
                started = True
            done = self.confidence(logits) >= self.threshold
            if bool(done.all()):
                out[idx] = logits
                return out
            out[idx[done]] = logits[done]
            keep = ~done
            h = h[keep]
            idx = idx[keep]
        logits = self.final(h)
        if not started:
            return logits
        out[idx] = logits
        return out

    def _static(self, x: torch.Tensor) -> torch.Tensor:
        """Every exit computed; each row takes its first confident one (for tracing: no control flow)."""
        outs: list[torch.Tensor] = []
        confs: list[torch.Tensor] = []
        h = x
        for blk in self.blocks:
            h, logits = blk(h)
            outs.append(logits)
            confs.append(self.confidence(logits) >= self.threshold)
        result = self.final(h)
        for logits, done in zip(reversed(outs), reversed(confs)):
            result = torch.where(done.unsqueeze(1), logits, result)
        return result

    @torch.jit.unused
    def _exportable(self, x: torch.Tensor) -> torch.Tensor:
        return self._cond_from(0, x)

    @torch.jit.unused
    def _cond_from(self, i: int, h: torch.Tensor) -> torch.Tensor:
        # torch.cond becomes an ONNX If: the rest of the network runs only when some row needs it.
        if i == len(self.blocks):
            return self.final(h)
        h, logits = self.blocks[i](h)
        done = self.confidence(logits) >= self.threshold

        def early(h: torch.Tensor, logits: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
            return logits.clone()

        def rest(h: torch.Tensor, logits: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
            return torch.where(done.unsqueeze(1), logits, self._cond_from(i + 1, h))

        return torch.cond(done.all(), early, rest, (h, logits, done))

    @torch.jit.unused
    def all_exits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every exit then the final output, for every row (training and statistics)."""
        outs = []
        h = x
        for blk in self.blocks:
            h, logits = blk(h)
            outs.append(logits)
        outs.append(self.final(h))
        return outs

    def extra_repr(self) -> str:
        crit = "entropy" if self.criterion == 1 else "max_softmax"
        return f"exits={len(self.blocks)}, threshold={self.threshold:g}, criterion={crit}"


# --- cutting a network into blocks -----------------------------------------------------------------
_TORCHVISION_HEADED = ("MobileNetV2", "MobileNetV3", "EfficientNet", "VGG", "AlexNet")


def _is_weighted(m: nn.Module) -> bool:
    return any(isinstance(x, (nn.Linear, nn.modules.conv._ConvNd)) for x in m.modules())


def _units(module: nn.Module) -> list[nn.Module]:
    """The model as a flat list of sequential units (nested Sequentials opened, torchvision
    classification CNNs opened into their ``features`` then pool, flatten and classifier)."""
    if isinstance(module, nn.Sequential):
        out: list[nn.Module] = []
        for child in module:
            out.extend(_units(child))
        return out
    if type(module).__name__ in _TORCHVISION_HEADED and type(module).__module__.startswith("torchvision") \
            and isinstance(getattr(module, "features", None), nn.Sequential):
        pool = getattr(module, "avgpool", None) or nn.AdaptiveAvgPool2d((1, 1))
        features: nn.Module = module.features  # type: ignore[assignment]  # checked nn.Sequential just above
        classifier: nn.Module = module.classifier  # type: ignore[assignment]  # torchvision's head
        return _units(features) + [pool, nn.Flatten(1)] + _units(classifier)
    return [module]


def split_blocks(module: nn.Module, input_shape: tuple[int, ...] | None = None) -> list[nn.Sequential]:
    """Blocks of ``module``: each starts at a Linear/Conv unit and takes the activation, norm and
    pooling units after it; units before the first weighted one join the first block.

    digits-mlp has 3 blocks (one per Linear), digits-cnn 5 (three conv, two linear), a torchvision
    MobileNet one per ``features`` block plus its classifier's Linear layers. Any other model is
    cut on its ``torch.fx`` graph (:func:`graph_blocks`, at batch-first tensors when
    ``input_shape``, one sample's shape, is given).
    """
    units = _units(module)
    if len(units) == 1 and any(True for _ in units[0].children()):
        return [nn.Sequential(b) for b in graph_blocks(units[0], input_shape)]
    blocks: list[list[nn.Module]] = []
    current: list[nn.Module] = []
    has_weight = False
    for unit in _units(module):
        if _is_weighted(unit) and has_weight:
            blocks.append(current)
            current, has_weight = [], False
        current.append(unit)
        has_weight = has_weight or _is_weighted(unit)
    if current:
        if blocks and not has_weight:
            blocks[-1].extend(current)
        else:
            blocks.append(current)
    return [nn.Sequential(*b) for b in blocks]


def graph_blocks(module: nn.Module, input_shape: tuple[int, ...] | None = None) -> list[nn.Module]:
    """``module``'s graph cut into consecutive pieces, each holding at least one Linear/Conv, at
    *cut points*: nodes every input-to-output path passes through (nothing computed before one is
    read after it, except constants and the batch size). An untraceable model is one block.

    With ``input_shape`` (one sample's), a cut is also a tensor whose first dimension is the batch
    (run on zeros of two batch sizes): an exit head classifies each row of it, so a
    sequence-first tensor (an ONNX GRU's output) is no cut point."""
    import operator

    import torch.fx as fx

    try:
        gm = module if isinstance(module, fx.GraphModule) else fx.symbolic_trace(module)
    except Exception:
        return [module]
    nodes = list(gm.graph.nodes)
    pos = {n: i for i, n in enumerate(nodes)}
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        return [module]
    x = placeholders[0]

    def constant(n: fx.Node) -> bool:
        return n.op == "get_attr" or _batch_size_of(n, x)

    def weighted(n: fx.Node) -> bool:
        return n.op == "call_module" and any(isinstance(m, (nn.Linear, nn.modules.conv._ConvNd, nn.RNNBase))
                                             for m in gm.get_submodule(str(n.target)).modules())

    batch_first = _batch_first_nodes(gm, input_shape) if input_shape is not None else None
    last_use = {n: max((pos[u] for u in n.users), default=pos[n]) for n in nodes}
    cuts, open_values, seen_weight = [], set(), False
    weighted_after = [False] * (len(nodes) + 1)
    for i in range(len(nodes) - 1, -1, -1):
        weighted_after[i] = weighted_after[i + 1] or weighted(nodes[i])
    for i, n in enumerate(nodes):
        if not constant(n):
            open_values.add(n)
        open_values = {v for v in open_values if last_use[v] > i}
        seen_weight = seen_weight or weighted(n)
        tuple_out = bool(n.users) and all(u.op == "call_function" and u.target is operator.getitem for u in n.users)
        if (n.op in ("call_module", "call_function", "call_method") and open_values == {n} and seen_weight
                and weighted_after[i + 1] and not tuple_out  # a head needs a tensor, not (out, h)
                and (batch_first is None or n in batch_first)):
            cuts.append(i)
            seen_weight = False
    if not cuts:
        return [module]
    bounds = [-1, *cuts, len(nodes) - 1]
    return [_segment(gm, nodes, x, a + 1, b) for a, b in zip(bounds[:-1], bounds[1:])]


def _batch_first_nodes(gm: torch.fx.GraphModule, input_shape: tuple[int, ...]) -> set:
    """The nodes whose output is a tensor with the batch as its first dimension, on zero inputs of
    batch 2 and 3 (empty when the graph does not run on them)."""
    import torch.fx as fx

    seen: dict = {}

    class Record(fx.Interpreter):
        def run_node(self, n: fx.Node) -> object:
            out = super().run_node(n)
            seen.setdefault(n, []).append(tuple(out.shape) if isinstance(out, torch.Tensor) else None)
            return out

    try:
        with torch.inference_mode():
            for b in (2, 3):
                Record(gm).run(torch.zeros((b, *input_shape)))
    except Exception:
        return set()
    return {n for n, shapes in seen.items()
            if len(shapes) == 2 and all(s is not None and len(s) > 0 and s[0] == b for s, b in zip(shapes, (2, 3)))}


def _batch_size_of(n: object, x: object) -> bool:
    """Whether ``n`` is ``x.size(0)`` / ``x.shape[0]`` (recomputed from each piece's input)."""

    import torch.fx as fx

    if not isinstance(n, fx.Node) or n.op != "call_function" or not n.args or n.args[0] is not x:
        return False
    if n.target is torch.ops.aten.sym_size.int:
        return bool(n.args[1] == 0)
    return False


def _segment(gm: torch.fx.GraphModule, nodes: list, x: object, start: int, end: int) -> torch.fx.GraphModule:
    """Nodes ``start..end`` of ``gm`` as a GraphModule of one tensor (the node before ``start``)."""
    import torch.fx as fx

    graph = fx.Graph()
    inp = graph.placeholder("x")
    env: dict = {}
    if start == 0:
        env[x] = inp
    else:
        env[nodes[start - 1]] = inp

    def lookup(n: fx.Node) -> fx.Node:
        if n not in env:
            if n.op == "get_attr":
                env[n] = graph.get_attr(str(n.target))  # a get_attr target is a dotted name
            elif _batch_size_of(n, x):
                env[n] = graph.call_function(torch.ops.aten.sym_size.int, (inp, 0))
            else:
                raise ValueError(f"{n.name} crosses a cut")
        return env[n]

    for n in nodes[start:end + 1]:
        if n.op in ("placeholder",) or n in env:
            continue
        if n.op == "output":
            out = n.args[0]
            if isinstance(out, (tuple, list)) and len(out) == 1:
                out = out[0]  # a torch.export graph returns its one output as a 1-tuple
            graph.output(fx.map_arg(out, lookup))
            break
        if n.op == "get_attr" or _batch_size_of(n, x):
            continue  # made on demand in the piece that reads it
        env[n] = graph.node_copy(n, lookup)
    else:
        graph.output(env[nodes[end]])
    return fx.GraphModule(gm, graph)


def make_head(feature_shape: tuple[int, ...], num_classes: int, max_features: int = 4096) -> nn.Module:
    """A cheap exit classifier: flatten + Linear; feature maps larger than ``max_features`` values
    are average-pooled first (to at most ~1,024 values)."""
    n = int(np.prod(feature_shape))
    if len(feature_shape) == 3 and n > max_features:
        c = feature_shape[0]
        side = max(1, int(math.sqrt(1024 / c)))
        return nn.Sequential(nn.AdaptiveAvgPool2d(side), nn.Flatten(1), nn.Linear(c * side * side, num_classes))
    return nn.Sequential(nn.Flatten(1), nn.Linear(n, num_classes))


class AllExits(nn.Module):
    """Training view: raw features in, every exit's logits out; a frozen backbone stays in eval
    mode (its batch-norm statistics must not move while the heads learn)."""

    def __init__(self, transform: nn.Module | None, net: EarlyExitNet, frozen: bool) -> None:
        super().__init__()
        # A private frozen copy: the transform is the input candidate's preprocessing, never trained.
        self.transform = None if transform is None else copy.deepcopy(transform).eval()
        self.net = net
        self.frozen = frozen
        if self.transform is not None:
            for p in self.transform.parameters():
                p.requires_grad_(False)
        if frozen:
            for blk in net.blocks:
                # torch types a module attribute (buffer, submodule) as Tensor | Module.
                for p in blk.stage.parameters():  # type: ignore[union-attr]
                    p.requires_grad_(False)
            for p in net.final.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> AllExits:
        super().train(mode)
        if self.frozen:
            for blk in self.net.blocks:
                # torch types a module attribute (buffer, submodule) as Tensor | Module.
                blk.stage.eval()  # type: ignore[union-attr]
            self.net.final.eval()
        if self.transform is not None:
            self.transform.eval()
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.transform is not None:
            x = self.transform(x)
        return self.net.all_exits(x)


class HeadsOnFeatures(nn.Module):
    """Training view for a frozen backbone: the exit heads applied to precomputed stage outputs
    (flattened and concatenated per row), so each epoch costs only the heads."""

    def __init__(self, heads: list[nn.Module], shapes: list[tuple[int, ...]]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(heads)
        self.shapes = [tuple(s) for s in shapes]
        self.sizes = [int(np.prod(s)) for s in shapes]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        parts = torch.split(x, self.sizes, dim=1)
        return [head(part.reshape((-1, *shape))) for head, part, shape in zip(self.heads, parts, self.shapes)]


def exit_features(transform: nn.Module | None, net: EarlyExitNet, X: np.ndarray,
                  chunk: int = 512) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """Each exit's input (its stage's output) for every row of ``X``, flattened and concatenated."""
    rows: list[np.ndarray] = []
    shapes: list[tuple[int, ...]] = []
    with torch.inference_mode():
        for i in range(0, len(X), chunk):
            h = torch.from_numpy(np.asarray(X[i:i + chunk], np.float32))
            if transform is not None:
                h = transform(h)
            feats = []
            for blk in net.blocks:
                # torch types a module attribute (buffer, submodule) as Tensor | Module.
                h = blk.stage(h)  # type: ignore[operator]
                feats.append(h.reshape(h.shape[0], -1))
                if not shapes or len(shapes) < len(net.blocks):
                    shapes.append(tuple(h.shape[1:]))
            rows.append(torch.cat(feats, dim=1).float().numpy())
    return np.concatenate(rows), shapes
