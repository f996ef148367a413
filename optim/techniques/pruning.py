"""Pruning family: remove weights (unstructured) or whole channels/neurons (structured)."""

from __future__ import annotations

import weakref
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from optim.candidate import Candidate
from optim.config import TechniqueConfig, lr_field
from optim.context import RunContext
from optim.errors import ConfigError, UnsupportedError
from optim.registry import register_technique
from optim.techniques.base import Technique, require_torch

if TYPE_CHECKING:
    import torch.nn as nn


class PruneMagnitudeConfig(TechniqueConfig):
    sparsity: float = Field(
        0.5, ge=0.0, le=0.99,
        description="Fraction of prunable weights (Linear and Conv) set to zero at the end.",
        json_schema_extra={"sweep": [0.5, 0.7, 0.8, 0.9, 0.95]},
    )
    scope: Literal["lamp", "global", "layer", "std"] = Field(
        "lamp",
        description="lamp (default): one threshold on layer-adaptive magnitude scores (Lee et al., ICLR "
        "2021), which keeps small layers such as the classifier denser (digits-mlp at 90% + 10 epochs: "
        "0.9694 vs 0.9583 global, 0.9500 layer); global: one magnitude threshold across all layers (a "
        "layer with small weights can be wiped out); layer: the same sparsity in every layer; std: "
        "one threshold in units of each layer's weight standard deviation (Han et al. 2015's rule "
        "|w| < q·σ).",
    )
    finetune_epochs: int = Field(0, ge=0, le=200,
                                 description="Epochs of fine-tuning with the mask fixed, after each pruning step.")
    lr: float = lr_field()
    steps: int = Field(
        1, ge=1, le=20,
        description="Prune → fine-tune rounds that reach the target (Han et al. 2015's iterative "
        "schedule). Round k keeps (1 - sparsity)^(k/steps) of the weights, so each round removes "
        "the same share of what is left.",
    )


def weight_layer_types() -> tuple[type[nn.Module], ...]:
    """The layers whose weights pruning and compression edit: Linear and Conv."""
    import torch.nn as nn

    return (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def weight_tensors(module: Any) -> list[tuple[str, Any, str]]:
    """(layer name, layer, attribute) of every weight the weight techniques (magnitude pruning,
    cluster, Huffman) edit: each Linear/Conv ``weight`` and each GRU/LSTM/RNN layer's input and
    recurrent matrices (``weight_ih_l0``, ``weight_hh_l0``, ...), wherever they sit in the graph."""
    import torch.nn as nn

    out: list[tuple[str, Any, str]] = []
    for name, m in module.named_modules():
        if isinstance(m, weight_layer_types()):
            out.append((name, m, "weight"))
        elif isinstance(m, nn.RNNBase):
            out += [(name, m, p) for p, _ in m.named_parameters(recurse=False) if p.startswith("weight_")]
    return out


def weight_key(name: str, attr: str) -> str:
    """The state-dict key of ``attr`` of the layer called ``name``."""
    return f"{name}.{attr}" if name else attr


def prunable_layers(module: Any) -> list[tuple[Any, str]]:
    """(module, attribute) pairs magnitude pruning may touch: Linear, Conv and GRU/LSTM weights."""
    return [(m, attr) for _, m, attr in weight_tensors(module)]


@register_technique
class PruneMagnitude(Technique[PruneMagnitudeConfig]):
    """Unstructured magnitude pruning, optionally iterative with fine-tuning, made permanent.

    Han, Pool, Tran, Dally, "Learning both Weights and Connections for Efficient Neural
    Networks", NIPS 2015 (LeNet-300-100: 12× fewer weights at 1.59% error). The zeros only save
    space once stored sparsely: ``info["size_bytes_sparse"]`` is the length of a real
    relative-index encoding (Deep Compression, ICLR 2016, Fig. 3) with float32 values.
    """

    name = "prune-magnitude"
    family = "pruning"
    Config = PruneMagnitudeConfig
    summary = "Zero the smallest weights (global or per layer), optionally in rounds with fine-tuning."
    reference = "Han et al., NIPS 2015"
    needs_training_data = True
    sweep_field = "sparsity"

    def supports(self, candidate: Candidate) -> str | None:
        reason = require_torch(candidate)
        if reason:
            return reason
        if not prunable_layers(candidate.model):
            return "the model has no Linear, Conv, GRU or LSTM layer to prune"
        return None

    def apply(self, candidate: Candidate, config: PruneMagnitudeConfig, ctx: RunContext) -> Candidate:
        import torch

        module = candidate.clone_module()
        weights = [getattr(m, name) for m, name in prunable_layers(module)]
        masks = [torch.ones_like(w, dtype=torch.bool) for w in weights]
        curve: list[dict] = []
        for k in range(1, config.steps + 1):
            ctx.check_cancelled()
            target = 1.0 - (1.0 - config.sparsity) ** (k / config.steps)
            masks = magnitude_masks(weights, target, config.scope)
            apply_masks(weights, masks)
            if config.finetune_epochs:
                ctx.progress(
                    f"prune step {k}/{config.steps}: sparsity {target:.3f}, fine-tuning", (k - 1) / config.steps
                )
                result = finetune(candidate, module, config.finetune_epochs, config.lr, ctx,
                                  after_step=partial(apply_masks, weights, masks))
                curve += _renumber(result.curve_dicts(), k, len(curve))
        module.eval()
        info: dict[str, Any] = {"target_sparsity": config.sparsity, "steps": config.steps,
                                "achieved_sparsity": weight_sparsity(module),
                                "layer_sparsity": layer_sparsity(module)}
        if curve:
            info["learning_curve"] = curve
        info.update(sparse_size_info(candidate.transform, module))
        return candidate.derive(self.step(config), model=module, info=info)


def magnitude_masks(weights: list[Any], sparsity: float, scope: str) -> list[Any]:
    """Keep-masks zeroing the ``sparsity`` share of smallest scores: |w| over all layers or per
    layer, |w|/σ_layer, or LAMP scores, over all layers.

    Exact counts (ties broken by position) so already-zero weights stay pruned in later rounds.
    """
    import torch

    def keep_mask(flat_abs: Any) -> Any:
        n_prune = int(round(sparsity * flat_abs.numel()))
        mask = torch.ones(flat_abs.numel(), dtype=torch.bool)
        if n_prune:
            mask[torch.argsort(flat_abs, stable=True)[:n_prune]] = False
        return mask

    with torch.no_grad():
        if scope == "layer":
            return [keep_mask(w.abs().reshape(-1)).reshape(w.shape) for w in weights]
        if scope == "lamp":
            scores = [_lamp_scores(w) for w in weights]
        else:
            scores = [w.abs() / (w.std().clamp_min(1e-12) if scope == "std" else 1.0) for w in weights]
        flat = keep_mask(torch.cat([s.reshape(-1) for s in scores]))
        out, start = [], 0
        for w in weights:
            out.append(flat[start:start + w.numel()].reshape(w.shape))
            start += w.numel()
        return out


def _lamp_scores(w: Any) -> Any:
    """LAMP score of each weight: w² over the sum of w² of the weights at least as large in its layer."""
    import torch

    sq = w.detach().reshape(-1) ** 2
    order = torch.argsort(sq, stable=True)
    sorted_sq = sq[order]
    tail = torch.flip(torch.cumsum(torch.flip(sorted_sq, [0]), 0), [0])  # sum of this and all larger
    scores = torch.empty_like(sq)
    scores[order] = sorted_sq / tail.clamp_min(1e-30)
    return scores.reshape(w.shape)


def apply_masks(weights: list[Any], masks: list[Any]) -> None:
    import torch

    with torch.no_grad():
        for w, m in zip(weights, masks):
            w.mul_(m)


def finetune(candidate: Candidate, module: Any, epochs: int, lr: float, ctx: RunContext, **fit_kwargs: Any) -> Any:
    """Fine-tune ``module`` (the candidate's model, edited) through the candidate's transform.

    The transform is frozen preprocessing; the one training loop (optim.training.fit) does the work.
    """
    from optim.training import TrainSettings, fit

    pipeline = module if candidate.transform is None else _with_transform(candidate.transform, module)
    return fit(pipeline, ctx.data.train, ctx.data.val, ctx.data.task,
               TrainSettings(epochs=epochs, lr=lr, seed=ctx.seed), ctx, **fit_kwargs)


def _renumber(records: list[dict], step: int, done: int) -> list[dict]:
    """One learning curve across rounds: epochs numbered on, each record tagged with its round."""
    return [dict(r, step=step, epoch=done + i) for i, r in enumerate(records, start=1)]


def weight_sparsity(module: Any) -> float:
    """Share of zeros among the prunable weights."""
    total = zeros = 0
    for m, name in prunable_layers(module):
        w = getattr(m, name)
        total += w.numel()
        zeros += int((w == 0).sum())
    return zeros / total if total else 0.0


def layer_sparsity(module: Any) -> dict[str, float]:
    """Share of zeros per prunable weight: by module name (Linear/Conv), ``name.weight_ih_l0`` (RNN)."""
    return {name if attr == "weight" else weight_key(name, attr):
            round(float((getattr(m, attr) == 0).float().mean()), 4) for name, m, attr in weight_tensors(module)}


def sparse_size_info(transform: Any, module: Any) -> dict[str, int]:
    """``size_bytes_sparse``: the whole state (transform and model) with the prunable weights in
    Deep Compression's relative-index layout (float32 values), next to the dense float bytes."""
    import torch.nn as nn

    from optim.techniques._weight_codec import encode_state, module_state

    whole = module if transform is None else nn.Sequential(transform, module)
    state = module_state(whole)
    coded: dict[str, Literal["codebook", "float"]] = dict.fromkeys(
        (weight_key(name, attr) for name, _, attr in weight_tensors(whole)), "float")
    blob, _ = encode_state(state, coded, "fixed")
    return {"size_bytes_sparse": len(blob), "size_bytes_dense_params": int(sum(a.nbytes for a in state.values()))}


def _with_transform(transform: Any, module: Any) -> Any:
    import copy

    import torch.nn as nn

    # The transform is frozen input preprocessing (copied so the parent candidate's stays as it was).
    transform = copy.deepcopy(transform)
    for p in transform.parameters():
        p.requires_grad_(False)
    return nn.Sequential(transform, module)


# --- structured ------------------------------------------------------------------------------
class PruneStructuredConfig(TechniqueConfig):
    sparsity: float = Field(
        0.5, ge=0.0, le=0.9,
        description="Fraction of channels (Conv) and neurons (Linear) removed from every prunable "
        "layer (Torch-Pruning's pruning_ratio). MACs drop by roughly 1-(1-sparsity)² in the middle "
        "of a network, since both a layer's inputs and outputs shrink.",
        json_schema_extra={"sweep": [0.2, 0.3, 0.5, 0.7]},
    )
    importance: Literal["l1", "l2", "bn_scale", "taylor"] = Field(
        "l1",
        description="How channels are scored: l1/l2 norm of their weights (Li et al. 2017), "
        "batch-norm scale |γ| (Liu et al. 2017, needs BatchNorm), or first-order Taylor "
        "|w·∂L/∂w| on a training batch (Molchanov et al. 2019).",
    )
    global_pruning: bool = Field(
        False, description="Rank channels across layers (uneven widths) instead of the same ratio per layer.")
    finetune_epochs: int = Field(3, ge=0, le=200, description="Fine-tuning epochs after each pruning step.")
    lr: float = lr_field()
    steps: int = Field(1, ge=1, le=20,
                       description="Prune → fine-tune rounds reaching the target ratio (linear schedule).")
    round_to: int = Field(1, ge=1, le=64,
                          description="Keep channel counts a multiple of this (8 or 16 suits SIMD kernels).")


@register_technique
class PruneStructured(Technique[PruneStructuredConfig]):
    """Structured pruning: whole channels and neurons are removed, so the layers get physically
    smaller and MACs and latency drop (unlike unstructured zeros).

    Dependencies between layers (a conv's output channels and the next layer's inputs, batch norm,
    residual additions, concatenations) are tracked by Torch-Pruning's DepGraph: Fang et al.,
    "DepGraph: Towards Any Structural Pruning", CVPR 2023 (ResNet-56 on CIFAR-10: 2.13× fewer MACs
    at 93.53 → 93.77%). The classifier layer's outputs are never pruned.
    """

    name = "prune-structured"
    family = "pruning"
    Config = PruneStructuredConfig
    summary = "Remove whole channels/neurons (Torch-Pruning DepGraph) so MACs and latency really drop."
    reference = "Fang et al., DepGraph, CVPR 2023; Li et al., ICLR 2017"
    needs_training_data = True
    sweep_field = "sparsity"
    fast_config = {"finetune_epochs": 1}

    def supports(self, candidate: Candidate) -> str | None:
        reason = require_torch(candidate)
        if reason:
            return reason
        if len(_structured_targets(candidate.model)) < 2:
            import torch.nn as nn

            rnn = sorted({type(m).__name__ for m in candidate.model.modules() if isinstance(m, nn.RNNBase)})
            if rnn:
                return (f"{'/'.join(rnn)} layers are not prunable by channel (Torch-Pruning has no rule for their "
                        "gates) and the model's only Linear/Conv layer is its output (the classes are kept); "
                        "prune-magnitude zeroes GRU/LSTM weights")
            return ("it removes channels between two layers and the model has fewer than two Linear/Conv "
                    "layers (the last one's outputs are the classes and are kept)")
        return _dry_run(candidate)

    def apply(self, candidate: Candidate, config: PruneStructuredConfig, ctx: RunContext) -> Candidate:
        import torch
        import torch.nn as nn
        import torch_pruning as tp

        from optim.techniques._channel_shuffle import shuffle_aware_pruner

        module = candidate.clone_module().eval()
        if config.importance == "bn_scale" and not any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                                                       for m in module.modules()):
            raise ConfigError("prune-structured: importance='bn_scale' needs BatchNorm layers and this model "
                              "has none; use importance=l1, l2 or taylor.")
        example = torch.zeros((2, *candidate.input_shape))
        if candidate.transform is not None:
            with torch.no_grad():
                example = candidate.transform(example)
        importance = {
            "l1": lambda: tp.importance.GroupMagnitudeImportance(p=1),
            "l2": lambda: tp.importance.GroupMagnitudeImportance(p=2),
            "bn_scale": lambda: tp.importance.BNScaleImportance(),
            "taylor": lambda: tp.importance.GroupTaylorImportance(),
        }[config.importance]()
        macs_before, params_before = tp.utils.count_ops_and_params(module, example)
        pruner = shuffle_aware_pruner(
            module, example, importance=importance, pruning_ratio=config.sparsity,
            iterative_steps=config.steps, global_pruning=config.global_pruning,
            ignored_layers=[_structured_targets(module)[-1]],
            round_to=config.round_to if config.round_to > 1 else None,
        )
        curve: list[dict] = []
        for k in range(1, config.steps + 1):
            ctx.check_cancelled()
            if config.importance == "taylor":
                _accumulate_gradients(candidate, module, ctx)
            pruner.step()
            module.zero_grad(set_to_none=True)
            _check_runs(module, example)
            if config.finetune_epochs:
                ctx.progress(f"structured step {k}/{config.steps}: fine-tuning", (k - 1) / config.steps)
                result = finetune(candidate, module, config.finetune_epochs, config.lr, ctx)
                curve += _renumber(result.curve_dicts(), k, len(curve))
        module.eval()
        for p in module.parameters():
            p.requires_grad_(True)
        macs_after, params_after = tp.utils.count_ops_and_params(module, example)
        info: dict[str, Any] = {
            "target_sparsity": config.sparsity, "steps": config.steps,
            "macs_before": int(macs_before), "macs_after": int(macs_after),
            "params_before": int(params_before), "params_after": int(params_after),
            "macs_ratio": round(macs_before / max(1, macs_after), 3),
            "layer_widths": {name: _width(m) for name, m in module.named_modules()
                             if isinstance(m, weight_layer_types())},
        }
        if pruner.unprunable_channels:
            info["unprunable_channels"] = pruner.unprunable_channels
            info["note"] = (f"{sum(pruner.unprunable_channels.values())} output channels of "
                            f"{len(pruner.unprunable_channels)} layers were kept whole: they cross a channel "
                            "shuffle whose output is split (ShuffleNet's stride-1 blocks), whose split sizes "
                            "Torch-Pruning 1.6 cannot follow; the channels inside each branch were pruned")
        if curve:
            info["learning_curve"] = curve
        return candidate.derive(self.step(config), model=module, info=info)


def width_scaled(module: Any, example: Any, max_params: int, seed: int = 0) -> tuple[Any, float]:
    """A freshly initialised copy of ``module`` (any graph) narrowed by structured pruning until it
    has at most ``max_params`` parameters: every prunable layer keeps the same share of its
    channels, the classifier's outputs are kept. Returns ``(copy, kept channel share)``.

    Raises ConfigError naming what stopped Torch-Pruning (e.g. a layer it cannot narrow).
    """
    import copy

    import torch
    import torch_pruning as tp

    from optim.techniques._channel_shuffle import shuffle_aware_pruner
    from optim.techniques._train_common import count_params, reinitialize

    total = count_params(module)
    keep = min(1.0, (max_params / max(1, total)) ** 0.5)
    for _ in range(6):
        student = copy.deepcopy(module).eval()
        targets = _structured_targets(student)
        if len(targets) < 2:
            raise ConfigError("it has fewer than two Linear/Conv layers to narrow")
        try:
            pruner = shuffle_aware_pruner(student, example, importance=tp.importance.GroupMagnitudeImportance(p=1),
                                          pruning_ratio=min(0.95, 1.0 - keep), ignored_layers=[targets[-1]])
            pruner.step()
            with torch.no_grad():
                student(example)
        except Exception as err:
            raise ConfigError(f"Torch-Pruning could not narrow its graph ({type(err).__name__}: "
                              f"{str(err).splitlines()[0][:200] if str(err) else ''})") from None
        params = count_params(student)
        if params <= max_params or keep <= 0.05:
            break
        keep = max(0.05, keep * (max_params / params) ** 0.5 * 0.98)
    if count_params(student) > max_params:
        raise ConfigError(f"the narrowest copy Torch-Pruning made has {count_params(student):,} parameters, "
                          f"more than {max_params:,}")
    for p in student.parameters():
        p.requires_grad_(True)
    return reinitialize(student, seed), keep


_DRY_RUNS: weakref.WeakKeyDictionary[Any, str | None] = weakref.WeakKeyDictionary()


def _dry_run(candidate: Candidate) -> str | None:
    """Why Torch-Pruning cannot narrow this graph, found by pruning a copy by a quarter (cached per
    model); None when the pruned copy still runs."""
    import copy

    import torch
    import torch_pruning as tp

    from optim.techniques._channel_shuffle import shuffle_aware_pruner

    model = candidate.model
    if model in _DRY_RUNS:
        return _DRY_RUNS[model]
    example = torch.zeros((2, *candidate.input_shape))
    reason = None
    try:
        if candidate.transform is not None:
            with torch.no_grad():
                example = candidate.transform(example)
        module = copy.deepcopy(model).eval()
        pruner = shuffle_aware_pruner(module, example, importance=tp.importance.GroupMagnitudeImportance(p=1),
                                      pruning_ratio=0.25, ignored_layers=[_structured_targets(module)[-1]])
        pruner.step()
        _check_runs(module, example)
    except UnsupportedError as err:
        reason = str(err).removeprefix("prune-structured: ")
    except Exception as err:
        reason = (f"Torch-Pruning could not follow the model's graph ({type(err).__name__}: "
                  f"{str(err).splitlines()[0][:160] if str(err) else ''})")
    _DRY_RUNS[model] = reason
    return reason


def _check_runs(module: Any, example: Any) -> None:
    """The pruned graph must still run: a reshape to a fixed size recorded with its numbers ties
    channel counts that Torch-Pruning cannot see (channel shuffles are made to read their sizes,
    :mod:`optim.techniques._channel_shuffle`); name it instead of failing later."""
    import torch

    try:
        with torch.no_grad():
            module(example)
    except RuntimeError as err:
        raise UnsupportedError(
            "prune-structured: after removing channels the model no longer runs ("
            f"{str(err).splitlines()[0][:160]}): its graph fixes a tensor shape (a reshape or view with "
            "recorded sizes) that ties channel counts together. Use "
            "prune-magnitude, or export the model so that reshapes use -1 / flatten.") from None


def _structured_targets(module: Any) -> list[Any]:
    return [m for m in module.modules() if isinstance(m, weight_layer_types())]


def _width(layer: Any) -> int:
    return int(getattr(layer, "out_features", None) or layer.out_channels)


def _accumulate_gradients(candidate: Candidate, module: Any, ctx: RunContext, n: int = 256) -> None:
    """Gradients of the task loss on a training sample, which Taylor importance reads."""
    import numpy as np
    import torch

    from optim.training import default_loss

    if ctx.data is None or len(ctx.data.train) == 0:
        raise UnsupportedError("prune-structured: importance='taylor' needs training data (gradients of the loss).")
    sample = ctx.data.train.take(n, seed=ctx.seed)
    X = torch.from_numpy(np.asarray(sample.X, np.float32))
    y = torch.from_numpy(np.asarray(sample.y))
    y = y.long() if ctx.data.task == "classification" else y.float()
    if candidate.transform is not None:
        with torch.no_grad():
            X = candidate.transform(X)
    module.zero_grad(set_to_none=True)
    module.eval()  # batch-norm statistics stay as trained
    default_loss(ctx.data.task)(module(X), y, X).backward()
