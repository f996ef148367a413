"""Recipes, experiments and the job runner.

An experiment is a baseline plus recipes. Each recipe is a chain of techniques
(``prune-magnitude:sparsity=0.9+cluster:bits=5+huffman``); ``key=a|b|c`` sweeps a setting and
gives one variant per value. The runner measures the baseline and every variant the same way:
what does not depend on time (metric, size, MACs) as each candidate is made, written to the
store as it goes; then latency and energy of all candidates together, in interleaved rounds
(:mod:`optim.evaluation.interleave`), so load and drift hit every candidate alike. A failing
recipe's row is marked ``failed`` while the others finish.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from optim.candidate import Candidate
from optim.context import RunContext
from optim.dataset import Task
from optim.errors import CancelledError, ConfigError, InputError, OptimError, redact_secrets
from optim.evaluation.batching import PREDICT_CHUNK, accepted_batch_limit  # noqa: F401  (re-exported)
from optim.recipe import Recipe, RecipeStep, parse_recipe, parse_recipes  # noqa: F401  (re-exported)
from optim.rundir import check_out_dir, claim_out_dir, missing_top, remove_empty  # noqa: F401  (re-exported)
from optim.settings import ExperimentSpec, RunSettings  # noqa: F401  (re-exported)

#: The columns every results table has (more follow them), in this order.
RESULT_COLUMNS = [
    "candidate_id", "recipe", "family", "status", "error", "metric_name", "metric_value",
    "accuracy", "rmse", "r2", "size_bytes", "size_bytes_gzip", "params", "nonzero_params", "macs",
    "latency_ms_p50_b1", "latency_ms_p95_b1", "latency_ms_p50_bN", "latency_ms_p95_bN", "batch_n",
    "throughput_sps", "threads", "energy_j_per_1k", "co2_g_per_1k", "energy_method", "optimize_s",
    "optimize_energy_j", "pareto", "size_ratio", "speedup_b1", "metric_delta",
    "slower_than_parent", "larger_than_parent", "runtime",
    # interleaved timing: intervals, stability and load (optim.evaluation.interleave / noise)
    "latency_ms_p50_b1_ci_lo", "latency_ms_p50_b1_ci_hi", "latency_ms_p95_b1_ci_lo", "latency_ms_p95_b1_ci_hi",
    "latency_ms_p50_bN_ci_lo", "latency_ms_p50_bN_ci_hi", "latency_ms_p95_bN_ci_lo", "latency_ms_p95_bN_ci_hi",
    "speedup_b1_ci_lo", "speedup_b1_ci_hi", "speedup_bN", "speedup_bN_ci_lo", "speedup_bN_ci_hi",
    "energy_j_per_1k_ci_lo", "energy_j_per_1k_ci_hi", "energy_ratio", "energy_ratio_ci_lo", "energy_ratio_ci_hi",
    "latency_cv", "latency_rounds", "measurement_stable", "load_other_cpu_pct", "measure_s",
]


#: The progress events of the final phase, where every candidate is timed together, carry this id
#: (the run's progress and message show it; it is not a candidate).
TIMING_PHASE = "timing"


@dataclass
class Results:
    """A finished (or cancelled) run: its rows, baseline first, and where its files are."""

    run_id: str | None
    out_dir: Path
    rows: list[dict[str, Any]]
    status: str = "done"

    @property
    def df(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.rows)


Event = dict[str, Any]


def load_inputs(spec: ExperimentSpec) -> tuple[Candidate, Any]:
    """The baseline candidate and the dataset's splits, or an InputError."""
    from optim.io.datasets import load_dataset
    from optim.io.models import load_model, load_sample, sample_data_ref

    if sample_data_ref(spec.model, spec.data):  # "sample" and "sample:digits" are one dataset
        candidate, splits = load_sample(spec.model.split(":", 1)[1])
        if spec.task and spec.task != candidate.task:
            raise ConfigError(f"task {spec.task}: {spec.model} is a {candidate.task} model trained on "
                              f"{sample_data_ref(spec.model, spec.data)}, a {candidate.task} task, not a "
                              f"{spec.task} task.", hint="Drop the task override (--task).")
        return candidate, splits
    if not spec.model.startswith("sample:"):
        from optim.sandbox import probe_model

        # A user's model answers two rows in a child process first, under a time limit and a
        # memory cap: one that never answers is stopped there instead of hanging this run.
        probe_model(spec.model, spec.data, target=spec.target, task=spec.task, arch=spec.arch,
                    trust_pickle=spec.trust_pickle)
    dataset = load_dataset(spec.data, target=spec.target, task=spec.task)  # type: ignore[arg-type]
    candidate = load_model(spec.model, dataset=dataset, arch=spec.arch, trust_pickle=spec.trust_pickle)
    return candidate, dataset.splits()


#: The baseline, the dataset's splits, and the largest batch the baseline runs (None: any).
Inputs = tuple[Candidate, Any, "int | None"]


def prepare_inputs(spec: ExperimentSpec) -> Inputs:
    """:func:`load_inputs` plus the batch sizes the baseline accepts: everything checked before a run."""
    baseline, splits = load_inputs(spec)
    return baseline, splits, accepted_batch_limit(baseline, splits.test.X, spec.batch_size)


def run_experiment(spec: ExperimentSpec, *, store: Any = None, run_id: str | None = None,
                   out_dir: str | Path | None = None, on_event: Callable[[Event], None] | None = None,
                   cancel: Callable[[], bool] | None = None, queue: bool = True,
                   external_storage: bool = False) -> Results:
    """Measure the baseline and every recipe's candidates; write rows to ``out_dir`` and the store.

    Bad input (files, recipes) raises OptimError before any row is written (and, without
    ``run_id``, before the run is recorded); a recipe that fails later gives a ``failed`` row and
    the others go on (the run ends ``partial``). Cancelling keeps the finished rows. With ``queue``
    (the default) the run first waits until no other run on this machine's store is measured
    (see :mod:`optim.jobs`); ``on_event`` then gets ``queued`` events saying what it waits for.
    ``external_storage=True`` lets recipes name a database server (``hpo:storage=postgresql://...``):
    ``optim run`` sets it, code calling this function may; the dashboard's worker never does (its
    recipes are typed in a browser).
    """
    from optim import jobs
    from optim.store import Store

    recipes = spec.validate()
    if spec.mlflow and not external_storage:  # typed in the dashboard: OPTIM_HOME or a server only
        from optim.store import optim_home
        from optim.tracking import check_uri

        check_uri(spec.mlflow, inside=optim_home())
    store = store if store is not None else Store()
    inputs = None
    if run_id is None:
        # A run is recorded only once its inputs are valid: a typo in --model or data the model
        # does not fit is an error line, not a `failed` run in History. A wrong --out is said
        # first: it is known without loading anything.
        made = None if out_dir is None else missing_top(out_dir)
        if out_dir is not None:
            check_out_dir(out_dir)
        try:
            inputs = prepare_inputs(spec)
        except BaseException:
            if made is not None:  # refused inputs leave no trace: the folders made by the check go again
                remove_empty(Path(out_dir).expanduser(), up_to=made)  # type: ignore[arg-type]
            raise
        run_id = jobs.create_run(store, spec, recipes, out_dir)
    out = Path(store.run(run_id)["out_dir"])
    runner = _Runner(spec, store, run_id, out, on_event, cancel, inputs=inputs,
                     external_storage=external_storage)
    try:
        with jobs.heartbeat(store, run_id):
            jobs.wait_turn(store, run_id, queue=queue, cancel=cancel,
                           on_wait=lambda pos: runner.emit(type="queued", message=pos.describe(),
                                                           behind=[r["id"] for r in pos.ahead]))
            results = runner.run(recipes)
    except BaseException as err:
        status = "cancelled" if isinstance(err, (CancelledError, KeyboardInterrupt)) else "failed"
        msg = err.one_line() if isinstance(err, OptimError) else redact_secrets(f"{type(err).__name__}: {err}")
        store.finish_if_active(run_id, status, error=msg)
        raise
    if spec.mlflow:
        from optim.tracking import log_run

        runner.emit(type="log", message=f"logging {len(results.rows)} candidate(s) to MLflow")
        ids = log_run(spec.mlflow, run_id, spec.stored(), results.rows, results.out_dir)
        runner.emit(type="log", message=f"logged {len(ids)} candidate(s) to MLflow at {redact_secrets(spec.mlflow)}")
    return results


class _Runner:
    def __init__(self, spec: ExperimentSpec, store: Any, run_id: str, out: Path,
                 on_event: Callable[[Event], None] | None, cancel: Callable[[], bool] | None, *,
                 inputs: Inputs | None = None, external_storage: bool = False) -> None:
        self.spec, self.store, self.run_id, self.out = spec, store, run_id, out
        self.inputs, self.external_storage = inputs, external_storage
        self.on_event = on_event or (lambda e: None)
        self.cancel = cancel
        self.rows: list[dict[str, Any]] = []
        #: Candidates measured so far (id → Candidate), timed together at the end of the run.
        self._made: dict[str, Candidate] = {}
        self._last_write: dict[str, float] = {}
        self._n_done = 0
        self._n_total = 1

    # events ----------------------------------------------------------------------------------
    def emit(self, **event: Any) -> None:
        event.setdefault("run_id", self.run_id)
        for key in ("message", "recipe", "step"):  # text may quote a URL with a password (hpo storage)
            if isinstance(event.get(key), str):
                event[key] = redact_secrets(event[key])
        if event["type"] == "progress":
            key = f"{event['candidate_id']}"
            now = time.time()
            # Throttle progress writes: the store is for the UI, not a trace.
            if event.get("fraction", 0) < 1 and now - self._last_write.get(key, 0) < 0.25:
                self.on_event(event)
                return
            self._last_write[key] = now
            if event["candidate_id"] != TIMING_PHASE:  # a phase of the run, not a candidate of its own
                self.store.progress(self.run_id, event["candidate_id"], event.get("step", ""),
                                    event.get("fraction", 0.0), event.get("message", ""))
            overall = (self._n_done + event.get("fraction", 0.0)) / max(1, self._n_total)
            self.store.update_run(
                self.run_id,
                progress=min(1.0, overall),
                message=f"{event['candidate_id']} {event.get('step', '')}: {event.get('message', '')}",
            )
        elif event["type"] == "log":
            self.store.log(self.run_id, event["message"], event.get("candidate_id"))
        elif event["type"] == "recipe":
            self.store.event(self.run_id, "recipe", candidate_id=event["candidate_id"],
                             message=event["recipe"], data={"index": event["index"], "recipe": event["recipe"]})
        self.on_event(event)

    def cancelled(self) -> bool:
        return bool((self.cancel and self.cancel()) or self.store.cancel_requested(self.run_id))

    # the run -----------------------------------------------------------------------------------
    def run(self, recipes: list[Recipe]) -> Results:
        import torch

        from optim.evaluation.environment import environment_info

        claim_out_dir(self.out, self.run_id, self.spec)
        self.store.update_run(self.run_id, message="loading model and data")
        self.emit(type="log", message=f"loading {self.spec.model} and {self.spec.data}")
        baseline, splits, batch_limit = self.inputs or prepare_inputs(self.spec)
        env = environment_info()
        env["threads"] = self.spec.threads
        self._env = env
        self.store.update_run(self.run_id, environment=env)
        ctx = RunContext(
            data=splits, seed=self.spec.seed, threads=self.spec.threads, batch_size=self.spec.batch_size,
            workdir=self.out / "work", country_iso_code=self.spec.country_iso_code,
            latency_budget_s=self.spec.latency_budget_s, energy_inferences=self.spec.energy_inferences,
            cancel_cb=self.cancelled, log_cb=lambda m: self.emit(type="log", message=m),
            external_storage=self.external_storage,
        )
        if batch_limit is not None:
            ctx.max_batch = batch_limit
            ctx.batch_size = min(ctx.batch_size, batch_limit)
            ctx.log(f"the model runs batches of at most {batch_limit} rows: every candidate is measured "
                    f"at batch {ctx.batch_size} (asked: {self.spec.batch_size}) and predicts "
                    f"{batch_limit} rows at a time")
        # +1: the interleaved timing phase at the end weighs as much as one recipe.
        self._n_total = 2 + len(recipes)
        self.plan_estimates(recipes, baseline, splits)
        _write_json(self.out / "run.json", {"run_id": self.run_id, "spec": self.spec.stored(), "environment": env})

        self.emit(type="progress", candidate_id="c0", step="measure", fraction=0.0, message="baseline")
        try:
            base_row = self.measure("c0", baseline, ctx, parent=None, recipe="baseline", family="baseline",
                                    cost=None)
        except (OptimError, KeyboardInterrupt):
            raise
        except Exception as err:  # the baseline is the user's model: say what failed, not where
            from optim.io.models import describe_error

            self.emit(type="log", candidate_id="c0", message=traceback.format_exc())
            raise InputError(f"measuring the baseline model failed: {describe_error(err)}",
                             hint="Check that the model runs on this dataset's rows in batches "
                                  f"(batch 1 and --batch {ctx.batch_size}); the run log has the details.") from None
        self._n_done = 1
        counter = itertools.count(1)
        status = "done"
        if self.spec.executor != "local":  # made elsewhere (Ray), measured here
            from optim.executor import run_remote

            status = run_remote(self, recipes, baseline, base_row, ctx, counter)
            recipes = []
        for index, recipe in enumerate(recipes):
            if self.cancelled():
                status = "cancelled"
                break
            try:
                self.run_recipe(recipe, baseline, base_row, ctx, counter, index)
            except CancelledError:
                status = "cancelled"
                break
            self._n_done += 1
        if status == "cancelled":
            self.emit(type="log", message="cancelled: finished rows are kept")
        self.measure_timing(ctx)
        self.finish_pareto(splits.task)
        if status == "done" and any(r.get("status") in ("failed", "invalid") for r in self.rows):
            status = "partial"  # finished, but not every variant could be measured (or gave NaN/inf)
        self.store.finish_if_active(self.run_id, status,
                                    progress=1.0 if status != "cancelled" else self._n_done / self._n_total)
        torch.set_num_threads(max(1, os.cpu_count() or 1))
        return Results(self.run_id, self.out, self.rows, status)

    def plan_estimates(self, recipes: list[Recipe], baseline: Candidate, splits: Any) -> None:
        """The plan again, with each part's estimated seconds (optim.cost, from this machine's cached
        calibration): the ETA weighs progress by them (optim.jobs.eta_s)."""
        from optim import cost
        from optim.evaluation.flops import count_macs

        try:
            cal = cost.cached_calibration(threads=self.spec.threads)
            macs = float(count_macs(baseline) or 0) if cal is not None else 0.0
        except Exception:  # noqa: BLE001 — no estimate: progress counts parts equally
            cal, macs = None, 0.0
        n_rows = sum(len(s.X) for s in (splits.train, splits.val, splits.test))
        est = cost.plan_estimates([r.spec for r in recipes], macs=macs, n_rows=n_rows, cal=cal,
                                  latency_budget_s=self.spec.latency_budget_s,
                                  energy_inferences=self.spec.energy_inferences)
        plan = [redact_secrets(r.spec) for r in recipes]  # as jobs.create_run records it
        self.store.event(self.run_id, "plan", message=f"{len(plan)} variant(s)", data={"recipes": plan, **est})

    def run_recipe(self, recipe: Recipe, baseline: Candidate, base_row: dict[str, Any], ctx: RunContext,
                   counter: Any, index: int) -> None:
        from optim.evaluation.energy import EnergyMeter

        first_id = self.start_recipe(recipe, counter, index)
        meter = EnergyMeter.shared(self.spec.country_iso_code)

        def on_step(label: str) -> None:
            ctx.progress_cb = lambda msg, frac: self.emit(type="progress", candidate_id=first_id, step=label,
                                                          fraction=frac, message=msg)
        try:
            with meter.cost() as cost:
                current = make_candidates(recipe, baseline, ctx, self.spec.seed, on_step=on_step,
                                          parent_runtime=self.spec.parent_runtime)
        except CancelledError:
            self.put(self.failed_row(first_id, recipe.spec, _family(recipe), "cancelled before this recipe finished",
                                     "cancelled"))
            raise
        except Exception as err:  # one failing recipe must not stop the others
            self.recipe_failed(first_id, recipe, err)
            return
        finally:
            ctx.progress_cb = None
        self.measure_made(first_id, recipe, current, base_row, ctx, counter,
                          {"optimize_s": cost.seconds, "optimize_energy_j": cost.energy_j})

    def start_recipe(self, recipe: Recipe, counter: Any, index: int) -> str:
        """The id of the recipe's first candidate, announced to the store."""
        first_id = f"c{next(counter)}"
        self.emit(type="recipe", candidate_id=first_id, recipe=recipe.spec, index=index)
        self.emit(type="log", candidate_id=first_id, message=f"recipe {recipe.spec}")
        return first_id

    def recipe_failed(self, first_id: str, recipe: Recipe, err: BaseException) -> None:
        """The recipe's row, ``failed`` with what went wrong (a traceback in the log when unexpected)."""
        msg = err.one_line() if isinstance(err, OptimError) else f"internal error: {type(err).__name__}: {err}"
        if not isinstance(err, OptimError):
            self.emit(type="log", candidate_id=first_id,
                      message="".join(traceback.format_exception(type(err), err, err.__traceback__)))
        self.emit(type="log", candidate_id=first_id, message=f"failed: {msg}")
        self.put(self.failed_row(first_id, recipe.spec, _family(recipe), msg))

    def measure_made(self, first_id: str, recipe: Recipe, made: list[Candidate], base_row: dict[str, Any],
                     ctx: RunContext, counter: Any, cost: dict[str, Any],
                     timed: list[dict[str, Any]] | None = None) -> None:
        """Measure the candidates one recipe made (the first keeps ``first_id``); ``cost`` is shared.
        ``timed``: each candidate's timing columns, already measured where it was made
        (``--measure-on per-node``); those candidates are not timed again with the others."""
        family = _family(recipe)
        for j, cand in enumerate(made):
            cid = first_id if j == 0 else f"c{next(counter)}"
            shared = {**cost, "optimize_shared_by": len(made)}
            try:
                row = self.measure(cid, cand, ctx, parent=base_row, recipe=cand.recipe, family=family, cost=shared)
                if timed is not None:
                    del self._made[cid]
                    self.apply_timing(row, timed[j])
                    self.write_results()
            except CancelledError:
                raise
            except Exception as err:
                msg = (
                    err.one_line()
                    if isinstance(err, OptimError)
                    else f"internal error while measuring: {type(err).__name__}: {err}"
                )
                self.emit(type="log", candidate_id=cid, message=f"failed: {msg}")
                self.put(self.failed_row(cid, cand.recipe, family, msg))

    def measure(self, cid: str, cand: Candidate, ctx: RunContext, *, parent: dict[str, Any] | None,
                recipe: str, family: str, cost: dict[str, Any] | None) -> dict[str, Any]:
        """Everything but time (metric, size, MACs, device estimates), saved and streamed now;
        latency and energy follow in :meth:`measure_timing`, with every candidate together."""
        from optim.evaluation.measure import compare_to_parent, measure_static

        ctx.progress_cb = lambda msg, frac: self.emit(type="progress", candidate_id=cid, step="measure",
                                                      fraction=frac, message=msg)
        ctx.progress(f"measuring {recipe}", 0.1)
        row: dict[str, Any] = {"candidate_id": cid, "recipe": recipe, "family": family, "status": "ok", "error": ""}
        row.update(measure_static(cand, ctx))
        if parent is not None:
            row.update(compare_to_parent(row, parent))  # size and metric now; speed after timing
        if row.get("invalid_outputs"):
            # NaN/inf outputs still argmax to some class: the metric would look like a real score.
            row["status"] = "invalid"
            if parent is None:
                cause = "The model itself computes them: check it on these rows before optimizing it."
            elif parent.get("invalid_outputs"):
                cause = "Its parent already gives non-finite outputs."
            else:
                cause = "The technique produced them: try gentler settings (e.g. a lower learning rate)."
            row["error"] = (f"{row['invalid_outputs']} of {len(ctx.data.test.X)} test rows give NaN or infinite "
                            f"outputs, so its {row.get('metric_name', 'metric')} means nothing. {cause}")
        row["runtime"] = "onnxruntime" if cand.kind == "onnx" else "torch"
        if self.spec.device_profiles:
            row.update(_device_columns(cand, ctx, row))
        row.update(cost or {"optimize_s": 0.0, "optimize_energy_j": 0.0})
        row["lineage"] = [{"technique": s.technique, "config": dict(s.config), "label": s.label} for s in cand.lineage]
        if cand.title != recipe and recipe != "baseline":
            row["recipe_title"] = cand.title  # shown instead of the recipe; the recipe replays it
        row["details"] = _jsonable_info(cand.info)
        for key, value in row["details"].items():
            if key not in row and isinstance(value, (int, float, str, bool)) and value is not None:
                row[key] = value
        self.save_artifacts(cid, cand, row)
        ctx.progress("measured; timed with the others at the end", 1.0)
        ctx.progress_cb = None
        self.put(row)
        self._made[cid] = cand
        return row

    def measure_timing(self, ctx: RunContext, timer: Callable[..., dict[str, dict[str, Any]]] | None = None) -> None:
        """Time every candidate made so far together (interleaved rounds, see
        :mod:`optim.evaluation.interleave`) and complete their rows. ``timer(made, ctx, reference)``
        times them elsewhere (``--measure-on KEY=VALUE``: a Ray node); each is timed once."""
        from optim.evaluation.energy import EnergyMeter
        from optim.evaluation.measure import measure_timing

        if not self._made:
            return
        n = len(self._made)
        ctx.progress_cb = lambda msg, frac: self.emit(
            type="progress",
            candidate_id=TIMING_PHASE,
            step="latency and energy",
            fraction=frac,
            message=f"{n} candidate(s): {msg}",
        )
        reference = "c0" if "c0" in self._made else None
        try:
            if timer is not None:
                timing = timer(self._made, ctx, reference)
            else:
                timing = measure_timing(self._made, ctx, reference=reference,
                                        meter=EnergyMeter.shared(self.spec.country_iso_code))
        finally:
            ctx.progress_cb = None
            made, self._made = self._made, {}
        by_id = {r["candidate_id"]: r for r in self.rows}
        for cid, cols in timing.items():
            self.apply_timing(by_id[cid], cols)
        self._n_done += 1
        self.write_results()
        loads = [c["load_other_cpu_pct"] for c in timing.values() if "load_other_cpu_pct" in c]
        if loads:  # the run's record says how busy the machine was while it was timed
            self._env["load_other_cpu_pct"] = round(float(loads[0]), 1)
        node = next((c["measured_on"] for c in timing.values() if c.get("measured_on")), None)
        if node:  # timed on a Ray node (--measure-on KEY=VALUE): the record says which, not this CPU
            self._env["measured_on"] = node
        if loads or node:
            self.store.update_run(self.run_id, environment=self._env)
        where = f" on {node}" if node else ""
        self.emit(type="log", message=f"timed {len(made)} candidate(s) together in interleaved rounds{where}")

    def apply_timing(self, row: dict[str, Any], cols: dict[str, Any]) -> None:
        """A row completed with its timing columns (failed when timing it failed), stored."""
        cid = row["candidate_id"]
        if "error" in cols:
            msg = f"internal error while timing: {cols['error']}"
            self.emit(type="log", candidate_id=cid, message=f"failed: {msg}")
            row.update(self.failed_row(cid, row["recipe"], row["family"], msg))
            row.pop("measured_on", None)
        else:
            row.update(cols)
        self.store.put_row(self.run_id, row)

    def save_artifacts(self, cid: str, cand: Candidate, row: dict[str, Any]) -> None:
        """The candidate's files: its shipped model plus a manifest and TorchScript / ONNX /
        torch.export / safetensors files `optim export` rebuilds it from (no pickle: a run folder
        may come from someone else)."""
        from optim.candidate import save_candidate

        folder = self.out / "candidates" / cid
        manifest = save_candidate(cand, folder, candidate_id=cid, run_id=self.run_id)
        row["model_file"] = str((folder / manifest["shipped_file"]).relative_to(self.out))

    def failed_row(self, cid: str, recipe: str, family: str, msg: str, status: str = "failed") -> dict[str, Any]:
        return {"candidate_id": cid, "recipe": recipe, "family": family, "status": status, "error": msg}

    def put(self, row: dict[str, Any]) -> None:
        for key in ("recipe", "error"):  # a setting may quote a URL with a password (hpo storage)
            if isinstance(row.get(key), str):
                row[key] = redact_secrets(row[key])
        self.rows.append(row)
        self.store.put_row(self.run_id, row)
        self.write_results()
        self.emit(type="row", candidate_id=row["candidate_id"], row=row)

    def finish_pareto(self, task: Task) -> None:
        from optim.evaluation.pareto import DEFAULT_OBJECTIVES, rows_mask

        if not self.rows:
            return
        mask = rows_mask(self.rows, DEFAULT_OBJECTIVES(task))
        for row, on in zip(self.rows, mask):
            row["pareto"] = bool(on)
            self.store.put_row(self.run_id, row)
        self.write_results()

    def write_results(self) -> None:
        write_results(self.out, self.rows)


def write_results(out: Path, rows: list[dict[str, Any]]) -> None:
    """``results.csv`` (flat columns, required ones first) and ``results.json`` (full rows)."""
    import pandas as pd

    from optim.store import to_json

    out.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    for col in RESULT_COLUMNS:
        if col not in df.columns:
            df[col] = None
    flat = [c for c in df.columns if c not in ("details", "lineage")]
    ordered = RESULT_COLUMNS + [c for c in flat if c not in RESULT_COLUMNS]
    tmp = out / "results.csv.tmp"
    df[ordered].to_csv(tmp, index=False)
    tmp.replace(out / "results.csv")
    _write_text(out / "results.json", to_json(rows))


def _write_json(path: Path, value: Any) -> None:
    from optim.store import to_json

    _write_text(path, to_json(value))


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _jsonable_info(info: Any) -> dict[str, Any]:
    import json

    from optim.store import to_json

    out = {}
    for k, v in dict(info).items():
        try:
            out[k] = json.loads(to_json(v))
        except (TypeError, ValueError):
            out[k] = str(v)
    return out


def _device_columns(cand: Candidate, ctx: RunContext, row: dict[str, Any]) -> dict[str, Any]:
    """Edge-profile measurements and catalog estimates, when the hardware package provides them."""
    try:
        from optim.hardware import profiles
    except ImportError:
        return {}
    cols: dict[str, Any] = {}
    try:
        if hasattr(profiles, "profile_columns"):
            cols.update(profiles.profile_columns(cand, ctx))
        if hasattr(profiles, "catalog_columns") and row.get("macs") and row.get("size_bytes"):
            # input_bytes turns on the cloud-vs-edge columns (upload of one float32 input).
            cols.update(profiles.catalog_columns(row["macs"], row["size_bytes"],
                                                 input_bytes=4 * int(np.prod(cand.input_shape))))
    except OptimError as err:
        cols["device_profile_error"] = err.one_line()
    return cols


def _family(recipe: Recipe) -> str:
    return "+".join(dict.fromkeys(recipe.families))


def make_candidates(recipe: Recipe, baseline: Candidate, ctx: RunContext, seed: int,
                    on_step: Callable[[str], None] | None = None, *, parent_runtime: bool = True) -> list[Candidate]:
    """Run ``recipe``'s technique steps on ``baseline`` (seeded): the candidates it makes.

    The one place a recipe is made, by this process or by a remote executor's task
    (:mod:`optim.executor`); ``on_step(label)`` is called as each step starts. Torch variants of
    an ONNX baseline then go back to ONNX Runtime (:mod:`optim.parent_runtime`; ``parent_runtime=False``
    keeps them in PyTorch, flagged).
    """
    from optim.parent_runtime import in_parent_runtime
    from optim.registry import get

    _seed_everything(seed)
    current = [baseline]
    for i, step in enumerate(recipe.steps):
        technique = get(step.technique)
        if on_step is not None:
            on_step(f"step {i + 1}/{len(recipe.steps)} {step.technique}")
        ctx.progress(f"{step.technique} starting", 0.0)
        nxt: list[Candidate] = []
        for cand in current:
            nxt.extend(technique.run(cand, step.config, ctx))
        current = nxt
        if i + 1 < len(recipe.steps):
            # Between steps only: a step that stopped early on cancel (hpo returns its best
            # trial so far) still gets its candidates measured and saved.
            ctx.check_cancelled()
    if baseline.kind == "onnx" and any(c.kind == "torch" for c in current):
        if on_step is not None:
            on_step("back to ONNX Runtime (the uploaded model's runtime)")
        ctx.progress("exporting back to ONNX", 0.0)
        current = [in_parent_runtime(c, baseline, ctx, enabled=parent_runtime) for c in current]
    return current


def _seed_everything(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# --- the worker process (started by optim.jobs.start_background) ---------------------------------
def worker_main(run_id: str, db: str | None = None) -> int:
    """Entry point of a worker process: wait for the run's turn, then run its stored spec."""
    from optim.store import Store

    store = Store(db)
    spec = ExperimentSpec.from_dict(store.run(run_id)["spec"])
    try:
        run_experiment(spec, store=store, run_id=run_id,
                       on_event=lambda e: print(e["message"], flush=True) if e["type"] == "queued" else None)
    except OptimError as err:
        print(f"error: {err.one_line()}", file=sys.stderr)
        return 2
    return 0
