"""The shared sidebar: what is loaded, and the run settings every page uses."""

from __future__ import annotations

import streamlit as st

import optim
from app import state
from app.components import run_panel
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
            # One widget per RunSettings field marked for the UI: label, bounds and help are the
            # field's, so the form accepts exactly what a run accepts.
            for name, label, field in optim.RunSettings.ui_fields():
                if field.annotation is bool:
                    st.toggle(label, key=name, help=field.description)
                elif field.annotation is int:
                    low, high = optim.RunSettings.bounds(name)
                    st.number_input(label, None if low is None else int(low), None if high is None else int(high),
                                    key=name, help=field.description)
                else:
                    st.text_input(label, key=name, help=field.description)
            st.toggle("Quick measurement", key=state.QUICK, help=run_panel.QUICK_HELP)
        st.caption("Energy figures are CodeCarbon estimates unless marked as measured.")


def _short(ref: str) -> str:
    return ref if len(ref) < 40 else "…" + ref[-38:]
