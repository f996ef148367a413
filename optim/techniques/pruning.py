"""Pruning family: remove weights (unstructured) or whole channels/neurons (structured)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from optim.candidate import Candidate
from optim.config import TechniqueConfig
from optim.context import RunContext
from optim.registry import register_technique
from optim.techniques.base import Technique, require_torch


class PruneMagnitudeConfig(TechniqueConfig):
    sparsity: float = Field(
        0.5, ge=0.0, le=0.99,
        description="Fraction of prunable weights (Linear and Conv) set to zero.",
        json_schema_extra={"sweep": [0.5, 0.7, 0.8, 0.9, 0.95]},
    )
    scope: Literal["global", "layer"] = Field(
        "global",
        description="global: one magnitude threshold across all layers (layers prune unevenly, "
        "usually better accuracy); layer: the same sparsity in every layer.",
    )
    finetune_epochs: int = Field(0, ge=0, le=200, description="Epochs of fine-tuning with the mask fixed.")
    lr: float = Field(1e-3, gt=0.0, le=1.0, description="Fine-tuning learning rate (Adam).",
                      json_schema_extra={"search": (1e-5, 1e-2, "log")})


def prunable_layers(module) -> list[tuple[object, str]]:
    """(module, "weight") pairs that magnitude pruning may touch: Linear and Conv weights."""
    import torch.nn as nn

    return [(m, "weight") for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]


@register_technique
class PruneMagnitude(Technique):
    """Unstructured magnitude pruning with optional fine-tuning, made permanent.

    Han, Pool, Tran, Dally, "Learning both Weights and Connections for Efficient Neural
    Networks", NIPS 2015 (LeNet-300-100: 12× fewer weights at 1.59% error).
    """

    name = "prune-magnitude"
    family = "pruning"
    Config = PruneMagnitudeConfig
    summary = "Zero the smallest weights (global or per layer), optionally fine-tune."
    reference = "Han et al., NIPS 2015"
    needs_training_data = True
    sweep_field = "sparsity"

    def supports(self, candidate: Candidate) -> str | None:
        reason = require_torch(candidate)
        if reason:
            return reason
        if not prunable_layers(candidate.model):
            return "the model has no Linear or Conv layer to prune"
        return None

    def apply(self, candidate: Candidate, config: PruneMagnitudeConfig, ctx: RunContext) -> Candidate:
        import torch.nn.utils.prune as prune

        from optim.training import TrainSettings, fit

        module = candidate.clone_module()
        layers = prunable_layers(module)
        if config.sparsity > 0:
            if config.scope == "global":
                prune.global_unstructured(layers, pruning_method=prune.L1Unstructured, amount=config.sparsity)
            else:
                for m, name in layers:
                    prune.l1_unstructured(m, name, amount=config.sparsity)
        info: dict = {"target_sparsity": config.sparsity}
        if config.finetune_epochs:
            full = candidate.torch_module() if candidate.transform is None else None
            pipeline = module if full is not None else _with_transform(candidate.transform, module)
            result = fit(pipeline, ctx.data.train, ctx.data.val, ctx.data.task,
                         TrainSettings(epochs=config.finetune_epochs, lr=config.lr, seed=ctx.seed), ctx)
            info["learning_curve"] = result.curve_dicts()
        for m, name in layers:
            if prune.is_pruned(m):
                prune.remove(m, name)  # make the zeros permanent: a plain weight tensor again
        module.eval()
        info["achieved_sparsity"] = weight_sparsity(module)
        return candidate.derive(self.step(config), model=module, info=info)


def weight_sparsity(module) -> float:
    """Share of zeros among the prunable weights."""
    total = zeros = 0
    for m, name in prunable_layers(module):
        w = getattr(m, name)
        total += w.numel()
        zeros += int((w == 0).sum())
    return zeros / total if total else 0.0


def _with_transform(transform, module):
    import torch.nn as nn

    # The transform is frozen input preprocessing; fine-tuning sees transformed inputs through it.
    for p in transform.parameters():
        p.requires_grad_(False)
    return nn.Sequential(transform, module)
