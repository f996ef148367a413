import io
import pickle

import numpy as np
import torch

from optim.archs import build_arch
from optim.candidate import Candidate, OnnxModel, Step
from optim.onnx_convert import torch_to_onnx_bytes


def _mlp():
    torch.manual_seed(0)
    return build_arch("digits-mlp", 64, 10).eval()


def test_derive_leaves_parent_unchanged_and_extends_lineage():
    base = Candidate(_mlp(), "classification", (64,), 10)
    child = base.derive(Step("x", {"a": 1}), model=base.clone_module(), info={"k": 2})
    assert base.lineage == () and child.recipe == "x:a=1" and child.info["k"] == 2
    assert child.model is not base.model


def test_torchscript_and_onnx_candidates_survive_pickling():
    X = np.random.default_rng(0).random((4, 64), dtype=np.float32)
    module = _mlp()
    scripted = torch.jit.script(module)
    for cand in (Candidate(scripted, "classification", (64,), 10),
                 Candidate(OnnxModel(torch_to_onnx_bytes(module, (64,))), "classification", (64,), 10),
                 Candidate(module, "classification", (64,), 10, info={"a": [1, 2]})):
        again = pickle.loads(pickle.dumps(cand))
        assert again.kind == cand.kind and dict(again.info) == dict(cand.info)
        assert np.allclose(again.predict(X), cand.predict(X), atol=1e-5)


def test_serialize_is_the_shipped_file():
    cand = Candidate(_mlp(), "classification", (64,), 10)
    name, data = cand.serialize()
    assert name == "model.pt" and data[:2] == b"PK"  # a TorchScript zip archive
    huff = cand.derive(Step("h"), extra_files={"w.huff": b"abc"}, info={"size_file": "w.huff"})
    assert huff.serialize() == ("w.huff", b"abc")


def _folder_kinds(folder):
    from optim.io.models import detect_format

    return {p.name: detect_format(p.read_bytes()) for p in folder.iterdir() if p.suffix != ".json"}


def test_saved_candidate_is_rebuilt_without_pickle(tmp_path):
    """Transform (selected columns, then PCA) as JSON + safetensors, network as TorchScript."""
    from optim.candidate import load_candidate, save_candidate
    from optim.techniques.feature_selection import PCAProject, SelectColumns

    rng = np.random.default_rng(0)
    transform = torch.nn.Sequential(SelectColumns([5, 1, 40, 7, 9, 60]),
                                    PCAProject(rng.random(6), rng.standard_normal((3, 6)))).eval()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 10)).eval()
    cand = Candidate(net, "classification", (64,), 10, lineage=(Step("pca", {"components": 3}, "3 features"),),
                     transform=transform, info={"kept_features": ["pc1", "pc2", "pc3"], "n": np.int64(3)},
                     feature_names=tuple(f"f{i}" for i in range(64)))
    manifest = save_candidate(cand, tmp_path / "c1", candidate_id="c1", run_id="r1")
    assert manifest["network"]["input_shape"] == [3] and manifest["transform"]["sequential"] is True
    assert _folder_kinds(tmp_path / "c1") == {"model.pt": "torchscript", "network.pt": "torchscript",
                                              "transform.safetensors": "safetensors"}
    again, meta = load_candidate(tmp_path / "c1")
    assert (meta["run_id"], meta["candidate_id"]) == ("r1", "c1")
    assert type(again.transform[0]) is SelectColumns and type(again.transform[1]) is PCAProject
    assert again.transform[0].idx.tolist() == [5, 1, 40, 7, 9, 60]
    assert again.recipe == "pca:components=3" and again.info["n"] == 3 and again.feature_names == cand.feature_names
    X = rng.random((16, 64), dtype=np.float32)
    assert np.allclose(again.predict(X), cand.predict(X), atol=1e-6)


def test_saved_onnx_and_torch_export_candidates_round_trip(tmp_path):
    from optim.candidate import is_export_module, load_candidate, save_candidate

    module = _mlp()
    X = np.random.default_rng(1).random((5, 64), dtype=np.float32)
    onnx_cand = Candidate(OnnxModel(torch_to_onnx_bytes(module, (64,))), "classification", (64,), 10)
    save_candidate(onnx_cand, tmp_path / "o", candidate_id="c2", run_id="r")
    assert _folder_kinds(tmp_path / "o") == {"model.onnx": "onnx"}
    assert np.allclose(load_candidate(tmp_path / "o")[0].predict(X), onnx_cand.predict(X), atol=1e-6)

    program = torch.export.export(module, (torch.zeros(2, 64),),
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},))
    buf = io.BytesIO()
    torch.export.save(program, buf)
    from optim.candidate import load_export_program

    exported = load_export_program(buf.getvalue())
    cand = Candidate(exported, "classification", (64,), 10)
    save_candidate(cand, tmp_path / "e", candidate_id="c0", run_id="r")
    assert _folder_kinds(tmp_path / "e") == {"model.pt": "torchscript", "network.pt2": "export"}
    again = load_candidate(tmp_path / "e")[0]
    assert is_export_module(again.model)
    assert np.allclose(again.predict(X), cand.predict(X), atol=1e-6)
    # In memory too (e.g. to a child process), the program travels as torch.export.save bytes.
    copy = pickle.loads(pickle.dumps(cand))
    assert is_export_module(copy.model) and np.allclose(copy.predict(X), cand.predict(X), atol=1e-6)


def test_manifest_cannot_name_files_outside_its_folder(tmp_path):
    import json

    import pytest

    from optim.candidate import load_candidate, save_candidate
    from optim.errors import InputError

    save_candidate(Candidate(_mlp(), "classification", (64,), 10), tmp_path / "c", candidate_id="c0", run_id="r")
    (tmp_path / "secret").write_bytes(b"x")
    path = tmp_path / "c" / "candidate.json"
    good = json.loads(path.read_text())
    for bad in ({"network": {**good["network"], "file": "../secret"}}, {"extra_files": ["/etc/passwd"]},
                {"input_shape": [1 << 20, 1 << 20]}, {"task": "anything"}, {"format": "pickle"}):
        path.write_text(json.dumps({**good, **bad}))
        with pytest.raises(InputError, match="damaged or was not written by optim"):
            load_candidate(tmp_path / "c")
