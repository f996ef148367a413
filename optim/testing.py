"""check_technique: the conformance suite every registered technique passes (Optuna's style).

``tests/test_conformance.py`` runs it over the whole registry; a new technique gets it for free.
"""

from __future__ import annotations

import hashlib
import io
import math
from typing import Any

import numpy as np

from optim.candidate import Candidate
from optim.config import TechniqueConfig, describe_fields
from optim.context import RunContext
from optim.errors import ConfigError
from optim.registry import FAMILY_NAMES
from optim.techniques.base import Technique


def fingerprint(candidate: Candidate) -> str:
    """A hash of everything a technique must not change: weights, buffers, transform, ONNX bytes."""
    h = hashlib.sha256()
    if candidate.kind == "onnx":
        h.update(candidate.model.model_bytes)
    else:
        import torch

        for module in (candidate.model, candidate.transform):
            if module is None:
                continue
            buf = io.BytesIO()
            state = {k: v for k, v in module.state_dict().items() if isinstance(v, torch.Tensor)}
            torch.save({k: v.detach().cpu() for k, v in state.items()}, buf)
            h.update(buf.getvalue())
            h.update(repr(module).encode())
    h.update(repr(candidate.lineage).encode())
    return h.hexdigest()


def check_config(technique: Technique) -> None:
    """Defaults build, JSON round-trips, each bound and choice is enforced, unknown keys refused."""
    cls = technique.Config
    assert issubclass(cls, TechniqueConfig), f"{technique.name}.Config must subclass TechniqueConfig"
    assert technique.family in FAMILY_NAMES, f"{technique.name}: family {technique.family!r}"
    cfg = cls.build(technique.name)
    assert cls.from_json(cfg.to_json()) == cfg, f"{technique.name}: JSON round trip changed the config"
    fast = cls.build(technique.name, **technique.fast_config)
    assert cls.from_json(fast.to_json()) == fast
    try:
        cls.build(technique.name, no_such_setting_xyz=1)
    except ConfigError as err:
        assert "no_such_setting_xyz" in str(err)
    else:
        raise AssertionError(f"{technique.name}: an unknown setting was accepted")
    for f in describe_fields(cls):
        assert f.description, f"{technique.name}.{f.name} has no description (it is the UI's help text)"
        bad: list[Any] = []
        if f.kind in ("int", "float", "optional_int", "optional_float"):
            if f.high is not None and math.isfinite(f.high):
                bad.append(f.high + (1 if f.kind.endswith("int") else abs(f.high) * 0.5 + 1.0))
            if f.low is not None and math.isfinite(f.low):
                bad.append(f.low - (1 if f.kind.endswith("int") else abs(f.low) * 0.5 + 1.0))
        elif f.kind == "choice":
            bad.append("__not_a_choice__")
        for value in bad:
            try:
                cls.build(technique.name, **{f.name: value})
            except ConfigError as err:
                assert f.name in str(err), f"{technique.name}: error for {f.name}={value!r} does not name it: {err}"
            else:
                raise AssertionError(f"{technique.name}: {f.name}={value!r} was accepted")
        if f.kind in ("int", "float") and f.default is not None and f.low is not None:
            assert f.default >= f.low, f"{technique.name}.{f.name}: default below its bound"


def check_apply(technique: Technique, candidate: Candidate, ctx: RunContext) -> list[Candidate]:
    """Apply with ``fast_config``: the input is unchanged and each output runs and is labelled."""
    from optim.techniques.base import working_copy

    reason = technique.supports(working_copy(technique, candidate))
    assert reason is None, f"{technique.name} does not support the chosen sample: {reason}"
    before = fingerprint(candidate)
    config = technique.Config.build(technique.name, **technique.fast_config)
    outs = technique.run(candidate, config, ctx)
    assert outs, f"{technique.name} returned no candidate"
    assert fingerprint(candidate) == before, f"{technique.name} mutated its input candidate"
    X = ctx.data.test.X[:16]
    for out in outs:
        assert isinstance(out, Candidate)
        assert out.lineage and out.lineage[-1].technique == technique.name, f"{technique.name}: lineage not extended"
        assert out.input_shape == candidate.input_shape, f"{technique.name}: the candidate must still take raw features"
        pred = out.predict(X)
        assert pred.shape[0] == len(X), f"{technique.name}: {pred.shape[0]} outputs for {len(X)} rows"
        assert np.isfinite(pred).all(), f"{technique.name}: non-finite outputs"
        name, data = out.serialize()
        assert len(data) > 0, f"{technique.name}: empty serialized model {name}"
    return outs


def check_technique(technique: Technique, candidate: Candidate, ctx: RunContext) -> list[Candidate]:
    """The whole conformance suite for one technique on one candidate."""
    check_config(technique)
    return check_apply(technique, candidate, ctx)
