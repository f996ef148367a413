"""Federated learning: FedAvg simulated across K clients, beside FedSGD and centralized training.

McMahan, Moore, Ramage, Hampson, Agüera y Arcas, "Communication-Efficient Learning of Deep
Networks from Decentralized Data", AISTATS 2017. Each round the server sends the global model to
a fraction C of the K clients; each trains E local epochs of minibatch SGD (batch B) on its own
data; the server replaces the global model by the average of the returned models weighted by
client sample counts. FedSGD is the special case E = 1, B = ∞ (one full-batch gradient step per
client per round). The paper's MNIST CNN, IID, 99% target: FedSGD 626 rounds, FedAvg (E = 5,
B = 10) 20 rounds (31× fewer).

The candidate is the final global model. By default it starts from a re-initialized copy of the
input architecture (``init=reinit``: the question is how well the architecture trains
federatedly); ``init=finetune`` starts from the input's weights instead. Fixed preprocessing inside
the model (``Standardize`` statistics) is kept either way. Accuracy per round is measured on the
test split (the model is not selected on it: the candidate is the last round's model).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Literal

import numpy as np
from pydantic import Field

from optim.candidate import Candidate
from optim.config import TechniqueConfig
from optim.context import RunContext
from optim.dataset import Split
from optim.errors import ConfigError, OptimError
from optim.registry import register_technique
from optim.techniques._train_common import (
    fold_target_scale,
    frozen_pipeline,
    last_linear,
    reinitialize,
    run_threads,
    scaled_split,
    target_scale,
)
from optim.techniques.base import Technique, require_torch


class FederatedConfig(TechniqueConfig):
    clients: int = Field(10, ge=1, le=10_000, description="K: number of simulated clients.")
    fraction: float = Field(
        0.5, gt=0.0, le=1.0,
        description="C: fraction of clients taking part in each round (at least one client).",
        json_schema_extra={"sweep": [0.1, 0.2, 0.5, 1.0]},
    )
    local_epochs: int = Field(5, ge=1, le=100, description="E: local epochs per round on each client.",
                              json_schema_extra={"sweep": [1, 5, 20]})
    local_batch: int = Field(10, ge=0, le=100_000,
                             description="B: local minibatch size; 0 means the client's whole data (B = ∞).")
    rounds: int = Field(20, ge=1, le=5000, description="Communication rounds.")
    split: Literal["iid", "dirichlet", "shards"] = Field(
        "iid",
        description="How training rows are dealt to clients: iid (shuffled, equal shares), dirichlet "
        "(label proportions per client ~ Dirichlet(alpha)), shards (sorted by label, cut into shards, "
        "shards_per_client each, as in the paper).",
    )
    alpha: float = Field(0.5, gt=0.0, le=1000.0, title="Dirichlet concentration",
                         description="Dirichlet concentration (split=dirichlet): small = each client sees few labels.")
    shards_per_client: int = Field(2, ge=1, le=100, description="split=shards: shards dealt to each client.")
    lr: float = Field(0.05, gt=0.0, le=10.0, description="Client learning rate (plain SGD, as in the paper).",
                      json_schema_extra={"search": [1e-3, 0.5, "log"]})
    init: Literal["reinit", "finetune"] = Field(
        "reinit", description="Start from re-initialized weights (reinit) or from the input model's (finetune).")
    target_accuracy: float | None = Field(
        None, ge=0.0, le=1.0,
        description="Rounds-to-target is reported for this test metric (accuracy, or R² for regression); "
        "default: 99% of the centralized model's final metric.",
    )
    compare_fedsgd: bool = Field(True, description="Also run FedSGD (E = 1, B = ∞) for the same rounds.")
    compare_centralized: bool = Field(
        True, description="Also train centrally on all the training data (same SGD, batch B).")
    centralized_epochs: int | None = Field(
        None, ge=1, le=1000,
        description="Epochs of the centralized reference; default rounds × C × E (as many passes over the "
        "data as FedAvg makes), at most 200.")


@register_technique
class Federated(Technique[FederatedConfig]):
    """FedAvg (McMahan et al., AISTATS 2017) simulated on the training split, with FedSGD and
    centralized training on the same data for comparison.

    ``info``: ``fl_rounds`` (round, accuracy, bytes communicated so far, seconds),
    ``rounds_to_target``, ``bytes_communicated``, ``fedsgd_rounds`` / ``fedsgd_rounds_to_target``,
    ``centralized_accuracy`` / ``centralized_curve``, ``client_sizes``, ``label_skew`` (mean
    total-variation distance between a client's label distribution and the global one).
    """

    name = "federated"
    family = "edge"
    Config = FederatedConfig
    summary = "FedAvg across simulated clients (IID or non-IID), beside FedSGD and centralized training."
    reference = "McMahan et al., AISTATS 2017"
    needs_training_data = True
    sweep_field = "local_epochs"
    fast_config = {"rounds": 2, "local_epochs": 1, "clients": 4, "compare_fedsgd": False,
                   "compare_centralized": False}

    def supports(self, candidate: Candidate) -> str | None:
        return require_torch(candidate)

    @run_threads
    def apply(self, candidate: Candidate, config: FederatedConfig, ctx: RunContext) -> Candidate:
        data = ctx.data
        n = len(data.train)
        if config.clients > n:
            raise ConfigError(
                f"federated: clients={config.clients}: more clients than training samples ({n}); "
                f"use at most {n} clients."
            )
        parts = split_clients(data.train.y, config.clients, config.split, task=data.task, alpha=config.alpha,
                              shards_per_client=config.shards_per_client, seed=ctx.seed)
        start = candidate.clone_module()
        if config.init == "reinit":
            reinitialize(start, ctx.seed)
        # Regression trains on z-scored targets like the other trainers (raw targets in the hundreds
        # make SGD diverge to NaN); the scale is folded back into the last Linear afterwards.
        scale = target_scale(data.task, data.train.y, start)
        if scale is not None:
            if config.init != "reinit":
                unfold_target_scale(start, scale)
            data = dataclasses.replace(data, train=scaled_split(data.train, scale),
                                       val=scaled_split(data.val, scale), test=scaled_split(data.test, scale))
        target = config.target_accuracy
        info: dict[str, Any] = {
            "split": config.split, "clients": config.clients,
            "clients_per_round": clients_per_round(config.clients, config.fraction),
            "client_sizes": [int(len(p)) for p in parts],
            "label_skew": label_skew(data.train.y, parts) if data.task == "classification" else None,
            "init": config.init,
        }
        central = None
        if config.compare_centralized:
            ctx.progress("centralized training (reference)", 0.0)
            central = centralized(start, candidate.transform, data, config, ctx)
            info["centralized_accuracy"] = central["final"]
            info["centralized_epochs"] = central["epochs"]
            info["centralized_curve"] = central["curve"]
            if target is None:
                target = 0.99 * central["final"]
        info["target_accuracy"] = target

        model, rounds = fedavg(start, candidate.transform, data, parts, config, ctx, E=config.local_epochs,
                               B=config.local_batch, label="FedAvg")
        info["fl_rounds"] = rounds
        info["rounds_to_target"] = rounds_to_target(rounds, target)
        info["bytes_communicated"] = rounds[-1]["bytes"] if rounds else 0
        info["final_accuracy"] = rounds[-1]["accuracy"] if rounds else None
        info["learning_curve"] = [{"epoch": r["round"], "train_loss": r["train_loss"], "val_metric": r["accuracy"],
                                   "seconds": r["seconds"], "lr": config.lr} for r in rounds]
        if central is not None:
            info["accuracy_gap_vs_centralized"] = central["final"] - info["final_accuracy"]
        if config.compare_fedsgd:
            _, sgd_rounds = fedavg(start, candidate.transform, data, parts, config, ctx, E=1, B=0, label="FedSGD")
            info["fedsgd_rounds"] = sgd_rounds
            info["fedsgd_rounds_to_target"] = rounds_to_target(sgd_rounds, target)
            info["fedsgd_accuracy"] = sgd_rounds[-1]["accuracy"] if sgd_rounds else None
        fold_target_scale(model, scale)
        _check_converged(model, data, info, config, len(rounds))
        return candidate.derive(self.step(config), model=model, info=info)


def _check_converged(model: Any, data: Any, info: dict[str, Any], config: FederatedConfig, n_rounds: int) -> None:
    """A diverged global model (non-finite weights) fails the row; one that collapsed to the
    majority class is flagged in ``info["warning"]``."""
    import torch

    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise OptimError(
            f"federated: FedAvg diverged: the global model has non-finite weights after {n_rounds} round(s).",
            hint=f"Lower lr (now {config.lr:g}) or local_epochs (now {config.local_epochs}).",
        )
    final = info.get("final_accuracy")
    if data.task == "classification" and final is not None and len(data.test):
        counts = np.bincount(np.asarray(data.test.y, np.int64))
        chance = max(float(counts.max() / len(data.test)), 1.0 / max(2, len(counts)))
        if final < 1.5 * chance:
            info["warning"] = (f"collapsed: test accuracy {final:.3f} is not clearly above chance ({chance:.3f}: "
                               f"always the most frequent class); try a lower lr, more rounds or init=finetune")


def unfold_target_scale(module: Any, scale: tuple[float, float]) -> None:
    """The inverse of fold_target_scale: make a model that outputs raw targets output z-scores."""
    import torch

    mean, std = scale
    last = last_linear(module)
    with torch.no_grad():
        if last.bias is not None:
            last.bias.sub_(mean).div_(std)
        last.weight.div_(std)


# --- client data ---------------------------------------------------------------------------------
def clients_per_round(clients: int, fraction: float) -> int:
    """m = max(round(C·K), 1), as in the paper."""
    return max(1, int(round(fraction * clients)))


def split_clients(y: np.ndarray, clients: int, how: str, *, task: str = "classification", alpha: float = 0.5,
                  shards_per_client: int = 2, seed: int = 0) -> list[np.ndarray]:
    """Row indices of each client's share of the training data (every client gets at least one row).

    ``iid``: shuffled, equal shares. ``dirichlet``: for each class, its rows are dealt to clients in
    proportions drawn from Dirichlet(alpha) (Hsu et al. 2019). ``shards``: rows sorted by label and
    cut into ``clients × shards_per_client`` equal shards, each client getting ``shards_per_client``
    random shards (McMahan et al. 2017: 200 shards of 300, two per client). Regression targets are
    binned into 10 quantiles to act as labels for the non-IID splits.
    """
    y = np.asarray(y)
    n = len(y)
    rng = np.random.default_rng(seed)
    if clients > n:
        raise ConfigError(f"clients={clients}: more clients than training samples ({n}); use at most {n}.")
    labels = y if task == "classification" else np.digitize(y, np.quantile(y, np.linspace(0, 1, 11)[1:-1]))
    if how == "iid":
        return [np.sort(p) for p in np.array_split(rng.permutation(n), clients)]
    if how == "shards":
        n_shards = clients * shards_per_client
        if n_shards > n:
            raise ConfigError(
                f"shards_per_client={shards_per_client}: clients × shards_per_client = {n_shards} shards "
                f"but only {n} training samples; use fewer clients or shards."
            )
        order = np.argsort(labels, kind="stable")
        shards = np.array_split(order, n_shards)
        deal = rng.permutation(n_shards).reshape(clients, shards_per_client)
        return [np.sort(np.concatenate([shards[s] for s in row])) for row in deal]
    if how == "dirichlet":
        classes = np.unique(labels)
        for _ in range(100):  # redraw until every client has data (small alpha can starve one)
            owner = np.empty(n, dtype=np.int64)
            for c in classes:
                idx = rng.permutation(np.flatnonzero(labels == c))
                p = rng.dirichlet(np.full(clients, alpha))
                cuts = (np.cumsum(p)[:-1] * len(idx)).astype(int)
                for k, part in enumerate(np.split(idx, cuts)):
                    owner[part] = k
            parts = [np.flatnonzero(owner == k) for k in range(clients)]
            if all(len(p) for p in parts):
                return parts
        raise ConfigError(
            f"alpha={alpha}: with {clients} clients and {n} samples, Dirichlet(alpha) left a client with no "
            f"data in 100 draws; raise alpha or use fewer clients."
        )
    raise ConfigError(f"split={how!r}: unknown; allowed: iid, dirichlet, shards.")


def label_skew(y: np.ndarray, parts: list[np.ndarray]) -> float:
    """Mean total-variation distance between each client's label distribution and the global one
    (0 = IID; near 1 = each client sees labels the others do not)."""
    y = np.asarray(y)
    classes = np.unique(y)
    glob = np.array([(y == c).mean() for c in classes])
    dists = []
    for p in parts:
        local = np.array([(y[p] == c).mean() for c in classes])
        dists.append(0.5 * np.abs(local - glob).sum())
    return float(np.mean(dists))


# --- training --------------------------------------------------------------------------------------
def _model_bytes(module: Any) -> int:
    """Bytes of one copy of the model's state (parameters and buffers) as sent over the network."""
    return int(sum(t.numel() * t.element_size() for t in module.state_dict().values()))


def average_states(states: list[dict], weights: list[float]) -> dict:
    """Weighted average of state dicts; integer buffers (batch-norm counters) take the largest value."""
    import torch

    total = float(sum(weights))
    out = {}
    for key in states[0]:
        ref = states[0][key]
        if torch.is_floating_point(ref):
            acc = torch.zeros_like(ref, dtype=torch.float64)
            for s, w in zip(states, weights):
                acc += s[key].to(torch.float64) * (w / total)
            out[key] = acc.to(ref.dtype)
        else:
            out[key] = torch.stack([s[key] for s in states]).max(dim=0).values
    return out


def fedavg(start: Any, transform: Any, data: Any, parts: list[np.ndarray], config: FederatedConfig,
           ctx: RunContext, *, E: int, B: int, label: str, lr: float | None = None,
           stop_at: float | None = None) -> tuple[Any, list[dict[str, Any]]]:
    """Run ``config.rounds`` rounds of FedAvg from ``start`` (not modified); return the final global
    model and one record per round. E = 1 with B = 0 (whole client data) is FedSGD. ``lr`` overrides
    ``config.lr``; ``stop_at`` ends the run at the first round whose test metric reaches it."""
    import copy

    from optim.training import TrainSettings, evaluate, fit

    global_model = copy.deepcopy(start)
    local = copy.deepcopy(start)
    pipe_global = frozen_pipeline(transform, global_model)
    pipe_local = frozen_pipeline(transform, local)
    m = clients_per_round(config.clients, config.fraction)
    rng = np.random.default_rng(ctx.seed + (0 if label == "FedAvg" else 7919))
    per_round = 2 * m * _model_bytes(global_model)  # download + upload for each chosen client
    rounds: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for r in range(1, config.rounds + 1):
        ctx.check_cancelled()
        chosen = rng.choice(len(parts), size=m, replace=False)
        states, weights, losses = [], [], []
        for k in chosen:
            idx = parts[k]
            local.load_state_dict(global_model.state_dict())
            batch = len(idx) if B == 0 else min(B, len(idx))
            settings = TrainSettings(epochs=E, batch_size=batch, optimizer="sgd", lr=lr or config.lr,
                                     restore_best=False, seed=ctx.seed * 100_003 + r * 1009 + int(k))
            res = fit(pipe_local, Split(data.train.X[idx], data.train.y[idx]), data.val, data.task, settings,
                      loss_fn=None, evaluate_fn=lambda _m: 0.0)  # local evaluation is not part of FedAvg
            states.append({k2: v.detach().clone() for k2, v in local.state_dict().items()})
            weights.append(float(len(idx)))
            losses.append(res.curve[-1].train_loss if res.curve else float("nan"))
        global_model.load_state_dict(average_states(states, weights))
        acc = evaluate(pipe_global, data.test, data.task)
        rounds.append({"round": r, "accuracy": float(acc), "bytes": per_round * r,
                       "train_loss": float(np.average(losses, weights=weights)),
                       "seconds": time.perf_counter() - t0})
        ctx.progress(f"{label} round {r}/{config.rounds}: test {acc:.4f}", r / config.rounds)
        if stop_at is not None and acc >= stop_at:
            break
    global_model.eval()
    return global_model, rounds


def centralized(start: Any, transform: Any, data: Any, config: FederatedConfig, ctx: RunContext) -> dict[str, Any]:
    """The same architecture trained on all the training data with the same SGD and batch size, for
    ``centralized_epochs`` or else ``rounds × C × E`` epochs (capped at 200) — as many passes over
    the data as FedAvg makes (with K times more sequential steps per pass than a FedAvg round)."""
    import copy

    from optim.training import TrainSettings, evaluate, fit

    model = copy.deepcopy(start)
    pipe = frozen_pipeline(transform, model)
    frac = clients_per_round(config.clients, config.fraction) / config.clients
    epochs = config.centralized_epochs or int(min(200, max(1, math.ceil(config.rounds * frac * config.local_epochs))))
    batch = len(data.train) if config.local_batch == 0 else config.local_batch
    settings = TrainSettings(epochs=epochs, batch_size=batch, optimizer="sgd", lr=config.lr, restore_best=False,
                             seed=ctx.seed)
    res = fit(pipe, data.train, data.val, data.task, settings, ctx,
              evaluate_fn=lambda m: evaluate(m, data.test, data.task))
    final = evaluate(pipe, data.test, data.task)
    return {"final": float(final), "epochs": epochs,
            "curve": [{"epoch": c.epoch, "accuracy": c.val_metric} for c in res.curve]}


def rounds_to_target(rounds: list[dict[str, Any]], target: float | None) -> int | None:
    """The first round whose test metric reached ``target`` (None if none did)."""
    if target is None:
        return None
    for r in rounds:
        if r["accuracy"] >= target:
            return int(r["round"])
    return None
