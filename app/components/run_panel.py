"""Start a run in a worker process and follow it from the store.

Everything shown comes from the store (SQLite), never from this script's memory, so a reload
or a second browser tab shows the same job. The panel refreshes itself with
``st.fragment(run_every=...)`` while the run is active, without rerunning the whole page.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import streamlit as st

from app import state

#: Seconds between refreshes of an active run's panel.
REFRESH_S = 1.0
ACTIVE = ("queued", "running")
LOG_LINES = 60


def store() -> Any:
    from optim import Store

    return Store()


def spec_from_state(recipes: list[str], *, name: str = "", **overrides: Any) -> Any:
    """The ExperimentSpec of the current model & data choice, run settings and ``recipes``."""
    from optim import ExperimentSpec

    c = state.choice()
    values: dict[str, Any] = dict(
        model=c.model, data=c.data, recipes=list(recipes), target=c.target, task=c.task, arch=c.arch,
        trust_pickle=c.trust_pickle, name=name, **{k: state.get(k) for k in state.RUN_SETTINGS},
        labels={ref: label for ref, label in state.get(state.UPLOAD_NAMES).items() if ref in (c.model, c.data)},
    )
    values.update(overrides)
    return ExperimentSpec(**values)


def start_run(recipes: list[str], *, name: str = "", **overrides: Any) -> str:
    """Validate and start the experiment in a worker process; follow it on the Run page.

    Raises the OptimError (e.g. a ConfigError naming a bad recipe setting) before any work.
    """
    from optim import start_background

    run_id = start_background(spec_from_state(recipes, name=name, **overrides), store())
    state.set(state.ACTIVE_RUN, run_id)
    state.set(state.SELECTED_RUN, run_id)
    return run_id


def followed_run(st_store: Any) -> dict[str, Any] | None:
    """The run the Run page shows: this session's run while it is active, else the newest active
    run (started from another tab, or before a reload), else this session's finished run, else
    the newest run in the store."""
    mine = None
    active = state.get(state.ACTIVE_RUN)
    if active:
        try:
            mine = st_store.run(active)
        except KeyError:  # deleted from History meanwhile
            state.set(state.ACTIVE_RUN, None)
    if mine is not None and mine["status"] in ACTIVE:
        return mine
    recent = st_store.runs(limit=20)
    for run in recent:
        if run["status"] in ACTIVE:
            return run
    return mine or (recent[0] if recent else None)


def reap_if_dead(st_store: Any, run: dict[str, Any]) -> dict[str, Any]:
    """A run marked active whose worker process is gone is recorded (and shown) as failed."""
    from optim import is_alive

    if run["status"] not in ACTIVE or not run.get("pid") or is_alive(run["pid"]):
        return run
    fresh = st_store.run(run["id"])  # the worker may have finished between the two reads
    if fresh["status"] not in ACTIVE:
        return fresh
    msg = f"the worker process (pid {run['pid']}) stopped without finishing the run; see its log below."
    st_store.update_run(run["id"], status="failed", error=msg, message=msg, finished=time.time())
    return st_store.run(run["id"])


def log_tail(st_store: Any, run_id: str, lines: int = 40) -> str:
    """The last ``lines`` of the worker's own log file ``$OPTIM_HOME/runs/<run_id>.log``."""
    path = Path(st_store.runs_dir) / f"{run_id}.log"
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log file at {path})"
    return "\n".join(text.splitlines()[-lines:]) or "(the log file is empty)"


def eta_s(run: dict[str, Any], now: float | None = None) -> float | None:
    """Seconds left: elapsed × remaining fraction / done fraction (None before any progress)."""
    p = float(run.get("progress") or 0.0)
    if run["status"] not in ACTIVE or p <= 0.0:
        return None
    elapsed = (now or time.time()) - float(run["created"])
    return max(0.0, elapsed * (1.0 - p) / p)


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def candidate_progress(st_store: Any, run_id: str) -> list[dict[str, Any]]:
    """One entry per candidate seen so far: id, recipe, step, fraction, message, status."""
    rows = {r["candidate_id"]: r for r in st_store.rows(run_id)}
    latest = st_store.latest_progress(run_id)
    recipes: dict[str, str] = {}
    for ev in st_store.events(run_id, kind="log"):
        msg = ev.get("message") or ""
        if ev.get("candidate_id") and msg.startswith("recipe "):
            recipes.setdefault(ev["candidate_id"], msg[len("recipe "):])
    ids = list(dict.fromkeys([*latest, *rows]))
    out = []
    for cid in sorted(ids, key=lambda c: int(c[1:]) if c[1:].isdigit() else 10**9):
        ev, row = latest.get(cid, {}), rows.get(cid)
        out.append({
            "candidate_id": cid,
            "recipe": (row or {}).get("recipe") or recipes.get(cid) or ("baseline" if cid == "c0" else ""),
            "step": ev.get("step") or "",
            "fraction": 1.0 if row else float(ev.get("fraction") or 0.0),
            "message": ev.get("message") or "",
            "status": (row or {}).get("status") or "running",
            "error": (row or {}).get("error") or "",
        })
    return out


def count_variants_safe(recipes: list[str]) -> int:
    """Variants ``recipes`` expand to (the baseline not counted); a bad recipe counts as one."""
    from optim import OptimError
    from optim import count_variants

    try:
        return count_variants(recipes)
    except OptimError:
        return len(recipes)


def expected_variants(run: dict[str, Any]) -> int:
    return count_variants_safe(run["spec"].get("recipes", []))


# --- drawing ----------------------------------------------------------------------------------
def render(run_id: str) -> None:
    """The run's panel; refreshes every REFRESH_S seconds while it is active."""
    s = store()
    run = reap_if_dead(s, s.run(run_id))
    every = REFRESH_S if run["status"] in ACTIVE else None
    st.fragment(_panel, run_every=every)(run_id, run["status"])


def _panel(run_id: str, status_at_start: str) -> None:
    s = store()
    try:
        run = reap_if_dead(s, s.run(run_id))
    except KeyError:
        st.warning(f"Run {run_id} no longer exists (deleted from History).")
        return
    if run["status"] != status_at_start and status_at_start in ACTIVE:
        st.rerun()  # finished: redraw the whole page once, without the auto refresh
    spec = run["spec"]
    title = run.get("name") or run_id
    st.subheader(f"Run {title}")
    st.caption(f"`{spec.get('model')}` on `{spec.get('data')}` · {len(spec.get('recipes', []))} recipe(s), "
               f"{expected_variants(run)} variant(s) + baseline · status **{run['status']}**")

    progress = float(run.get("progress") or 0.0)
    cols = st.columns(3)
    cols[0].metric("Progress", f"{progress:.0%}")
    cols[1].metric("Elapsed", fmt_s((run.get("finished") or time.time()) - float(run["created"])))
    cols[2].metric("ETA", fmt_s(eta_s(run)))
    st.progress(min(1.0, max(0.0, progress)), text=run.get("message") or run["status"])

    if run["status"] in ACTIVE:
        if run.get("cancel_requested"):
            st.info("Cancel requested: the current step stops at its next check; finished rows are kept.")
        else:
            # A callback: it runs before the (fragment) rerun the click causes, which then shows it.
            st.button("Cancel run", key=state.widget_key(state.CANCEL, run_id), type="secondary",
                      on_click=s.request_cancel, args=(run_id,),
                      help="Stops after the current step; finished candidates stay saved.")
    elif run["status"] == "failed":
        st.error(f"The run failed: {run.get('error') or 'unknown error'}")
        with st.expander("Worker log", expanded=True):
            st.code(log_tail(s, run_id), language="text")
    elif run["status"] == "cancelled":
        st.warning("The run was cancelled; the candidates that finished are kept.")
    else:
        st.success("Done.")

    st.markdown("**Candidates**")
    for c in candidate_progress(s, run_id):
        label = f"`{c['candidate_id']}` {c['recipe']}"
        if c["status"] == "ok":
            st.progress(1.0, text=f"✅ {label} — measured")
        elif c["status"] in ("failed", "cancelled"):
            st.progress(1.0, text=f"❌ {label} — {c['status']}: {c['error']}")
        else:
            st.progress(min(1.0, c["fraction"]), text=f"⏳ {label} — {c['step']} {c['message']}".strip())

    logs = s.events(run_id, kind="log")
    with st.expander(f"Log ({len(logs)} lines)", expanded=run["status"] in ACTIVE):
        lines = [time.strftime("%H:%M:%S", time.localtime(e["ts"])) + f" {e.get('candidate_id') or '  '} "
                 + e["message"] for e in logs[-LOG_LINES:]]
        st.code("\n".join(lines) or "(no log lines yet)", language="text")

    if run["status"] not in ACTIVE and s.rows(run_id):
        if st.button("Open in Compare", key=state.widget_key(state.OPEN_COMPARE, run_id), type="primary"):
            state.set(state.SELECTED_RUN, run_id)
            st.switch_page("app_pages/compare.py")
