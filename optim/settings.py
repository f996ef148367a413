"""Run settings, declared once: the CLI flags, the dashboard's sidebar, the defaults and the stored
spec all derive from :class:`RunSettings`.

A field's ``json_schema_extra`` says where it shows: ``cli`` is its command-line flag (a bool
that defaults to on becomes ``--no-<flag>``), ``ui`` puts it in the sidebar's "Run settings".
Bounds (``ge``/``le``/``gt``) are the rules; the form and the run read the same ones, so the form
rejects exactly what the run would.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from optim.errors import ConfigError
from optim.recipe import MAX_VARIANTS


def default_threads() -> int:
    """Every core: timing with all threads is what a deployment on this machine would see."""
    return max(1, os.cpu_count() or 1)


class RunSettings(BaseModel):
    """How a run measures: threads, batch N, seed, energy settings and the expansion limit."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    # Upper bounds too: the batch is tiled from the test rows in memory, and the budgets are spent
    # per candidate; a typo must not allocate gigabytes or run for days.
    threads: int = Field(default_factory=default_threads, ge=1, le=1024,
                         description="Threads for inference timing (default: every core).",
                         json_schema_extra={"cli": "--threads", "ui": "Threads"})
    batch_size: int = Field(32, ge=1, le=4096, description="Batch size N of the batch-N latency and throughput.",
                            json_schema_extra={"cli": "--batch", "ui": "Batch N", "label": "batch"})
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Random seed of every technique and split.",
                      json_schema_extra={"cli": "--seed", "ui": "Seed"})
    country_iso_code: str = Field("USA", min_length=3, max_length=3,
                                  description="ISO 3166 alpha-3 code for CodeCarbon's grid carbon intensity (CO₂).",
                                  json_schema_extra={"cli": "--country", "ui": "Country (ISO 3166 alpha-3)"})
    latency_budget_s: float = Field(0.5, gt=0, le=60, allow_inf_nan=False,
                                    description="Seconds of timed repeats per latency figure.",
                                    json_schema_extra={"cli": "--latency-budget", "label": "latency budget",
                                                       "unit": "seconds"})
    energy_inferences: int = Field(2000, ge=1, le=1_000_000, description="Inferences CodeCarbon watches per figure.",
                                   json_schema_extra={"cli": "--energy-inferences", "label": "energy inferences"})
    device_profiles: bool = Field(True, description="Edge-profile and device-catalog columns.",
                                  json_schema_extra={"cli": "--device-profiles"})
    # Where candidates are made (optim.executor) and where they are logged (optim.tracking): the
    # command line and the dashboard's Run settings both set them; measuring always stays here.
    executor: str = Field("local", max_length=300,
                          description="Where candidates are made: local (this machine), ray (the cluster "
                                      "RAY_ADDRESS names, else a new local one) or ray://HOST:PORT; every "
                                      "candidate is still measured here.",
                          json_schema_extra={"cli": "--executor", "ui": "Executor (local, ray, ray://HOST:PORT)"})
    measure_on: str = Field("driver", max_length=300,
                            description="Where candidates made on Ray are timed: driver (this machine, all "
                                        "together: latencies compare), KEY=VALUE (the one Ray node started "
                                        "with that label, e.g. ray start --labels optim-measure=yes) or "
                                        "per-node (each on the node that made it, beside the baseline timed "
                                        "there: latencies do not compare across nodes).",
                            json_schema_extra={"cli": "--measure-on",
                                               "ui": "Measure on (driver, per-node, KEY=VALUE node label)"})
    mlflow: str = Field("", max_length=2000,
                        description="MLflow tracking URI every candidate is logged to once measured "
                                    "(file:///path/mlruns or http://host:port; needs pip install "
                                    "'optim[mlflow]'); empty: none.",
                        json_schema_extra={"cli": "--mlflow", "ui": "MLflow tracking URI"})
    max_variants: int = Field(MAX_VARIANTS, ge=1, le=100_000,
                              description="Most variants the recipes may expand to (sweeps multiply); "
                                          "a run above it is refused before any work.",
                              json_schema_extra={"cli": "--max-variants"})
    parent_runtime: bool = Field(True, description="Run the variants of an ONNX model in ONNX Runtime like it: layers "
                                 "are edited on its PyTorch graph, exported back to ONNX and checked, so "
                                 "latencies compare runtime with runtime (off: they stay in PyTorch, flagged "
                                 "as not comparable).",
                                 json_schema_extra={"cli": "--parent-runtime",
                                                    "ui": "Keep ONNX uploads in ONNX Runtime"})

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise ConfigError(describe_validation(err)) from None

    @classmethod
    def setting_fields(cls) -> dict[str, Any]:
        """The run-setting fields (name → pydantic FieldInfo), in declaration order."""
        return {k: v for k, v in cls.model_fields.items() if k in RunSettings.model_fields}

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every run setting's default value (threads resolved for this machine)."""
        return RunSettings().model_dump()

    @classmethod
    def ui_fields(cls) -> list[tuple[str, str, Any]]:
        """``(name, label, FieldInfo)`` of the settings the dashboard's sidebar shows."""
        return [(k, str(_extra(f).get("ui")), f) for k, f in RunSettings.model_fields.items() if _extra(f).get("ui")]

    @classmethod
    def bounds(cls, name: str) -> tuple[float | None, float | None]:
        """The inclusive ``(low, high)`` of a numeric setting (``None`` where unbounded)."""
        low = high = None
        for meta in RunSettings.model_fields[name].metadata:
            low = getattr(meta, "ge", None) if getattr(meta, "ge", None) is not None else low
            high = getattr(meta, "le", None) if getattr(meta, "le", None) is not None else high
        return low, high


def _extra(field: Any) -> dict[str, Any]:
    return field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}


def cli_flags() -> list[tuple[str, str, Any]]:
    """``(name, flag, FieldInfo)`` of every run setting that has a command-line flag."""
    return [(k, str(_extra(f)["cli"]), f) for k, f in RunSettings.model_fields.items() if _extra(f).get("cli")]


def _rule(name: str, value: Any) -> str | None:
    """The rule of a bounded run setting in words, with its flag: "batch=0: must be a whole number
    from 1 to 4096 (--batch)"; None for a field without bounds."""
    field = RunSettings.model_fields.get(name)
    if field is None:
        return None
    extra = _extra(field)
    low = high = None
    low_open = False
    for meta in field.metadata:
        for attr, is_open in (("ge", False), ("gt", True)):
            if getattr(meta, attr, None) is not None:
                low, low_open = getattr(meta, attr), is_open
        if getattr(meta, "le", None) is not None:
            high = meta.le
    if low is None or high is None:
        return None
    label, flag = extra.get("label", name), extra.get("cli", "")
    if field.annotation is int:
        return f"{label}={value}: must be a whole number from {low} to {high} ({flag})"
    unit = f" of {extra['unit']}" if extra.get("unit") else ""
    lower = f"above {low:g}" if low_open else f"from {low:g}"
    return (f"{label}={value}: must be a finite number{unit} {lower} and at most {high:g} "
            f"({flag}, e.g. {field.default:g})")


def describe_validation(err: ValidationError) -> str:
    """One line naming each bad setting, its value and the rule (and its CLI flag)."""
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(settings)"
        msg = str(e["msg"]).removeprefix("Value error, ")
        if e["type"] == "value_error" and not e["loc"]:
            parts.append(msg)
            continue
        parts.append(_rule(key, e.get("input")) or f"{key}={e.get('input')!r}: {msg}")
    return "; ".join(p.rstrip(".") for p in parts) + "."


class ExperimentSpec(RunSettings):
    """Everything that defines a run; stored as JSON so a run can be replayed."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    model: str
    data: str
    recipes: list[str] = Field(default_factory=list)
    target: str | None = None
    task: str | None = None
    arch: str | None = None
    trust_pickle: bool = False
    name: str = ""
    #: Display names of uploaded files (stored path → the file name the user gave), so History
    #: and reports name uploads as their users know them after the browser session is gone.
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _bounded(self) -> ExperimentSpec:
        # Counted from the text, never expanded: a million-variant sweep is refused here.
        from optim.recipe import check_variant_count

        try:
            check_variant_count(self.recipes, self.max_variants)
        except ConfigError as err:
            raise ValueError(str(err)) from None
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    def stored(self) -> dict[str, Any]:
        """The spec as the store and ``run.json`` keep it: passwords in URLs (a storage) masked."""
        from optim.errors import redact_secrets

        d = self.to_dict()
        d["recipes"] = [redact_secrets(r) for r in d["recipes"]]
        d["mlflow"] = redact_secrets(d.get("mlflow") or "")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExperimentSpec:
        """The spec stored with a run (keys this version does not know are ignored)."""
        return cls(**{k: v for k, v in d.items() if k in cls.model_fields})

    def settings(self) -> RunSettings:
        return RunSettings(**{k: getattr(self, k) for k in RunSettings.model_fields})

    def validate_run(self) -> list[Any]:
        """Every recipe parsed (ConfigError on the first bad one) and the country checked."""
        from optim.evaluation.energy import check_country
        from optim.recipe import parse_recipes

        self.country_iso_code = check_country(self.country_iso_code)
        if self.executor != "local":
            from optim.executor import check_executor

            self.executor = check_executor(self.executor)
        if self.measure_on != "driver":
            from optim.executor import check_measure_on

            self.measure_on = check_measure_on(self.measure_on, self.executor)
        if self.mlflow:
            from optim.tracking import check_uri

            self.mlflow = check_uri(self.mlflow)
        return parse_recipes(self.recipes, max_variants=self.max_variants)

    # The historical name; pydantic's own ``validate`` classmethod is deprecated, so this shadows it.
    validate = validate_run  # type: ignore[assignment,pydantic-field]
