"""A variant of an uploaded ONNX model runs in ONNX Runtime like its parent: layer techniques edit its
PyTorch graph, the result is exported back, checked, and carries the parent's runtime settings; where
that cannot be done the row says its latency is not comparable."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optim.candidate import load_candidate, save_candidate
from optim.compare import comparison_table
from optim.experiment import make_candidates, parse_recipe
from optim.parent_runtime import MISMATCH, NOTE, pytorch_hint
from optim.techniques.edge import ATOL, RTOL
from tests.matrix_models import ResidualCNN, make_dataset, save_model


@pytest.fixture(scope="module")
def onnx_upload(tmp_path_factory):
    """A tiny residual CNN uploaded as ONNX: run by ONNX Runtime, edited on a torch.fx graph of it (the
    module itself, traced: what optim.io.convert's onnx2torch route gives, without its seconds)."""
    from optim.candidate import Candidate, OnnxModel

    torch.manual_seed(0)
    dataset = make_dataset("images")
    module = ResidualCNN(4).eval()
    path = save_model(module, "onnx", dataset.X, tmp_path_factory.mktemp("upload") / "cnn.onnx")
    baseline = Candidate(OnnxModel(path.read_bytes()), "classification", (64,), 4,
                         editable=torch.fx.symbolic_trace(module))
    return baseline, dataset.splits()


def _made(recipe, baseline, splits, ctx_for, **kw):
    (parsed,) = parse_recipe(recipe)
    return make_candidates(parsed, baseline, ctx_for(splits), seed=0, **kw)


def test_a_pruned_onnx_upload_runs_in_onnx_runtime_and_matches_its_torch_graph(onnx_upload, ctx_for, tmp_path):
    baseline, splits = onnx_upload
    (kept,) = _made("prune-magnitude:sparsity=0.5,finetune_epochs=0", baseline, splits, ctx_for,
                    parent_runtime=False)
    (cand,) = _made("prune-magnitude:sparsity=0.5,finetune_epochs=0", baseline, splits, ctx_for)
    assert kept.kind == "torch" and "latency not comparable" in kept.info[MISMATCH]
    assert cand.kind == "onnx" and MISMATCH not in cand.info
    assert cand.model.providers == baseline.model.providers
    assert cand.model.graph_optimization == baseline.model.graph_optimization
    X = splits.test.X
    assert np.allclose(cand.predict(X), kept.predict(X), atol=ATOL, rtol=RTOL)
    # The lineage says so, and replays it; the pruning's own facts stay in the row.
    assert [s.technique for s in cand.lineage] == ["prune-magnitude", "onnx-runtime"]
    assert cand.recipe.endswith("+onnx-runtime") and cand.title.endswith("+onnx-runtime (like the upload)")
    assert "measured in ONNX Runtime like its parent" in cand.info[NOTE]
    assert cand.info["max_abs_diff_vs_torch"] <= ATOL
    # As a run folder (and a Ray task) carries it: the same runtime settings, title and note.
    save_candidate(cand, tmp_path / "c1", candidate_id="c1", run_id="r")
    again, _ = load_candidate(tmp_path / "c1")
    assert (again.kind, again.title, again.info[NOTE]) == ("onnx", cand.title, cand.info[NOTE])
    assert again.model.providers == cand.model.providers
    # Its TorchScript / safetensors export is refused with the way to the PyTorch model.
    assert "--no-parent-runtime" in pytorch_hint(cand) and pytorch_hint(baseline) == ""
    assert set(kept.info) - {MISMATCH} <= set(cand.info)
    # Half the weights are zero in the exported graph too (the ONNX file holds what was pruned).
    import onnx
    from onnx import numpy_helper

    weights = [numpy_helper.to_array(t) for t in onnx.load_model_from_string(cand.model.model_bytes).graph.initializer
               if len(t.dims) == 4]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.size for w in weights)
    assert 0.45 <= zeros <= 0.55


def test_a_variant_that_cannot_go_back_to_onnx_is_flagged(onnx_upload, ctx_for):
    baseline, splits = onnx_upload
    (cand,) = _made("half:dtype=bf16", baseline, splits, ctx_for)
    assert cand.kind == "torch"
    assert cand.info[MISMATCH].startswith("measured in PyTorch, parent in ONNX Runtime: latency not comparable")
    assert "bfloat16" in cand.info[MISMATCH]
    rows = [{"candidate_id": "c0", "recipe": "baseline", "status": "ok", "latency_ms_p50_b1": 1.0},
            {"candidate_id": "c1", "recipe": cand.recipe, "status": "ok", MISMATCH: cand.info[MISMATCH],
             "latency_ms_p50_b1": 3.0}]
    flags = comparison_table(rows).set_index("ID").at["c1", "Flags"]
    # Its latency compares two runtimes: one flag says so, not also a "slower" that would blame the technique.
    assert "latency not comparable" in flags and "slower than parent" not in flags
    rows[1].pop(MISMATCH)
    assert "slower than parent" in comparison_table(rows).set_index("ID").at["c1", "Flags"]



def _sidebar_and_spec() -> None:
    """Script for AppTest: the sidebar, then the spec a run would start with."""
    import streamlit as st

    from app.components import run_panel, sidebar

    sidebar.render()
    st.session_state["spec_parent_runtime"] = run_panel.spec_from_state(["prune-magnitude"]).parent_runtime


def test_the_dashboard_can_keep_variants_in_pytorch() -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_sidebar_and_spec, default_timeout=30)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.toggle(key="parent_runtime").value is True and at.session_state["spec_parent_runtime"] is True
    at.toggle(key="parent_runtime").set_value(False).run()
    assert at.session_state["spec_parent_runtime"] is False
