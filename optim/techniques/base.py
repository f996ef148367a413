"""The one extension point: a Technique with a declared config.

A technique is a class with a ``name``, a ``family``, a ``Config`` (a TechniqueConfig subclass),
``supports()`` (why it cannot apply, or None) and ``apply()``. Register it with
``@register_technique`` in its own module under ``optim/techniques/``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar

from optim.candidate import Candidate, Step
from optim.config import TechniqueConfig
from optim.context import RunContext
from optim.errors import UnsupportedError

#: The settings class a technique's ``apply`` takes (``Technique[QuantizeStaticConfig]``).
C = TypeVar("C", bound=TechniqueConfig)


class Technique(ABC, Generic[C]):
    """Turns a candidate into one or more new candidates; never mutates its input."""

    name: ClassVar[str]
    family: ClassVar[str]
    Config: ClassVar[type[TechniqueConfig]] = TechniqueConfig
    #: One line shown beside the toggle in the dashboard and in ``optim techniques``.
    summary: ClassVar[str] = ""
    #: The paper or documentation the technique comes from.
    reference: ClassVar[str] = ""
    #: Whether the technique trains (and so needs the training split).
    needs_training_data: ClassVar[bool] = False
    #: The setting a sweep varies by default (the dashboard's sensitivity curves).
    sweep_field: ClassVar[str | None] = None
    #: Settings that make ``apply`` quick (few epochs / trials), used by the conformance suite.
    fast_config: ClassVar[dict[str, Any]] = {}
    #: Techniques that must come earlier in a recipe (e.g. huffman codes cluster's indices); the
    #: conformance suite applies them first, with their fast_config.
    requires: ClassVar[tuple[str, ...]] = ()

    def supports(self, candidate: Candidate) -> str | None:
        """None when the technique can apply to ``candidate``, else the reason it cannot."""
        return None

    @abstractmethod
    def apply(self, candidate: Candidate, config: C, ctx: RunContext) -> Candidate | Sequence[Candidate]:
        """Return the optimized candidate(s). Raise OptimError with a clear message on bad input."""

    # --- helpers shared by all techniques --------------------------------------------------
    def config(self, **values: Any) -> TechniqueConfig:
        """Validated config from keyword values (ConfigError naming the bad key otherwise)."""
        return self.Config.build(self.name, **values)

    def step(self, config: TechniqueConfig, label: str = "") -> Step:
        """The lineage step for ``config``: the settings the user gave or that differ from the defaults."""
        return Step(self.name, config.explicit(), label)

    def run(self, candidate: Candidate, config: C, ctx: RunContext) -> list[Candidate]:
        """``supports`` check, then ``apply``, always returning a list."""
        candidate = working_copy(self, candidate)
        reason = self.supports(candidate)
        if reason:
            raise UnsupportedError(f"{self.name} cannot apply to this model: {reason}")
        out = self.apply(candidate, config, ctx)
        return [out] if isinstance(out, Candidate) else list(out)


def working_copy(technique: Technique, candidate: Candidate) -> Candidate:
    """The candidate ``technique`` runs on: the editable graph of a compiled model (TorchScript,
    ``torch.export``; ONNX when the technique cannot run on ONNX itself), else the candidate."""
    if candidate.editable is None:
        return candidate
    if candidate.kind == "onnx" and technique.supports(candidate) is None:
        return candidate  # ONNX Runtime techniques (static int8, graph optimization) keep the ONNX file
    return candidate.for_editing()


def require_torch(candidate: Candidate) -> str | None:
    """The common ``supports`` answer of techniques that edit torch modules."""
    if candidate.kind != "torch":
        return "it edits PyTorch modules and this candidate is an ONNX model (apply it before converting to ONNX)"
    return None


def module_has(module: Any, *types: type) -> bool:
    return any(isinstance(m, types) for m in module.modules())
