"""Presets contain only registered techniques, parse, and degrade when a technique is missing."""

from __future__ import annotations

import pytest

from optim.errors import ConfigError
from optim.presets import PRESET_KEYS, get_preset, presets, resolve_recipe
from optim.recipe import check_recipe, count_variants, parse_recipe
from optim.registry import all_techniques


def _names(spec: str) -> list[str]:
    return [part.partition(":")[0] for part in spec.split("+")]


def test_every_preset_only_uses_registered_techniques_and_parses() -> None:
    registered = {t.name for t in all_techniques()}
    found = presets()
    assert [p.key for p in found] == list(PRESET_KEYS)
    assert {"smallest-file", "fastest-cpu", "edge-device", "demo"} <= set(PRESET_KEYS)
    for p in found:
        assert p.title and p.goal
        assert len(set(p.recipes)) == len(p.recipes), p.key
        for spec in p.recipes:
            assert set(_names(spec)) <= registered, (p.key, spec)
            assert len(parse_recipe(spec)) >= 1
        assert p.n_variants == sum(len(parse_recipe(r)) for r in p.recipes)


def test_presets_are_not_empty_with_the_backbone_techniques() -> None:
    # quantize-dynamic and prune-magnitude are always registered (the backbone issue).
    for p in presets():
        assert p.recipes, p.key
    demo = get_preset("demo")
    # Small and fast: a handful of variants, with shorter measurement budgets than a normal run.
    assert 3 <= demo.n_variants <= 10
    assert demo.run_settings["latency_budget_s"] < 0.5 and demo.run_settings["energy_inferences"] < 2000
    assert any(_names(r)[0] == "prune-magnitude" for r in demo.recipes)


def test_deep_compression_chain_keeps_its_registered_steps_in_order() -> None:
    registered = {t.name for t in all_techniques()}
    smallest = get_preset("smallest-file")
    chain = [n for n in ("prune-magnitude", "cluster", "huffman") if n in registered]
    assert any(_names(r) == chain for r in smallest.recipes), smallest.recipes
    missing = {"cluster", "huffman"} - registered
    for name in missing:  # what was left out is said, not hidden
        assert any(s.startswith(f"{name}:") for s in smallest.skipped)


def test_resolve_drops_unknown_steps_and_rejected_settings() -> None:
    spec, notes = resolve_recipe("no-such-technique:x=1+quantize-dynamic:backend=torch")
    assert spec == "quantize-dynamic:backend=torch"
    assert any("no-such-technique" in n for n in notes)

    spec, notes = resolve_recipe("prune-magnitude:sparsity=0.8,bogus=3,finetune_epochs=500")
    assert spec == "prune-magnitude:sparsity=0.8"
    assert any("bogus=3" in n for n in notes) and any("finetune_epochs=500" in n for n in notes)

    spec, notes = resolve_recipe("no-such-technique")
    assert spec is None and notes


def test_unknown_preset_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="smallest-file"):
        get_preset("tiniest")


def test_count_variants_counts_sweeps_and_check_recipe_validates() -> None:
    assert count_variants(["quantize-dynamic", "prune-magnitude:sparsity=0.5|0.8|0.9"]) == 4
    with pytest.raises(ConfigError, match="sparsity"):
        check_recipe("prune-magnitude:sparsity=1.5")
