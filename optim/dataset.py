"""In-memory datasets and their deterministic train / validation / test splits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Task = Literal["classification", "regression"]

#: Splits never depend on the run's seed: a bundled model was trained on the same split it is
#: tested on, and two runs with different seeds must compare on the same test rows.
SPLIT_SEED = 0


@dataclass(frozen=True)
class Split:
    """Features ``X`` (float32, one row per sample, any trailing shape) and targets ``y``."""

    X: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def take(self, n: int, seed: int = 0) -> Split:
        """A reproducible random subset of at most ``n`` rows."""
        if n >= len(self):
            return self
        idx = np.random.default_rng(seed).choice(len(self), size=n, replace=False)
        idx.sort()
        return Split(self.X[idx], self.y[idx])


@dataclass(frozen=True)
class Dataset:
    """A whole dataset as loaded: raw features, targets and what they mean."""

    name: str
    X: np.ndarray
    y: np.ndarray
    task: Task
    feature_names: tuple[str, ...] = ()
    class_names: tuple[str, ...] = ()
    source: str = ""
    kind: Literal["tabular", "image"] = "tabular"
    extra: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        if self.task != "classification":
            return 1
        return len(self.class_names) if self.class_names else int(self.y.max()) + 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.X.shape[1:])

    def splits(self, test_fraction: float = 0.2, val_fraction: float = 0.1) -> DataSplits:
        """Deterministic splits (stratified for classification) with :data:`SPLIT_SEED`."""
        from sklearn.model_selection import train_test_split

        n = len(self.y)
        idx = np.arange(n)
        strat = self.y if self.task == "classification" and _can_stratify(self.y) else None
        rest, test = train_test_split(
            idx, test_size=test_fraction, random_state=SPLIT_SEED, stratify=strat
        )
        strat_rest = self.y[rest] if strat is not None and _can_stratify(self.y[rest]) else None
        train, val = train_test_split(
            rest, test_size=val_fraction / (1 - test_fraction), random_state=SPLIT_SEED,
            stratify=strat_rest,
        )
        pick = lambda ix: Split(self.X[np.sort(ix)], self.y[np.sort(ix)])  # noqa: E731
        return DataSplits(
            train=pick(train), val=pick(val), test=pick(test), task=self.task,
            num_classes=self.num_classes, feature_names=self.feature_names,
            class_names=self.class_names, name=self.name, kind=self.kind,
        )


@dataclass(frozen=True)
class DataSplits:
    """The three splits every technique and measurement works on."""

    train: Split
    val: Split
    test: Split
    task: Task
    num_classes: int
    feature_names: tuple[str, ...] = ()
    class_names: tuple[str, ...] = ()
    name: str = ""
    kind: Literal["tabular", "image"] = "tabular"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.train.X.shape[1:])


def _can_stratify(y: np.ndarray) -> bool:
    _, counts = np.unique(y, return_counts=True)
    return bool(counts.min() >= 2)
