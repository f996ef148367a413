"""Optimizer choice: retrain a model with a chosen optimizer, learning-rate schedule and clipping.

A sweep ``retrain:optimizer=sgd|momentum|nesterov|adam|adamw|rmsprop|adagrad|lbfgs`` gives one
candidate per optimizer, every one from the same initial weights and the same batch order, with
its learning curve and the epochs / seconds it took to reach a target validation metric.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from optim.candidate import Candidate
from optim.config import TechniqueConfig
from optim.context import RunContext
from optim.errors import ConfigError
from optim.registry import register_technique
from optim.techniques._train_common import run_threads
from optim.techniques.base import Technique, require_torch

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad", "lbfgs")

#: The learning rate an optimizer gets when ``lr`` is not set: the library or paper default
#: (Adam 1e-3, Kingma & Ba 2015; PyTorch's Adagrad 1e-2 and L-BFGS 1; RMSprop 1e-3 as in
#: Keras), and 0.1 for plain SGD / 0.01 with momentum (the same effective step, 0.01 / (1 − 0.9)).
#: One shared lr would make a sweep compare learning rates, not optimizers.
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.01, "nesterov": 0.01, "adam": 1e-3, "adamw": 1e-3,
              "rmsprop": 1e-3, "adagrad": 1e-2, "lbfgs": 1.0}


class RetrainConfig(TechniqueConfig):
    optimizer: Literal["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad", "lbfgs"] = Field(
        "adam",
        description="sgd; SGD with momentum or Nesterov momentum; Adam; AdamW (decoupled weight decay); "
        "RMSprop; Adagrad; L-BFGS (quasi-Newton, strong-Wolfe line search, 5 iterations a batch).",
        json_schema_extra={"sweep": list(OPTIMIZERS),
                           "search": ["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad"]},
    )
    lr: float | None = Field(
        None, gt=0.0, le=10.0,
        description="Learning rate; empty: the optimizer's usual default (Adam 1e-3, SGD 0.1, momentum/Nesterov "
        "0.01, RMSprop 1e-3, Adagrad 1e-2, L-BFGS 1).",
        json_schema_extra={"search": [1e-4, 0.5, "log"]},
    )
    epochs: int = Field(20, ge=1, le=1000, description="Training epochs.",
                        json_schema_extra={"search": [2, 30]})
    batch_size: int = Field(64, ge=1, le=8192, description="Mini-batch size.",
                            json_schema_extra={"search": [16, 256, "log"]})
    weight_decay: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="L2 penalty (decoupled for AdamW; 0 means 0.01 for AdamW).",
        json_schema_extra={"search": [1e-6, 1e-2, "log"]},
    )
    momentum: float | None = Field(
        None, ge=0.0, lt=1.0, description="Momentum for momentum / Nesterov (default 0.9) and RMSprop (default 0)."
    )
    scheduler: Literal["none", "step", "exponential", "cosine", "onecycle"] = Field(
        "none",
        description="Learning-rate schedule over the run: step (÷10 at 1/3 and 2/3), exponential (to 1%), "
        "cosine (to 0), onecycle (Smith's warm-up then anneal).",
        json_schema_extra={"search": ["none", "step", "exponential", "cosine", "onecycle"]},
    )
    warmup: int = Field(0, ge=0, le=100, description="Epochs of linear learning-rate warm-up before the schedule.")
    clip_norm: float | None = Field(
        None, gt=0.0, le=1e6, description="Clip the gradients' global L2 norm to this value."
    )
    clip_value: float | None = Field(None, gt=0.0, le=1e6, description="Clip every gradient element to ±this value.")
    init: Literal["same", "finetune"] = Field(
        "same",
        description="same: re-initialise from the run's seed (every optimizer starts from the same weights); "
        "finetune: start from the model's trained weights.",
    )
    width: float = Field(1.0, gt=0.0, le=8.0,
                         description="Multiply every hidden layer's width (init=same only; Sequential MLPs and CNNs).",
                         json_schema_extra={"search": [0.25, 2.0, "log"]})
    target_metric: float | None = Field(
        None, description="Validation metric counted as reached (epochs and seconds to target); "
        "empty: the input model's own validation metric.")
    stop_at_target: bool = Field(False, description="Stop training at the first epoch that reaches the target.")
    patience: int | None = Field(None, ge=1, le=1000,
                                 description="Stop after this many epochs without a better validation metric.")


def settings_for(config: RetrainConfig, seed: int, target: float | None = None):
    """The :class:`optim.training.TrainSettings` a retrain config stands for."""
    from optim.training import TrainSettings

    momentum = config.momentum
    if momentum is None:
        momentum = 0.0 if config.optimizer == "rmsprop" else 0.9
    return TrainSettings(
        epochs=config.epochs, batch_size=config.batch_size, optimizer=config.optimizer,
        lr=config.lr if config.lr is not None else DEFAULT_LR[config.optimizer],
        weight_decay=config.weight_decay, momentum=momentum, scheduler=config.scheduler,
        warmup_epochs=config.warmup, clip_norm=config.clip_norm, clip_value=config.clip_value,
        patience=config.patience, target_metric=target if config.stop_at_target else None, seed=seed,
    )


def time_to_target(curve: list[dict], target: float) -> tuple[int | None, float | None]:
    """(epochs, seconds) until the validation metric first reached ``target``; (None, None) if never."""
    seconds = 0.0
    for rec in curve:
        seconds += rec["seconds"]
        if rec["val_metric"] >= target:
            return int(rec["epoch"]), seconds
    return None, None


@register_technique
class Retrain(Technique[RetrainConfig]):
    """Retrain with a chosen optimizer, schedule and gradient clipping; report time to a target.

    Kingma & Ba, "Adam", ICLR 2015; Wilson et al., "The Marginal Value of Adaptive Gradient
    Methods", NIPS 2017 (SGD 7.65% vs 9.60% error on CIFAR-10); Loshchilov & Hutter (AdamW,
    cosine annealing), ICLR 2019 / 2017; Smith, "Super-Convergence" (one-cycle), 2018; Pascanu
    et al. (gradient clipping), ICML 2013; Liu & Nocedal (L-BFGS), 1989.
    """

    name = "retrain"
    family = "optimizer"
    Config = RetrainConfig
    summary = "Retrain with SGD/momentum/Nesterov/Adam/AdamW/RMSprop/Adagrad/L-BFGS, LR schedules, clipping."
    reference = "Kingma & Ba, ICLR 2015; Wilson et al., NIPS 2017"
    needs_training_data = True
    sweep_field = "optimizer"
    fast_config = {"epochs": 2}

    def supports(self, candidate: Candidate) -> str | None:
        return require_torch(candidate)

    @run_threads
    def apply(self, candidate: Candidate, config: RetrainConfig, ctx: RunContext) -> Candidate:
        from optim.evaluation.energy import EnergyMeter
        from optim.techniques._train_common import (
            count_params,
            fold_target_scale,
            frozen_pipeline,
            reinitialize,
            scale_widths,
            scaled_split,
            target_scale,
            val_metric,
        )
        from optim.training import fit

        if config.width != 1.0 and config.init != "same":
            raise ConfigError(
                f"retrain: width={config.width:g} needs init=same (a wider or narrower network has no trained "
                f"weights to fine-tune); got init={config.init!r}."
            )
        if config.scheduler == "onecycle" and config.warmup:
            raise ConfigError(
                f"retrain: warmup={config.warmup} with scheduler=onecycle: one-cycle has its own warm-up; set warmup=0."
            )
        data = ctx.data
        baseline_val = val_metric(candidate, data.val, data.task)
        target = config.target_metric if config.target_metric is not None else baseline_val
        module = candidate.clone_module()
        if config.init == "same":
            module = (
                scale_widths(module, config.width, ctx.seed) if config.width != 1.0 else reinitialize(module, ctx.seed)
            )
        settings = settings_for(config, ctx.seed, target)
        ctx.log(f"retrain: {config.optimizer} lr={settings.lr:g} scheduler={config.scheduler} "
                f"{config.epochs} epochs from {'fresh' if config.init == 'same' else 'trained'} weights")
        # Fresh weights learn regression targets z-scored (R², the metric, is unchanged by that).
        scale = target_scale(data.task, data.train.y, module) if config.init == "same" else None
        with EnergyMeter.shared(ctx.country_iso_code).cost() as cost:  # nests inside the run's own block
            result = fit(frozen_pipeline(candidate.transform, module), scaled_split(data.train, scale),
                         scaled_split(data.val, scale), data.task, settings, ctx)
        fold_target_scale(module, scale)
        curve = result.curve_dicts()
        epochs_to_target, seconds_to_target = time_to_target(curve, target)
        energy_j = cost.energy_j if math.isfinite(cost.energy_j) else None
        # CodeCarbon bills whole tasks, not epochs: energy to target is the training energy pro
        # rata of the time to target (training epochs run at a steady load).
        energy_to_target_j = (
            energy_j * seconds_to_target / result.seconds
            if energy_j is not None and seconds_to_target is not None and result.seconds > 0
            else None
        )
        info = {
            "learning_curve": curve,
            "optimizer": config.optimizer,
            "lr": settings.lr,
            "scheduler": config.scheduler,
            "init": config.init,
            "target_metric": target,
            "target_source": "setting" if config.target_metric is not None else "baseline validation metric",
            "epochs_to_target": epochs_to_target,
            "seconds_to_target": seconds_to_target,
            "epochs_run": result.epochs_run,
            "train_seconds": result.seconds,
            "train_energy_j": energy_j,
            "energy_to_target_j": energy_to_target_j,
            "train_energy_method": cost.method,
            "best_val_metric": result.best_val_metric,
            "final_val_metric": curve[-1]["val_metric"] if curve else None,
            "baseline_val_metric": baseline_val,
        }
        if config.width != 1.0:
            info["width"] = config.width
            info["trained_params"] = count_params(module)
        return candidate.derive(self.step(config, label=config.optimizer), model=module, info=info)
