"""optim dashboard: the only entry point (`streamlit run app/streamlit_app.py`).

Its server settings (bound to 127.0.0.1, no usage statistics, upload size) are in
`app/.streamlit/config.toml`: Streamlit reads the config beside the entry point after the working
directory's, so they hold wherever the command is started from.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# Streamlit runs this file as a script; make `app.*` importable without installing it.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import optim  # noqa: E402
from app import state  # noqa: E402
from app.components import sidebar  # noqa: E402
from app.components.text import md  # noqa: E402

st.set_page_config(page_title="optim — compare model optimizations", page_icon=":material/speed:", layout="wide")
state.init()

PAGES = [
    st.Page("app_pages/model_data.py", title="Model & data", icon=":material/inventory_2:", default=True),
    st.Page("app_pages/techniques.py", title="Techniques", icon=":material/science:"),
    st.Page("app_pages/run.py", title="Run", icon=":material/play_arrow:"),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/bar_chart:"),
    st.Page("app_pages/export.py", title="Export", icon=":material/download:"),
    st.Page("app_pages/history.py", title="History", icon=":material/history:"),
    st.Page("app_pages/report.py", title="Report", icon=":material/description:"),
]

page = st.navigation(PAGES)
sidebar.render()
try:
    page.run()
except optim.OptimError as err:
    # Anything a page did not handle itself (e.g. a store that cannot be reached from any page):
    # an error box with the next step, never a Streamlit traceback.
    st.error(md(err.for_dashboard()))
finally:  # also when a page stops early: the address bar always holds the view (a link reopens it)
    state.write_url()
