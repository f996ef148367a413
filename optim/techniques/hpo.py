"""Hyperparameter search with Optuna over the settings another technique declares.

``hpo:tune=retrain`` (the default) searches how the model is trained (optimizer, learning rate,
batch size, epochs, weight decay, schedule, width); ``hpo:tune=prune-magnitude,space=sparsity;lr``
searches another technique's settings. The search space is built from the tuned technique's
``TechniqueConfig`` — the same declaration that validates the settings and draws the
dashboard's widgets — so a new technique is searchable without code here:

- a field joins the default space by declaring ``json_schema_extra={"search": ...}``: ``(low,
  high)`` or ``(low, high, "log")`` for numbers, the tuple of choices to try for a Literal;
- ``space=a;b`` names the fields to search instead (numbers then use their declared bounds when
  they have no ``search`` range; Literal and bool fields all their values);
- ``fixed=epochs:5;optimizer:sgd`` pins settings of the tuned technique for every trial.

Every trial is recorded (``info["hpo_trials"]``: number, params, value(s), state, duration,
intermediate values) as it finishes: logged through the run context (the store keeps the log)
and appended to ``<workdir>/hpo/<study>.jsonl``; a ``storage`` keeps the study itself.

Storage stays inside the run: ``study_name`` is a plain name, and ``storage=sqlite:///NAME.db``
is a file in ``<workdir>/hpo/``. A database server URL (``postgresql://...``, ``mysql://...``),
shared by several processes, is accepted only when the run context allows it
(``ctx.external_storage``: the command line and the Python API, not a recipe typed in the
dashboard); its password is masked in every message, log line and lineage record.

Cancelling: the run context's cancel check raises :class:`CancelledError` between epochs and
between trials. The search stops there; the trial in flight is recorded with state
``cancelled`` and, when at least one trial finished, ``apply`` *returns* the best candidate so
far with ``info["cancelled"] = True`` (and every finished trial in ``info["hpo_trials"]``)
instead of raising — finished work is not thrown away. With no finished trial it re-raises the
CancelledError, with the trial records attached as ``err.hpo_trials``.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, TypedDict, cast

import numpy as np
from pydantic import Field, field_validator, model_validator

from optim.candidate import Candidate
from optim.config import FieldInfo, TechniqueConfig, describe_fields
from optim.context import RunContext
from optim.errors import CancelledError, ConfigError, OptimError, redact_secrets
from optim.registry import register_technique
from optim.techniques._train_common import run_threads
from optim.techniques.base import Technique, require_torch
from optim.views import Rows, chart

#: A study or file name that cannot leave its folder: no separators, no leading dot.
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: Set by :mod:`optim.executor` in a Ray worker making a recipe (``--executor ray``): runs the
#: trials as Ray tasks sharing the study, in place of ``study.optimize`` (the technique layer never
#: imports the executor). ``None``: trials run one after another in this process.
TRIALS_ON_RAY: Callable[..., None] | None = None


class HpoConfig(TechniqueConfig):
    sampler: Literal["tpe", "random", "grid", "cmaes", "nsga2"] = Field(
        "tpe",
        description="tpe: Bayesian (tree-structured Parzen estimator); random; grid (every combination of a few "
        "values per setting); cmaes: evolution strategy (numbers only); nsga2: genetic, multi-objective.",
    )
    pruner: Literal["median", "hyperband", "none"] = Field(
        "median",
        description="Stop unpromising trials early from their per-epoch validation metric: median (below the "
        "median of earlier trials at the same epoch), hyperband (successive halving brackets), none. "
        "Not available with two objectives.",
    )
    trials: int = Field(20, ge=1, le=10_000, description="Number of trials (the search's budget).",
                        json_schema_extra={"sweep": [10, 20, 50]})
    timeout_s: float | None = Field(None, gt=0.0, le=7 * 24 * 3600.0,
                                    description="Stop starting new trials after this many seconds.")
    objective2: Literal["none", "latency", "size"] = Field(
        "none",
        description="A second objective to minimise beside the validation metric: latency (ms at batch 1) or "
        "size (bytes); the Pareto set becomes the candidates.",
    )
    tune: str = Field("retrain", description="The technique whose settings are searched (retrain: how the "
                                             "model is trained; or distill, prune-magnitude, ...).")
    space: tuple[str, ...] = Field((), description="Settings of the tuned technique to search (a;b;c); empty: "
                                                   "every setting that declares a search range.")
    fixed: tuple[str, ...] = Field((), description="Settings of the tuned technique fixed for every trial, "
                                                   "as key:value;key:value.")
    startup_trials: int = Field(
        5, ge=0, le=10_000, description="Random trials before TPE / NSGA-II start modelling (Optuna's default is 10)."
    )
    grid_points: int = Field(3, ge=2, le=50, description="Values per numeric setting for sampler=grid "
                                                         "(its declared sweep values when it has them).")
    include_default: bool = Field(True, description="Run the tuned technique's untuned settings as the first "
                                                    "trial, so the result is never worse than not searching.")
    storage: str = Field("", description="Where the study is kept: empty: in memory; sqlite:///NAME.db: a file "
                                         "in the run folder; a database server URL (postgresql://user@host/db) "
                                         "so several processes share one study: command line only.")
    study_name: str = Field("", description="Study name in the storage (letters, digits, . _ -); empty: "
                                            "optim-hpo-<tune>.")

    @field_validator("study_name")
    @classmethod
    def _plain_study_name(cls, value: str) -> str:
        if value and not PLAIN_NAME.fullmatch(value):
            raise ConfigError(f"hpo: study_name={value!r}: must be a plain name of letters, digits, '.', '_' "
                              f"or '-' (at most 64, no folders), e.g. study_name=my-search.")
        return value

    @field_validator("storage")
    @classmethod
    def _storage_url(cls, value: str) -> str:
        if not value:
            return value
        shown = redact_secrets(value)
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if not re.fullmatch(r"[a-z][a-z0-9]*(\+[a-z0-9_]+)?", scheme):
            raise ConfigError(f"hpo: storage={shown!r} is not a storage URL; give sqlite:///NAME.db (a file in the "
                              f"run folder) or a database server URL such as postgresql://user@host/db.")
        if scheme.split("+")[0] == "sqlite" and not (value.startswith(f"{scheme}:///")
                                                      and PLAIN_NAME.fullmatch(value.split(":///", 1)[1])):
            raise ConfigError(f"hpo: storage={shown!r}: a SQLite study is a file in the run folder; give a plain "
                              f"file name, e.g. storage=sqlite:///study.db (no folders, no absolute path).")
        return value

    @field_validator("tune")
    @classmethod
    def _known_technique(cls, value: str) -> str:
        from optim.registry import get

        if value == "hpo":
            raise ConfigError(
                "hpo: tune='hpo': a search cannot tune itself; name another technique (e.g. tune=retrain)."
            )
        try:
            get(value)
        except ConfigError as err:
            raise ConfigError(f"hpo: tune={value!r}: {err}") from None
        return value

    @model_validator(mode="after")
    def _check(self) -> HpoConfig:
        from optim.registry import get

        tuned = get(self.tune).Config
        for name in self.space:
            if name not in tuned.model_fields:
                raise ConfigError(f"hpo: space entry {name!r} is not a setting of {self.tune}; "
                                  f"allowed: {', '.join(tuned.model_fields) or '(none)'}.")
        fixed_values(self.tune, self.fixed)  # raises on a bad key or value
        if self.objective2 != "none" and self.sampler == "cmaes":
            raise ConfigError(f"hpo: sampler=cmaes optimises one objective; objective2={self.objective2!r} needs "
                              "sampler=nsga2, tpe, random or grid.")
        return self


def fixed_values(tune: str, fixed: tuple[str, ...]) -> dict[str, Any]:
    """``fixed`` entries (``key:value`` or ``key=value``) parsed and validated for ``tune``."""
    from optim.registry import get

    tuned = get(tune).Config
    pairs: dict[str, str] = {}
    for item in fixed:
        key, sep, value = item.replace("=", ":", 1).partition(":")
        if not sep:
            raise ConfigError(f"hpo: fixed entry {item!r} needs key:value (e.g. fixed=epochs:5;optimizer:sgd).")
        pairs[key.strip()] = value.strip()
    if not pairs:
        return {}
    config = tuned.from_strings(tune, pairs)  # ConfigError names the bad key / value
    return {k: getattr(config, k) for k in pairs}


# --- search space from the declaration ---------------------------------------------------------
@dataclass(frozen=True)
class SearchParam:
    """One searched setting: categorical choices or a numeric range."""

    name: str
    kind: Literal["categorical", "int", "float"]
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[Any, ...] = ()
    sweep: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def grid(self, points: int) -> list[Any]:
        """The values sampler=grid tries: the choices, the declared sweep, or evenly spaced points."""
        if self.kind == "categorical":
            return list(self.choices)
        inside = [v for v in self.sweep if isinstance(v, (int, float)) and self.low <= v <= self.high]
        if inside:
            values = inside
        elif self.log:
            values = list(np.geomspace(self.low, self.high, points))
        else:
            values = list(np.linspace(self.low, self.high, points))
        if self.kind == "int":
            return sorted({int(round(v)) for v in values})
        return [float(v) for v in values]


def search_space(
    config_cls: type[TechniqueConfig], names: tuple[str, ...] = (), technique: str = ""
) -> list[SearchParam]:
    """The Optuna search space of ``config_cls``: the named fields, or every field declaring ``search``."""
    infos = {f.name: f for f in describe_fields(config_cls)}
    chosen = [infos[n] for n in names] if names else [f for f in infos.values() if f.search]
    if not chosen:
        raise ConfigError(
            f"hpo: {technique or config_cls.__name__} declares no setting with a search range; name the settings "
            f"to search with space=a;b (settings: {', '.join(infos) or '(none)'})."
        )
    return [_param(f, technique) for f in chosen]


def _param(f: FieldInfo, technique: str) -> SearchParam:
    if f.kind == "bool":
        return SearchParam(f.name, "categorical", choices=(False, True))
    if f.kind == "choice":
        return SearchParam(f.name, "categorical", choices=tuple(f.search) or tuple(f.choices))
    if f.kind not in ("int", "float", "optional_int", "optional_float"):
        raise ConfigError(f"hpo: {technique}.{f.name} is a {f.kind} setting and cannot be searched; fix it instead.")
    kind: Literal["int", "float"] = "int" if f.kind in ("int", "optional_int") else "float"
    if f.search:
        low, high = float(f.search[0]), float(f.search[1])
        log = len(f.search) > 2 and f.search[2] == "log"
    elif f.low is not None and f.high is not None:
        low, high, log = float(f.low), float(f.high), False
        step = 1.0 if kind == "int" else (high - low) * 1e-6  # exclusive bounds stay out of the range
        low += 0.0 if f.low_inclusive else step
        high -= 0.0 if f.high_inclusive else step
    else:
        raise ConfigError(f"hpo: {technique}.{f.name} has no bounds and no search range; fix it with fixed= "
                          "or leave it out of space.")
    return SearchParam(f.name, kind, low, high, log, sweep=f.sweep)


# --- the technique -----------------------------------------------------------------------------
def _sampler(config: HpoConfig, space: list[SearchParam], seed: int) -> Any:
    import optuna

    startup = min(config.startup_trials, config.trials)
    if config.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True)
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.sampler == "grid":
        return optuna.samplers.GridSampler({p.name: p.grid(config.grid_points) for p in space}, seed=seed)
    if config.sampler == "cmaes":
        if not any(p.kind != "categorical" for p in space):
            raise ConfigError("hpo: sampler=cmaes needs at least one numeric setting in the space; "
                              "use sampler=tpe for choices only.")
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=startup, warn_independent_sampling=False)
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, config.trials // 3)))


def _pruner(config: HpoConfig) -> Any:
    import optuna

    if config.pruner == "median" and config.objective2 == "none":
        return optuna.pruners.MedianPruner(n_startup_trials=max(1, min(5, config.trials // 4)), n_warmup_steps=1)
    if config.pruner == "hyperband" and config.objective2 == "none":
        return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def _objective2(candidate: Candidate, kind: str, ctx: RunContext) -> float:
    """Latency (ms, batch 1, median) or size (bytes) of ``candidate``: the second objective, minimised."""
    if kind == "size":
        try:
            from optim.evaluation.size import size_report

            return float(size_report(candidate)["size_bytes"])
        except ImportError:
            return float(len(candidate.serialize()[1]))
    try:
        from optim.evaluation.latency import measure_latency

        return float(measure_latency(candidate, ctx.data.val.X, batch_sizes=(1,), threads=ctx.threads,
                                     budget_s=ctx.latency_budget_s)["latency_ms_p50_b1"])
    except ImportError:
        x = ctx.data.val.X[:1]
        times = []
        for _ in range(30):
            t0 = time.perf_counter()
            candidate.predict(x, threads=ctx.threads)
            times.append((time.perf_counter() - t0) * 1e3)
        return float(np.median(times[5:]))


def _dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """``a`` dominates ``b`` (two objectives: metric maximised, second objective minimised)."""
    from optim.evaluation.pareto import dominates

    return dominates(a, b, (True, False))


@register_technique
class Hpo(Technique[HpoConfig]):
    """Hyperparameter search (Optuna) over a technique's declared settings, with trial pruning.

    Akiba, Sano, Yanase, Ohta, Koyama, "Optuna: A Next-generation Hyperparameter Optimization
    Framework", KDD 2019; Bergstra et al., "Algorithms for Hyper-Parameter Optimization" (TPE),
    NIPS 2011; Hansen (CMA-ES) 2016; Deb et al. (NSGA-II) 2002; Li et al., "Hyperband", JMLR 2018.
    """

    name = "hpo"
    family = "hpo"
    Config = HpoConfig
    summary = "Optuna search (TPE, random, grid, CMA-ES, NSGA-II) over another technique's settings, with pruning."
    reference = "Akiba et al., KDD 2019"
    needs_training_data = True
    sweep_field = "trials"
    fast_config = {"trials": 2, "fixed": ("epochs:1",)}

    def supports(self, candidate: Candidate) -> str | None:
        return require_torch(candidate)

    @run_threads
    def apply(self, candidate: Candidate, config: HpoConfig, ctx: RunContext) -> list[Candidate]:
        import optuna

        from optim.registry import get
        from optim.techniques._train_common import sub_context

        # Optuna logs every failed trial with a traceback; a cancel is not a failure and the
        # trial records already carry every state, so only errors reach the log.
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        tuned = get(config.tune)
        reason = tuned.supports(candidate)
        if reason:
            raise ConfigError(f"hpo: tune={config.tune!r} cannot apply to this model: {reason}.")
        fixed = fixed_values(config.tune, config.fixed)
        space = [p for p in search_space(tuned.Config, config.space, tuned.name) if p.name not in fixed]
        if not space:
            raise ConfigError("hpo: every searched setting is also fixed; nothing left to search.")
        multi = config.objective2 != "none"
        if multi and config.pruner != "none":
            ctx.log(f"hpo: pruner={config.pruner} is not used with two objectives (Optuna cannot prune them).")
        study_name = config.study_name or f"optim-hpo-{config.tune}"
        # Made on a Ray worker (--executor ray): the trials spread over the cluster, one task each.
        on_ray = TRIALS_ON_RAY is not None
        storage = storage_url(config.storage, ctx)
        if on_ray and storage is None:
            # Trials in other processes share the study through a file: an Optuna journal in the
            # run's work folder (append-only, safe for several writers on one file system).
            folder = (ctx.workdir / "hpo").resolve()
            folder.mkdir(parents=True, exist_ok=True)
            storage = f"{JOURNAL}{folder / study_name}.journal"
        study = open_study(storage, study_name, config, _sampler(config, space, ctx.seed))
        if config.include_default and config.sampler != "grid":
            study.enqueue_trial({}, user_attrs={"optim_default": True}, skip_if_exists=True)

        keep: dict[int, tuple[Candidate, tuple[float, ...]]] = {}  # best (or Pareto) candidates so far
        records: list[dict[str, Any]] = []
        state: dict[str, Any] = {"current": None, "done": 0}
        log_path = ctx.workdir / "hpo" / f"{study_name}.jsonl"

        def objective(trial: Any) -> Any:
            state["current"] = trial.number
            ctx.check_cancelled()
            n = config.trials
            sub = sub_context(ctx, min(1.0, state["done"] / n), min(1.0, (state["done"] + 1) / n),
                              f"trial {trial.number + 1}/{n}: ")
            cand, vals, error = train_trial(tuned, candidate, trial_values(trial, space, fixed), sub, trial,
                                            config.objective2)
            if error is not None or cand is None or vals is None:
                trial.set_user_attr("error", error)
                ctx.log(f"hpo trial {trial.number} failed: {error}")
                return (math.nan, math.nan) if multi else math.nan
            self._keep(keep, trial.number, cand, vals, multi)
            return vals if multi else vals[0]

        def after_trial(study: Any, trial: Any) -> None:
            state["done"] += 1
            rec = trial_record(trial, multi)
            records.append(rec)
            ctx.log("hpo trial " + json.dumps(rec, default=str))
            _append_jsonl(log_path, rec)

        cancelled: CancelledError | None = None
        try:
            if TRIALS_ON_RAY is not None:
                TRIALS_ON_RAY(study, storage or "", config, candidate, space, fixed, ctx, after_trial,
                           lambda number, cand, vals: self._keep(keep, number, cand, vals, multi))
            else:
                study.optimize(objective, n_trials=config.trials, timeout=config.timeout_s,
                               callbacks=[after_trial], gc_after_trial=False)
        except CancelledError as err:
            cancelled = err
            if state["current"] is not None and all(r["number"] != state["current"] for r in records):
                rec = trial_record(study.trials[-1], multi) if study.trials else {"number": state["current"]}
                rec.update(state="cancelled", value=None)
                records.append(rec)
                _append_jsonl(log_path, rec)
        if not keep:
            if cancelled is not None:
                cancelled.hpo_trials = records  # type: ignore[attr-defined]
                raise cancelled
            errors = [r.get("error") for r in records if r.get("error")]
            raise ConfigError(f"hpo: none of the {len(records)} trials finished"
                              + (f"; first error: {errors[0]}" if errors else "") + ".")
        importance = param_importance(study, space, multi, ctx.seed)
        summary = {
            "hpo_trials": records, "hpo_importance": importance, "hpo_sampler": config.sampler,
            "hpo_pruner": config.pruner if not multi else "none",
            "hpo_tuned": config.tune, "hpo_space": [p.name for p in space],
            "hpo_trials_complete": sum(r["state"] == "complete" for r in records),
            "hpo_trials_pruned": sum(r["state"] == "pruned" for r in records),
            "hpo_default_value": next((r["value"] for r in records if r.get("default")), None),
            "cancelled": cancelled is not None,
        }
        ranked = sorted(keep.items(), key=lambda kv: -kv[1][1][0])
        out = []
        for number, (cand, vals) in ranked:
            rec = next((r for r in records if r["number"] == number), {})
            info = dict(cand.info)
            info.update(summary, hpo_best_trial=number, hpo_best_params=rec.get("params", {}),
                        hpo_best_spec=rec.get("spec", ""), hpo_best_value=vals[0])
            if multi:
                info["hpo_objective2"] = config.objective2
                info["hpo_objective2_value"] = vals[1]
            label = f"{'pareto' if multi else 'best'} trial {number}: {rec.get('spec', '')}"
            step = self.step(config, label=label)
            if "storage" in step.config:  # the lineage is shown and stored: no password in it
                step = replace(step, config={**step.config, "storage": redact_secrets(config.storage)})
            out.append(replace(cand, lineage=candidate.lineage + (step,), info=info))
        return out

    @staticmethod
    def _keep(keep: dict, number: int, cand: Candidate, vals: tuple[float, ...], multi: bool) -> None:
        """Hold only what can still be returned: the best so far, or the current Pareto set."""
        if not multi:
            if not keep or vals[0] > next(iter(keep.values()))[1][0]:
                keep.clear()
                keep[number] = (cand, vals)
            return
        if any(_dominates(v, vals) or v == vals for _, v in keep.values()):
            return
        for n in [n for n, (_, v) in keep.items() if _dominates(vals, v)]:
            del keep[n]
        keep[number] = (cand, vals)


#: A storage spec naming an Optuna journal file (``journal:///abs/path.journal``), written by optim
#: itself for trials on Ray, never accepted from a recipe.
JOURNAL = "journal://"


def open_study(storage: str | None, study_name: str, config: HpoConfig, sampler: Any) -> Any:
    """The study (created, or loaded when it exists), with ``config``'s pruner and directions: by
    the search itself, and by each trial that runs in another process (a Ray worker, whose
    settings the search already drew: its ``sampler`` is never asked)."""
    import optuna

    if storage and storage.startswith(JOURNAL):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        opened: Any = JournalStorage(JournalFileBackend(storage.removeprefix(JOURNAL)))
    else:
        opened = storage
    try:
        return optuna.create_study(
            study_name=study_name, storage=opened, load_if_exists=True,
            sampler=sampler, pruner=_pruner(config),
            directions=["maximize", "minimize"] if config.objective2 != "none" else ["maximize"],
        )
    except Exception as err:  # noqa: BLE001 - bad URL, missing driver, server down, direction clash
        from optim.io.models import describe_error

        raise ConfigError(f"hpo: storage={redact_secrets(config.storage)!r}: cannot open the study "
                          f"({redact_secrets(describe_error(err))}).",
                          hint="Check the URL, that the server runs and its driver is installed, "
                               "or leave storage empty (in memory).") from None


def trial_values(trial: Any, space: list[SearchParam], fixed: dict[str, Any]) -> dict[str, Any]:
    """The tuned technique's settings for ``trial``: suggested from ``space`` (the fixed ones kept);
    the enqueued default trial (``optim_default``) gets the fixed ones only."""
    if trial.user_attrs.get("optim_default"):
        return dict(fixed)
    return {**fixed, **{p.name: p.suggest(trial) for p in space}}


def train_trial(tuned: Technique, candidate: Candidate, values: dict[str, Any], ctx: RunContext, trial: Any,
                objective2: str) -> tuple[Candidate | None, tuple[float, ...] | None, str | None]:
    """One trial: ``tuned`` applied to ``candidate`` with ``values``, its validation metric reported
    each epoch to ``trial`` (whose pruner may stop it: ``optuna.TrialPruned``). Returns
    ``(candidate, objective values, None)``, or ``(None, None, error)`` when the settings or the
    training fail (one bad combination must not end the search)."""
    import optuna

    from optim.techniques._train_common import val_metric
    from optim.training import epoch_hook

    multi = objective2 != "none"
    try:
        cfg = tuned.Config.build(tuned.name, **values)
    except ConfigError as err:
        return None, None, err.one_line()
    steps = iter(range(1_000_000))

    def report(rec: Any) -> None:
        if multi:
            return
        trial.report(rec.val_metric, next(steps))
        if trial.should_prune():
            raise optuna.TrialPruned(f"epoch {rec.epoch}: validation {rec.val_metric:.4f}")

    try:
        with epoch_hook(report):
            cand = tuned.run(candidate, cfg, ctx)[0]
    except (CancelledError, optuna.TrialPruned):
        raise
    except Exception as err:  # noqa: BLE001
        return None, None, (err.one_line() if isinstance(err, OptimError)
                            else f"internal error: {type(err).__name__}: {err}")
    metric = val_metric(cand, ctx.data.val, ctx.data.task)
    trial.set_user_attr("spec", cand.lineage[-1].spec() if cand.lineage else tuned.name)
    return cand, ((metric, _objective2(cand, objective2, ctx)) if multi else (metric,)), None


def storage_url(storage: str, ctx: RunContext) -> str | None:
    """The Optuna storage for ``storage`` (validated by HpoConfig): None (in memory), a SQLite file
    in ``<workdir>/hpo/``, or a database server when ``ctx.external_storage`` allows one."""
    if not storage:
        return None
    scheme, _, rest = storage.partition("://")
    if scheme.split("+")[0] == "sqlite":
        folder = (ctx.workdir / "hpo").resolve()
        folder.mkdir(parents=True, exist_ok=True)
        return f"{scheme}:///{folder / rest.lstrip('/')}"
    if not ctx.external_storage:
        raise ConfigError(
            f"hpo: storage={redact_secrets(storage)!r}: a database server is accepted only from the command "
            f"line or the Python API (optim run --recipe ..., run_experiment(..., external_storage=True)), "
            f"not from a recipe typed in the dashboard.",
            hint="Leave storage empty (in memory) or use storage=sqlite:///study.db (a file in the run folder).")
    return storage


def trial_record(trial: Any, multi: bool) -> dict[str, Any]:
    """A JSON-able record of one Optuna trial."""
    values = list(trial.values) if trial.values else None
    start, end = trial.datetime_start, trial.datetime_complete
    rec = {
        "number": trial.number,
        "state": trial.state.name.lower(),
        "params": dict(trial.params),
        "value": values[0] if values else None,
        "duration_s": (end - start).total_seconds() if start and end else None,
        "intermediate": [[int(k), float(v)] for k, v in sorted(trial.intermediate_values.items())],
        "default": bool(trial.user_attrs.get("optim_default")),
        "spec": trial.user_attrs.get("spec", ""),
    }
    if multi:
        rec["values"] = values
    if trial.user_attrs.get("error"):
        rec["error"] = trial.user_attrs["error"]
    if trial.user_attrs.get("made_on"):  # a trial made on Ray: its worker's node
        rec["made_on"] = trial.user_attrs["made_on"]
    return rec


def param_importance(study: Any, space: list[SearchParam], multi: bool, seed: int) -> dict[str, float]:
    """fANOVA importance of each searched setting (empty when too few trials vary them)."""
    import optuna

    try:
        return {k: float(v) for k, v in optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed),
            params=[p.name for p in space], target=(lambda t: t.values[0]) if multi else None,
        ).items()}
    except (ValueError, RuntimeError, ZeroDivisionError, IndexError):
        return {}  # fewer than two finished trials with these settings, or no variation


def _append_jsonl(path: Any, record: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
    except OSError:
        pass  # the record is still in the log and in info["hpo_trials"]


# --- views: this technique's charts (the Compare page, the export and the report list them) -------
class HpoInfo(TypedDict, total=False):
    """The ``info`` keys hpo writes (and its charts read)."""

    hpo_trials: list[dict[str, Any]]
    hpo_importance: dict[str, float]
    hpo_direction: str
    hpo_sampler: str


def _info(row: Mapping[str, Any]) -> HpoInfo:
    from optim.charts import details

    return cast(HpoInfo, details(row))


def _trial_value(t: Mapping[str, Any]) -> float:
    from optim.charts import num

    v = t.get("value", t.get("values"))
    if isinstance(v, (list, tuple)):
        v = v[0] if v else None
    return num(v)


@chart("hpo_history", "HPO history", order=60)
def hpo_history(rows: Rows) -> Any | None:
    """Every HPO trial's objective by trial number, with the best so far (Optuna's history plot)."""
    from optim.charts import apply_layout, ok_rows, plotly_go

    go = plotly_go()
    listed = [(r, _info(r).get("hpo_trials")) for r in ok_rows(rows)]
    found = [(r, t) for r, t in listed if isinstance(t, list) and t]
    if not found:
        return None
    fig = go.Figure()
    for r, listed_trials in found:
        trials = [t for t in listed_trials if isinstance(t, Mapping)]
        nums = [t.get("number", i) for i, t in enumerate(trials)]
        vals = [_trial_value(t) for t in trials]
        states = [str(t.get("state", "COMPLETE")) for t in trials]
        direction = str(_info(r).get("hpo_direction", "maximize"))
        best, run = [], float("nan")
        for v, s in zip(vals, states):
            if not math.isnan(v) and s.upper().endswith("COMPLETE"):
                run = v if math.isnan(run) else (max(run, v) if direction.startswith("max") else min(run, v))
            best.append(run)
        name = f"{r.get('candidate_id')} {r.get('recipe')}"
        fig.add_trace(go.Scatter(
            x=nums, y=vals, mode="markers", name=f"{name}: trials",
            marker=dict(size=8, color=["#2563eb" if s.upper().endswith("COMPLETE") else "#d1d5db" for s in states]),
            text=[f"{s}<br>{t.get('params', '')}" for s, t in zip(states, trials)],
            hovertemplate="trial %{x}: %{y:.4g}<br>%{text}<extra></extra>",
        ))
        fig.add_trace(go.Scatter(x=nums, y=best, mode="lines", name=f"{name}: best so far",
                                 line=dict(color="#16a34a", width=2, shape="hv")))
    fig.update_xaxes(title_text="trial", dtick=1 if max(len(t) for _, t in found) <= 30 else None)
    fig.update_yaxes(title_text="objective (validation)")
    return apply_layout(fig, "Hyperparameter search history (grey: pruned or failed trials)", height=400)


@chart("hpo_importance", "HPO importance", order=61)
def hpo_importance(rows: Rows) -> Any | None:
    """Parameter importance of each HPO study (fANOVA or Optuna's default evaluator), as bars."""
    from optim.charts import apply_layout, num, ok_rows, plotly_go

    go = plotly_go()
    listed = [(r, _info(r).get("hpo_importance")) for r in ok_rows(rows)]
    found = [(r, imp) for r, imp in listed if isinstance(imp, Mapping) and imp]
    if not found:
        return None
    fig = go.Figure()
    for r, imp in found:
        items = sorted(((str(k), num(v)) for k, v in imp.items()), key=lambda kv: kv[1])
        fig.add_trace(go.Bar(x=[v for _, v in items], y=[k for k, _ in items], orientation="h",
                             name=f"{r.get('candidate_id')} {r.get('recipe')}",
                             text=[f"{v:.2f}" for _, v in items], textposition="outside", cliponaxis=False))
    fig.update_xaxes(title_text="importance (share of objective variance)")
    return apply_layout(fig, "Hyperparameter importance", height=120 + 40 * max(len(i) for _, i in found) * len(found),
                   barmode="group")
