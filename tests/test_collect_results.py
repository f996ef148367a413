"""benchmarks/collect_results.py folds benchmarks/results/*.md into RESULTS.md in RESULTS.md's own order."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _collector():
    spec = importlib.util.spec_from_file_location("collect_results", ROOT / "benchmarks" / "collect_results.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sections_keep_the_order_results_md_has_and_new_ones_go_last(tmp_path):
    collect = _collector().collect
    for name, heading in (("a", "## Alpha"), ("b", "## Beta"), ("c", "## Gamma"), ("z", "## Zeta")):
        (tmp_path / f"{name}.md").write_text(f"{heading}\n\n{name} text\n")
    current = "# Benchmark results\n\n---\n\n## Zeta\n\nold\n\n---\n\n## Beta\n\nold\n\n---\n\n## Alpha\n\nold\n"
    out = collect(tmp_path, current)
    order = [line for line in out.splitlines() if line.startswith("## ")]
    assert order == ["## Zeta", "## Beta", "## Alpha", "## Gamma"]
    assert "old" not in out and out.count("\n---\n") == 4


def test_results_md_is_what_the_collector_makes_of_the_write_ups():
    # A section edited in RESULTS.md only would be lost at the next collection: edit
    # benchmarks/results/NAME.md (or re-run its benchmark), then run benchmarks/collect_results.py.
    module = _collector()
    results_md = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    assert module.collect(ROOT / "benchmarks" / "results", results_md) == results_md
