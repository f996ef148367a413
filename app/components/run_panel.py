"""Start a run in a worker process and follow it from the store.

Everything shown comes from the store (SQLite) through ``optim.jobs``, never from this script's
memory, so a reload or a second browser tab shows the same job; this panel only reads. The
progress part refreshes itself with ``st.fragment(run_every=...)`` while the run is active, and
draws only light things (no rows parsed beyond their status, a bounded log tail).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import streamlit as st

from app import state
from app.components.metrics import metric_row
from app.components.text import code, md
from optim import ACTIVE_STATUSES, Store, jobs

#: Seconds between refreshes of an active run's live part: each refresh costs the server ~70 ms and the
#: browser ~150 ms of CPU, whatever it draws (benchmarks/polling.py), so the interval sets the cost.
REFRESH_S = 5.0
#: Seconds between refreshes of the (collapsed) log of an active run.
LOG_REFRESH_S = 15.0
ACTIVE = ACTIVE_STATUSES
LOG_LINES = 60


def store() -> Store:
    return Store()


#: What the Run settings' "Quick measurement" toggle does (its help text).
QUICK_HELP = ("Measure with short budgets (fewer timed repeats and inferences, no device profiles), as the "
              "demo does: the timing takes a fraction of a full run's and its figures are noisier. The run's "
              "results say so.")


def quick_settings() -> dict[str, Any]:
    """The RunSettings of a quick measurement: the demo preset's short budgets (declared once, in
    optim.presets)."""
    from optim import get_preset

    return dict(get_preset("demo").run_settings)


def measurement_note(spec: dict[str, Any]) -> str | None:
    """What a run's figures rest on when it measured with shorter budgets than a full run (Quick
    measurement, the demo), to say beside them; ``None`` for a full run."""
    from optim import RunSettings

    full = RunSettings.defaults()
    latency = float(spec.get("latency_budget_s", full["latency_budget_s"]))
    inferences = int(spec.get("energy_inferences", full["energy_inferences"]))
    profiles = bool(spec.get("device_profiles", full["device_profiles"]))
    if latency >= full["latency_budget_s"] and inferences >= full["energy_inferences"] and profiles:
        return None
    return (f"Quick measurement: latency from {latency:g} s of timed repeats per figure, energy over {inferences} "
            f"inferences{'' if profiles else ', no device profiles'} (a full run: {full['latency_budget_s']:g} s "
            f"and {full['energy_inferences']}); its figures are noisier than a full run's.")


def spec_from_state(recipes: list[str], *, name: str = "", **overrides: Any) -> Any:
    """The ExperimentSpec of the current model & data choice, run settings (with Quick measurement's
    budgets when it is on) and ``recipes``."""
    from optim import ExperimentSpec

    c = state.choice()
    values: dict[str, Any] = dict(
        model=c.model, data=c.data, recipes=list(recipes), target=c.target, task=c.task, arch=c.arch,
        trust_pickle=c.trust_pickle, name=name, **{k: state.get(k) for k in state.RUN_SETTINGS},
        labels={ref: label for ref, label in state.get(state.UPLOAD_NAMES).items() if ref in (c.model, c.data)},
    )
    if state.get(state.QUICK):
        values.update(quick_settings())
    values.update(overrides)
    return ExperimentSpec(**values)


def start_run(recipes: list[str], *, name: str = "", **overrides: Any) -> str:
    """Validate and start the experiment in a worker process (it queues behind a run already
    being measured); follow it on the Run page.

    Raises the OptimError (e.g. a ConfigError naming a bad recipe setting) before any work.
    """
    run_id = jobs.start_background(spec_from_state(recipes, name=name, **overrides), store())
    state.set(state.ACTIVE_RUN, run_id)
    state.set(state.SELECTED_RUN, run_id)
    return run_id


def followed_run(st_store: Store) -> dict[str, Any] | None:
    """The run the Run page shows: this session's run while it is active, else the run being
    measured, else the newest queued one (started from another tab, or before a reload), else
    this session's finished run, else the newest run in the store. Runs whose process died are
    marked failed first."""
    recent = jobs.list_runs(st_store, limit=20)
    mine = None
    active = state.get(state.ACTIVE_RUN)
    if active:
        try:
            mine = st_store.run(active)
        except KeyError:  # deleted from History meanwhile
            state.set(state.ACTIVE_RUN, None)
    if mine is not None and mine["status"] in ACTIVE:
        return mine
    for wanted in ("running", "queued"):
        for run in recent:
            if run["status"] == wanted:
                return run
    return mine or (recent[0] if recent else None)


def log_tail(st_store: Store, run_id: str, lines: int = 40) -> str:
    """The last ``lines`` of the worker's own log file ``$OPTIM_HOME/runs/<run_id>.log``."""
    path = Path(st_store.runs_dir) / f"{run_id}.log"
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log file at {path})"
    return "\n".join(text.splitlines()[-lines:]) or "(the log file is empty)"


def count_variants_safe(recipes: list[str]) -> int:
    """Variants ``recipes`` expand to (the baseline not counted); a bad recipe counts as one."""
    from optim import OptimError, count_variants

    try:
        return count_variants(recipes)
    except OptimError:
        return len(recipes)


@st.cache_data(show_spinner="Estimating how long each recipe takes…", max_entries=32)
def _estimates(recipes: tuple[str, ...], macs: float, n_rows: int, threads: int) -> list[Any]:
    from optim import calibrate, estimate_run

    return estimate_run(list(recipes), macs=macs, n_rows=n_rows, cal=calibrate(threads=threads))


def estimates(c: state.Choice, recipes: list[str]) -> list[Any]:
    """Each recipe's :class:`optim.cost.Estimate` for the model & data ``c`` on this machine
    (calibrated once by a tiny timing, cached). Raises the OptimError of a model or data that does not load."""
    from app.components import uploads

    macs = uploads.cached_model_summary(*uploads.choice_args(c)).get("macs") or 0
    n_rows = int(uploads.cached_dataset_summary(c.data, c.target, c.task)["n_rows"])
    return _estimates(tuple(recipes), float(macs), n_rows, int(state.get(state.THREADS)))


def long_run_text(est: list[Any]) -> str:
    """The warning of a run estimated above COST_WARN_S: its total and the recipe that costs most."""
    from optim import format_duration

    worst = max(est, key=lambda e: e.seconds)
    return (f"This run may take {format_duration(sum(e.seconds for e in est))}: {code(worst.recipe)} alone "
            f"{format_duration(worst.seconds)} ({md(worst.note)}). Fewer epochs or trials make it shorter.")


# --- drawing ----------------------------------------------------------------------------------
def render(run_id: str) -> None:
    """The run's panel. Only its live part (queue position or progress, one bar per candidate) is
    a fragment refreshed every REFRESH_S seconds while the run is active, and the log every
    LOG_REFRESH_S; the rest is drawn once, so following a run costs the dashboard little CPU."""
    s = store()
    try:
        run = jobs.get_run(s, run_id)
    except KeyError:
        st.warning(f"Run {run_id} no longer exists (deleted from History).")
        return
    active = run["status"] in ACTIVE
    spec = run["spec"]
    st.subheader(f"Run {md(run.get('name') or run_id)}")
    st.caption(f"{code(spec.get('model'))} on {code(spec.get('data'))} · {len(spec.get('recipes', []))} recipe(s) · "
               f"submitted at {time.strftime('%H:%M:%S', time.localtime(float(run['created'])))}")
    note = measurement_note(spec)
    if note:
        st.caption(note)
    if active:
        if run.get("cancel_requested"):
            st.info("Cancel requested: the current step stops at its next check; finished rows are kept.")
        else:
            st.button("Cancel run", key=state.widget_key(state.CANCEL, run_id), type="secondary",
                      on_click=jobs.cancel, args=(s, run_id),
                      help="Stops after the current step; finished candidates stay saved.")
    st.fragment(_live, run_every=REFRESH_S if active else None)(run_id, active)
    with st.expander("Log"):  # collapsed: the browser draws it only when opened
        st.fragment(_log, run_every=LOG_REFRESH_S if active else None)(run_id)
    if run["status"] == "failed":
        with st.expander("Worker log", expanded=True):
            st.code(log_tail(s, run_id), language="text")
    if (not active and any(r.get("status") == "ok" for r in s.rows(run_id))
            and st.button("Open in Compare", key=state.widget_key(state.OPEN_COMPARE, run_id), type="primary")):
        state.set(state.SELECTED_RUN, run_id)
        st.switch_page("app_pages/compare.py")


def outcome_box(run: dict[str, Any], counts: dict[str, int]) -> None:
    """Queued, active or finished: one box that says where the run stands, in its colour."""
    status, total = run["status"], counts["total"]
    if status == "done":
        st.success(f"Finished — all {total} variant(s) measured.", icon=":material/check_circle:")
    elif status == "partial":
        st.warning(f"Finished — {counts['failed']} of {total} variant(s) failed; their errors are below.",
                   icon=":material/warning:")
    elif status == "failed":
        st.error(f"The run failed: {md(run.get('error') or 'unknown error')}", icon=":material/error:")
    elif status == "cancelled":
        st.warning(f"Cancelled — {counts['ok']} of {total} variant(s) measured and kept, "
                   f"{counts['not_run']} not run.", icon=":material/cancel:")


def candidate_line(c: dict[str, Any]) -> None:
    """One bar per candidate: green-checked when measured, red with its error when it failed."""
    label = f"`{c['candidate_id']}` {md(c['recipe'])}" if c["candidate_id"] else md(c["recipe"])
    state_ = c["state"]
    if state_ == "ok":
        st.progress(1.0, text=f":material/check_circle: {label} — measured")
    elif state_ == "failed":
        st.error(f"{label} — failed: {md(c['error'])}", icon=":material/error:")
    elif state_ == "invalid":  # measured, but its outputs hold NaN or inf
        st.warning(f"{label} — invalid outputs: {md(c['error'])}", icon=":material/warning:")
    elif state_ in ("cancelled", "interrupted"):
        st.warning(f"{label} — {state_}" + (f": {md(c['error'])}" if c["error"] else ""), icon=":material/cancel:")
    elif state_ == "queued":
        st.progress(0.0, text=f":material/schedule: {label} — queued")
    elif state_ == "not run":
        st.progress(0.0, text=f":material/block: {label} — not run")
    else:
        st.progress(min(1.0, c["fraction"]),
                    text=f":material/hourglass_top: {label} — {md(c['step'])} {md(c['message'])}".strip())


def _live(run_id: str, was_active: bool) -> None:
    s = store()
    try:
        run = jobs.get_run(s, run_id)
    except KeyError:
        return
    if was_active and run["status"] not in ACTIVE:
        st.rerun()  # it ended: redraw the whole page once, without the auto refresh
    entries = jobs.candidates(s, run_id, run["status"])
    counts = jobs.outcome(entries)
    if run["status"] == "queued":
        st.info(f"Waiting: {md(jobs.queue_position(s, run_id).describe())}. It starts by itself when the runs "
                "ahead of it end: one measurement at a time keeps the timings honest.", icon=":material/schedule:")
    else:
        # Weighed like the ETA (each part by its estimated seconds), so the two figures agree.
        progress, _ = jobs.weighted_done(s, run)
        start = float(run.get("started") or run["created"])
        metric_row([dict(label="Progress", value=f"{progress:.0%}"),
                    dict(label="Elapsed", value=jobs.fmt_duration((run.get("finished") or time.time()) - start)),
                    dict(label="ETA", value=jobs.fmt_duration(jobs.eta_s(s, run)))])
        st.progress(min(1.0, max(0.0, progress)), text=md(run.get("message") or run["status"]))
    outcome_box(run, counts)
    st.markdown(f"**Candidates** — {counts['total']} variant(s) + baseline")
    for c in entries:
        candidate_line(c)


def _log(run_id: str) -> None:
    logs = store().events(run_id, kind="log", last=LOG_LINES)
    lines = [time.strftime("%H:%M:%S", time.localtime(e["ts"])) + f" {e.get('candidate_id') or '  '} "
             + e["message"] for e in logs]
    st.code("\n".join(lines) or "(no log lines yet)", language="text")
