"""The one place session-state keys are named. Pages read and write per-user state only here."""

from __future__ import annotations

import math
import re
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
QUICK = "quick_measurement"      # toggle: measure with the short budgets of run_panel.quick_settings()
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
TECH_SEARCH = "tech_search"        # text: filter of the Techniques page's technique list
RUN_SEARCH = "run_search"          # text: History's search over names, notes, tags, models, data, recipes
RUN_TAGS = "run_tags"              # multiselect: History shows runs carrying every one of these tags
RUN_FORM = "run_form"              # form prefix: a run's name, notes and tags (History)
RUN_NAME = "run_name"              # text prefix: a run's name
RUN_NOTES = "run_notes"            # text prefix: a run's notes
RUN_TAG_TEXT = "run_tag_text"      # text prefix: a run's tags, comma-separated
DEMO_RUN = "demo_run"              # button: start the demo preset (Model & data)
TABLE_COLUMNS = "table_columns"    # list[str] | None: comparison columns shown beside the pinned ones (None: all)
TABLE_COLUMN_PICKER = "table_column_picker"  # multiselect: edits TABLE_COLUMNS (seeded from it every run)
CFG = "cfg"                        # a config_form field widget
SWEEP_ON = "sweep_on"              # toggle: sweep one setting of a technique
SWEEP_FIELD = "sweep_field"        # selectbox: which setting the sweep varies
SWEEP_VALUES = "sweep_values"      # text input: the sweep's values, a|b|c
CHAIN = "chain"                    # multiselect: techniques chained into one recipe, in order
TECH_RUN = "tech_run"              # button: start the recipes from the Techniques page
CONFIRM_RUN = "confirm_run"        # list[str] | None: recipes whose long run waits for a confirmation
CONFIRM_YES = "confirm_yes"        # button: start the long run anyway
CONFIRM_NO = "confirm_no"          # button: do not start it
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
PICKED = "picked"                  # multiselect: 2–3 candidate ids shown side by side on Compare
COMPARE_RUNS = "compare_runs"      # multiselect: runs of one model and data compared on History
URL_READ = "url_read"              # bool: this session has read its link's query (once, on its first run)
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
    QUICK: False,
    ACTIVE_RUN: None,
    SELECTED_RUN: None,
    UPLOAD_ERROR: None,
    SAMPLE: "digits-mlp",
    UPLOAD_NAMES: {},
    UPLOAD_SEEN: {},
    RECIPE_TEXT: "",
    PRESET: None,
    LIMITS: {"max_metric_drop_pt": 1.0},
    COMPARE_RUNS: [],
    EXPORT_RESULT: None,
    CHARTS_PNG: None,
    CONFIRM_DELETE: None,
    CONFIRM_RUN: None,
    TABLE_COLUMNS: None,
}


def init() -> None:
    """Fill missing keys with defaults (first visit: the bundled sample is already chosen), then,
    once per session, take what the link says (:func:`read_url`)."""
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = type(value)(value) if isinstance(value, (list, dict)) else value
    if not st.session_state.get(URL_READ):
        st.session_state[URL_READ] = True
        read_url()


# --- the view in the link ---------------------------------------------------------------------------
# The page is the link's path (st.navigation); the rest is its query: ?run=…&picked=c1,c3&x=size_bytes
# &drop=1&lat=…&kb=…&energy=…&cols=…;… (the table's chosen columns).
# The model and data come from the run (a link never names a file path).
URL_LIMITS = {"drop": "max_metric_drop_pt", "lat": "max_latency_ms", "kb": "max_size_bytes",
              "energy": "max_energy_j_per_1k"}
_ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_CID = re.compile(r"c[0-9]{1,6}")
_AXIS = re.compile(r"[a-z0-9_]{1,64}")


def _limit(raw: str) -> float | None:
    try:
        v = float(raw)
    except ValueError:
        return None
    return v if math.isfinite(v) and v >= 0 else None


def read_url() -> None:
    """Restore the view a link describes (unknown or malformed values are ignored, never trusted)."""
    q = st.query_params
    run_id = q.get("run")
    if run_id and _ID.fullmatch(run_id):
        select_run(run_id)
    picked = [c for c in (q.get("picked") or "").split(",") if _CID.fullmatch(c)]
    if picked:
        st.session_state[PICKED] = list(dict.fromkeys(picked))[:3]
    x = q.get("x")
    if x and _AXIS.fullmatch(x):
        st.session_state[PARETO_X] = x
    if "cols" in q:  # the table's chosen columns; names the table does not have are dropped there
        cols = [c.strip() for c in (q.get("cols") or "").split(";") if c.strip() and len(c) <= 120]
        st.session_state[TABLE_COLUMNS] = list(dict.fromkeys(cols))[:60]
    if any(k in q for k in URL_LIMITS):
        limits: dict[str, float | None] = {}
        for short, name in URL_LIMITS.items():
            v = _limit(q.get(short) or "")
            limits[name] = v * 1024 if (v is not None and short == "kb") else v
        st.session_state[LIMITS] = limits


def url_params() -> dict[str, str]:
    """This session's view as query parameters (what :func:`read_url` reads back)."""
    s = st.session_state
    out: dict[str, str] = {}
    if s.get(SELECTED_RUN):
        out["run"] = str(s[SELECTED_RUN])
    if s.get(PICKED):
        out["picked"] = ",".join(s[PICKED])
    if s.get(PARETO_X):
        out["x"] = str(s[PARETO_X])
    if s.get(TABLE_COLUMNS) is not None:
        out["cols"] = ";".join(s[TABLE_COLUMNS])
    limits = s.get(LIMITS) or {}
    for short, name in URL_LIMITS.items():
        v = limits.get(name)
        if v is None:
            out[short] = "none"
        else:
            v = v / 1024 if short == "kb" else v
            out[short] = f"{v:g}"
    return out


def write_url() -> None:
    """Put the view in the address bar (only our keys, only when they changed: every write is a
    message to the browser; other query keys are left alone)."""
    init()
    want = url_params()
    q = st.query_params
    for key in ("run", "picked", "x", "cols", *URL_LIMITS):
        if key in want and q.get(key) != want[key]:
            q[key] = want[key]
        elif key not in want and key in q:
            del q[key]


def select_run(run_id: str) -> None:
    """Show ``run_id`` on Compare / Export / Report and make the loaded model and data the run's,
    so the sidebar never names a different model than the run on screen. Unknown runs are ignored."""
    from optim import Store, get_run, sample_data_ref

    try:
        run = get_run(Store(), run_id)
    except KeyError:
        return
    st.session_state[SELECTED_RUN] = run_id
    spec = dict(run.get("spec") or {})
    if not spec.get("model") or not spec.get("data"):
        return
    # A run of a bundled sample on its own data may say "sample" (the CLI's shorthand): the
    # dashboard loads data by its full name, "sample:digits".
    spec["data"] = sample_data_ref(str(spec["model"]), str(spec["data"])) or spec["data"]
    s = st.session_state
    if (s.get(MODEL_REF), s.get(DATA_REF)) != (spec["model"], spec["data"]):
        s[MODEL_REF], s[DATA_REF] = spec["model"], spec["data"]
        s[TARGET], s[TASK], s[ARCH] = spec.get("target"), spec.get("task"), spec.get("arch")
        s[TRUST_PICKLE] = bool(spec.get("trust_pickle"))
        if str(spec["model"]).startswith("sample:"):
            s[SAMPLE] = str(spec["model"]).split(":", 1)[1]
    labels = {k: v for k, v in (spec.get("labels") or {}).items() if k in (spec["model"], spec["data"])}
    if labels:
        s[UPLOAD_NAMES] = {**(s.get(UPLOAD_NAMES) or {}), **labels}


def get(key: str) -> Any:
    init()
    return st.session_state[key]


def set(key: str, value: Any) -> None:  # noqa: A001  (mirrors get)
    st.session_state[key] = value


#: Widget keys (exact, or prefixes followed by ':') whose values must survive a visit to another
#: page: Streamlit drops the state of widgets a run does not draw, so they are re-stored each run.
KEEP = (TECH_ON, CFG, SWEEP_ON, SWEEP_FIELD, SWEEP_VALUES, CHAIN, RECIPE_TEXT, PRESET, PARETO_X, PICKED)


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
