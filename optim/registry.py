"""The technique registry: ``register_technique`` / ``get`` / ``all``. Duplicate names raise.

The registry imports no technique: the ``optim`` package hands it a loader for the built-in ones
(:func:`add_loader`), run the first time a technique is looked up. So the dependency runs one
way only, techniques → registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from optim.errors import ConfigError

if TYPE_CHECKING:
    from optim.techniques.base import Technique

T = TypeVar("T", bound="type[Technique]")

_REGISTRY: dict[str, type[Technique]] = {}

#: Display order of the ten families (the product's promise), used by the CLI and the dashboard.
FAMILIES: tuple[tuple[str, str], ...] = (
    ("feature-selection", "Feature selection"),
    ("pruning", "Pruning"),
    ("quantization", "Quantization"),
    ("distillation", "Knowledge distillation"),
    ("hpo", "Hyperparameter search"),
    ("edge", "Edge & distributed inference"),
    ("hardware", "Specialized hardware"),
    ("optimizer", "Optimizer choice"),
    ("compression", "Compression"),
    ("adaptive", "Adaptive computation"),
)
FAMILY_NAMES = tuple(f for f, _ in FAMILIES)


def register_technique(cls: T) -> T:
    """Class decorator: add a Technique subclass under its ``name``."""
    name = getattr(cls, "name", None)
    if not name:
        raise TypeError(f"{cls.__name__} has no 'name'")
    if cls.family not in FAMILY_NAMES:
        raise TypeError(f"{cls.__name__}.family={cls.family!r} is not one of {FAMILY_NAMES}")
    existing = _REGISTRY.get(name)
    if existing is not None and existing is not cls:
        if (existing.__module__, existing.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"technique {name!r} is registered twice ({existing.__module__}, {cls.__module__})")
    _REGISTRY[name] = cls
    return cls


_LOADERS: list[Callable[[], None]] = []
_LOADED: set[int] = set()


def add_loader(loader: Callable[[], None]) -> None:
    """Run ``loader`` (which registers techniques) before the first lookup; the package adds the built-ins'."""
    if loader not in _LOADERS:
        _LOADERS.append(loader)


def _load_builtin() -> None:
    for loader in list(_LOADERS):
        if id(loader) not in _LOADED:
            _LOADED.add(id(loader))  # first: a technique module that looks itself up must not recurse
            loader()


def get(name: str) -> Technique:
    """An instance of the technique registered as ``name``; a ConfigError lists the known ones."""
    _load_builtin()
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise ConfigError(
            f"unknown technique {name!r}; known: {', '.join(sorted(_REGISTRY))}."
        ) from None


def all_techniques() -> list[Technique]:
    """Every registered technique, in family order then name."""
    _load_builtin()
    order = {f: i for i, f in enumerate(FAMILY_NAMES)}
    return [cls() for cls in sorted(_REGISTRY.values(), key=lambda c: (order[c.family], c.name))]


all = all_techniques  # noqa: A001  (the public API name, kept for compatibility)
