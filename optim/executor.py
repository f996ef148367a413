"""Make candidates on a Ray cluster, measure them here.

``optim run --executor ray`` (the cluster ``RAY_ADDRESS`` names, else a new local one bound to
127.0.0.1) or ``--executor ray://HOST:PORT`` (Ray Client) runs each recipe's *making* — its
technique steps, training included — as one Ray task that declares the CPUs it uses (the run's
``threads``). A task returns files and a JSON manifest (:func:`optim.candidate.save_candidate`'s
TorchScript / torch.export / ONNX / safetensors files), never a pickle of a model object: Ray's own
transport carries only bytes and plain data. The driver rebuilds each candidate from them and measures it exactly as a
local run does — metric and size as each arrives, latency and energy of all candidates together
in interleaved rounds on this one machine — so timings stay comparable. A task that fails or
whose worker is lost marks its recipe ``failed`` (tasks are not retried: a retry would hide the
loss) and the others finish; cancelling cancels the tasks still running.

Ray is an optional extra (``pip install 'optim[ray]'``), imported only here.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optim.errors import CancelledError, ConfigError, OptimError

if TYPE_CHECKING:
    from optim.candidate import Candidate
    from optim.context import RunContext
    from optim.experiment import Recipe

#: The extra that installs Ray (pyproject.toml).
EXTRA = "optim[ray]"
#: Seconds between two looks at the user's cancel button while waiting for a task.
POLL_S = 0.5
#: Object store of a local cluster optim starts itself: candidates are small files.
LOCAL_OBJECT_STORE_BYTES = 200 * 1024 * 1024


def require_ray(executor: str = "ray") -> Any:
    """The ``ray`` module, or an OptimError naming the extra to install."""
    if executor == "ray" and not os.environ.get("RAY_ADDRESS"):
        # A cluster of this machine only: Ray then keeps every address on the loopback interface
        # instead of resolving 127.0.0.1 to the machine's network address (read when ray is imported).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise OptimError("--executor ray needs Ray, which is not installed.",
                         hint=f"pip install '{EXTRA}', then run again (or use --executor local).") from None
    return ray


def check_executor(value: str) -> str:
    """``local``, ``ray`` or ``ray://HOST:PORT`` (ConfigError otherwise); Ray importable for the latter."""
    value = (value or "local").strip()
    if value == "local":
        return value
    if value != "ray" and not (value.startswith("ray://") and len(value) > len("ray://")):
        raise ConfigError(f"executor={value!r}: give local, ray, or ray://HOST:PORT (--executor).")
    require_ray(value)
    return value


# --- on the worker ----------------------------------------------------------------------------------
def pack(cand: Candidate, work: Path, key: str) -> dict[str, Any]:
    """A candidate as ``{"manifest": JSON, "files": {name: bytes}}``: the files
    :func:`optim.candidate.save_candidate` writes (TorchScript / torch.export / ONNX / safetensors),
    read back as bytes — no pickle of any object."""
    from optim.candidate import save_candidate

    folder = work / key
    manifest = save_candidate(cand, folder, candidate_id=key, run_id="ray")
    return {"manifest": manifest, "files": {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}}


def unpack(packed: dict[str, Any], folder: Path) -> Candidate:
    """The candidate :func:`pack` sent, written into ``folder`` (inside the run folder) and read
    with :func:`optim.candidate.load_candidate`, which never unpickles."""
    from optim.candidate import load_candidate

    folder.mkdir(parents=True, exist_ok=True)
    for name, data in packed["files"].items():
        if Path(name).name != name or name.startswith("."):  # plain names only: nothing outside folder
            raise OptimError(f"a Ray task sent a file named {name!r}; only plain file names are accepted.")
        (folder / name).write_bytes(data)
    cand, _ = load_candidate(folder)
    return cand


def make_task(spec: dict[str, Any], recipe: str, ctx_settings: dict[str, Any]) -> dict[str, Any]:
    """The body of one Ray task: load the inputs, make ``recipe``'s candidates, pack them.

    Returns ``{"candidates": [packed...], "optimize_s", "optimize_energy_j", "made_on"}``.
    """
    import tempfile

    import torch

    from optim.context import RunContext
    from optim.evaluation.energy import EnergyMeter
    from optim.experiment import ExperimentSpec, load_inputs, make_candidates, parse_recipe

    exp = ExperimentSpec.from_dict(spec)
    torch.set_num_threads(exp.threads)
    baseline, splits = load_inputs(exp)
    (parsed,) = parse_recipe(recipe)
    with tempfile.TemporaryDirectory(prefix="optim-ray-") as work:
        ctx = RunContext(data=splits, seed=exp.seed, threads=exp.threads, workdir=Path(work),
                         country_iso_code=exp.country_iso_code, latency_budget_s=exp.latency_budget_s,
                         energy_inferences=exp.energy_inferences, **ctx_settings)
        with EnergyMeter.shared(exp.country_iso_code).cost() as cost:
            made = make_candidates(parsed, baseline, ctx, exp.seed)
        packed = [pack(c, Path(work) / "out", f"m{j}") for j, c in enumerate(made)]
    return {"candidates": packed, "optimize_s": cost.seconds, "optimize_energy_j": cost.energy_j,
            "made_on": f"{socket.gethostname()} (pid {os.getpid()})"}


# --- on the driver ----------------------------------------------------------------------------------
def _connect(ray: Any, executor: str) -> bool:
    """Connect to the cluster; True when this call started the connection (and should end it)."""
    if ray.is_initialized():
        return False
    env = {"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "OPTIM_HOME": os.environ.get("OPTIM_HOME", "")}
    runtime_env = {"env_vars": {k: v for k, v in env.items() if v}}
    try:
        if executor.startswith("ray://") or os.environ.get("RAY_ADDRESS"):
            ray.init(address=executor if executor.startswith("ray://") else os.environ["RAY_ADDRESS"],
                     runtime_env=runtime_env, logging_level="ERROR", log_to_driver=False)
        else:  # a cluster of this machine only, every port on 127.0.0.1
            ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, runtime_env=runtime_env,
                     object_store_memory=LOCAL_OBJECT_STORE_BYTES, logging_level="ERROR", log_to_driver=False)
    except Exception as err:
        raise OptimError(
            f"--executor {executor}: could not connect to Ray: {type(err).__name__}: {err}",
            hint="Check the address and that the cluster runs (ray status), or use --executor local.",
        ) from None
    return True


def run_remote(runner: Any, recipes: list[Recipe], baseline: Candidate, base_row: dict[str, Any],
               ctx: RunContext, counter: Any) -> str:
    """Make every recipe on Ray, measure each here as it comes back (in recipe order, so candidate
    ids match a local run); return the run status so far (``done`` or ``cancelled``)."""
    ray = require_ray(runner.spec.executor)
    started = _connect(ray, runner.spec.executor)
    ctx_settings = {"batch_size": ctx.batch_size, "max_batch": ctx.max_batch,
                    "external_storage": ctx.external_storage}
    spec = runner.spec.to_dict()
    task = ray.remote(make_task).options(num_cpus=max(1, int(runner.spec.threads)), max_retries=0,
                                         name="optim-make")
    refs = [task.remote(spec, r.spec, ctx_settings) for r in recipes]
    runner.emit(type="log", message=f"{len(refs)} recipe(s) sent to Ray ({runner.spec.executor}); measured here")
    status = "done"
    try:
        for index, (recipe, ref) in enumerate(zip(recipes, refs)):
            first_id = runner.start_recipe(recipe, counter, index)
            runner.emit(type="progress", candidate_id=first_id, step="on Ray", fraction=0.0, message="making")
            try:
                out = _wait(ray, ref, runner)
                made = [unpack(p, ctx.workdir / "from-ray" / f"{index}-{j}") for j, p in enumerate(out["candidates"])]
            except CancelledError:
                runner.put(runner.failed_row(first_id, recipe.spec, "+".join(dict.fromkeys(recipe.families)),
                                             "cancelled before this recipe finished", "cancelled"))
                status = "cancelled"
                break
            except Exception as err:  # the task failed or its worker was lost: this recipe only
                runner.recipe_failed(first_id, recipe, _cause(err))
                runner._n_done += 1
                continue
            cost = {"optimize_s": out["optimize_s"], "optimize_energy_j": out["optimize_energy_j"],
                    "made_on": out["made_on"]}
            try:
                runner.measure_made(first_id, recipe, made, base_row, ctx, counter, cost)
            except CancelledError:
                status = "cancelled"
                break
            runner._n_done += 1
    finally:
        for ref in refs:  # cancel reaches the tasks still running (no-op for finished ones)
            try:
                ray.cancel(ref, force=True)
            except Exception:
                pass
        if started:
            ray.shutdown()
    return status


def _wait(ray: Any, ref: Any, runner: Any) -> dict[str, Any]:
    while True:
        if runner.cancelled():
            raise CancelledError("Run cancelled by the user; finished candidates are kept.")
        ready, _ = ray.wait([ref], timeout=POLL_S)
        if ready:
            return ray.get(ref)


def _cause(err: BaseException) -> BaseException:
    """The user-facing error inside a Ray task error, or one that says the worker was lost."""
    import ray.exceptions as rx

    if isinstance(err, rx.RayTaskError):
        inner = getattr(err, "cause", None)
        if isinstance(inner, OptimError):
            return inner
        return OptimError(f"the Ray task failed: {type(inner).__name__ if inner else 'error'}: {inner}")
    if isinstance(err, (rx.WorkerCrashedError, rx.NodeDiedError, rx.TaskUnschedulableError, rx.ObjectLostError)):
        return OptimError(f"the Ray worker making this candidate was lost ({type(err).__name__}); "
                          "the other candidates go on.", hint="Run the recipe again, or locally (--executor local).")
    return err
