"""Run: start the experiment in a worker process and follow it (queue, progress, ETA, log, cancel).

Thin page: the run happens in a separate process (optim.jobs.start_background), queued behind any
run already being measured; this page only reads the store, so a reload or a second tab shows the
same job.
"""

from __future__ import annotations

import streamlit as st

from app import state
from app.components import run_panel
from app.components.text import code, md
from optim import COST_WARN_S, OptimError, format_duration


def cost_before_run(c: state.Choice, recipes: list[str]) -> None:
    """Each recipe's estimated time (from the model's MACs, the data size and its training budget),
    with a warning above COST_WARN_S — before anything starts."""
    try:
        est = run_panel.estimates(c, recipes)
    except OptimError as err:
        st.caption(f"No time estimate: {md(err.for_dashboard())}")
        return
    total = sum(e.seconds for e in est)
    st.dataframe([{"Recipe": e.recipe, "Variants": e.variants, "Training epochs": round(e.training_epochs, 1),
                   "Estimated time": format_duration(e.seconds)} for e in est],
                 hide_index=True, width="stretch", key="cost_table")
    if total > COST_WARN_S:
        st.warning(run_panel.long_run_text(est))
    else:
        st.caption(f"Estimated time: {format_duration(total)} on this machine (calibrated once by a tiny timing; "
                   "an order of magnitude, the ETA below follows the measured steps).")


state.init()
st.title("Run")

recipes = list(state.get(state.RECIPES))
s = run_panel.store()
run = run_panel.followed_run(s)

with st.container(border=True):
    c = state.choice()
    names = state.get(state.UPLOAD_NAMES)
    if recipes:
        st.markdown(f"**Next run:** {code(names.get(c.model, c.model))} on {code(names.get(c.data, c.data))} — "
                    f"{len(recipes)} recipe(s), {run_panel.count_variants_safe(recipes)} variant(s) + baseline, "
                    f"{state.get(state.THREADS)} thread(s)")
        st.code("\n".join(recipes), language="text")
        cost_before_run(c, recipes)
    else:
        st.markdown("**Next run:** no recipes chosen yet — pick techniques or a preset on the Techniques page.")
    busy = run is not None and run["status"] in run_panel.ACTIVE
    if st.button("Start run", type="primary", disabled=not recipes, key=state.START_RUN,
                 help="Runs in a background worker; you can leave this page." if not busy
                 else "Another run is being measured: this one waits its turn in the queue and starts by itself."):
        try:
            run_panel.start_run(recipes)
        except OptimError as err:
            st.error(md(err.for_dashboard()))
        else:
            st.rerun()

if run is None:
    st.info("No run yet. Start one above, or from the Techniques page.")
else:
    state.set(state.ACTIVE_RUN, run["id"])
    run_panel.render(run["id"])
