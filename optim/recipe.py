"""The recipe language: ``technique[:key=value,...][+technique...]``; ``key=a|b|c`` sweeps a setting.

One module holds the whole language: splitting a spec into steps and settings, counting the
variants a spec gives *without expanding it*, parsing (validated against the registry) and the
one formatter every spec string in optim comes from (lineage labels, stored recipes, the
dashboard's forms).

Values: numbers as typed (``0.9``, ``1e-3``), booleans ``true/false``, ``none`` for an optional
setting, lists separated by ``;``. A sweep gives one variant per value, and the variants of the
steps of a chain multiply: ``a:x=1|2+b:y=1|2|3`` is six variants. Every expansion is bounded:
a run refuses more than :data:`MAX_VARIANTS` variants (configurable per run) before any work.
"""

from __future__ import annotations

import itertools
import math
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

from optim.errors import ConfigError

if TYPE_CHECKING:
    from optim.config import TechniqueConfig

#: Most variants one run may expand to (over all its recipes); ``RunSettings.max_variants`` sets
#: another limit per run. A sweep typo such as ``k=1|2|...`` pasted from a range must not queue a
#: million jobs or fill the memory with configs before anything is measured.
MAX_VARIANTS = 256

STEP_SEP, SETTING_SEP, KV_SEP, SWEEP_SEP, LIST_SEP = "+", ",", "=", "|", ";"


# --- values -------------------------------------------------------------------------------------
def format_value(value: Any) -> str:
    """A setting's value in recipe syntax (floats as ``%g``, lists joined by ``;``)."""
    if isinstance(value, (list, tuple)):
        return LIST_SEP.join(format_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def parse_value(raw: str, annotation: Any) -> Any:
    """Turn a typed string into the field's type; pydantic validates it afterwards."""
    raw = raw.strip()
    if is_optional(annotation):
        if raw.lower() in ("none", "null", ""):
            return None
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if annotation is bool:
        low = raw.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        return raw
    if annotation in (int, float):
        try:
            number = float(raw)
        except ValueError:
            return raw  # let pydantic name the rule
        if annotation is int and number.is_integer():
            return int(number)
        return number
    if get_origin(annotation) in (list, tuple):
        inner = get_args(annotation)[0] if get_args(annotation) else str
        return [parse_value(p, inner) for p in raw.split(LIST_SEP) if p.strip()]
    if get_origin(annotation) is Literal:
        for choice in get_args(annotation):
            if str(choice) == raw:
                return choice
    return raw


def is_optional(annotation: Any) -> bool:
    origin = get_origin(annotation)
    return origin in (typing.Union, types.UnionType) and type(None) in get_args(annotation)


# --- the one formatter ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Sweep:
    """Several values of one setting (``key=a|b|c``), for :func:`format_step`."""

    values: tuple[Any, ...]


def format_settings(settings: Mapping[str, Any]) -> str:
    """``key=value,...``; a :class:`Sweep` value is written ``key=a|b|c``."""
    return SETTING_SEP.join(
        f"{k}{KV_SEP}{SWEEP_SEP.join(format_value(x) for x in v.values) if isinstance(v, Sweep) else format_value(v)}"
        for k, v in settings.items())


def format_step(technique: str, settings: Mapping[str, Any] | None = None) -> str:
    """``technique`` or ``technique:key=value,...``."""
    text = format_settings(settings or {})
    return f"{technique}:{text}" if text else technique


def format_recipe(steps: Iterable[tuple[str, Mapping[str, Any]]]) -> str:
    """A chain of ``(technique, settings)`` steps as one spec; ``baseline`` when there is none."""
    return STEP_SEP.join(format_step(t, s) for t, s in steps) or "baseline"


# --- splitting and counting (no registry, no expansion) ----------------------------------------
@dataclass(frozen=True)
class StepText:
    """One step of a spec as typed: the technique name and each setting's (possibly swept) values."""

    technique: str
    settings: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def n_variants(self) -> int:
        return math.prod(len(values) for _, values in self.settings)


def split_recipe(spec: str) -> list[StepText]:
    """The steps of ``spec`` with their settings as strings; ConfigError on a syntax error.

    Pure syntax: technique names and values are checked by :func:`parse_recipe`.
    """
    spec = spec.strip()
    if not spec:
        raise ConfigError("empty recipe: give technique[:key=value,...][+technique...], e.g. quantize-dynamic.")
    steps = []
    for part in spec.split(STEP_SEP):
        name, _, settings = part.strip().partition(":")
        name = name.strip()
        if not name:
            raise ConfigError(f"recipe {_short(spec)!r} has an empty step; join techniques with '+', e.g. a+b.")
        pairs: list[tuple[str, tuple[str, ...]]] = []
        for item in filter(None, (s.strip() for s in settings.split(SETTING_SEP))):
            key, eq, value = item.partition(KV_SEP)
            if not eq:
                raise ConfigError(f"{name}: setting {_short(item)!r} needs key=value (in recipe {_short(spec)!r}).")
            key = key.strip()
            if any(k == key for k, _ in pairs):
                raise ConfigError(f"{name}: setting {key!r} given twice in recipe {_short(spec)!r}.")
            pairs.append((key, tuple(value.split(SWEEP_SEP))))
        steps.append(StepText(name, tuple(pairs)))
    return steps


def count_variants(specs: str | Iterable[str]) -> int:
    """Variants one spec (or several, summed) expands to, counted without expanding anything."""
    if isinstance(specs, str):
        specs = [specs]
    return sum(math.prod(s.n_variants for s in split_recipe(spec)) for spec in specs)


def check_variant_count(specs: str | Iterable[str], max_variants: int | None = MAX_VARIANTS) -> int:
    """The variant count of ``specs``; a ConfigError stating the limit when it is above ``max_variants``."""
    specs = [specs] if isinstance(specs, str) else list(specs)
    n = count_variants(specs)
    if max_variants is not None and n > max_variants:
        what = f"recipe {_short(specs[0])!r} expands" if len(specs) == 1 else f"{len(specs)} recipes expand"
        raise ConfigError(
            f"{what} to {n:,} variants; the limit is {max_variants:,} variants per run.",
            hint="Sweep fewer values (key=a|b|c gives one variant per value, and chained sweeps multiply) "
                 "or raise the limit (max_variants, CLI --max-variants).")
    return n


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


# --- parsing (validated, bounded) ------------------------------------------------------------------
@dataclass(frozen=True)
class RecipeStep:
    """One validated step: a registered technique and its config."""

    technique: str
    config: TechniqueConfig

    @property
    def spec(self) -> str:
        return format_step(self.technique, self.config.explicit())


@dataclass(frozen=True)
class Recipe:
    """A chain of technique steps, validated: one variant (or one sweep point) of an experiment."""

    steps: tuple[RecipeStep, ...]

    @property
    def spec(self) -> str:
        return format_recipe((s.technique, s.config.explicit()) for s in self.steps)

    @property
    def families(self) -> list[str]:
        from optim.registry import get

        return [get(s.technique).family for s in self.steps]


def parse_recipe(spec: str, *, max_variants: int | None = MAX_VARIANTS) -> list[Recipe]:
    """Parse ``spec`` into one Recipe per variant (``key=a|b|c`` gives one per value).

    The variants are counted first and a spec above ``max_variants`` is refused before anything
    is built. Every technique name, key and value is then validated; a ConfigError names the
    first bad one and what is allowed.
    """
    from optim.registry import get

    check_variant_count(spec, max_variants)
    per_step: list[list[RecipeStep]] = []
    for step in split_recipe(spec):
        technique = get(step.technique)
        options = []
        keys = [k for k, _ in step.settings]
        for combo in itertools.product(*[values for _, values in step.settings]):
            values = dict(zip(keys, combo))
            options.append(RecipeStep(technique.name, technique.Config.from_strings(technique.name, values)))
        per_step.append(options)
    return [Recipe(tuple(chain)) for chain in itertools.product(*per_step)]


def check_recipe(spec: str, *, max_variants: int | None = MAX_VARIANTS) -> int:
    """Validate ``spec`` (bounded like :func:`parse_recipe`) and return its variant count."""
    return len(parse_recipe(spec, max_variants=max_variants))


def parse_recipes(specs: Sequence[str], *, max_variants: int | None = MAX_VARIANTS) -> list[Recipe]:
    """Every variant of several specs; the limit applies to their total, checked before any is parsed."""
    check_variant_count(specs, max_variants)
    return [r for spec in specs for r in parse_recipe(spec, max_variants=None)]
