"""The comparison: every candidate beside the baseline, constraints, a recommendation, a headline.

Pure pandas, no UI: the dashboard, the report and the CLI all read the same table. Which
metrics exist, their units and directions come from the catalogue
(:mod:`optim.evaluation.catalogue`); colouring the table is :mod:`optim.presentation`'s.

Every metric carries ``higher_is_better`` (Olive's convention), so each delta is stated as a
ratio (``×``), a percentage and a verdict (better / worse / same). Rows that got slower or larger
than the model they were made from are flagged: "the optimized model is slower" is the most
common surprise users of pruning and quantization toolkits report. Failed rows stay in the
table with their error, so nothing is lost when a recipe misses.

Units: 1 KB = 1024 bytes, 1 MB = 1024 KB; MACs in thousands (k) or millions (M).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from optim.evaluation import noise
from optim.evaluation.catalogue import METRICS, TASK_METRICS, DeltaKind, MetricSpec, metric_label
from optim.evaluation.noise import baseline_of
from optim.evaluation.pareto import front_2d, pareto_front

__all__ = ["MetricColumn", "Constraints", "Delta", "baseline_of", "metric_label", "energy_method", "energy_short",
           "energy_header", "metric_columns", "delta", "comparison_table", "metrics_of", "display_columns",
           "constraint_mask", "apply_constraints", "describe_constraints", "format_bytes", "recommend", "headline",
           "pareto_front", "front_2d", "ID_COLUMNS"]

MINUS = "\u2212"  # a real minus sign reads better than a hyphen in headlines

# A change smaller than this (points, for accuracy) counts as "same"; ratios use each metric's
# ``same_pct`` from the catalogue.
_SAME_PT = 0.05


@dataclass(frozen=True)
class MetricColumn:
    """One metric of the comparison table and how its delta vs the baseline is expressed."""

    key: str                  # the result row's key, e.g. "size_bytes"
    header: str               # the displayed column, unit included: "Size (KB)"
    short: str                # prefix of the delta columns: "Size"
    higher_is_better: bool
    scale: float = 1.0        # displayed value = raw value / scale
    delta: DeltaKind = "ratio"
    better_word: str = "better"   # "smaller", "faster", ...
    worse_word: str = "worse"
    group: str = "more"       # "main" columns show by default, "more" on request
    axis_label: str = ""      # short label for chart axes

    @property
    def vs_col(self) -> str:
        return f"{self.short} vs baseline"

    @property
    def ratio_col(self) -> str:
        return f"{self.short} ×"

    @property
    def pct_col(self) -> str:
        return f"{self.short} Δ%"

    @property
    def pt_col(self) -> str:
        return f"{self.short} Δ pt"

    @property
    def better_col(self) -> str:
        return f"{self.short} better"


@dataclass(frozen=True)
class Constraints:
    """Limits a recommended candidate must meet; ``None`` means no limit.

    ``max_metric_drop_pt`` defaults to 1 point: a recommendation that trades away more than a
    point of accuracy unasked would not be a trade-off anyone wants by default.
    """

    max_metric_drop_pt: float | None = 1.0
    max_latency_ms: float | None = None
    max_size_bytes: float | None = None
    max_energy_j_per_1k: float | None = None

    @classmethod
    def coerce(cls, value: Constraints | Mapping[str, Any] | None) -> Constraints:
        if value is None:
            return cls()
        if isinstance(value, Constraints):
            return value
        return cls(**{k: v for k, v in dict(value).items() if k in cls.__dataclass_fields__})

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)


# --- helpers ----------------------------------------------------------------------------------
def _num(value: Any) -> float:
    """A float, or NaN for None / missing / non-numeric."""
    if value is None or isinstance(value, bool):
        return float("nan") if value is None else float(value)
    try:
        f = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return f if math.isfinite(f) else float("nan")


def _ok(row: Mapping[str, Any]) -> bool:
    return row.get("status", "ok") == "ok"


def energy_method(rows: Sequence[Mapping[str, Any]]) -> str:
    """The energy method label shared by the rows ("mixed: ..." when they differ)."""
    methods = list(dict.fromkeys(str(r["energy_method"]) for r in rows
                                 if _ok(r) and r.get("energy_method")))
    if not methods:
        return "CodeCarbon"
    return methods[0] if len(methods) == 1 else "mixed: " + "; ".join(methods)


def energy_short(method: str) -> str:
    """A header-sized label of an energy method: "estimate: CPU TDP 85 W", "measured: RAPL"."""
    import re

    low = method.lower()
    if low.startswith("mixed"):
        return "mixed methods, estimate"
    if low.startswith("unavailable"):
        return "unavailable"
    m = re.search(r"CPU measured by ([^,;+()]+)", method)
    if m:
        return f"measured: {m.group(1).strip()}"
    m = re.search(r"constant (\d+%) of TDP ([\d.]+ ?W)", method)
    if m:
        return f"estimate: constant {m.group(1)} of CPU TDP {m.group(2)}"
    m = re.search(r"TDP ([\d.]+ ?W)", method)
    if m:
        basis = "power × time, " if "power × time" in method else ""
        return f"estimate: {basis}CPU TDP {m.group(1)}"
    head = method.split(",")[0].strip()
    if "estimate" in head.lower() or "measured" in head.lower():
        return head[:60]
    return f"estimate: {head[:50]}"


def energy_header(method: str) -> str:
    """``Energy / 1k inferences (J, estimate: <method>)``; a measured method says so instead."""
    return f"Energy / 1k inferences (J, {energy_short(method)})"


def _size_unit(baseline_bytes: float) -> tuple[str, float]:
    return ("MB", 1024.0 ** 2) if baseline_bytes >= 2 * 1024 ** 2 else ("KB", 1024.0)


def _count_unit(baseline: float) -> tuple[str, float]:
    return ("M", 1e6) if baseline >= 1e6 else ("k", 1e3)


def _from_spec(m: MetricSpec, key: str | None = None, *, unit: str = "", scale: float = 1.0, bn: str = "bN",
               n: str = "N") -> MetricColumn:
    return MetricColumn(key or m.key, m.header_text(unit, bn, n), m.label.format(bn=bn), m.higher_is_better, scale,
                        m.delta, m.better_word, m.worse_word, m.group, m.axis_text(unit, bn, n))


#: The baseline value that picks a scaled metric's unit (sizes share size_bytes' unit, and so on).
_SCALE_FROM = {"size_bytes_gzip": "size_bytes", "nonzero_params": "params"}


def metric_columns(rows: Sequence[Mapping[str, Any]]) -> list[MetricColumn]:
    """The catalogue's metrics the rows have, with units chosen from the baseline's magnitude."""
    base = baseline_of(rows) or {}
    ok = [r for r in rows if _ok(r)]
    has = lambda key: any(not math.isnan(_num(r.get(key))) for r in ok)  # noqa: E731
    name = str(base.get("metric_name") or next((r.get("metric_name") for r in ok if r.get("metric_name")), "accuracy"))
    cols: list[MetricColumn] = []
    if has("metric_value"):
        task = TASK_METRICS.get(name)
        if task is not None:
            cols.append(_from_spec(task, "metric_value", scale=0.01 if task.scale == "percent" else 1.0))
        else:  # a metric the catalogue does not know: maximised, compared as a difference
            label = metric_label(name)
            cols.append(MetricColumn("metric_value", label, label, True, 1.0, "absolute", "higher", "lower", "main",
                                     label))
    if name != "rmse" and has("rmse"):
        cols.append(_from_spec(TASK_METRICS["rmse"]))
    batch_n = next((int(_num(r.get("batch_n"))) for r in ok if not math.isnan(_num(r.get("batch_n")))), None)
    bn, n = (f"b{batch_n}", str(batch_n)) if batch_n else ("bN", "N")
    for m in METRICS.values():
        if m.key in TASK_METRICS or not has(m.key):
            continue
        unit, scale = "", 1.0
        magnitude = _num(base.get(_SCALE_FROM.get(m.key, m.key))) if base else 0.0
        if m.scale == "bytes":
            unit, scale = _size_unit(magnitude)
        elif m.scale == "count":
            unit, scale = _count_unit(magnitude)
        elif m.key == "energy_j_per_1k":
            unit = energy_short(energy_method(rows))
        cols.append(_from_spec(m, unit=unit, scale=scale, bn=bn, n=n))
    return cols


def _same_pct(m: MetricColumn) -> float:
    spec = METRICS.get(m.key)
    return spec.same_pct if spec is not None else 0.5


@dataclass
class Delta:
    """One metric of one row against the baseline."""

    ratio: float = float("nan")     # value / baseline
    pct: float = float("nan")       # (value - baseline) / baseline * 100
    points: float = float("nan")    # (value - baseline) * 100 for accuracy-like metrics
    diff: float = float("nan")      # value - baseline
    better: bool | None = None      # None: the same within noise, or unknown
    text: str = ""
    extra: dict = field(default_factory=dict)


def delta(m: MetricColumn, value: Any, base: Any) -> Delta:
    """How ``value`` compares with the baseline's ``base`` for metric ``m``."""
    v, b = _num(value), _num(base)
    d = Delta()
    if math.isnan(v) or math.isnan(b) or m.delta == "none":
        return d
    d.diff = v - b
    if b != 0:
        d.ratio = v / b
        d.pct = (v - b) / abs(b) * 100.0
    if m.delta == "points":
        d.points = (v - b) * 100.0
        if abs(d.points) >= _SAME_PT:
            d.better = (d.points > 0) == m.higher_is_better
        d.text = f"{_signed(d.points, 1)} pt"
        return d
    if m.delta == "absolute":
        if abs(d.diff) >= 5e-4:
            d.better = (d.diff > 0) == m.higher_is_better
        d.text = _signed(d.diff, 3)
        return d
    if b == 0 or v == 0 and b == 0:
        return d
    if abs(d.pct) < _same_pct(m):
        d.text = "same"
        return d
    d.better = (v > b) == m.higher_is_better
    lower, higher = (m.worse_word, m.better_word) if m.higher_is_better else (m.better_word, m.worse_word)
    d.text = _change(v, b, lower, higher)
    if "×" in d.text:
        d.text += f" ({_signed(d.pct, 0)}%)"
    return d


def _factor(x: float) -> str:
    if math.isinf(x):
        return "∞×"
    return f"{x:.1f}×" if x < 100 else f"{x:,.0f}×"


def _change(v: float, b: float, lower: str, higher: str) -> str:
    """"7.8× smaller" for a factor of at least 1.1, else "4% faster" (1.0× would hide the change).

    ``lower`` / ``higher`` name the direction: ("smaller", "larger"), ("faster", "slower")...
    """
    word = lower if v < b else higher
    # The factor is always ≥ 1, in the direction the word says.
    factor = (b / v if v > 0 else float("inf")) if v < b else v / b
    return f"{_factor(factor)} {word}" if factor >= 1.1 else f"{abs(v - b) / b * 100:.0f}% {word}"


def _signed(x: float, digits: int) -> str:
    s = f"{abs(x):,.{digits}f}"
    if float(s.replace(",", "")) == 0:
        return "±" + s
    return ("+" if x > 0 else MINUS) + s


def _flags(row: Mapping[str, Any], base: Mapping[str, Any] | None) -> tuple[bool, bool]:
    """(slower, larger) than the parent: the run's own flags, else judged against the baseline."""
    out = []
    for flag, key, tol in (
        ("slower_than_parent", "latency_ms_p50_b1", 1.03),
        ("larger_than_parent", "size_bytes", 1.0),
    ):
        value = row.get(flag)
        if value is None and base is not None and row is not base:
            v, b = _num(row.get(key)), _num(noise.reference_value(row, base, key))
            value = bool(v > b * tol) if not (math.isnan(v) or math.isnan(b)) else False
        out.append(bool(value))
    return out[0], out[1]


# --- the table ----------------------------------------------------------------------------------
#: What a technique said about its own variant (its row's details, full text in the detail view),
#: shown as a short flag: a variant that changed nothing, or not what its name suggests, is no win.
TECHNIQUE_FLAGS: tuple[tuple[str, Any], ...] = (
    ("⚠ no effect", lambda r: bool(r.get("no_effect"))),
    ("⚠ little effect", lambda r: bool(r.get("little_effect"))),
    ("⚠ accuracy limit not met", lambda r: str(r.get("accuracy_control") or "").startswith("not met")),
    ("⚠ int8 saturation", lambda r: str(r.get("saturation") or "").startswith("int8 kernels lose")),
    ("all inputs still needed", lambda r: bool(r.get("input_not_narrowed"))),
    # optim.parent_runtime: a torch variant of an ONNX Runtime parent (its latency says little)
    ("⚠ PyTorch, parent ONNX Runtime: latency not comparable", lambda r: bool(r.get("runtime_mismatch"))),
)

ID_COLUMNS = ["ID", "Recipe", "Family", "Status", "Pareto", "Flags", "Made on", "Measured on"]
#: A row timed on another node than the baseline (``--measure-on per-node``): its speed-up is
#: against the baseline timed beside it on that node, its latency compares with no other node's.
OTHER_NODE_FLAG = "⚠ timed on another node: latency not comparable across nodes"
# Row keys that are bookkeeping or already shown another way, never "extra" columns.
_NOT_EXTRA = {"accuracy", "rmse", "r2", "batch_n", "threads", "size_ratio", "speedup_b1", "metric_delta",
              "optimize_energy_j", "optimize_shared_by", "pareto", "energy_is_estimate"}


def comparison_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Baseline first, then every candidate; each metric with its delta vs the baseline.

    Columns: ``ID``, ``Recipe``, ``Family``, ``Status``, ``Pareto`` (on the run's front), ``Flags``
    (slower / larger than the parent), ``Made on`` (runs made on Ray: each row's node),
    ``Measured on`` (runs timed on Ray nodes, ``--measure-on``: each row's node), ``Error``;
    then for each metric its displayed value (the
    header names the unit) and ``<metric> vs baseline`` (text: "7.8× smaller (−87%)", "−0.3 pt"),
    ``<metric> ×`` (value ÷ baseline), ``<metric> Δ%``, ``<metric> Δ pt`` (accuracy) and
    ``<metric> better`` (True / False / None when the same within noise); then the raw row values
    under their own keys (``size_bytes``, ``latency_ms_p50_b1``, ``metric_drop_pt`` ...) for
    filtering. ``df.attrs["metrics"]`` lists the metric columns (as dicts) in display order.
    """
    rows = list(rows)
    base = baseline_of(rows)
    metrics = metric_columns(rows)
    # Made elsewhere (optim.executor: a Ray node): each row says where; measured here either way.
    remote = any(r.get("made_on") for r in rows)
    timed_remote = any(r.get("measured_on") for r in rows)
    records = []
    intervals: dict[str, dict[str, str]] = {}
    for r in rows:
        slower, larger = _flags(r, base)
        slower = slower and not r.get("runtime_mismatch")  # its own flag says why its latency compares nothing
        flags = [t for t, on in (("⚠ slower than parent", slower), ("⚠ larger than parent", larger)) if on]
        if _ok(r) and noise.stability_note(r):
            flags.append("⚠ unstable timing")
        flags += [label for label, applies in TECHNIQUE_FLAGS if applies(r)]
        if _ok(r) and base is not None and (r.get("measured_on") or "") != (base.get("measured_on") or ""):
            flags.append(OTHER_NODE_FLAG)
        rec: dict[str, Any] = {
            "ID": r.get("candidate_id", ""),
            "Recipe": r.get("recipe_title") or r.get("recipe", ""),
            "Family": r.get("family", ""),
            "Status": r.get("status", "ok"),
            "Pareto": bool(r.get("pareto")) if _ok(r) else False,
            "Flags": "; ".join(flags),
            "Error": r.get("error") or "",
        }
        if remote:
            rec["Made on"] = r.get("made_on") or ("this machine" if r is base else "")
        if timed_remote:
            rec["Measured on"] = r.get("measured_on") or ("this machine" if _ok(r) else "")
        for m in metrics:
            v = _num(r.get(m.key)) if _ok(r) else float("nan")
            rec[m.header] = v / m.scale
            if m.delta == "none":
                continue
            # a figure timed on another node: against the baseline timed beside it there
            d = delta(m, v, noise.reference_value(r, base, m.key)) if r is not base else Delta(text="baseline")
            verdict = noise.metric_verdict(r, base, m.key) if r is not base and _ok(r) else None
            if verdict is not None:  # timed figures: only what the intervals support
                d.text, d.better = verdict.text, verdict.better
                if verdict.interval:
                    intervals.setdefault(str(r.get("candidate_id", "")), {})[m.vs_col] = verdict.interval
            if r is base and not math.isnan(v):
                d.ratio, d.pct, d.points, d.diff = 1.0, 0.0, 0.0, 0.0
            rec[m.vs_col] = d.text if not math.isnan(v) else ""
            if m.delta == "points":
                rec[m.pt_col] = d.points
            else:
                rec[m.ratio_col] = d.ratio
                rec[m.pct_col] = d.pct
            rec[m.better_col] = d.better
        rec["slower_than_parent"] = slower
        rec["larger_than_parent"] = larger
        for key in ("candidate_id", "metric_name", "metric_value", "size_bytes", "size_bytes_gzip", "macs",
                    "latency_ms_p50_b1", "latency_ms_p50_bN", "energy_j_per_1k", "throughput_sps", "energy_method"):
            rec[key] = r.get(key) if key in ("candidate_id", "metric_name", "energy_method") else (
                _num(r.get(key)) if _ok(r) else float("nan"))
        b_metric = _num(base.get("metric_value")) if base else float("nan")
        rec["metric_drop_pt"] = (b_metric - rec["metric_value"]) * 100.0
        records.append(rec)
    # Everything else a row measured (device profiles, catalog estimates, technique facts such as
    # weight_bits or kept features) follows under its own key, for "every measured column".
    known = {m.key for m in metrics} | set(records[0] if records else ()) | _NOT_EXTRA
    extra = [k for k in dict.fromkeys(k for r in rows for k in r)
             if k not in known and any(isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)
                                       for r in rows)]
    for rec, r in zip(records, rows):
        for k in extra:
            rec[k] = _num(r.get(k)) if _ok(r) else float("nan")
    df = pd.DataFrame.from_records(records)
    if df.empty:
        df = pd.DataFrame(columns=ID_COLUMNS + ["Error"])
    df.attrs["metrics"] = [asdict(m) for m in metrics]
    df.attrs["extra"] = extra
    df.attrs["intervals"] = intervals  # candidate → {delta column: "95% CI …"}, shown on hover
    return df


def metrics_of(df: pd.DataFrame) -> list[MetricColumn]:
    """The MetricColumn list a table was built with."""
    return [MetricColumn(**m) for m in df.attrs.get("metrics", [])]


def display_columns(df: pd.DataFrame, groups: Iterable[str] = ("main",), *, keys: Sequence[str] | None = None,
                    id_columns: Sequence[str] = ID_COLUMNS) -> list[str]:
    """The columns a person reads: identity, then each metric's value and its ``vs baseline`` text.

    ``groups`` picks metric groups ("main", "more"); ``keys`` (result keys) picks metrics instead.
    """
    groups = set(groups)
    cols = [c for c in id_columns if c in df.columns]
    metrics = metrics_of(df)
    if keys is not None:
        metrics = sorted((m for m in metrics if m.key in keys), key=lambda m: list(keys).index(m.key))
    for m in metrics:
        if keys is not None or m.group in groups:
            cols.append(m.header)
            if m.vs_col in df.columns:
                cols.append(m.vs_col)
    if "more" in groups and keys is None:
        cols += [k for k in df.attrs.get("extra", []) if k in df.columns]
    if "Error" in df.columns and (df["Error"].astype(str) != "").any():
        cols.append("Error")
    return cols


# --- constraints ----------------------------------------------------------------------------------
def constraint_mask(df: pd.DataFrame, max_metric_drop_pt: float | None = None, max_latency_ms: float | None = None,
                    max_size_bytes: float | None = None, max_energy_j_per_1k: float | None = None) -> pd.Series:
    """True for the ok rows that meet every given limit (a missing measurement fails its limit)."""
    mask = df["Status"].eq("ok") if "Status" in df.columns else pd.Series(True, index=df.index)
    limits = (("metric_drop_pt", max_metric_drop_pt), ("latency_ms_p50_b1", max_latency_ms),
              ("size_bytes", max_size_bytes), ("energy_j_per_1k", max_energy_j_per_1k))
    for col, limit in limits:
        if limit is None:
            continue
        values = pd.to_numeric(df[col], errors="coerce") if col in df.columns else pd.Series(np.nan, index=df.index)
        # A tiny epsilon: "drop ≤ 1 pt" must keep a row whose drop prints as exactly 1.0.
        mask &= values.le(float(limit) + 1e-9)
    return mask


def apply_constraints(df: pd.DataFrame, max_metric_drop_pt: float | None = None, max_latency_ms: float | None = None,
                      max_size_bytes: float | None = None, max_energy_j_per_1k: float | None = None) -> pd.DataFrame:
    """The rows of a comparison table that meet every given limit (``None`` = no limit).

    ``max_metric_drop_pt``: the most the task metric may fall below the baseline, in points
    (accuracy 0.973 → 0.965 is a 0.8 pt drop); latency is the batch-1 median.
    """
    return df[constraint_mask(df, max_metric_drop_pt, max_latency_ms, max_size_bytes, max_energy_j_per_1k)]


def describe_constraints(c: Constraints, metric_name: str = "accuracy") -> str:
    """The limits in words: "accuracy drop ≤ 1 pt, latency ≤ 2 ms" ("no limits" when none)."""
    parts = []
    if c.max_metric_drop_pt is not None:
        label = metric_label(metric_name)
        parts.append(f"{label.lower() if label == 'Accuracy' else label} drop ≤ {c.max_metric_drop_pt:g} pt")
    if c.max_latency_ms is not None:
        parts.append(f"latency ≤ {c.max_latency_ms:g} ms")
    if c.max_size_bytes is not None:
        parts.append(f"size ≤ {format_bytes(c.max_size_bytes)}")
    if c.max_energy_j_per_1k is not None:
        parts.append(f"energy ≤ {c.max_energy_j_per_1k:g} J per 1,000 inferences")
    return ", ".join(parts) if parts else "no limits"


def format_bytes(n: float) -> str:
    """Bytes in B, KB or MB (1 KB = 1024 bytes)."""
    n = float(n)
    if n >= 1024 ** 2:
        return f"{n / 1024 ** 2:.2f} MB"
    if n >= 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n:.0f} B"


# --- recommendation and headline -----------------------------------------------------------------
_TRADE_KEYS = ("size_bytes", "latency_ms_p50_b1", "energy_j_per_1k")


def _gain(row: Mapping[str, Any], base: Mapping[str, Any]) -> float:
    """Sum of log gains vs the baseline over size, batch-1 latency and energy (equal weights)."""
    total = 0.0
    for key in _TRADE_KEYS:
        ratio = noise.gain_ratio(row, base, key)  # 1.0 where there is no measurable difference
        if ratio > 0:
            total += math.log(ratio)
    return total


def recommend(rows: Sequence[Mapping[str, Any]],
              constraints: Constraints | Mapping[str, Any] | None = None) -> tuple[str | None, str]:
    """The best trade-off that meets the limits, and one sentence saying why, with its figures.

    Among the ok rows within the limits, only those on their Pareto front (task metric up; size,
    batch-1 latency and energy down) are eligible; of those, the one with the largest combined
    gain over the baseline (sum of log ratios of size, latency and energy) wins, ties going to the
    better metric. If no variant gains anything, the baseline is recommended; if no row meets the
    limits, the answer is ``None`` and the sentence names the nearest miss.
    """
    c = Constraints.coerce(constraints)
    rows = list(rows)
    base = baseline_of(rows)
    if base is None:
        return None, "There are no results yet."
    df = comparison_table(rows)
    limits = c.as_dict()
    mask = constraint_mask(df, **limits)
    metric_name = str(base.get("metric_name") or "accuracy")
    limits_text = describe_constraints(c, metric_name)
    ok_rows = {r["candidate_id"]: r for r in rows if _ok(r)}
    feasible = [ok_rows[cid] for cid in df.loc[mask, "candidate_id"] if cid in ok_rows]
    if not feasible:
        miss = _nearest_miss(df, c)
        return None, f"No candidate meets all the limits ({limits_text}){miss}."
    # Every objective maximised: the task metric as is, the costs negated (their catalogue direction).
    sign = [1.0 if METRICS[k].higher_is_better else -1.0 for k in _TRADE_KEYS]
    # Timed figures as they read beside the baseline (a row timed on another node, scaled by its
    # ratio to the baseline timed there): raw figures from different machines do not compare.
    objectives = np.array([[_num(r.get("metric_value"))]
                           + [s * noise.on_baseline_node(r, base, k) for s, k in zip(sign, _TRADE_KEYS)]
                           for r in feasible])
    # Energy may be missing for some runtimes: drop any objective column not measured for everyone.
    keep = ~np.isnan(objectives).any(axis=0)
    on_front = pareto_front(objectives[:, keep]) if keep.any() else np.ones(len(feasible), bool)
    eligible = [r for r, on in zip(feasible, on_front) if on] or feasible
    best = max(eligible, key=lambda r: (round(_gain(r, base), 9), _num(r.get("metric_value"))))
    if best is base or _gain(best, base) <= 0:
        if any(r is base for r in feasible):
            return base.get("candidate_id", "c0"), (
                "Keep the baseline: no variant is smaller, faster or more frugal than it within the limits "
                f"({limits_text})."
            )
        best = max(feasible, key=lambda r: _num(r.get("metric_value")))
    cid = best.get("candidate_id")
    return cid, (f"{cid} ({best.get('recipe')}) is the best trade-off on the Pareto front within "
                 f"the limits ({limits_text}): {headline(base, best, figures=True)}.")


def _nearest_miss(df: pd.DataFrame, c: Constraints) -> str:
    """'; closest: c2 misses latency ≤ 0.05 ms (0.08 ms)' for the ok row missing the fewest limits."""
    checks = [("metric_drop_pt", c.max_metric_drop_pt, "metric drop", "pt"),
              ("latency_ms_p50_b1", c.max_latency_ms, "latency", "ms"),
              ("size_bytes", c.max_size_bytes, "size", "bytes"),
              ("energy_j_per_1k", c.max_energy_j_per_1k, "energy", "J/1k")]
    best: tuple[int, str] | None = None
    for _, row in df[df["Status"].eq("ok")].iterrows():
        misses = []
        for col, limit, label, unit in checks:
            v = _num(row.get(col))
            if limit is not None and not (v <= limit + 1e-9):
                shown = (
                    (format_bytes(v), format_bytes(limit))
                    if unit == "bytes"
                    else (f"{v:.3g} {unit}", f"{limit:g} {unit}")
                )
                misses.append(f"{label} ≤ {shown[1]} ({shown[0]})")
        if misses and (best is None or len(misses) < best[0]):
            best = (len(misses), f"; closest: {row['ID']} ({row['Recipe']}) misses " + " and ".join(misses))
    return best[1] if best else ""


def headline(baseline_row: Mapping[str, Any], row: Mapping[str, Any], *, figures: bool = False) -> str:
    """"7.8× smaller, 2.1× faster, −0.3 pt accuracy, −54% energy per 1,000 predictions".

    With ``figures`` each part also quotes the two values it compares.
    """
    parts = []
    for key in ("size_bytes", "latency_ms_p50_b1"):
        spec = METRICS[key]
        better, worse = spec.better_word, spec.worse_word
        v, b = _num(row.get(key)), _num(baseline_row.get(key))
        if v > 0 and b > 0:
            verdict = noise.metric_verdict(row, baseline_row, key)
            if verdict is not None:  # timed: only what the interval supports
                text = verdict.text + (" in speed" if verdict.better is None else "")
            elif abs(v - b) / b * 100 < spec.same_pct:
                text = "same size" if key == "size_bytes" else "same speed"
            else:
                text = _change(v, b, better, worse)
            if figures:
                fmt = format_bytes if key == "size_bytes" else (lambda x: f"{x:.3g} ms")
                text += f" ({fmt(v)} vs {fmt(b)}{' at batch 1' if 'latency' in key else ''})"
            parts.append(text)
    name = str(baseline_row.get("metric_name") or row.get("metric_name") or "accuracy")
    v, b = _num(row.get("metric_value")), _num(baseline_row.get("metric_value"))
    if not (math.isnan(v) or math.isnan(b)):
        if name == "accuracy":
            text = f"{_signed((v - b) * 100, 1)} pt accuracy"
            if figures:
                text += f" ({v * 100:.1f}% vs {b * 100:.1f}%)"
        else:
            text = f"{_signed(v - b, 3)} {metric_label(name)}"
            if figures:
                text += f" ({v:.3f} vs {b:.3f})"
        parts.append(text)
    v, b = _num(row.get("energy_j_per_1k")), _num(baseline_row.get("energy_j_per_1k"))
    verdict = noise.metric_verdict(row, baseline_row, "energy_j_per_1k") if v > 0 and b > 0 else None
    if verdict is not None and verdict.better is None:
        text = f"{noise.NO_DIFFERENCE} in energy"
        if figures:
            text += f" ({v:.3g} J vs {b:.3g} J per 1,000, estimate)"
        parts.append(text)
    elif v > 0 and b > 0:  # 0 J is no reading (nothing draws zero power), never "−100% energy"
        ratio = _num(row.get("energy_ratio"))
        pct = (ratio - 1) * 100 if verdict is not None and ratio > 0 else (v - b) / b * 100
        text = f"{_signed(pct, 0)}% energy per 1,000 predictions"
        if figures:
            text += f" ({v:.3g} J vs {b:.3g} J, estimate)"
        parts.append(text)
    return ", ".join(parts)

