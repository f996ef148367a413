"""Report: the one-page stakeholder summary of a run (optim.report), shown here and downloadable
as a self-contained HTML file that opens offline."""

from __future__ import annotations

import streamlit as st

from app import state
from app.components import tables
from optim import Constraints, describe_constraints


@st.cache_data(show_spinner=False, max_entries=16)
def _report(run_id: str, n_rows: int, version: str, db: str, limits: tuple, names: tuple) -> str:
    from optim import Store, render_report_html

    return render_report_html(Store(db).run(run_id), tables._rows(run_id, n_rows, version, db),
                              Constraints(**dict(limits)), names=dict(names))


run = tables.run_page("Report")

limits = dict(state.get(state.LIMITS))
with st.spinner("Writing the report…"):
    page = _report(*tables._key(run), tuple(sorted(limits.items())),
                   tuple(sorted(state.get(state.UPLOAD_NAMES).items())))
left, right = st.columns([3, 1])
left.caption(
    f"The recommendation uses the limits set on the Compare page ({describe_constraints(Constraints(**limits))}). "
    "The file embeds its charts' JavaScript, so it opens offline and can be mailed as is."
)
right.download_button("Download report (HTML)", page, file_name=f"optim-report-{run['id']}.html", mime="text/html",
                      type="primary", key="dl_report", on_click="ignore", width="stretch")
st.iframe(page)  # sized to its content
