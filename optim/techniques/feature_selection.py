"""Feature selection for tabular models: keep k features (or k principal components), retrain.

Selection uses scikit-learn (SelectKBest, RFE, SelectFromModel with an L1 model, PCA) fitted on
the training split, standardised inside the selector's own pipeline. The model keeps its
architecture with a narrower first Linear layer and is retrained; the selection itself is a
torch module (:class:`SelectColumns` or :class:`PCAProject`) in ``candidate.transform``, so the
candidate — and every export of it — still takes the dataset's original raw columns.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn as nn
from pydantic import Field

from optim.archs import PCAProject, SelectColumns, Standardize  # noqa: F401  (input transforms live with the architectures)
from optim.candidate import Candidate
from optim.config import TechniqueConfig, batch_size_field, epochs_field, lr_field
from optim.context import RunContext
from optim.errors import ConfigError, UnsupportedError
from optim.registry import register_technique
from optim.techniques._train_common import run_threads
from optim.techniques.base import Technique, require_torch


def transform_names(transform: Any, names: list[str]) -> list[str]:
    """The names of what ``transform`` outputs, given the names of its inputs."""
    if transform is None:
        return list(names)
    if isinstance(transform, nn.Sequential):
        for m in transform:
            names = transform_names(m, names)
        return names
    if isinstance(transform, SelectColumns):
        # torch types a module attribute (buffer, submodule) as Tensor | Module.
        return [names[i] for i in transform.idx.tolist()]  # type: ignore[operator]
    if isinstance(transform, PCAProject):
        # torch types a module attribute (buffer, submodule) as Tensor | Module.
        return [f"pc{i + 1}" for i in range(transform.components.shape[0])]  # type: ignore[index]
    raise UnsupportedError(f"feature selection cannot follow the input transform {type(transform).__name__}.")


# --- the narrower input layer -----------------------------------------------------------------
class _GraphOp(nn.Module):
    """Stands for a function node of a graph (``x - c``, a reshape) met before the first Linear;
    ``constant`` is the largest tensor constant it reads (its parameters, for the checks below)."""

    def __init__(self, node: Any, constant: int) -> None:
        super().__init__()
        self.node_name = str(node.target) if node.op == "call_module" else node.name
        if constant > 1:
            self.register_buffer("constant", torch.zeros(constant))


def _graph_before_first_linear(gm: Any) -> tuple[list[tuple[str, nn.Module]], tuple[str, nn.Linear] | None]:
    """The graph's nodes in execution order up to the first Linear: layers as themselves, other
    operations as :class:`_GraphOp` carrying the size of the constants they read (an ONNX
    model's standardisation is ``Sub``/``Div`` with constant tensors)."""
    before: list[tuple[str, nn.Module]] = []
    for n in gm.graph.nodes:
        if n.op not in ("call_module", "call_function", "call_method"):
            continue
        consts = [a for a in n.all_input_nodes if a.op == "get_attr"]
        size = max((int(getattr(_attr(gm, str(a.target)), "numel", lambda: 1)()) for a in consts), default=0)
        if n.op == "call_module":
            m = gm.get_submodule(str(n.target))
            if isinstance(m, nn.Linear):
                return before, (str(n.target), m)
            if size <= 1:
                before.append((str(n.target), m))
                continue
        before.append((n.name, _GraphOp(n, size)))
    return before, None


def _attr(gm: Any, target: str) -> Any:
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _leaves_before_first_linear(module: nn.Module) -> tuple[list[tuple[str, nn.Module]], tuple[str, nn.Linear] | None]:
    import torch.fx as fx

    if isinstance(module, fx.GraphModule):
        return _graph_before_first_linear(module)
    before: list[tuple[str, nn.Module]] = []
    for name, m in module.named_modules():
        if isinstance(m, nn.Linear):
            return before, (name, m)
        if not any(True for _ in m.children()):
            before.append((name, m))
    return before, None


def input_layer_problem(module: nn.Module, n_in: int | None = None) -> str | None:
    """Why the first layer reading the features cannot be narrowed (None when it can).

    Allowed before the first Linear: parameter-free layers, Standardize and BatchNorm1d over
    the features (both are narrowed with the Linear).
    """
    before, first = _leaves_before_first_linear(module)
    if first is None:
        return "the model has no Linear layer reading the features"
    for name, m in before:
        if isinstance(m, (Standardize, nn.BatchNorm1d)):
            continue
        if isinstance(m, _GraphOp) and any(True for _ in m.buffers()):
            size = sum(b.numel() for b in m.buffers())
            return (f"operation {m.node_name} applies a constant of {size} values to the features "
                    "before the first Linear and is not a per-feature scale or shift that could be narrowed")
        if any(True for _ in m.parameters()) or any(b.numel() > 1 for b in m.buffers()):
            return (f"layer {name or '(root)'} ({type(m).__name__}) reads the features before the first Linear; "
                    "only Standardize, BatchNorm1d and parameter-free layers can come first")
    if n_in is not None and first[1].in_features != n_in:
        return f"the first Linear ({first[0]}) reads {first[1].in_features} values, not the {n_in} input features"
    return None


class FillInputs(nn.Module):
    """The model's full input rebuilt from the kept features, for a model whose first layer cannot
    be narrowed (a Conv, a GRU): kept columns go back to their places and dropped ones are fixed
    at ``fill`` (their training mean), or a PCA projection goes back through ``inverse``.

    ``x`` is ``(N, k)``; the output is ``(N, n_in)``. Buffers only: nothing here is trained or pruned.
    """

    def __init__(self, n_in: int, *, idx: Any = None, fill: Any = None, inverse: Any = None,
                 offset: Any = None) -> None:
        super().__init__()
        if inverse is not None:  # PCA: x_full = offset + x @ inverse.T
            self.register_buffer("inverse_t", torch.as_tensor(np.asarray(inverse, np.float32).T.copy()))
            self.register_buffer("offset", torch.as_tensor(np.asarray(offset, np.float32)))
            self.register_buffer("order", torch.zeros(0, dtype=torch.long))
            self.register_buffer("rest", torch.zeros(0))
        else:  # columns: cat(kept, dropped fill values) reordered to the original columns
            idx = np.asarray(idx, np.int64)
            dropped = np.setdiff1d(np.arange(n_in), idx)
            order = np.argsort(np.concatenate([idx, dropped]), kind="stable")
            self.register_buffer("order", torch.as_tensor(order, dtype=torch.long))
            self.register_buffer("rest", torch.as_tensor(np.asarray(fill, np.float32)[dropped]))
            self.register_buffer("inverse_t", torch.zeros(0, 0))
            self.register_buffer("offset", torch.zeros(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torch types a module attribute (buffer, submodule) as Tensor | Module.
        if self.order.numel() == 0:  # type: ignore[operator]
            return torch.matmul(x, self.inverse_t) + self.offset  # type: ignore[arg-type,operator]
        rest = self.rest.unsqueeze(0).expand(x.shape[0], -1)  # type: ignore[operator]
        return torch.cat([x, rest], dim=1).index_select(1, self.order)  # type: ignore[arg-type]


def fold_input_constants(module: nn.Module, n_in: int) -> nn.Module:
    """``module`` with the per-feature shifts and scales by constants between its input and its
    first Linear (an ONNX model's ``(x - mean) / std`` as ``Sub``/``Div`` nodes) replaced by one
    :class:`Standardize`, which feature selection narrows with the Linear; ``module`` itself when
    it is no graph or there is nothing to fold. The fold is kept only if the graph's outputs stay
    the same (within 1e-5 relative)."""
    import torch.fx as fx

    if not isinstance(module, fx.GraphModule):
        return module
    placeholders = [n for n in module.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        return module
    chain, cur = [], placeholders[0]
    while len(cur.users) == 1:
        nxt = next(iter(cur.users))
        if nxt.op == "call_module" and isinstance(module.get_submodule(str(nxt.target)), nn.Linear):
            break
        others = [a for a in nxt.all_input_nodes if a is not cur]
        if nxt.op == "output" or any(a.op != "get_attr" for a in others):
            return module
        chain.append(nxt)
        cur = nxt
    if not chain or len(cur.users) != 1:
        return module
    gm = copy.deepcopy(module)
    nodes = {n.name: n for n in gm.graph.nodes}
    last = nodes[chain[-1].name]
    captured: dict[str, torch.Tensor] = {}

    class Capture(fx.Interpreter):
        def run_node(self, n: fx.Node) -> Any:
            out = super().run_node(n)
            if n is last:
                captured["v"] = out
            return out

    noise = torch.randn(2, n_in, generator=torch.Generator().manual_seed(0))
    probe = torch.cat([torch.zeros(1, n_in), torch.ones(1, n_in), noise])
    try:
        with torch.inference_mode():
            reference = gm(probe)
            Capture(gm).run(probe)
    except Exception:
        return module
    v = captured.get("v")
    if v is None or tuple(v.shape) != (4, n_in):
        return module
    b, a = v[0].double(), (v[1] - v[0]).double()
    if (a.abs() < 1e-12).any() or not torch.allclose(v[2:].double(), probe[2:].double() * a + b, rtol=1e-5, atol=1e-5):
        return module  # not a per-feature affine map of the input
    gm.add_submodule("input_standardize", Standardize((-b / a).numpy(), (1.0 / a).numpy()))
    with gm.graph.inserting_after(nodes[placeholders[0].name]):
        std = gm.graph.call_module("input_standardize", (nodes[placeholders[0].name],))
    last.replace_all_uses_with(std)
    for n in reversed(chain):
        gm.graph.erase_node(nodes[n.name])
    gm.graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    gm.recompile()
    with torch.inference_mode():
        if not torch.allclose(gm(probe), reference, rtol=1e-5, atol=1e-5):
            return module
    return gm


def _set_submodule(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, attr, new)


def _input_affine(before: list[tuple[str, nn.Module]], n_in: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``(m, s)`` with ``(x - m) / s`` what the first Linear reads, when only Standardize (and
    identity-like layers) come before it; None otherwise (e.g. a BatchNorm1d first)."""
    m, s = np.zeros(n_in), np.ones(n_in)
    for _, layer in before:
        if isinstance(layer, Standardize):
            # torch types a module attribute (buffer, submodule) as Tensor | Module.
            m2, s2 = layer.mean.double().numpy(), layer.std.double().numpy()  # type: ignore[operator]
            m, s = m + m2 * s, s * s2  # ((x - m) / s - m2) / s2
        elif not isinstance(layer, (nn.Identity, nn.Dropout, nn.Flatten)):
            return None
    return m, s


def narrow_input(module: nn.Module, n_in: int, X_new: np.ndarray, *, idx: np.ndarray | None = None,
                 projection: tuple[np.ndarray, np.ndarray] | None = None, keep_weights: bool = True,
                 seed: int = 0, fill: np.ndarray | None = None) -> nn.Module:
    """A copy of ``module`` reading the ``X_new.shape[1]`` new inputs instead of its ``n_in`` features.

    The new inputs are the kept columns ``idx`` of the old ones, or their ``projection = (mean,
    components)`` (``p = (x - mean) @ components.T``). With ``keep_weights`` the first Linear is
    the old one composed with the best reconstruction of the old inputs from the new (dropped
    columns at their mean; PCA through the pseudo-inverse), so before retraining the model
    computes what the original did on that reconstruction — exactly the original when nothing
    is dropped. A per-feature Standardize is rebuilt on the new inputs' statistics;
    ``keep_weights=False`` re-initialises every layer.

    A model whose first layer cannot be narrowed (a Conv or GRU reads the features) is kept whole
    behind :class:`FillInputs`: the dropped columns at ``fill`` (their training mean; zeros when
    not given), a PCA projection back through its pseudo-inverse.
    """
    from optim.techniques._train_common import reinitialize

    module = fold_input_constants(module, n_in)
    problem = input_layer_problem(module, n_in)
    if problem:
        return _filled(module, n_in, idx=idx, projection=projection, fill=fill, keep_weights=keep_weights, seed=seed)
    module = copy.deepcopy(module)
    torch.manual_seed(seed)
    k = X_new.shape[1]
    before, first_linear = _leaves_before_first_linear(module)
    assert first_linear is not None  # input_layer_problem above refuses a model without one
    lin_name, lin = first_linear
    new = nn.Linear(k, lin.out_features, bias=lin.bias is not None)
    affine = _input_affine(before, n_in)
    if affine is not None:
        m, s = affine
        standardizes = [name for name, layer in before if isinstance(layer, Standardize)]
        mp, sp = np.zeros(k), np.ones(k)
        if standardizes:  # one Standardize on the new inputs replaces them all
            fresh = Standardize(X_new.mean(0), X_new.std(0))
            # torch types a module attribute (buffer, submodule) as Tensor | Module.
            mp, sp = fresh.mean.double().numpy(), fresh.std.double().numpy()  # type: ignore[operator]
            _set_submodule(module, standardizes[0], fresh)
            for name in standardizes[1:]:
                _set_submodule(module, name, nn.Identity())
        if keep_weights and (idx is not None or projection is not None):
            if idx is not None:  # old inputs = kept columns, dropped ones at the model's mean
                R = np.zeros((n_in, k))
                R[np.asarray(idx), np.arange(k)] = 1.0
                o = m.copy()
                o[np.asarray(idx)] = 0.0
            else:
                assert projection is not None  # the branch condition above
                mean, components = projection
                R, o = np.linalg.pinv(np.asarray(components, np.float64)), np.asarray(mean, np.float64)
            A = lin.weight.detach().double().numpy() / s[None, :]
            WR = A @ R
            with torch.no_grad():
                new.weight.copy_(torch.from_numpy(WR * sp[None, :]))
                if lin.bias is not None:
                    b = lin.bias.detach().double().numpy() + A @ (o - m) + WR @ mp
                    new.bias.copy_(torch.from_numpy(b))
    else:  # BatchNorm1d (or similar) first: narrow it too, keep the kept columns' weights
        sel = None if idx is None else torch.as_tensor(idx, dtype=torch.long)
        for name, layer in before:
            # torch types a module attribute (buffer, submodule) as Tensor | Module.
            if isinstance(layer, Standardize) and layer.mean.numel() == n_in:  # type: ignore[operator]
                _set_submodule(module, name, Standardize(X_new.mean(0), X_new.std(0)))
            elif isinstance(layer, nn.BatchNorm1d) and layer.num_features == n_in:
                bn = nn.BatchNorm1d(k, eps=layer.eps, momentum=layer.momentum, affine=layer.affine)
                if sel is not None and layer.affine and layer.running_mean is not None:
                    with torch.no_grad():
                        for attr in ("weight", "bias", "running_mean", "running_var"):
                            getattr(bn, attr).copy_(getattr(layer, attr)[sel])
                _set_submodule(module, name, bn)
        if sel is not None:
            with torch.no_grad():
                new.weight.copy_(lin.weight.index_select(1, sel))
                if lin.bias is not None:
                    new.bias.copy_(lin.bias)
    _set_submodule(module, lin_name, new)
    if not keep_weights:
        reinitialize(module, seed)
    return module


def _filled(module: nn.Module, n_in: int, *, idx: np.ndarray | None, projection: tuple[np.ndarray, np.ndarray] | None,
            fill: np.ndarray | None, keep_weights: bool, seed: int) -> nn.Module:
    """``module`` unchanged behind :class:`FillInputs` (its first layer cannot be narrowed)."""
    from optim.techniques._train_common import reinitialize

    module = copy.deepcopy(module)
    if not keep_weights:
        reinitialize(module, seed)
    if projection is not None:
        mean, components = projection
        filler = FillInputs(n_in, inverse=np.linalg.pinv(np.asarray(components, np.float64)), offset=mean)
    else:
        assert idx is not None  # narrow_input gets idx or projection
        filler = FillInputs(n_in, idx=idx, fill=fill if fill is not None else np.zeros(n_in))
    return nn.Sequential(filler, module)


def fill_problem(module: nn.Module, n_in: int | None = None) -> str | None:
    """Why the kept features reach the model through :class:`FillInputs` (None: the first layer
    is narrowed)."""
    problem = input_layer_problem(fold_input_constants(module, n_in) if n_in else module, n_in)
    if problem is None:
        return None
    return (f"the input layer cannot be narrowed ({problem}); the model still reads all {n_in or 'its'} input "
            "values, the dropped ones fixed at their training mean: fewer features to collect, no compute saved")


# --- the techniques ---------------------------------------------------------------------------
# The retraining settings every selector shares, declared once; each config lists its own
# setting first (k, alpha, components) so forms and ``optim techniques`` lead with it.
_EPOCHS = epochs_field(30, description="Retraining epochs on the kept features (Adam).", search=(5, 60))
_LR = lr_field(3e-3, description="Retraining learning rate.", search=(1e-4, 3e-2, "log"))
_BATCH = batch_size_field(32, description="Retraining mini-batch size.")
_INIT: Any = Field(  # Any: shared by four configs whose field is a Literal
    "finetune",
    description="finetune: keep the trained weights (the first layer is rebuilt from the old one, so the "
    "model starts where the original was); scratch: re-initialise and train from scratch.",
)
_K = Field(10, ge=1, le=100_000, description="Number of features to keep.",
           json_schema_extra={"sweep": [3, 5, 10, 20], "search": [1, 30]})


class KBestConfig(TechniqueConfig):
    k: int = _K
    score_func: Literal["f", "mutual_info"] = Field(
        "f", description="f: ANOVA F-test (classification) / F-regression; mutual_info: k-NN mutual information.")
    epochs: int = _EPOCHS
    lr: float = _LR
    batch_size: int = _BATCH
    init: Literal["finetune", "scratch"] = _INIT


class RFEConfig(TechniqueConfig):
    k: int = _K
    estimator: Literal["linear", "forest"] = Field(
        "linear", description="Ranks features: linear (logistic / ridge regression coefficients) or forest "
        "(random-forest impurity importances).")
    step: int = Field(1, ge=1, le=1000, description="Features removed per elimination round.")
    epochs: int = _EPOCHS
    lr: float = _LR
    batch_size: int = _BATCH
    init: Literal["finetune", "scratch"] = _INIT


class LassoConfig(TechniqueConfig):
    alpha: float = Field(
        0.01, gt=0.0, le=100.0, title="L1 strength",
        description="L1 strength (sklearn Lasso's alpha; logistic regression uses C = 1 / (alpha · n_train)). "
        "Larger keeps fewer features.",
        json_schema_extra={"sweep": [0.001, 0.01, 0.03, 0.1], "search": [1e-4, 0.3, "log"]},
    )
    max_features: int | None = Field(None, ge=1, le=100_000,
                                     description="Keep at most this many (the largest |coefficients|).")
    epochs: int = _EPOCHS
    lr: float = _LR
    batch_size: int = _BATCH
    init: Literal["finetune", "scratch"] = _INIT


class PCAConfig(TechniqueConfig):
    components: int = Field(5, ge=1, le=100_000, description="Principal components to keep.",
                            json_schema_extra={"sweep": [2, 3, 5, 10], "search": [1, 30]})
    variance: float | None = Field(
        None, gt=0.0, lt=1.0,
        description="Keep as many components as explain this fraction of the variance (overrides components).")
    epochs: int = _EPOCHS
    lr: float = _LR
    batch_size: int = _BATCH
    init: Literal["finetune", "scratch"] = _INIT


class _FeatureSelector(Technique):
    """Shared steps: inputs, selection, narrower model, retraining, result."""

    family = "feature-selection"
    needs_training_data = True
    sweep_field: ClassVar[str | None] = "k"
    fast_config: ClassVar[dict[str, Any]] = {"epochs": 2}

    def supports(self, candidate: Candidate) -> str | None:
        reason = require_torch(candidate)
        if reason:
            return reason
        if not candidate.is_tabular:
            return (f"feature selection is for tabular inputs (one row of features per sample); this model "
                    f"takes inputs of shape {candidate.input_shape}")
        return None

    # The one thing each technique decides: which columns / what projection.
    def select(self, X: np.ndarray, y: np.ndarray, task: str, config: Any, seed: int) -> dict[str, Any]:
        """``{"idx": kept column indices}`` or ``{"pca": (mean, components)}``, plus info entries."""
        raise NotImplementedError

    def _select_limited(self, X: np.ndarray, y: np.ndarray, task: str, config: Any, ctx: RunContext) -> dict[str, Any]:
        """``select`` with the BLAS of scipy (loaded by sklearn on first use) held to ``ctx.threads``."""
        import sklearn.feature_selection  # noqa: F401  (loads scipy's own BLAS before it is limited)
        import sklearn.linear_model  # noqa: F401
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=max(1, int(ctx.threads))):
            return self.select(X, y, task, config, ctx.seed)

    def _check_k(self, k: int, n_in: int, setting: str = "k") -> None:
        if k > n_in:
            raise ConfigError(
                f"{self.name}: {setting}={k} is larger than the number of input features ({n_in}); "
                f"rule: 1 ≤ {setting} ≤ {n_in}."
            )

    @run_threads
    def apply(self, candidate: Candidate, config: Any, ctx: RunContext) -> Candidate:
        from optim.techniques._train_common import (
            fold_target_scale,
            frozen_pipeline,
            scaled_split,
            target_scale,
            transformed,
        )
        from optim.training import TrainSettings, fit

        data = ctx.data
        X = transformed(candidate.transform, data.train.X)
        n_in = X.shape[1]
        raw_names = list(candidate.feature_names or data.feature_names or [f"x{i}" for i in range(data.input_shape[0])])
        names = transform_names(candidate.transform, raw_names)
        chosen = self._select_limited(X, np.asarray(data.train.y), data.task, config, ctx)
        if "idx" in chosen:
            idx = np.asarray(chosen.pop("idx"), dtype=np.int64)
            if len(idx) == 0:
                raise ConfigError(f"{self.name}: {self.step(config).spec()} kept no feature; loosen the setting.")
            projection = None
            step_transform: nn.Module = SelectColumns(idx)
            kept = [names[i] for i in idx]
            info: dict[str, Any] = {"kept_indices": idx.tolist()}
        else:
            mean, components = projection = chosen.pop("pca")
            idx = None
            step_transform = PCAProject(mean, components)
            kept = [f"pc{i + 1}" for i in range(len(components))]
            info = {}
        X_new = transformed(step_transform, X)
        module = narrow_input(candidate.model, n_in, X_new, idx=idx, projection=projection,
                              keep_weights=config.init == "finetune", seed=ctx.seed, fill=X.mean(axis=0))
        filled = fill_problem(candidate.model, n_in)
        if filled:
            info["input_not_narrowed"] = filled
        transform = step_transform if candidate.transform is None else \
            nn.Sequential(copy.deepcopy(candidate.transform), step_transform)
        info.update(chosen, kept_features=kept, n_features_in=n_in, n_features_kept=len(kept))
        if config.epochs:
            settings = TrainSettings(epochs=config.epochs, lr=config.lr, batch_size=config.batch_size, seed=ctx.seed)
            scale = target_scale(data.task, data.train.y, module) if config.init == "scratch" else None
            result = fit(frozen_pipeline(transform, module), scaled_split(data.train, scale),
                         scaled_split(data.val, scale), data.task, settings, ctx)
            fold_target_scale(module, scale)
            info["learning_curve"] = result.curve_dicts()
        ctx.log(f"{self.name}: kept {len(kept)} of {n_in}: {', '.join(kept[:12])}{' ...' if len(kept) > 12 else ''}")
        return candidate.derive(self.step(config, label=f"{len(kept)} features"), model=module.eval(),
                                transform=transform.eval(), info=info)


def _scaled(X: np.ndarray) -> np.ndarray:
    from sklearn.preprocessing import StandardScaler

    return StandardScaler().fit_transform(X)


@register_technique
class SelectKBest(_FeatureSelector):
    """Univariate selection: the k features with the best F-test or mutual-information score.

    scikit-learn ``SelectKBest`` (``f_classif`` / ``f_regression``, ``mutual_info_*``); Guyon &
    Elisseeff, "An Introduction to Variable and Feature Selection", JMLR 2003.
    """

    name = "select-kbest"
    Config = KBestConfig
    summary = "Keep the k features with the best univariate score (F-test or mutual information), retrain."
    reference = "Guyon & Elisseeff, JMLR 2003; scikit-learn SelectKBest"

    def select(self, X, y, task, config: KBestConfig, seed):
        from functools import partial

        from sklearn import feature_selection as fs

        self._check_k(config.k, X.shape[1])
        funcs = {("f", "classification"): fs.f_classif, ("f", "regression"): fs.f_regression,
                 ("mutual_info", "classification"): partial(fs.mutual_info_classif, random_state=seed),
                 ("mutual_info", "regression"): partial(fs.mutual_info_regression, random_state=seed)}
        selector = fs.SelectKBest(funcs[(config.score_func, task)], k=config.k).fit(_scaled(X), y)
        scores = np.nan_to_num(np.asarray(selector.scores_, dtype=np.float64))
        idx = np.sort(np.argsort(-scores, kind="stable")[:config.k])
        return {"idx": idx, "feature_scores": [round(float(s), 6) for s in scores]}


@register_technique
class SelectRFE(_FeatureSelector):
    """Recursive feature elimination: drop the least important feature, refit, repeat to k.

    Guyon, Weston, Barnhill, Vapnik, "Gene Selection for Cancer Classification using Support
    Vector Machines", Machine Learning 2002; scikit-learn ``RFE``.
    """

    name = "select-rfe"
    Config = RFEConfig
    summary = "Recursive feature elimination with a linear or forest ranker down to k features, retrain."
    reference = "Guyon et al., Machine Learning 2002; scikit-learn RFE"
    fast_config = {"epochs": 2, "step": 20}

    def select(self, X, y, task, config: RFEConfig, seed):
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
        from sklearn.feature_selection import RFE
        from sklearn.linear_model import LogisticRegression, Ridge

        self._check_k(config.k, X.shape[1])
        if config.estimator == "forest":
            est = (RandomForestClassifier if task == "classification" else RandomForestRegressor)(
                n_estimators=100, random_state=seed, n_jobs=1)
        else:
            est = LogisticRegression(max_iter=2000) if task == "classification" else Ridge(alpha=1.0)
        rfe = RFE(est, n_features_to_select=config.k, step=config.step).fit(_scaled(X), y)
        return {"idx": np.flatnonzero(rfe.support_), "feature_ranking": [int(r) for r in rfe.ranking_]}


@register_technique
class SelectLasso(_FeatureSelector):
    """L1-regularised selection: keep the features with a non-zero Lasso / L1-logistic coefficient.

    Tibshirani, "Regression Shrinkage and Selection via the Lasso", JRSS-B 1996; scikit-learn
    ``SelectFromModel``.
    """

    name = "select-lasso"
    Config = LassoConfig
    summary = "Keep the features an L1 (Lasso / L1-logistic) model gives non-zero weight, retrain."
    reference = "Tibshirani, JRSS-B 1996; scikit-learn SelectFromModel"
    sweep_field = "alpha"

    def select(self, X, y, task, config: LassoConfig, seed):
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.feature_selection import SelectFromModel
        from sklearn.linear_model import Lasso, LogisticRegression

        if config.max_features is not None:
            self._check_k(config.max_features, X.shape[1], "max_features")
        if task == "classification":
            # Lasso's alpha is per sample; logistic regression's C multiplies the summed loss.
            binary = len(np.unique(y)) <= 2
            # liblinear is exact and fast but two-class only; saga to a loose tolerance is enough
            # to tell zero from non-zero coefficients (a tight one took 5 s on digits).
            est = LogisticRegression(l1_ratio=1.0, C=1.0 / (config.alpha * len(y)),
                                     solver="liblinear" if binary else "saga", tol=1e-4 if binary else 1e-3,
                                     max_iter=1000, random_state=seed)
        else:
            est = Lasso(alpha=config.alpha, max_iter=10000, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            selector = SelectFromModel(est, threshold=1e-10, max_features=config.max_features).fit(_scaled(X), y)
        coef = np.abs(np.atleast_2d(selector.estimator_.coef_)).max(axis=0)
        idx = np.flatnonzero(selector.get_support())
        if len(idx) == 0:
            raise ConfigError(
                f"select-lasso: alpha={config.alpha:g} sets every coefficient to zero (no feature kept); "
                "use a smaller alpha."
            )
        return {"idx": idx, "feature_coefficients": [round(float(c), 6) for c in coef]}


@register_technique
class PCA(_FeatureSelector):
    """Principal component analysis: project the standardised features on the top components.

    Pearson 1901; Hotelling 1933; scikit-learn ``PCA`` (digits: 10 components + logistic
    regression ≈ 0.88 in its examples).
    """

    name = "pca"
    Config = PCAConfig
    summary = "Project the inputs on their top principal components (a count or a variance fraction), retrain."
    reference = "Hotelling 1933; scikit-learn PCA"
    sweep_field = "components"

    def select(self, X, y, task, config: PCAConfig, seed):
        from sklearn.decomposition import PCA as SkPCA
        from sklearn.preprocessing import StandardScaler

        if config.variance is None:
            self._check_k(config.components, X.shape[1], "components")
            if config.components > len(X):
                raise ConfigError(f"pca: components={config.components} is more than the {len(X)} training rows.")
        scaler = StandardScaler().fit(X)
        pca = SkPCA(n_components=config.variance if config.variance is not None else config.components,
                    random_state=seed).fit(scaler.transform(X))
        mean = scaler.mean_ + pca.mean_ * scaler.scale_
        components = pca.components_ / scaler.scale_[None, :]
        return {"pca": (mean, components),
                "explained_variance_ratio": [round(float(v), 6) for v in pca.explained_variance_ratio_],
                "explained_variance_total": float(pca.explained_variance_ratio_.sum())}
