"""Streamlit wrappers of :mod:`optim.charts`: cached figures and one place that draws them."""

from __future__ import annotations

from typing import Any

import streamlit as st

import optim
from app.components import tables


def titles() -> dict[str, str]:
    """Tab titles of the declared charts (name → title), in display order: each chart declares its
    own (optim.views.chart), so a technique's chart appears here without editing this file."""
    return {v.name: v.title for v in optim.chart_views()}


@st.cache_data(show_spinner=False, max_entries=256)
def _figure(run_id: str, n_rows: int, version: str, db: str, name: str, x: str | None, highlight: str | None,
            keep: tuple[str, ...] | None = None) -> Any:
    rows = tables._rows(run_id, n_rows, version, db)
    if keep is not None:  # the limits filter: the charts show what the table shows
        rows = [r for r in rows if r.get("candidate_id") in keep]
    if name == "pareto":
        return optim.build_figure("pareto", rows, x=x or "latency_ms_p50_b1", highlight=highlight)
    return optim.build_figure(name, rows)


def figure(run: dict[str, Any], name: str, *, x: str | None = None, highlight: str | None = None,
           keep: tuple[str, ...] | None = None) -> Any:
    """The run's figure ``name`` (see optim.chart_views), cached; None when there is no data.
    ``keep``: only these candidate ids (the rows the table shows within the limits)."""
    return _figure(*tables._key(run), name, x, highlight, keep)


def available(run: dict[str, Any], keep: tuple[str, ...] | None = None) -> list[str]:
    """The figures this run (its ``keep`` rows) has data for, in display order."""
    return [name for name in titles() if figure(run, name, keep=keep) is not None]


def show(fig: Any, key: str) -> None:
    """Draw a figure with our own template (the exported PNG/HTML look the same)."""
    st.plotly_chart(fig, theme=None, key=key, config={"displaylogo": False})
