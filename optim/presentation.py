"""Presentation of the comparison table: the pandas Styler the dashboard and the report both show.

Green when a delta is better, red when worse, the recommended row tinted, failed rows greyed,
numbers to four figures. The table itself (values, deltas, verdicts) is :mod:`optim.compare`'s.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

from optim.compare import ID_COLUMNS, _num, display_columns, metrics_of

GOOD, BAD, NEUTRAL = "#15803d", "#b91c1c", "#6b7280"
GOOD_BG, BAD_BG, PICK_BG = "#dcfce7", "#fee2e2", "#ecfdf5"


def format_number(v: Any) -> str:
    """Four significant figures without scientific notation for the sizes a table shows."""
    f = _num(v)
    if math.isnan(f):
        return "—"
    a = abs(f)
    if a >= 1000:
        return f"{f:,.0f}"
    if a >= 100:
        return f"{f:.1f}"
    if a >= 1:
        return f"{f:.2f}"
    if a == 0:
        return "0"
    return f"{f:.3g}"


def view(df: pd.DataFrame, groups: Iterable[str] = ("main",), lead: Iterable[str] = (), **select: Any) -> pd.DataFrame:
    """The display frame: :func:`display_columns` (``select``: keys, id_columns), the ``lead``
    columns first (a table that pins them), Pareto as ★, indexed by candidate ID."""
    select.setdefault("id_columns", ID_COLUMNS)
    select["id_columns"] = ["ID", *[c for c in select["id_columns"] if c != "ID"]]
    columns = display_columns(df, groups, **select)
    first = ["ID", *[c for c in lead if c in columns and c != "ID"]]
    out = df[[c for c in first if c in columns] + [c for c in columns if c not in first]].copy()
    if "Pareto" in out.columns:
        out["Pareto"] = out["Pareto"].map(lambda on: "★" if on else "")
    out = out.set_index("ID") if "ID" in out.columns else out
    out.index.name = None
    return out


def styled(df: pd.DataFrame, groups: Iterable[str] = ("main",), recommended: str | None = None,
           lead: Iterable[str] = (), **select: Any) -> Any:
    """A pandas Styler of :func:`view` (``lead`` columns first): deltas green when better and red
    when worse, the recommended row tinted, failed rows greyed, flags in red, numbers to four figures."""
    shown = view(df, groups, lead=lead, **select)
    metrics = metrics_of(df)
    verdict = {m.vs_col: m.better_col for m in metrics if m.vs_col in shown.columns}
    base = df.set_index("ID") if "ID" in df.columns else df

    def colour(frame: pd.DataFrame) -> pd.DataFrame:
        css = pd.DataFrame("", index=frame.index, columns=frame.columns)
        for cid in frame.index:
            status = base.at[cid, "Status"] if "Status" in base.columns else "ok"
            if status != "ok":
                css.loc[cid, :] = f"color: {NEUTRAL}; font-style: italic"
                continue
            if recommended is not None and cid == recommended:
                css.loc[cid, :] = f"background-color: {PICK_BG}; font-weight: 600"
            for vs, better_col in verdict.items():
                b = base.at[cid, better_col] if better_col in base.columns else None
                if b is None or (isinstance(b, float) and math.isnan(b)):
                    css.at[cid, vs] = f"color: {NEUTRAL}"
                elif bool(b):
                    css.at[cid, vs] = f"color: {GOOD}; background-color: {GOOD_BG}"
                else:
                    css.at[cid, vs] = f"color: {BAD}; background-color: {BAD_BG}"
            if "Flags" in frame.columns and frame.at[cid, "Flags"]:
                css.at[cid, "Flags"] = f"color: {BAD}"
        return css

    numeric = [m.header for m in metrics if m.header in shown.columns] + [
        k for k in df.attrs.get("extra", []) if k in shown.columns]
    out = shown.style.apply(colour, axis=None).format(format_number, subset=numeric)
    tips = pd.DataFrame("", index=shown.index, columns=shown.columns)
    for cid, cols in df.attrs.get("intervals", {}).items():
        for col, text in cols.items():
            if cid in tips.index and col in tips.columns:
                tips.at[cid, col] = text
    if (tips != "").any().any():
        out = out.set_tooltips(tips, as_title_attribute=True)
    return out
