"""User models run in a child process with a time limit and a memory cap (optim.sandbox).

The adversarial inputs: a TorchScript model whose forward never returns, one that allocates far
more memory than allowed, and one that raises. Each gives a one-line InputError with a next step;
the caller gets control back and no child process is left running.
"""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
import torch

import optim
from optim.errors import ConfigError, InputError
from optim.sandbox import ModelLimits
from tests.security.adversarial import Chatty, forever_torchscript


class _Hog(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        big = torch.ones(512, 1024, 1024)  # 2 GiB of float32
        return x[:, :10] + big.sum()


class _Raises(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom from the model")


def _script(module: torch.nn.Module, path: Path) -> str:
    torch.jit.script(module).save(str(path))
    return str(path)


def _children() -> set[int]:
    """Every process under this test process except multiprocessing's long-lived fork server and
    resource tracker (started once; they import the runtimes and never run a model)."""
    out = set()
    for p in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(p.cmdline())
        except psutil.NoSuchProcess:
            continue
        if "multiprocessing.forkserver" not in cmd and "multiprocessing.resource_tracker" not in cmd:
            out.add(p.pid)
    return out


def test_endless_model_is_stopped_after_the_time_limit(tmp_path: Path) -> None:
    model = str(forever_torchscript(tmp_path / "forever.pt"))
    before = _children()
    with pytest.raises(InputError) as info:
        optim.probe_model(model, "sample:digits", name="forever.pt", limits=ModelLimits(timeout_s=2))
    msg = info.value.one_line()
    assert msg.startswith("forever.pt: the model did not answer within 2 s"), msg
    assert "OPTIM_MODEL_TIMEOUT_S" in msg  # the next step
    assert _children() == before  # the child (and its session) was killed and reaped


def test_endless_model_reads_its_limit_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    model = str(forever_torchscript(tmp_path / "forever.pt"))
    monkeypatch.setenv("OPTIM_MODEL_TIMEOUT_S", "1.5")
    with pytest.raises(InputError, match=r"did not answer within 1\.5 s"):
        optim.measure_baseline(model, "sample:digits")


def test_memory_hog_is_stopped_at_the_cap(tmp_path: Path) -> None:
    model = _script(_Hog(), tmp_path / "hog.pt")
    with pytest.raises(InputError) as info:
        optim.probe_model(model, "sample:digits", limits=ModelLimits(memory_mb=256))
    assert "hog.pt: the model needed more than 256 MB of memory" in info.value.one_line()
    assert "OPTIM_MODEL_MEMORY_MB" in info.value.one_line()


def test_a_raising_model_is_an_input_error_not_a_traceback(tmp_path: Path) -> None:
    model = _script(_Raises(), tmp_path / "raises.pt")
    with pytest.raises(InputError, match="does not accept this dataset's inputs.*boom from the model"):
        optim.probe_model(model, "sample:digits")


def test_loader_errors_keep_their_class_and_message(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a model" * 40)
    with pytest.raises(InputError, match="garbage.pt' is not a recognised model format"):
        optim.probe_model(str(garbage), "sample:digits")
    with pytest.raises(ConfigError, match="--arch digits-mlp: sample:digits-mlp brings its own architecture"):
        optim.probe_model("sample:digits-mlp", "sample:digits", arch="digits-mlp")


def test_a_good_model_answers_and_its_baseline_is_measured_by_measure_candidate(tmp_path: Path, load_sample) -> None:
    baseline, _ = load_sample("digits-mlp")
    model = _script(baseline.torch_module(), tmp_path / "mlp.pt")
    assert optim.probe_model(model, "sample:digits")["num_outputs"] == 10
    metrics = optim.measure_baseline(model, "sample:digits", threads=1, batch_size=8)
    assert metrics["metric_name"] == "accuracy" and metrics["metric_value"] >= 0.95
    assert metrics["latency_ms_p50_b1"] > 0 and metrics["size_bytes"] > 100_000


@pytest.mark.parametrize("var,value", [("OPTIM_MODEL_TIMEOUT_S", "nan"), ("OPTIM_MODEL_TIMEOUT_S", "-1"),
                                       ("OPTIM_MODEL_MEMORY_MB", "lots"), ("OPTIM_MEASURE_TIMEOUT_S", "inf")])
def test_bad_limits_are_config_errors(monkeypatch, var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=f"{var}='{value}': must be a positive finite number"):
        ModelLimits.from_env()


def test_cli_run_of_an_endless_model_ends_with_a_one_line_error(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    model = str(forever_torchscript(tmp_path / "forever.pt"))
    env = dict(os.environ, OPTIM_MODEL_TIMEOUT_S="2", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run([sys.executable, "-m", "optim", "run", "--model", model, "--data", "sample:digits",
                           "--recipe", "quantize-dynamic", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "error: forever.pt: the model did not answer within 2 s" in lines[-1], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_junk_from_the_models_process_is_refused_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "chatty.pt"
    torch.save(Chatty(), path)  # a full pickled module: code of its own, allowed only when trusted
    with pytest.raises(InputError, match="chatty.pt: the process running the model sent an unreadable answer"):
        optim.probe_model(str(path), "sample:digits", trust_pickle=True)
