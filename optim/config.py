"""TechniqueConfig: one declaration per technique setting, four uses.

The fields of a technique's config (type, default, bounds, description) drive validation, the
dashboard's widgets, the Optuna search space and the JSON that stores and replays a run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from optim.errors import ConfigError
from optim.recipe import format_settings, format_value, is_optional, parse_value

__all__ = ["TechniqueConfig", "FieldInfo", "describe_fields", "json_schema", "format_value", "parse_value",
           "epochs_field", "lr_field", "batch_size_field"]


class TechniqueConfig(BaseModel):
    """Base class of every technique's settings: frozen, unknown keys refused.

    Declare settings as fields with ``pydantic.Field(default, ge=..., le=..., description=...)``;
    Literal types become choices. The dashboard labels a field with ``Field(title="...")`` when
    given, else with :data:`LABELS` (one label per setting name shared by every technique).
    Add ``json_schema_extra={"sweep": [..]}`` on a field to suggest
    sweep values, and ``{"search": [low, high, "log"]}`` to give HPO a range other than the bounds.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    @classmethod
    def build(cls, technique: str = "", **values: Any) -> TechniqueConfig:
        """Validate ``values`` and return the config, or raise a ConfigError naming each bad key."""
        try:
            return cls(**values)
        except ValidationError as err:
            raise ConfigError(_describe(cls, technique, err)) from None

    @classmethod
    def from_strings(cls, technique: str, pairs: dict[str, str]) -> TechniqueConfig:
        """Build from ``key=value`` strings as typed on the command line."""
        fields = cls.model_fields
        values: dict[str, Any] = {}
        for key, raw in pairs.items():
            if key not in fields:
                raise ConfigError(
                    f"{technique or cls.__name__}: unknown setting {key!r}; "
                    f"allowed: {', '.join(fields) or '(none)'}."
                )
            values[key] = parse_value(raw, fields[key].annotation)
        return cls.build(technique, **values)

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> TechniqueConfig:
        return cls.build("", **json.loads(text))

    def explicit(self) -> dict[str, Any]:
        """Settings given explicitly or different from their defaults, in declaration order.

        A sweep ``sparsity=0.5|0.9`` keeps ``sparsity=0.5`` in its label even though 0.5 is the
        default, so every point of a sweep names its value.
        """
        return {name: getattr(self, name) for name, field in type(self).model_fields.items()
                if name in self.model_fields_set or getattr(self, name) != field.default}

    def spec(self) -> str:
        """:meth:`explicit` settings as ``key=value,...`` (recipe syntax)."""
        return format_settings(self.explicit())


# --- the fine-tuning settings techniques share ---------------------------------------------------
# One declaration of each shared training setting (bounds, help, HPO range); a technique picks its
# own default. Factories rather than a base class: pydantic puts a base class's fields first, and
# a technique's own settings (sparsity, k, bits) must stay first in its form and its recipe label.
def epochs_field(default: int, *, ge: int = 0, description: str = "Fine-tuning epochs.",
                 search: tuple[Any, ...] | None = None) -> Any:
    """An ``epochs`` setting (0 skips training where ``ge=0``)."""
    extra: dict[str, Any] | None = {"search": list(search)} if search else None  # JSON: a list
    return Field(default, ge=ge, le=1000, description=description, json_schema_extra=extra)


def lr_field(default: float = 1e-3, *, description: str = "Fine-tuning learning rate (Adam).",
             search: tuple[Any, ...] = (1e-5, 1e-2, "log")) -> Any:
    """A learning-rate setting: positive, at most 1, searched on a log scale."""
    return Field(default, gt=0.0, le=1.0, description=description, json_schema_extra={"search": list(search)})


def batch_size_field(default: int = 64, *, description: str = "Mini-batch size.") -> Any:
    """A training mini-batch size."""
    return Field(default, ge=1, le=8192, description=description)


@dataclass(frozen=True)
class FieldInfo:
    """A config field as the UI and the search space see it."""

    name: str
    kind: Literal["bool", "choice", "int", "float", "str", "optional_int", "optional_float", "other"]
    default: Any
    description: str
    #: What a person reads beside the widget ("Learning rate", not ``lr``).
    label: str = ""
    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True
    choices: tuple[Any, ...] = ()
    sweep: tuple[Any, ...] = ()
    search: tuple[Any, ...] = ()


def describe_fields(config_cls: type[TechniqueConfig]) -> list[FieldInfo]:
    """Every field of ``config_cls`` with its kind, bounds and choices."""
    out = []
    for name, field in config_cls.model_fields.items():
        ann = field.annotation
        optional = False
        if is_optional(ann):
            optional = True
            ann = next(a for a in get_args(ann) if a is not type(None))
        low = high = None
        low_inc = high_inc = True
        for meta in field.metadata:
            for attr, inc in (("ge", True), ("gt", False)):
                if getattr(meta, attr, None) is not None:
                    low, low_inc = getattr(meta, attr), inc
            for attr, inc in (("le", True), ("lt", False)):
                if getattr(meta, attr, None) is not None:
                    high, high_inc = getattr(meta, attr), inc
        extra: dict[str, Any] = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        choices: tuple[Any, ...] = ()
        if ann is bool:
            kind = "bool"
        elif get_origin(ann) is Literal:
            kind, choices = "choice", get_args(ann)
        elif ann is int:
            kind = "optional_int" if optional else "int"
        elif ann is float:
            kind = "optional_float" if optional else "float"
        elif ann is str:
            kind = "str"
        else:
            kind = "other"
        out.append(
            FieldInfo(
                name=name,
                kind=kind,  # type: ignore[arg-type]
                default=field.default,
                description=field.description or "",
                label=field.title or LABELS.get(name) or name.replace("_", " ").capitalize(),
                low=low,
                high=high,
                low_inclusive=low_inc,
                high_inclusive=high_inc,
                choices=choices,
                sweep=tuple(extra.get("sweep", ())),
                search=tuple(extra.get("search", ())),
            )
        )
    return out


#: Human labels of setting names, shared by every technique that uses the name (a field's own
#: ``Field(title=...)`` wins where one name means different things, e.g. ``alpha``).
LABELS: dict[str, str] = {
    "lr": "Learning rate", "epochs": "Epochs", "init": "Initialization", "batch_size": "Batch size",
    "finetune_epochs": "Fine-tuning epochs", "k": "Features to keep", "sparsity": "Sparsity",
    "steps": "Prune → fine-tune rounds", "dtype": "Number format", "reduce_range": "Reduce range (7-bit weights)",
    "calibration_samples": "Calibration rows", "components": "Components", "variance": "Explained variance",
    "score_func": "Scoring function", "max_features": "Most features kept", "estimator": "Ranking estimator",
    "step": "Features removed per round", "scope": "Threshold scope", "importance": "Channel importance",
    "global_pruning": "Rank across layers", "round_to": "Round channels to", "backend": "Runtime",
    "include_conv": "Quantize Conv layers too", "freeze_after": "Freeze ranges after (share of epochs)",
    "calibration": "Calibration method", "max_drop": "Largest accepted metric drop",
    "per_channel": "Per-channel scales", "quant_format": "Quantized graph format",
    "activation_type": "Activation type", "percentile": "Percentile", "preprocess": "Pre-process graph",
    "student": "Student model", "params_ratio": "Student size (share of teacher)", "temperature": "Temperature",
    "hint_weight": "Hint loss weight", "data_fraction": "Share of training data",
    "require_smaller": "Require a smaller student", "no_teacher": "Also train without the teacher",
    "sampler": "Search algorithm", "pruner": "Trial pruner", "trials": "Trials", "timeout_s": "Time limit (s)",
    "objective2": "Second objective", "tune": "Technique to tune", "space": "Settings to search",
    "fixed": "Fixed settings", "startup_trials": "Random start-up trials", "grid_points": "Grid points per setting",
    "include_default": "Include the default settings", "storage": "Study storage (URL)", "study_name": "Study name",
    "clients": "Clients", "fraction": "Share of clients per round", "local_epochs": "Local epochs",
    "local_batch": "Local batch size", "rounds": "Rounds", "split": "Data split across clients",
    "shards_per_client": "Shards per client", "target_accuracy": "Target accuracy",
    "compare_fedsgd": "Also run FedSGD", "compare_centralized": "Also train centrally",
    "centralized_epochs": "Central training epochs", "graph_optimization": "Graph optimization level",
    "provider": "Execution provider", "opset": "ONNX opset", "device": "Device", "threads": "Threads",
    "optimizer": "Optimizer", "weight_decay": "Weight decay", "momentum": "Momentum", "scheduler": "LR schedule",
    "warmup": "Warm-up epochs", "clip_norm": "Clip gradient norm", "clip_value": "Clip gradient values",
    "width": "Width", "target_metric": "Target metric", "stop_at_target": "Stop at the target",
    "patience": "Patience (epochs)", "bits": "Bits per weight index", "biases": "Share biases too", "rank": "Rank",
    "energy": "Kept energy (share)", "conv": "Conv factorization", "only_if_smaller": "Only if smaller",
    "threshold": "Exit confidence", "thresholds": "Exit confidences", "criterion": "Confidence measure",
    "exits": "Exit positions", "train": "Training mode", "exit_weight": "Exit loss weight",
}


def json_schema(config_cls: type[TechniqueConfig]) -> dict[str, Any]:
    return config_cls.model_json_schema()


def _describe(cls: type[TechniqueConfig], technique: str, err: ValidationError) -> str:
    fields = cls.model_fields
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(settings)"
        value = e.get("input")
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown setting {key!r}; allowed: {', '.join(fields) or '(none)'}")
            continue
        rule = e["msg"]
        info = next((f for f in describe_fields(cls) if f.name == key), None)
        if info is not None and (info.low is not None or info.high is not None):
            lo = "" if info.low is None else f"{info.low}{' ≤' if info.low_inclusive else ' <'} "
            hi = "" if info.high is None else f" {'≤' if info.high_inclusive else '<'} {info.high}"
            rule += f" (allowed: {lo}{key}{hi})"
        elif info is not None and info.choices:
            rule += f" (allowed: {', '.join(map(str, info.choices))})"
        parts.append(f"{key}={value!r}: {rule}")
    return f"{technique or cls.__name__}: " + "; ".join(parts) + "."
