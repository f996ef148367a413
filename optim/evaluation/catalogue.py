"""The metric catalogue: every measured column, declared once with its unit and direction.

The comparison table, the charts, the Pareto front, the recommendation, the report and the CLI
all read :data:`METRICS`. Adding a metric is one :class:`MetricSpec` here (plus the code that
measures it); a column without an entry still shows among "every measured column", undirected.

``higher_is_better`` follows Olive's convention. Headers and axis labels are templates filled
when a table is built: ``{unit}`` becomes the scaled unit chosen from the baseline's magnitude
(KB/MB for ``scale="bytes"``, k/M for ``scale="count"``), ``{bn}`` the batch-N tag ("b32") and
``{n}`` the batch size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

DeltaKind = Literal["ratio", "points", "absolute", "none"]
Scale = Literal["bytes", "count", "percent", "none"]


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its result key, label, unit, direction and how it is shown."""

    key: str                   # the result row's key, e.g. "size_bytes"
    label: str                 # short name, prefix of its delta columns: "Size"
    unit: str                  # unit of the raw value: "bytes", "ms", "J", "" ...
    higher_is_better: bool
    fmt: str = ".4g"           # format spec of one raw value (CLI, report)
    header: str = ""           # table header template, e.g. "Size ({unit})"; default: "label (unit)"
    axis: str = ""             # chart axis template; default: the header
    scale: Scale = "none"      # how the displayed unit is chosen (see module docstring)
    delta: DeltaKind = "ratio"  # how a change vs the baseline is stated
    better_word: str = "better"  # "smaller", "faster" ...
    worse_word: str = "worse"
    group: Literal["main", "more"] = "more"  # main: shown by default
    #: A relative change below this (percent) reads "same": timed metrics are noisy, and a
    #: sub-percent change of an exact one is noise to a reader.
    same_pct: float = 0.5
    #: Label of this metric in the Pareto chart's axis picker ("" = not offered as an axis).
    pareto_axis: str = ""
    #: The interleaved ratio column that judges a timed metric (``speedup_b1``, ``energy_ratio``):
    #: its confidence interval, not the two raw values, decides "no measurable difference".
    judged_by: str = ""
    #: Noun appended to the direction words in verdicts ("less energy"); "" for "faster"/"slower".
    noun: str = ""

    @property
    def verdict_words(self) -> tuple[str, str]:
        """The words of a verdict for this metric: ("faster", "slower"), ("less energy", "more energy")."""
        return tuple(f"{w} {self.noun}".strip() for w in (self.better_word, self.worse_word))  # type: ignore[return-value]

    @property
    def name(self) -> str:
        """The key (the name :mod:`optim.evaluation.metrics` used before the catalogue)."""
        return self.key

    def format(self, value: Any) -> str:
        """One raw value for a terminal or a report ("—" when missing)."""
        try:
            f = float(value)
        except (TypeError, ValueError):
            return "—"
        if not math.isfinite(f):
            return "—"
        text = format(f, self.fmt)
        return f"{text} {self.unit}" if self.unit and self.unit not in ("%",) else text

    def header_text(self, unit: str = "", bn: str = "bN", n: str = "N") -> str:
        template = self.header or (f"{self.label} ({{unit}})" if self.unit else self.label)
        return template.format(unit=unit or self.unit, bn=bn, n=n)

    def axis_text(self, unit: str = "", bn: str = "bN", n: str = "N") -> str:
        return (self.axis or self.header_text("{unit}", "{bn}", "{n}")).format(unit=unit or self.unit, bn=bn, n=n)

    def better(self, value: float, than: float) -> bool:
        """Whether ``value`` is better than ``than`` for this metric (strictly)."""
        return value > than if self.higher_is_better else value < than


# Task metrics (the primary one of a run is shown as ``metric_value``).
ACCURACY = MetricSpec("accuracy", "Accuracy", "%", True, ".4f", header="Accuracy (%)", scale="percent",
                      delta="points", better_word="higher", worse_word="lower", group="main")
R2 = MetricSpec("r2", "R²", "", True, ".4f", delta="absolute", better_word="higher", worse_word="lower",
                group="main")
RMSE = MetricSpec("rmse", "RMSE", "", False, ".4g", better_word="lower", worse_word="higher", group="main")
MAE = MetricSpec("mae", "MAE", "", False, ".4g", better_word="lower", worse_word="higher")

#: Every directed metric, in the order tables and charts show them.
METRICS: dict[str, MetricSpec] = {m.key: m for m in (
    ACCURACY, R2, RMSE, MAE,
    MetricSpec("size_bytes", "Size", "bytes", False, ",.0f", header="Size ({unit})", scale="bytes",
               better_word="smaller", worse_word="larger", group="main", pareto_axis="Size"),
    MetricSpec("size_bytes_gzip", "Gzipped size", "bytes", False, ",.0f", header="Gzipped size ({unit})",
               scale="bytes", better_word="smaller", worse_word="larger", pareto_axis="Gzipped size"),
    MetricSpec("params", "Parameters", "", False, ",.0f", header="Parameters ({unit})", scale="count",
               better_word="fewer", worse_word="more"),
    MetricSpec("nonzero_params", "Non-zero params", "", False, ",.0f", header="Non-zero params ({unit})",
               scale="count", better_word="fewer", worse_word="more"),
    MetricSpec("macs", "MACs", "", False, ",.0f", header="MACs ({unit})", scale="count",
               better_word="fewer", worse_word="more", group="main", pareto_axis="MACs"),
    MetricSpec("latency_ms_p50_b1", "Latency b1", "ms", False, ".4g", header="Latency p50 b1 (ms)",
               axis="Latency p50, batch 1 (ms)", better_word="faster", worse_word="slower", group="main",
               same_pct=3.0, pareto_axis="Latency (batch 1)", judged_by="speedup_b1"),
    MetricSpec("latency_ms_p95_b1", "Latency p95 b1", "ms", False, ".4g", header="Latency p95 b1 (ms)",
               axis="Latency p95, batch 1 (ms)", better_word="faster", worse_word="slower", same_pct=3.0),
    MetricSpec("latency_ms_p50_bN", "Latency {bn}", "ms", False, ".4g", header="Latency p50 {bn} (ms)",
               axis="Latency p50, batch {n} (ms)", better_word="faster", worse_word="slower", group="main",
               same_pct=3.0, pareto_axis="Latency (batch N)", judged_by="speedup_bN"),
    MetricSpec("latency_ms_p95_bN", "Latency p95 {bn}", "ms", False, ".4g", header="Latency p95 {bn} (ms)",
               axis="Latency p95, batch {n} (ms)", better_word="faster", worse_word="slower", same_pct=3.0),
    MetricSpec("throughput_sps", "Throughput", "samples/s", True, ".4g", header="Throughput {bn} (samples/s)",
               axis="Throughput (samples/s)", better_word="higher", worse_word="lower", same_pct=3.0,
               judged_by="speedup_bN"),
    MetricSpec("energy_j_per_1k", "Energy", "J", False, ".4g", header="Energy / 1k inferences (J, {unit})",
               axis="Energy / 1k inferences (J, estimate)", better_word="less", worse_word="more", group="main",
               same_pct=3.0, pareto_axis="Energy", judged_by="energy_ratio", noun="energy"),
    MetricSpec("co2_g_per_1k", "CO₂", "g", False, ".4g", header="CO₂ / 1k inferences (g, estimate)",
               better_word="less", worse_word="more", judged_by="energy_ratio", noun="CO₂"),
    MetricSpec("optimize_s", "Optimize time", "s", False, ".3g", header="Optimize time (s)", delta="none"),
)}

#: The task metric name → its spec (``metric_name`` of a result row).
TASK_METRICS = {m.key: m for m in (ACCURACY, R2, RMSE, MAE)}


def metric_spec(key: str) -> MetricSpec | None:
    """The catalogue entry of a result key, or None for an undirected column."""
    return METRICS.get(key)


def register_metric(spec: MetricSpec, *, after: str | None = None) -> MetricSpec:
    """Add (or replace) a catalogue entry; ``after`` places it after another key in display order."""
    items = [(k, v) for k, v in METRICS.items() if k != spec.key]
    pos = next((i + 1 for i, (k, _) in enumerate(items) if k == after), len(items)) if after else len(items)
    items.insert(pos, (spec.key, spec))
    METRICS.clear()
    METRICS.update(items)
    return spec


def metric_label(metric_name: str | None) -> str:
    """The display name of a task metric: "Accuracy", "R²", "RMSE" ..."""
    spec = TASK_METRICS.get(metric_name or "")
    return spec.label if spec else (metric_name or "Metric")


def higher_is_better(key: str) -> bool:
    """The direction of ``key`` (a task metric or a catalogue metric); KeyError for an undirected one."""
    if key == "metric_value":
        return True  # the primary metric of every task is maximised (accuracy, R²)
    return METRICS[key].higher_is_better


def pareto_axes() -> dict[str, str]:
    """Axes a Pareto scatter can plot the task metric against: label → result key."""
    order = ["latency_ms_p50_b1", "size_bytes", "energy_j_per_1k", "macs", "latency_ms_p50_bN", "size_bytes_gzip"]
    keys = [k for k in order if k in METRICS] + [k for k in METRICS if k not in order]
    return {METRICS[k].pareto_axis: k for k in keys if METRICS[k].pareto_axis}
