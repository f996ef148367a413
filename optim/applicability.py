"""Which registered techniques can apply to a loaded model and dataset, and why not.

The dashboard's Techniques page shows every technique; those that cannot apply are shown
disabled with the reason computed here (from each technique's own ``supports()``), so the rule
lives once, in optim, next to the technique that knows it. The same answer is what
``Technique.run`` would raise as an :class:`~optim.errors.UnsupportedError` at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from optim.candidate import Candidate


@dataclass(frozen=True)
class Applicability:
    """One technique against one candidate: ``reason`` is None when it can apply."""

    name: str
    family: str
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.reason is None


def applicability(candidate: Candidate, splits: Any = None) -> dict[str, Applicability]:
    """Every registered technique (registry order) → whether it applies to ``candidate``.

    ``splits`` (the dataset's DataSplits) adds the data-side rule every training technique
    shares: it needs a training split with rows in it.
    """
    from optim.registry import all_techniques

    out: dict[str, Applicability] = {}
    for technique in all_techniques():
        out[technique.name] = Applicability(technique.name, technique.family,
                                            _reason(technique, candidate, splits))
    return out


def reason_for(name: str, candidate: Candidate, splits: Any = None) -> str | None:
    """Why technique ``name`` cannot apply to ``candidate`` (None when it can)."""
    from optim.registry import get

    return _reason(get(name), candidate, splits)


def recipe_reason(spec: str, candidate: Candidate, splits: Any = None) -> str | None:
    """Why the recipe ``spec`` cannot start on ``candidate``: its first step's reason, if any.

    Later steps run on what earlier steps produce (e.g. a torch-only step after an ONNX
    conversion); those are checked at run time and fail their own row only.
    """
    first = spec.strip().split("+", 1)[0].partition(":")[0].strip()
    reason = reason_for(first, candidate, splits)
    return f"{first}: {reason}" if reason else None


def _reason(technique: Any, candidate: Candidate, splits: Any) -> str | None:
    if technique.needs_training_data and splits is not None and len(splits.train) == 0:
        return "it trains and the dataset's training split is empty"
    try:
        return technique.supports(candidate)
    except Exception as err:  # a bug in one technique's check must not hide the others
        return f"could not check ({type(err).__name__}: {err})"


def model_summary(candidate: Candidate) -> dict[str, Any]:
    """What the Model & data page shows about a model: runtime, input shape, layers, parameters.

    ``layers`` lists the leaf modules (torch) or graph nodes by op type (ONNX) with their
    parameter counts; MACs come from :func:`optim.evaluation.flops.count_macs` when available.
    """
    summary: dict[str, Any] = {
        "runtime": "onnxruntime" if candidate.kind == "onnx" else "torch",
        "task": candidate.task,
        "input_shape": tuple(candidate.input_shape),
        "num_outputs": candidate.num_outputs,
        "transform": type(candidate.transform).__name__ if candidate.transform is not None else None,
    }
    layers: list[dict[str, Any]] = []
    if candidate.kind == "torch":
        module = candidate.torch_module()
        for name, m in module.named_modules():
            if any(True for _ in m.children()):
                continue  # containers: their leaves are listed
            n_params = sum(p.numel() for p in m.parameters(recurse=False))
            layers.append({"layer": name or type(m).__name__, "type": type(m).__name__, "params": int(n_params),
                           "shape": _weight_shape(m)})
        summary["params"] = int(sum(p.numel() for p in module.parameters()))
    else:
        import numpy as np

        graph = candidate.model.proto().graph
        sizes = {init.name: int(np.prod(init.dims)) if init.dims else 1 for init in graph.initializer}
        for node in graph.node:
            layers.append({"layer": node.name or node.op_type, "type": node.op_type,
                           "params": int(sum(sizes.get(i, 0) for i in node.input)), "shape": ""})
        summary["params"] = int(sum(sizes.values()))
    summary["layers"] = layers
    summary["n_layers"] = len(layers)
    try:
        from optim.evaluation.flops import count_macs

        summary["macs"] = int(count_macs(candidate))
    except ImportError:
        summary["macs"] = None
    return summary


def _weight_shape(module: Any) -> str:
    weight = getattr(module, "weight", None)
    shape = getattr(weight, "shape", None)
    if shape is None and callable(weight):  # quantized modules expose weight() as a method
        try:
            shape = weight().shape
        except Exception:
            shape = None
    return "×".join(str(int(d)) for d in shape) if shape is not None else ""
