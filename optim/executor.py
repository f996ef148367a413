"""Make candidates on a Ray cluster, measure them here.

``optim run --executor ray`` (the cluster ``RAY_ADDRESS`` names, else a new local one bound to
127.0.0.1) or ``--executor ray://HOST:PORT`` (Ray Client) runs each recipe's *making* — its
technique steps, training included — as one Ray task that declares the CPUs it uses (the run's
``threads``). A task returns files and a JSON manifest (:func:`optim.candidate.save_candidate`'s
TorchScript / torch.export / ONNX / safetensors files), never a pickle of a model object: Ray's own
transport carries only bytes and plain data. The driver rebuilds each candidate from them and measures it exactly as a
local run does — metric and size as each arrives, latency and energy of all candidates together
in interleaved rounds on this one machine — so timings stay comparable. ``--measure-on KEY=VALUE``
moves that timing phase (every candidate and the baseline together, still interleaved) to the one
node started with that Ray label (``ray start --labels KEY=VALUE``), e.g. the machine the model
will be deployed on; ``--measure-on per-node`` times each recipe's candidates on the node that made
them, beside the baseline timed there (speed-ups hold, latencies do not compare across nodes and
the Compare page says so; each row keeps that baseline copy's figures, ``node_baseline``, which its
deltas, the Pareto front and the recommendation compare it through). A task that fails or
whose worker is lost marks its recipe ``failed`` (tasks are not retried: a retry would hide the
loss) and the others finish; cancelling cancels the tasks still running.

An ``hpo`` recipe made on Ray runs its trials as Ray tasks too (:func:`run_trials`), sharing one
Optuna study: an Optuna journal file in the run folder (or the ``storage`` the recipe names); the
search's sampler draws every trial's settings, its pruner judges each trial's epochs.

Only this driver writes to optim's store (events, rows, progress): a task's log lines come
back with its result and are written here, in order, so a shared PostgreSQL store sees one
writer per run. The workers write only to the Optuna study of an hpo search (Optuna's own storage).

A cluster optim starts itself keeps its session files under ``$OPTIM_HOME/ray`` and removes
them when the run ends.

Ray is an optional extra (``pip install 'optim[ray]'``), imported only here.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optim.errors import CancelledError, ConfigError, OptimError, require_extra

if TYPE_CHECKING:
    from optim.candidate import Candidate
    from optim.context import RunContext
    from optim.experiment import Recipe

#: Seconds between two looks at the user's cancel button while waiting for a task.
POLL_S = 0.5
#: Object store of a local cluster optim starts itself: candidates are small files.
LOCAL_OBJECT_STORE_BYTES = 200 * 1024 * 1024
#: Longest session folder Ray may create under its temp dir: Ray puts unix sockets at
#: ``<temp>/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store`` (about 64 characters after
#: ``<temp>``) and a unix socket path holds at most 107 bytes on Linux.
_SOCKET_TAIL = 64
_SOCKET_MAX = 107


def require_ray(executor: str = "ray") -> Any:
    """The ``ray`` module, or an OptimError naming the extra to install (Ray Client's too, for ray://)."""
    if executor == "ray" and not os.environ.get("RAY_ADDRESS"):
        # A cluster of this machine only: Ray then keeps every address on the loopback interface
        # instead of resolving 127.0.0.1 to the machine's network address (read when ray is imported).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = require_extra("ray", "ray", feature=f"--executor {executor}", alternative="or use --executor local")
    if executor.startswith("ray://"):
        # Ray Client speaks gRPC; plain `pip install ray` does not bring it.
        require_extra("grpc", "ray-client", feature=f"--executor {executor} (Ray Client)",
                      alternative="or run optim on a node of the cluster with RAY_ADDRESS set and --executor ray")
    return ray


def ray_temp_dir() -> Path:
    """Where a Ray cluster optim starts keeps its session files: ``$OPTIM_HOME/ray``.

    When that path is too deep for Ray's unix sockets (see ``_SOCKET_MAX``) this returns a short
    per-user folder in the system temp dir instead — the one place optim writes outside OPTIM_HOME,
    because Ray cannot bind its sockets deeper.
    """
    import tempfile

    from optim.store import optim_home

    home = optim_home().resolve() / "ray"
    if len(str(home)) + _SOCKET_TAIL <= _SOCKET_MAX:
        return home
    return Path(tempfile.gettempdir()) / f"optim-ray-{os.getuid() if hasattr(os, 'getuid') else 0}"


def check_executor(value: str) -> str:
    """``local``, ``ray`` or ``ray://HOST:PORT`` (ConfigError otherwise); Ray importable for the latter."""
    value = (value or "local").strip()
    if value == "local":
        return value
    if value != "ray" and not (value.startswith("ray://") and len(value) > len("ray://")):
        raise ConfigError(f"executor={value!r}: give local, ray, or ray://HOST:PORT (--executor).")
    require_ray(value)
    return value


#: A Ray node label ``KEY=VALUE`` as ``ray start --labels`` takes it (Kubernetes label syntax:
#: an optional ``prefix/`` then a name; the value may be empty).
_LABEL = re.compile(r"^((?:[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)"
                    r"=([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
PER_NODE = "per-node"


def check_measure_on(value: str, executor: str) -> str:
    """``driver``, ``per-node`` or a Ray node label ``KEY=VALUE`` (ConfigError otherwise); the
    latter two only for candidates made on Ray."""
    value = (value or "driver").strip()
    if value == "driver":
        return value
    if value != PER_NODE and not _LABEL.match(value):
        raise ConfigError(f"measure_on={value!r}: give driver, per-node, or a Ray node label KEY=VALUE "
                          "(--measure-on; the node started with ray start --labels KEY=VALUE).")
    if executor == "local":
        raise ConfigError(f"--measure-on {value}: only candidates made on Ray are measured on a Ray node.",
                          hint="Add --executor ray (or ray://HOST:PORT), or drop --measure-on: a local run "
                               "measures on this machine.")
    return value


def label_selector(measure_on: str) -> dict[str, str] | None:
    """The Ray ``label_selector`` of ``--measure-on KEY=VALUE``; None for driver and per-node."""
    if measure_on in ("driver", PER_NODE):
        return None
    key, _, value = measure_on.partition("=")
    return {key: value}


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


def make_task(spec: dict[str, Any], recipe: str, ctx_settings: dict[str, Any], workdir: str) -> dict[str, Any]:
    """The body of one Ray task: load the inputs, make ``recipe``'s candidates, pack them.

    ``workdir`` is the recipe's folder in the driver's run folder: used when this worker sees it
    (a cluster on the driver's machine; an hpo study file there is then shared by its trials),
    else a temporary folder. Returns ``{"candidates": [packed...], "optimize_s",
    "optimize_energy_j", "made_on"}``.
    """
    import tempfile

    import torch

    from optim.context import RunContext
    from optim.evaluation.energy import EnergyMeter
    from optim.experiment import ExperimentSpec, load_inputs, make_candidates, parse_recipe
    from optim.techniques import hpo

    exp = ExperimentSpec.from_dict(spec)
    torch.set_num_threads(exp.threads)
    baseline, splits = load_inputs(exp)
    (parsed,) = parse_recipe(recipe)
    logs: list[str] = []  # written to the store by the driver (the one writer of a run's events)
    hpo.TRIALS_ON_RAY = run_trials  # a search made here spreads its trials over the cluster
    try:
        with tempfile.TemporaryDirectory(prefix="optim-ray-") as tmp:
            work = Path(workdir) if Path(workdir).parent.is_dir() else Path(tmp) / "work"
            ctx = RunContext(data=splits, seed=exp.seed, threads=exp.threads, workdir=work,
                             country_iso_code=exp.country_iso_code, latency_budget_s=exp.latency_budget_s,
                             energy_inferences=exp.energy_inferences, log_cb=logs.append, **ctx_settings)
            with EnergyMeter.shared(exp.country_iso_code).cost() as cost:
                made = make_candidates(parsed, baseline, ctx, exp.seed, parent_runtime=exp.parent_runtime)
            packed = [pack(c, Path(tmp) / "out", f"m{j}") for j, c in enumerate(made)]
            timing = None
            if exp.measure_on == PER_NODE:  # timed here, in interleaved rounds with this node's baseline
                from optim.evaluation.measure import measure_timing
                from optim.evaluation.noise import NODE_BASELINE

                by_id = measure_timing({"c0": baseline, **{f"m{j}": c for j, c in enumerate(made)}}, ctx,
                                       reference="c0")
                # Each row keeps the baseline copy's figures: its raw latencies compare only with them.
                beside = {k: v for k, v in by_id["c0"].items()
                          if isinstance(v, (int, float)) and not isinstance(v, bool)}
                timing = [{**by_id[f"m{j}"], NODE_BASELINE: beside} for j in range(len(made))]
    finally:
        hpo.TRIALS_ON_RAY = None
    return {"candidates": packed, "optimize_s": cost.seconds, "optimize_energy_j": cost.energy_j,
            "made_on": where_made(), "timing": timing, "log": logs}


def time_task(packed: dict[str, dict[str, Any]], data: Any, ctx_args: dict[str, Any],
              reference: str | None) -> dict[str, Any]:
    """The body of the timing task of ``--measure-on KEY=VALUE``: every candidate (the baseline
    too) rebuilt from its files and timed together in interleaved rounds on the labelled node."""
    import tempfile

    import torch

    from optim.context import RunContext
    from optim.evaluation.measure import measure_timing

    torch.set_num_threads(ctx_args["threads"])
    with tempfile.TemporaryDirectory(prefix="optim-time-") as tmp:
        made = {cid: unpack(p, Path(tmp) / cid) for cid, p in packed.items()}
        ctx = RunContext(data=data, workdir=Path(tmp) / "work", **ctx_args)
        timing = measure_timing(made, ctx, reference=reference)
    return {"timing": timing, "measured_on": where_made()}


def where_made() -> str:
    """This Ray worker's host, node id (short) and CPU, as a row's ``made_on`` column shows it."""
    import ray

    from optim.evaluation.environment import environment_info

    env = environment_info()
    node = ray.get_runtime_context().get_node_id()[:8]
    return f"{socket.gethostname()} node {node} ({env['cpu_model']}, {env['cpu_logical_cores']} CPUs)"


# --- on the driver ----------------------------------------------------------------------------------
def _connect(ray: Any, executor: str) -> Path | bool:
    """Connect to the cluster. Returns False when already connected (the caller must leave the
    connection open), True when this call connected to a running cluster, and the session folder
    of a cluster this call started on this machine (:func:`_disconnect` removes it)."""
    if ray.is_initialized():
        return False
    env = {"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "OPTIM_HOME": os.environ.get("OPTIM_HOME", "")}
    runtime_env = {"env_vars": {k: v for k, v in env.items() if v}}
    try:
        if executor.startswith("ray://") or os.environ.get("RAY_ADDRESS"):
            ray.init(address=executor if executor.startswith("ray://") else os.environ["RAY_ADDRESS"],
                     runtime_env=runtime_env, logging_level="ERROR", log_to_driver=False)
        else:  # a cluster of this machine only, every port on 127.0.0.1
            # Making candidates is the run's own work: Ray's default worker nice 15 left it starved
            # behind any other program on the machine (27 s of work took over 10 min under load).
            os.environ.setdefault("RAY_worker_niceness", "0")
            ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, runtime_env=runtime_env,
                     _temp_dir=str(ray_temp_dir()),
                     object_store_memory=LOCAL_OBJECT_STORE_BYTES, logging_level="ERROR", log_to_driver=False)
            from ray._private import worker

            node: Any = worker._global_node  # set by the ray.init above (typed Optional in Ray)
            return Path(node.get_session_dir_path())
    except Exception as err:
        raise OptimError(
            f"--executor {executor}: could not connect to Ray: {type(err).__name__}: {err}",
            hint="Check the address and that the cluster runs (ray status), or use --executor local.",
        ) from None
    return True


def _disconnect(ray: Any, started: Path | bool) -> None:
    """End a connection :func:`_connect` started; remove the session folder of a cluster it started
    (logs and sockets of a finished run: they piled up, one per run). Only a folder under
    ``$OPTIM_HOME/ray`` is removed: the short temp folder used when OPTIM_HOME is too deep is left
    for the system to clear."""
    from optim.store import optim_home

    if not started:
        return
    ray.shutdown()
    if not isinstance(started, Path):
        return
    root = (optim_home().resolve() / "ray")
    session = started.resolve()
    if session.parent != root or not session.name.startswith("session_"):
        return
    shutil.rmtree(session, ignore_errors=True)
    latest = root / "session_latest"  # Ray's link to the newest session: dangling now
    if latest.is_symlink() and not latest.exists():
        latest.unlink()


def run_remote(runner: Any, recipes: list[Recipe], baseline: Candidate, base_row: dict[str, Any],
               ctx: RunContext, counter: Any) -> str:
    """Make every recipe on Ray, measure each here as it comes back (in recipe order, so candidate
    ids match a local run); return the run status so far (``done`` or ``cancelled``)."""
    ray = require_ray(runner.spec.executor)
    started = _connect(ray, runner.spec.executor)
    selector = label_selector(runner.spec.measure_on)
    if selector is not None:  # before any work: a cluster without the measurement node is a typo
        try:
            _check_label(ray, selector)
        except OptimError:
            _disconnect(ray, started)
            raise
    ctx_settings = {"batch_size": ctx.batch_size, "max_batch": ctx.max_batch,
                    "external_storage": ctx.external_storage}
    spec = runner.spec.to_dict()
    task = ray.remote(make_task)
    # Named by recipe index: `ray list tasks` (and the worker's process title, ray::optim-make-r2) say
    # which recipe a worker is making.
    (ctx.workdir / "ray").mkdir(parents=True, exist_ok=True)
    refs = [task.options(name=f"optim-make-r{i}", num_cpus=max(1, int(runner.spec.threads)), max_retries=0)
            .remote(spec, r.spec, ctx_settings, str(ctx.workdir.resolve() / "ray" / f"r{i}"))
            for i, r in enumerate(recipes)]
    where = {"driver": "measured here", PER_NODE: "each timed on the node that made it"}.get(
        runner.spec.measure_on, f"timed on the node labelled {runner.spec.measure_on}")
    runner.emit(type="log", message=f"{len(refs)} recipe(s) sent to Ray ({runner.spec.executor}); {where}")
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
            for line in out.get("log", []):  # the task's log, written here: one writer per run
                runner.emit(type="log", candidate_id=first_id, message=line)
            cost = {"optimize_s": out["optimize_s"], "optimize_energy_j": out["optimize_energy_j"],
                    "made_on": out["made_on"]}
            timed = None
            if out.get("timing") is not None:
                timed = [{**t, "measured_on": out["made_on"]} for t in out["timing"]]
            try:
                runner.measure_made(first_id, recipe, made, base_row, ctx, counter, cost, timed=timed)
            except CancelledError:
                status = "cancelled"
                break
            runner._n_done += 1
        if selector is not None:  # time every candidate on the labelled node, while connected
            _cancel(ray, refs)  # a cancelled run's tasks must not hold that node's CPUs
            runner.measure_timing(ctx, timer=lambda made, c, reference: time_on_node(ray, selector, made, c, reference))
    finally:
        _cancel(ray, refs)
        _disconnect(ray, started)
    return status


def _cancel(ray: Any, refs: list[Any]) -> None:
    """Cancel reaches the tasks still running (a no-op for finished ones): their workers are killed."""
    for ref in refs:
        try:
            ray.cancel(ref, force=True)
        except Exception:  # noqa: BLE001 — already finished, or the connection is gone
            pass


def time_on_node(ray: Any, selector: dict[str, str], made: dict[str, Candidate], ctx: RunContext,
                 reference: str | None) -> dict[str, dict[str, Any]]:
    """Timing columns of every candidate in ``made``, timed together by one task on the node the
    label ``selector`` names (each row's ``measured_on`` says which); OptimError when no node has
    the label or the task fails."""
    import dataclasses
    import tempfile

    (key, value), = selector.items()
    _check_label(ray, selector)
    with tempfile.TemporaryDirectory(prefix="optim-pack-") as tmp:
        packed = {cid: pack(c, Path(tmp), cid) for cid, c in made.items()}
    # Timing reads only the test rows: the training rows stay here.
    data = dataclasses.replace(ctx.data, train=ctx.data.test, val=ctx.data.test)
    ctx_args = {"seed": ctx.seed, "threads": ctx.threads, "batch_size": ctx.batch_size, "max_batch": ctx.max_batch,
                "latency_budget_s": ctx.latency_budget_s, "energy_inferences": ctx.energy_inferences,
                "country_iso_code": ctx.country_iso_code}
    ref = ray.remote(time_task).options(name="optim-time", num_cpus=max(1, int(ctx.threads)), max_retries=0,
                                        label_selector=selector).remote(packed, data, ctx_args, reference)
    try:
        out = ray.get(ref)
    except Exception as err:
        raise OptimError(f"timing on the node labelled {key}={value} failed: {_cause(err)}",
                         hint="Check that node (ray status), or use --measure-on driver.") from None
    return {cid: {**cols, "measured_on": out["measured_on"]} for cid, cols in out["timing"].items()}


def _check_label(ray: Any, selector: dict[str, str]) -> None:
    """OptimError unless a live node of the cluster has the label (a task asking for it would wait forever)."""
    (key, value), = selector.items()
    if not any(n.get("Alive") and (n.get("Labels") or {}).get(key) == value for n in ray.nodes()):
        raise OptimError(f"--measure-on {key}={value}: no node of the Ray cluster has that label.",
                         hint=f"Start the measurement node with ray start --labels {key}={value}, or "
                              "use --measure-on driver.")


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


# --- hpo trials, each a Ray task sharing one Optuna study -----------------------------------------
def _trial_placement(ray: Any, storage: str) -> dict[str, Any]:
    """Where trial tasks may run: anywhere, unless the study is a file (journal or SQLite) and the
    cluster spans several hosts — then on this node, the one that can open the file."""
    if not storage.startswith(("journal://", "sqlite")):
        return {}
    here = ray.get_runtime_context().get_node_id()
    hosts = {n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")}
    if len(hosts) <= 1:
        return {}
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=here, soft=False)}


def trial_task(job: dict[str, Any], packed: dict[str, Any], data: Any) -> dict[str, Any]:
    """The body of one hpo trial on a Ray worker: open the shared study, train the trial's settings
    (its pruner reads the other trials' epochs from the study), send the candidate back as files."""
    import tempfile

    import optuna
    from threadpoolctl import threadpool_limits

    from optim.context import RunContext
    from optim.experiment import _seed_everything
    from optim.registry import get
    from optim.techniques._train_common import torch_threads
    from optim.techniques.hpo import HpoConfig, open_study, train_trial

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    config = HpoConfig(**job["config"])
    tuned = get(config.tune)
    with tempfile.TemporaryDirectory(prefix="optim-trial-") as work:
        ctx = RunContext(data=data, workdir=Path(work), **job["ctx"])
        candidate = unpack(packed, Path(work) / "in")
        study = open_study(job["storage"], job["study"], config, optuna.samplers.RandomSampler(seed=ctx.seed))
        trial = optuna.trial.Trial(study, job["trial_id"])
        _seed_everything(ctx.seed)
        try:
            with torch_threads(ctx.threads), threadpool_limits(limits=ctx.threads):
                cand, vals, error = train_trial(tuned, candidate, job["values"], ctx, trial, config.objective2)
        except optuna.TrialPruned:
            return {"state": "pruned", "made_on": where_made()}
        if error is not None or cand is None or vals is None:
            return {"state": "failed", "error": error, "made_on": where_made()}
        return {"state": "complete", "values": list(vals), "made_on": where_made(),
                "candidate": pack(cand, Path(work) / "out", f"t{job['trial_id']}")}


def run_trials(study: Any, storage: str, config: Any, candidate: Candidate, space: list[Any],
               fixed: dict[str, Any], ctx: RunContext, after_trial: Any, keep: Any) -> None:
    """``study.optimize`` for a search made on Ray: the trials run as Ray tasks, as many at once as
    the cluster has CPUs for (``ctx.threads`` each). This process asks the sampler for each trial's
    settings (so a seeded sampler draws the same settings as a search in one process), the task
    trains them, reporting epochs to the shared ``storage``, and this process tells the study the
    result; ``after_trial(study, frozen_trial)`` and ``keep(number, candidate, values)`` as in one
    process. A lost task fails its trial only; a cancel cancels the running trials."""
    import time as _time

    from optuna.trial import TrialState

    from optim.techniques.hpo import trial_values

    ray = require_ray()
    slots = max(1, min(config.trials, int(ray.cluster_resources().get("CPU", 1)) // max(1, ctx.threads)))
    packed = ray.put(pack(candidate, ctx.workdir / "hpo" / "input", "in"))
    data = ray.put(ctx.data)
    task = ray.remote(trial_task)
    placement = {"num_cpus": max(1, ctx.threads), "max_retries": 0, **_trial_placement(ray, storage)}
    ctx_args = {"seed": ctx.seed, "threads": ctx.threads, "batch_size": ctx.batch_size,
                "latency_budget_s": ctx.latency_budget_s, "max_batch": ctx.max_batch}
    deadline = _time.monotonic() + config.timeout_s if config.timeout_s else None
    running: dict[Any, Any] = {}
    asked = 0
    try:
        while running or asked < config.trials:
            ctx.check_cancelled()
            while (len(running) < slots and asked < config.trials
                   and (deadline is None or _time.monotonic() < deadline)):
                trial = study.ask()
                job = {"config": config.model_dump(), "storage": storage, "study": study.study_name,
                       "trial_id": trial._trial_id, "values": trial_values(trial, space, fixed), "ctx": ctx_args}
                running[task.options(name=f"optim-trial-{trial.number}", **placement).remote(job, packed, data)] = trial
                asked += 1
            if not running:
                break  # the timeout stopped new trials
            ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
            for ref in ready:
                trial = running.pop(ref)
                try:
                    out = ray.get(ref)
                except Exception as err:  # the task failed or its worker was lost: this trial only
                    cause = _cause(err)
                    out = {"state": "failed", "error": cause.one_line() if isinstance(cause, OptimError)
                           else f"internal error: {type(cause).__name__}: {cause}"}
                trial.set_user_attr("made_on", out.get("made_on", ""))
                if out["state"] == "complete":
                    vals = tuple(out["values"])
                    frozen = study.tell(trial, list(vals))
                    keep(trial.number, unpack(out["candidate"], ctx.workdir / "hpo" / f"trial-{trial.number}"), vals)
                elif out["state"] == "pruned":
                    frozen = study.tell(trial, state=TrialState.PRUNED)
                else:
                    trial.set_user_attr("error", out.get("error"))
                    ctx.log(f"hpo trial {trial.number} failed: {out.get('error')}")
                    frozen = study.tell(trial, state=TrialState.FAIL)
                after_trial(study, frozen)
    finally:
        for ref, trial in running.items():  # cancel reaches the trials still running
            try:
                ray.cancel(ref, force=True)
                study.tell(trial, state=TrialState.FAIL)
            except Exception:  # noqa: BLE001 — already finished, or the storage is gone
                pass
