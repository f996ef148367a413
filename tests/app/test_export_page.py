"""Export page (AppTest): exports a stored candidate with its model card; an ExportError shows an
error box; the results and charts are offered for download."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from app import state
from tests.app._stored import copy_store, page


def test_export_onnx_with_card_and_error_box(small_run, optim_home, load_sample) -> None:
    run_id, rows = copy_store(small_run, optim_home)
    by_recipe = {r["recipe"]: r for r in rows}
    pruned = by_recipe["prune-magnitude:sparsity=0.5"]
    at = page("export")
    labels = {b.label for b in at.get("download_button")}
    assert {"Results table (CSV)", "Comparison with deltas (CSV)", "Charts (HTML, works offline)"} <= labels
    at.selectbox(key=state.EXPORT_CANDIDATE).set_value(pruned["candidate_id"]).run()  # its formats follow
    assert at.radio(key=state.EXPORT_FORMAT).options == ["ONNX (.onnx)", "TorchScript (.pt)", "safetensors (weights)"]
    at.radio(key=state.EXPORT_FORMAT).set_value("onnx").run()
    at.button(key=state.EXPORT_DO).click().run()
    assert not at.exception, [e.value for e in at.exception]
    res = at.session_state[state.EXPORT_RESULT]
    assert "error" not in res, res
    model = Path(res["path"])
    # Named after the model and the recipe, not the candidate id.
    assert model.name == "digits_mlp-prune-magnitude_sparsity0.5.onnx" and model.stat().st_size > 100_000
    assert any("ONNX Runtime matches PyTorch" in s.value for s in at.success)
    assert {f"Download {model.name}", "Model card (Markdown)", "Model card (JSON)"} <= {
        b.label for b in at.get("download_button")
    }
    card = json.loads(Path(res["card_json"]).read_text())
    assert card["candidate_id"] == pruned["candidate_id"] and card["metrics"]["accuracy"] == pruned["accuracy"]
    # The exported file predicts the test split with the accuracy the table shows.
    _, splits = load_sample("digits-mlp")
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {sess.get_inputs()[0].name: splits.test.X.astype(np.float32)})[0]
    acc = float((logits.argmax(1) == splits.test.y).mean())
    assert abs(acc - pruned["accuracy"]) <= 0.01

    assert card["source"]["model"] == "digits-mlp" and card["file"] == model.name

    # PyTorch int8 kernels have no ONNX form: the page offers only what the candidate can be
    # written in (optim.export_formats) and says why not before any click.
    q = by_recipe["quantize-dynamic"]
    at.selectbox(key=state.EXPORT_CANDIDATE).set_value(q["candidate_id"]).run()
    assert not at.exception
    assert at.radio(key=state.EXPORT_FORMAT).options == ["TorchScript (.pt)"]
    assert at.session_state[state.EXPORT_FORMAT] == "torchscript"
    why = [c.value for c in at.caption if "is not available" in c.value]
    assert any(w.startswith("ONNX (.onnx) is not available") and "int8" in w for w in why), why
    assert any(w.startswith("safetensors (weights) is not available") for w in why), why
    at.button(key=state.EXPORT_DO).click().run()
    res = at.session_state[state.EXPORT_RESULT]
    assert res["fmt"] == "torchscript" and Path(res["path"]).is_file() and not Path(model).exists()
    assert Path(res["path"]).name == "digits_mlp-quantize-dynamic.pt"
