"""The run picker, cached result loading and the styled comparison table.

Rows and the comparison table are cached with ``st.cache_data`` keyed by run id, row count and
the run's status/finish time (the runner rewrites rows once at the end to mark the Pareto front),
so changing an axis or a limit re-reads nothing.
"""

from __future__ import annotations

import datetime
from typing import Any

import pandas as pd
import streamlit as st

from app import state
from app.components.text import code, md

FINISHED = ("done", "partial", "cancelled", "failed")


def store() -> Any:
    from optim import Store

    return Store()


def _key(run: dict[str, Any]) -> tuple[str, int, str, str]:
    """The cache key of a run's rows: id, row count, status and finish time, plus the store file."""
    return run["id"], int(run.get("n_rows") or 0), f"{run.get('status')}:{run.get('finished')}", store().target


@st.cache_data(show_spinner=False, max_entries=64)
def _rows(run_id: str, n_rows: int, version: str, db: str) -> list[dict[str, Any]]:
    from optim import Store

    return Store(db).rows(run_id)


@st.cache_data(show_spinner=False, max_entries=64)
def _table(run_id: str, n_rows: int, version: str, db: str) -> pd.DataFrame:
    from optim import comparison_table

    return comparison_table(_rows(run_id, n_rows, version, db))


def rows_of(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's result rows (baseline first), cached."""
    return _rows(*_key(run))


def table_of(run: dict[str, Any]) -> pd.DataFrame:
    """The run's comparison table (:func:`optim.compare.comparison_table`), cached."""
    return _table(*_key(run))


def when(ts: Any) -> str:
    try:
        return datetime.datetime.fromtimestamp(float(ts)).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError, OSError, OverflowError):
        return "—"


def short_ref(ref: Any, names: dict[str, str] | None = None) -> str:
    """A model/data reference as a person reads it: the upload's own file name, or the sample."""
    ref = str(ref or "")
    if names and ref in names:
        return names[ref]
    return ref.rsplit("/", 1)[-1] if "/" in ref else ref


def run_title(run: dict[str, Any]) -> str:
    spec = run.get("spec") or {}
    names = {**(spec.get("labels") or {}), **state.get(state.UPLOAD_NAMES)}
    what = run.get("name") or f"{short_ref(spec.get('model'), names)} on {short_ref(spec.get('data'), names)}"
    return f"{when(run.get('created'))} · {what} · {run.get('n_rows', 0)} rows · {run.get('status')}"


def runs_with_rows() -> list[dict[str, Any]]:
    from optim import list_runs

    # list_runs marks runs whose process died failed, so no page keeps "waiting" for them.
    return [r for r in list_runs(store(), limit=200) if int(r.get("n_rows") or 0) > 0]


def _select(run_id: str) -> None:
    state.select_run(run_id)  # the sidebar's model and data follow the run picked


def pick_run(label: str = "Run") -> dict[str, Any] | None:
    """A selectbox of the runs that have results; defaults to state.SELECTED_RUN, else the newest
    finished run. Returns the chosen run's record (with ``n_rows``) or None when there is none."""
    runs = runs_with_rows()
    if not runs:
        return None
    by_id = {r["id"]: r for r in runs}
    selected = state.get(state.SELECTED_RUN)
    if selected not in by_id:
        fallback = next((r["id"] for r in runs if r["status"] in ("done", "partial")), runs[0]["id"])
        try:
            from optim import ACTIVE_STATUSES, get_run

            waiting = selected is not None and get_run(store(), selected)["status"] in ACTIVE_STATUSES
        except KeyError:  # deleted meanwhile
            waiting = False
        if waiting:  # just started, no row yet: show another run but keep following this one
            st.info(f"Run {selected} has no finished candidate yet; showing an earlier run meanwhile.")
        else:
            state.select_run(fallback)
        selected = fallback
    # The widget has its own key (widget state is dropped on pages that don't draw it); it is
    # seeded from SELECTED_RUN on every run and writes back through on_change.
    st.session_state[state.RUN_PICKER] = selected
    st.selectbox(label, list(by_id), key=state.RUN_PICKER, format_func=lambda rid: run_title(by_id[rid]),
                 on_change=lambda: _select(st.session_state[state.RUN_PICKER]))
    return by_id[selected]


def run_page(title: str) -> dict[str, Any]:
    """The top of Compare, Export and Report: title, run picker; stops the page when no run has results."""
    state.init()
    st.title(title)
    run = pick_run()
    if run is None:
        no_runs_message()
        st.stop()
    return run  # type: ignore[return-value]


def no_runs_message() -> None:
    st.info("No results yet. Pick a model and data, switch techniques on and start a run — "
            "or press **Try the demo** on the Model & data page.")
    if st.button("Go to Model & data", key="goto_model_data"):
        st.switch_page("app_pages/model_data.py")


def comparison(df: pd.DataFrame, *, recommended: str | None = None, more: bool = False,
               mask: pd.Series | None = None) -> None:
    """The styled comparison table: green/red deltas, the recommended row tinted; the candidate,
    its recipe and the task metric pinned on the left (they stay in view when the table scrolls
    sideways), the other columns chosen by the reader (kept in the session)."""
    from optim import metrics_of, styled

    shown = df[mask] if mask is not None else df
    groups = ("main", "more") if more else ("main",)
    styler = styled(shown, groups, recommended=recommended)
    columns = list(styler.data.columns)
    metrics = [m.header for m in metrics_of(df) if m.header in columns]
    pinned = [c for c in ("Recipe", *metrics[:1]) if c in columns]
    optional = [c for c in columns if c not in pinned]
    chosen = state.get(state.TABLE_COLUMNS)
    # The choice is kept per table shape: columns a new run lacks drop out, new ones stay shown.
    st.session_state[state.TABLE_COLUMN_PICKER] = optional if chosen is None else [c for c in chosen if c in optional]
    shown_n = len(st.session_state[state.TABLE_COLUMN_PICKER])
    box = st.popover(f"Columns ({shown_n} of {len(optional)} beside the pinned ones)", icon=":material/view_column:")
    picked = box.multiselect("Columns", optional, key=state.TABLE_COLUMN_PICKER,
                            on_change=lambda: state.set(state.TABLE_COLUMNS,
                                                        st.session_state[state.TABLE_COLUMN_PICKER]),
                            help="Columns to show beside the pinned candidate, recipe and task metric.",
                            placeholder="Only the pinned columns")
    recipes = [str(r) for r in shown.get("Recipe", [])]
    config: dict[str, Any] = {
        "_index": st.column_config.TextColumn("ID", pinned=True, width="small"),
        "Recipe": st.column_config.TextColumn("Recipe", pinned=True, width=recipe_width_px(recipes),
                                              help="The recipe that made the candidate."),
    }
    for header in pinned[1:]:
        config[header] = st.column_config.Column(pinned=True)
    st.dataframe(styler, width="stretch", height=min(35 * (len(shown) + 1) + 3, 640), key="comparison_table",
                 column_config=config, column_order=pinned + [c for c in optional if c in picked])
    # The grid draws on a canvas and cuts a cell at its column's edge: a recipe longer than the
    # widest Recipe column is written out in full under the table, wrapping like any text.
    long = [(cid, r) for cid, r in zip(shown["ID"], recipes) if len(r) > RECIPE_MAX_CHARS]
    if long:
        with st.container(key="full_recipes"):
            st.markdown("**Recipes in full** — " + " · ".join(f"{md(cid)} {code(r)}" for cid, r in long))


#: Pixels per character of a recipe in the grid's 14 px font (measured ~6.4 for recipe text: a margin
#: for wide letters and the recommended row's bold), the cell's padding, and the widest Recipe column:
#: the ID and the task metric still fit beside it in the ~440 px the table gets in a 900 px wide
#: window with the sidebar open.
RECIPE_PX_PER_CHAR, RECIPE_PAD_PX, RECIPE_MAX_PX = 7, 24, 240
RECIPE_MAX_CHARS = (RECIPE_MAX_PX - RECIPE_PAD_PX) // RECIPE_PX_PER_CHAR


def recipe_width_px(recipes: list[str]) -> int:
    """The Recipe column's width: its longest recipe whole, up to RECIPE_MAX_PX (longer ones are
    written out under the table)."""
    longest = max((len(r) for r in recipes), default=0)
    return max(120, min(RECIPE_MAX_PX, longest * RECIPE_PX_PER_CHAR + RECIPE_PAD_PX))
