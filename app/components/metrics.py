"""A row of ``st.metric`` figures that never clips a value.

In ``st.columns`` every figure gets a fixed share of the width and a long value ("1,234,567",
"Energy / 1k predictions") is cut with an ellipsis on a narrow screen. Here each figure is as wide
as its label and value, and the row wraps onto a second line when the page is too narrow.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import streamlit as st


def metric_row(figures: Iterable[dict[str, Any] | None], *, key: str | None = None) -> None:
    """``st.metric(**figure)`` for each figure (None skipped: a figure that was not measured), side
    by side, wrapping when the page is narrow."""
    with st.container(horizontal=True, wrap=True, gap="medium", key=key):
        for figure in figures:
            if figure is not None:
                st.metric(**figure, width="content")
