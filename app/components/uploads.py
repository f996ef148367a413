"""Uploads and the cached loading of the current model & data.

An upload is saved under ``$OPTIM_HOME/uploads/<sha256>.<ext>`` (its name is its content hash,
so the same file uploaded twice is one file and one cache entry) and then validated with
optim's own loaders; a file that does not load raises the loader's OptimError, worded with the
name the user gave it. Models live in ``st.cache_resource`` keyed by those content-hash paths
(or ``sample:`` names) and are never mutated; tables and metrics live in ``st.cache_data``.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path
from typing import Any

import streamlit as st

from optim import OptimError

MODEL_TYPES = ["pt", "pt2", "onnx", "safetensors", "pth", "bin", "ckpt"]
DATA_TYPES = ["csv", "tsv", "txt", "npz", "zip"]
#: The short measurement budgets of the baseline shown on the Model & data page (a run measures
#: with the full budgets).
PAGE_LATENCY_BUDGET_S = 0.1
PAGE_ENERGY_INFERENCES = 300


def uploads_dir() -> Path:
    from optim import optim_home

    folder = optim_home() / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_upload(name: str, data: bytes) -> Path:
    """Write ``data`` as ``$OPTIM_HOME/uploads/<sha256>.<ext>`` (kept extension of ``name``)."""
    digest = hashlib.sha256(data).hexdigest()
    ext = Path(name).suffix.lower().lstrip(".")
    ext = ext if re.fullmatch(r"[a-z0-9]{1,12}", ext) else "bin"
    path = uploads_dir() / f"{digest}.{ext}"
    if not path.exists():
        # Write then rename, so a second session never reads a half-written file.
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".part") as fh:
            fh.write(data)
        Path(fh.name).replace(path)
    return path


def _reworded(err: OptimError, path: Path, name: str) -> OptimError:
    """The loader's error with the user's file name in place of the content-hash file name."""
    text = str(err).replace(str(path), name).replace(path.name, name).replace(path.stem, Path(name).stem)
    return type(err)(text)


def accept_dataset(name: str, data: bytes, *, target: str | None = None, task: str | None = None) -> tuple[str, Any]:
    """Save and load an uploaded dataset; ``(ref, Dataset)`` or the loader's OptimError."""
    from optim import load_dataset

    path = save_upload(name, data)
    try:
        dataset = load_dataset(str(path), target=target, task=task)  # type: ignore[arg-type]
    except OptimError as err:
        raise _reworded(err, path, name) from None
    return str(path), dataset


def accept_model(name: str, data: bytes, *, dataset: Any, arch: str | None = None,
                 trust_pickle: bool = False) -> tuple[str, Any]:
    """Save and load an uploaded model against ``dataset``; ``(ref, Candidate)`` or OptimError."""
    from optim import load_model

    path = save_upload(name, data)
    try:
        candidate = load_model(str(path), dataset=dataset, arch=arch, trust_pickle=trust_pickle)
    except OptimError as err:
        raise _reworded(err, path, name) from None
    return str(path), candidate


def csv_columns(ref: str) -> list[str]:
    """Header of a CSV upload (to pick the target column); [] for anything else or unreadable."""
    import pandas as pd

    if ref.startswith("sample:") or Path(ref).suffix.lower() not in (".csv", ".tsv", ".txt"):
        return []
    try:
        head = pd.read_csv(ref, nrows=0, sep=None, engine="python", encoding_errors="replace")
    except Exception:  # any unreadable header: the loader gives the real message
        return []
    return [str(c) for c in head.columns if not str(c).startswith("Unnamed: 0")]


def npz_arrays(ref: str) -> list[str]:
    """Array names of an NPZ upload (to pick the target array); [] otherwise."""
    import zipfile

    if not zipfile.is_zipfile(ref):
        return []
    try:
        names = zipfile.ZipFile(ref).namelist()
    except (OSError, zipfile.BadZipFile):
        return []
    if not names or not all(n.endswith(".npy") for n in names):
        return []
    return [n[:-4] for n in names]


def arch_choices() -> list[str]:
    """Architectures a weights file can name: the bundled ones, then torchvision's classifiers."""
    from optim import arch_choices as _choices

    return _choices()


# --- cached loading of the current choice ----------------------------------------------------
@st.cache_resource(max_entries=8, show_spinner="Loading dataset…")
def cached_dataset(data_ref: str, target: str | None, task: str | None) -> Any:
    """The Dataset of ``data_ref`` (shared across sessions; never mutate it)."""
    from optim import load_dataset

    return load_dataset(data_ref, target=target, task=task)  # type: ignore[arg-type]


@st.cache_resource(max_entries=8, show_spinner=False)
def cached_splits(data_ref: str, target: str | None, task: str | None) -> Any:
    return cached_dataset(data_ref, target, task).splits()


@st.cache_resource(max_entries=8, show_spinner="Loading model…")
def cached_baseline(model_ref: str, data_ref: str, target: str | None, task: str | None,
                    arch: str | None, trust_pickle: bool) -> Any:
    """The baseline Candidate (shared across sessions; candidates are immutable by contract)."""
    from optim import load_model

    return load_model(model_ref, dataset=cached_dataset(data_ref, target, task), arch=arch,
                      trust_pickle=trust_pickle)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_model_summary(model_ref: str, data_ref: str, target: str | None, task: str | None,
                         arch: str | None, trust_pickle: bool) -> dict[str, Any]:
    from optim import model_summary

    return model_summary(cached_baseline(model_ref, data_ref, target, task, arch, trust_pickle))


@st.cache_data(max_entries=16, show_spinner=False)
def cached_dataset_summary(data_ref: str, target: str | None, task: str | None) -> dict[str, Any]:
    from optim import dataset_summary

    return dataset_summary(cached_dataset(data_ref, target, task))


@st.cache_data(max_entries=16, show_spinner="Measuring the baseline…")
def cached_baseline_metrics(model_ref: str, data_ref: str, target: str | None, task: str | None,
                            arch: str | None, trust_pickle: bool, threads: int, batch_size: int) -> dict[str, Any]:
    """The baseline's result columns, measured once with short budgets."""
    from optim import measure_baseline

    return measure_baseline(cached_baseline(model_ref, data_ref, target, task, arch, trust_pickle),
                            cached_splits(data_ref, target, task), threads=threads, batch_size=batch_size,
                            latency_budget_s=PAGE_LATENCY_BUDGET_S, energy_inferences=PAGE_ENERGY_INFERENCES)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_applicability(model_ref: str, data_ref: str, target: str | None, task: str | None,
                         arch: str | None, trust_pickle: bool) -> dict[str, str | None]:
    """Technique name → reason it cannot apply to the current baseline (None: it can)."""
    from optim import technique_applicability

    cand = cached_baseline(model_ref, data_ref, target, task, arch, trust_pickle)
    return {name: a.reason for name, a in technique_applicability(cand, cached_splits(data_ref, target, task)).items()}


def choice_args(choice: Any) -> tuple[Any, ...]:
    """The cache key of a :class:`app.state.Choice`: (model, data, target, task, arch, trust_pickle)."""
    return (choice.model, choice.data, choice.target, choice.task, choice.arch, choice.trust_pickle)


def load_current(choice: Any) -> tuple[Any, Any, str | None]:
    """``(dataset, baseline, error)`` of the current choice; error is a one-line OptimError message."""
    dataset = baseline = None
    try:
        dataset = cached_dataset(choice.data, choice.target, choice.task)
        baseline = cached_baseline(*choice_args(choice))
    except OptimError as err:
        return dataset, None, err.one_line()
    return dataset, baseline, None

