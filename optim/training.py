"""The one training / fine-tuning loop every technique reuses.

Optimizer and scheduler factories, gradient clipping, a loss hook, early stopping, per-epoch
callbacks (progress, cancel, Optuna trial pruning) and a learning curve per run.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from optim.context import RunContext
from optim.dataset import Split, Task
from optim.errors import ConfigError

OptimizerName = Literal["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad", "lbfgs"]
SchedulerName = Literal["none", "step", "exponential", "cosine", "onecycle"]


@dataclass(frozen=True)
class TrainSettings:
    """How to train. Defaults fine-tune a small model in a few seconds on a CPU."""

    epochs: int = 10
    batch_size: int = 64
    optimizer: OptimizerName = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    scheduler: SchedulerName = "none"
    warmup_epochs: int = 0
    clip_norm: float | None = None
    clip_value: float | None = None
    #: Stop when the validation metric has not improved for this many epochs (None: never).
    patience: int | None = None
    #: Stop as soon as the validation metric reaches this value (None: train all epochs).
    target_metric: float | None = None
    #: Keep the weights of the best validation epoch (else the last).
    restore_best: bool = True
    seed: int = 0


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    val_metric: float
    seconds: float
    lr: float


@dataclass
class TrainResult:
    curve: list[EpochRecord] = field(default_factory=list)
    best_val_metric: float = float("-inf")
    epochs_run: int = 0
    seconds: float = 0.0
    #: First epoch (1-based) whose validation metric reached ``target_metric``, if any.
    epochs_to_target: int | None = None
    stopped_early: bool = False

    def curve_dicts(self) -> list[dict[str, float]]:
        return [asdict(r) for r in self.curve]


LossFn = Callable[[Any, Any, Any], Any]  # (outputs, targets, inputs) -> scalar loss tensor
EpochCallback = Callable[[EpochRecord], None]

#: Callbacks every ``fit`` in this context calls after each epoch (after ``on_epoch``). Lets a
#: caller that does not own the training call (hpo reporting to an Optuna trial while another
#: technique trains) see each epoch; a hook may raise (``optuna.TrialPruned``) to stop.
_EPOCH_HOOKS: contextvars.ContextVar[tuple[EpochCallback, ...]] = contextvars.ContextVar(
    "optim_epoch_hooks", default=())


@contextlib.contextmanager
def epoch_hook(callback: EpochCallback) -> Any:
    """Within the ``with`` block, every :func:`fit` calls ``callback(record)`` after each epoch."""
    token = _EPOCH_HOOKS.set(_EPOCH_HOOKS.get() + (callback,))
    try:
        yield callback
    finally:
        _EPOCH_HOOKS.reset(token)


def default_loss(task: Task) -> LossFn:
    import torch.nn.functional as F

    if task == "classification":
        return lambda out, y, x: F.cross_entropy(out, y)
    return lambda out, y, x: F.mse_loss(out.reshape(-1), y.reshape(-1))


def make_optimizer(params: Any, s: TrainSettings) -> Any:
    import torch.optim as O

    name = s.optimizer
    if name == "sgd":
        return O.SGD(params, lr=s.lr, weight_decay=s.weight_decay)
    if name == "momentum":
        return O.SGD(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    if name == "nesterov":
        return O.SGD(params, lr=s.lr, momentum=s.momentum or 0.9, nesterov=True, weight_decay=s.weight_decay)
    if name == "adam":
        return O.Adam(params, lr=s.lr, weight_decay=s.weight_decay)
    if name == "adamw":
        return O.AdamW(params, lr=s.lr, weight_decay=s.weight_decay or 1e-2)
    if name == "rmsprop":
        return O.RMSprop(params, lr=s.lr, momentum=s.momentum if s.momentum < 1 else 0.0, weight_decay=s.weight_decay)
    if name == "adagrad":
        return O.Adagrad(params, lr=s.lr, weight_decay=s.weight_decay)
    if name == "lbfgs":
        return O.LBFGS(params, lr=s.lr, max_iter=5, history_size=10, line_search_fn="strong_wolfe")
    raise ConfigError(
        f"optimizer={name!r}: unknown; allowed: sgd, momentum, nesterov, adam, adamw, rmsprop, adagrad, lbfgs."
    )


def make_scheduler(opt: Any, s: TrainSettings, steps_per_epoch: int) -> tuple[Any, bool]:
    """The LR scheduler and whether it steps per batch (True) or per epoch (False)."""
    import torch.optim.lr_scheduler as L

    total = max(1, s.epochs * steps_per_epoch)
    warm = max(0, s.warmup_epochs * steps_per_epoch)
    if s.scheduler == "onecycle":
        # Cycling momentum needs an optimizer that has one (Adagrad, L-BFGS and plain SGD do not).
        cycle = "betas" in opt.defaults or bool(opt.defaults.get("momentum"))
        return L.OneCycleLR(opt, max_lr=s.lr, total_steps=total, cycle_momentum=cycle), True
    if s.scheduler == "none" and not warm:
        return None, False

    def factor(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        if s.scheduler == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
        if s.scheduler == "step":
            return 0.1 ** int(t * 3)  # three decades over the run
        if s.scheduler == "exponential":
            return 0.01 ** t
        return 1.0

    return L.LambdaLR(opt, factor), True


def evaluate(module: Any, split: Split, task: Task, batch_size: int = 512) -> float:
    """The primary validation metric of a torch module on ``split`` (higher is better)."""
    import torch

    from optim.evaluation.metrics import score

    module.eval()
    outs = []
    with torch.inference_mode():
        for i in range(0, len(split), batch_size):
            outs.append(module(torch.from_numpy(np.asarray(split.X[i:i + batch_size], np.float32))).float().numpy())
    return score(np.concatenate(outs), split.y, task)


def fit(module: Any, train: Split, val: Split, task: Task, settings: TrainSettings,
        ctx: RunContext | None = None, *, loss_fn: LossFn | None = None,
        on_epoch: EpochCallback | None = None, params: Any = None,
        evaluate_fn: Callable[[Any], float] | None = None,
        after_step: Callable[[], None] | None = None) -> TrainResult:
    """Train ``module`` in place and return its learning curve.

    ``loss_fn(outputs, targets, inputs)`` replaces the task loss (distillation uses it);
    ``on_epoch`` sees each epoch's record and may raise (``optuna.TrialPruned``) to stop;
    ``params`` restricts what is trained (default: every parameter that requires grad);
    ``after_step`` runs after each optimizer step (e.g. to re-apply a pruning mask).
    """
    import copy

    import torch

    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    loss_fn = loss_fn or default_loss(task)
    evaluate_fn = evaluate_fn or (lambda m: evaluate(m, val, task))
    params = list(params if params is not None else (p for p in module.parameters() if p.requires_grad))
    if not params:
        raise ConfigError("nothing to train: the model has no trainable parameters.")
    opt = make_optimizer(params, settings)
    n = len(train)
    steps = max(1, math.ceil(n / settings.batch_size))
    sched, per_batch = make_scheduler(opt, settings, steps)
    X = torch.from_numpy(np.asarray(train.X, np.float32))
    y = torch.from_numpy(np.asarray(train.y))
    y = y.long() if task == "classification" else y.float()

    result = TrainResult()
    best_state = None
    since_best = 0
    t_start = time.perf_counter()
    for epoch in range(1, settings.epochs + 1):
        if ctx is not None:
            ctx.check_cancelled()
        t0 = time.perf_counter()
        module.train()
        order = rng.permutation(n)
        total_loss = 0.0
        for b in range(steps):
            idx = torch.from_numpy(order[b * settings.batch_size:(b + 1) * settings.batch_size])
            xb, yb = X[idx], y[idx]
            if len(idx) < 2 and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules()):
                continue  # batch norm cannot train on one sample

            def closure(xb: torch.Tensor = xb, yb: torch.Tensor = yb) -> Any:  # this batch, bound now
                opt.zero_grad()
                loss = loss_fn(module(xb), yb, xb)
                loss.backward()
                if settings.clip_norm:
                    torch.nn.utils.clip_grad_norm_(params, settings.clip_norm)
                if settings.clip_value:
                    torch.nn.utils.clip_grad_value_(params, settings.clip_value)
                return loss

            if settings.optimizer == "lbfgs":
                loss = opt.step(closure)
            else:
                loss = closure()
                opt.step()
            if after_step is not None:
                after_step()
            if sched is not None and per_batch:
                sched.step()
            total_loss += float(loss.detach()) * len(idx)
        val_metric = float(evaluate_fn(module))
        rec = EpochRecord(epoch, total_loss / max(1, n), val_metric, time.perf_counter() - t0,
                          float(opt.param_groups[0]["lr"]))
        result.curve.append(rec)
        result.epochs_run = epoch
        if ctx is not None:
            ctx.progress(f"epoch {epoch}/{settings.epochs}: val {val_metric:.4f}", epoch / settings.epochs)
        if val_metric > result.best_val_metric or not math.isfinite(result.best_val_metric):
            result.best_val_metric = val_metric
            since_best = 0
            if settings.restore_best:
                best_state = copy.deepcopy(module.state_dict())
        else:
            since_best += 1
        if on_epoch is not None:
            on_epoch(rec)
        for hook in _EPOCH_HOOKS.get():
            hook(rec)
        if settings.target_metric is not None and val_metric >= settings.target_metric:
            result.epochs_to_target = result.epochs_to_target or epoch
            result.stopped_early = epoch < settings.epochs
            break
        if settings.patience is not None and since_best >= settings.patience:
            result.stopped_early = True
            break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    result.seconds = time.perf_counter() - t_start
    return result
