"""End to end in a real browser: upload a CSV dataset and a TorchScript model, switch two
techniques on, run, read the Compare table and charts, export ONNX, and check with ONNX Runtime
that the exported model predicts with the accuracy the table shows. Screenshots of every page
land in test-artifacts/e2e/.

Streamlit draws after load over a websocket, so every step waits for the app's own text and
state (tests/e2e/_ui.py).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from optim import get_preset
from tests.e2e._ui import heading, idle, nav, open_page, pick, snap, switch_on, toggle, until, upload

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

RUN_TIMEOUT_MS = 240_000


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A breast-cancer CSV (sklearn's, target column "target") and the bundled MLP as TorchScript."""
    from sklearn.datasets import load_breast_cancer

    from optim.io.models import load_sample

    folder = tmp_path_factory.mktemp("e2e-inputs")
    csv = folder / "breast_cancer.csv"
    load_breast_cancer(as_frame=True).frame.to_csv(csv, index=False)
    candidate, _ = load_sample("breast-cancer-mlp")
    name, data = candidate.serialize()
    assert name.endswith(".pt")
    model = folder / "breast_cancer_mlp.pt"
    model.write_bytes(data)  # TorchScript: loads without pickles
    return {"csv": csv, "model": model}


def test_upload_run_compare_export(page, app_url, inputs, artifacts, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # 1. Model & data: upload the dataset, then the model.
    open_page(page, app_url, "Model & data")
    upload(page, "Upload a dataset", inputs["csv"])
    upload(page, "Upload a model", inputs["model"])
    page.get_by_role("heading", name="Baseline").wait_for(timeout=90_000)
    idle(page)
    snap(page, artifacts, "1-model-data")

    # 2. Techniques: switch two on; the page lists what will run. (A TorchScript upload cannot be
    # edited layer by layer, so pruning and dynamic int8 are disabled for it: these two apply.)
    nav(page, "Techniques")
    switch_on(page, "Quantization", "quantize-static")
    switch_on(page, "Edge & distributed inference", "onnx-runtime")
    page.get_by_text(re.compile(r"2 recipe\(s\) → 2 variant\(s\)")).wait_for()
    # Run settings (sidebar): a quick measurement, with the demo's short budgets; the results say so.
    sidebar = page.locator('[data-testid="stSidebar"]')
    settings = sidebar.locator('[data-testid="stExpander"] summary').filter(has_text="Run settings")
    quick = sidebar.locator('[data-testid="stCheckbox"]').filter(has_text="Quick measurement")
    until(page, settings.click, lambda ms: quick.wait_for(timeout=ms), "open Run settings")
    toggle(page, "Quick measurement")
    snap(page, artifacts, "2-techniques")

    # 3. Run: starts a worker; wait for it to finish. (Clicked once: a second click would queue a
    # second run.)
    page.get_by_role("button", name="Run", exact=True).click()
    heading(page, "Run").wait_for()
    page.get_by_text("Finished — all 2 variant(s) measured.", exact=True).wait_for(timeout=RUN_TIMEOUT_MS)
    idle(page)
    said = f"Quick measurement: latency from {get_preset('demo').run_settings['latency_budget_s']:g} s of timed repeats"
    note = page.locator('[data-testid="stCaptionContainer"]').filter(has_text=said)
    assert note.count() == 1
    snap(page, artifacts, "3-run")
    until(page, page.get_by_role("button", name="Open in Compare").click,
          lambda ms: heading(page, "Compare").wait_for(timeout=ms), "open the run in Compare")

    # 4. Compare: the table has the baseline and both variants; the charts render.
    idle(page)
    assert note.count() == 1  # the figures are said to come from a quick measurement
    toggle(page, "Only candidates within the limits")  # off: every row, whatever the limits
    grid = page.locator('[data-testid="stDataFrame"]').first
    # The grid's accessible cells are filled in once it has drawn every row.
    grid.locator('[role="gridcell"]').filter(has_text=re.compile(r"^c2$")).first.wait_for(state="attached")
    headers = grid.locator('[role="columnheader"]').all_inner_texts()
    rows = [r.locator('[role="gridcell"]').all_inner_texts() for r in grid.locator('[role="row"]').all()[1:]]
    rows = [r for r in rows if r and r[0]]
    table = {r[0]: dict(zip(headers, r)) for r in rows}
    assert set(table) == {"c0", "c1", "c2"}, table
    recipes = {cid: r["Recipe"] for cid, r in table.items()}
    assert recipes["c0"] == "baseline" and set(recipes.values()) == {"baseline", "quantize-static", "onnx-runtime"}
    assert all(r["Status"] == "ok" for r in table.values())
    for r in table.values():
        assert 80.0 <= float(r["Accuracy (%)"]) <= 100.0 and float(r["Size (KB)"]) > 0
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    assert page.locator(".js-plotly-plot .scatterlayer .trace").count() >= 2  # front line + markers
    snap(page, artifacts, "4-compare")
    bars = page.locator(".js-plotly-plot .barlayer").first
    until(page, page.get_by_role("tab", name="Per metric").click, lambda ms: bars.wait_for(timeout=ms),
          "open the Per metric tab")
    idle(page)
    snap(page, artifacts, "4b-compare-bars")
    int8_id = next(cid for cid, rec in recipes.items() if rec == "quantize-static")
    table_accuracy = float(table[int8_id]["Accuracy (%)"]) / 100
    assert float(table[int8_id]["Size (KB)"]) < float(table["c0"]["Size (KB)"])

    # 5. Export the int8 candidate as ONNX and download it.
    nav(page, "Export")
    export = page.get_by_role("button", name=f"Export {int8_id} as ONNX (.onnx)")
    until(page, lambda: pick(page, "Candidate", re.compile(rf"^{int8_id} · quantize-static")),
          lambda ms: export.wait_for(timeout=ms), f"pick {int8_id}")
    idle(page)
    # The file is named after the upload and the recipe, not the candidate id.
    file_name = "breast_cancer_mlp-quantize-static.onnx"
    written = page.get_by_text(re.compile(rf"{re.escape(file_name)} written"))
    until(page, export.click, lambda ms: written.wait_for(timeout=ms), "export")
    idle(page)
    with page.expect_download() as dl:
        page.get_by_role("button", name=f"Download {file_name}").click()
    assert dl.value.suggested_filename == file_name
    onnx_path = tmp_path / file_name
    dl.value.save_as(onnx_path)
    # The charts as PNG: Kaleido renders them with the same system Chromium.
    page.get_by_role("button", name=re.compile(r"^Render \d+ charts as PNG")).click()
    with page.expect_download(timeout=120_000) as png_dl:
        page.get_by_role("button", name=re.compile(r"^Charts \(PNG")).click(timeout=120_000)
    png_zip = tmp_path / "charts.zip"
    png_dl.value.save_as(png_zip)
    with zipfile.ZipFile(png_zip) as z:
        pngs = [n for n in z.namelist() if n.endswith(".png")]
        assert "pareto.png" in pngs and all(z.read(n)[:8] == b"\x89PNG\r\n\x1a\n" for n in pngs)
    snap(page, artifacts, "5-export")

    import onnxruntime as ort

    from optim.io.datasets import load_dataset

    test = load_dataset(str(inputs["csv"])).splits().test
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {sess.get_inputs()[0].name: np.asarray(test.X, np.float32)})[0]
    accuracy = float((logits.argmax(axis=1) == test.y).mean())
    assert abs(accuracy - table_accuracy) * 100 <= 1.0, (accuracy, table_accuracy)

    # 6. History lists the run; 7. the report renders.
    nav(page, "History")
    page.get_by_text("breast_cancer_mlp.pt on breast_cancer.csv").first.wait_for()
    snap(page, artifacts, "6-history")
    # The run card's Open button (the tag filter's dropdown toggle is also a button labelled "Open",
    # without text): back to this run's Compare page.
    until(page, page.get_by_role("button", name="Open", exact=True).filter(has_text="Open").first.click,
          lambda ms: heading(page, "Compare").wait_for(timeout=ms), "open the run from History")
    idle(page)
    nav(page, "Report")
    page.get_by_role("button", name="Download report (HTML)").wait_for(timeout=90_000)
    frame = page.frame_locator("iframe").first
    frame.get_by_text("Model optimization report — breast_cancer_mlp.pt on breast_cancer.csv").wait_for(timeout=60_000)
    frame.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    snap(page, artifacts, "7-report")
