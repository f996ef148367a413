"""History: past runs from the store — open one in Compare, or delete it (after a confirmation)."""

from __future__ import annotations

import streamlit as st

from app import state
from app.components import tables
from app.components.text import code, md
from optim import ACTIVE_STATUSES as ACTIVE
from optim import (
    Constraints,
    OptimError,
    baseline_of,
    combine_runs,
    headline,
    jobs,
    recommend,
    runs_chart,
    runs_table,
    same_setup,
    search_runs,
)

STATUS_BADGE = {"done": "green", "partial": "orange", "running": "blue", "queued": "blue", "failed": "red",
                "cancelled": "gray"}

state.init()
st.title("History")

try:
    s = tables.store()
except OptimError as err:  # a store URL that is wrong or a server that is down (OPTIM_STORE_URL)
    st.error(err.for_dashboard())
    st.stop()
st.caption(f"Store: {code(s.label)}")  # which one (a shared server's password masked)
runs = jobs.list_runs(s, limit=100)  # runs whose process died are marked failed (and can be deleted)
if not runs:
    st.info("No runs yet: every run you start is kept here, with its results and files.")
    st.stop()


def _ask(run_id: str) -> None:
    state.set(state.CONFIRM_DELETE, run_id)


def _keep() -> None:
    state.set(state.CONFIRM_DELETE, None)


def _delete(run_id: str) -> None:
    try:
        s.delete_run(run_id)
    except KeyError:
        pass  # already gone (another tab)
    for key in (state.SELECTED_RUN, state.ACTIVE_RUN):
        if state.get(key) == run_id:
            state.set(key, None)
    state.set(state.CONFIRM_DELETE, None)
    st.toast(f"Deleted run {run_id}.")


def _best(run: dict) -> str:
    if not run.get("n_rows"):
        return "no results"
    rows = tables.rows_of(run)
    cid, _ = recommend(rows, Constraints(**state.get(state.LIMITS)))
    row = next((r for r in rows if r.get("candidate_id") == cid), None)
    if row is None:
        return "none within your limits"
    base = baseline_of(rows)
    return f"{md(cid)} {code(row.get('recipe'))}" + ("" if row is base else f" — {md(headline(base, row))}")


def compare_runs(runs: list[dict]) -> None:
    """Runs of the same model and data in one table and one chart (the first run picked is the
    baseline every delta is against)."""
    with_rows = {r["id"]: r for r in runs if r["n_rows"] and r["status"] not in ACTIVE}
    if len(with_rows) < 2:
        return
    with st.expander("Compare runs of the same model and data", expanded=bool(state.get(state.COMPARE_RUNS))):
        chosen = [rid for rid in state.get(state.COMPARE_RUNS) if rid in with_rows]
        # Once a run is picked, only runs of the same model, data, target and task are offered.
        setup = same_setup(with_rows[chosen[0]]) if chosen else None  # once, not once per run
        options = [rid for rid, r in with_rows.items() if setup is None or same_setup(r) == setup]
        st.session_state[state.COMPARE_RUNS] = chosen
        chosen = st.multiselect(
            "Runs",
            options,
            key=state.COMPARE_RUNS,
            format_func=lambda rid: tables.run_title(with_rows[rid]),
            placeholder="pick two or more runs",
            help="Only runs of the same model and data (and target) can be compared.",
        )
        if len(chosen) < 2:
            st.caption("Pick two or more runs: their candidates appear in one table and one chart, with the "
                       "first run's baseline as the reference.")
            return
        rows = combine_runs([(rid, tables.rows_of(with_rows[rid])) for rid in chosen])
        df = runs_table(rows)
        tables.comparison(df)
        fig = runs_chart(rows)
        if fig is not None:
            from app.components import charts as ui_charts

            ui_charts.show(fig, key="runs_chart")
        st.caption(f"{len(df)} candidates from {len(chosen)} runs; ids are run/candidate; deltas are against the "
                   f"baseline of run {chosen[0]}. Timings from different runs include the machine's load at "
                   "the time: compare them with care.")


compare_runs(runs)  # every run, whatever the search below shows

# --- search by name, notes, tags, model, data or recipe -------------------------------------------
all_tags = sorted({t for r in runs for t in r.get("tags") or []})
q_col, t_col = st.columns([3, 2])
query = q_col.text_input("Search runs", key=state.RUN_SEARCH, icon=":material/search:",
                         placeholder="name, notes, model, data, recipe…")
tag_filter = t_col.multiselect("Tags", all_tags, key=state.RUN_TAGS, placeholder="Any tag",
                               disabled=not all_tags, help="Only runs carrying every tag picked.")
total = len(runs)
runs = search_runs(runs, query or "", tag_filter)
if not runs:
    st.info(f"No run of {total} matches the search.")
    st.stop()


def _describe(run_id: str) -> None:
    tags = st.session_state.get(state.widget_key(state.RUN_TAG_TEXT, run_id), "")
    s.describe_run(run_id, name=st.session_state.get(state.widget_key(state.RUN_NAME, run_id), ""),
                   notes=st.session_state.get(state.widget_key(state.RUN_NOTES, run_id), ""),
                   tags=tags.split(","))
    st.toast(f"Saved the name, notes and tags of run {run_id}.")


st.caption(f"{len(runs)} of {total} run(s), newest first. “Best” is the candidate the Compare page recommends "
           "within your current limits.")
session_names = state.get(state.UPLOAD_NAMES)
confirm = state.get(state.CONFIRM_DELETE)
for run in runs:
    spec = run.get("spec") or {}
    names = {**(spec.get("labels") or {}), **session_names}
    with st.container(border=True):
        left, right = st.columns([5, 1.2])
        title = (
            run.get("name")
            or f"{tables.short_ref(spec.get('model'), names)} on {tables.short_ref(spec.get('data'), names)}"
        )
        left.markdown(f":{STATUS_BADGE.get(run['status'], 'gray')}-badge[{run['status']}] "
                      f"**{tables.when(run['created'])}** · {md(title)} · {run['n_rows']} row(s)  \n"
                      f"Model {code(tables.short_ref(spec.get('model'), names))} · data "
                      f"{code(tables.short_ref(spec.get('data'), names))}"
                      f" · recipes: {', '.join(code(r) for r in spec.get('recipes') or []) or '—'}  \n"
                      f"Best: {_best(run)}")
        if run["status"] == "queued":
            left.caption(md(jobs.queue_position(s, run["id"]).describe()))
        elif run["status"] == "partial":
            variants = [r for r in tables.rows_of(run) if r.get("candidate_id") != "c0"]
            failed = sum(r.get("status") != "ok" for r in variants)
            left.caption(f"Finished — {failed} of {len(variants)} variant(s) failed (their errors are on Compare).")
        if run.get("error"):
            left.caption(f"Error: {md(run['error'])}")
        if run.get("tags") or run.get("notes"):
            left.markdown(" ".join(f":gray-badge[{md(t)}]" for t in run.get("tags") or [])
                          + (f"  \n{md(run['notes'])}" if run.get("notes") else ""))
        with (left.expander("Name, notes and tags", icon=":material/edit_note:"),
              st.form(key=state.widget_key(state.RUN_FORM, run["id"]), border=False)):
            st.text_input("Name", value=run.get("name") or "", key=state.widget_key(state.RUN_NAME, run["id"]),
                          max_chars=120)
            st.text_area("Notes", value=run.get("notes") or "", key=state.widget_key(state.RUN_NOTES, run["id"]),
                         max_chars=5000, height=80)
            st.text_input("Tags (separated by commas)", value=", ".join(run.get("tags") or []),
                          key=state.widget_key(state.RUN_TAG_TEXT, run["id"]))
            st.form_submit_button("Save", on_click=_describe, args=(run["id"],), icon=":material/save:")
        if right.button("Open", key=state.widget_key(state.OPEN_RUN, run["id"]), disabled=not run["n_rows"],
                        type="primary", width="stretch", help="Show this run on the Compare page."):
            state.select_run(run["id"])
            st.switch_page("app_pages/compare.py")
        busy = run["status"] in ACTIVE
        right.button("Delete", key=state.widget_key(state.DELETE_RUN, run["id"]), on_click=_ask, args=(run["id"],),
                     disabled=busy, width="stretch",
                     help="Cancel the run first." if busy else "Delete this run and its files.")
        if busy:
            right.button("Cancel", key=state.widget_key(state.CANCEL, run["id"]), on_click=jobs.cancel,
                         args=(s, run["id"]), disabled=run["cancel_requested"], width="stretch",
                         help="Cancel requested: it stops at its next check." if run["cancel_requested"] else
                         "A queued run leaves the queue; a running one stops after its current step.")
        if confirm == run["id"]:
            st.warning(f"Delete run {run['id']} ({md(title)}) and its files? This cannot be undone.")
            yes, no, _ = st.columns([1, 1, 4])
            yes.button("Yes, delete", key=state.DELETE_YES, on_click=_delete, args=(run["id"],), type="secondary",
                       icon=":material/delete_forever:")
            no.button("Keep it", key=state.DELETE_NO, on_click=_keep, type="primary")
