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
