"""Knowledge distillation: train a smaller student on the teacher's softened outputs.

The teacher is the candidate the step is applied to. The student is a width-scaled copy of the
teacher (``student=scaled``, sized by ``params_ratio``), a bundled architecture, or
``torchvision:NAME``. The same student is also trained without the teacher (``alpha=0``: hard
labels only) on the same data and budget, so the results show what the teacher itself bought.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import Field

from optim.candidate import Candidate, Step
from optim.config import TechniqueConfig
from optim.context import RunContext
from optim.errors import ConfigError
from optim.registry import register_technique
from optim.techniques._train_common import run_threads
from optim.techniques.base import Technique, require_torch


class DistillConfig(TechniqueConfig):
    student: str = Field(
        "scaled",
        description="scaled: the teacher's own architecture with every hidden width scaled to params_ratio (a "
        "Sequential rebuilt narrower, any other graph narrowed by structured pruning, else an MLP of that size); "
        "or a bundled architecture (digits-mlp, digits-cnn, breast-cancer-mlp, ...) or torchvision:NAME.",
    )
    params_ratio: float = Field(
        0.14, gt=0.0, le=4.0,
        description="Student parameters / teacher parameters, for student=scaled (0.14 ≈ 1/7, TinyBERT's 7.5×).",
        json_schema_extra={"sweep": [0.05, 0.1, 0.14, 0.25, 0.5], "search": [0.03, 0.5, "log"]},
    )
    temperature: float = Field(
        4.0,
        gt=0.0,
        le=100.0,
        description="Softmax temperature T of the soft targets (Hinton et al. used up to 20); the soft loss is scaled "
            "by T².",
        json_schema_extra={"search": [1.0, 20.0, "log"]},
    )
    alpha: float = Field(
        0.7, ge=0.0, le=1.0, title="Teacher loss weight",
        description="Weight of the soft (teacher) loss; 1 − alpha weighs the hard-label loss. 0 = no teacher.",
        json_schema_extra={"search": [0.1, 0.95]},
    )
    hint_weight: float = Field(
        0.0, ge=0.0, le=100.0,
        description="Weight of a FitNets hint loss: MSE between the teacher's last hidden features and the "
        "student's (through a learned linear map). 0 = off.",
    )
    epochs: int = Field(30, ge=1, le=1000, description="Training epochs for each student.",
                        json_schema_extra={"search": [5, 60]})
    lr: float = Field(3e-3, gt=0.0, le=1.0, description="Adam learning rate.",
                      json_schema_extra={"search": [1e-4, 3e-2, "log"]})
    batch_size: int = Field(64, ge=1, le=8192, description="Mini-batch size.")
    data_fraction: float = Field(
        1.0, gt=0.0, le=1.0,
        description="Share of the training split the students see (Hinton's small-data experiment used 3%); "
        "the teacher is used as it is.",
    )
    require_smaller: bool = Field(True, description="Refuse a student with as many parameters as the teacher or more.")
    no_teacher: bool = Field(True, description="Also train the same student without the teacher (same data, "
                                               "epochs and initial weights) as a control candidate.")


@register_technique
class Distill(Technique[DistillConfig]):
    """Knowledge distillation with temperature-softened teacher outputs.

    Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", 2015 (MNIST: 146
    errors alone → 74 with soft targets; speech with 3% of the data: 44.5% → 57.0%). Hint loss:
    Romero et al., "FitNets", ICLR 2015. Regression: the soft target is the teacher's prediction.
    """

    name = "distill"
    family = "distillation"
    Config = DistillConfig
    summary = "Train a smaller student on the teacher's soft targets (plus the same student without teacher)."
    reference = "Hinton, Vinyals, Dean 2015"
    needs_training_data = True
    sweep_field = "params_ratio"
    fast_config = {"epochs": 2}

    def supports(self, candidate: Candidate) -> str | None:
        return require_torch(candidate)

    @run_threads
    def apply(self, candidate: Candidate, config: DistillConfig, ctx: RunContext) -> list[Candidate]:
        from optim.techniques._train_common import (
            count_params,
            fold_target_scale,
            frozen_pipeline,
            layer_widths,
            scaled_split,
            sub_context,
            subset,
            target_scale,
            val_metric,
        )
        from optim.training import TrainSettings, fit

        data = ctx.data
        teacher_params = count_params(candidate.model)
        student, student_desc = self._student(candidate, config, ctx)
        student_params = count_params(student)
        if config.require_smaller and student_params >= teacher_params:
            raise ConfigError(
                f"distill: student={config.student!r} ({student_desc}) has {student_params:,} parameters, not fewer "
                f"than the teacher's {teacher_params:,}; rule: require_smaller=true needs a smaller student. "
                "Choose a smaller student (or params_ratio < 1), or set require_smaller=false."
            )
        train = subset(data.train, config.data_fraction, ctx.seed, data.task)
        # The students start from fresh weights: regression trains on z-scored targets (the
        # teacher's outputs too), folded back into their last layer afterwards.
        scale = target_scale(data.task, train.y, student)
        train, val = scaled_split(train, scale), scaled_split(data.val, scale)
        settings = TrainSettings(epochs=config.epochs, lr=config.lr, batch_size=config.batch_size, seed=ctx.seed)
        teacher = copy.deepcopy(candidate.torch_module()).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        common = {
            "teacher_params": teacher_params, "student_params": student_params,
            "params_ratio_actual": student_params / max(1, teacher_params), "student_arch": student_desc,
            "student_widths": layer_widths(student), "n_train": len(train),
            "data_fraction": config.data_fraction, "teacher_val_metric": val_metric(candidate, data.val, data.task),
        }
        control = copy.deepcopy(student)  # same initial weights for the no-teacher run
        with_teacher = config.alpha > 0 or config.hint_weight > 0
        out: list[Candidate] = []
        results = {}
        if with_teacher:
            loss_fn, extra, hooks = distillation_loss(teacher, student, data.task, config, scale)
            sub = sub_context(ctx, 0.0, 0.5 if config.no_teacher else 1.0, "distilled student: ")
            try:
                res = fit(frozen_pipeline(candidate.transform, student), train, val, data.task, settings, sub,
                          loss_fn=loss_fn, params=list(student.parameters()) + extra)
            finally:
                for h in hooks:  # the shipped student must not keep the hint hooks
                    h.remove()
            results["distilled"] = (student, res)
        if config.no_teacher or not with_teacher:
            sub = sub_context(ctx, 0.5 if with_teacher else 0.0, 1.0, "no-teacher student: ")
            res = fit(frozen_pipeline(candidate.transform, control), train, val, data.task, settings, sub)
            results["no-teacher"] = (control, res)
        metrics = {k: r.best_val_metric for k, (_, r) in results.items()}
        for label, (module, res) in results.items():
            fold_target_scale(module, scale)
            info = dict(common, learning_curve=res.curve_dicts(), train_seconds=res.seconds,
                        best_val_metric=res.best_val_metric, distilled=label == "distilled",
                        **{f"{k.replace('-', '_')}_val_metric": v for k, v in metrics.items()})
            if label == "distilled":
                info.update(temperature=config.temperature, alpha=config.alpha, hint_weight=config.hint_weight)
                step = self.step(config, label="distilled")
            else:
                # alpha=0 (hard labels only) is exactly this control: its recipe replays it.
                changed = dict(self.step(config).config)
                changed.update(alpha=0.0)
                changed.pop("hint_weight", None)
                changed.pop("temperature", None)
                step = Step(self.name, changed, "no-teacher", title="distill (no teacher, control)")
            out.append(candidate.derive(step, model=module.eval(), info=info))
        return out

    def _student(self, candidate: Candidate, config: DistillConfig, ctx: RunContext) -> tuple[Any, str]:
        """The untrained student and a short description of it."""
        from optim.techniques._train_common import count_params, scale_to_params

        if config.student == "scaled":
            budget = int(config.params_ratio * count_params(candidate.model))
            try:
                student, factor = scale_to_params(candidate.model, budget, ctx.seed)
            except ConfigError as err:
                # Any other graph: the teacher's own graph narrowed by structured pruning, re-initialised.
                from optim.techniques.pruning import width_scaled

                try:
                    student, factor = width_scaled(candidate.model, _example(candidate), budget, ctx.seed)
                except ConfigError as graph_err:
                    # Neither a width-scaled copy nor a narrowed graph (e.g. a channel shuffle with
                    # recorded sizes, a recurrent layer): an MLP of the same parameter budget.
                    return budget_mlp(candidate, budget, ctx.seed, f"{err} Narrowing its graph: {graph_err}.")
                return student, f"teacher graph narrowed to {factor:.3f} of its channels"
            return student, f"teacher scaled ×{factor:.3f} in width"
        return named_student(config.student, candidate, ctx), config.student


def budget_mlp(candidate: Candidate, budget: int, seed: int, why: str) -> tuple[Any, str]:
    """The widest two-hidden-layer MLP on the flattened inputs with at most ``budget`` parameters."""
    import numpy as np
    import torch
    import torch.nn as nn

    n_in = int(np.prod(_example(candidate).shape[1:]))
    n_out = candidate.num_outputs

    def params(h: int) -> int:
        return n_in * h + h + h * h + h + h * n_out + n_out

    h = 1
    while params(h + 1) <= budget:
        h += 1
    if params(h) > budget:
        raise ConfigError(f"distill: student=scaled: {why} An MLP fallback needs {params(1):,} parameters, more "
                          f"than params_ratio allows ({budget:,}); raise params_ratio or name a student architecture.")
    torch.manual_seed(seed)
    student = nn.Sequential(nn.Flatten(1), nn.Linear(n_in, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                            nn.Linear(h, n_out))
    return student, f"MLP {n_in}-{h}-{h}-{n_out} (the teacher could not be scaled: {why})"


def _example(candidate: Candidate) -> Any:
    """Two zero rows as the model sees them (after the candidate's transform)."""
    import torch

    example = torch.zeros((2, *candidate.input_shape))
    if candidate.transform is not None:
        with torch.no_grad():
            example = candidate.transform(example)
    return example


def named_student(name: str, candidate: Candidate, ctx: RunContext) -> Any:
    """A bundled or ``torchvision:NAME`` architecture sized for the teacher's inputs and outputs.

    Tabular bundled MLPs get Standardize statistics from the training split (their builder
    leaves them at 0/1); ``torchvision:NAME`` on 64 flat pixels (digits) is upscaled to RGB.
    """
    import numpy as np
    import torch

    from optim.archs import ARCHS, Standardize, build_arch, torchvision_on_digits
    from optim.techniques._train_common import transformed

    if name not in ARCHS and not name.startswith("torchvision:"):
        raise ConfigError(f"distill: student={name!r}: not 'scaled', a bundled architecture "
                          f"({', '.join(ARCHS)}) or torchvision:NAME.")
    X = transformed(candidate.transform, ctx.data.train.X[:2048])
    shape = X.shape[1:]
    n_in = int(np.prod(shape))
    torch.manual_seed(ctx.seed)
    if name.startswith("torchvision:") and len(shape) == 1:
        side = int(round(n_in ** 0.5))
        if side * side != n_in:
            raise ConfigError(f"distill: student={name!r} needs image inputs; this model reads {n_in} flat features.")
        return torchvision_on_digits(name.split(":", 1)[1], candidate.num_outputs)
    student = build_arch(name, n_in, candidate.num_outputs)
    first = next((m for m in student.modules() if isinstance(m, Standardize)), None)
    if first is None:
        return student
    # Standardize's buffers; torch types module attributes as Tensor | Module.
    mean: torch.Tensor = first.mean  # type: ignore[assignment]
    std: torch.Tensor = first.std  # type: ignore[assignment]
    if mean.numel() == n_in and len(shape) == 1 and bool((mean == 0).all()) and bool((std == 1).all()):
        mean.copy_(torch.from_numpy(X.mean(0)))
        std.copy_(torch.where(torch.from_numpy(X.std(0)) < 1e-6, 1.0, torch.from_numpy(X.std(0))))
    return student


def distillation_loss(teacher: Any, student: Any, task: str, config: DistillConfig,
                      scale: tuple[float, float] | None = None) -> tuple[Any, list, list]:
    """The training loss ``loss(student_out, y, x)``, extra trainable parameters (the hint map) and
    the forward hooks the hint loss installed (remove them after training).

    Classification: ``alpha · T² · KL(softmax(t/T) ‖ softmax(s/T)) + (1 − alpha) · CE(s, y)``
    (the T² keeps the soft gradients' scale independent of T, as Hinton et al. note).
    Regression: ``alpha · MSE(s, t) + (1 − alpha) · MSE(s, y)``, the teacher's outputs z-scored
    with ``scale = (mean, std)`` when the student trains on z-scored targets.
    """
    import torch
    import torch.nn.functional as F

    from optim.techniques._train_common import last_linear

    T, alpha = config.temperature, config.alpha
    captured: dict[str, Any] = {}
    extra: list = []
    hooks: list = []
    regressor = None
    if config.hint_weight > 0:
        t_last, s_last = last_linear(teacher), last_linear(student)
        if t_last is None or s_last is None:
            raise ConfigError(
                "distill: hint_weight > 0 needs a final Linear layer in teacher and student; set hint_weight=0."
            )
        hooks = [t_last.register_forward_hook(lambda m, inp, out: captured.__setitem__("t", inp[0])),
                 s_last.register_forward_hook(lambda m, inp, out: captured.__setitem__("s", inp[0]))]
        regressor = torch.nn.Linear(s_last.in_features, t_last.in_features)
        extra = list(regressor.parameters())

    def loss(out: Any, y: Any, x: Any) -> Any:
        with torch.no_grad():
            t_out = teacher(x)
            if scale is not None:
                t_out = (t_out - scale[0]) / scale[1]
        if task == "classification":
            hard = F.cross_entropy(out, y)
            soft = F.kl_div(F.log_softmax(out / T, dim=1), F.softmax(t_out / T, dim=1), reduction="batchmean") * T * T
        else:
            hard = F.mse_loss(out.reshape(-1), y.reshape(-1))
            soft = F.mse_loss(out.reshape(-1), t_out.reshape(-1))
        total = alpha * soft + (1 - alpha) * hard
        if regressor is not None:
            total = total + config.hint_weight * F.mse_loss(regressor(captured["s"]), captured["t"].detach())
        return total

    return loss, extra, hooks
