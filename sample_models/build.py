"""Train the bundled sample models and write their weights and ``samples.json``.

    python sample_models/build.py            # every sample (a few minutes on 2 CPU cores)
    python sample_models/build.py --only digits-cnn

Seeded and reproducible: the same torch version and thread count give the same weights. Each
model trains with optim's own loop (``optim.training.fit``) on ``Dataset.splits()`` train/val and
is scored on the test split after reloading its weights file the way users load it
(``optim.io.models.load_model(weights, arch=...)``). Scaling is baked into the models: MLPs
start with a ``Standardize`` layer holding the train split's mean and std, and the regression
model's last layer is rescaled to give targets in their own units.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

import numpy as np  # noqa: E402
import torch  # noqa: E402

from optim.archs import Standardize, build_arch  # noqa: E402
from optim.dataset import Split  # noqa: E402
from optim.evaluation.metrics import primary_metric, task_metrics  # noqa: E402
from optim.io.datasets import load_dataset  # noqa: E402
from optim.io.models import load_model  # noqa: E402
from optim.training import TrainSettings, fit  # noqa: E402

SEED = 0
THREADS = 1  # fixed: float reductions (so the weights) depend on the thread count; one is fastest on a busy machine
MIN_ACCURACY = 0.95


@dataclass(frozen=True)
class Sample:
    name: str
    dataset: str
    description: str
    train: TrainSettings
    #: Store float weights as float16 to halve the file (they load into a float32 model).
    weights_dtype: str = "float32"
    notes: dict = field(default_factory=dict)


SAMPLES: tuple[Sample, ...] = (
    Sample("digits-mlp", "sample:digits",
           "64-300-100-10 MLP (the LeNet-300-100 shape) on 8×8 digits, standardized inputs",
           TrainSettings(epochs=60, batch_size=64, optimizer="adam", lr=1e-3, weight_decay=1e-4,
                         scheduler="cosine", seed=SEED)),
    Sample("digits-cnn", "sample:digits",
           "3-conv net with batch norm on 8×8 digits (pixels reshaped to 1×8×8 inside the model)",
           TrainSettings(epochs=20, batch_size=64, optimizer="adam", lr=2e-3, scheduler="onecycle", seed=SEED)),
    Sample("digits-mobilenet", "sample:digits",
           "torchvision mobilenet_v3_small (random init) on digits upscaled to 3×32×32 inside the model",
           TrainSettings(epochs=15, batch_size=64, optimizer="adamw", lr=3e-3, weight_decay=1e-2,
                         scheduler="onecycle", seed=SEED),
           weights_dtype="float16"),
    Sample("breast-cancer-mlp", "sample:breast-cancer",
           "30-32-16-2 MLP on the Wisconsin breast cancer features, standardized inputs",
           TrainSettings(epochs=50, batch_size=32, optimizer="adam", lr=1e-3, weight_decay=1e-2,
                         scheduler="cosine", restore_best=False, seed=SEED)),
    Sample("wine-mlp", "sample:wine",
           "13-32-16-3 MLP on the wine cultivar features, standardized inputs",
           TrainSettings(epochs=80, batch_size=16, optimizer="adam", lr=1e-3, weight_decay=1e-2,
                         scheduler="cosine", restore_best=False, seed=SEED)),
    Sample("diabetes-mlp", "sample:diabetes",
           "10-64-32-1 MLP regressor of diabetes progression, standardized inputs and target",
           TrainSettings(epochs=200, batch_size=32, optimizer="adamw", lr=3e-4, weight_decay=0.1,
                         patience=40, seed=SEED)),
)


def _with_standardize(module: torch.nn.Module, X: np.ndarray) -> None:
    """Put the train split's statistics into an MLP's first (Standardize) layer."""
    if isinstance(module, torch.nn.Sequential) and isinstance(module[0], Standardize) \
            and module[0].mean.numel() == X.shape[1]:
        module[0] = Standardize(X.mean(axis=0), X.std(axis=0))


def _fold_target_scale(module: torch.nn.Module, mean: float, std: float) -> None:
    """Make a model trained on standardized targets output targets in their own units."""
    last = [m for m in module.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.mul_(std)
        last.bias.mul_(std).add_(mean)


def build(sample: Sample) -> dict:
    from safetensors.torch import save_file

    t0 = time.perf_counter()
    ds = load_dataset(sample.dataset)
    splits = ds.splits()
    n_out = ds.num_classes if ds.task == "classification" else 1
    torch.manual_seed(SEED)
    module = build_arch(sample.name, int(np.prod(ds.input_shape)), n_out)
    _with_standardize(module, splits.train.X)
    train, val = splits.train, splits.val
    y_mean = y_std = None
    if ds.task == "regression":
        # Regressing raw targets (25–346) from a zero-centred init is slow; train on z-scores.
        y_mean, y_std = float(train.y.mean()), float(train.y.std())
        train = Split(train.X, ((train.y - y_mean) / y_std).astype(np.float32))
        val = Split(val.X, ((val.y - y_mean) / y_std).astype(np.float32))
    result = fit(module, train, val, ds.task, sample.train)
    if y_mean is not None:
        _fold_target_scale(module, y_mean, y_std)
    module.eval()

    dtype = {"float32": torch.float32, "float16": torch.float16}[sample.weights_dtype]
    state = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in module.state_dict().items()}
    path = HERE / f"{sample.name}.safetensors"
    save_file(state, str(path))  # no metadata: safetensors writes its keys in random order

    # Score the file as users get it, not the module in memory.
    cand = load_model(path, dataset=ds, arch=sample.name)
    metrics = task_metrics(cand.predict(splits.test.X), splits.test.y, ds.task)
    metric = primary_metric(ds.task).name
    seconds = time.perf_counter() - t0
    entry = {
        "name": sample.name,
        "arch": sample.name,
        "dataset": sample.dataset,
        "weights": path.name,
        "weights_dtype": sample.weights_dtype,
        "task": ds.task,
        "input_shape": list(ds.input_shape),
        "num_outputs": n_out,
        "metric_name": metric,
        "metric_value": round(metrics[metric], 6),
        "test_metrics": {k: round(v, 6) for k, v in metrics.items()},
        "test_rows": len(splits.test),
        "params": int(sum(p.numel() for p in module.parameters())),
        "size_bytes": path.stat().st_size,
        "epochs": result.epochs_run,
        "best_val_metric": round(result.best_val_metric, 6),
        "train_settings": asdict(sample.train),
        "build_seconds": round(seconds, 1),
        "description": sample.description,
    }
    print(f"{sample.name:<18} {metric}={metrics[metric]:.4f} params={entry['params']:,} "
          f"size={entry['size_bytes']:,} B epochs={result.epochs_run} {seconds:.1f}s", flush=True)
    return entry


def readme(entries: list[dict], built_with: dict) -> str:
    """``sample_models/README.md``: what each sample is and what it scores, from ``samples.json``."""
    rows = []
    for e in entries:
        shape = "×".join(str(d) for d in e["input_shape"])
        rows.append(f"| `{e['name']}` | `{e['dataset']}` ({e['test_rows']} test rows) | {e['description']} "
                    f"| {e['params']:,} | {e['size_bytes']:,} B ({e['weights_dtype']}) | "
                    f"{e['metric_name']} **{e['metric_value']:.4f}** | {shape} → {e['num_outputs']} |")
    table = "\n".join(rows)
    return f"""# Bundled sample models

Small models trained on scikit-learn's bundled datasets (nothing is downloaded), so optim can be
tried without bringing a model. Load one with `optim.io.models.load_sample("digits-mlp")` (baseline
candidate and dataset splits), `optim run --model sample:digits-mlp`, or pick it in the dashboard.

| sample | dataset | model | params | weights file | test metric | input → outputs |
| --- | --- | --- | ---: | ---: | --- | --- |
{table}

- Metrics are on the test split of `Dataset.splits()` (20 %, stratified, split seed 0), computed by
  loading the weights file back the way users load it. Every classifier must reach 0.95 accuracy:
  the build fails otherwise, and `tests/io/test_samples.py` recomputes the figures.
- Every model takes the dataset's raw features: the MLPs start with a `Standardize` layer holding
  the train split's mean and std; the digit models reshape the 64 pixels to 1×8×8 inside the model
  (`digits-mobilenet` also upscales to 3×32×32); `diabetes-mlp` was trained on standardized
  targets and its last layer rescaled, so it predicts disease progression in the dataset's units
  (for scale: a ridge regression reaches R² 0.33 on the same split).
- `digits-mobilenet` stores its weights as float16 to halve the file; they load into a float32
  model (the test accuracy above is measured after that round trip).
- Files are safetensors state_dicts for the architectures in `optim/archs.py` (`build_arch(name,
  n_in, n_out)`); `samples.json` lists each sample's architecture, dataset, file, metrics,
  parameter count, size and training settings.

## Rebuild

```
python sample_models/build.py                  # all samples
python sample_models/build.py --only digits-cnn
```

Seeded (seed {built_with['seed']}, {built_with['threads']} torch thread): a rebuild with the same torch
writes byte-identical files. Trained with `optim.training.fit` on the train split; the validation
split picks the best epoch or stops training early (see `train_settings` in `samples.json`).
Built with torch {built_with['torch']}, Python {built_with['python']}; the last full build took
{built_with.get('full_build_seconds')} s (wall clock, per-sample times in `samples.json`).
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", metavar="NAME", choices=[s.name for s in SAMPLES],
                        help="build only this sample (repeatable); the others keep their entries")
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    index_path = HERE / "samples.json"
    old, old_doc = {}, {}
    if args.only and index_path.exists():
        old_doc = json.loads(index_path.read_text())
        old = {s["name"]: s for s in old_doc.get("samples", [])}
    t0 = time.perf_counter()
    entries, failed = [], []
    for sample in SAMPLES:
        if args.only and sample.name not in args.only:
            if sample.name in old:
                entries.append(old[sample.name])
            continue
        entry = build(sample)
        if entry["task"] == "classification" and entry["metric_value"] < MIN_ACCURACY:
            failed.append(f"{sample.name}: test accuracy {entry['metric_value']:.4f} < {MIN_ACCURACY}")
        entries.append(entry)
    total = time.perf_counter() - t0
    doc = {
        "about": "Bundled sample models, written by sample_models/build.py; metrics are on the test "
                 "split of Dataset.splits() (seed 0).",
        "built_with": {"torch": torch.__version__, "python": platform.python_version(),
                       "threads": THREADS, "seed": SEED,
                       "full_build_seconds": old_doc.get("built_with", {}).get("full_build_seconds")
                       if args.only else round(total, 1)},
        "samples": entries,
    }
    index_path.write_text(json.dumps(doc, indent=2) + "\n")
    (HERE / "README.md").write_text(readme(entries, doc["built_with"]))
    print(f"wrote {index_path} and README.md ({len(entries)} samples) in {total:.1f}s")
    if failed:
        print("FAILED the 0.95 accuracy gate: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
