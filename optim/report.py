"""A one-page, self-contained HTML summary of a run for stakeholders.

What was tried, the recommended candidate and why, the headline gains, the key charts and the
table, the environment it was measured on. Plotly's JavaScript is embedded (not fetched from a
CDN), so the file opens offline, in an e-mail attachment or an air-gapped review.
"""

from __future__ import annotations

import datetime
import html
from collections.abc import Mapping, Sequence
from typing import Any

from optim.compare import (
    Constraints,
    baseline_of,
    comparison_table,
    describe_constraints,
    energy_method,
    headline,
    metrics_of,
    recommend,
)
from optim.evaluation import noise
from optim.evaluation.interleave import ENERGY_MIN_WINDOW_S
from optim.presentation import styled

_CSS = """
:root { --ink:#111827; --muted:#6b7280; --line:#e5e7eb; --accent:#2563eb; --good:#15803d; --bad:#b91c1c; }
* { box-sizing: border-box; }
body { font-family: Inter, "Segoe UI", Helvetica, Arial, sans-serif; color: var(--ink); margin: 0;
       background: #f9fafb; }
main { max-width: 1100px; margin: 0 auto; padding: 32px 28px 48px; background: #fff; }
h1 { font-size: 28px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 32px 0 10px; border-bottom: 1px solid var(--line); padding-bottom: 6px; }
.sub { color: var(--muted); margin: 0 0 20px; }
.pick { border: 1px solid #bbf7d0; background: #f0fdf4; border-radius: 12px; padding: 18px 22px; }
.pick .label { text-transform: uppercase; letter-spacing: .06em; font-size: 12px; color: var(--good);
               font-weight: 700; }
.pick .headline { font-size: 24px; font-weight: 700; margin: 6px 0 8px; }
.pick .why { margin: 0; line-height: 1.5; }
.none { border-color: #fecaca; background: #fef2f2; }
.none .label { color: var(--bad); }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
th, td { border-bottom: 1px solid var(--line); padding: 6px 8px; text-align: left; vertical-align: top; }
th { background: #f3f4f6; font-weight: 600; }
ul.tried { margin: 0; padding-left: 20px; line-height: 1.6; }
code { background: #f3f4f6; padding: 1px 5px; border-radius: 4px; font-size: 12.5px;
       overflow-wrap: anywhere; }  /* a long recipe wraps instead of widening the page */
.note { color: var(--muted); font-size: 13px; line-height: 1.5; }
.env td:first-child { color: var(--muted); width: 220px; }
.failed { color: var(--bad); }
.warn { border: 1px solid #fde68a; background: #fffbeb; border-radius: 8px; padding: 10px 14px; font-size: 14px; }
.chart { margin: 8px 0 0; }
/* The candidates table scrolls sideways in its box; the ID, the recipe (col0, wrapped) and the task
   metric (col1) are pinned on the left with position: sticky at fixed widths, opaque over what scrolls. */
.candidates { overflow-x: auto; border: 1px solid var(--line); border-radius: 8px; }
.candidates table { font-size: 12px; width: auto; min-width: 100%; }
.candidates th.col_heading { white-space: normal; min-width: 72px; }
.candidates th.blank, .candidates th.row_heading, .candidates .col0, .candidates .col1 {
  position: sticky; z-index: 1; background: #fff; }
.candidates th.blank, .candidates th.row_heading { left: 0; width: 44px; min-width: 44px; max-width: 44px; }
.candidates .col0 { left: 44px; width: 210px; min-width: 210px; max-width: 210px; }
.candidates .col1 { left: 254px; width: 84px; min-width: 84px; max-width: 84px;
                    box-shadow: inset -2px 0 0 var(--line); }
.candidates th.blank, .candidates th.row_heading, .candidates th.col0, .candidates th.col1 { background: #f3f4f6; }
footer { color: var(--muted); font-size: 12px; margin-top: 36px; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _escaped(df: Any) -> Any:
    """The table with every text cell HTML-escaped: pandas' Styler writes cells as they are, and a
    recipe, an error or a file name is user text."""
    import pandas as pd

    out = df.copy()
    for col in out.columns:
        if not pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].map(lambda v: _e(v) if isinstance(v, str) else v)
    return out


def _when(ts: Any) -> str:
    try:
        return datetime.datetime.fromtimestamp(float(ts)).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError, OverflowError, OSError):
        return "—"


def _environment_rows(env: Mapping[str, Any]) -> list[tuple[str, str]]:
    """CPU and threads first, then every other scalar the run recorded."""
    first = ["cpu", "cpu_model", "cpu_count", "cores", "threads", "os", "platform", "python", "torch", "onnxruntime",
             "codecarbon", "device", "gpu"]
    keys = [k for k in first if k in env] + sorted(k for k in env if k not in first)
    out = []
    for k in keys:
        v = env[k]
        if isinstance(v, (dict, list)):
            if not v:
                continue
            v = ", ".join(f"{a}: {b}" for a, b in v.items()) if isinstance(v, dict) else ", ".join(map(str, v))
        out.append((k.replace("_", " "), str(v)))
    return out


def _figure_html(fig: Any) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False, "responsive": True})


def render_report_html(run: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
                       constraints: Constraints | Mapping[str, Any] | None = None, *,
                       names: Mapping[str, str] | None = None) -> str:
    """The report of ``run`` (a :meth:`optim.store.Store.run` record) and its result ``rows``.

    One self-contained HTML page: plotly.js is inlined (about 4.6 MB), nothing is fetched.
    ``names`` maps a stored model/data path to the file name its user knows (uploads are saved
    under content hashes); otherwise a path shows as its base name.
    """
    from plotly.offline import get_plotlyjs

    from optim import charts

    spec = dict(run.get("spec") or {})
    for key in ("model", "data"):
        ref = str(spec.get(key) or "")
        known = {**(spec.get("labels") or {}), **(names or {})}
        spec[key] = known.get(ref) or (ref.rsplit("/", 1)[-1] if "/" in ref else ref)
    rows = list(rows)
    base = baseline_of(rows)
    c = Constraints.coerce(constraints)
    pick, reason = recommend(rows, c) if rows else (None, "The run has no results.")
    pick_row = next((r for r in rows if r.get("candidate_id") == pick), None)
    title = run.get("name") or f"{spec.get('model', 'model')} on {spec.get('data', 'data')}"
    ok = [r for r in rows if r.get("status", "ok") == "ok"]
    failed = [r for r in rows if r.get("status", "ok") != "ok"]
    method = energy_method(rows)

    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>optim report — {_e(title)}</title><style>{_CSS}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script>",
        "</head><body><main>",
        f"<h1>Model optimization report — {_e(title)}</h1>",
        f"<p class='sub'>Run <code>{_e(run.get('id', ''))}</code> · {_e(_when(run.get('created')))} · "
        f"status {_e(run.get('status', ''))} · model <code>{_e(spec.get('model', ''))}</code> · data "
        f"<code>{_e(spec.get('data', ''))}</code></p>",
    ]
    # The answer first: what to ship and why.
    if pick_row is not None and base is not None:
        is_base = pick_row is base
        gains = "Keep the baseline" if is_base else headline(base, pick_row)
        parts += [
            "<section class='pick'><div class='label'>Recommended</div>",
            f"<div class='headline'>{_e(pick)} · <code>{_e(pick_row.get('recipe'))}</code></div>",
            f"<div class='headline' id='headline'>{_e(gains)}</div>",
            f"<p class='why'>{_e(reason)}</p></section>",
        ]
    else:
        parts += ["<section class='pick none'><div class='label'>No recommendation</div>",
                  f"<p class='why'>{_e(reason)}</p></section>"]
    busy = noise.load_warning(rows)
    if busy:
        parts.append(f"<p class='warn' id='load-warning'>⚠ {_e(busy)}</p>")
    parts.append(
        "<p class='note'>Limits used: "
        f"{_e(describe_constraints(c, str((base or {}).get('metric_name') or 'accuracy')))}. "
        "The recommendation is the candidate on the Pareto front (metric up; size, latency and energy down) "
        "with the largest combined gain over the baseline that meets them.</p>"
    )

    # What was tried.
    parts.append("<h2>What was tried</h2><ul class='tried'>")
    for r in rows:
        if r is base:
            parts.append(f"<li><b>{_e(r.get('candidate_id'))}</b> baseline</li>")
            continue
        status = r.get("status", "ok")
        extra = f" — <span class='failed'>{_e(status)}: {_e(r.get('error') or '')}</span>" if status != "ok" else ""
        gains = f": {_e(headline(base, r))}" if status == "ok" and base is not None else ""
        unstable = noise.stability_note(r) if status == "ok" else ""
        if unstable:
            gains += f" — <span class='failed'>⚠ {_e(unstable)}</span>"
        parts.append(f"<li><b>{_e(r.get('candidate_id'))}</b> <code>{_e(r.get('recipe'))}</code> "
                     f"({_e(r.get('family'))}){gains}{extra}</li>")
    parts.append(f"</ul><p class='note'>{len(ok)} candidate(s) measured, {len(failed)} failed; "
                 f"recipes asked for: {_e(', '.join(spec.get('recipes') or []) or '—')}.</p>")

    # Key charts.
    if ok:
        figs = []
        scatter = charts.pareto_scatter(rows, "latency_ms_p50_b1", highlight=pick)
        if scatter is not None:
            figs.append(scatter)
        size_scatter = charts.pareto_scatter(rows, "size_bytes", highlight=pick)
        if size_scatter is not None:
            figs.append(size_scatter)
        sens = charts.sensitivity_curves(rows)
        if sens is not None:
            figs.append(sens)
        if figs:
            parts.append("<h2>Trade-offs</h2>")
            parts += [f"<div class='chart'>{_figure_html(f)}</div>" for f in figs]

    # The table.
    if rows:
        df = _escaped(comparison_table(rows))
        parts.append("<h2>All candidates</h2>")
        keys = ("metric_value", "size_bytes", "latency_ms_p50_b1", "energy_j_per_1k")
        task = [m.header for m in metrics_of(df)[:1]]
        table = styled(df, recommended=pick, keys=keys, id_columns=("Recipe", "Pareto", "Flags"),
                       lead=("Recipe", *task))
        # The candidate, its recipe and the task metric are the table's first columns, pinned:
        # they stay in view while the rest scrolls sideways inside the box (see _CSS).
        parts.append(f"<div class='candidates'>{table.to_html()}</div>")
        parts.append(
            "<p class='note'>Deltas are against the baseline (c0): green is better, red is worse; "
            "⚠ marks a variant slower or larger than the model it was made from. Sizes in KB are 1,024 bytes; "
            "latency is the median at batch 1 with fixed threads; ★ marks the run's Pareto front. "
            "All candidates were timed together in interleaved rounds (shuffled order, after warm-up); "
            f"a speed or energy change whose {noise.CONFIDENCE:.0%} bootstrap interval includes no change "
            f"(or is under {noise.SAME_PCT:g}%) reads “{noise.NO_DIFFERENCE}” — hover a cell for its interval. "
            "The dashboard's Compare page and the exported CSV have every measured column.</p>"
        )

    # Energy and environment.
    parts.append("<h2>Energy and environment</h2>")
    parts.append(f"<p class='note'><b>Energy per 1,000 predictions is an estimate</b> (method: {_e(method)}). "
                 "CodeCarbon reads RAPL/NVML counters when it can and otherwise models CPU power from its TDP "
                 "and load; such estimates can be up to 2× off hardware counters and 40% off a wall meter, so "
                 "compare candidates with each other rather than quoting absolute joules. Power was read over "
                 f"interleaved CodeCarbon windows of at least {ENERGY_MIN_WINDOW_S:g} s per candidate (shuffled "
                 "order, right after the timing rounds); without a hardware meter the estimate is that power × "
                 "the median time per inference at batch N, so a candidate measurably faster at the same power "
                 "reads as using less energy. The ratios carry a 95% interval.</p>")
    env = dict(run.get("environment") or {})
    if "threads" not in env and spec.get("threads"):
        env["threads"] = spec["threads"]
    env_rows = _environment_rows(env)
    if env_rows:
        parts.append("<table class='env'>" + "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in env_rows)
                     + "</table>")
    parts.append(f"<footer>Generated by optim on {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} "
                 "from the run's stored results. Every figure was measured on the machine above.</footer>")
    parts.append("</main></body></html>")
    return "\n".join(parts)
