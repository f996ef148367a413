"""The shared sidebar: what is loaded, and the run settings every page uses."""

from __future__ import annotations

import streamlit as st

from app import state
from app.components.text import code


def render() -> None:
    state.keep_widgets()
    c = state.choice()
    with st.sidebar:
        st.caption("Loaded")
        names = state.get(state.UPLOAD_NAMES)  # uploads are stored by content hash: show their names
        st.markdown(f"**Model** {code(_short(names.get(c.model, c.model)))}  \n"
                    f"**Data** {code(_short(names.get(c.data, c.data)))}")
        with st.expander("Run settings", expanded=False):
            st.number_input("Threads", 1, 64, key=state.THREADS, help="Threads for inference timing.")
            st.number_input("Batch N", 1, 4096, key=state.BATCH, help="Batch size of the batch-N latency and throughput.")
            st.number_input("Seed", 0, 2**31 - 1, key=state.SEED)
            st.text_input("Country (ISO 3166 alpha-3)", key=state.COUNTRY,
                          help="Grid carbon intensity for CodeCarbon's CO₂ estimate.")
        st.caption("Energy figures are CodeCarbon estimates unless marked as measured.")


def _short(ref: str) -> str:
    return ref if len(ref) < 40 else "…" + ref[-38:]
