"""Tests of optim.hardware, and a helper shared with the adaptive/edge technique tests."""

from __future__ import annotations


def apply_technique(technique: str, candidate, splits, workdir, **settings) -> list:
    """Run a registered technique once with one thread (module-scoped fixtures share the result)."""
    from optim.context import RunContext
    from optim.registry import get

    tech = get(technique)
    return tech.run(candidate, tech.config(**settings), RunContext(data=splits, threads=1, workdir=workdir))
