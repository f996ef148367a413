"""Helpers shared by the techniques that train (distill, retrain, hpo, feature selection).

Not a technique module (the leading underscore keeps ``optim.techniques`` from importing it as
one). The training loop itself is :mod:`optim.training`; this module only builds what the loop
is given: sub-contexts for progress, frozen input transforms, re-initialised or width-scaled
copies of a network.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from optim.candidate import Candidate
from optim.context import RunContext
from optim.dataset import Split
from optim.errors import ConfigError


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads (small models train fastest on one)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def run_threads(apply: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for ``Technique.apply(candidate, config, ctx)``: work with ``ctx.threads`` threads.

    Torch and the BLAS under numpy / scikit-learn default to one thread per core; on a busy
    machine a small model's many tiny matmuls then spend most of their time waiting for each
    other (measured on 2 shared cores: 100× slower training steps, 18× slower logistic-regression
    fits). The run's thread setting is what the user chose for this machine: training honours it.
    """
    @functools.wraps(apply)
    def wrapper(self: Any, candidate: Any, config: Any, ctx: RunContext) -> Any:
        from threadpoolctl import threadpool_limits

        with torch_threads(ctx.threads), threadpool_limits(limits=max(1, int(ctx.threads))):
            return apply(self, candidate, config, ctx)

    return wrapper


def count_params(module: Any) -> int:
    """Number of parameters (every element, zeros included)."""
    return int(sum(p.numel() for p in module.parameters()))


def sub_context(ctx: RunContext, lo: float, hi: float, prefix: str = "") -> RunContext:
    """A copy of ``ctx`` whose progress fractions map into ``[lo, hi]`` of the parent's.

    A technique that trains several models (distill: student and no-teacher student; hpo: one
    model per trial) reports one monotone progress bar instead of restarting at 0 each time.
    """
    parent = ctx.progress_cb

    def progress(message: str, fraction: float) -> None:
        if parent is not None:
            parent(f"{prefix}{message}", lo + (hi - lo) * fraction)

    return dataclasses.replace(ctx, progress_cb=progress)


def frozen_pipeline(transform: Any, module: Any) -> Any:
    """``transform`` (a private, frozen copy) then ``module``: what training sees.

    The candidate's transform is input preprocessing (selected columns, PCA); training must not
    change it, and freezing the caller's own copy would mutate the input candidate.
    """
    if transform is None:
        return module
    import torch.nn as nn

    transform = copy.deepcopy(transform)
    for p in transform.parameters():
        p.requires_grad_(False)
    return nn.Sequential(transform, module)


def transformed(transform: Any, X: np.ndarray) -> np.ndarray:
    """``transform(X)`` as float32 numpy (``X`` itself when there is no transform)."""
    if transform is None:
        return np.asarray(X, np.float32)
    import torch

    transform.eval()
    with torch.inference_mode():
        return transform(torch.from_numpy(np.asarray(X, np.float32))).float().numpy()


def reinitialize(module: Any, seed: int) -> Any:
    """Reset every layer that can reset itself (Linear, Conv, BatchNorm...) from ``seed``, in place.

    Buffers that are data statistics (Standardize) are kept: they describe the inputs, not
    learned weights. Two calls with the same seed give the same initial weights, so optimizers
    compared "from the same initialization" really start from one point.
    """
    import torch

    torch.manual_seed(seed)
    for m in module.modules():
        reset = getattr(m, "reset_parameters", None)
        if callable(reset):
            reset()
    return module


def val_metric(candidate: Candidate, split: Split, task: str) -> float:
    """The primary metric (higher is better) of ``candidate`` on ``split``."""
    from optim.evaluation.metrics import score

    return float(score(candidate.predict(split.X), split.y, task))  # type: ignore[arg-type]


def subset(split: Split, fraction: float, seed: int, task: str) -> Split:
    """A reproducible ``fraction`` of ``split`` (stratified for classification, ≥ 1 row per class)."""
    if fraction >= 1.0:
        return split
    n = len(split)
    k = max(1, int(round(fraction * n)))
    rng = np.random.default_rng(seed)
    if task == "classification":
        classes = np.unique(split.y)
        k = max(k, len(classes))
        # One row of every class first, so a 3% subset of digits still has all ten digits.
        first = np.array([rng.choice(np.flatnonzero(split.y == c)) for c in classes])
        rest = np.setdiff1d(np.arange(n), first)
        more = rng.choice(rest, size=max(0, k - len(first)), replace=False)
        idx = np.sort(np.concatenate([first, more]))
    else:
        idx = np.sort(rng.choice(n, size=k, replace=False))
    return Split(split.X[idx], split.y[idx])


# --- regression targets for freshly initialised weights ---------------------------------------
def last_linear(module: Any) -> Any:
    """The last nn.Linear of ``module`` (its output layer for MLPs and most CNNs), or None."""
    import torch.nn as nn

    layers = [m for m in module.modules() if isinstance(m, nn.Linear)]
    return layers[-1] if layers else None


def target_scale(task: str, y: np.ndarray, module: Any) -> tuple[float, float] | None:
    """``(mean, std)`` of regression targets when ``module`` is trained from fresh weights.

    A fresh network outputs ~0 and regression targets may be in the hundreds (diabetes:
    25–346): training on z-scored targets and folding the scale into the last Linear afterwards
    (:func:`fold_target_scale`) converges in the epochs a classifier needs. None for
    classification, or when there is no last Linear to fold into (then targets stay raw).
    """
    if task != "regression" or last_linear(module) is None:
        return None
    std = float(np.std(y))
    return float(np.mean(y)), std if std > 0 else 1.0


def scaled_split(split: Split, scale: tuple[float, float] | None) -> Split:
    """``split`` with z-scored targets (itself when ``scale`` is None)."""
    if scale is None:
        return split
    mean, std = scale
    return Split(split.X, ((np.asarray(split.y, np.float64) - mean) / std).astype(np.float32))


def fold_target_scale(module: Any, scale: tuple[float, float] | None) -> None:
    """Make a model trained on z-scored targets output them in their own units, in place."""
    if scale is None:
        return
    import torch

    mean, std = scale
    last = last_linear(module)
    with torch.no_grad():
        last.weight.mul_(std)
        if last.bias is not None:
            last.bias.mul_(std).add_(mean)


# --- width scaling (distill's "scaled" student, retrain's width) ------------------------------
class _ScaleState:
    def __init__(self, factor: float, n_param_layers: int) -> None:
        self.factor = factor
        self.remaining = n_param_layers  # the last Linear/Conv keeps its outputs (the classes)
        self.old: int | None = None  # width the previous layer produced in the original
        self.new: int | None = None  # ... and in the copy

    def width(self, out: int) -> int:
        self.remaining -= 1
        return out if self.remaining == 0 else max(1, int(round(out * self.factor)))

    def in_width(self, n: int, where: str) -> int:
        if self.old is None or self.new is None:
            return n  # the first layer reads the model's inputs: never scaled
        if n % self.old:
            raise ConfigError(f"cannot scale {where}: it reads {n} values after a layer of width {self.old}.")
        return n // self.old * self.new  # n = channels × spatial after a Flatten


def _param_layers(module: Any) -> list[Any]:
    import torch.nn as nn

    return [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]


def scale_widths(module: Any, factor: float, seed: int = 0) -> Any:
    """A freshly initialised copy of ``module`` with every hidden width multiplied by ``factor``.

    Hidden widths are the outputs of every Linear / Conv except the last (which gives the
    classes); the inputs of the first are the model's inputs. Supported: (nested) nn.Sequential
    of Linear, Conv1d/2d (groups=1), BatchNorm1d/2d, LayerNorm and parameter-free layers (ReLU,
    pooling, Flatten, Dropout, Standardize, Reshape...). Data-statistics buffers are kept.
    Raises ConfigError naming the first layer it cannot scale.
    """
    import torch

    torch.manual_seed(seed)
    state = _ScaleState(factor, len(_param_layers(module)))
    if state.remaining == 0:
        raise ConfigError("cannot scale this model: it has no Linear or Conv layer.")
    return _scale(module, state, type(module).__name__)


def _scale(module: Any, st: _ScaleState, where: str) -> Any:
    import torch.nn as nn

    if isinstance(module, nn.Sequential):
        return nn.Sequential(*[_scale(child, st, f"{where}.{name}") for name, child in module.named_children()])
    if isinstance(module, nn.Linear):
        n_in = st.in_width(module.in_features, where)
        n_out = st.width(module.out_features)
        st.old, st.new = module.out_features, n_out
        return nn.Linear(n_in, n_out, bias=module.bias is not None)
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        if module.groups != 1:
            raise ConfigError(
                f"cannot scale {where}: grouped/depthwise convolutions (groups={module.groups}) are not supported."
            )
        n_in = st.in_width(module.in_channels, where)
        n_out = st.width(module.out_channels)
        st.old, st.new = module.out_channels, n_out
        conv: Any = type(module)  # Conv1d or Conv2d: its sizes are tuples of its own rank
        return conv(n_in, n_out, module.kernel_size, stride=module.stride, padding=module.padding,
                            dilation=module.dilation, bias=module.bias is not None, padding_mode=module.padding_mode)
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        if st.old is None or st.new is None or module.num_features != st.old:
            raise ConfigError(
                f"cannot scale {where}: BatchNorm over {module.num_features} features follows a layer of width "
                f"{st.old}."
            )
        return type(module)(st.new, eps=module.eps, momentum=module.momentum, affine=module.affine)
    if isinstance(module, nn.LayerNorm):
        if st.old is None or tuple(module.normalized_shape) != (st.old,):
            raise ConfigError(
                f"cannot scale {where}: LayerNorm{tuple(module.normalized_shape)} does not follow a Linear."
            )
        return nn.LayerNorm(st.new, eps=module.eps, elementwise_affine=module.elementwise_affine)
    if any(True for _ in module.parameters()):
        raise ConfigError(
            f"cannot scale {where} ({type(module).__name__}): only Sequential stacks of Linear, Conv, "
            "BatchNorm and parameter-free layers can be scaled."
        )
    return copy.deepcopy(module)  # parameter-free (activations, pooling, Standardize, Reshape)


def scale_to_params(module: Any, max_params: int, seed: int = 0) -> tuple[Any, float]:
    """The widest width-scaled copy of ``module`` with at most ``max_params`` parameters.

    Returns ``(copy, factor)``. Parameters grow monotonically with the factor, so a bisection on
    meta tensors (no memory) finds it; the chosen copy is then built for real.
    """
    import torch

    def params_at(f: float) -> int:
        with torch.device("meta"):
            return count_params(scale_widths(module, f, seed))

    smallest = params_at(1e-9)
    if smallest > max_params:
        raise ConfigError(
            f"no scaled copy of this model has at most {max_params:,} parameters (the narrowest, "
            f"one unit per hidden layer, has {smallest:,}); raise params_ratio or name a student architecture."
        )
    lo, hi = 1e-9, 1.0
    while params_at(hi) <= max_params and hi < 64:
        lo, hi = hi, hi * 2
    for _ in range(40):
        mid = (lo + hi) / 2
        if params_at(mid) <= max_params:
            lo = mid
        else:
            hi = mid
    return scale_widths(module, lo, seed), lo


def layer_widths(module: Any) -> list[int]:
    """Output widths of the Linear/Conv layers, for a short description (e.g. 64-75-25-10)."""
    import torch.nn as nn

    layers = _param_layers(module)
    if not layers:
        return []
    first = layers[0]
    widths = [first.in_features if isinstance(first, nn.Linear) else first.in_channels]
    widths += [m.out_features if isinstance(m, nn.Linear) else m.out_channels for m in layers]
    return widths
