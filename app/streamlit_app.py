"""optim dashboard: the only entry point (`streamlit run app/streamlit_app.py`)."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# Streamlit runs this file as a script; make `app.*` importable without installing it.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app import state  # noqa: E402
from app.components import sidebar  # noqa: E402

st.set_page_config(page_title="optim — compare model optimizations", page_icon="⚡", layout="wide")
state.init()

PAGES = [
    st.Page("app_pages/model_data.py", title="Model & data", icon="📦", default=True),
    st.Page("app_pages/techniques.py", title="Techniques", icon="🧪"),
    st.Page("app_pages/run.py", title="Run", icon="▶️"),
    st.Page("app_pages/compare.py", title="Compare", icon="📊"),
    st.Page("app_pages/export.py", title="Export", icon="📤"),
    st.Page("app_pages/history.py", title="History", icon="🗂️"),
    st.Page("app_pages/report.py", title="Report", icon="📝"),
]

page = st.navigation(PAGES)
sidebar.render()
try:
    page.run()
finally:  # also when a page stops early: the address bar always holds the view (a link reopens it)
    state.write_url()
