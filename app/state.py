"""The one place session-state keys are named. Pages read and write per-user state only here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import streamlit as st

# Current model & data choice (the last VALID one: a bad upload never replaces it).
MODEL_REF = "model_ref"            # str: "sample:digits-mlp" or a path of a saved upload
DATA_REF = "data_ref"              # str: "sample:digits" or a path of a saved upload
TARGET = "target"                  # str | None: target column of a CSV
TASK = "task"                      # "classification" | "regression" | None (inferred)
ARCH = "arch"                      # str | None: architecture for a state_dict/safetensors upload
TRUST_PICKLE = "trust_pickle"      # bool: allow full pickled nn.Module uploads (runs code!)
# Techniques page
RECIPES = "recipes"                # list[str]: recipe specs to run (one variant each)
# Run settings
THREADS = "threads"
BATCH = "batch_size"
SEED = "seed"
COUNTRY = "country_iso_code"
# Runs
ACTIVE_RUN = "active_run"          # str | None: the run the Run page follows
SELECTED_RUN = "selected_run"      # str | None: the run Compare / Export / Report show
UPLOAD_ERROR = "upload_error"      # str | None: last upload error, shown until the next valid one
# Model & data page
SAMPLE = "sample"                  # str: the bundled sample picked in the sample selectbox
UPLOAD_NAMES = "upload_names"      # dict[str, str]: saved upload path -> the file name the user gave
# Techniques page
RECIPE_TEXT = "recipe_text"        # str: recipes typed in the recipe-syntax text area (one a line)
PRESET = "preset"                  # str | None: preset picked in the presets selectbox
# Dynamic widget keys are built from these prefixes (see widget_key) so they never collide.
TECH_ON = "tech_on"                # toggle: technique enabled
CFG = "cfg"                        # a config_form field widget
SWEEP_ON = "sweep_on"              # toggle: sweep one setting of a technique
SWEEP_FIELD = "sweep_field"        # selectbox: which setting the sweep varies
SWEEP_VALUES = "sweep_values"      # text input: the sweep's values, a|b|c
CHAIN = "chain"                    # multiselect: techniques chained into one recipe, in order

DEFAULTS: dict[str, Any] = {
    MODEL_REF: "sample:digits-mlp",
    DATA_REF: "sample:digits",
    TARGET: None,
    TASK: None,
    ARCH: None,
    TRUST_PICKLE: False,
    RECIPES: [],
    THREADS: 2,
    BATCH: 32,
    SEED: 0,
    COUNTRY: "USA",
    ACTIVE_RUN: None,
    SELECTED_RUN: None,
    UPLOAD_ERROR: None,
    SAMPLE: "digits-mlp",
    UPLOAD_NAMES: {},
    RECIPE_TEXT: "",
    PRESET: None,
}


def init() -> None:
    """Fill missing keys with defaults (first visit: the bundled sample is already chosen)."""
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = type(value)(value) if isinstance(value, (list, dict)) else value


def get(key: str) -> Any:
    init()
    return st.session_state[key]


def set(key: str, value: Any) -> None:  # noqa: A001  (mirrors get)
    st.session_state[key] = value


def widget_key(prefix: str, *parts: str) -> str:
    """A session-state key for a generated widget: ``prefix:part:part`` (prefixes named above)."""
    return ":".join((prefix, *parts))


@dataclass(frozen=True)
class Choice:
    """The current model & data choice as the experiment spec needs it."""

    model: str
    data: str
    target: str | None = None
    task: str | None = None
    arch: str | None = None
    trust_pickle: bool = False
    extra: dict = field(default_factory=dict)


def choice() -> Choice:
    init()
    s = st.session_state
    return Choice(s[MODEL_REF], s[DATA_REF], s[TARGET], s[TASK], s[ARCH], s[TRUST_PICKLE])
