"""Fold the per-benchmark write-ups in benchmarks/results/*.md into benchmarks/RESULTS.md.

Sections keep the order RESULTS.md already has (a section is found by its first line, its
``## `` heading); a write-up not in it yet goes at the end.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent

HEADER = """# Benchmark results

Each section reproduces the *shape* of a published result (the paper is named beside each table) on the bundled
samples and puts the published figure beside ours. Every table says the command that made it, the
date and the machine (CPU model, cores). Latency figures are medians and ratios from one run on a
shared 2-core machine; energy is CodeCarbon's estimate (no RAPL here). Re-run one with its command
(each script writes its section to `benchmarks/results/NAME.md`), then `python benchmarks/collect_results.py`.
"""
SEPARATOR = "\n\n---\n\n"


def collect(results: Path, current: str) -> str:
    """RESULTS.md's text from the write-ups in ``results``, in the order their headings have in
    ``current`` (the RESULTS.md being replaced), new ones after them by file name."""
    texts = {p.stem: p.read_text().strip() for p in sorted(results.glob("*.md"))}
    lines = current.splitlines()

    def place(name: str) -> tuple[int, str]:
        heading = texts[name].splitlines()[0] if texts[name] else ""
        return (lines.index(heading) if heading in lines else len(lines), name)

    return SEPARATOR.join([HEADER] + [texts[name] for name in sorted(texts, key=place)]) + "\n"


def main() -> None:
    out = HERE / "RESULTS.md"
    out.write_text(collect(HERE / "results", out.read_text() if out.exists() else ""))


if __name__ == "__main__":
    main()
