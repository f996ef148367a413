"""What a run will cost before it starts, and an ETA that converges while it runs.

A recipe's time is estimated from the model's MACs per sample, the data size and its training
budget (epochs, fine-tuning epochs, trials, rounds — read from each technique's own settings),
plus the measurement every candidate gets. The machine's speed comes from a tiny timing of a
training loop, run once and cached in ``$OPTIM_HOME/cost_calibration.json``.

The estimate is an order of magnitude, not a promise: it says which recipe dominates and when a
run will take many minutes. While a run goes, :func:`eta_s` replaces it with measured step times.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: Above this many seconds a recipe (or a whole run) gets a warning before it starts.
WARN_S = 300.0
#: Bump when the calibration's meaning changes: older cached files are measured again.
CALIBRATION_VERSION = 1
#: Splits of a dataset (optim.dataset.splits defaults): the share trained on and the share measured.
TRAIN_SHARE, EVAL_SHARE = 0.7, 0.2
#: Fixed seconds per candidate besides its latency budget and energy inferences (building the
#: candidate, saving it, ONNX conversion, CodeCarbon start-up).
CANDIDATE_OVERHEAD_S = 2.0


@dataclass(frozen=True)
class Calibration:
    """This machine's speed: training seconds per batch (Python and optimizer overhead) and per
    sample-MAC (forward + backward), inference seconds per sample-MAC."""

    train_s_per_batch: float
    train_s_per_mac: float
    infer_s_per_mac: float
    threads: int
    torch: str
    version: int = CALIBRATION_VERSION


@dataclass(frozen=True)
class Estimate:
    """The estimated seconds of one recipe spec (all its sweep points) and what they come from."""

    recipe: str
    seconds: float
    variants: int
    training_epochs: float  # full passes over the training split, over all variants
    note: str

    @property
    def warn(self) -> bool:
        return self.seconds > WARN_S


def _calibration_path() -> Path:
    from optim.store import optim_home

    return optim_home() / "cost_calibration.json"


def _time_training(hidden: int, n: int, batch: int, threads: int) -> tuple[float, int, int]:
    """Seconds of one epoch of Adam on an MLP of width ``hidden`` (and its MACs, batches)."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden),
                                torch.nn.ReLU(), torch.nn.Linear(hidden, 10))
    macs = 64 * hidden + hidden * hidden + hidden * 10
    X, y = torch.randn(n, 64), torch.randint(0, 10, (n,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        best = math.inf
        for _ in range(2):  # the faster of two: the first pays for allocations
            t0 = time.perf_counter()
            for i in range(0, n, batch):
                opt.zero_grad()
                loss_fn(model(X[i:i + batch]), y[i:i + batch]).backward()
                opt.step()
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(old)
    return best, macs, math.ceil(n / batch)


def calibrate(*, threads: int | None = None, refresh: bool = False) -> Calibration:
    """This machine's :class:`Calibration`, measured once (about a second) and cached in OPTIM_HOME.

    Two tiny trainings — a narrow and a wide MLP — separate the per-batch overhead from the
    per-MAC cost; inference is taken as a third of training per MAC (forward only)."""
    import torch

    threads = threads or max(1, min(os.cpu_count() or 1, 4))
    if not refresh:
        cached = cached_calibration(threads=threads)
        if cached is not None:
            return cached
    path = _calibration_path()
    n, batch = 2048, 64
    t_small, m_small, batches = _time_training(16, n, batch, threads)
    t_big, m_big, _ = _time_training(512, n, batch, threads)
    per_mac = max((t_big - t_small) / (n * (m_big - m_small)), 1e-13)
    per_batch = max((t_small - per_mac * n * m_small) / batches, 1e-6)
    cal = Calibration(train_s_per_batch=per_batch, train_s_per_mac=per_mac, infer_s_per_mac=per_mac / 3,
                      threads=threads, torch=torch.__version__)
    try:
        path.write_text(json.dumps(asdict(cal)))
    except OSError:
        pass  # a read-only home: measured again next time
    return cal


def cached_calibration(*, threads: int | None = None) -> Calibration | None:
    """The :class:`Calibration` :func:`calibrate` cached for ``threads``, or None (never measures:
    a run's worker uses it to weigh its progress without paying for a timing)."""
    import torch

    threads = threads or max(1, min(os.cpu_count() or 1, 4))
    path = _calibration_path()
    try:
        cal = Calibration(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None  # absent, unreadable or from another version
    if cal.version == CALIBRATION_VERSION and cal.threads == threads and cal.torch == torch.__version__:
        return cal
    return None


def timing_s(*, macs: float, cal: Calibration, latency_budget_s: float = 0.5, energy_inferences: int = 2000) -> float:
    """Seconds to time one candidate (latency at batch 1 and N, then the energy inferences)."""
    return 2 * latency_budget_s + energy_inferences * max(float(macs or 0), 1.0) * cal.infer_s_per_mac


def _epochs(technique: str, cfg: Mapping[str, Any]) -> float:
    """Full training passes one step of ``technique`` makes with settings ``cfg`` (0: no training)."""
    def num(key: str, default: float = 0.0) -> float:
        v = cfg.get(key, default)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else default

    if technique == "hpo":
        from optim.errors import OptimError
        from optim.registry import get

        tuned = str(cfg.get("tune") or "retrain")
        try:
            per_trial = _epochs(tuned, get(tuned).Config().model_dump())
        except OptimError:  # an unknown tuned technique: validation reports it, not the estimate
            per_trial = 0.0
        # The median/hyperband pruners stop weak trials early: about half the epochs on average.
        share = 1.0 if cfg.get("pruner") == "none" else 0.6
        return num("trials") * per_trial * share
    if technique == "federated":
        passes = num("rounds") * num("local_epochs", 1.0)
        if cfg.get("compare_fedsgd"):
            passes += num("rounds")
        return passes + num("centralized_epochs")
    if technique == "distill":
        # Each epoch also runs the teacher forward (about a third of a training pass); the
        # no-teacher control trains the same student again.
        return num("epochs") * (1.33 + (1.0 if cfg.get("no_teacher") else 0.0))
    epochs = num("epochs") + num("finetune_epochs") * max(1.0, num("steps", 1.0))
    return epochs


def estimate_recipe(recipe: str, *, macs: float, n_rows: int, cal: Calibration,
                    latency_budget_s: float = 0.5, energy_inferences: int = 2000) -> Estimate:
    """Seconds to make and measure every variant of ``recipe`` (a sweep ``a|b`` counts each point).

    ``macs`` is the model's MACs per sample, ``n_rows`` the dataset's rows. Raises ConfigError for
    a recipe that does not parse (the same message the run would give)."""
    from optim.recipe import parse_recipe

    variants = parse_recipe(recipe)
    n_train = max(1.0, n_rows * TRAIN_SHARE)
    n_eval = max(1.0, n_rows * EVAL_SHARE)
    macs = max(float(macs or 0), 1.0)
    epochs_total = 0.0
    seconds = 0.0
    for v in variants:
        epochs = sum(_epochs(s.technique, s.config.model_dump()) for s in v.steps)
        epochs_total += epochs
        batch = 64.0
        per_epoch = (n_train / batch) * cal.train_s_per_batch + n_train * macs * cal.train_s_per_mac
        evaluation = n_eval * macs * cal.infer_s_per_mac * (1 + epochs)  # validation after each epoch
        measure = timing_s(macs=macs, cal=cal, latency_budget_s=latency_budget_s,
                           energy_inferences=energy_inferences) + CANDIDATE_OVERHEAD_S
        seconds += epochs * per_epoch + evaluation + measure
    what = f"{len(variants)} variant(s)" + (f", {epochs_total:g} training epoch(s) in all" if epochs_total else
                                             ", no training")
    return Estimate(recipe=recipe, seconds=seconds, variants=len(variants), training_epochs=epochs_total, note=what)


def estimate_run(recipes: Sequence[str], *, macs: float, n_rows: int, cal: Calibration | None = None,
                 latency_budget_s: float = 0.5, energy_inferences: int = 2000) -> list[Estimate]:
    """:func:`estimate_recipe` for each recipe (calibrating first when ``cal`` is None)."""
    cal = cal or calibrate()
    return [estimate_recipe(r, macs=macs, n_rows=n_rows, cal=cal, latency_budget_s=latency_budget_s,
                            energy_inferences=energy_inferences) for r in recipes]


def plan_estimates(recipes: Sequence[str], *, macs: float, n_rows: int, cal: Calibration | None,
                   latency_budget_s: float = 0.5, energy_inferences: int = 2000) -> dict[str, Any]:
    """A run's parts in seconds, for the ``plan`` event its progress is weighed by: ``estimates_s``
    (one per variant recipe; None where it cannot be estimated), ``baseline_s`` (measuring the
    baseline) and ``timing_s`` (the interleaved timing of every candidate at the end). All None
    without a calibration: progress then counts parts equally."""
    if cal is None:
        return {"estimates_s": [None] * len(recipes), "baseline_s": None, "timing_s": None}
    estimates: list[float | None] = []
    for r in recipes:
        try:
            estimates.append(estimate_recipe(r, macs=macs, n_rows=n_rows, cal=cal, latency_budget_s=latency_budget_s,
                                             energy_inferences=energy_inferences).seconds)
        except Exception:  # noqa: BLE001 — an estimate must never stop the run it describes
            estimates.append(None)
    one = timing_s(macs=macs, cal=cal, latency_budget_s=latency_budget_s, energy_inferences=energy_inferences)
    return {"estimates_s": estimates, "baseline_s": one + CANDIDATE_OVERHEAD_S, "timing_s": one * (1 + len(recipes))}


def weighted_done(parts: Sequence[tuple[float | None, float]]) -> tuple[float, float | None]:
    """Overall done fraction of ``parts`` (estimated seconds, fraction done) weighted by their
    estimates, and the total estimate; equal weights (and no total) when any estimate is missing."""
    if not parts:
        return 0.0, None
    total = sum(est for est, _ in parts if est is not None and est >= 0)
    if any(est is None or est < 0 for est, _ in parts) or total <= 0:
        return sum(min(max(f, 0.0), 1.0) for _, f in parts) / len(parts), None
    # Every estimate is known here (the check above); `or 0.0` only tells mypy so.
    return sum((est or 0.0) * min(max(f, 0.0), 1.0) for est, f in parts) / total, total


def format_duration(seconds: float) -> str:
    """``~40 s``, ``~3 min``, ``~1.5 h``: the precision an estimate has."""
    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 90:
        return f"~{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"~{round(seconds / 60)} min"
    return f"~{seconds / 3600:.1f} h"


def eta_s(elapsed_s: float, done: float, *, estimate_s: float | None = None) -> float | None:
    """Seconds left when ``done`` (0–1) of the work took ``elapsed_s``: the measured rate, blended
    with the estimate while little is done (the estimate's weight falls to zero at 25% done), so
    the ETA converges on what the steps really take."""
    if not 0 <= done <= 1 or elapsed_s < 0:
        return None
    if done >= 1:
        return 0.0
    measured = elapsed_s / done * (1 - done) if done > 0 else None
    if estimate_s is None:
        return measured
    prior = max(estimate_s - elapsed_s, 0.0)
    if measured is None:
        return prior
    w = min(done / 0.25, 1.0)
    return w * measured + (1 - w) * prior
