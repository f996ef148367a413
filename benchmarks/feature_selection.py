"""Feature selection on bundled breast cancer (WDBC): accuracy with 3, 5, 10 and 30 of 30 features.

    .venv/bin/python benchmarks/feature_selection.py [--seeds 3] [--out benchmarks/results/feature_selection.md]

For each selector (``select-kbest`` F-test, ``select-rfe`` with logistic regression,
``select-lasso`` ranked by |L1-logistic coefficient| via ``max_features``, ``pca``) and each k,
the bundled ``breast-cancer-mlp`` is narrowed to k inputs and fine-tuned 30 epochs; the table
gives its test accuracy (median over seeds) and, to stand beside UCI's cross-validated figure,
the 10 × repeated stratified 10-fold CV accuracy of a logistic regression on the same kept
features (whole dataset; the selection itself saw only the training split). Also: UCI's own
three features, and scikit-learn's ``RFECV`` on the training split.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    # One BLAS thread for every library that loads later (scipy's own OpenBLAS too): on the shared
    # 2-core machine, logistic-regression fits ran 18× faster.
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from _common import emit  # noqa: E402  (benchmarks/ is on sys.path when a script runs)

from optim.context import RunContext  # noqa: E402
from optim.evaluation.environment import environment_info  # noqa: E402
from optim.io.models import load_sample  # noqa: E402
from optim.registry import get  # noqa: E402
from optim.techniques._train_common import val_metric  # noqa: E402

KS = (3, 5, 10, 30)
LABELS = {"select-kbest": "`select-kbest:k=K` (F-test)", "select-rfe": "`select-rfe:k=K` (logistic regression)",
          "select-lasso": "`select-lasso:alpha=0.001,max_features=K`", "pca": "`pca:components=K`"}
#: The three features of the UCI result (wdbc.names: "worst area, worst smoothness and mean texture").
UCI_FEATURES = ("worst area", "worst smoothness", "mean texture")


def recipe(method: str, k: int) -> tuple[str, dict]:
    if method == "select-lasso":
        return method, {"alpha": 0.001, "max_features": k}
    if method == "pca":
        return method, {"components": k}
    return method, {"k": k}


def cv_accuracy(X: np.ndarray, y: np.ndarray) -> float:
    """Mean accuracy of standardised logistic regression, 10 × repeated stratified 10-fold CV."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import RepeatedStratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    cv = RepeatedStratifiedKFold(n_splits=10, n_repeats=10, random_state=0)
    return float(cross_val_score(model, X, y, cv=cv, n_jobs=1).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args(argv)
    import torch

    from optim.techniques._train_common import transformed

    torch.set_num_threads(1)
    baseline, splits = load_sample("breast-cancer-mlp")
    X_all = np.concatenate([splits.train.X, splits.val.X, splits.test.X])
    y_all = np.concatenate([splits.train.y, splits.val.y, splits.test.y])
    names = list(splits.feature_names)
    base_acc = val_metric(baseline, splits.test, splits.task)
    seeds = list(range(args.seeds))
    env = environment_info()
    lines = [
        "## Feature selection (`select-kbest`, `select-rfe`, `select-lasso`, `pca`)",
        "",
        f"Command: `.venv/bin/python benchmarks/feature_selection.py --seeds {args.seeds}` · date {date.today()} · "
        f"machine: {env['cpu_model']}, {env['cpu_logical_cores']} logical cores, torch {env['torch']}, 1 thread · "
        f"sample:breast-cancer (WDBC, 30 features; train {len(splits.train)}, test {len(splits.test)} rows) · "
        f"baseline breast-cancer-mlp (30 features): test accuracy {base_acc:.4f} · MLP accuracy = median over "
        f"seeds {seeds[0]}–{seeds[-1]} · CV = logistic regression on the kept features, 10×10-fold.",
        "",
        "| selector | " + " | ".join(f"k={k}: MLP test acc / CV acc" for k in KS) + " | features kept at k=3 |",
        "| --- | " + " | ".join("---" for _ in KS) + " | --- |",
    ]
    for method in ("select-kbest", "select-rfe", "select-lasso", "pca"):
        cells, kept3 = [], ""
        for k in KS:
            technique = get(method)
            name, settings = recipe(method, k)
            config = technique.config(**settings)
            accs, out = [], None
            for seed in seeds:
                (out,) = technique.run(baseline, config, RunContext(data=splits, seed=seed, threads=1))
                accs.append(val_metric(out, splits.test, splits.task))
            cv = cv_accuracy(transformed(out.transform, X_all), y_all)
            cells.append(f"{statistics.median(accs):.4f} / {cv:.4f}")
            if k == 3:
                kept3 = ", ".join(out.info["kept_features"])
            print(f"{method} k={k}: {cells[-1]}", flush=True)
        lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + f" | {kept3} |")
    uci_idx = [names.index(n) for n in UCI_FEATURES]
    lines += [
        "",
        "| reference | ours | published |",
        "| --- | --- | --- |",
        f"| UCI's 3 features ({', '.join(UCI_FEATURES)}) | CV acc {cv_accuracy(X_all[:, uci_idx], y_all):.4f} "
        "(logistic regression, 10×10-fold) | 97.5% with repeated 10-fold CV (MSM-T; UCI wdbc.names, secondary) |",
        f"| all 30 features | CV acc {cv_accuracy(X_all, y_all):.4f} | — |",
        f"| {rfecv_row(splits)} | scikit-learn's RFECV example: 14 picked, plateau from 8 to 12 (synthetic data) |",
    ]
    text = "\n".join(lines) + "\n"
    emit(text, args.out)
    return 0


def rfecv_row(splits) -> str:
    """sklearn RFECV (logistic regression, stratified 10-fold) on the standardised training split."""
    from sklearn.feature_selection import RFECV
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    X = StandardScaler().fit_transform(splits.train.X)
    rfecv = RFECV(LogisticRegression(max_iter=2000), step=1, cv=StratifiedKFold(10, shuffle=True, random_state=0),
                  scoring="accuracy", n_jobs=1).fit(X, splits.train.y)
    scores = np.asarray(rfecv.cv_results_["mean_test_score"])
    n_features = np.asarray(rfecv.cv_results_["n_features"])
    plateau = n_features[scores >= scores.max() - 0.005]
    return (f"RFECV on the training split (logistic regression) | picks {rfecv.n_features_} features "
            f"(CV {scores.max():.4f}); within 0.5 point of the best from {plateau.min()} to {plateau.max()} features")


if __name__ == "__main__":
    raise SystemExit(main())
