"""Fold the per-benchmark write-ups in benchmarks/results/*.md into benchmarks/RESULTS.md."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["deep_compression", "structured_pruning", "distillation", "hpo",
         "feature_selection", "early_exit", "federated"]

HEADER = """# Benchmark results

Each section reproduces the *shape* of a published result (the paper is named beside each table) on the bundled
samples and puts the published figure beside ours. Every table says the command that made it, the
date and the machine (CPU model, cores). Latency figures are medians and ratios from one run on a
shared 2-core machine; energy is CodeCarbon's estimate (no RAPL here). Re-run one with its command
(each script writes its section to `benchmarks/results/NAME.md`), then `python benchmarks/collect_results.py`.
"""


def main() -> None:
    parts = [HEADER]
    files = {p.stem: p for p in sorted((HERE / "results").glob("*.md"))}
    for name in ORDER + sorted(set(files) - set(ORDER)):
        if name in files:
            parts.append(files[name].read_text().strip())
    (HERE / "RESULTS.md").write_text("\n\n---\n\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
