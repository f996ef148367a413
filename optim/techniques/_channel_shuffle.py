"""Channel shuffles (ShuffleNet) for structured pruning: a converted graph records a shuffle as
reshapes with constant sizes, which break once channels are removed, and Torch-Pruning takes the
shuffle for an element-wise op, removing channels on one side that are not the ones removed on the
other. :func:`channel_shuffles_as_modules` makes each a :class:`ChannelShuffle` (sizes read at run
time) and :func:`shuffle_aware_pruner` tells Torch-Pruning how indices cross it."""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from optim.errors import UnsupportedError


class ChannelShuffle(nn.Module):
    """The channel shuffle of ``groups`` groups (ShuffleNet): reshape ``(N, C, H, W)`` to
    ``(N, g, C/g, H, W)``, swap dimensions 1 and 2, reshape back, with ``C`` read from the tensor at
    run time, so it still runs once channels are removed and exports as the reshapes ONNX and
    TorchScript know. ``fused`` makes it torch's one ``channel_shuffle`` op while Torch-Pruning traces
    the graph, so that the shuffle is one node it can be told about (:func:`shuffle_aware_pruner`)."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = int(groups)
        self.fused = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            return F.channel_shuffle(x, self.groups)
        n, c, h, w = x.size(0), x.size(1), x.size(2), x.size(3)
        return x.reshape(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def _op_name(gm: Any, node: Any) -> str:
    if node.op == "call_module":
        return type(gm.get_submodule(node.target)).__name__.lower()
    if node.op == "call_method":
        return str(node.target).lower()
    if node.op == "call_function":
        return str(getattr(node.target, "__name__", node.target)).lower()
    return ""


def _shape(node: Any) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    return tuple(int(d) for d in meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _sole_tensor_user(node: Any) -> Any:
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def channel_shuffles_as_modules(module: Any, example: Any) -> int:
    """Replace each channel shuffle of an fx graph — reshape ``(N, C, H, W)`` to ``(N, g, C/g, H, W)``,
    swap dimensions 1 and 2, reshape back, as torchvision's ShuffleNet writes it and as a converted
    graph records it with constant sizes — by :class:`ChannelShuffle`, which reads the channel count
    at run time and which :func:`_pruner` tells Torch-Pruning how to follow. Changes ``module`` in
    place (a copy); returns how many shuffles it replaced. The graph's outputs on ``example`` are
    unchanged (checked; on any difference the graph is left as it was)."""
    from torch.fx.passes.shape_prop import ShapeProp

    if not isinstance(module, fx.GraphModule):
        return 0
    found = []
    with torch.no_grad():
        try:
            ShapeProp(module).propagate(example)
        except Exception:  # a graph ShapeProp cannot run: nothing is replaced
            return 0
    for first in module.graph.nodes:
        if not any(k in _op_name(module, first) for k in ("reshape", "view")) or not first.all_input_nodes:
            continue
        src, shp = first.all_input_nodes[0], _shape(first)
        ishp = _shape(src)
        if ishp is None or shp is None or len(ishp) != 4 or len(shp) != 5 or shp[0] != ishp[0] \
                or shp[3:] != ishp[2:] or shp[1] * shp[2] != ishp[1] or shp[1] < 2:
            continue
        swap = _sole_tensor_user(first)
        if swap is None or not any(k in _op_name(module, swap) for k in ("transpose", "permute")) \
                or _shape(swap) != (shp[0], shp[2], shp[1], *shp[3:]):
            continue
        chain, last = [first, swap], _sole_tensor_user(swap)
        while last is not None and any(k in _op_name(module, last) for k in ("contiguous", "clone")):
            chain.append(last)
            last = _sole_tensor_user(last)
        if last is None or not any(k in _op_name(module, last) for k in ("reshape", "view", "flatten")) \
                or _shape(last) != ishp:
            continue
        found.append((src, chain + [last], shp[1]))
    if not found:
        return 0
    with torch.no_grad():
        before = module(example)
    saved, added = copy.deepcopy(module.graph), []
    for i, (src, chain, groups) in enumerate(found):
        name = f"channel_shuffle_{i}"
        while hasattr(module, name):
            name += "_"
        module.add_submodule(name, ChannelShuffle(groups))
        added.append(name)
        with module.graph.inserting_after(chain[-1]):
            new = module.graph.call_module(name, (src,))
        chain[-1].replace_all_uses_with(new)
        for node in reversed(chain):
            module.graph.erase_node(node)
    module.graph.eliminate_dead_code()
    module.recompile()
    with torch.no_grad():
        after = module(example)
    if not torch.allclose(before, after, atol=1e-6, rtol=1e-6):
        module.graph = saved
        for name in added:
            delattr(module, name)
        module.recompile()
        return 0
    return len(found)


class _ShuffleIndexMapping:
    """Torch-Pruning index mapping across a channel shuffle of ``groups`` groups. Indices at the
    shuffle are in its output's coordinates; removing a channel removes its whole block (the
    channel at the same place in every group), so the narrower shuffle still interleaves the groups
    as before: ``to_output`` maps input channels to their blocks' output channels, else output
    channels to their blocks' input channels. ``channels`` holds each shuffle's current width."""

    def __init__(self, layer: Any, channels: dict[Any, int], to_output: bool) -> None:
        self.layer, self.channels, self.to_output = layer, channels, to_output

    def __call__(self, idxs: list[Any]) -> list[Any]:
        from torch_pruning._helpers import _HybridIndex

        g, per = self.layer.groups, self.channels[self.layer] // self.layer.groups
        out: dict[Any, None] = {}
        for i in idxs:
            block = i.idx % per if self.to_output else i.idx // g
            for j in range(g):
                out[_HybridIndex(idx=block * g + j if self.to_output else j * per + block, root_idx=i.root_idx)] = None
        return list(out)


def shuffle_aware_pruner(module: Any, example: Any, **kwargs: Any) -> Any:
    """Torch-Pruning's MetaPruner on ``module`` that follows channel shuffles: each is made a
    :class:`ChannelShuffle` (:func:`channel_shuffles_as_modules`) whose channels Torch-Pruning prunes
    block by block (taken for an element-wise op, a shuffle would have channels removed on one side
    that are not the ones removed on the other)."""
    import torch_pruning as tp

    channel_shuffles_as_modules(module, example)
    channels: dict[Any, int] = {}
    shuffles = [m for m in module.modules() if isinstance(m, ChannelShuffle)]
    if shuffles:
        hooks = [m.register_forward_pre_hook(lambda m, args: channels.__setitem__(m, int(args[0].shape[1])))
                 for m in shuffles]
        with torch.no_grad():
            module(example)
        for h in hooks:
            h.remove()

    class ShufflePruner(tp.ops.DummyPruner):
        def prune_out_channels(self, layer: Any, idxs: list[int]) -> Any:
            channels[layer] -= len(set(idxs))  # one merged entry per shuffle and group, in output channels
            return layer

        prune_in_channels = prune_out_channels

    for m in shuffles:
        m.fused = True
    try:
        pruner = tp.pruner.MetaPruner(module, example, customized_pruners={ChannelShuffle: ShufflePruner()}, **kwargs)
    finally:
        for m in shuffles:
            m.fused = False
    split: list[Any] = []
    for layer, node in pruner.DG.module2node.items():
        if not isinstance(layer, ChannelShuffle):
            continue
        if len(node.inputs) != 1 or layer.groups < 1 or channels.get(layer, 0) % layer.groups:
            raise UnsupportedError("prune-structured: Torch-Pruning cannot follow a channel shuffle here "
                                   f"({channels.get(layer)} channels in {layer.groups} groups)")
        src = node.inputs[0]
        for dep in src.dependencies:
            if dep.target is node:
                dep.index_mapping[0] = _ShuffleIndexMapping(layer, channels, to_output=True)
        for dep in node.dependencies:
            if dep.target is src:
                dep.index_mapping[0] = _ShuffleIndexMapping(layer, channels, to_output=False)
        parts = [out for out in node.outputs if out.type in (tp.ops.OPTYPE.SPLIT, tp.ops.OPTYPE.SLICE)]
        if parts:
            # ShuffleNet's stride-1 blocks split the shuffled tensor in two, and Torch-Pruning 1.6 infers
            # the split's parts (and the concat's offsets) wrongly there, so its groups run past the
            # layers' widths or never end: the edges into the split are cut and every group reaching
            # such a shuffle is left whole (its channels cross split, concat and shuffle); what stays
            # inside a branch is pruned
            split.append(layer)
            node.dependencies = [d for d in node.dependencies if d.target not in parts]
            for out in parts:
                out.dependencies = [d for d in out.dependencies if d.target is not node]
    pruner.unprunable_channels = _leave_shuffled_groups_whole(pruner) if split else {}
    return pruner


def _leave_shuffled_groups_whole(pruner: Any) -> dict[str, int]:
    """Add to ``pruner``'s ignored layers every layer whose output channels are in a group that
    crosses a split, concat or shuffle (Torch-Pruning 1.6 gets a concat's offsets wrong once the
    split feeding it is cut too); return those layers' names → their kept output channels."""
    import torch_pruning as tp

    crossing = (tp.ops.OPTYPE.SPLIT, tp.ops.OPTYPE.SLICE, tp.ops.OPTYPE.CONCAT)
    names = {m: n for n, m in pruner.model.named_modules()}
    kept: dict[str, int] = {}
    total = 0
    for group in list(pruner.DG.get_all_groups(ignored_layers=pruner.ignored_layers,
                                               root_module_types=pruner.root_module_types)):
        if not any(dep.target.type in crossing or isinstance(dep.target.module, ChannelShuffle) for dep, _ in group):
            total += pruner.DG.get_out_channels(group[0][0].target.module) // pruner._get_channel_groups(group)
            continue
        for dep, _ in group:
            layer = dep.target.module
            if pruner.DG.is_out_channel_pruning_fn(dep.handler) and isinstance(layer, (nn.Conv2d, nn.Linear)):
                pruner.ignored_layers.append(layer)
                kept[names.get(layer, str(layer))] = int(getattr(layer, "out_channels", 0)
                                                         or getattr(layer, "out_features", 0))
    pruner.initial_total_channels = total  # global pruning ranks the prunable groups' channels only
    return kept
