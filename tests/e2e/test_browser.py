"""End to end in a real browser: upload a CSV dataset and a TorchScript model, switch two
techniques on, run, read the Compare table and charts, export ONNX, and check with ONNX Runtime
that the exported model predicts with the accuracy the table shows. Screenshots of every page
land in test-artifacts/e2e/.

Streamlit draws after load over a websocket, so every step waits for the app's own text.
"""

from __future__ import annotations

import re
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

RUN_TIMEOUT_MS = 240_000


def _snap(page, artifacts: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    """A screenshot of the whole page: Streamlit scrolls inside .stMain, so grow the viewport to it."""
    size = page.viewport_size
    height = page.evaluate("() => { const m = document.querySelector('.stMain'); return m ? m.scrollHeight : 1000; }")
    page.set_viewport_size({"width": size["width"], "height": min(max(int(height) + 40, size["height"]), 8000)})
    # Two animation frames: the browser has laid out and painted the new size (no fixed wait).
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    page.screenshot(path=str(artifacts / f"{name}.png"))
    page.set_viewport_size(size)


BUSY = ('[data-testid="stStatusWidgetRunningIcon"], [data-testid="stStatusWidgetRunningManIcon"], '
        '[data-testid="stSpinner"], [data-stale="true"]')


def _idle(page, timeout_s: float = 120) -> None:  # type: ignore[no-untyped-def]
    """Wait until the script has finished its rerun: no running icon, spinner or stale element,
    twice in a row half a second apart (a rerun may start a moment after the click)."""
    deadline = time.time() + timeout_s
    quiet = 0
    while quiet < 2:
        if time.time() > deadline:
            raise TimeoutError(f"the app stayed busy for {timeout_s} s")
        page.wait_for_timeout(500)
        quiet = 0 if page.locator(BUSY).count() else quiet + 1


def _nav(page, title: str) -> None:  # type: ignore[no-untyped-def]
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=re.compile(rf"{re.escape(title)}$")).click()
    page.get_by_role("heading", name=title, exact=True).wait_for()
    _idle(page)


def _upload(page, label: str, path: Path) -> None:  # type: ignore[no-untyped-def]
    uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text=label)
    uploader.locator('input[type="file"]').set_input_files(str(path))
    # The app confirms a valid upload in its "Loaded:" line (a bad one shows an error box instead).
    page.locator('[data-testid="stMarkdownContainer"]').filter(has_text="Loaded:").filter(has_text=path.name) \
        .wait_for(timeout=90_000)
    _idle(page)


def _switch_on(page, family: str, technique: str) -> None:  # type: ignore[no-untyped-def]
    # The page checks which techniques apply to the uploaded model before it draws the families (tabs).
    tab = page.get_by_role("tab", name=re.compile(re.escape(family))).first
    tab.wait_for(timeout=120_000)
    label = re.compile("^" + re.escape(technique) + " ")
    toggle = page.locator('[data-testid="stCheckbox"]').filter(has_text=label).first
    # A click that lands while the script reruns can be lost on a loaded machine: the app's state
    # (is the toggle shown?) decides whether to click again, never a fixed wait.
    for _ in range(3):
        if toggle.is_visible():
            break
        tab.click()
        _idle(page)
    _toggle(page, label)


def _toggle(page, label) -> None:  # type: ignore[no-untyped-def]
    """Flip a Streamlit toggle by clicking its label (the switch input itself is covered), then
    wait until the app has rerun and shows it flipped; click again if the click was lost."""
    box = page.locator('[data-testid="stCheckbox"]').filter(has_text=label).first
    switch = box.locator('input[type="checkbox"]')
    before = switch.is_checked()
    for _ in range(3):
        box.locator("label").click()
        _idle(page)
        if switch.is_checked() != before:
            return
    raise AssertionError(f"the toggle {label!r} did not change after 3 clicks")


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
    page.goto(app_url)
    page.get_by_role("heading", name="Model & data", exact=True).wait_for(timeout=60_000)
    _idle(page)
    _upload(page, "Upload a dataset", inputs["csv"])
    _upload(page, "Upload a model", inputs["model"])
    page.get_by_role("heading", name="Baseline").wait_for(timeout=90_000)
    _idle(page)
    _snap(page, artifacts, "1-model-data")

    # 2. Techniques: switch two on; the page lists what will run. (A TorchScript upload cannot be
    # edited layer by layer, so pruning and dynamic int8 are disabled for it: these two apply.)
    _nav(page, "Techniques")
    _switch_on(page, "Quantization", "quantize-static")
    _switch_on(page, "Edge & distributed inference", "onnx-runtime")
    page.get_by_text(re.compile(r"2 recipe\(s\) → 2 variant\(s\)")).wait_for()
    _snap(page, artifacts, "2-techniques")

    # 3. Run: starts a worker; wait for it to finish.
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_role("heading", name="Run", exact=True).wait_for()
    page.get_by_text("Finished — all 2 variant(s) measured.", exact=True).wait_for(timeout=RUN_TIMEOUT_MS)
    _idle(page)
    _snap(page, artifacts, "3-run")
    page.get_by_role("button", name="Open in Compare").click()

    # 4. Compare: the table has the baseline and both variants; the charts render.
    page.get_by_role("heading", name="Compare", exact=True).wait_for()
    _idle(page)
    _toggle(page, "Only candidates within the limits")  # off: every row, whatever the limits
    grid = page.locator('[data-testid="stDataFrame"]').first
    grid.wait_for()
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
    _snap(page, artifacts, "4-compare")
    page.get_by_role("tab", name="Per metric").click()
    _idle(page)
    page.locator(".js-plotly-plot .barlayer").first.wait_for(timeout=60_000)
    _snap(page, artifacts, "4b-compare-bars")
    int8_id = next(cid for cid, rec in recipes.items() if rec == "quantize-static")
    table_accuracy = float(table[int8_id]["Accuracy (%)"]) / 100
    assert float(table[int8_id]["Size (KB)"]) < float(table["c0"]["Size (KB)"])

    # 5. Export the int8 candidate as ONNX and download it.
    _nav(page, "Export")
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Candidate").click()
    page.get_by_role("option", name=re.compile(rf"^{int8_id} · quantize-static")).click()
    _idle(page)
    page.get_by_role("button", name=f"Export {int8_id} as ONNX (.onnx)").click()
    # The file is named after the upload and the recipe, not the candidate id.
    file_name = "breast_cancer_mlp-quantize-static.onnx"
    page.get_by_text(re.compile(rf"{re.escape(file_name)} written")).wait_for(timeout=90_000)
    _idle(page)
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
    _snap(page, artifacts, "5-export")

    import onnxruntime as ort

    from optim.io.datasets import load_dataset

    test = load_dataset(str(inputs["csv"])).splits().test
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {sess.get_inputs()[0].name: np.asarray(test.X, np.float32)})[0]
    accuracy = float((logits.argmax(axis=1) == test.y).mean())
    assert abs(accuracy - table_accuracy) * 100 <= 1.0, (accuracy, table_accuracy)

    # 6. History lists the run; 7. the report renders.
    _nav(page, "History")
    page.get_by_text("breast_cancer_mlp.pt on breast_cancer.csv").first.wait_for()
    _snap(page, artifacts, "6-history")
    # The run card's Open button (the tag filter's dropdown toggle is also a button labelled "Open",
    # without text): back to this run's Compare page.
    page.get_by_role("button", name="Open", exact=True).filter(has_text="Open").first.click()
    page.get_by_role("heading", name="Compare", exact=True).wait_for()
    _idle(page)
    _nav(page, "Report")
    page.get_by_role("button", name="Download report (HTML)").wait_for(timeout=90_000)
    frame = page.frame_locator("iframe").first
    frame.get_by_text("Model optimization report — breast_cancer_mlp.pt on breast_cancer.csv").wait_for(timeout=60_000)
    frame.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    _snap(page, artifacts, "7-report")
