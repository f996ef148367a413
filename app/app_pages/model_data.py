"""Model & data: pick a bundled sample or upload a model and a dataset; see the baseline.

Thin page: loading, validation, summaries and measurement are optim's (through the cached
helpers in app/components/uploads.py). A bad upload shows the loader's error and the previous
valid choice stays loaded.
"""

from __future__ import annotations

import streamlit as st

from app import state
from app.components import run_panel, uploads
from app.components.metrics import metric_row
from app.components.text import code, md
from optim import OptimError

AUTO = "(auto)"
COMPLETE_MODEL = "none needed"  # short: the select is ~180 px wide at 900 px; the label says when one is


@st.cache_data(show_spinner=False)
def _samples() -> list[dict]:
    from optim import list_samples

    return list_samples()


@st.cache_data(show_spinner=False)
def _sample_datasets() -> list[str]:
    from optim import SAMPLE_DATASETS

    return [f"sample:{n}" for n in SAMPLE_DATASETS]


@st.cache_data(show_spinner=False)
def _arch_choices() -> list[str]:
    return uploads.arch_choices()


def _name(ref: str | None) -> str:
    if not ref:
        return "—"
    return state.get(state.UPLOAD_NAMES).get(ref, ref)


def _fail(err: OptimError) -> None:
    state.set(state.UPLOAD_ERROR, err.for_dashboard())  # the loader's message names the file


def _accepted(ref: str, name: str) -> None:
    names = dict(state.get(state.UPLOAD_NAMES))
    names[ref] = name
    state.set(state.UPLOAD_NAMES, names)
    state.set(state.UPLOAD_ERROR, None)


def _new(uploader_key: str, signature: tuple) -> bool:
    """Whether this upload (with these settings) has not been handled yet; marks it handled."""
    seen = dict(state.get(state.UPLOAD_SEEN))
    if seen.get(uploader_key) == signature:
        return False
    seen[uploader_key] = signature
    state.set(state.UPLOAD_SEEN, seen)
    return True


#: Why an ONNX upload's variants are ONNX too (the Runtime figure's help).
_RUNTIME_HELP = ("Variants run in ONNX Runtime too: layer techniques edit the model's PyTorch graph, which is "
                 "exported back to ONNX and checked before it is measured. To keep them in PyTorch, turn off "
                 "Run settings › Keep ONNX uploads in ONNX Runtime (`--no-parent-runtime`).")


def load_sample(name: str, dataset: str) -> None:
    state.set(state.MODEL_REF, f"sample:{name}")
    state.set(state.DATA_REF, dataset)
    for key in (state.TARGET, state.TASK, state.ARCH, state.UPLOAD_ERROR):
        state.set(key, None)
    state.set(state.TRUST_PICKLE, False)


# --- page ---------------------------------------------------------------------------------------
state.init()
st.title("Model & data")
st.caption("Pick a bundled sample, or upload your own model and dataset. Every model takes the dataset's raw "
           "features: put scaling and reshaping inside the model.")

# Try the demo: first on the page and usable at once (filled as soon as the current choice has
# loaded, before the baseline's slower measurement below).
demo_box = st.container(border=True)

# Bundled samples -------------------------------------------------------------------------------
try:
    samples = _samples()
except OptimError as err:
    samples = []
    st.error(md(err.for_dashboard()))
if samples:
    by_name = {s["name"]: s for s in samples}
    with st.container(border=True):
        st.markdown("**Bundled sample**")
        # One full-width row each: beside a button the sample's description was cut at 900 px.
        if state.get(state.SAMPLE) not in by_name:
            state.set(state.SAMPLE, next(iter(by_name)))
        picked = st.selectbox(
            "Sample model", list(by_name), key=state.SAMPLE, label_visibility="collapsed",
            format_func=lambda n: f"{n} — on {by_name[n].get('dataset')}, {by_name[n].get('metric_name', 'metric')} "
                                  f"{by_name[n].get('metric_value', float('nan')):.3f}",
        )
        is_loaded = state.get(state.MODEL_REF) == f"sample:{picked}"
        if st.button("Loaded" if is_loaded else "Load sample", disabled=is_loaded):
            load_sample(picked, by_name[picked]["dataset"])
            st.rerun()
        if by_name[picked].get("description"):
            st.caption(by_name[picked]["description"])

# Uploads ---------------------------------------------------------------------------------------
left, right = st.columns(2)
with left, st.container(border=True):
    st.markdown("**Dataset** — CSV with a target column, NPZ (arrays `X`, `y`), or a zip of images in class folders")
    sample_sets = _sample_datasets()
    ds_pick = st.selectbox("Bundled dataset", sample_sets, key=state.DATA_SAMPLE,
                                   index=sample_sets.index(state.get(state.DATA_REF))
                                   if state.get(state.DATA_REF) in sample_sets else 0)
    if st.button("Use this dataset", key=state.USE_DATA_SAMPLE, disabled=state.get(state.DATA_REF) == ds_pick):
        state.set(state.DATA_REF, ds_pick)
        for key in (state.TARGET, state.TASK, state.UPLOAD_ERROR):
            state.set(key, None)
        st.rerun()
    up = st.file_uploader("Upload a dataset", type=uploads.DATA_TYPES, key=state.DATA_UPLOAD)
    target = task = None
    if up is not None:
        # The header is read from the bytes: nothing is written before the upload validates.
        pending = uploads.upload_ref(up.name, up.getvalue())
        columns = uploads.csv_columns(up.name, up.getvalue())
        options = columns or uploads.npz_arrays(up.getvalue())
        if options:
            current = state.get(state.TARGET) if state.get(state.DATA_REF) == pending else None
            choices = [AUTO] + options
            target = st.selectbox("Target column" if columns else "Target array", choices,
                                  index=choices.index(current) if current in choices else 0, key=state.UP_TARGET,
                                  help="The column (CSV) or array (NPZ) the model predicts. (auto): a column "
                                       "named target/label/class/y.")
            target = None if target == AUTO else target
        task = st.radio("Task", [AUTO, "classification", "regression"], horizontal=True, key=state.UP_TASK,
                        help="(auto): classification for labels (strings, booleans, few integer values), "
                             "regression otherwise.")
        task = None if task == AUTO else task
        if _new(state.DATA_UPLOAD, (up.file_id, target, task)):
            try:
                ref, dataset = uploads.accept_dataset(up.name, up.getvalue(), target=target, task=task)
            except OptimError as err:
                _fail(err)
            else:
                state.set(state.DATA_REF, ref)
                state.set(state.TARGET, dataset.extra.get("target") if target is None else target)
                state.set(state.TASK, task)
                _accepted(ref, up.name)
                st.rerun()  # redraw the sidebar and every section with the new choice

with right, st.container(border=True):
    st.markdown("**Model** — TorchScript `.pt`, `torch.export` `.pt2`, ONNX, or weights (safetensors / "
                "state_dict) with their architecture")
    up_m = st.file_uploader("Upload a model", type=uploads.MODEL_TYPES, key=state.MODEL_UPLOAD)
    archs = [COMPLETE_MODEL] + _arch_choices()
    arch = st.selectbox("Architecture (weights files only)", archs, key=state.UP_ARCH,
                        help="For a safetensors file or torch.save(model.state_dict()): the bundled "
                             "architecture or torchvision model the weights belong to, sized from the dataset.")
    arch = None if arch == COMPLETE_MODEL else arch
    trust = st.toggle("Trust pickled files", value=bool(state.get(state.TRUST_PICKLE)), key=state.UP_TRUST,
                      help="Allow a full pickled nn.Module (torch.save(model)). Off by default.")
    if trust:
        st.warning("Loading a pickled model **runs code from the file**. Only enable this for files you "
                   "made yourself or fully trust; TorchScript, ONNX or a state_dict are safe alternatives.")
    if up_m is not None and _new(state.MODEL_UPLOAD, (up_m.file_id, arch, trust, state.get(state.DATA_REF))):
        c = state.choice()
        try:
            with st.spinner(f"Checking {md(up_m.name)} in a separate process…"):
                ref = uploads.accept_model(up_m.name, up_m.getvalue(), data_ref=c.data, target=c.target, task=c.task,
                                           arch=arch, trust_pickle=trust)
        except OptimError as err:
            _fail(err)
        else:
            state.set(state.MODEL_REF, ref)
            state.set(state.ARCH, arch)
            state.set(state.TRUST_PICKLE, bool(trust))
            _accepted(ref, up_m.name)
            st.rerun()

if state.get(state.UPLOAD_ERROR):
    st.error(f"{md(state.get(state.UPLOAD_ERROR))}  \nThe previous choice stays loaded.")

# The current choice ------------------------------------------------------------------------------
choice = state.choice()
st.divider()
st.markdown(f"**Loaded:** model {code(_name(choice.model))} · data {code(_name(choice.data))}"
            + (f" · target {code(choice.target)}" if choice.target else ""))
dataset, baseline, problem = uploads.load_current(choice)
if problem:
    st.error(f"The loaded model and data do not work together: {md(problem)}  \n"
             "Upload a model for this dataset (or pick a sample) to continue.")

with demo_box:
    from optim import get_preset

    demo = get_preset("demo")
    cols = st.columns([2, 1])  # the button's label stays whole on a narrow screen
    cols[0].markdown(f"**Try the demo** on {code(_name(choice.model))}: {md(demo.goal)}")
    if cols[1].button("Try the demo", key=state.DEMO_RUN, type="primary",
                      disabled=not demo.recipes or baseline is None, width="stretch",
                      help="Starts the demo preset in a background worker: " + ", ".join(demo.recipes)):
        try:
            run_panel.start_run(list(demo.recipes), name="demo", **demo.run_settings)
        except OptimError as err:
            st.error(md(err.for_dashboard()))
        else:
            st.switch_page("app_pages/run.py")

if dataset is not None:
    summary = uploads.cached_dataset_summary(choice.data, choice.target, choice.task)
    st.subheader("Data")
    metric_row([
        dict(label="Rows", value=f"{summary['n_rows']:,}"),
        dict(label="Features", value=f"{summary['n_features']:,}"),
        dict(label="Task", value=summary["task"]),
        dict(label="Classes", value=len(summary.get("classes", {}))) if summary["task"] == "classification"
        else dict(label="Target mean", value=f"{summary['target_stats']['mean']:.3g}"),
    ], key="data_figures")
    if summary.get("description"):
        st.caption(summary["description"])
    d1, d2 = st.columns([3, 2])
    with d1:
        if summary.get("images"):
            st.markdown("First images")
            st.image(summary["images"], caption=summary["image_labels"], width=56, clamp=True)
        st.markdown("First rows")
        st.dataframe(summary["preview"], hide_index=True, height=240)
    with d2:
        if summary.get("classes"):
            st.markdown("Class balance")
            st.bar_chart({"rows": summary["classes"]}, height=240)
        elif summary.get("target_stats"):
            st.markdown("Target")
            st.dataframe([summary["target_stats"]], hide_index=True)

if baseline is not None:
    args = uploads.choice_args(choice)
    info = uploads.cached_model_summary(*args)
    st.subheader("Model")
    metric_row([
        dict(label="Parameters", value=f"{info['params']:,}"),
        dict(label="MACs / sample", value=f"{info['macs']:,}" if info.get("macs") is not None else "—"),
        dict(label="Input shape", value=" × ".join(map(str, info["input_shape"]))),
        dict(label="Runtime", value=info["runtime"], help=_RUNTIME_HELP if info["runtime"] == "onnxruntime" else None),
    ], key="model_figures")
    with st.expander(f"Layers ({info['n_layers']})"):
        st.dataframe(info["layers"], hide_index=True)

    st.subheader("Baseline")
    try:
        with st.spinner("Measuring the baseline (metric, size, latency, energy) in a separate process…"):
            metrics = uploads.cached_baseline_metrics(*args, int(state.get(state.THREADS)), int(state.get(state.BATCH)),
                                                      name=_name(choice.model))
    except OptimError as err:
        st.error(f"Measuring the baseline failed: {md(err.for_dashboard())}")
    else:
        value = metrics.get("metric_value")
        p50 = metrics.get("latency_ms_p50_b1")
        energy = metrics.get("energy_j_per_1k")
        metric_row([
            dict(label=metrics.get("metric_name", "metric"), value=f"{value:.4f}" if value is not None else "—"),
            dict(label="Size", value=f"{metrics.get('size_bytes', 0) / 1024:,.1f} kB"),
            dict(label="Latency p50, batch 1", value=f"{p50:.3f} ms" if p50 is not None else "—"),
            dict(label="Energy / 1k (estimate)", value=f"{energy:.3g} J" if energy is not None else "—",
                 help=f"CodeCarbon estimate per 1,000 predictions, method: {metrics.get('energy_method', '?')}."),
        ], key="baseline_figures")
        st.caption(f"Quick measurement with short budgets on {metrics.get('threads', state.get(state.THREADS))} "
                   "thread(s); a run measures every candidate (baseline included) the same, longer way.")

