"""What counts as a measured difference — the one place that rule lives.

Timed figures (latency, throughput, energy) come with a 95% bootstrap confidence interval
(:mod:`optim.evaluation.interleave`). A ratio whose interval includes 1 is reported as
**"no measurable difference"** (the interval goes in the hover text), never as a number; so is
a measurable change smaller than :data:`SAME_PCT` percent, which no reader should act on. The
comparison table, the recommendation, the headline, the report and the dashboard all call
:func:`ratio_verdict`, so a "400× faster" from one noisy window cannot be printed anywhere.

A row is *unstable* when its per-round medians vary by more than :data:`STABLE_CV`; the machine
was *busy* when other processes used more than :data:`BUSY_LOAD_PCT` percent of its CPU while
candidates were timed. Both are shown as warnings next to the figures they affect.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from optim.evaluation.catalogue import METRICS


def baseline_of(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The baseline row: candidate ``c0`` (or the row whose recipe is ``baseline``), else the first."""
    for r in rows:
        if r.get("candidate_id") == "c0" or r.get("recipe") == "baseline":
            return r
    return rows[0] if rows else None


#: Confidence level of every interval.
CONFIDENCE = 0.95
#: Bootstrap resamples: enough for stable 2.5% / 97.5% percentiles, cheap for ~10 rounds.
BOOTSTRAP_RESAMPLES = 2000
#: A measurable change smaller than this (percent) is still reported as no measurable difference.
SAME_PCT = 3.0
#: Coefficient of variation of per-round medians above which a row's timing is unstable.
STABLE_CV = 0.15
#: Other processes' share of the machine's CPU (percent) above which it counts as busy.
BUSY_LOAD_PCT = 25.0
NO_DIFFERENCE = "no measurable difference"

#: (ratio column, CI columns, what a value > 1 means) for every timed ratio a row can carry.
#: ``speedup_*`` is baseline ÷ candidate latency (> 1 faster); ``energy_ratio`` is candidate ÷
#: baseline energy (< 1 less energy).
RATIO_KEYS = ("speedup_b1", "speedup_bN", "energy_ratio")


def ci_cols(key: str) -> tuple[str, str]:
    """The interval columns of a figure: ``<key>_ci_lo``, ``<key>_ci_hi``."""
    return f"{key}_ci_lo", f"{key}_ci_hi"


# --- statistics ---------------------------------------------------------------------------------
def bootstrap(samples: np.ndarray, stat: Callable[[np.ndarray], np.ndarray], *, seed: int = 0,
              resamples: int = BOOTSTRAP_RESAMPLES, level: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat`` over the first axis of ``samples`` (rounds).

    ``stat`` gets an array of shape ``(resamples, n, ...)`` and returns ``(resamples,)``.
    With fewer than 2 rounds the interval is unknown: (NaN, NaN).
    """
    x = np.asarray(samples, dtype=float)
    n = len(x)
    if n < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(int(resamples), n))
    values = np.asarray(stat(x[idx]), dtype=float)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.nanpercentile(values, [100 * alpha, 100 * (1 - alpha)])
    return float(lo), float(hi)


def cv(values: Sequence[float]) -> float:
    """Coefficient of variation (sample std ÷ mean); NaN for fewer than 2 values."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) < 2 or v.mean() <= 0:
        return float("nan")
    return float(v.std(ddof=1) / v.mean())


# --- the rule ------------------------------------------------------------------------------------
def _num(value: Any) -> float:
    if value is None or isinstance(value, (bool, str)):
        return float("nan")
    try:
        f = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return f if math.isfinite(f) else float("nan")


def measurable(point: float, lo: float, hi: float) -> bool | None:
    """True when the interval excludes 1 and the change is at least :data:`SAME_PCT` percent;
    False when it does not; None when there is no interval (a single measurement)."""
    point, lo, hi = _num(point), _num(lo), _num(hi)
    if math.isnan(point):
        return None
    if math.isnan(lo) or math.isnan(hi):
        return None
    if lo <= 1.0 <= hi:
        return False
    return abs(point - 1.0) * 100.0 >= SAME_PCT


@dataclass(frozen=True)
class Verdict:
    """How one ratio of a row reads: text for a cell/headline and the interval for its hover."""

    text: str            # "2.1× faster" or "no measurable difference"
    better: bool | None  # True better, False worse, None no measurable difference / unknown
    interval: str        # "95% CI 1.8×–2.4× (12 rounds)"; "" when unknown
    measured: bool       # False when there was no interval (one-shot measurement: point only)


def interval_text(lo: float, hi: float) -> str:
    lo, hi = _num(lo), _num(hi)
    if math.isnan(lo) or math.isnan(hi):
        return ""
    return f"{CONFIDENCE:.0%} CI {_fmt(lo)}×–{_fmt(hi)}×"


def _fmt(x: float) -> str:
    return f"{x:.3g}" if x < 100 else f"{x:,.0f}"


def ratio_verdict(row: Mapping[str, Any], key: str) -> Verdict | None:
    """The verdict on ratio ``key`` of ``row`` (``speedup_b1``, ``speedup_bN``, ``energy_ratio``).

    None when the row has no such ratio (the baseline, a failed row, an old run). A ratio with no
    interval (measured once, not interleaved) is stated with its number only if it is beyond
    :data:`SAME_PCT`; otherwise "no measurable difference".
    """
    point = _num(row.get(key))
    if math.isnan(point) or point <= 0:
        return None
    lo, hi = (_num(row.get(c)) for c in ci_cols(key))
    ok = measurable(point, lo, hi)
    hover = interval_text(lo, hi)
    rounds = row.get("latency_rounds") if key.startswith("speedup") else row.get("energy_windows")
    if hover and rounds:
        hover += f" over {int(rounds)} interleaved {'rounds' if key.startswith('speedup') else 'windows'}"
    if ok is None:  # no interval: judge the point alone against the same threshold
        ok = abs(point - 1.0) * 100.0 >= SAME_PCT
        measured = False
    else:
        measured = True
    if not ok:
        return Verdict(NO_DIFFERENCE, None, hover, measured)
    if key.startswith("speedup"):
        better = point > 1.0
        factor = point if better else 1.0 / point
        word = "faster" if better else "slower"
    else:  # energy_ratio: candidate ÷ baseline
        better = point < 1.0
        factor = 1.0 / point if better else point
        word = "less energy" if better else "more energy"
    text = (f"{_fmt(factor)}× {word}" if factor >= 1.1
            else f"{abs(point - 1.0) * 100 if key == 'energy_ratio' else abs(1.0 / point - 1.0) * 100:.0f}% {word}")
    return Verdict(text, better, hover, measured)


def stability_note(row: Mapping[str, Any]) -> str:
    """Why a row's timing is unstable ("" when it is stable or unknown)."""
    if row.get("measurement_stable") is not False:
        return ""
    parts = []
    c = _num(row.get("latency_cv"))
    if not math.isnan(c):
        parts.append(f"per-round medians varied {c:.0%} (stable ≤ {STABLE_CV:.0%})")
    load = _num(row.get("load_other_cpu_pct"))
    if not math.isnan(load) and load > BUSY_LOAD_PCT:
        parts.append(f"other programs used {load:.0f}% of the CPU")
    return "unstable timing: " + ("; ".join(parts) if parts else "rounds disagreed")


def load_warning(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """A warning when the machine was busy while the rows were timed; None when it was not."""
    loads = [_num(r.get("load_other_cpu_pct")) for r in rows if r.get("status", "ok") == "ok"]
    loads = [x for x in loads if not math.isnan(x)]
    if not loads or max(loads) <= BUSY_LOAD_PCT:
        return None
    unstable = sum(1 for r in rows if r.get("measurement_stable") is False)
    text = (f"The machine was busy while these candidates were timed: other programs used up to "
            f"{max(loads):.0f}% of its CPU. Candidates were timed in interleaved rounds, so the load hit "
            "them alike and ratios with intervals still hold, but absolute latencies and energy are "
            "higher than on an idle machine")
    if unstable:
        text += f"; {unstable} row(s) are marked unstable"
    return text + ". Re-run on a quiet machine for figures to quote."


# --- hooks for the comparison table, the headline and the recommendation --------------------------
#: Figure → the ratio that judges it, and the words for its direction (better, worse): read from
#: the metric catalogue, where each timed metric declares its ``judged_by`` ratio.
_JUDGED_BY = {m.key: (m.judged_by, *m.verdict_words) for m in METRICS.values() if m.judged_by}
#: Row key of a row timed on another node than the run's baseline (``--measure-on per-node``): the
#: timing columns of the baseline copy timed beside it on that node, in the same interleaved rounds.
#: Its ratios (``speedup_b1``...) are already against that copy; raw figures compare only with it.
NODE_BASELINE = "node_baseline"


def reference_value(row: Mapping[str, Any], base: Mapping[str, Any] | None, key: str) -> Any:
    """The baseline's figure ``key`` that ``row``'s compares with: the baseline timed beside it on
    its node when it was timed elsewhere (:data:`NODE_BASELINE`), else the run's baseline's."""
    node = row.get(NODE_BASELINE)
    if isinstance(node, Mapping) and key in node:
        return node[key]
    return base.get(key) if base is not None else None


def on_baseline_node(row: Mapping[str, Any], base: Mapping[str, Any] | None, key: str) -> float:
    """``row``'s figure ``key`` as it reads beside the run's baseline: a figure timed on another node
    is scaled by the baseline's ÷ the baseline copy's timed beside it there (its ratio to its
    same-node parent, in the baseline's units); any other figure as it is. For comparisons across
    rows (Pareto front, recommendation): raw latencies from different machines do not compare."""
    v = _num(row.get(key))
    node = row.get(NODE_BASELINE)
    if not isinstance(node, Mapping) or key not in node:
        return v
    b, nb = _num(base.get(key)) if base is not None else math.nan, _num(node.get(key))
    return v * b / nb if b > 0 and nb > 0 else math.nan


def metric_verdict(row: Mapping[str, Any], base: Mapping[str, Any] | None, key: str) -> Verdict | None:
    """The verdict on figure ``key`` of ``row`` against the baseline, for timed figures only.

    Latency p50, throughput, energy and CO₂ are judged by their interleaved ratio and its
    interval; any other figure with an interval (latency p95) counts as no measurable difference
    when its interval overlaps the baseline's. None: not a timed figure, or nothing to judge by
    (the caller states the point difference, as for sizes and accuracy).
    """
    if key in _JUDGED_BY:
        ratio_key, good, bad = _JUDGED_BY[key]
        v = ratio_verdict(row, ratio_key)
        if v is None or v.better is None:
            return v
        text = v.text.replace("faster", good).replace("slower", bad) if ratio_key.startswith("speedup") else \
            v.text.replace("less energy", good).replace("more energy", bad)
        return Verdict(text, v.better, v.interval, v.measured)
    lo_col, hi_col = ci_cols(key)
    if base is None or lo_col not in row:
        return None
    # against the baseline timed on the row's node (per-node timing), else the run's baseline
    lo, hi = _num(row.get(lo_col)), _num(row.get(hi_col))
    blo, bhi = _num(reference_value(row, base, lo_col)), _num(reference_value(row, base, hi_col))
    if any(math.isnan(x) for x in (lo, hi, blo, bhi)):
        return None
    if lo <= bhi and blo <= hi:
        return Verdict(NO_DIFFERENCE, None, f"{CONFIDENCE:.0%} CI {lo:.3g}–{hi:.3g} vs baseline {blo:.3g}–{bhi:.3g}",
                       True)
    return None


def gain_ratio(row: Mapping[str, Any], base: Mapping[str, Any], key: str) -> float:
    """Baseline ÷ candidate for a lower-is-better figure, as far as it was measured: 1.0 where
    there is no measurable difference, the interleaved ratio where there is one, the plain
    ratio of the two values for untimed figures (size); NaN when unknown."""
    if key in _JUDGED_BY and _JUDGED_BY[key][0] in row:
        ratio_key = _JUDGED_BY[key][0]
        v = ratio_verdict(row, ratio_key)
        if v is None:
            return float("nan")
        if v.better is None:
            return 1.0
        point = _num(row.get(ratio_key))
        return point if ratio_key.startswith("speedup") else 1.0 / point
    val, b = _num(row.get(key)), _num(reference_value(row, base, key))
    return b / val if val > 0 and b > 0 else float("nan")
