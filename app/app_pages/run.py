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
from optim import OptimError

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
    else:
        st.markdown("**Next run:** no recipes chosen yet — pick techniques or a preset on the Techniques page.")
    busy = run is not None and run["status"] in run_panel.ACTIVE
    if st.button("Start run", type="primary", disabled=not recipes, key=state.START_RUN,
                 help="Runs in a background worker; you can leave this page." if not busy
                 else "Another run is being measured: this one waits its turn in the queue and starts by itself."):
        try:
            run_panel.start_run(recipes)
        except OptimError as err:
            st.error(md(err.one_line()))
        else:
            st.rerun()

if run is None:
    st.info("No run yet. Start one above, or from the Techniques page.")
else:
    state.set(state.ACTIVE_RUN, run["id"])
    run_panel.render(run["id"])
