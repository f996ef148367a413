"""Adaptive computation: early exits (BranchyNet).

Exit heads are attached after chosen intermediate blocks of a network; at inference each sample
leaves at the first exit confident enough, so easy samples skip the rest of the network.

Teerapittayanon, McDanel, Kung, "BranchyNet: Fast Inference via Early Exiting from Deep Neural
Networks", ICPR 2016 (LeNet on MNIST: 94.3% of samples leave at the first exit, CPU time
3.37 → 0.62 ms, accuracy 99.20% → 99.25%).

How the model runs (:class:`optim.techniques._early_exit_net.EarlyExitNet`):

- eager PyTorch and TorchScript (``torch.jit.script``): real early stopping. At batch 1 the forward
  returns at the first confident exit; at batch > 1 the rows that have left are dropped and only
  the still-undecided rows go on to the next stage.
- ONNX (``torch.export`` / the dynamo exporter): each exit becomes an ONNX ``If`` (via
  ``torch.cond``): when every row of the batch is confident the rest of the network is skipped
  (always the case at batch 1 for a confident sample); otherwise the rest runs for the batch and
  each row keeps the output of its first confident exit. Outputs equal the eager ones.
- traced TorchScript (``torch.jit.trace``, the fallback when scripting fails): every exit is
  computed and each row takes its first confident exit: correct outputs, no time saved.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from typing import Any, Literal, TypedDict, cast

import numpy as np
from pydantic import Field, field_validator

from optim.candidate import Candidate, network_input_shape
from optim.config import TechniqueConfig
from optim.context import RunContext
from optim.errors import ConfigError, UnsupportedError
from optim.registry import register_technique
from optim.techniques._train_common import run_threads, transformed
from optim.techniques.base import Technique, require_torch
from optim.views import Rows, chart


# --- config ------------------------------------------------------------------------------------------
class EarlyExitConfig(TechniqueConfig):
    threshold: float = Field(
        0.9, ge=0.0, le=1.0,
        description="Confidence a sample needs to leave at an exit (0–1; higher: fewer early exits, "
        "accuracy closer to the full network).",
        json_schema_extra={"sweep": [0.5, 0.7, 0.8, 0.9, 0.95, 0.99]},
    )
    thresholds: tuple[float, ...] | None = Field(
        None,
        description="Several thresholds separated by ';' (e.g. 0.5;0.8;0.9): the heads are trained "
        "once and one candidate is returned per threshold.",
    )
    criterion: Literal["max_softmax", "entropy"] = Field(
        "max_softmax",
        description="Confidence measure: largest softmax probability, or 1 − normalised softmax entropy "
        "(BranchyNet).",
    )
    exits: tuple[int, ...] = Field(
        (1,),
        description="Blocks after which an exit is attached, separated by ';' (1 = after the first "
        "Linear/Conv block). Must be before the last block.",
    )
    train: Literal["frozen", "joint"] = Field(
        "frozen",
        description="frozen: only the exit heads train (the backbone's outputs stay exactly as they "
        "were); joint: the whole network trains with a weighted sum of every exit's loss.",
    )
    exit_weight: float = Field(
        1.0, gt=0.0, le=10.0,
        description="Joint training: loss weight of each exit head relative to the final output.",
    )
    epochs: int = Field(10, ge=1, le=200, description="Training epochs for the exit heads.")
    lr: float = Field(1e-3, gt=0.0, le=1.0, description="Learning rate (Adam).",
                      json_schema_extra={"search": [1e-4, 1e-2, "log"]})

    @field_validator("thresholds")
    @classmethod
    def _thresholds_in_range(cls, v: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if v is not None:
            if not v:
                raise ValueError("give at least one threshold")
            bad = [t for t in v if not 0.0 <= t <= 1.0]
            if bad:
                raise ValueError(f"every threshold must be between 0 and 1; got {bad[0]}")
        return v

    @field_validator("exits")
    @classmethod
    def _exits_valid(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v:
            raise ValueError("give at least one exit block")
        if min(v) < 1:
            raise ValueError(f"exit blocks are numbered from 1; got {min(v)}")
        if len(set(v)) != len(v):
            raise ValueError("each exit block may be given once")
        return tuple(sorted(v))


# --- the technique -------------------------------------------------------------------------------------
#: Above this many cached feature values (rows × exit inputs), frozen training runs the backbone
#: every batch instead of caching its outputs (about 200 MB of float32).
_MAX_CACHED_VALUES = 50_000_000


@register_technique
class EarlyExit(Technique[EarlyExitConfig]):
    """Early-exit heads after intermediate blocks; inference stops at the first confident exit.

    Teerapittayanon et al., "BranchyNet", ICPR 2016. The candidate's ``macs`` is the average
    computed per test sample; ``info`` has ``exit_fractions`` (share of test samples leaving at each
    exit, the last entry being the full network), ``exit_accuracy`` (each exit's accuracy on all test
    samples), ``exit_accuracy_taken`` (accuracy of the samples that left there) and
    ``latency_ms_mean_b1_test`` (mean batch-1 latency over the test rows, the real path).
    """

    name = "early-exit"
    family = "adaptive"
    Config = EarlyExitConfig
    summary = "Exit heads after early blocks; confident samples skip the rest of the network."
    reference = "Teerapittayanon et al., BranchyNet, ICPR 2016"
    needs_training_data = True
    sweep_field = "threshold"
    fast_config = {"epochs": 1}

    def supports(self, candidate: Candidate) -> str | None:
        reason = require_torch(candidate)
        if reason:
            return reason
        from optim.techniques._early_exit_net import EarlyExitNet, split_blocks

        if candidate.task != "classification":
            return "early exit needs a classifier (its confidence is a softmax probability)"
        if isinstance(candidate.model, EarlyExitNet):
            return "the model already has early exits"
        if len(split_blocks(candidate.model, network_input_shape(candidate))) < 2:
            return ("the model cannot be cut into two blocks with a Linear/Conv layer each: its graph has no cut "
                    "point between two such layers (a node every input-to-output path passes through)")
        return None

    @run_threads
    def apply(self, candidate: Candidate, config: EarlyExitConfig, ctx: RunContext) -> list[Candidate]:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        from optim.dataset import Split
        from optim.techniques._early_exit_net import AllExits, HeadsOnFeatures, exit_features
        from optim.training import TrainSettings, fit

        data = ctx.data
        net, macs_parts = self._build(candidate, config, ctx)
        frozen = config.train == "frozen"
        train, val = data.train, data.val
        if frozen and len(train) * macs_parts["exit_feature_size"] <= _MAX_CACHED_VALUES:
            # The backbone does not change: compute each exit's input once, train only the heads.
            Xtr, shapes = exit_features(candidate.transform, net.eval(), train.X)
            Xva, _ = exit_features(candidate.transform, net, val.X)
            train, val = Split(Xtr, train.y), Split(Xva, val.y)
            trainer: Any = HeadsOnFeatures([b.head for b in net.blocks], shapes)
            weights = [config.exit_weight] * len(net.blocks)
        else:
            trainer = AllExits(candidate.transform, net, frozen)  # copies the transform
            weights = [config.exit_weight] * len(net.blocks) + [0.0 if frozen else 1.0]
        n_heads = len(net.blocks)

        def loss_fn(outs: Any, y: Any, x: Any) -> Any:
            return sum(w * F.cross_entropy(o, y) for w, o in zip(weights, outs) if w > 0)

        val_X = torch.from_numpy(np.asarray(val.X, np.float32))

        def val_metric(m: Any) -> float:
            m.eval()
            with torch.inference_mode():
                outs = m(val_X)
            used = outs[:n_heads] if frozen else outs
            return float(np.mean([(o.argmax(1).numpy() == val.y).mean() for o in used]))

        params = [p for p in trainer.parameters() if p.requires_grad]
        ctx.log(f"early-exit: training {n_heads} exit head(s) ({config.train}) for {config.epochs} epochs")
        result = fit(trainer, train, val, data.task,
                     TrainSettings(epochs=config.epochs, lr=config.lr, seed=ctx.seed),
                     ctx, loss_fn=loss_fn, params=params, evaluate_fn=val_metric)
        net.eval()
        for p in net.parameters():
            p.requires_grad_(True)

        parent_latency = _mean_latency_b1(candidate.torch_module(), data.test.X)
        test_X = data.test.X if candidate.transform is None else transformed(candidate.transform, data.test.X)
        with torch.inference_mode():
            exits = [o.float() for o in net.all_exits(torch.from_numpy(np.asarray(test_X, np.float32)))]
        thresholds = config.thresholds or (config.threshold,)
        out = []
        for t in thresholds:
            variant = copy.deepcopy(net)
            variant.threshold = float(t)
            stats = exit_statistics(variant, exits, data.test.y, macs_parts)
            module = variant if candidate.transform is None else nn.Sequential(candidate.transform, variant)
            latency = _mean_latency_b1(module, data.test.X)
            # each candidate's lineage replays as one threshold (the heads retrain identically: same seed)
            values = {k: v for k, v in config.explicit().items() if k != "thresholds"}
            cfg = type(config).build(self.name, **{**values, "threshold": float(t)})
            info = {
                **stats, "threshold": float(t), "criterion": config.criterion,
                "exit_blocks": list(config.exits), "blocks": macs_parts["blocks"], "train_mode": config.train,
                "learning_curve": result.curve_dicts(),
                "latency_ms_mean_b1_test": latency, "latency_ms_mean_b1_test_parent": parent_latency,
                "speedup_mean_b1_test": parent_latency / latency if latency > 0 else None,
            }
            early = float(sum(stats["exit_fractions"][:-1]))
            if early == 0.0:
                # Every sample runs the whole network plus the heads: nothing to gain, whatever a
                # latency difference (noise, or a different runtime than the parent's) suggests.
                info["no_effect"] = (f"no test sample left at an early exit at threshold {t:g}; the variant runs "
                                     "the full network plus its exit heads")
                info["speedup_mean_b1_test"] = None
            out.append(candidate.derive(self.step(cfg, label=f"threshold={t:g}"), model=variant, info=info))
        return out

    def _build(self, candidate: Candidate, config: EarlyExitConfig, ctx: RunContext) -> tuple[Any, dict]:
        import torch
        import torch.nn as nn

        from optim.evaluation.flops import torch_macs
        from optim.techniques._early_exit_net import EarlyExitNet, ExitBlock, make_head, split_blocks

        backbone = candidate.clone_module().eval()
        blocks = split_blocks(backbone, network_input_shape(candidate))
        last_allowed = len(blocks) - 1
        for e in config.exits:
            if e > last_allowed:
                raise ConfigError(
                    f"early-exit: exits={';'.join(map(str, config.exits))}: an exit after block {e} is at or past "
                    f"the last block; this model has {len(blocks)} blocks, so exits must be between 1 and "
                    f"{last_allowed}."
                )
        sample = np.asarray(ctx.data.train.X[:2], np.float32)
        if candidate.transform is not None:
            sample = transformed(candidate.transform, sample)
        x = torch.from_numpy(sample)
        with torch.inference_mode():
            reference = backbone(x)
        cuts = [0, *config.exits, len(blocks)]
        stages = [nn.Sequential(*[u for b in blocks[a:b] for u in b]) for a, b in zip(cuts[:-1], cuts[1:])]
        torch.manual_seed(ctx.seed)
        exit_blocks = []
        stage_macs, head_macs = [], []
        feature_size = 0
        h = x
        n_classes = candidate.num_outputs
        for stage in stages[:-1]:
            with torch.inference_mode():
                stage_macs.append(_macs(torch_macs(stage, tuple(h.shape[1:]))))
                h = stage(h)
            head = make_head(tuple(h.shape[1:]), n_classes)
            with torch.inference_mode():
                head_macs.append(_macs(torch_macs(head, tuple(h.shape[1:]))))
            exit_blocks.append(ExitBlock(stage, head))
            feature_size += int(np.prod(h.shape[1:]))
        with torch.inference_mode():
            stage_macs.append(_macs(torch_macs(stages[-1], tuple(h.shape[1:]))))
            composed = stages[-1](h)
        if composed.shape != reference.shape or not torch.allclose(composed, reference, atol=1e-4, rtol=1e-4):
            raise UnsupportedError(
                "early-exit: cutting this model into blocks changed its outputs (its forward does more than "
                "run its layers in order, or its graph could not be traced)."
            )
        net = EarlyExitNet(exit_blocks, stages[-1], config.threshold, 1 if config.criterion == "entropy" else 0)
        return net, {"stage_macs": stage_macs, "head_macs": head_macs, "blocks": len(blocks),
                     "exit_feature_size": feature_size}


def exit_statistics(net: Any, exits: list[Any], y: np.ndarray, macs_parts: dict) -> dict[str, Any]:
    """Where each test sample leaves at ``net.threshold`` and what it costs, from every exit's logits.

    ``exit_fractions`` (one per exit, then the final output), ``exit_accuracy`` (each exit on all
    samples), ``exit_accuracy_taken`` (accuracy of the samples that left there; None if none did),
    ``accuracy_early_exit``, ``macs`` (average per sample: a sample leaving at exit *i* paid for
    stages 1..i and heads 1..i), ``macs_full`` (the backbone alone).
    """
    y = np.asarray(y)
    n_exits = len(exits) - 1
    chosen = np.full(len(y), n_exits)
    for i in range(n_exits - 1, -1, -1):
        done = (net.confidence(exits[i]) >= net.threshold).numpy()
        chosen[done] = i
    preds = np.stack([e.argmax(1).numpy() for e in exits])  # (exits + 1, n)
    final_pred = preds[chosen, np.arange(len(y))]
    fractions = [float((chosen == i).mean()) for i in range(n_exits + 1)]
    taken = []
    for i in range(n_exits + 1):
        mask = chosen == i
        taken.append(float((preds[i][mask] == y[mask]).mean()) if mask.any() else None)
    stage, head = macs_parts["stage_macs"], macs_parts["head_macs"]
    cost = [sum(stage[: i + 1]) + sum(head[: i + 1]) for i in range(n_exits)] + [sum(stage) + sum(head)]
    return {
        "exit_fractions": fractions,
        "exit_accuracy": [float((p == y).mean()) for p in preds],
        "exit_accuracy_taken": taken,
        "accuracy_early_exit": float((final_pred == y).mean()),
        "macs": float(sum(f * c for f, c in zip(fractions, cost))),
        "macs_full": int(sum(stage)),
        "macs_per_exit": cost,
        "early_exit_fraction": float(1.0 - fractions[-1]),
    }


def _macs(value: int | None) -> int:
    # torch_macs returns None only when it cannot run the module, which _build just did
    return int(value or 0)


def _mean_latency_b1(module: Any, X: np.ndarray, max_rows: int = 200) -> float:
    """Mean batch-1 latency (ms) over real rows, one thread: each row takes its own path."""
    import torch

    rows = [torch.from_numpy(np.asarray(X[i:i + 1], np.float32)) for i in range(min(len(X), max_rows))]
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        module.eval()
        with torch.inference_mode():
            for r in rows[:20]:
                module(r)
            t0 = time.perf_counter()
            for r in rows:
                module(r)
            return (time.perf_counter() - t0) / max(1, len(rows)) * 1e3
    finally:
        torch.set_num_threads(old)


# --- views: this technique's charts (the Compare page, the export and the report list them) -------
class EarlyExitInfo(TypedDict, total=False):
    """The ``info`` keys early-exit writes that its chart reads."""

    exit_fractions: list[float] | dict[str, float]


def _info(row: Mapping[str, Any]) -> EarlyExitInfo:
    from optim.charts import details

    return cast(EarlyExitInfo, details(row))


@chart("exits", "Early exit", order=70)
def exit_distribution(rows: Rows) -> Any | None:
    """Share of test samples leaving at each exit of an early-exit model (BranchyNet)."""
    from optim.charts import apply_layout, family_color, num, ok_rows, plotly_go

    go = plotly_go()
    found = []
    for r in ok_rows(rows):
        ef = _info(r).get("exit_fractions")
        if isinstance(ef, Mapping) and ef:
            found.append((r, [str(k) for k in ef], [num(v) for v in ef.values()]))
        elif isinstance(ef, list) and ef:
            labels = [f"exit {i + 1}" for i in range(len(ef) - 1)] + ["final"]
            found.append((r, labels, [num(v) for v in ef]))
    if not found:
        return None
    fig = go.Figure()
    for r, labels, fracs in found:
        fig.add_trace(go.Bar(x=labels, y=[f * 100 for f in fracs], name=f"{r.get('candidate_id')} {r.get('recipe')}",
                             marker_color=family_color(str(r.get("family"))) if len(found) == 1 else None,
                             text=[f"{f * 100:.1f}%" for f in fracs], textposition="outside", cliponaxis=False))
    fig.update_yaxes(title_text="test samples (%)", range=[0, 110])
    return apply_layout(fig, "Where samples leave the network (early exit)", height=380, barmode="group")
