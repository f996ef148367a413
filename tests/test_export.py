import io

import numpy as np
import pytest
import torch

from optim.errors import ExportError
from optim.export import export_candidate, load_run_candidate


def _ok(rows, recipe):
    return next(r for r in rows if r["recipe"] == recipe)


def test_torchscript_and_safetensors_reproduce_the_candidate(small_run, tmp_path):
    results, _ = small_run
    row = _ok(results.rows, "prune-magnitude:sparsity=0.9")
    cand = load_run_candidate(results.out_dir, row["candidate_id"])
    X = np.random.default_rng(0).random((8, 64), dtype=np.float32) * 16
    want = cand.predict(X)

    res = export_candidate(results.out_dir, row["candidate_id"], "torchscript", tmp_path / "m.pt")
    ts = torch.jit.load(str(res.path))
    assert np.allclose(ts(torch.from_numpy(X)).detach().numpy(), want, atol=1e-5)

    res = export_candidate(results.out_dir, row["candidate_id"], "safetensors", tmp_path / "w.safetensors")
    from safetensors.torch import load_file

    from optim.archs import build_arch

    model = build_arch("digits-mlp", 64, 10)
    model.load_state_dict(load_file(str(res.path)))
    assert np.allclose(model(torch.from_numpy(X)).detach().numpy(), want, atol=1e-5)
    assert res.card_json.exists() and "prune-magnitude" in res.card_md.read_text()


def test_onnx_export_is_checked(small_run, tmp_path):
    results, _ = small_run
    res = export_candidate(results.out_dir, "c0", "onnx", tmp_path / "base.onnx")
    assert "onnx.checker passed" in res.check and "max |diff|" in res.check


def test_torch_int8_cannot_become_onnx_or_safetensors(small_run, tmp_path):
    results, _ = small_run
    cid = _ok(results.rows, "quantize-dynamic")["candidate_id"]
    with pytest.raises(ExportError, match="TorchScript"):
        export_candidate(results.out_dir, cid, "onnx", tmp_path / "q.onnx")
    with pytest.raises(ExportError, match="safetensors"):
        export_candidate(results.out_dir, cid, "safetensors", tmp_path / "q.safetensors")
    res = export_candidate(results.out_dir, cid, "torchscript", tmp_path / "q.pt")
    assert res.path.stat().st_size < 0.35 * (results.out_dir / "candidates/c0/model.pt").stat().st_size


def test_unknown_format(small_run, tmp_path):
    with pytest.raises(ExportError, match="format='tflite'"):
        export_candidate(small_run[0].out_dir, "c0", "tflite", tmp_path / "x")
