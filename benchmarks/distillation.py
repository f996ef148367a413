"""Knowledge distillation on bundled digits: a ≤ 1/7-size student vs the teacher and vs itself alone.

    .venv/bin/python benchmarks/distillation.py [--seeds 5] [--out benchmarks/results/distillation.md]

Teacher: the bundled ``digits-mlp`` (64-300-100-10, LeNet-300-100's shape) and ``digits-cnn``.
Student: the teacher's own architecture with every hidden width scaled to 14% of its
parameters (``distill:params_ratio=0.14``; one row at 3.3%), trained with Hinton et al.'s soft targets
(T = 4, alpha = 0.7), and the same student from the same initial weights on the same rows
without the teacher (alpha = 0). Rows: the full training split, and 3% of it (Hinton's
small-data experiment). Medians over seeds (the seed sets the initial weights, the batch order
and, for 3%, which rows are kept); test split accuracy.
"""

from __future__ import annotations

import argparse
import statistics
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
from optim.techniques._train_common import count_params, val_metric  # noqa: E402

#: (teacher sample, regime, distill settings, published figure to stand beside)
ROWS = [
    ("digits-mlp", "full data", {"epochs": 30},
     "TinyBERT: 7.5× smaller, 96.8% of the teacher; DistilBERT: 40% smaller, 97%"),
    ("digits-mlp", "3% of the data", {"epochs": 60, "batch_size": 8, "data_fraction": 0.03},
     "Hinton et al. speech, 3% of the data: 44.5% hard targets → 57.0% soft (frame accuracy)"),
    ("digits-mlp", "full data, 1/30-size student", {"epochs": 30, "params_ratio": 0.033},
     "Hinton et al. MNIST: 146 test errors alone → 74 with soft targets (teacher 67)"),
    ("digits-cnn", "full data", {"epochs": 15},
     "Hinton et al. MNIST: 146 test errors alone → 74 with soft targets (teacher 67)"),
]


def run_row(sample: str, settings: dict, seeds: list[int]) -> dict:
    teacher, splits = load_sample(sample)
    technique = get("distill")
    config = technique.config(**{"params_ratio": 0.14, "temperature": 4.0, "alpha": 0.7, **settings})
    n_test = len(splits.test)
    out = {"teacher_acc": val_metric(teacher, splits.test, splits.task), "teacher_params": count_params(teacher.model)}
    dist, ctrl, seconds = [], [], []
    for seed in seeds:
        ctx = RunContext(data=splits, seed=seed, threads=1)
        t0 = time.perf_counter()
        distilled, control = technique.run(teacher, config, ctx)
        seconds.append(time.perf_counter() - t0)
        dist.append(val_metric(distilled, splits.test, splits.task))
        ctrl.append(val_metric(control, splits.test, splits.task))
        out["student_params"] = count_params(distilled.model)
        out["n_train"] = distilled.info["n_train"]
    out.update(
        distilled_acc=statistics.median(dist),
        control_acc=statistics.median(ctrl),
        distilled_errors=round((1 - statistics.median(dist)) * n_test),
        control_errors=round((1 - statistics.median(ctrl)) * n_test),
        teacher_errors=round((1 - out["teacher_acc"]) * n_test),
        n_test=n_test,
        wins=sum(d > c for d, c in zip(dist, ctrl)),
        seeds=len(seeds),
        seconds=statistics.median(seconds),
        spec=f"distill:{config.spec()}",
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # small models: one thread is fastest and steadiest on a shared machine
    seeds = list(range(args.seeds))
    env = environment_info()
    lines = [
        "## Knowledge distillation (`distill`)",
        "",
        f"Command: `.venv/bin/python benchmarks/distillation.py --seeds {args.seeds}` · date {date.today()} · "
        f"machine: {env['cpu_model']}, {env['cpu_logical_cores']} logical cores, torch {env['torch']}, 1 thread · "
        f"medians over seeds {seeds[0]}–{seeds[-1]}, test split.",
        "",
        "| teacher | regime | recipe | params teacher → student (×smaller) | teacher acc (errors) | distilled student "
        "acc (errors) | % of teacher | same student, no teacher (errors) | distilled better in | s per pair | "
        "published |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for sample, regime, settings, published in ROWS:
        r = run_row(sample, settings, seeds)
        lines.append(
            f"| {sample} | {regime} (n_train={r['n_train']}) | `{r['spec']}` | {r['teacher_params']:,} → "
            f"{r['student_params']:,} "
            f"({r['teacher_params'] / r['student_params']:.1f}×) | {r['teacher_acc']:.4f} "
            f"({r['teacher_errors']}/{r['n_test']}) "
            f"| {r['distilled_acc']:.4f} ({r['distilled_errors']}) | "
            f"{100 * r['distilled_acc'] / r['teacher_acc']:.1f}% "
            f"| {r['control_acc']:.4f} ({r['control_errors']}) | {r['wins']}/{r['seeds']} seeds | {r['seconds']:.1f} "
            f"| {published} |"
        )
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    emit(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
