"""optim: compare ML model optimizations side by side — accuracy, size, latency, estimated energy.

This module is the facade: the dashboard (``app/``), the CLI and user scripts import from
``optim`` only, never from its submodules. Every name below is the real object (its signature
and docstring are the implementation's), loaded on first use so ``import optim`` stays fast::

    import optim
    results = optim.run_experiment(optim.ExperimentSpec(model="sample:digits-mlp", data="sample",
                                                        recipes=["quantize-dynamic"]))
    optim.export_candidate(results.out_dir, "c1", "onnx", "model.onnx")

Every registered technique: ``optim.all_techniques()`` (``optim.techniques`` is the package of
built-in ones). Built-in techniques (``optim/techniques/``) are loaded by this package the first time the
registry is asked for one; a technique of your own registers with ``@optim.register_technique``.
See docs/ARCHITECTURE.md for the layers and how to add a technique, a metric, a chart or a page.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from optim import registry as _registry
from optim.errors import (
    CancelledError,
    ConfigError,
    ExportError,
    InputError,
    OptimError,
    UnsafeFileError,
    UnsupportedError,
    redact_secrets,
)
from optim.registry import FAMILIES, all_techniques, register_technique
from optim.registry import get as get_technique

__version__ = "0.1.0"


def _load_builtin_techniques() -> None:
    """Import every module of ``optim.techniques`` (each registers itself)."""
    importlib.import_module("optim.techniques")


_registry.add_loader(_load_builtin_techniques)

#: Public name → the module that defines it, ``module:name`` when the facade renames it, ``module:``
#: for a module that is itself public (a namespace). Other facade names never equal a submodule's:
#: importing ``optim.presets`` sets the attribute ``optim.presets`` to the module.
_LAZY: dict[str, str] = {
    # models, data, candidates
    "load_model": "optim.io.models",
    "load_sample": "optim.io.models",
    "list_samples": "optim.io.models",
    "sample_data_ref": "optim.io.models",
    "load_dataset": "optim.io.datasets",
    "list_sample_datasets": "optim.io.datasets",
    "SAMPLE_DATASETS": "optim.io.datasets",
    "ARCHS": "optim.archs",
    "architecture_names": "optim.archs",
    # user models in a child process (optim.sandbox) and the uploads folder (optim.io.uploads)
    "probe_model": "optim.sandbox",
    "measure_baseline": "optim.sandbox",
    "ModelLimits": "optim.sandbox",
    "upload_path": "optim.io.uploads",
    "save_upload": "optim.io.uploads",
    "keep_upload": "optim.io.uploads",
    "reject_upload": "optim.io.uploads",
    "Candidate": "optim.candidate",
    "Step": "optim.candidate",
    "RunContext": "optim.context",
    "technique_applicability": "optim.applicability:applicability",
    "model_summary": "optim.applicability",
    "dataset_summary": "optim.applicability",
    # techniques and their settings
    "Technique": "optim.techniques.base",
    "TechniqueConfig": "optim.config",
    "FieldInfo": "optim.config",
    "describe_fields": "optim.config",
    "epochs_field": "optim.config",
    "lr_field": "optim.config",
    "batch_size_field": "optim.config",
    "ChartView": "optim.views",
    "chart": "optim.views",
    "chart_views": "optim.views",
    # the recipe language
    "Recipe": "optim.recipe",
    "RecipeStep": "optim.recipe",
    "Sweep": "optim.recipe",
    "MAX_VARIANTS": "optim.recipe",
    "parse_recipe": "optim.recipe",
    "parse_recipes": "optim.recipe",
    "check_recipe": "optim.recipe",
    "count_variants": "optim.recipe",
    "check_variant_count": "optim.recipe",
    "format_step": "optim.recipe",
    "format_recipe": "optim.recipe",
    "format_value": "optim.recipe",
    "parse_value": "optim.recipe",
    "all_presets": "optim.presets:presets",
    "get_preset": "optim.presets",
    "Preset": "optim.presets",
    # runs
    "RunSettings": "optim.settings",
    "ExperimentSpec": "optim.settings",
    "cli_flags": "optim.settings",
    "run_experiment": "optim.experiment",
    "Results": "optim.experiment",
    "RESULT_COLUMNS": "optim.experiment",
    # jobs: start, queue, liveness, cancel, progress (optim.jobs, also a namespace: optim.jobs.eta_s ...)
    "jobs": "optim.jobs:",
    "start_background": "optim.jobs",
    "worker_main": "optim.experiment",
    "is_alive": "optim.jobs",
    "cancel_run": "optim.jobs:cancel",
    "list_runs": "optim.jobs",
    "get_run": "optim.jobs",
    "queue_position": "optim.jobs",
    "run_candidates": "optim.jobs:candidates",
    "QueuePosition": "optim.jobs",
    # picked candidates side by side, runs of one model and data in one table (optim.picks)
    "MAX_PICKED": "optim.picks",
    "lineage_text": "optim.picks",
    "side_by_side": "optim.picks",
    "mark_candidates": "optim.picks",
    "same_setup": "optim.picks",
    "combine_runs": "optim.picks",
    "by_run": "optim.picks",
    "runs_table": "optim.picks",
    "runs_chart": "optim.picks",
    # what a run will cost before it starts, and an ETA from measured steps (optim.cost)
    "calibrate": "optim.cost",
    "estimate_run": "optim.cost",
    "eta_s": "optim.cost",
    "format_duration": "optim.cost",
    "COST_WARN_S": "optim.cost:WARN_S",
    # the store
    "Store": "optim.store",
    "optim_home": "optim.store",
    "store_label": "optim.store",
    "RUN_STATUSES": "optim.store",
    "ACTIVE_STATUSES": "optim.store",
    "FINISHED_STATUSES": "optim.store",
    "measure_candidate": "optim.evaluation.measure",
    # results: metrics, comparison, charts, report, export
    "MetricSpec": "optim.evaluation.catalogue",
    "METRICS": "optim.evaluation.catalogue",
    "metric_spec": "optim.evaluation.catalogue",
    "metric_label": "optim.evaluation.catalogue",
    "load_warning": "optim.evaluation.noise",
    "metric_verdict": "optim.evaluation.noise",
    "NO_DIFFERENCE": "optim.evaluation.noise",
    "ratio_verdict": "optim.evaluation.noise",
    "pareto_mask": "optim.evaluation.pareto",
    "pareto_front": "optim.evaluation.pareto",
    "Constraints": "optim.compare",
    "comparison_table": "optim.compare",
    "recommend": "optim.compare",
    "headline": "optim.compare",
    "baseline_of": "optim.compare",
    "constraint_mask": "optim.compare",
    "apply_constraints": "optim.compare",
    "describe_constraints": "optim.compare",
    "energy_method": "optim.compare",
    "format_bytes": "optim.compare",
    "metrics_of": "optim.compare",
    "search_runs": "optim.store",
    "styled": "optim.presentation",
    "view": "optim.presentation",
    "all_figures": "optim.charts",
    "build_figure": "optim.charts",
    "axis_options": "optim.charts",
    "pareto_scatter": "optim.charts",
    "figures_png": "optim.rendering",
    "figure_png": "optim.rendering",
    "figures_html": "optim.rendering",
    "chromium_path": "optim.rendering",
    "figures_png_zip": "optim.rendering",
    "render_report_html": "optim.report",
    "export_candidate": "optim.export",
    "export_to_temp": "optim.export",
    "FORMATS": "optim.export",
    "export_name": "optim.export",
    "export_formats": "optim.export",
    "display_ref": "optim.export",
    "EXPORT_FORMATS": "optim.export:FORMATS",
    "EXPORT_SUFFIX": "optim.export:SUFFIX",
    "SUFFIX": "optim.export",
}

__all__ = sorted(
    [
        "__version__",
        "OptimError",
        "InputError",
        "UnsafeFileError",
        "ConfigError",
        "UnsupportedError",
        "CancelledError",
        "ExportError",
        "redact_secrets",
        "FAMILIES",
        "all_techniques",
        "register_technique",
        "get_technique",
        *_LAZY,
    ]
)


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'optim' has no attribute {name!r}")
    module, colon, attr = target.partition(":")
    loaded = importlib.import_module(module)
    value = loaded if colon and not attr else getattr(loaded, attr or name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # what type checkers and IDEs see: the real definitions
    from optim import jobs
    from optim.applicability import applicability as technique_applicability
    from optim.applicability import dataset_summary, model_summary
    from optim.archs import ARCHS, architecture_names
    from optim.candidate import Candidate, Step
    from optim.charts import all_figures, axis_options, build_figure, pareto_scatter
    from optim.compare import (
        Constraints,
        apply_constraints,
        baseline_of,
        comparison_table,
        constraint_mask,
        describe_constraints,
        energy_method,
        format_bytes,
        headline,
        metrics_of,
        recommend,
    )
    from optim.config import FieldInfo, TechniqueConfig, batch_size_field, describe_fields, epochs_field, lr_field
    from optim.context import RunContext
    from optim.cost import WARN_S as COST_WARN_S
    from optim.cost import calibrate, estimate_run, eta_s, format_duration
    from optim.evaluation.catalogue import METRICS, MetricSpec, metric_label, metric_spec
    from optim.evaluation.measure import measure_candidate
    from optim.evaluation.noise import NO_DIFFERENCE, load_warning, metric_verdict, ratio_verdict
    from optim.evaluation.pareto import pareto_front, pareto_mask
    from optim.experiment import RESULT_COLUMNS, Results, run_experiment, worker_main
    from optim.export import FORMATS, SUFFIX, display_ref, export_candidate, export_formats, export_name, export_to_temp
    from optim.export import FORMATS as EXPORT_FORMATS
    from optim.export import SUFFIX as EXPORT_SUFFIX
    from optim.io.datasets import SAMPLE_DATASETS, list_sample_datasets, load_dataset
    from optim.io.models import list_samples, load_model, load_sample, sample_data_ref
    from optim.io.uploads import keep_upload, reject_upload, save_upload, upload_path
    from optim.jobs import QueuePosition, get_run, is_alive, list_runs, queue_position, start_background
    from optim.jobs import cancel as cancel_run
    from optim.jobs import candidates as run_candidates
    from optim.picks import (
        MAX_PICKED,
        by_run,
        combine_runs,
        lineage_text,
        mark_candidates,
        runs_chart,
        runs_table,
        same_setup,
        side_by_side,
    )
    from optim.presentation import styled, view
    from optim.presets import Preset, get_preset
    from optim.presets import presets as all_presets
    from optim.recipe import (
        MAX_VARIANTS,
        Recipe,
        RecipeStep,
        Sweep,
        check_recipe,
        check_variant_count,
        count_variants,
        format_recipe,
        format_step,
        format_value,
        parse_recipe,
        parse_recipes,
        parse_value,
    )
    from optim.rendering import chromium_path, figure_png, figures_html, figures_png, figures_png_zip
    from optim.report import render_report_html
    from optim.sandbox import ModelLimits, measure_baseline, probe_model
    from optim.settings import ExperimentSpec, RunSettings, cli_flags
    from optim.store import (
        ACTIVE_STATUSES,
        FINISHED_STATUSES,
        RUN_STATUSES,
        Store,
        optim_home,
        search_runs,
        store_label,
    )
    from optim.techniques.base import Technique
    from optim.views import ChartView, chart, chart_views
