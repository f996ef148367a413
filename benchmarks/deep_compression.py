"""Deep Compression (prune → cluster → Huffman) on the bundled digits-mlp, LeNet-300-100's shape.

    .venv/bin/python benchmarks/deep_compression.py [--out benchmarks/results/deep_compression.md]

Reproduces the shape of Han, Mao, Dally, *Deep Compression*, ICLR 2016, Table 1 (stage by stage)
and Table 2 (layer by layer) for LeNet-300-100: 8% of the weights kept, 6-bit shared weights +
5-bit sparse index → 32×, Huffman → 40×, error 1.64% → 1.58%. Each stage is one technique run
on the previous stage's candidate, exactly as ``optim run --recipe`` chains them. Sizes are the
files the techniques write (``candidate.serialize()``): the fp32 TorchScript file for the
baseline and the pruned model, the packed codebook file for cluster, the Huffman file for
huffman. Ratios are given against the float32 bytes of every parameter and buffer (the paper's
accounting, "1070 KB") and against the baseline's TorchScript file.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import accuracy, emit  # noqa: E402

from optim.context import RunContext  # noqa: E402
from optim.evaluation.environment import environment_info  # noqa: E402
from optim.evaluation.latency import measure_latency  # noqa: E402
from optim.experiment import parse_recipe  # noqa: E402
from optim.io.models import load_sample  # noqa: E402
from optim.registry import get  # noqa: E402

PRUNE = "prune-magnitude:sparsity=0.94,steps=3,finetune_epochs=30,lr=0.003,scope=lamp"
CLUSTER = "cluster:bits=4,biases=true,finetune_epochs=5,lr=0.0003"
#: Han et al.'s own accounting: biases left at 32 bits, 5-bit fc codebooks, no centroid fine-tune.
CLUSTER_PAPER = "cluster:bits=5"


def fp32_state_bytes(candidate) -> int:
    return int(sum(v.numel() * 4 for v in candidate.torch_module().state_dict().values() if v.is_floating_point()))


def chain(candidate, recipe: str, ctx: RunContext) -> list[tuple[str, object, float]]:
    """Each step of ``recipe`` applied to the previous step's output: (spec, candidate, seconds)."""
    out = []
    for step in parse_recipe(recipe)[0].steps:
        t0 = time.perf_counter()
        candidate = get(step.technique).run(candidate, step.config, ctx)[0]
        spec = step.technique + (f":{step.config.spec()}" if step.config.spec() else "")
        out.append((spec, candidate, time.perf_counter() - t0))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    base, splits = load_sample("digits-mlp")
    ctx = RunContext(data=splits, seed=0, threads=1)
    n_test = len(splits.test)
    base_acc = accuracy(base, splits.test)
    fp32 = fp32_state_bytes(base)
    file_bytes = len(base.serialize()[1])
    n_weights = sum(m.weight.numel() for m in base.model.modules() if isinstance(m, torch.nn.Linear))

    stages = chain(base, f"{PRUNE}+{CLUSTER}+huffman", ctx)
    pruned = stages[0][1]
    paper = chain(pruned, f"{CLUSTER_PAPER}+huffman", ctx)

    env = environment_info()
    recipe = f"{PRUNE}+{CLUSTER}+huffman"
    lines = [
        "## Deep Compression on digits-mlp (`prune-magnitude` → `cluster` → `huffman`)",
        "",
        f"Command: `.venv/bin/python benchmarks/deep_compression.py` · date {date.today()} · machine: "
        f"{env['cpu_model']}, {env['cpu_logical_cores']} logical cores, torch {env['torch']}, 1 thread · "
        f"test split ({n_test} rows), one run (seed 0). Recipe: `{recipe}`.",
        "",
        "Stage by stage (Han et al. 2016, Table 1 shape). Ratio = float32 bytes of all "
        f"parameters and buffers ({fp32:,} B, the paper's accounting) ÷ the stage's file; "
        f'"vs file" = the baseline TorchScript file ({file_bytes:,} B) ÷ the stage\'s file.',
        "",
        "| stage | technique | weights kept | bits / weight (coded layers) | file | size_bytes | ratio (fp32 params) "
        "| ratio (vs file) | accuracy (errors) | Δ acc (pt) | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| baseline | — | 100% | 32 | model.pt | {file_bytes:,} | {fp32 / file_bytes:.2f}× | 1.00× | "
        f"{base_acc:.4f} ({round((1 - base_acc) * n_test)}) | — | — |",
    ]
    rows = {}
    for label, (spec, cand, seconds) in zip(["P (pruned)", "P+Q (clustered)", "P+Q+H (Huffman)"], stages):
        name, data = cand.serialize()
        acc = accuracy(cand, splits.test)
        if label.startswith("P ("):
            size, file_name = cand.info["size_bytes_sparse"], "sparse (relative index, fp32 values)*"
            kept, bits = 1 - cand.info["achieved_sparsity"], "32 + index"
        else:
            size, file_name = len(data), name
            kept, bits = cand.info["weights_kept"], f"{cand.info['bits_per_weight']:.2f}"
        rows[label] = (cand, size, acc)
        lines.append(
            f"| {label} | `{spec}` | {100 * kept:.1f}% | {bits} | {file_name} | {size:,} | {fp32 / size:.1f}× | "
            f"{file_bytes / size:.1f}× | {acc:.4f} ({round((1 - acc) * n_test)}) | {100 * (acc - base_acc):+.2f} | "
            f"{seconds:.1f} |"
        )
    for label, (spec, cand, seconds) in zip(["P+Q, paper's settings", "P+Q+H, paper's settings"], paper):
        name, data = cand.serialize()
        acc = accuracy(cand, splits.test)
        lines.append(
            f"| {label} | `{spec}` | {100 * cand.info['weights_kept']:.1f}% | {cand.info['bits_per_weight']:.2f} | "
            f"{name} | "
            f"{len(data):,} | {fp32 / len(data):.1f}× | {file_bytes / len(data):.1f}× | {acc:.4f} "
            f"({round((1 - acc) * n_test)}) "
            f"| {100 * (acc - base_acc):+.2f} | {seconds:.1f} |"
        )
    lines += [
        "| **Han et al. 2016, LeNet-300-100** | prune + 6-bit quantize + Huffman | 8% | 6 (+5-bit index) | — | 1070 "
        "KB → 27 KB "
        "| 40× (P: 12×, P+Q: 32×) | — | error 1.64% → 1.58% | +0.06 | — |",
        "",
        "\\* The pruned model itself still ships as a dense TorchScript file "
        f"({len(pruned.serialize()[1]):,} B); `size_bytes_sparse` in its info is the relative-index encoding of "
        'the same weights with float32 values, which is the paper\'s "P" column.',
        "",
    ]

    huff, size_h, acc_h = rows["P+Q+H (Huffman)"]
    ratio = fp32 / size_h
    lines.append(
        f"Result: {ratio:.1f}× smaller than the float32 parameters ({file_bytes / size_h:.1f}× smaller than the "
        f"baseline's TorchScript file) with {100 * (base_acc - acc_h):.2f} points of accuracy lost "
        f"(target: ≥ 40× with ≤ 0.5 points). Huffman saved {100 * huff.info['huffman_saving']:.1f}% over the "
        f"fixed-length packing (paper: 20–30%); our layers are 50× smaller than LeNet-300-100's first layer, so "
        "the codebooks, biases, input statistics and header — which the coder leaves alone — weigh more."
    )
    lines += [
        "",
        "Layer by layer, final file (Han et al. 2016, Table 2 shape):",
        "",
        "| tensor | numel | kept | codebook | layout | index bits | bytes P+Q | bytes P+Q+H | rate P+Q | rate P+Q+H |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    fixed_layers = rows["P+Q (clustered)"][0].info["layers"]
    for key, rep in huff.info["layers"].items():
        fixed = fixed_layers.get(key, rep)
        lines.append(
            f"| {key} | {rep['numel']:,} | {100 * rep['nonzeros'] / max(1, rep['numel']):.1f}% | "
            f"{rep['codebook_size']} "
            f"| {rep['layout']} | {rep['index_bits'] or '—'} | {fixed['bytes']:,} | {rep['bytes']:,} "
            f"| {4 * rep['numel'] / max(1, fixed['bytes']):.1f}× | {4 * rep['numel'] / max(1, rep['bytes']):.1f}× |"
        )
    lines.append(
        "| (header: names, shapes, code lengths) | | | | | | | "
        f"{size_h - sum(r['bytes'] for r in huff.info['layers'].values()):,} | | |"
    )
    lines.append("")
    lines.append(f"LeNet-300-100 in the paper: fc1 8% kept, fc2 9%, fc3 26%; 6-bit weights, 5-bit index; "
                 f"{n_weights:,} weights here vs 266,200 there (64 inputs instead of 784).")

    # Latency: the Huffman file is decoded once at load; the candidate then runs dense float32.
    from optim.techniques.compression import decode_weights_file

    t0 = time.perf_counter()
    for _ in range(20):
        decode_weights_file(huff.serialize()[1], huff.model)
    decode_ms = (time.perf_counter() - t0) / 20 * 1e3
    lat_b = measure_latency(base, splits.test.X, batch_sizes=(1, 256), threads=1, budget_s=1.0)
    lat_h = measure_latency(huff, splits.test.X, batch_sizes=(1, 256), threads=1, budget_s=1.0)
    lines += [
        "",
        "Latency (torch eager, 1 thread, median): the compressed file is decoded once when loaded "
        f"({decode_ms:.1f} ms) and then runs as a dense float32 network, so it is **not faster**: "
        f"batch 1 {lat_b['latency_ms_p50_b1']:.3f} → {lat_h['latency_ms_p50_b1']:.3f} ms, batch 256 "
        f"{lat_b['latency_ms_p50_bN']:.3f} → {lat_h['latency_ms_p50_bN']:.3f} ms. The paper's 3–4× batch-1 speed-up "
        "on pruned fc layers needs sparse matrix-vector kernels, which PyTorch's CPU dense path does not use.",
        "",
    ]
    emit("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
