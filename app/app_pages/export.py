"""Export: a candidate as ONNX, TorchScript or safetensors with its model card, plus the results
table and the charts. Thin page: optim.export writes and checks the files; this page offers them."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app import state
from app.components import charts as ui_charts
from app.components import tables
from app.components.text import md
from optim import EXPORT_FORMATS as FORMATS
from optim import (
    Constraints,
    OptimError,
    baseline_of,
    chromium_path,
    display_ref,
    export_formats,
    export_name,
    export_to_temp,
    figures_html,
    figures_png_zip,
    headline,
    recommend,
)

FORMAT_LABELS = {"onnx": "ONNX (.onnx)", "torchscript": "TorchScript (.pt)", "safetensors": "safetensors (weights)"}
FORMAT_HELP = ("ONNX runs in ONNX Runtime anywhere (C++, C#, Java, JS, mobile); TorchScript runs in PyTorch "
               "without Python code; safetensors holds only the weights (load them into the architecture). "
               "Every exported model takes the dataset's raw features: scaling and feature selection are inside.")
MIME = {"onnx": "application/octet-stream", "torchscript": "application/octet-stream",
        "safetensors": "application/octet-stream"}

run = tables.run_page("Export")

rows = tables.rows_of(run)
base = baseline_of(rows) or {}
ok = [r for r in rows if r.get("status") == "ok"]
by_id = {r["candidate_id"]: r for r in ok}
pick, _ = recommend(rows, Constraints(**state.get(state.LIMITS)))

# --- one candidate as a model file ------------------------------------------------------------------
st.subheader("Model")
ids = list(by_id)
if st.session_state.get(state.EXPORT_CANDIDATE) not in ids:
    st.session_state[state.EXPORT_CANDIDATE] = pick if pick in ids else ids[0]


def _label(cid: str) -> str:
    r = by_id[cid]
    gains = "baseline" if r is base else headline(base, r)
    return f"{cid} · {r.get('recipe')}" + (" (recommended)" if cid == pick else "") + f" — {gains}"


@st.cache_data(show_spinner=False, max_entries=64)
def _formats(run_dir: str, cid: str, run_id: str) -> dict[str, str | None]:
    try:
        return export_formats(run_dir, cid, run_id=run_id)
    except OptimError as err:  # the candidate's file is missing: every format says so
        return {f: err.for_dashboard() for f in FORMATS}


cols = st.columns([1, 1])
cid = cols[0].selectbox("Candidate", ids, key=state.EXPORT_CANDIDATE, format_func=_label)
why_not = _formats(run["out_dir"], cid, run["id"])
# Only the formats this candidate can be written in are offered; the others say why not.
offered = [f for f in FORMATS if why_not.get(f) is None]
if st.session_state.get(state.EXPORT_FORMAT) not in offered and offered:
    st.session_state[state.EXPORT_FORMAT] = offered[0]
fmt = cols[1].radio("Format", offered or list(FORMATS), key=state.EXPORT_FORMAT, horizontal=True,
                    format_func=FORMAT_LABELS.get, help=FORMAT_HELP, disabled=not offered)
for f in FORMATS:
    if why_not.get(f):
        cols[1].caption(f"{FORMAT_LABELS[f]} is not available: {md(why_not[f])}")
row = by_id[cid]
spec = run.get("spec") or {}
model_name = display_ref(spec.get("model"), {**(spec.get("labels") or {}), **state.get(state.UPLOAD_NAMES)})
file_name = export_name(model_name, str(row.get("recipe") or cid), fmt)


def _export() -> None:
    previous = state.get(state.EXPORT_RESULT) or {}
    result = {"run": run["id"], "cid": cid, "fmt": fmt}
    try:
        # One temp folder per session at a time: the previous export's is deleted.
        res = export_to_temp(run["out_dir"], cid, fmt, file_name=file_name, run_id=run["id"],
                             replaces=previous.get("dir"))
        result.update(dir=str(res.path.parent), path=str(res.path), card_md=str(res.card_md),
                      card_json=str(res.card_json), check=res.check)
    except OptimError as err:
        result["error"] = err.for_dashboard()
    state.set(state.EXPORT_RESULT, result)


if st.button(f"Export {cid} as {FORMAT_LABELS[fmt]}", type="primary", key=state.EXPORT_DO, disabled=not offered,
             help=f"Writes {file_name} and its model card, then checks the file against the candidate."):
    with st.spinner("Exporting and checking…"):
        _export()

res = state.get(state.EXPORT_RESULT)
if res and (res["run"], res["cid"], res["fmt"]) == (run["id"], cid, fmt):
    if res.get("error"):
        st.error(f"Export failed: {md(res['error'])}")
    elif all(Path(res[k]).is_file() for k in ("path", "card_md", "card_json")):
        path = Path(res["path"])
        st.success(f"**{path.name}** written ({path.stat().st_size:,} bytes). {res['check']}")
        d = st.columns(3)
        d[0].download_button(f"Download {path.name}", path.read_bytes(), file_name=path.name, mime=MIME[fmt],
                             type="primary", key="dl_model", on_click="ignore")
        for col, (label, kind, mime) in zip(d[1:], (("Model card (Markdown)", "card_md", "text/markdown"),
                                                    ("Model card (JSON)", "card_json", "application/json"))):
            card = Path(res[kind])
            col.download_button(label, card.read_text(), file_name=card.name, mime=mime, key=f"dl_{kind}",
                                on_click="ignore")
        with st.expander("Model card"):
            st.markdown(Path(res["card_md"]).read_text())
    else:
        st.info("The exported files are gone (temporary folder cleaned): export again.")

# --- the run's results and charts -------------------------------------------------------------------
st.subheader("Results and charts")
out_dir = Path(run["out_dir"])
results_csv = out_dir / "results.csv"
c = st.columns(3)
c[0].download_button(
    "Results table (CSV)",
    (lambda: results_csv.read_bytes()) if results_csv.is_file() else tables.table_of(run).to_csv(index=False),
    file_name=f"optim-{run['id']}-results.csv", mime="text/csv", key="dl_results_csv", on_click="ignore",
    help="Every measured column of every candidate, as the run wrote it.")
c[1].download_button(
    "Comparison with deltas (CSV)", lambda: tables.table_of(run).to_csv(index=False),
    file_name=f"optim-{run['id']}-comparison.csv", mime="text/csv", key="dl_comparison_csv", on_click="ignore",
    help="The Compare page's table: values in display units, ×, % and better/worse against the baseline.")
names = ui_charts.available(run)


def _charts_html() -> str:
    return figures_html({n: ui_charts.figure(run, n) for n in names}, title=f"optim charts — run {run['id']}")


c[2].download_button("Charts (HTML, works offline)", _charts_html, file_name=f"optim-{run['id']}-charts.html",
                     mime="text/html", key="dl_charts_html", on_click="ignore", disabled=not names)

png = state.get(state.CHARTS_PNG)
if chromium_path() is None:
    st.warning("PNG charts are unavailable: Kaleido renders them with Chromium or Chrome and none is installed "
               "(Debian: `apt-get install chromium`, or set BROWSER_PATH). The HTML charts above work without it.")
elif st.button(f"Render {len(names)} charts as PNG", key=state.EXPORT_PNG, disabled=not names):
    with st.spinner("Rendering with Chromium…"):
        try:
            figs = {n: ui_charts.figure(run, n) for n in names}
            png = {"run": run["id"], "zip": figures_png_zip(figs), "names": list(figs)}
        except RuntimeError as err:
            png = {"run": run["id"], "error": str(err)}
        state.set(state.CHARTS_PNG, png)
if png and png.get("run") == run["id"]:
    if png.get("error"):
        st.error(f"PNG export failed: {md(png['error'])}")
    else:
        st.download_button(f"Charts (PNG, {len(png['names'])} images in a zip)", png["zip"],
                           file_name=f"optim-{run['id']}-charts-png.zip", mime="application/zip",
                           key="dl_charts_png", on_click="ignore")
