"""Model loading: every format predicts what the original module predicts; bad and unsafe files
get an InputError / UnsafeFileError that names the problem; pickles are never run by default."""

from __future__ import annotations

import io
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from optim.archs import build_arch
from optim.candidate import Candidate
from optim.errors import ConfigError, InputError, UnsafeFileError
from optim.io.datasets import load_dataset
from optim.io.models import load_model


class TinyNet(nn.Module):
    """Importable from this module, so a trusted full pickle of it can be loaded back."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x / 16.0)


class MakesAFile:
    """A pickle whose loading creates a file: proof of arbitrary code execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):  # noqa: ANN204
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def digits():
    return load_dataset("sample:digits")


@pytest.fixture(scope="module")
def mlp() -> nn.Module:
    torch.manual_seed(0)
    return build_arch("digits-mlp", 64, 10).eval()


def _cnn() -> nn.Module:
    torch.manual_seed(1)
    m = build_arch("digits-cnn", 64, 10)
    for bn in m.modules():  # non-trivial running statistics, so a lost buffer would show
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    return m.eval()


def _outputs(module: nn.Module, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(X)).numpy()


def _assert_same(cand: Candidate, module: nn.Module, X: np.ndarray, atol: float = 1e-5) -> None:
    want = _outputs(module, X)
    got = cand.predict(X)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=atol, rtol=1e-4)
    assert np.abs(want).max() > 1e-3  # the comparison is not between two zero arrays


def _torchscript(module: nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(module), str(path))
    return path


# --- every format loads and predicts like the original -----------------------------------------

def test_torchscript_detected_by_content(tmp_path: Path, digits, mlp) -> None:
    cand = load_model(_torchscript(mlp, tmp_path / "model.weird"), dataset=digits)
    assert cand.kind == "torch" and cand.task == "classification" and cand.lineage == ()
    assert cand.input_shape == (64,) and cand.num_outputs == 10 and cand.feature_names == digits.feature_names
    assert cand.info["model_format"].startswith("torchscript") and not cand.model.training
    _assert_same(cand, mlp, digits.X[:50])


def test_torch_export_program(tmp_path: Path, digits, mlp) -> None:
    example = (torch.from_numpy(digits.X[:4]),)
    program = torch.export.export(mlp, example, dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(tmp_path / "model.pt2"))
    cand = load_model(tmp_path / "model.pt2", dataset=digits.splits())
    assert cand.info["model_format"] == "export" and cand.num_outputs == 10
    _assert_same(cand, mlp, digits.X[:50])
    name, data = cand.serialize()  # measurable like any torch candidate
    assert name == "model.pt" and len(data) > 100_000


def test_torch_export_with_fixed_batch_fails_the_fit_check(tmp_path: Path, digits, mlp) -> None:
    program = torch.export.export(mlp, (torch.from_numpy(digits.X[:1]),))
    torch.export.save(program, str(tmp_path / "fixed.pt2"))
    with pytest.raises(InputError, match=r"does not accept this dataset's inputs \(shape \(2, 64\)\).*dynamic batch"):
        load_model(tmp_path / "fixed.pt2", dataset=digits)


def test_onnx(tmp_path: Path, digits, mlp) -> None:
    from optim.onnx_convert import torch_to_onnx_bytes

    (tmp_path / "model.onnx").write_bytes(torch_to_onnx_bytes(mlp, (64,)))
    cand = load_model(tmp_path / "model.onnx", dataset=digits)
    assert cand.kind == "onnx" and cand.transform is None and cand.num_outputs == 10
    _assert_same(cand, mlp, digits.X[:50], atol=1e-4)
    bare = load_model(tmp_path / "model.onnx")  # the graph states its shapes
    assert (bare.input_shape, bare.num_outputs, bare.task) == ((64,), 10, "classification")


def test_safetensors_with_bundled_arch(tmp_path: Path, digits) -> None:
    from safetensors.torch import save_file

    cnn = _cnn()
    save_file(cnn.state_dict(), str(tmp_path / "w.safetensors"))
    cand = load_model(tmp_path / "w.safetensors", dataset=digits, arch="digits-cnn")
    assert cand.info["model_format"] == "safetensors" and not cand.model.training
    _assert_same(cand, cnn, digits.X[:50])


def test_state_dict_with_arch_plain_checkpoint_and_dataparallel(tmp_path: Path, digits) -> None:
    cnn = _cnn()
    torch.save(cnn.state_dict(), tmp_path / "w.pth")
    _assert_same(load_model(tmp_path / "w.pth", dataset=digits, arch="digits-cnn"), cnn, digits.X[:50])
    torch.save({"epoch": 3, "model_state_dict": cnn.state_dict()}, tmp_path / "ckpt.pt")
    _assert_same(load_model(tmp_path / "ckpt.pt", dataset=digits, arch="digits-cnn"), cnn, digits.X[:50])
    torch.save({f"module.{k}": v for k, v in cnn.state_dict().items()}, tmp_path / "dp.pt")
    _assert_same(load_model(tmp_path / "dp.pt", dataset=digits, arch="digits-cnn"), cnn, digits.X[:50])


def test_torchvision_arch_on_an_image_zip(tmp_path: Path) -> None:
    import torchvision
    from PIL import Image

    rng = np.random.default_rng(0)
    with zipfile.ZipFile(tmp_path / "shapes.zip", "w") as zf:
        for label in ("circle", "square"):
            for i in range(6):
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(buf, format="PNG")
                zf.writestr(f"{label}/{i}.png", buf.getvalue())
    ds = load_dataset(tmp_path / "shapes.zip", image_size=32)
    assert ds.X.shape == (12, 3, 32, 32)
    torch.manual_seed(0)
    net = torchvision.models.get_model("resnet18", weights=None, num_classes=2).eval()
    torch.save(net.state_dict(), tmp_path / "resnet18.pth")
    cand = load_model(tmp_path / "resnet18.pth", dataset=ds, arch="torchvision:resnet18")
    assert cand.input_shape == (3, 32, 32) and cand.num_outputs == 2
    _assert_same(cand, net, ds.X)


def test_trusted_full_pickle_loads(tmp_path: Path, digits) -> None:
    torch.manual_seed(0)
    net = TinyNet().eval()
    torch.save(net, tmp_path / "full.pt")
    cand = load_model(tmp_path / "full.pt", dataset=digits, trust_pickle=True)
    assert cand.info["model_format"] == "pickled-module"
    _assert_same(cand, net, digits.X[:50])


# --- unsafe pickles ----------------------------------------------------------------------------

def test_full_pickled_module_is_refused_with_how_to_save_safely(tmp_path: Path, digits) -> None:
    torch.save(TinyNet(), tmp_path / "full.pt")
    with pytest.raises(UnsafeFileError) as info:
        load_model(tmp_path / "full.pt", dataset=digits)
    msg = str(info.value)
    assert "'full.pt' is a pickled Python object" in msg and "TinyNet" in msg
    assert "unpickling runs arbitrary code" in msg
    for how in ("torch.jit.save(torch.jit.script(model)", "torch.onnx.export(", "model.state_dict()",
                "--arch", "--trust-pickle"):
        assert how in msg


@pytest.mark.parametrize("container", ["torch.save", "bare pickle"])
def test_malicious_pickle_is_not_executed(tmp_path: Path, digits, container: str) -> None:
    # The payload really runs when unpickled: the refusal below is what keeps the marker away.
    pickle.loads(pickle.dumps(MakesAFile(tmp_path / "proof")))
    assert (tmp_path / "proof").exists()
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    if container == "torch.save":
        torch.save(MakesAFile(marker), path)
    else:
        path.write_bytes(pickle.dumps(MakesAFile(marker), protocol=2))
    with pytest.raises(
        UnsafeFileError, match=r"it names (io|builtins)\.open.*not loaded because unpickling runs arbitrary code"
    ):
        load_model(path, dataset=digits)
    assert not marker.exists()


# --- corrupt, empty, wrong format --------------------------------------------------------------

@pytest.mark.parametrize("name,content,expected", [
    ("empty.pt", b"", "'empty.pt' is empty"),
    ("noise.pt", bytes(np.random.default_rng(0).integers(1, 255, 4096, dtype=np.uint8)),
     "'noise.pt' is not a recognised model format"),
    ("table.onnx", b"a,b,c\n1,2,3\n", "'table.onnx' is not a valid ONNX file"),
])
def test_corrupt_or_wrong_files_name_the_file_and_the_formats(tmp_path: Path, digits, name: str,
                                                              content: bytes, expected: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError) as info:
        load_model(tmp_path / name, dataset=digits)
    msg = str(info.value)
    assert expected in msg
    assert "TorchScript" in msg and "ONNX" in msg and "--arch" in msg


def test_truncated_torchscript_and_npz_given_as_model(tmp_path: Path, digits, mlp) -> None:
    data = _torchscript(mlp, tmp_path / "m.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="'cut.pt' is a damaged zip archive"):
        load_model(tmp_path / "cut.pt", dataset=digits)
    np.savez(tmp_path / "d.npz", X=np.zeros((3, 2)), y=np.zeros(3))
    with pytest.raises(InputError, match="'d.npz' is a NumPy archive"):
        load_model(tmp_path / "d.npz", dataset=digits)


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="'.*nope.pt' does not exist"):
        load_model(tmp_path / "nope.pt")


# --- weights and architectures -----------------------------------------------------------------

def test_weights_without_arch(tmp_path: Path, digits, mlp) -> None:
    torch.save(mlp.state_dict(), tmp_path / "w.pt")
    with pytest.raises(InputError, match=r"holds only weights \(a state_dict\); pass --arch NAME.*digits-mlp"):
        load_model(tmp_path / "w.pt", dataset=digits)
    with pytest.raises(InputError, match="needs the dataset"):
        load_model(tmp_path / "w.pt", arch="digits-mlp")


def test_weights_that_do_not_fit_the_arch_name_the_keys(tmp_path: Path, digits, mlp) -> None:
    torch.save(mlp.state_dict(), tmp_path / "w.pt")
    with pytest.raises(
        InputError,
        match=r"does not fit --arch digits-cnn for a dataset of input shape \(64,\) \(10 classes\): missing keys "
            r"1.mean, 1.std, 2.weight \(\+20 more\); unexpected keys 0.mean",
    ):
        load_model(tmp_path / "w.pt", dataset=digits, arch="digits-cnn")
    wine = load_dataset("sample:wine")
    with pytest.raises(InputError, match=r"shape mismatch 0.mean \(file \(64,\), --arch \(13,\)\)"):
        load_model(tmp_path / "w.pt", dataset=wine, arch="digits-mlp")


def test_arch_settings_errors(tmp_path: Path, digits, mlp) -> None:
    torch.save(mlp.state_dict(), tmp_path / "w.pt")
    with pytest.raises(ConfigError, match="'resnet-9000'.*unknown architecture"):
        load_model(tmp_path / "w.pt", dataset=digits, arch="resnet-9000")
    with pytest.raises(ConfigError, match="--arch digits-mlp: 'ts.pt' is a complete model"):
        load_model(_torchscript(mlp, tmp_path / "ts.pt"), dataset=digits, arch="digits-mlp")
    with pytest.raises(InputError, match="does not state its input shape; pass the dataset"):
        load_model(tmp_path / "ts.pt")


# --- does the model fit the dataset -------------------------------------------------------------

def test_model_that_does_not_accept_the_inputs(tmp_path: Path, mlp) -> None:
    cancer = load_dataset("sample:breast-cancer")
    with pytest.raises(InputError, match=r"'m.pt': the model does not accept this dataset's inputs "
                                         r"\(shape \(2, 30\)\): RuntimeError: The size of tensor a \(30\) must match"):
        load_model(_torchscript(mlp, tmp_path / "m.pt"), dataset=cancer)


def test_output_shape_must_match_the_task(tmp_path: Path) -> None:
    wine = load_dataset("sample:wine")
    with pytest.raises(InputError, match=r"outputs shape \(5,\).*3 classes"):
        load_model(_torchscript(nn.Linear(13, 5), tmp_path / "five.pt"), dataset=wine)
    cancer = load_dataset("sample:breast-cancer")
    with pytest.raises(InputError, match="one output per row \\(a sigmoid-style binary"):
        load_model(_torchscript(nn.Linear(30, 1), tmp_path / "sig.pt"), dataset=cancer)
    diabetes = load_dataset("sample:diabetes")
    with pytest.raises(InputError, match=r"outputs shape \(3,\) per row but the dataset is a regression"):
        load_model(_torchscript(nn.Linear(10, 3), tmp_path / "three.pt"), dataset=diabetes)
    reg = load_model(_torchscript(nn.Linear(10, 1), tmp_path / "one.pt"), dataset=diabetes)
    assert (reg.task, reg.num_outputs) == ("regression", 1)
