"""The command line end to end, in subprocesses, as a user runs it."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch


def optim(*args, home, check=True, timeout=300):
    env = dict(os.environ, OPTIM_HOME=str(home))
    proc = subprocess.run([sys.executable, "-m", "optim", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def one_line_error(proc):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("optim: error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_samples_and_techniques(tmp_path):
    out = optim("samples", home=tmp_path).stdout
    assert "sample:digits-mlp" in out and "sample:breast-cancer" in out
    techs = json.loads(optim("techniques", "--json", home=tmp_path).stdout)
    names = {t["name"]: t for t in techs}
    assert "sparsity" in names["prune-magnitude"]["config_schema"]["properties"]
    assert names["quantize-dynamic"]["family"] == "quantization"


def test_pickled_model_runs_only_trusted_then_its_onnx_export_predicts_with_the_tables_accuracy(tmp_path, load_sample):
    """One run (one start-up) serves every check: a full pickled module is refused in one line
    without --trust-pickle and run with it; the pruned variant's ONNX predicts with the table's
    accuracy; the torch int8 variant's ONNX export is refused in one clean line."""
    base, _ = load_sample("breast-cancer-mlp")
    torch.save(base.torch_module(), tmp_path / "full.pt")
    model = ("--model", tmp_path / "full.pt", "--data", "sample:breast-cancer")
    line = one_line_error(optim("run", *model, home=tmp_path, check=False))
    assert "pickle" in line.lower() and "--trust-pickle" in line

    out = tmp_path / "run"
    proc = optim("run", *model, "--trust-pickle", "--recipe", "prune-magnitude:sparsity=0.5",
                 "--recipe", "quantize-dynamic", "--out", out, "--threads", 1, "--latency-budget", 0.05,
                 "--energy-inferences", 200, "--no-device-profiles", home=tmp_path)
    assert "status: done" in proc.stdout
    df = pd.read_csv(out / "results.csv")
    assert list(df.candidate_id) == ["c0", "c1", "c2"] and (df.status == "ok").all()
    assert list(df.recipe[1:]) == ["prune-magnitude:sparsity=0.5", "quantize-dynamic"], list(df.recipe)
    onnx_path = tmp_path / "model.onnx"
    proc = optim("export", "--run", out, "--candidate", "c1", "--format", "onnx", "--out", onnx_path, home=tmp_path)
    assert "max |diff|" in proc.stdout
    assert (tmp_path / "model.card.md").read_text().startswith("# Model card")
    card = json.loads((tmp_path / "model.card.json").read_text())
    assert card["recipe"] == "prune-magnitude:sparsity=0.5" and card["metrics"]["accuracy"] == df.accuracy[1]

    import onnxruntime as ort

    from optim.io.datasets import load_dataset

    test = load_dataset("sample:breast-cancer").splits().test
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    pred = sess.run(None, {sess.get_inputs()[0].name: test.X.astype(np.float32)})[0].argmax(1)
    assert abs((pred == test.y).mean() - df.accuracy[1]) < 1e-9
    assert sess.get_inputs()[0].shape[1] == 30  # raw features in

    # the run is in the store too (the refused one is not)
    runs = optim("runs", home=tmp_path).stdout
    assert "done" in runs and len([ln for ln in runs.splitlines() if "full.pt" in ln]) == 1, runs

    # A torch int8 model has no ONNX export: one clean line that names TorchScript.
    line = one_line_error(optim("export", "--run", out, "--candidate", "c2", "--format", "onnx",
                                "--out", tmp_path / "q.onnx", home=tmp_path, check=False))
    assert "TorchScript" in line


def test_bad_recipe_fails_before_work(tmp_path):
    line = one_line_error(optim("run", "--model", "sample:digits-mlp", "--data", "sample:digits",
                                "--recipe", "prune-magnitude:sparsity=1.5", home=tmp_path, check=False))
    assert "sparsity=1.5" in line and "0.99" in line
    assert not list((tmp_path / "runs").glob("*/results.csv")) if (tmp_path / "runs").exists() else True


@pytest.mark.parametrize("make, words", [
    (lambda d: (d / "m.pt").write_bytes(b"not a model at all"), ["m.pt"]),
    (lambda d: (d / "m.onnx").write_bytes(b""), ["empty"]),
])
def test_corrupt_model_is_one_line_error(tmp_path, make, words):
    make(tmp_path)
    name = "m.pt" if (tmp_path / "m.pt").exists() else "m.onnx"
    line = one_line_error(
        optim("run", "--model", tmp_path / name, "--data", "sample:digits", home=tmp_path, check=False)
    )
    for w in words:
        assert w.lower() in line.lower()


def test_csv_missing_target_is_one_line_error(tmp_path):
    pd.DataFrame({"a": np.arange(50.0), "b": np.arange(50.0)}).to_csv(tmp_path / "d.csv", index=False)
    line = one_line_error(optim("run", "--model", "sample:digits-mlp", "--data", tmp_path / "d.csv",
                                "--target", "label", home=tmp_path, check=False))
    assert "label" in line and "a" in line


def test_export_unknown_candidate(tmp_path):
    line = one_line_error(optim("export", "--run", tmp_path / "nowhere", "--candidate", "c1", "--format", "onnx",
                                "--out", tmp_path / "x.onnx", home=tmp_path, check=False))
    assert "nowhere" in line
