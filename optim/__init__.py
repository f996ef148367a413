"""optim: compare ML model optimizations side by side — accuracy, size, latency, estimated energy.

The facade::

    import optim
    baseline = optim.load_model("model.onnx", dataset=optim.load_dataset("data.csv", target="label"))
    results = optim.run_experiment(optim.ExperimentSpec(model="sample:digits-mlp", data="sample",
                                                        recipes=["quantize-dynamic"]))
    optim.export_candidate(results.out_dir, "c1", "onnx", "model.onnx")
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["load_model", "load_dataset", "run_experiment", "export_candidate", "techniques",
           "ExperimentSpec", "OptimError", "__version__",
           # jobs: start, queue, liveness, cancel, progress (optim.jobs) and the store they live in
           "jobs", "Store", "RUN_STATUSES", "ACTIVE_STATUSES", "FINISHED_STATUSES", "start_background",
           "cancel_run", "list_runs", "get_run", "queue_position", "run_candidates", "QueuePosition",
           # user models in a child process (optim.sandbox) and the uploads folder (optim.io.uploads)
           "probe_model", "measure_baseline", "ModelLimits", "upload_path", "save_upload", "keep_upload",
           "reject_upload", "architecture_names",
           # picked candidates side by side, runs of one model and data in one table (optim.picks)
           "MAX_PICKED", "lineage_text", "side_by_side", "mark_candidates", "same_setup", "combine_runs", "by_run",
           "runs_table", "runs_chart",
           # export: file names after model and recipe, which formats a candidate supports (optim.export)
           "export_name", "export_formats", "display_ref", "EXPORT_FORMATS", "EXPORT_SUFFIX",
           # what a run will cost before it starts, and an ETA from measured steps (optim.cost)
           "calibrate", "estimate_run", "eta_s", "format_duration", "COST_WARN_S"]

from optim import jobs
from optim.errors import OptimError
from optim.jobs import QueuePosition, get_run, list_runs, queue_position, start_background
from optim.jobs import cancel as cancel_run
from optim.jobs import candidates as run_candidates
from optim.cost import WARN_S as COST_WARN_S
from optim.cost import calibrate, estimate_run, eta_s, format_duration
from optim.picks import (MAX_PICKED, by_run, combine_runs, lineage_text, mark_candidates, runs_chart, runs_table,
                         same_setup, side_by_side)
from optim.store import ACTIVE_STATUSES, FINISHED_STATUSES, RUN_STATUSES, Store


def load_model(*args: Any, **kwargs: Any) -> Any:
    """See :func:`optim.io.models.load_model`."""
    from optim.io.models import load_model as _f

    return _f(*args, **kwargs)


def load_dataset(*args: Any, **kwargs: Any) -> Any:
    """See :func:`optim.io.datasets.load_dataset`."""
    from optim.io.datasets import load_dataset as _f

    return _f(*args, **kwargs)


def run_experiment(*args: Any, **kwargs: Any) -> Any:
    """See :func:`optim.experiment.run_experiment`."""
    from optim.experiment import run_experiment as _f

    return _f(*args, **kwargs)


def export_candidate(*args: Any, **kwargs: Any) -> Any:
    """See :func:`optim.export.export_candidate`."""
    from optim.export import export_candidate as _f

    return _f(*args, **kwargs)


def export_name(model: str, recipe: str, fmt: str) -> str:
    """See :func:`optim.export.export_name`."""
    from optim.export import export_name as _f

    return _f(model, recipe, fmt)


def export_formats(run_dir: Any, candidate_id: str, *, run_id: str | None = None) -> dict[str, str | None]:
    """See :func:`optim.export.export_formats`."""
    from optim.export import export_formats as _f

    return _f(run_dir, candidate_id, run_id=run_id)


def display_ref(ref: Any, labels: dict[str, str] | None = None) -> str:
    """See :func:`optim.export.display_ref`."""
    from optim.export import display_ref as _f

    return _f(ref, labels)


def techniques() -> list[Any]:
    """Every registered technique (instances), in family order."""
    from optim.registry import all_techniques

    return all_techniques()


def probe_model(*args: Any, **kwargs: Any) -> Any:
    """See :func:`optim.sandbox.probe_model`: load and fit-check a user's model in a child process."""
    from optim.sandbox import probe_model as _f

    return _f(*args, **kwargs)


def measure_baseline(*args: Any, **kwargs: Any) -> Any:
    """See :func:`optim.sandbox.measure_baseline`: a baseline's result columns, measured in a child process."""
    from optim.sandbox import measure_baseline as _f

    return _f(*args, **kwargs)


def upload_path(*args: Any, **kwargs: Any) -> Any:
    """See :func:`optim.io.uploads.upload_path`."""
    from optim.io.uploads import upload_path as _f

    return _f(*args, **kwargs)


def save_upload(*args: Any, **kwargs: Any) -> Any:
    """See :func:`optim.io.uploads.save_upload`."""
    from optim.io.uploads import save_upload as _f

    return _f(*args, **kwargs)


def keep_upload(*args: Any, **kwargs: Any) -> Any:
    """See :func:`optim.io.uploads.keep_upload`."""
    from optim.io.uploads import keep_upload as _f

    return _f(*args, **kwargs)


def reject_upload(*args: Any, **kwargs: Any) -> Any:
    """See :func:`optim.io.uploads.reject_upload`."""
    from optim.io.uploads import reject_upload as _f

    return _f(*args, **kwargs)


def architecture_names() -> list[str]:
    """See :func:`optim.archs.architecture_names`."""
    from optim.archs import architecture_names as _f

    return _f()


def __getattr__(name: str) -> Any:
    if name == "ExperimentSpec":
        from optim.experiment import ExperimentSpec

        return ExperimentSpec
    if name in ("EXPORT_FORMATS", "EXPORT_SUFFIX"):
        from optim.export import FORMATS, SUFFIX

        return FORMATS if name == "EXPORT_FORMATS" else SUFFIX
    if name == "ModelLimits":
        from optim.sandbox import ModelLimits

        return ModelLimits
    raise AttributeError(name)
