"""Early exit (BranchyNet) on the bundled digits-cnn: share of samples leaving early, average MACs,
accuracy and measured batch-1 latency over the test rows.

    .venv/bin/python benchmarks/early_exit.py [--out benchmarks/results/early_exit.md]

Reproduces the shape of Teerapittayanon, McDanel, Kung, *BranchyNet*, ICPR 2016, Table 1 for
LeNet on MNIST: 94.3% of the samples leave at the first exit, CPU time 3.37 → 0.62 ms (5.4×),
accuracy 99.20% → 99.25%. Target here: ≥ 2× lower average batch-1 latency with ≤ 0.5 points of
accuracy lost. One exit head (flatten + Linear) after digits-cnn's first conv block; heads trained
with the backbone frozen (and, in a second set of rows, jointly with the backbone).

Latency protocol (one thread): every test row is run alone (batch 1) through the model, so each
takes its own path; one *pass* is all 360 rows, timed as a whole and divided by 360. Baseline and
early-exit models are timed in alternating passes (drift on a shared machine hits both); the
figure is the median over passes. Eager PyTorch and TorchScript (the shipped file) are both shown.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import accuracy, emit  # noqa: E402  (benchmarks/ is on sys.path when a script runs)

from optim.context import RunContext  # noqa: E402
from optim.evaluation.environment import environment_info  # noqa: E402
from optim.io.models import load_sample  # noqa: E402
from optim.registry import get  # noqa: E402

THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
PASSES = 15


def scripted(candidate):
    import torch

    return torch.jit.load(io.BytesIO(candidate.serialize()[1]))


def pass_ms(module, rows) -> float:
    """Mean per-row time (ms) of one pass of batch-1 calls over ``rows``."""
    t0 = time.perf_counter()
    for r in rows:
        module(r)
    return (time.perf_counter() - t0) / len(rows) * 1e3


def timed(modules: dict, rows) -> dict:
    """Median over PASSES of the per-row pass time, modules interleaved pass by pass."""
    import gc

    import torch

    times: dict = {k: [] for k in modules}
    with torch.inference_mode():
        for m in modules.values():
            pass_ms(m, rows[:50])  # warm-up
        gc.disable()
        try:
            for _ in range(PASSES):
                for k, m in modules.items():
                    times[k].append(pass_ms(m, rows))
        finally:
            gc.enable()
    return {k: float(np.median(v)) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    base, splits = load_sample("digits-cnn")
    ctx = RunContext(data=splits, seed=0, threads=1)
    tech = get("early-exit")
    t0 = time.perf_counter()
    frozen = tech.run(base, tech.config(thresholds=THRESHOLDS, epochs=30), ctx)
    t_frozen = time.perf_counter() - t0
    t0 = time.perf_counter()
    joint = tech.run(base, tech.config(thresholds=(0.9, 0.99), epochs=15, train="joint", exit_weight=1.0), ctx)
    t_joint = time.perf_counter() - t0

    rows = [torch.from_numpy(splits.test.X[i:i + 1]) for i in range(len(splits.test))]
    variants = [("frozen", c) for c in frozen] + [("joint", c) for c in joint]
    eager = {"base": base.torch_module()} | {f"{m}-{c.info['threshold']}": c.torch_module() for m, c in variants}
    script = {"base": scripted(base)} | {f"{m}-{c.info['threshold']}": scripted(c) for m, c in variants}
    lat_eager = timed(eager, rows)
    lat_script = timed(script, rows)

    base_acc = accuracy(base, splits.test)
    n_test = len(splits.test)
    macs_full = frozen[0].info["macs_full"]
    env = environment_info()
    lines = [
        "## Early exit on digits-cnn (`early-exit`, BranchyNet)",
        "",
        f"Command: `.venv/bin/python benchmarks/early_exit.py` · date {date.today()} · machine: {env['cpu_model']}, "
        f"{env['cpu_logical_cores']} logical cores (shared), torch {env['torch']}, 1 thread · test split ({n_test} "
        "rows), "
        f"one run (seed 0). Exit after block 1 of 5 (first conv + BN + ReLU); head = flatten + Linear(2048→10). "
        f"Training: frozen backbone, 30 epochs ({t_frozen:.1f} s incl. timing); joint, 15 epochs ({t_joint:.1f} s).",
        "",
        f"Latency = mean batch-1 time per test row (each row alone, its own path), median of {PASSES} passes, "
        "baseline and variants interleaved. Speed-up = baseline ÷ variant on the same runtime.",
        "",
        "| model | threshold | left at exit 1 | accuracy (errors) | Δ acc (pt) | avg MACs | MACs ratio | eager ms/row "
        "| eager speed-up | TorchScript ms/row | TorchScript speed-up |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| digits-cnn baseline | — | — | {base_acc:.4f} ({round((1 - base_acc) * n_test)}) | — | {macs_full:,} | "
        "1.00× | "
        f"{lat_eager['base']:.4f} | 1.00× | {lat_script['base']:.4f} | 1.00× |",
    ]
    best = None
    for mode, c in variants:
        key = f"{mode}-{c.info['threshold']}"
        acc = accuracy(c, splits.test)
        se, ss = lat_eager["base"] / lat_eager[key], lat_script["base"] / lat_script[key]
        delta = 100 * (acc - base_acc)
        lines.append(
            f"| early-exit ({mode}) | {c.info['threshold']:g} | {100 * c.info['early_exit_fraction']:.1f}% | "
            f"{acc:.4f} ({round((1 - acc) * n_test)}) | {delta:+.2f} | {c.info['macs']:,.0f} | "
            f"{macs_full / c.info['macs']:.2f}× | {lat_eager[key]:.4f} | {se:.2f}× | {lat_script[key]:.4f} | "
            f"{ss:.2f}× |"
        )
        if delta >= -0.5 and (best is None or se > best[0]):
            best = (se, ss, mode, c, delta)
    lines += [
        "| **BranchyNet, LeNet on MNIST** (Table 1) | entropy rule | 94.3% | 0.9925 (vs 0.9920) | +0.05 | — | — | "
        "3.37 → 0.62 ms (CPU) | 5.4× | — | — |",
        "",
    ]
    if best is not None:
        se, ss, mode, c, delta = best
        verdict = "meets" if se >= 2.0 else "falls short of"
        lines.append(
            f"Result: at threshold {c.info['threshold']:g} ({mode}) {100 * c.info['early_exit_fraction']:.1f}% of the "
            "test "
            f"samples leave at the first exit, average batch-1 latency is {se:.2f}× lower in eager PyTorch "
            f"({ss:.2f}× in TorchScript) with {delta:+.2f} points of accuracy — this {verdict} the target of ≥ 2× "
            f"with ≤ 0.5 points lost. Average MACs drop {macs_full / c.info['macs']:.1f}×; the time drops less because "
            "at batch 1 a model this small (0.9 M MACs, ~0.1 ms) is dominated by per-operator overhead, and the exit "
            "test (softmax, max, compare, a Python branch) is itself a few operators. Timings are from a shared "
            "2-core machine: ratios from interleaved passes are steadier than the absolute figures."
        )
    lines.append("")
    text = "\n".join(lines)
    emit(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
