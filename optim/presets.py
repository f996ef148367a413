"""Recipe presets for common goals: "smallest file", "fastest on CPU", "edge device", "demo".

A preset is a list of recipe specs (one variant each, the recipe syntax of
:func:`optim.recipe.parse_recipe`). Presets are resolved against the registry *when asked
for*, so they work whichever technique families have landed: a step whose technique is not
registered is left out of its chain (a chain left empty is dropped), a setting the technique
does not declare (or rejects) falls back to the technique's default, and every preset's
``skipped`` notes say what was left out and why. Every recipe a preset returns parses.

The chains follow the papers they come from: Deep Compression (Han, Mao, Dally, ICLR 2016) is
prune → cluster → Huffman; the DistilBERT path (Sanh et al. 2019) is distil then int8; integer-only
inference for edge devices is static int8 (Jacob et al., CVPR 2018).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from optim.errors import ConfigError
from optim.recipe import count_variants

# What each preset would like to run, in order of preference. The specs name techniques from
# docs/ARCHITECTURE.md; those not (yet) registered are skipped at resolve time.
_WANTED: dict[str, dict[str, Any]] = {
    "smallest-file": {
        "title": "Smallest file",
        "goal": "Shrink the model file as far as possible while keeping accuracy close to the baseline "
                "(Deep Compression: prune → cluster → Huffman, plus int8 and low-rank).",
        "recipes": [
            "prune-magnitude:sparsity=0.9,finetune_epochs=3+cluster:bits=5+huffman",
            "prune-magnitude:sparsity=0.9,finetune_epochs=3+cluster:bits=5",
            "prune-magnitude:sparsity=0.9,finetune_epochs=3",
            "quantize-dynamic",
            "quantize-static",
            "low-rank+quantize-dynamic",
            "select-kbest+quantize-dynamic",
        ],
        "run_settings": {},
    },
    "fastest-cpu": {
        "title": "Fastest on CPU",
        "goal": "Lower batch-1 latency on this machine's CPU: ONNX Runtime, int8, structurally "
                "smaller layers, bf16 and early exits.",
        "recipes": [
            "onnx-runtime",
            "quantize-dynamic",
            "quantize-static",
            "prune-structured+onnx-runtime",
            "prune-structured+quantize-static",
            "low-rank+onnx-runtime",
            "half:dtype=bf16",
            "early-exit",
        ],
        "run_settings": {},
    },
    "edge-device": {
        "title": "Edge device",
        "goal": "Small, integer-only models for phones and microcontrollers: static int8 "
                "(integer-only inference), QAT, distillation then int8, structured pruning.",
        "recipes": [
            "quantize-static",
            "quantize-qat",
            "distill+quantize-static",
            "prune-structured+quantize-static",
            "prune-magnitude:sparsity=0.8,finetune_epochs=3+quantize-static",
            "onnx-runtime",
            "quantize-dynamic",
        ],
        "run_settings": {},
    },
    "demo": {
        "title": "Demo (under a minute)",
        "goal": "A small, fast set that shows the main families on the bundled sample in under a "
                "minute on 2 cores: int8, ONNX Runtime, a pruning sweep and Deep Compression.",
        "recipes": [
            "quantize-dynamic",
            "onnx-runtime",
            "prune-magnitude:sparsity=0.5|0.8|0.95",
            "prune-magnitude:sparsity=0.9,finetune_epochs=2+cluster:bits=5+huffman",
            "half:dtype=bf16",
        ],
        # Shorter measurement budgets and no edge-device profiling (~5 s a candidate) keep the
        # whole demo within a minute on 2 cores; its figures are noisier than a full run's.
        "run_settings": {"latency_budget_s": 0.15, "energy_inferences": 500, "device_profiles": False},
    },
}

#: Preset keys in display order.
PRESET_KEYS: tuple[str, ...] = tuple(_WANTED)


@dataclass(frozen=True)
class Preset:
    """A goal and the recipes that serve it, resolved against the registered techniques."""

    key: str
    title: str
    goal: str
    #: Recipe specs that parse with the registered techniques (one variant each; sweeps expand).
    recipes: tuple[str, ...]
    #: What the wanted recipes lost because a technique or setting is not available, one note each.
    skipped: tuple[str, ...] = ()
    #: ExperimentSpec fields the preset suggests (e.g. shorter measurement budgets for the demo).
    run_settings: dict[str, Any] = field(default_factory=dict)

    @property
    def n_variants(self) -> int:
        """How many variants the recipes expand to (a sweep counts one per value)."""
        return count_variants(self.recipes)


def presets() -> list[Preset]:
    """Every preset, resolved against the registry now (see module docstring)."""
    return [get_preset(key) for key in PRESET_KEYS]


def get_preset(key: str) -> Preset:
    """The preset called ``key`` (see :data:`PRESET_KEYS`); ConfigError names the known ones."""
    if key not in _WANTED:
        raise ConfigError(f"preset {key!r}: unknown preset; known: {', '.join(PRESET_KEYS)}.")
    wanted = _WANTED[key]
    recipes: list[str] = []
    skipped: list[str] = []
    for spec in wanted["recipes"]:
        resolved, notes = resolve_recipe(spec)
        skipped.extend(notes)
        if resolved and resolved not in recipes:
            recipes.append(resolved)
    return Preset(key, wanted["title"], wanted["goal"], tuple(recipes), tuple(dict.fromkeys(skipped)),
                  dict(wanted["run_settings"]))


def resolve_recipe(spec: str) -> tuple[str | None, list[str]]:
    """``spec`` reduced to what the registry can run now, and notes on what was left out.

    Steps whose technique is not registered are dropped; settings a technique does not declare
    or rejects are dropped (its default applies). Returns ``(None, notes)`` when nothing is left.
    """
    from optim.registry import all_techniques

    registered = {t.name: t for t in all_techniques()}
    steps: list[str] = []
    notes: list[str] = []
    for part in spec.split("+"):
        name, _, settings = part.strip().partition(":")
        name = name.strip()
        technique = registered.get(name)
        if technique is None:
            notes.append(f"{name}: not available yet (no technique registered under that name)")
            continue
        kept: list[str] = []
        for item in filter(None, (s.strip() for s in settings.split(","))):
            if _setting_ok(name, item):
                kept.append(item)
            else:
                notes.append(f"{name}: setting {item} not accepted, its default is used")
        steps.append(f"{name}:{','.join(kept)}" if kept else name)
    if not steps:
        return None, notes
    resolved = "+".join(steps)
    if not _parses(resolved):
        return None, notes + [f"{resolved}: does not parse with the registered techniques"]
    return resolved, notes


def _setting_ok(technique: str, item: str) -> bool:
    return _parses(f"{technique}:{item}")


def _parses(spec: str) -> bool:
    from optim.recipe import parse_recipe

    try:
        parse_recipe(spec)
    except ConfigError:
        return False
    return True
