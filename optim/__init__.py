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
           "cancel_run", "list_runs", "get_run", "queue_position", "run_candidates", "QueuePosition"]

from optim import jobs
from optim.errors import OptimError
from optim.jobs import QueuePosition, get_run, list_runs, queue_position, start_background
from optim.jobs import cancel as cancel_run
from optim.jobs import candidates as run_candidates
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


def techniques() -> list[Any]:
    """Every registered technique (instances), in family order."""
    from optim.registry import all_techniques

    return all_techniques()


def __getattr__(name: str) -> Any:
    if name == "ExperimentSpec":
        from optim.experiment import ExperimentSpec

        return ExperimentSpec
    raise AttributeError(name)
