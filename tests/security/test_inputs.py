"""Adversarial inputs from issue 9 (items 2, 8, 9, 14), each replayed as it was typed or uploaded.

hpo settings that reach outside the run folder or echo a password; a model whose outputs are
NaN; a model that passes the 2-row load check but not batch 1 or batch 32; ``nan`` as a number;
``| head``; random bytes starting 0x80; a sample on the wrong data; input errors that left a
``failed`` run behind.
"""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from optim.errors import ConfigError, InputError, OptimError, redact_secrets
from optim.experiment import ExperimentSpec, parse_recipe, run_experiment
from optim.store import Store
from tests.conftest import FAST

PASSWORD = "s3cr3t-Pa55"
PG_URL = f"postgresql://alice:{PASSWORD}@127.0.0.1:1/optuna"  # port 1: nothing listens, refused at once


def optim_cli(*args, home, stdout=subprocess.PIPE):
    env = dict(os.environ, OPTIM_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "optim", *map(str, args)], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, env=env, timeout=300)


def one_line_error(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("optim: error:"), proc.stderr
    return lines[0]


def _script(module: torch.nn.Module, path: Path) -> Path:
    torch.jit.save(torch.jit.script(module.eval()), str(path))
    return path


class _Head(torch.nn.Module):
    """A linear classifier on breast-cancer's 30 features."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(30, 2)


class NanAboveThreshold(_Head):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc(x)
        return torch.where(x[:, :1] > 15.0, torch.full_like(out, float("nan")), out)


class RaisesAboveTwo(_Head):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 2:
            raise RuntimeError("this model was written for at most 2 rows")
        return self.fc(x)


class FixedBatchTwo(_Head):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.reshape(2, 30))


def _spec(model: str, **kw) -> ExperimentSpec:
    return ExperimentSpec(model=model, data=kw.pop("data", "sample:breast-cancer"), **{**FAST, **kw})


# --- item 2: hpo study files stay in the run folder; passwords never shown --------------------------

@pytest.mark.parametrize("recipe, words", [
    ("hpo:study_name=../../../../elsewhere/x", ["study_name='../../../../elsewhere/x'", "plain name"]),
    ("hpo:study_name=/tmp/abs", ["study_name='/tmp/abs'", "plain name"]),
    ("hpo:storage=sqlite:////any/path.db", ["sqlite:////any/path.db", "run folder", "sqlite:///study.db"]),
    ("hpo:storage=sqlite:///../../x.db", ["plain", "file name"]),
    ("hpo:storage=/tmp/x.db", ["not a storage URL"]),
])
def test_hpo_paths_outside_the_run_folder_are_refused_before_work(recipe, words):
    with pytest.raises(ConfigError) as info:
        parse_recipe(recipe)
    for word in words:
        assert word in info.value.one_line()


def test_hpo_sqlite_study_lands_in_the_run_folder_and_nowhere_else(tmp_path, monkeypatch, load_sample, ctx_for):
    from optim.registry import get

    monkeypatch.chdir(tmp_path)  # a relative sqlite URL used to land in the working directory
    candidate, splits = load_sample("breast-cancer-mlp")
    ctx = ctx_for(splits)
    hpo = get("hpo")
    config = hpo.config(trials=1, space=("lr",), fixed=("epochs:1",), storage="sqlite:///study.db",
                        study_name="my-search")
    (out,) = hpo.run(candidate, config, ctx)
    study = ctx.workdir.resolve() / "hpo" / "study.db"
    assert study.is_file() and (ctx.workdir / "hpo" / "my-search.jsonl").is_file()
    assert not (tmp_path / "study.db").exists()
    import optuna

    assert len(optuna.load_study(study_name="my-search", storage=f"sqlite:///{study}").trials) == 1
    assert out.info["hpo_trials_complete"] == 1


def test_a_database_url_from_the_dashboard_is_refused_and_its_password_never_shown(tmp_path):
    store = Store(tmp_path / "optim.db")
    recipe = f"hpo:storage={PG_URL},trials=1,fixed=epochs:1"
    # The dashboard's path: a worker replays the stored spec; nothing sets external_storage.
    res = run_experiment(_spec("sample:breast-cancer-mlp", data="sample", recipes=[recipe]), store=store,
                         out_dir=tmp_path / "run")
    row = res.rows[1]
    assert row["status"] == "failed" and "only from the command line" in row["error"]
    assert "alice:***@127.0.0.1" in row["recipe"]
    run = store.run(res.run_id)
    texts = [json.dumps(res.rows, default=str), json.dumps(run, default=str),
             json.dumps(store.events(res.run_id), default=str), json.dumps(store.rows(res.run_id), default=str),
             (tmp_path / "run" / "results.csv").read_text(), (tmp_path / "run" / "results.json").read_text(),
             (tmp_path / "run" / "run.json").read_text()]
    assert all(PASSWORD not in t for t in texts)
    assert "alice:***@" in run["spec"]["recipes"][0]


def test_a_database_url_from_the_cli_or_api_is_tried_and_its_password_masked(tmp_path, load_sample, ctx_for):
    from optim.registry import get

    candidate, splits = load_sample("breast-cancer-mlp")
    hpo = get("hpo")
    config = hpo.config(trials=1, space=("lr",), fixed=("epochs:1",), storage=PG_URL)
    with pytest.raises(ConfigError) as refused:  # the dashboard's context
        hpo.run(candidate, config, ctx_for(splits))
    assert "only from the command line" in str(refused.value)
    with pytest.raises(ConfigError) as failed:  # the CLI's context: tried, nothing listens on port 1
        hpo.run(candidate, config, ctx_for(splits, external_storage=True))
    message = str(failed.value)
    assert "cannot open the study" in message and "alice:***@127.0.0.1:1/optuna" in message
    assert PASSWORD not in message and PASSWORD not in repr(failed.value.args)


def test_redact_secrets_masks_only_url_passwords():
    assert redact_secrets(f"x {PG_URL} y") == "x postgresql://alice:***@127.0.0.1:1/optuna y"
    assert redact_secrets("mysql+pymysql://u:p@ss@h/db") == "mysql+pymysql://u:***@h/db"
    for kept in ("sqlite:///study.db", "postgresql://alice@host/db", "a:b@c", "http://host:80/x@y"):
        assert redact_secrets(kept) == kept
    assert PASSWORD not in str(OptimError(f"bad {PG_URL}", hint=f"try {PG_URL}"))


# --- item 8: NaN / inf outputs are flagged, with their count -----------------------------------------

def test_nan_outputs_make_the_row_invalid_with_the_count(tmp_path):
    from optim.io.datasets import load_dataset

    model = tmp_path / "nan.onnx"
    torch.onnx.export(NanAboveThreshold().eval(), (torch.zeros(4, 30),), str(model), dynamo=True,
                      external_data=False, dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    test_x = load_dataset("sample:breast-cancer").splits().test.X
    expected = int((test_x[:, 0] > 15.0).sum())
    assert 0 < expected < len(test_x)  # some rows NaN, some not: the count is not just "all"
    res = run_experiment(_spec(str(model), recipes=["quantize-dynamic"]), store=Store(tmp_path / "db"),
                         out_dir=tmp_path / "run")
    base, variant = res.rows
    for row in (base, variant):  # the baseline, and an int8 variant that inherits the NaNs
        assert row["status"] == "invalid", row
        assert row["invalid_outputs"] == expected
        assert row["error"].startswith(f"{expected} of {len(test_x)} test rows give NaN or infinite outputs")
        assert row["pareto"] is False
    assert "model itself" in base["error"] and "parent already" in variant["error"]


def test_finite_outputs_count_zero_invalid_rows():
    from optim.evaluation.metrics import invalid_rows

    assert invalid_rows(np.array([[1.0, 2.0], [np.inf, 0.0], [0.0, np.nan], [3.0, -1.0]])) == 2
    assert invalid_rows(np.zeros((5, 3))) == 0


# --- item 9: models that run on 2 rows but not at batch 1 or 32 -------------------------------------

def test_a_model_that_raises_above_batch_2_is_measured_within_what_it_accepts(tmp_path):
    from optim.io.datasets import load_dataset

    model = _script(RaisesAboveTwo(), tmp_path / "small-batches.pt")
    res = run_experiment(_spec(str(model)), store=Store(tmp_path / "db"), out_dir=tmp_path / "run")
    (row,) = res.rows
    assert row["status"] == "ok" and row["batch_n"] == 2
    test = load_dataset("sample:breast-cancer").splits().test
    module = RaisesAboveTwo().eval()
    with torch.no_grad():
        pred = np.concatenate([module.fc(torch.from_numpy(test.X[i:i + 2])).argmax(1).numpy()
                               for i in range(0, len(test.X), 2)])
    assert row["accuracy"] == pytest.approx(float((pred == test.y).mean()), abs=1e-12)


def test_a_fixed_batch_model_says_what_it_accepts_and_no_run_is_recorded(tmp_path):
    model = _script(FixedBatchTwo(), tmp_path / "fixed2.pt")
    store = Store(tmp_path / "db")
    with pytest.raises(InputError) as info:
        run_experiment(_spec(str(model)), store=store, out_dir=tmp_path / "run")
    line = info.value.one_line()
    assert "accepts batch size 2 only" in line and "dynamic batch dimension" in line
    assert store.runs() == []


def test_a_fixed_batch_model_in_a_worker_fails_the_run_with_the_same_message(tmp_path):
    # The dashboard's path: the run exists before the worker loads the model.
    model = _script(FixedBatchTwo(), tmp_path / "fixed2.pt")
    store = Store(tmp_path / "db")
    spec = _spec(str(model))
    from optim import jobs

    run_id = jobs.create_run(store, spec, spec.validate(), tmp_path / "run")
    with pytest.raises(InputError):
        run_experiment(spec, store=store, run_id=run_id)
    run = store.run(run_id)
    assert run["status"] == "failed" and "accepts batch size 2 only" in run["error"]


def test_cli_fixed_batch_is_one_line_and_leaves_no_run(tmp_path):
    model = _script(FixedBatchTwo(), tmp_path / "fixed2.pt")
    line = one_line_error(optim_cli("run", "--model", model, "--data", "sample:breast-cancer", "--threads", 1,
                                    "--latency-budget", 0.05, "--no-device-profiles", home=tmp_path))
    assert "accepts batch size 2 only" in line
    assert Store(tmp_path / "optim.db").runs() == []


# --- item 14: numbers, pipes, sniffing, sample wording, no failed runs for bad input --------------------

@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_latency_budget_is_refused(value):
    from optim.cli import build_parser

    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["run", "--model", "m", "--data", "d", "--latency-budget", value])
    assert info.value.code == 2
    with pytest.raises(ConfigError, match="finite"):
        _spec("sample:breast-cancer-mlp", latency_budget_s=float(value)).validate()


@pytest.mark.parametrize("setting, words", [
    ({"batch_size": 100_000_000}, ["batch=100000000", "1 to 4096", "--batch"]),  # tiled in memory: 12 GB
    ({"batch_size": 0}, ["batch=0", "--batch"]),
    ({"threads": 0}, ["threads=0", "--threads"]),
    ({"energy_inferences": 10**12}, ["energy inferences=", "--energy-inferences"]),
    ({"latency_budget_s": 86_400.0}, ["at most 60", "--latency-budget"]),
    ({"latency_budget_s": 0.0}, ["above 0"]),
])
def test_measurement_settings_are_bounded_before_anything_loads(setting, words):
    with pytest.raises(ConfigError) as info:
        _spec("sample:breast-cancer-mlp", **setting).validate()
    for word in words:
        assert word in info.value.one_line()


def test_cli_nan_budget_is_one_line(tmp_path):
    line = one_line_error(optim_cli("run", "--model", "sample:wine-mlp", "--data", "sample",
                                    "--latency-budget", "nan", home=tmp_path))
    assert "'nan' is not a finite number" in line


@pytest.mark.parametrize("command", [["techniques"], ["runs"], ["samples"]])
def test_output_into_a_closed_pipe_ends_quietly(tmp_path, command):
    store = Store(tmp_path / "optim.db")
    for i in range(3):
        store.create_run({"model": f"m{i}.onnx", "data": "d.csv"}, tmp_path / f"r{i}")
    read, write = os.pipe()
    os.close(read)  # `| head` that already left: every write fails with EPIPE
    try:
        proc = optim_cli(*command, home=tmp_path, stdout=write)
    finally:
        os.close(write)
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
    assert proc.stderr == "" and proc.returncode == 141


def test_random_bytes_starting_0x80_are_not_called_a_pickle(tmp_path):
    from optim.io.models import detect_format, load_model

    rng = random.Random(9)
    blobs = [b"\x80" + rng.randbytes(511) for _ in range(200)] + [b"\x80\x04" + rng.randbytes(510)]
    assert [b for b in blobs if detect_format(b) != "unknown"] == []
    path = tmp_path / "noise.pt"
    path.write_bytes(blobs[0])
    with pytest.raises(InputError) as info:
        load_model(path)
    assert "not a recognised model format" in str(info.value) and "pickle" not in str(info.value)
    # real pickles still are: torch.save's legacy format and a bare protocol-2 pickle
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(3)}, buf, _use_new_zipfile_serialization=False)
    import pickle

    assert detect_format(buf.getvalue()) == detect_format(pickle.dumps({"a": 1}, protocol=2)) == "torch-pickle"


@pytest.mark.parametrize("data, task, words", [
    ("sample:digits", "regression", ["regression task", "sample:digits"]),
    ("sample:breast-cancer", None, ["trained on sample:digits", "input shape (30,)"]),
    ("sample", "regression", ["task regression", "Drop the task override"]),
])
def test_a_sample_on_the_wrong_data_never_mentions_arch(tmp_path, data, task, words):
    store = Store(tmp_path / "db")
    with pytest.raises(OptimError) as info:
        run_experiment(_spec("sample:digits-mlp", data=data, task=task), store=store)
    line = info.value.one_line()
    assert "--arch" not in line and "arch" not in line.replace("architecture", "")
    for word in words:
        assert word in line
    assert store.runs() == []  # an input error leaves no failed run in History


def test_cli_input_errors_leave_no_failed_run(tmp_path):
    bad = tmp_path / "noise.bin"
    bad.write_bytes(b"\x80" + bytes(range(200)))
    out = tmp_path / "new" / "run"  # checked before the inputs, and made only to be removed again
    line = one_line_error(optim_cli("run", "--model", bad, "--data", "sample:iris", "--out", out, home=tmp_path))
    assert "not a recognised model format" in line
    assert not (tmp_path / "new").exists()
    line = one_line_error(optim_cli("run", "--model", "sample:digits-mlp", "--data", "sample:digits",
                                    "--task", "regression", home=tmp_path))
    assert "--arch" not in line
    assert Store(tmp_path / "optim.db").runs() == []


def test_the_dashboards_quick_baseline_measures_within_the_accepted_batches(tmp_path):
    from optim.sandbox import measure_baseline

    small = _script(RaisesAboveTwo(), tmp_path / "small-batches.pt")
    metrics = measure_baseline(str(small), "sample:breast-cancer", batch_size=32, latency_budget_s=0.02,
                               energy_inferences=50)
    assert metrics["batch_n"] == 2 and 0.0 <= metrics["accuracy"] <= 1.0
    fixed = _script(FixedBatchTwo(), tmp_path / "fixed2.pt")
    with pytest.raises(InputError, match="accepts batch size 2 only"):
        measure_baseline(str(fixed), "sample:breast-cancer", latency_budget_s=0.02, energy_inferences=50)
