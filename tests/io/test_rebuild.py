"""TorchScript files of standard layers load as editable modules that prune like the original."""

import numpy as np
import pytest
import torch

from optim.applicability import reason_for
from optim.io.models import load_model, load_sample
from optim.io.rebuild import editable_module


@pytest.mark.parametrize("name, how", [("digits-mlp", "script"), ("digits-cnn", "script"), ("digits-mlp", "trace")])
def test_scripted_sample_rebuilds_exactly(name, how, tmp_path):
    cand, splits = load_sample(name)
    X = splits.test.X[:32]
    example = torch.from_numpy(X[:2])
    script = torch.jit.script(cand.model) if how == "script" else torch.jit.trace(cand.model, example)
    module = editable_module(script, X)
    assert module is not None and not isinstance(module, torch.jit.ScriptModule)
    with torch.inference_mode():
        assert torch.allclose(module(torch.from_numpy(X)), cand.model(torch.from_numpy(X)), atol=1e-5)
    n_linear = sum(isinstance(m, torch.nn.Linear) for m in module.modules())
    assert n_linear == sum(isinstance(m, torch.nn.Linear) for m in cand.model.modules())


def test_uploaded_torchscript_can_be_pruned(tmp_path, ctx_for):
    from optim.io.datasets import load_dataset
    from optim.registry import get

    cand, splits = load_sample("digits-mlp")
    torch.jit.save(torch.jit.script(cand.model), str(tmp_path / "m.pt"))
    loaded = load_model(tmp_path / "m.pt", dataset=load_dataset("sample:digits"))
    assert isinstance(loaded.model, torch.jit.ScriptModule)  # the compiled original is the baseline
    assert loaded.info["conversion"]["route"] == "TorchScript nn.Sequential rebuilt layer by layer"
    assert reason_for("prune-magnitude", loaded) is None
    technique = get("prune-magnitude")
    [pruned] = technique.run(loaded, technique.config(sparsity=0.8), ctx_for(splits))
    assert pruned.info["achieved_sparsity"] == pytest.approx(0.8, abs=0.01)
    assert pruned.editable is None and not isinstance(pruned.model, torch.jit.ScriptModule)


def test_traced_conv_without_recorded_settings_stays_compiled_or_exact():
    cand, splits = load_sample("digits-cnn")
    X = splits.test.X[:32]
    module = editable_module(torch.jit.trace(cand.model, torch.from_numpy(X[:2])), X)
    if module is not None:  # a trace drops conv/pool settings: only an exact rebuild may be kept
        with torch.inference_mode():
            assert torch.allclose(module(torch.from_numpy(X)), cand.model(torch.from_numpy(X)), atol=1e-5)


def test_custom_blocks_stay_compiled(load_sample):
    cand, splits = load_sample("digits-mobilenet")
    script = torch.jit.script(cand.model)
    assert editable_module(script, splits.test.X[:2]) is None  # torchvision's own blocks: not rebuilt


def test_a_wrong_rebuild_is_refused():
    class Odd(torch.nn.Module):  # a custom forward we cannot know from the layer types
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x) * 3

    assert editable_module(torch.jit.script(Odd()), np.ones((2, 4), np.float32)) is None
