"""FedAvg vs FedSGD on digits: communication rounds to a target accuracy, IID and non-IID clients.

    .venv/bin/python benchmarks/federated.py [--out benchmarks/results/federated.md] [--quick]

Reproduces the shape of McMahan et al., *Communication-Efficient Learning of Deep Networks from
Decentralized Data*, AISTATS 2017, Table 2 (MNIST CNN, IID, 99% target: FedSGD 626 rounds,
FedAvg with E = 5, B = 10 20 rounds, 31× fewer). Here: the bundled digits-cnn architecture,
re-initialized, on the digits training split (1,257 rows) dealt to K = 10 clients, C = 0.5 (five
clients a round); target 98% test accuracy (the centrally trained sample reaches 98.9%). As in the
paper, each method gets its best learning rate from a small grid, and FedSGD is FedAvg with E = 1,
B = ∞. Non-IID = the paper's pathological split: rows sorted by label, two shards per client.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import emit  # noqa: E402  (benchmarks/ is on sys.path when a script runs)

from optim.context import RunContext  # noqa: E402
from optim.evaluation.environment import environment_info  # noqa: E402
from optim.io.models import load_sample  # noqa: E402
from optim.registry import get  # noqa: E402
from optim.techniques._train_common import reinitialize  # noqa: E402
from optim.techniques.federated import (  # noqa: E402
    _model_bytes,
    clients_per_round,
    fedavg,
    label_skew,
    split_clients,
)

K, C, TARGET = 10, 0.5, 0.98
#: (name, E, B (0 = ∞), learning-rate grid, round budget)
METHODS = [
    ("FedSGD", 1, 0, (0.03, 0.1, 0.3, 1.0), 1500),
    ("FedAvg", 1, 10, (0.03, 0.1), 300),
    ("FedAvg", 5, 10, (0.03, 0.1), 150),
    ("FedAvg", 20, 10, (0.03, 0.1), 100),
    ("FedAvg", 5, 0, (0.03, 0.1, 0.3), 300),
]


def run(start, splits, parts, ctx, name, E, B, lrs, budget):
    """Best learning rate (fewest rounds to TARGET) over ``lrs``: (lr, rounds or None, final acc, seconds)."""
    tech = get("federated")
    best = None
    for lr in lrs:
        cfg = tech.config(clients=K, fraction=C, rounds=budget, lr=lr)
        t0 = time.perf_counter()
        _, rounds = fedavg(start, None, splits, parts, cfg, ctx, E=E, B=B, label=name, lr=lr, stop_at=TARGET)
        seconds = time.perf_counter() - t0
        reached = rounds[-1]["round"] if rounds[-1]["accuracy"] >= TARGET else None
        key = reached if reached is not None else math.inf
        if best is None or key < best[0]:
            best = (key, lr, reached, max(r["accuracy"] for r in rounds), seconds, len(rounds))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    parser.add_argument("--quick", action="store_true", help="IID only, smaller grids (a smoke run)")
    args = parser.parse_args(argv)
    import torch

    from optim.training import TrainSettings, evaluate, fit

    torch.set_num_threads(1)
    base, splits = load_sample("digits-cnn")
    ctx = RunContext(data=splits, seed=0, threads=1)
    start = reinitialize(base.clone_module(), 0)
    model_bytes = _model_bytes(start)
    m = clients_per_round(K, C)
    splits_to_run = [("IID", "iid")] + ([] if args.quick else [("non-IID (2 shards/client)", "shards")])
    methods = [(n, E, B, lrs[:1] if args.quick else lrs, budget) for n, E, B, lrs, budget in METHODS]

    # Centralized reference: same architecture and SGD, batch 10, all the data.
    central = reinitialize(base.clone_module(), 0)
    t0 = time.perf_counter()
    res = fit(central, splits.train, splits.val, splits.task,
              TrainSettings(epochs=60, batch_size=10, optimizer="sgd", lr=0.03, target_metric=TARGET,
                            restore_best=False), ctx, evaluate_fn=lambda mod: evaluate(mod, splits.test, splits.task))
    central_s = time.perf_counter() - t0

    env = environment_info()
    lines = [
        "## Federated learning on digits (`federated`: FedAvg vs FedSGD)",
        "",
        f"Command: `.venv/bin/python benchmarks/federated.py` · date {date.today()} · machine: {env['cpu_model']}, "
        f"{env['cpu_logical_cores']} logical cores (shared), torch {env['torch']}, 1 thread · one run (seed 0). "
        f"digits-cnn re-initialized; K = {K} clients, C = {C} ({m} clients a round); target {TARGET:.0%} test accuracy "
        f"({len(splits.test)} rows); model {model_bytes:,} bytes, so a round moves 2 × {m} × {model_bytes:,} bytes. "
        "Best learning rate per method from the grid shown (as in the paper). u = local updates per client per round.",
        "",
        "| clients | method | E | B | u | lr grid → best | rounds to target | rounds ratio vs FedSGD | MB "
        "communicated to target | best accuracy seen | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    summary = {}
    for split_label, how in splits_to_run:
        parts = split_clients(splits.train.y, K, how, seed=0, shards_per_client=2)
        n_k = sum(len(p) for p in parts) / K
        sgd_rounds = None
        for name, E, B, lrs, budget in methods:
            key, lr, reached, best_acc, seconds, ran = run(start, splits, parts, ctx, name, E, B, lrs, budget)
            u = E * (1 if B == 0 else math.ceil(n_k / B))
            if name == "FedSGD":
                sgd_rounds = reached
            ratio = f"{sgd_rounds / reached:.1f}×" if (reached and sgd_rounds) else "—"
            rounds_txt = str(reached) if reached else f"> {ran} (not reached)"
            mb = f"{2 * m * model_bytes * reached / 1e6:.1f}" if reached else "—"
            lines.append(
                f"| {split_label} (skew {label_skew(splits.train.y, parts):.2f}) | {name} | {E} | "
                f"{'∞' if B == 0 else B} | {u} | "
                f"{', '.join(f'{x:g}' for x in lrs)} → {lr:g} | {rounds_txt} | {ratio} | {mb} | {best_acc:.4f} | "
                f"{seconds:.1f} |"
            )
            summary[(how, name, E, B)] = reached
    lines += [
        f"| centralized (all data) | SGD | — | 10 | — | 0.03 | {res.epochs_to_target or '> 60'} epochs | — | — | "
        f"{res.best_val_metric:.4f} | {central_s:.1f} |",
        "| **McMahan et al. 2017, MNIST CNN, IID, 99%** (secondary) | FedSGD / FedAvg | 5 | 10 | 300 | tuned | 626 / "
        "20 | **31×** | — | — | — |",
        "",
    ]
    sgd, avg = summary.get(("iid", "FedSGD", 1, 0)), summary.get(("iid", "FedAvg", 5, 10))
    if sgd and avg:
        lines.append(
            f"Result: on IID clients FedAvg (E = 5, B = 10) reached {TARGET:.0%} in {avg} rounds against FedSGD's "
            f"{sgd}: "
            f"{sgd / avg:.1f}× fewer communication rounds (paper: 31× on MNIST, where each client holds 600 rows and "
            "makes u = 300 local updates a round; here a client holds ~126 rows, u = 65)."
        )
        deep = summary.get(("iid", "FedAvg", 20, 10))
        if deep:
            lines.append(
                f"With E = 20 (u = 260, near the paper's 300) FedAvg takes {deep} rounds: a handful of rounds is the "
                f"floor on this small, easy dataset, where FedSGD itself needs only {sgd} rounds (626 on MNIST at "
                "99%), "
                "so the ratio cannot reach the paper's."
            )
        nsgd, navg = summary.get(("shards", "FedSGD", 1, 0)), summary.get(("shards", "FedAvg", 5, 10))
        if nsgd and navg:
            lines.append(
                f"On the pathological non-IID split (two label shards per client) every method needs more rounds "
                f"(FedSGD {nsgd}, FedAvg E = 5 {navg}: {nsgd / navg:.1f}× fewer); the paper gives no non-IID figure "
                "for this comparison in our anchors."
            )
    elif avg:
        lines.append(
            f"Result: FedAvg (E = 5, B = 10) reached {TARGET:.0%} in {avg} rounds; FedSGD did not within its budget."
        )
    lines.append("")
    text = "\n".join(lines)
    emit(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
