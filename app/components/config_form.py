"""Streamlit widgets generated from a technique's TechniqueConfig (one declaration, four uses).

Each field of the config becomes one widget: bool → toggle, Literal → selectbox, a number with
both bounds → slider (a log-scale number → number_input with its bounds), optional → a checkbox
"set" plus its input, anything else → a text input in recipe syntax. Help text comes from the
field's description and bounds. The result is validated by the config itself; a ConfigError is
shown inline. A sweep toggle varies one setting over ``a|b|c`` values (recipe syntax).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import streamlit as st

from app import state
from app.components.text import md
from optim import (
    ConfigError,
    FieldInfo,
    Sweep,
    TechniqueConfig,
    check_recipe,
    describe_fields,
    format_step,
    format_value,
    parse_value,
)


@dataclass(frozen=True)
class FormResult:
    """What the form produced: a validated config and its recipe step (with the sweep, if on)."""

    technique: str
    config: TechniqueConfig | None
    #: The recipe step, ``name[:key=value,...]``; a sweep adds ``key=a|b|c``. None when invalid.
    step: str | None
    error: str | None = None
    n_variants: int = 0


def field_key(technique: str, field: str, prefix: str = "") -> str:
    """The session-state key of the widget of ``field`` (tests look widgets up by it)."""
    return state.widget_key(state.CFG, *filter(None, (prefix, technique, field)))


def _key(kind: str, *parts: str) -> str:
    return state.widget_key(kind, *filter(None, parts))


def render(technique: Any, *, prefix: str = "", sweep: bool = True) -> FormResult:
    """Draw the settings of ``technique`` (a registered Technique) and return the result."""
    infos = describe_fields(technique.Config)
    annotations = {n: f.annotation for n, f in technique.Config.model_fields.items()}
    values: dict[str, Any] = {}
    if not infos:
        st.caption("No settings.")
    for info in infos:
        values[info.name] = _widget(technique.name, info, annotations[info.name], prefix)

    # Only the settings that differ from their defaults go into the config (and so the recipe):
    # a recipe says what was changed, and lineage labels stay short.
    defaults = {n: f.default for n, f in technique.Config.model_fields.items()}
    changed = {k: v for k, v in values.items() if not _same(v, defaults.get(k))}
    try:
        config = technique.Config.build(technique.name, **changed)
    except ConfigError as err:
        st.error(md(err.for_dashboard()))
        return FormResult(technique.name, None, None, err.for_dashboard())

    settings: dict[str, Any] = dict(config.explicit())
    swept = _sweep_widgets(technique, infos, prefix) if sweep and infos else None
    if swept:
        key, values = swept
        settings.pop(key, None)  # the swept setting goes last, as the user reads the step
        settings[key] = Sweep(tuple(values))
    step = format_step(technique.name, settings)
    try:
        n = check_recipe(step)
    except ConfigError as err:
        st.error(md(err.for_dashboard()))
        return FormResult(technique.name, config, None, err.for_dashboard())
    return FormResult(technique.name, config, step, None, n)


def _same(value: Any, default: Any) -> bool:
    if isinstance(value, bool) or isinstance(default, bool):
        return value is default  # True == 1 must not hide a change
    if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
        return list(value) == list(default)
    return value == default


def _initial(key: str, **kw: Any) -> dict[str, Any]:
    """The widget's default, only when the session has no value for it yet (kept across pages)."""
    return {} if key in st.session_state else kw


# --- one widget per field ---------------------------------------------------------------------
def _help(info: FieldInfo) -> str:
    text = (info.description or info.label) + f"  \nIn a recipe: `{info.name}`."
    if info.low is not None or info.high is not None:
        lo = "" if info.low is None else f"{format_value(info.low)} {'≤' if info.low_inclusive else '<'} "
        hi = "" if info.high is None else f" {'≤' if info.high_inclusive else '<'} {format_value(info.high)}"
        text += f"  \nAllowed: {lo}{info.name}{hi}."
    if info.choices:
        text += f"  \nChoices: {', '.join(map(str, info.choices))}."
    return text


def _widget(technique: str, info: FieldInfo, annotation: Any, prefix: str) -> Any:
    key = field_key(technique, info.name, prefix)
    label, help_ = info.label or info.name, _help(info)
    if info.kind == "bool":
        return st.toggle(label, key=key, help=help_, **_initial(key, value=bool(info.default)))
    if info.kind == "choice":
        choices = list(info.choices)
        index = choices.index(info.default) if info.default in choices else 0
        return st.selectbox(label, choices, key=key, help=help_, format_func=str, **_initial(key, index=index))
    if info.kind in ("int", "float"):
        return _number(info, key, label, help_)
    if info.kind in ("optional_int", "optional_float"):
        cols = st.columns([1, 3])
        on = cols[0].checkbox(f"Set {label.lower()}", key=key + ":set", help="Unchecked: off (None). " + help_,
                              **_initial(key + ":set", value=info.default is not None))
        with cols[1]:
            value = _number(info, key, label, help_, disabled=not on)
        return value if on else None
    # str and anything else (lists, tuples): typed in recipe syntax, parsed by optim.
    raw = st.text_input(
        label,
        key=key,
        help=help_ + ("  \nLists: values separated by ';'." if info.kind == "other" else ""),
        **_initial(key, value="" if info.default is None else format_value(info.default)),
    )
    return parse_value(raw, annotation) if info.kind == "other" else raw


def _is_log(info: FieldInfo) -> bool:
    if len(info.search) >= 3 and info.search[2] == "log":
        return True
    lo, hi = info.low, info.high
    # A range over several decades (1e-5..1) is log-ish: a linear slider could not pick its small values.
    return lo is not None and hi is not None and lo > 0 and hi / lo > 1e3


def _number(info: FieldInfo, key: str, label: str, help_: str, disabled: bool = False) -> Any:
    is_int = info.kind.endswith("int")
    default = info.default
    if default is None:  # optional fields: start from a value inside the bounds
        default = info.low if info.low is not None and info.low_inclusive else (
            (info.low or 0) + (1 if is_int else 0.1) if info.low is not None else (info.high or 0))
    cast = int if is_int else float
    lo = _inclusive(info.low, info.low_inclusive, +1, is_int)
    hi = _inclusive(info.high, info.high_inclusive, -1, is_int)
    if lo is not None and hi is not None and not _is_log(info) and lo <= cast(default) <= hi and lo < hi:
        if is_int:
            return st.slider(label, min_value=int(lo), max_value=int(hi), step=1, key=key, help=help_,
                             disabled=disabled, **_initial(key, value=int(default)))
        # The step resolves the default and both bounds (99.999 must not round to 100.00 on screen).
        step = min(_slider_step(lo, hi), *(_resolution(v) for v in (lo, hi, default)))
        return st.slider(label, min_value=float(lo), max_value=float(hi), step=step, key=key, help=help_,
                         format=plain_format(step), disabled=disabled, **_initial(key, value=float(default)))
    step = 1 if is_int else _resolution(default) if _is_log(info) else None
    return st.number_input(label, min_value=None if lo is None else cast(lo),
                           max_value=None if hi is None else cast(hi), step=step,
                           format=None if is_int else "%g", key=key, help=help_, disabled=disabled,
                           **_initial(key, value=cast(default)))


def _resolution(value: float) -> float:
    """The place value of ``value``'s last significant digit (99.999 → 0.001, 0.0003 → 0.0001, 5 → 1)."""
    text = format_value(float(value))
    if "e" in text:
        mantissa, exp = text.split("e")
        decimals = len(mantissa.partition(".")[2]) - int(exp)
    else:
        decimals = len(text.partition(".")[2])
    return float(f"1e-{decimals}") if decimals > 0 else 1.0


def plain_format(step: float) -> str:
    """A printf format that shows numbers on a ``step`` grid in plain notation (``0.14``, not ``1.40e-1``)."""
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 2
    return f"%.{decimals}f"


def _inclusive(bound: float | None, inclusive: bool, direction: int, is_int: bool) -> float | None:
    """The widget's (always inclusive) limit for a field bound; ``gt=0`` on an int means ≥ 1."""
    if bound is None or inclusive:
        return bound
    if is_int:
        return math.floor(bound) + 1 if direction > 0 else math.ceil(bound) - 1
    return None  # an open float bound (lr > 0): let the config reject 0 with its own message


def _slider_step(lo: float, hi: float) -> float:
    span = hi - lo
    step = 10 ** round(math.log10(span / 100)) if span > 0 else 0.01
    return float(f"{step:.0e}")


# --- sweep ------------------------------------------------------------------------------------
def sweep_defaults(info: FieldInfo) -> tuple[Any, ...]:
    """Suggested sweep values: the field's ``sweep`` extra, its choices, or points in its bounds."""
    if info.sweep:
        return tuple(info.sweep)
    if info.choices:
        return tuple(info.choices)
    if info.kind == "bool":
        return (False, True)
    if info.kind in ("int", "float") and info.low is not None and info.high is not None:
        lo = info.low if info.low_inclusive else None
        hi = info.high if info.high_inclusive else None
        points = [p for p in (lo, info.default, hi) if p is not None]
        return tuple(dict.fromkeys(int(p) if info.kind == "int" else p for p in points))
    return (info.default,) if info.default is not None else ()


def sweepable(infos: list[FieldInfo]) -> list[FieldInfo]:
    return [i for i in infos if i.kind in ("bool", "choice", "int", "float", "optional_int", "optional_float")]


def _sweep_widgets(technique: Any, infos: list[FieldInfo], prefix: str) -> tuple[str, list[str]] | None:
    fields = sweepable(infos)
    if not fields:
        return None
    name = technique.name
    on = st.toggle("Sweep one setting", key=_key(state.SWEEP_ON, prefix, name),
                   help="Run one variant per value of a setting (recipe syntax key=a|b|c): "
                        "the Compare page draws the sensitivity curve.")
    if not on:
        return None
    names = [f.name for f in fields]
    default = technique.sweep_field if technique.sweep_field in names else next(
        (f.name for f in fields if f.sweep), names[0])
    field_key_ = _key(state.SWEEP_FIELD, prefix, name)
    labels = {f.name: f.label for f in fields}
    chosen = st.selectbox("Setting to sweep", names, key=field_key_, format_func=lambda n: labels[n],
                          **_initial(field_key_, index=names.index(default)))
    info = fields[names.index(chosen)]
    values_key = _key(state.SWEEP_VALUES, prefix, name, chosen)
    raw = st.text_input(f"Values of {info.label.lower()} (a|b|c)", key=values_key, help=_help(info),
                        **_initial(values_key, value="|".join(format_value(v) for v in sweep_defaults(info))))
    values = [v.strip() for v in raw.split("|") if v.strip()]
    return (chosen, values) if values else None
