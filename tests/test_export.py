import json
from pathlib import Path

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


def _pt2(path, module, n_in):
    program = torch.export.export(module, (torch.zeros(2, n_in),),
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},))
    torch.export.save(program, str(path))
    return path


def test_torch_export_program_runs_end_to_end_and_exports(tmp_path, load_sample, monkeypatch, capsys):
    """A .pt2 upload: the baseline is stored as a torch.export program (not a pickle), measured, and
    exported. Run by the dashboard's backend (a worker process: `python -m optim worker`), exported
    with the CLI (its entry point in this process: tests/test_cli.py covers the process boundary,
    and a second torch start-up adds nothing here)."""
    import onnxruntime as ort

    from optim.cli import main as optim_cli
    from optim.experiment import ExperimentSpec
    from optim.jobs import start_background
    from optim.store import Store
    from tests.conftest import FAST, wait_for

    base, splits = load_sample("digits-mlp")
    model = _pt2(tmp_path / "model.pt2", base.model, 64)
    store = Store(tmp_path / "home" / "optim.db")
    spec = ExperimentSpec(model=str(model), data="sample:digits", recipes=["onnx-runtime"], **FAST)
    run_id = start_background(spec, store)
    wait_for(lambda: store.run(run_id)["status"] not in ("queued", "running"), "the worker ending the run")
    run = store.run(run_id)
    assert run["status"] == "done", (run, (store.runs_dir / f"{run_id}.log").read_text()[-2000:])
    rows = store.rows(run_id)
    assert [r["status"] for r in rows] == ["ok", "ok"], rows
    out = Path(run["out_dir"])
    manifest = json.loads((out / "candidates/c0/candidate.json").read_text())
    assert manifest["network"] == {**manifest["network"], "file": "network.pt2", "format": "torch.export"}
    assert rows[0]["accuracy"] == pytest.approx(float((base.predict(splits.test.X).argmax(1) == splits.test.y).mean()))

    # `optim export --run RUN_ID` as a user types it.
    monkeypatch.setenv("OPTIM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_CPP_LOG_LEVEL", "ERROR")  # what main() sets; restored after the test
    capsys.readouterr()
    code = optim_cli(["export", "--run", run_id, "--candidate", "c0", "--format", "onnx",
                      "--out", str(tmp_path / "c0.onnx")])
    printed = capsys.readouterr()
    assert code == 0 and "ONNX Runtime matches PyTorch on 64 test rows" in printed.out, printed.err
    sess = ort.InferenceSession(str(tmp_path / "c0.onnx"), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {sess.get_inputs()[0].name: splits.test.X.astype(np.float32)})[0]
    assert abs(float((logits.argmax(1) == splits.test.y).mean()) - rows[0]["accuracy"]) <= 0.005
    ts = export_candidate(out, "c0", "torchscript", tmp_path / "c0-ts.pt", run_id=run_id)
    X = torch.from_numpy(splits.test.X[:16].astype(np.float32))
    assert torch.allclose(torch.jit.load(str(ts.path))(X), base.model(X), atol=1e-5)
    assert "onnx.checker passed" in export_candidate(out, "c1", "onnx", tmp_path / "c1.onnx", run_id=run_id).check

