"""A run folder may come from someone else: nothing in it is unpickled, `--candidate` is one of the
run's recorded ids, the folder must belong to the run asked for, and `--out` never overwrites."""

from __future__ import annotations

import io
import json
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from optim.errors import ExportError, InputError
from optim.export import export_candidate, load_run_candidate
from tests.conftest import FAST


class MakesAFile:
    """A pickle whose loading creates ``path``: proof that something unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def _copy_run(small_run, tmp_path: Path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(small_run[0].out_dir, dest)
    return dest


def _ids(run_dir: Path) -> dict[str, str]:
    rows = json.loads((run_dir / "results.json").read_text())
    return {r["recipe"]: r["candidate_id"] for r in rows if r["status"] == "ok"}


def optim(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "optim", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


# --- no pickle in, none read back ------------------------------------------------------------------

def test_a_run_folder_holds_no_pickle(small_run) -> None:
    from optim.io.models import detect_format

    files = [p for p in small_run[0].out_dir.rglob("*") if p.is_file()]
    assert any(p.name == "candidate.json" for p in files)
    kinds = {p.relative_to(small_run[0].out_dir).as_posix(): detect_format(p.read_bytes()) for p in files}
    assert not [name for name, kind in kinds.items() if kind == "torch-pickle"], kinds
    assert not [p for p in files if p.read_bytes()[:1] == b"\x80"]


def test_planted_pickles_never_run_on_export(small_run, tmp_path: Path) -> None:
    run_dir = _copy_run(small_run, tmp_path)
    marker = tmp_path / "pwned"
    # Sanity: the payload really runs when something unpickles it.
    pickle.loads(pickle.dumps(MakesAFile(tmp_path / "proof")))
    assert (tmp_path / "proof").exists()
    evil = pickle.dumps(MakesAFile(marker), protocol=2)
    buf = io.BytesIO()
    torch.save({"x": MakesAFile(marker)}, buf)
    ids = _ids(run_dir)
    c0, pruned = ids["baseline"], ids["prune-magnitude:sparsity=0.9"]
    # The old pickled artifact, beside the real files: never read.
    (run_dir / "candidates" / c0 / "candidate.pt").write_bytes(buf.getvalue())
    res = export_candidate(run_dir, c0, "torchscript", tmp_path / "out" / "base.pt")
    assert res.path.is_file()
    # The network file itself replaced by a pickle (bare, then torch.save's zip): refused, not run.
    net = json.loads((run_dir / "candidates" / pruned / "candidate.json").read_text())["network"]["file"]
    for i, payload in enumerate((evil, buf.getvalue())):
        (run_dir / "candidates" / pruned / net).write_bytes(payload)
        for fmt in ("onnx", "torchscript", "safetensors"):
            with pytest.raises(InputError, match="damaged or was not written by optim"):
                export_candidate(run_dir, pruned, fmt, tmp_path / "out" / f"p{i}.{fmt}")
    assert not marker.exists()


def test_planted_torch_export_program_cannot_unpickle(tmp_path: Path, digits_mlp_pt2: Path, load_sample) -> None:
    """torch.export.load reads weights flagged "use_pickle" with torch.load(weights_only=False) and
    opaque constants with pickle.loads; a run folder's .pt2 goes through optim's restricted loader."""
    from optim.candidate import load_export_program

    marker = tmp_path / "pwned"
    data = _evil_pt2(digits_mlp_pt2.read_bytes(), pickle.dumps(MakesAFile(marker), protocol=2))
    with pytest.raises(Exception) as info:
        load_export_program(data)
    assert not marker.exists(), info.value
    # Uploaded as a model (CLI or dashboard), the same file is refused the same way.
    from optim.io.models import load_model

    (tmp_path / "evil.pt2").write_bytes(data)
    with pytest.raises(InputError, match="'evil.pt2' looks like torch.export but cannot be loaded"):
        load_model(tmp_path / "evil.pt2", dataset=load_sample("digits-mlp")[1])
    assert not marker.exists()
    # The same bytes through torch's own loader do run the payload: the guard is what stops it.
    try:
        torch.export.load(io.BytesIO(data))
    except Exception:
        pass
    assert marker.exists()


def _evil_pt2(data: bytes, payload: bytes) -> bytes:
    """The program ``data`` with its first weight stored "as a pickle" whose bytes are ``payload``."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        config_name = next(n for n in src.namelist() if n.endswith(".json") and "weights_config" in n)
        config = json.loads(src.read(config_name))
        fqn, meta = next(iter(config["config"].items()))
        meta["use_pickle"] = True
        target = meta["path_name"]
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == config_name:
                body = json.dumps(config).encode()
            elif info.filename.endswith("/" + target) and "weights" in info.filename:
                body = payload
            dst.writestr(info, body)
    return out.getvalue()


@pytest.fixture
def digits_mlp_pt2(tmp_path: Path, load_sample) -> Path:
    base, _ = load_sample("digits-mlp")
    program = torch.export.export(base.model, (torch.zeros(2, 64),),
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},))
    path = tmp_path / "model.pt2"
    torch.export.save(program, str(path))
    return path


def test_export_never_unpickles(small_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("export unpickled something")

    real_load = torch.load

    def torch_load(*args, **kwargs):
        if kwargs.get("weights_only") is False:
            raise AssertionError("export called torch.load(weights_only=False)")
        return real_load(*args, **kwargs)

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", torch_load)
    ids = _ids(small_run[0].out_dir)
    out = tmp_path / "o"
    assert export_candidate(small_run[0].out_dir, ids["baseline"], "onnx", out / "b.onnx").path.is_file()
    assert export_candidate(small_run[0].out_dir, ids["quantize-dynamic"], "torchscript", out / "q.pt").path.is_file()
    assert export_candidate(small_run[0].out_dir, ids["prune-magnitude:sparsity=0.5"], "safetensors",
                            out / "p.safetensors").path.is_file()


# --- which candidate, which run --------------------------------------------------------------------

@pytest.mark.parametrize("cid", ["../../../elsewhere/candidates/c1", "c1/../c0", "/etc", "c999", "", "C0 "])
def test_candidate_must_be_a_recorded_id(small_run, tmp_path: Path, cid: str) -> None:
    with pytest.raises(InputError, match="not a measured candidate") as info:
        export_candidate(small_run[0].out_dir, cid, "onnx", tmp_path / "x.onnx")
    assert "c0" in str(info.value)  # the error lists what is there
    assert not (tmp_path / "x.onnx").exists()


def test_path_in_results_json_is_not_followed(small_run, tmp_path: Path) -> None:
    run_dir = _copy_run(small_run, tmp_path)
    rows = json.loads((run_dir / "results.json").read_text())
    rows.append({"candidate_id": "../../elsewhere", "status": "ok", "recipe": "x"})
    (run_dir / "results.json").write_text(json.dumps(rows))
    with pytest.raises(InputError, match="not a measured candidate"):
        export_candidate(run_dir, "../../elsewhere", "onnx", tmp_path / "x.onnx")


def test_folder_must_belong_to_the_run_asked_for(small_run, tmp_path: Path) -> None:
    run_dir = _copy_run(small_run, tmp_path)
    real = small_run[0].run_id
    with pytest.raises(InputError, match=f"holds run {real}, not run other-run"):
        export_candidate(run_dir, "c0", "onnx", tmp_path / "x.onnx", run_id="other-run")
    # A candidate folder copied in from another run is caught by its manifest.
    meta = json.loads((run_dir / "run.json").read_text())
    meta["run_id"] = "someone-else"
    (run_dir / "run.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="mixes runs"):
        export_candidate(run_dir, "c0", "onnx", tmp_path / "x.onnx")


def test_cli_export_by_run_id_checks_the_folder(small_run, tmp_path: Path, optim_home: Path) -> None:
    run_dir = _copy_run(small_run, tmp_path)
    from optim.store import Store

    store = Store(optim_home / "optim.db")
    other = store.create_run({"model": "m", "data": "d"}, run_dir)
    proc = optim("export", "--run", other, "--candidate", "c0", "--format", "onnx", "--out", tmp_path / "x.onnx")
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip()
    assert "\n" not in line and f"not run {other}" in line and "optim runs" in line
    assert not (tmp_path / "x.onnx").exists()


# --- --out of export -------------------------------------------------------------------------------

def test_export_out_is_never_overwritten_silently(small_run, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    export_candidate(small_run[0].out_dir, "c0", "onnx", out)
    card = (tmp_path / "m.card.md").read_text()
    out.write_bytes(b"mine")
    with pytest.raises(ExportError, match="already exist.*--force"):
        export_candidate(small_run[0].out_dir, "c0", "onnx", out)
    assert out.read_bytes() == b"mine"
    # Another file whose model card would land on the same names is refused too.
    with pytest.raises(ExportError, match=r"m\.card\.json"):
        export_candidate(small_run[0].out_dir, "c0", "torchscript", tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists() and (tmp_path / "m.card.md").read_text() == card
    res = export_candidate(small_run[0].out_dir, "c0", "onnx", out, force=True)
    assert out.read_bytes()[:4] != b"mine" and res.check.startswith("onnx.checker passed")


def test_export_out_folder_or_unwritable_is_one_line(small_run, tmp_path: Path) -> None:
    run = small_run[0].out_dir
    for out, expect in ((tmp_path, "is a folder"), (Path("/proc/optim-nope/m.onnx"), "cannot create")):
        proc = optim("export", "--run", run, "--candidate", "c0", "--format", "onnx", "--out", out)
        assert proc.returncode == 2, proc.stderr
        line = proc.stderr.strip()
        assert "\n" not in line and expect in line and "Traceback" not in line, line
    # TorchScript: the flag is what is checked here, not a format's conversion (ONNX's takes seconds).
    (tmp_path / "m.pt").write_bytes(b"mine")
    proc = optim("export", "--run", run, "--candidate", "c0", "--format", "torchscript", "--out", tmp_path / "m.pt")
    assert proc.returncode == 2 and "--force" in proc.stderr and (tmp_path / "m.pt").read_bytes() == b"mine"
    proc = optim(
        "export", "--run", run, "--candidate", "c0", "--format", "torchscript", "--out", tmp_path / "m.pt", "--force"
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "m.pt").read_bytes()[:4] == b"PK\x03\x04"  # a TorchScript archive replaced "mine"


# --- --out of run ----------------------------------------------------------------------------------

def _spec(**kw):
    from optim.experiment import ExperimentSpec

    return ExperimentSpec(model="sample:digits-mlp", data="sample", recipes=[], **FAST, **kw)


def test_run_out_is_never_reused(tmp_path: Path, optim_home: Path) -> None:
    from optim.experiment import run_experiment
    from optim.store import Store

    store = Store(optim_home / "optim.db")
    first = run_experiment(_spec(), store=store, out_dir=tmp_path / "demo")
    before = (tmp_path / "demo" / "candidates" / "c0" / "candidate.json").read_bytes()
    with pytest.raises(InputError, match=f"already holds run {first.run_id}.*new --out"):
        run_experiment(_spec(seed=1), store=store, out_dir=tmp_path / "demo")
    assert [r["id"] for r in store.runs()] == [first.run_id]  # the refused run is not recorded
    assert (tmp_path / "demo" / "candidates" / "c0" / "candidate.json").read_bytes() == before
    # A folder with someone's files is not a run folder either.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match="is not empty"):
        run_experiment(_spec(), store=store, out_dir=tmp_path / "mine")
    # A worker given a folder another run claimed meanwhile writes nothing into it.
    rid = store.create_run(_spec().to_dict(), tmp_path / "demo")
    with pytest.raises(InputError, match=f"belongs to run {first.run_id}"):
        run_experiment(_spec(), store=store, run_id=rid)
    assert store.run(rid)["status"] == "failed"
    assert (tmp_path / "demo" / "candidates" / "c0" / "candidate.json").read_bytes() == before


def test_cli_run_out_file_or_unwritable_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    for out, expect in ((tmp_path / "file.txt", "is a file"), (Path("/proc/optim-nope"), "cannot create the folder")):
        proc = optim("run", "--model", "sample:digits-mlp", "--data", "sample", "--out", out, "--quiet")
        assert proc.returncode == 2, proc.stderr
        line = proc.stderr.strip()
        assert "\n" not in line and expect in line and "Traceback" not in line, line
    assert (tmp_path / "file.txt").read_text() == "x"


# --- transforms and half precision ------------------------------------------------------------------

@pytest.fixture(scope="module")
def half_and_features_run(tmp_path_factory: pytest.TempPathFactory):
    from optim.experiment import ExperimentSpec, run_experiment
    from optim.store import Store

    root = tmp_path_factory.mktemp("half-run")
    spec = ExperimentSpec(model="sample:digits-mlp", data="sample",
                          recipes=["half:dtype=fp16|bf16", "select-kbest:k=24,epochs=1+pca:components=12,epochs=1"],
                          **FAST)
    return run_experiment(spec, store=Store(root / "optim.db"), out_dir=root / "run")


def test_transform_is_stored_as_json_and_safetensors(half_and_features_run, tmp_path: Path, load_sample) -> None:
    res = half_and_features_run
    row = next(r for r in res.rows if r["recipe"].startswith("select-kbest"))
    assert row["status"] == "ok", row
    folder = res.out_dir / "candidates" / row["candidate_id"]
    manifest = json.loads((folder / "candidate.json").read_text())
    assert [layer["type"] for layer in manifest["transform"]["layers"]] == ["SelectColumns", "PCAProject"]
    assert (folder / "transform.safetensors").read_bytes()[8:9] == b"{"
    cand = load_run_candidate(res.out_dir, row["candidate_id"])
    _, splits = load_sample("digits-mlp")
    acc = float((cand.predict(splits.test.X).argmax(1) == splits.test.y).mean())
    assert abs(acc - row["accuracy"]) < 1e-9
    exported = export_candidate(res.out_dir, row["candidate_id"], "onnx", tmp_path / "fs.onnx")
    assert "test rows" in exported.check
    import onnxruntime as ort

    sess = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {sess.get_inputs()[0].name: splits.test.X.astype(np.float32)})[0]
    assert sess.get_inputs()[0].shape[1] == 64  # raw features in: the selection is inside
    assert abs(float((logits.argmax(1) == splits.test.y).mean()) - row["accuracy"]) <= 0.01


def test_half_to_onnx_is_an_error_with_a_next_step(half_and_features_run, tmp_path: Path) -> None:
    res = half_and_features_run
    ids = {r["recipe"]: r["candidate_id"] for r in res.rows if r["status"] == "ok"}
    bf16 = ids["half:dtype=bf16"]
    with pytest.raises(ExportError, match="bfloat16.*TorchScript") as info:
        export_candidate(res.out_dir, bf16, "onnx", tmp_path / "bf16.onnx")
    assert "\n" not in info.value.one_line() and not (tmp_path / "bf16.onnx").exists()
    ts = export_candidate(res.out_dir, bf16, "torchscript", tmp_path / "bf16.pt")
    assert ts.path.is_file()
    # fp16: ONNX Runtime rounds differently from PyTorch (≈7e-3 on logits, tolerance 1e-4): refused,
    # with why and what to do instead.
    with pytest.raises(ExportError, match=r"differ.*not written \(fp16 rounds differently.*TorchScript"):
        export_candidate(res.out_dir, ids["half:dtype=fp16"], "onnx", tmp_path / "fp16.onnx")
    assert not (tmp_path / "fp16.onnx").exists()
