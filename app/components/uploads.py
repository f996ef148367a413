"""Uploads and the cached loading of the current model & data.

An upload is saved by :func:`optim.save_upload` (``$OPTIM_HOME/uploads/<sha256>.<ext>``: the same
file uploaded twice is one file and one cache entry; the folder is size-capped) and validated with
optim's own loaders; a file that does not validate is deleted (:func:`optim.reject_upload`) and
the loader's OptimError is raised, worded with the name the user gave it. An uploaded model first
runs in a child process with a time limit and a memory cap (:func:`optim.probe_model`); only a
model that answered there is loaded in the server. The baseline is measured in a child process
too (:func:`optim.measure_baseline`). Models live in ``st.cache_resource`` keyed by those
content-hash paths (or ``sample:`` names) and are never mutated; tables and metrics live in
``st.cache_data``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

import optim
from optim import OptimError

MODEL_TYPES = ["pt", "pt2", "onnx", "safetensors", "pth", "bin", "ckpt"]
DATA_TYPES = ["csv", "tsv", "txt", "npz", "zip"]
#: The short measurement budgets of the baseline shown on the Model & data page (a run measures
#: with the full budgets).
PAGE_LATENCY_BUDGET_S = 0.1
PAGE_ENERGY_INFERENCES = 300


def save_upload(name: str, data: bytes) -> Path:
    """See :func:`optim.save_upload`."""
    return optim.save_upload(name, data)


def _reworded(err: OptimError, path: Path, name: str) -> OptimError:
    """The loader's error with the user's file name in place of the content-hash file name."""
    return err.with_name(str(path), name).with_name(path.name, name).with_name(path.stem, Path(name).stem)


def accept_dataset(name: str, data: bytes, *, target: str | None = None, task: str | None = None) -> tuple[str, Any]:
    """Save and load an uploaded dataset; ``(ref, Dataset)`` or the loader's OptimError (the file is
    then deleted, unless it was accepted before with other settings)."""
    path = save_upload(name, data)
    try:
        dataset = optim.load_dataset(str(path), target=target, task=task)
    except OptimError as err:
        optim.reject_upload(path)
        raise _reworded(err, path, name) from None
    optim.keep_upload(path)
    return str(path), dataset


def accept_model(name: str, data: bytes, *, data_ref: str, target: str | None = None, task: str | None = None,
                 arch: str | None = None, trust_pickle: bool = False) -> str:
    """Save an uploaded model and check it against the dataset ``data_ref`` in a child process
    (time limit, memory cap); its ref, or OptimError (the file is then deleted)."""
    path = save_upload(name, data)
    try:
        optim.probe_model(str(path), data_ref, target=target, task=task, arch=arch, trust_pickle=trust_pickle,
                          name=name)
    except OptimError as err:
        optim.reject_upload(path)
        raise _reworded(err, path, name) from None
    optim.keep_upload(path)
    return str(path)


def upload_ref(name: str, data: bytes) -> str:
    """The ref an upload gets once accepted (nothing is written)."""
    return str(optim.upload_path(name, data))


def csv_columns(name: str, data: bytes) -> list[str]:
    """Header of a CSV upload (to pick the target column); [] for anything else or unreadable."""
    import io

    import pandas as pd

    if Path(name).suffix.lower() not in (".csv", ".tsv", ".txt"):
        return []
    try:
        head = pd.read_csv(io.BytesIO(data), nrows=0, sep=None, engine="python", encoding_errors="replace")
    except Exception:  # any unreadable header: the loader gives the real message
        return []
    return [str(c) for c in head.columns if not str(c).startswith("Unnamed: 0")]


def npz_arrays(data: bytes) -> list[str]:
    """Array names of an NPZ upload (to pick the target array); [] otherwise."""
    import io
    import zipfile

    try:
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except (OSError, zipfile.BadZipFile):
        return []
    if not names or not all(n.endswith(".npy") for n in names):
        return []
    return [n[:-4] for n in names]


def arch_choices() -> list[str]:
    """Architectures a weights file can name: the bundled ones, then torchvision's classifiers."""
    return optim.architecture_names()


# --- cached loading of the current choice ----------------------------------------------------
@st.cache_resource(max_entries=8, show_spinner="Loading dataset…")
def cached_dataset(data_ref: str, target: str | None, task: str | None) -> Any:
    """The Dataset of ``data_ref`` (shared across sessions; never mutate it)."""
    return optim.load_dataset(data_ref, target=target, task=task)


@st.cache_resource(max_entries=8, show_spinner=False)
def cached_splits(data_ref: str, target: str | None, task: str | None) -> Any:
    return cached_dataset(data_ref, target, task).splits()


@st.cache_resource(max_entries=8, show_spinner="Loading model…")
def cached_baseline(model_ref: str, data_ref: str, target: str | None, task: str | None,
                    arch: str | None, trust_pickle: bool) -> Any:
    """The baseline Candidate (shared across sessions; candidates are immutable by contract)."""
    return optim.load_model(model_ref, dataset=cached_dataset(data_ref, target, task), arch=arch,
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
                            arch: str | None, trust_pickle: bool, threads: int, batch_size: int,
                            name: str | None = None) -> dict[str, Any]:
    """The baseline's result columns, measured once with short budgets in a child process."""
    return optim.measure_baseline(model_ref, data_ref, target=target, task=task, arch=arch,
                                  trust_pickle=trust_pickle, threads=int(threads), batch_size=int(batch_size),
                                  latency_budget_s=PAGE_LATENCY_BUDGET_S, energy_inferences=PAGE_ENERGY_INFERENCES,
                                  name=name)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_applicability(model_ref: str, data_ref: str, target: str | None, task: str | None,
                         arch: str | None, trust_pickle: bool) -> dict[str, str | None]:
    """Technique name → reason it cannot apply to the current baseline (None: it can)."""
    from optim import technique_applicability as applicability

    cand = cached_baseline(model_ref, data_ref, target, task, arch, trust_pickle)
    return {name: a.reason for name, a in applicability(cand, cached_splits(data_ref, target, task)).items()}


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
        return dataset, None, err.for_dashboard()
    return dataset, baseline, None

