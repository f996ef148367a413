"""Compare: every candidate beside the baseline — the table, the charts, your limits and a
recommendation. Thin page: the table, the recommendation and the figures come from optim."""

from __future__ import annotations

import streamlit as st

from app import state
from app.components import charts as ui_charts
from app.components import metrics as ui_metrics
from app.components import run_panel, tables
from app.components.text import code, md
from optim import (
    MAX_PICKED,
    NO_DIFFERENCE,
    Constraints,
    axis_options,
    baseline_of,
    constraint_mask,
    energy_method,
    format_bytes,
    headline,
    lineage_text,
    load_warning,
    mark_candidates,
    metric_label,
    metric_verdict,
    recommend,
    side_by_side,
)

run = tables.run_page("Compare")

rows = tables.rows_of(run)
df = tables.table_of(run)
base = baseline_of(rows) or {}
env = run.get("environment") or {}
if env:
    st.caption(f"Measured on {env.get('cpu_model', 'this machine')} · {env.get('threads', '?')} thread(s) · "
               f"torch {env.get('torch', '?')} · onnxruntime {env.get('onnxruntime', '?')}")
quick = run_panel.measurement_note(run.get("spec") or {})
if quick:
    st.caption(quick)
busy = load_warning(rows)
if busy:
    st.warning(busy, icon=":material/warning:")
if run["status"] in ("queued", "running"):
    st.info(f"This run is still going: {run['n_rows']} candidate(s) measured so far. New rows appear when you refresh.")
    st.button("Refresh", key="compare_refresh")
elif run["status"] == "failed" and run.get("error"):
    st.warning(f"The run failed: {md(run['error'])} — the rows it finished are shown.")
elif run["status"] == "cancelled":
    st.warning("The run was cancelled: the rows it finished are shown.")

# --- limits -------------------------------------------------------------------------------------
metric_name = str(base.get("metric_name") or "accuracy")
limits = dict(state.get(state.LIMITS))
with st.container(border=True):
    st.markdown("**Your limits** — leave a box empty for no limit")
    cols = st.columns(4)
    drop = cols[0].number_input(
        f"Max {metric_label(metric_name).replace('Accuracy', 'accuracy')} drop (pt)",
        min_value=0.0,
        step=0.1,
        value=limits.get("max_metric_drop_pt"),
        placeholder="no limit",
        format="%.2f",
        key=state.widget_key(state.LIMIT, "max_metric_drop_pt"),
        help="How far the task metric may fall below the baseline, in points "
        "(accuracy 97.2% → 96.4% is a 0.8 pt drop; for R², 0.01 is 1 pt).",
    )
    latency = cols[1].number_input("Max latency, batch 1 (ms)", min_value=0.0, step=0.01, format="%.3f",
                                   value=limits.get("max_latency_ms"), placeholder="no limit",
                                   key=state.widget_key(state.LIMIT, "max_latency_ms"),
                                   help="Median latency of one prediction on this machine.")
    size_b = limits.get("max_size_bytes")
    size_kb = cols[2].number_input("Max size (KB)", min_value=0.0, step=10.0, format="%.1f",
                                   value=None if size_b is None else size_b / 1024, placeholder="no limit",
                                   key=state.widget_key(state.LIMIT, "max_size_kb"),
                                   help="Size of the model file on disk (1 KB = 1,024 bytes).")
    energy = cols[3].number_input("Max energy (J / 1,000 predictions)", min_value=0.0, step=0.1, format="%.3f",
                                  value=limits.get("max_energy_j_per_1k"), placeholder="no limit",
                                  key=state.widget_key(state.LIMIT, "max_energy_j_per_1k"),
                                  help="CodeCarbon estimate per 1,000 predictions.")
limits = {"max_metric_drop_pt": drop, "max_latency_ms": latency,
          "max_size_bytes": None if size_kb is None else size_kb * 1024, "max_energy_j_per_1k": energy}
state.set(state.LIMITS, limits)
constraints = Constraints(**limits)

# --- recommendation -------------------------------------------------------------------------------
pick, reason = recommend(rows, constraints)
pick_row = next((r for r in rows if r.get("candidate_id") == pick), None)
if pick_row is not None and pick_row is not base:
    st.success(f"**Recommended: {md(pick)} · {code(pick_row.get('recipe'))}** — {md(headline(base, pick_row))}")
    st.caption(reason)

    def _pct(key: str) -> str | None:
        v, b = pick_row.get(key), base.get(key)
        if v is None or not b:
            return None
        verdict = metric_verdict(pick_row, base, key)
        if verdict is not None:  # timed figures: no number where the interval includes no change
            return None if verdict.better is None else f"{(v - b) / b * 100:+.0f}%"
        return f"{(v - b) / b * 100:+.0f}%"

    task = None
    if pick_row.get("metric_value") is not None and base.get("metric_value") is not None:
        if metric_name == "accuracy":
            task = dict(label="Accuracy", value=f"{pick_row['metric_value'] * 100:.1f}%",
                        delta=f"{(pick_row['metric_value'] - base['metric_value']) * 100:+.1f} pt")
        else:
            task = dict(label=metric_label(metric_name), value=f"{pick_row['metric_value']:.3f}",
                        delta=f"{pick_row['metric_value'] - base['metric_value']:+.3f}")
    energy_j = pick_row.get("energy_j_per_1k")
    ui_metrics.metric_row([
        task,
        dict(label="Size", value=format_bytes(pick_row["size_bytes"]), delta=_pct("size_bytes"),
             delta_color="inverse") if pick_row.get("size_bytes") else None,
        dict(label="Latency (batch 1)", value=f"{pick_row['latency_ms_p50_b1']:.3g} ms",
             delta=_pct("latency_ms_p50_b1"), delta_color="inverse") if pick_row.get("latency_ms_p50_b1") else None,
        # NaN: not measured
        dict(label="Energy / 1,000 (estimate)", value=f"{energy_j:.3g} J", delta=_pct("energy_j_per_1k"),
             delta_color="inverse") if energy_j is not None and float(energy_j) >= 0 else None,
    ], key="recommended_figures")
elif pick_row is not None:
    st.info(f"**Recommended: keep the baseline ({pick}).** {reason}")
else:
    st.warning(reason)

# --- the table --------------------------------------------------------------------------------------
# One toggle per row: side by side, the first label was cut at 900 px.
only_within = st.toggle("Only candidates within the limits", value=True, key=state.ONLY_WITHIN)
more = st.toggle("Every measured column", value=False, key=state.MORE_COLUMNS)
within = constraint_mask(df, **limits)
ok = df["Status"].eq("ok")
# The baseline stays as the reference and failed rows stay with their error.
mask = (within | df["ID"].eq(base.get("candidate_id", "c0")) | ~ok) if only_within else None
tables.comparison(df, recommended=pick, more=more, mask=mask)
hidden = df.loc[ok & ~within & ~df["ID"].eq(base.get("candidate_id", "c0")), "ID"].tolist()
notes = [f"{int((ok & within).sum())} of {int(ok.sum())} measured candidates meet your limits"
         + (f" ({'hidden' if only_within else 'outside'}: {', '.join(hidden)})" if hidden else "") + "."]
notes.append("Deltas are against the baseline: green is better, red is worse; ★ = on the run's Pareto front; "
             "⚠ = slower or larger than the model it was made from.")
notes.append(f"Energy is a CodeCarbon estimate — {energy_method(rows)}.")
notes.append(f"Candidates were timed together in interleaved rounds; a speed or energy change whose 95% interval "
             f"includes no change reads “{NO_DIFFERENCE}”.")
st.caption(" ".join(notes))
intervals = df.attrs.get("intervals") or {}
if intervals:  # st.dataframe shows no per-cell hover text: the intervals are listed here instead
    with st.expander("95% intervals of the timed figures"):
        st.markdown(
            "\n".join(
                f"- **{cid}**: "
                + "; ".join(
                    f"{col.removesuffix(' vs baseline')} {text.removeprefix('95% CI ')}" for col, text in cols.items()
                )
                for cid, cols in intervals.items()
            )
        )

# --- picked candidates side by side ---------------------------------------------------------------
by_id = {r.get("candidate_id"): r for r in rows}
ids = df["ID"].tolist()
# A link or an earlier run may name candidates this run does not have: keep only the known ones.
st.session_state[state.PICKED] = [c for c in st.session_state.get(state.PICKED) or [] if c in ids][:MAX_PICKED]
picked = st.multiselect(f"Pick up to {MAX_PICKED} candidates to see side by side", ids, key=state.PICKED,
                        max_selections=MAX_PICKED, placeholder="e.g. the recommended one and the smallest",
                        format_func=lambda c: f"{c} · {by_id.get(c, {}).get('recipe')}",
                        help="Every metric, the recipe's settings, lineage and flags, one column each; "
                             "the picked points are ringed (purple squares) on the Pareto chart.")
if picked:
    with st.container(key="picked_view"):
        sbs = side_by_side(rows, picked)
        st.dataframe(sbs, width="stretch", key="picked_table", height=min(35 * 30, 35 * (len(sbs) + 1) + 3))
        for col, cid in zip(st.columns(len(picked)), picked):
            r = by_id.get(cid, {})
            with col.container(border=True):
                st.markdown(f"**{md(cid)}** · {code(r.get('recipe'))}")
                st.caption(f"{md(str(r.get('family')))} · status {md(str(r.get('status')))}"
                           + (" · on the Pareto front" if r.get("pareto") else ""))
                st.markdown("  \n".join(f"{n}. {code(line)}" for n, line in enumerate(lineage_text(r), 1)))
                flags = tables.table_of(run).set_index("ID").loc[cid, "Flags"]
                if flags:
                    st.warning(md(flags))
                if r.get("error"):
                    st.error(md(str(r["error"])))
                if r.get("details"):
                    with st.expander("What the technique reported"):
                        st.json(r["details"], expanded=False)

# --- charts -------------------------------------------------------------------------------------------
shown_ids = tuple(df.loc[mask, "ID"]) if mask is not None else None  # the limits filter every chart too
names = ui_charts.available(run)  # tabs of the whole run: a limit empties a chart, it does not drop its tab
if names:
    # Only the open tab is drawn: switching tabs or axes re-serialises one figure, not all of them.
    tabs = st.tabs([ui_charts.titles()[n] for n in names], key=state.CHART_TAB, on_change="rerun")
    for tab, name in zip(tabs, names):
        if not tab.open:
            continue
        with tab:
            if name == "pareto":
                options = axis_options(rows)
                keys = list(options.values())
                if st.session_state.get(state.PARETO_X) not in keys:
                    st.session_state[state.PARETO_X] = keys[0]
                x = st.selectbox("Plot the task metric against", keys, key=state.PARETO_X,
                                 format_func={v: k for k, v in options.items()}.get)
                fig = mark_candidates(ui_charts.figure(run, "pareto", x=x, highlight=pick, keep=shown_ids), picked)
                if fig is None:
                    st.info("No candidate within your limits has data for this chart: loosen the limits, or show "
                            "every candidate.")
                else:
                    ui_charts.show(fig, key=f"chart_pareto_{x}")
                    st.caption("Filled markers are on the Pareto front of these two axes (the dotted step line); "
                               "the star is the baseline, the green ring the recommended candidate.")
            else:
                fig = ui_charts.figure(run, name, keep=shown_ids)
                if fig is None:
                    st.info("Too few candidates within your limits for this chart: loosen the limits, or show "
                            "every candidate.")
                else:
                    ui_charts.show(fig, key=f"chart_{name}")
