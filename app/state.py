"""The one place session-state keys are named. Pages read and write per-user state only here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import streamlit as st

import optim

# Current model & data choice (the last VALID one: a bad upload never replaces it).
MODEL_REF = "model_ref"            # str: "sample:digits-mlp" or a path of a saved upload
DATA_REF = "data_ref"              # str: "sample:digits" or a path of a saved upload
TARGET = "target"                  # str | None: target column of a CSV
TASK = "task"                      # "classification" | "regression" | None (inferred)
ARCH = "arch"                      # str | None: architecture for a state_dict/safetensors upload
TRUST_PICKLE = "trust_pickle"      # bool: allow full pickled nn.Module uploads (runs code!)
# Techniques page
RECIPES = "recipes"                # list[str]: recipe specs to run (one variant each)
# Run settings: the key of each sidebar widget is its optim.RunSettings field name.
THREADS = "threads"
BATCH = "batch_size"
SEED = "seed"
COUNTRY = "country_iso_code"
RUN_SETTINGS = tuple(name for name, _, _ in optim.RunSettings.ui_fields())
# Runs
ACTIVE_RUN = "active_run"          # str | None: the run the Run page follows
SELECTED_RUN = "selected_run"      # str | None: the run Compare / Export / Report show
UPLOAD_ERROR = "upload_error"      # str | None: last upload error, shown until the next valid one
# Model & data page
SAMPLE = "sample"                  # str: the bundled sample picked in the sample selectbox
UPLOAD_NAMES = "upload_names"      # dict[str, str]: saved upload path -> the file name the user gave
UPLOAD_SEEN = "upload_seen"        # dict[str, tuple]: uploader key -> signature of the upload last handled
MODEL_UPLOAD = "model_upload"      # file_uploader widget: model file
DATA_UPLOAD = "data_upload"        # file_uploader widget: dataset file
UP_TARGET = "up_target"            # selectbox: target column for the pending CSV/NPZ upload
UP_TASK = "up_task"                # radio: task for the pending dataset upload ("auto" = inferred)
UP_ARCH = "up_arch"                # selectbox: architecture for a pending weights upload
UP_ARCH_TV = "up_arch_tv"          # text input: torchvision model name when UP_ARCH is torchvision
DATA_SAMPLE = "data_sample"        # selectbox: bundled dataset to use instead of an upload
UP_TRUST = "up_trust_pickle"       # toggle: trust pickled files for the next model upload
USE_DATA_SAMPLE = "use_data_sample"  # button: switch to the bundled dataset picked in DATA_SAMPLE
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
# Run page
START_RUN = "start_run"            # button: start the recipes in state.RECIPES
CANCEL = "cancel"                  # button prefix: cancel run <id>
OPEN_COMPARE = "open_compare"      # button prefix: open run <id> on the Compare page
# Compare / Export / History / Report pages
RUN_PICKER = "run_picker"          # selectbox: the run these pages show (mirrors SELECTED_RUN)
LIMITS = "limits"                  # dict: the constraints set on Compare (optim.compare.Constraints fields)
LIMIT = "limit"                    # number_input prefix: one constraint, widget_key(LIMIT, field)
PARETO_X = "pareto_x"              # selectbox: x axis (result key) of the Pareto scatter
CHART_TAB = "chart_tab"            # tabs: the open chart tab on Compare (only it is drawn)
MORE_COLUMNS = "more_columns"      # toggle: every measured column in the comparison table
ONLY_WITHIN = "only_within_limits" # toggle: hide the rows outside the limits
EXPORT_CANDIDATE = "export_candidate"  # selectbox: the candidate to export
EXPORT_FORMAT = "export_format"    # radio: onnx | torchscript | safetensors
EXPORT_DO = "export_do"            # button: export the candidate
EXPORT_RESULT = "export_result"    # dict | None: the last export's files and check, or its error
EXPORT_PNG = "export_png"          # button: render the charts as PNG
CHARTS_PNG = "charts_png"          # dict | None: the last PNG render (run id, zip path) or why it failed
OPEN_RUN = "open_run"              # button prefix: open run <id> in Compare (History)
DELETE_RUN = "delete_run"          # button prefix: ask to delete run <id> (History)
CONFIRM_DELETE = "confirm_delete"  # str | None: the run id waiting for a delete confirmation
DELETE_YES = "delete_yes"          # button: confirm the delete
DELETE_NO = "delete_no"            # button: keep the run

DEFAULTS: dict[str, Any] = {
    MODEL_REF: "sample:digits-mlp",
    DATA_REF: "sample:digits",
    TARGET: None,
    TASK: None,
    ARCH: None,
    TRUST_PICKLE: False,
    RECIPES: [],
    # Run settings: RunSettings' own defaults (declared once, in optim/settings.py).
    **{k: v for k, v in optim.RunSettings.defaults().items() if k in RUN_SETTINGS},
    ACTIVE_RUN: None,
    SELECTED_RUN: None,
    UPLOAD_ERROR: None,
    SAMPLE: "digits-mlp",
    UPLOAD_NAMES: {},
    UPLOAD_SEEN: {},
    RECIPE_TEXT: "",
    PRESET: None,
    LIMITS: {"max_metric_drop_pt": 1.0},
    EXPORT_RESULT: None,
    CHARTS_PNG: None,
    CONFIRM_DELETE: None,
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


#: Widget keys (exact, or prefixes followed by ':') whose values must survive a visit to another
#: page: Streamlit drops the state of widgets a run does not draw, so they are re-stored each run.
KEEP = (TECH_ON, CFG, SWEEP_ON, SWEEP_FIELD, SWEEP_VALUES, CHAIN, RECIPE_TEXT, PRESET)


def keep_widgets() -> None:
    """Re-store the values of the KEEP widgets so leaving their page does not reset them."""
    for key in list(st.session_state.keys()):
        if key in KEEP or key.split(":", 1)[0] in KEEP:
            st.session_state[key] = st.session_state[key]


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
