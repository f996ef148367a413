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
    from optim.techniques.base import working_copy

    try:
        return technique.supports(working_copy(technique, candidate))
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
    else:
        import numpy as np

        graph = candidate.model.proto().graph
        sizes = {init.name: int(np.prod(init.dims)) if init.dims else 1 for init in graph.initializer}
        for node in graph.node:
            layers.append({"layer": node.name or node.op_type, "type": node.op_type,
                           "params": int(sum(sizes.get(i, 0) for i in node.input)), "shape": ""})
    summary["layers"] = layers
    summary["n_layers"] = len(layers)
    from optim.evaluation.flops import count_macs
    from optim.evaluation.size import count_params

    # The same counts the results table uses (quantized and ONNX weights included).
    summary["params"], summary["nonzero_params"] = (int(v) for v in count_params(candidate))
    macs = count_macs(candidate)
    summary["macs"] = int(macs) if macs is not None else None
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


def dataset_summary(dataset: Any, n_rows: int = 10, n_images: int = 16) -> dict[str, Any]:
    """What the Model & data page shows about a dataset: size, task, class balance, a preview.

    ``preview`` is the first ``n_rows`` rows (features then target) as a column → values dict;
    ``images`` holds up to ``n_images`` samples scaled to 0–255 (H×W or H×W×3 uint8) when the
    rows are images (image zips, and tabular rows that are pixels, e.g. digits' 8×8).
    """
    import numpy as np

    X, y = dataset.X, dataset.y
    out: dict[str, Any] = {
        "name": dataset.name, "source": dataset.source, "task": dataset.task, "kind": dataset.kind,
        "n_rows": int(X.shape[0]), "input_shape": tuple(int(d) for d in X.shape[1:]),
        "n_features": int(np.prod(X.shape[1:])) if X.ndim > 1 else 1,
        "target": dataset.extra.get("target"), "description": dataset.extra.get("description", ""),
    }
    if dataset.task == "classification":
        names = list(dataset.class_names) or [str(i) for i in range(dataset.num_classes)]
        counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=len(names))
        out["classes"] = {str(names[i]) if i < len(names) else str(i): int(c) for i, c in enumerate(counts)}
    else:
        yf = np.asarray(y, dtype=np.float64)
        out["target_stats"] = {"min": float(yf.min()), "mean": float(yf.mean()), "max": float(yf.max()),
                               "std": float(yf.std())}
    flat = X[:n_rows].reshape(min(n_rows, len(X)), -1)
    names = list(dataset.feature_names) if len(dataset.feature_names) == flat.shape[1] else [
        f"x{i}" for i in range(flat.shape[1])]
    preview: dict[str, list[Any]] = {}
    for j, col in enumerate(names[:64]):  # wide data: the first 64 columns are enough to look at
        preview[col] = [float(v) for v in flat[:, j]]
    target_name = out["target"] or "target"
    preview[target_name] = [_label(dataset, v) for v in np.asarray(y[:n_rows])]
    out["preview"] = preview
    shape = dataset.extra.get("image_shape")
    if dataset.kind == "image" or shape:
        out["images"] = _as_images(X[:n_images], tuple(shape) if shape else tuple(X.shape[1:]))
        out["image_labels"] = [_label(dataset, v) for v in np.asarray(y[:n_images])]
    return out


def _label(dataset: Any, value: Any) -> Any:
    if dataset.task == "classification" and len(dataset.class_names):
        return str(dataset.class_names[int(value)])
    return value.item() if hasattr(value, "item") else value


def _as_images(X: Any, shape: tuple[int, ...]) -> list[Any]:
    import numpy as np

    imgs = np.asarray(X, dtype=np.float32).reshape((len(X),) + tuple(shape))
    if imgs.ndim == 4:  # N, C, H, W → N, H, W, C (drop C when it is 1)
        imgs = imgs.transpose(0, 2, 3, 1)
        if imgs.shape[-1] == 1:
            imgs = imgs[..., 0]
    lo, hi = float(imgs.min()), float(imgs.max())
    scaled = (imgs - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(imgs)
    return [img for img in scaled.astype(np.uint8)]
