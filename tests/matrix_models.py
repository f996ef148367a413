"""Models nobody in the project wrote, built small (no downloads), for the applicability matrix:
torchvision ResNet / MobileNet / ShuffleNet / EfficientNet families, a custom residual CNN class, a
custom MLP class with BatchNorm1d and Dropout, a GRU classifier and an MLP regressor; each saved in
every format a user brings (scripted and traced TorchScript, ``.pt2``, ONNX, safetensors + arch)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn


class ResidualCNN(nn.Module):
    """A custom residual CNN (two conv blocks with a skip add), 1×8×8 inputs."""

    def __init__(self, n_out: int = 4, w: int = 8) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, w, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(w)
        self.conv2 = nn.Conv2d(w, w, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(w)
        self.conv3 = nn.Conv2d(w, 2 * w, 3, stride=2, padding=1)
        self.head = nn.Linear(2 * w, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], 1, 8, 8)
        h = torch.relu(self.bn1(self.stem(x)))
        h = torch.relu(h + self.bn2(self.conv2(h)))
        h = torch.relu(self.conv3(h))
        return self.head(h.mean(dim=(2, 3)))


class TabularMLP(nn.Module):
    """A custom MLP class: BatchNorm1d on the raw features, Dropout between layers."""

    def __init__(self, n_in: int = 6, n_out: int = 3, hidden: int = 16) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(n_in)
        self.fc1 = nn.Linear(n_in, hidden)
        self.drop = nn.Dropout(0.1)
        self.fc2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(torch.relu(self.fc1(self.norm(x))))
        return self.out(torch.relu(self.fc2(h)))


class GRUClassifier(nn.Module):
    """A GRU over a (T, F) sequence given as T·F flat features; the last state is classified."""

    def __init__(self, steps: int = 5, features: int = 3, n_out: int = 3, hidden: int = 8) -> None:
        super().__init__()
        self.steps, self.features = steps, features
        self.gru = nn.GRU(features, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x.reshape(x.shape[0], self.steps, self.features))
        return self.fc(out[:, -1])


class MLPRegressor(nn.Module):
    """A custom regression MLP (one output)."""

    def __init__(self, n_in: int = 6, hidden: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Linear(n_in, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class _OnImages(nn.Module):
    """A torchvision network fed 1×8×8 pixels as 64 features, tiled to 3×16×16."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], 1, 8, 8).repeat(1, 3, 2, 2)
        return self.net(x)


def _tiny_resnet(n_out: int) -> nn.Module:
    import torchvision
    from torchvision.models.resnet import BasicBlock, ResNet

    class TinyResNet(ResNet):  # torchvision's ResNet with narrow stages (its own blocks and forward)
        def __init__(self) -> None:
            nn.Module.__init__(self)
            self._norm_layer = nn.BatchNorm2d
            self.inplanes, self.dilation, self.groups, self.base_width = 8, 1, 1, 64
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(8)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.Identity()
            self.layer1 = self._make_layer(BasicBlock, 8, 1)
            self.layer2 = self._make_layer(BasicBlock, 16, 1, stride=2)
            self.layer3 = self._make_layer(BasicBlock, 16, 1, stride=2)
            self.layer4 = nn.Identity()
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(16, n_out)

    assert torchvision  # imported for its blocks
    return TinyResNet()


def _tiny(name: str, n_out: int) -> nn.Module:
    import torchvision.models as tvm

    if name == "resnet":
        return _tiny_resnet(n_out)
    if name == "mobilenet":
        return tvm.MobileNetV2(num_classes=n_out, width_mult=0.25, inverted_residual_setting=[
            [1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 1, 2]])
    if name == "shufflenet":
        return tvm.ShuffleNetV2([1, 1, 1], [8, 16, 32, 64, 64], num_classes=n_out)
    if name == "efficientnet":
        from torchvision.models.efficientnet import EfficientNet, MBConvConfig

        setting = [MBConvConfig(1, 3, 1, 8, 8, 1), MBConvConfig(4, 3, 2, 8, 16, 1)]
        return EfficientNet(setting, dropout=0.1, num_classes=n_out, last_channel=32)
    raise KeyError(name)


@dataclass(frozen=True)
class MatrixModel:
    name: str
    dataset: str  # "images" (64 features = 8×8 pixels), "tabular", "sequence", "regression"
    build: Callable[[], nn.Module]
    arch: str | None = None  # a name load_model knows for safetensors + arch


MODELS: tuple[MatrixModel, ...] = (
    MatrixModel("resnet", "images", lambda: _OnImages(_tiny("resnet", 4))),
    MatrixModel("mobilenet", "images", lambda: _OnImages(_tiny("mobilenet", 4))),
    MatrixModel("shufflenet", "images", lambda: _OnImages(_tiny("shufflenet", 4))),
    MatrixModel("efficientnet", "images", lambda: _OnImages(_tiny("efficientnet", 4))),
    MatrixModel("residual-cnn", "images", lambda: ResidualCNN(4)),
    MatrixModel("tabular-mlp", "tabular", lambda: TabularMLP(6, 3)),
    MatrixModel("gru", "sequence", lambda: GRUClassifier(5, 3, 3)),
    MatrixModel("regressor", "regression", lambda: MLPRegressor(6)),
)

FORMATS = ("script", "trace", "pt2", "onnx")


def dataset_arrays(kind: str, n: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(X, y, task) for a dataset kind, learnable (the label depends on the features)."""
    rng = np.random.default_rng(seed)
    width = {"images": 64, "tabular": 6, "sequence": 15, "regression": 6}[kind]
    X = rng.normal(size=(n, width)).astype(np.float32)
    if kind == "regression":
        return X, (X[:, 0] * 2 + X[:, 1] + 0.1 * rng.normal(size=n)).astype(np.float32), "regression"
    classes = 4 if kind == "images" else 3
    score = X[:, :classes] if kind != "images" else X.reshape(n, 4, 16).mean(axis=2)
    return X, score.argmax(axis=1).astype(np.int64), "classification"


def save_model(module: nn.Module, fmt: str, example: np.ndarray, path: Path) -> Path:
    """Write ``module`` (eval mode) as ``fmt`` and return the file."""
    module.eval()
    x = torch.from_numpy(np.asarray(example[:2], np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "script":
            torch.jit.save(torch.jit.script(module), str(path))
        elif fmt == "trace":
            torch.jit.save(torch.jit.trace(module, x), str(path))
        elif fmt == "pt2":
            ep = torch.export.export(module, (x,), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},))
            torch.export.save(ep, str(path))
        elif fmt == "onnx":
            buf = io.BytesIO()
            torch.onnx.export(module, (x,), buf, dynamo=False, opset_version=17, input_names=["input"],
                              output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
            path.write_bytes(buf.getvalue())
        else:
            raise KeyError(fmt)
    return path


# --- running the matrix ---------------------------------------------------------------------------
#: Settings that keep every cell to a few training steps (on top of each technique's fast_config).
QUICK: dict[str, dict[str, Any]] = {
    "retrain": {"epochs": 1}, "distill": {"epochs": 1}, "federated": {"rounds": 1, "clients": 2},
    "hpo": {"trials": 2}, "early-exit": {"epochs": 1}, "quantize-qat": {"epochs": 1},
    "prune-structured": {"finetune_epochs": 0}, "prune-magnitude": {"finetune_epochs": 0},
    "cluster": {"finetune_epochs": 0}, "select-kbest": {"k": 3}, "select-rfe": {"k": 3},
}


def make_dataset(kind: str, name: str = "matrix") -> Any:
    from optim.dataset import Dataset

    X, y, task = dataset_arrays(kind)
    return Dataset(name, X, y, task, feature_names=tuple(f"f{i}" for i in range(X.shape[1])),
                   kind="tabular")


def technique_config(technique: Any) -> Any:
    """The technique's quick config: its fast_config with QUICK's overrides it knows."""
    fields = set(technique.Config.model_fields)
    values = dict(technique.fast_config)
    values.update({k: v for k, v in QUICK.get(technique.name, {}).items() if k in fields})
    return technique.Config.build(technique.name, **values)


@dataclass(frozen=True)
class Cell:
    model: str
    format: str
    technique: str
    status: str  # ok | refused | failed (an OptimError at run time) | crashed (any other exception)
    detail: str = ""
    exports: tuple[dict[str, Any], ...] = ()  # export_check of each candidate an ok cell made


def run_cell(candidate: Any, splits: Any, technique: Any, workdir: Path,
             outputs: list[Any] | None = None) -> tuple[str, str]:
    """(status, detail) of one technique on one loaded model; its candidates go to ``outputs``."""
    from optim.applicability import reason_for
    from optim.context import RunContext
    from optim.errors import OptimError
    from optim.registry import get

    ctx = RunContext(data=splits, workdir=workdir, threads=1, latency_budget_s=0.05, energy_inferences=50)
    start = candidate
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for pre in technique.requires:  # e.g. huffman codes cluster's indices: cluster first
                if reason_for(pre, start, splits) is None:
                    start = get(pre).run(start, technique_config(get(pre)), ctx)[0]
            reason = reason_for(technique.name, start, splits)
            if reason:
                return "refused", reason
            outs = technique.run(start, technique_config(technique), ctx)
            if outputs is not None:
                outputs.extend(outs)
            for out in outs:
                pred = out.predict(splits.test.X[:8])
                if pred.shape[0] != 8 or not np.isfinite(pred).all():
                    return "failed", f"outputs {pred.shape} finite={bool(np.isfinite(pred).all())}"
                out.serialize()
    except OptimError as err:
        return "failed", f"{type(err).__name__}: {err}"
    except Exception as err:  # a crash: the matrix must have none
        return "crashed", f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return "ok", ""


def run_matrix(tmp: Path, models: tuple[MatrixModel, ...] = MODELS, formats: tuple[str, ...] = FORMATS,
               techniques: tuple[str, ...] | None = None, done: frozenset[tuple[str, str, str]] = frozenset(),
               on_cell: Callable[[Cell], None] | None = None, check_exports: bool = True) -> list[Cell]:
    """Every model × format × registered technique, but the (model, format, technique) cells in
    ``done``; ``on_cell`` sees each cell as soon as it has run. With ``check_exports`` each ok
    cell's candidates are exported and their metric compared (:func:`export_check`)."""
    from optim.io.models import load_model
    from optim.registry import all_techniques

    registry = [t for t in all_techniques() if techniques is None or t.name in techniques]
    cells: list[Cell] = []
    for mm in models:
        torch.manual_seed(0)
        module = mm.build().eval()
        dataset = make_dataset(mm.dataset)
        splits = dataset.splits()
        for fmt in formats:
            todo = [t for t in registry if (mm.name, fmt, t.name) not in done]
            if not todo:
                continue
            path = save_model(module, fmt, dataset.X, tmp / f"{mm.name}-{fmt}.bin")
            candidate = load_model(path, dataset=dataset)
            for technique in todo:
                outputs: list[Any] = []
                status, detail = run_cell(candidate, splits, technique, tmp / "work", outputs)
                exports: tuple[dict[str, Any], ...] = ()
                if status == "ok" and check_exports:
                    exports = tuple(_export_or_crash(out, splits, tmp / "work") for out in outputs)
                cells.append(Cell(mm.name, fmt, technique.name, status, detail, exports))
                if on_cell is not None:
                    on_cell(cells[-1])
    return cells


def export_check(candidate: Any, splits: Any, workdir: Path) -> dict[str, Any]:
    """Export ``candidate`` the way ``optim export`` does — written to a candidate folder, read back
    (no pickle), then its export: TorchScript for a torch candidate (ONNX when TorchScript fails),
    ONNX for an ONNX Runtime one; each export checks itself against the candidate on 64 rows — run
    the exported file on all the test rows and compare its metric with the candidate's:
    ``{"format", "metric", "exported", "delta_points"}`` (points = 100 × the accuracy or R²
    difference), with ``"error"`` instead when no export was written."""
    import shutil
    import uuid

    from optim.evaluation.metrics import score

    X, y = np.asarray(splits.test.X, np.float32), splits.test.y
    metric = score(candidate.predict(X), y, candidate.task)
    folder = workdir / f"export-{uuid.uuid4().hex[:8]}"
    try:
        return _export_and_score(candidate, splits, folder, X, y, metric)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _export_and_score(candidate: Any, splits: Any, folder: Path, X: np.ndarray, y: np.ndarray,
                      metric: float) -> dict[str, Any]:
    import io

    from optim.candidate import OnnxModel, load_candidate, save_candidate
    from optim.errors import OptimError
    from optim.evaluation.metrics import score
    from optim.export import candidate_formats, export_bytes

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        save_candidate(candidate, folder, candidate_id="c1", run_id="matrix")
        cand = load_candidate(folder)[0]
        allowed = candidate_formats(cand)  # what optim export offers for it
        formats = [fmt for fmt in ("torchscript", "onnx") if allowed[fmt] is None]
        errors = []
        for fmt in formats:
            try:
                data, _ = export_bytes(cand, fmt, X[:64], source="test rows", fresh=lambda: load_candidate(folder)[0])
                if fmt == "onnx":
                    out = OnnxModel(data).run(X)
                else:
                    with torch.inference_mode():
                        out = torch.jit.load(io.BytesIO(data))(torch.from_numpy(X)).float().numpy()
            except OptimError as err:
                errors.append(f"{fmt}: {err}")
                continue
            exported = score(out, y, cand.task)
            first = {"first_error": errors[0][:300]} if errors else {}
            return {"format": fmt, "metric": metric, "exported": exported,
                    "delta_points": abs(exported - metric) * 100, **first}
    return {"format": None, "metric": metric, "error": "; ".join(errors)[:300]}


def _export_or_crash(candidate: Any, splits: Any, workdir: Path) -> dict[str, Any]:
    try:
        return export_check(candidate, splits, workdir)
    except Exception as err:  # recorded, so one crash does not stop the matrix
        first_line = str(err).splitlines()[0][:200] if str(err) else ""
        return {"format": None, "error": f"crashed: {type(err).__name__}: {first_line}"}



def prune_zeroing_first(pruner: Any, module: nn.Module, x: torch.Tensor) -> tuple[int, float]:
    """Run one interactive Torch-Pruning step on ``module``, zeroing what each group removes (outputs
    of convs and batch norms) before removing it: (groups pruned, largest output change the removal
    made), which is 0 when the pruner removes exactly the channels it names."""
    worst, groups = 0.0, 0
    for group in pruner.step(interactive=True):
        for dep, idxs in group.items:
            layer = dep.target.module
            if "out_channels" in dep.handler.__name__ and isinstance(layer, (nn.Conv2d, nn.BatchNorm2d)):
                with torch.no_grad():
                    layer.weight[idxs] = 0
                    if layer.bias is not None:
                        layer.bias[idxs] = 0
        with torch.no_grad():
            zeroed = module(x)
        group.prune()
        groups += 1
        with torch.no_grad():
            worst = max(worst, float((module(x) - zeroed).abs().max()))
    return groups, worst
