"""Model & data page: first visit shows the bundled sample and its baseline; bad uploads show the
loader's error and keep the previous valid choice; good uploads replace it."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
from streamlit.testing.v1 import AppTest

from app import state
from app.components import uploads

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "app" / "app_pages" / "model_data.py")


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_first_visit_shows_the_sample_and_its_baseline() -> None:
    at = _page()
    assert at.session_state[state.MODEL_REF] == "sample:digits-mlp"
    assert at.session_state[state.DATA_REF] == "sample:digits"
    assert not at.error, [e.value for e in at.error]
    assert _metric(at, "Rows") == "1,797" and _metric(at, "Classes") == "10"
    assert _metric(at, "Parameters") == f"{64 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10:,}"
    assert _metric(at, "Input shape") == "64"
    assert float(_metric(at, "accuracy")) >= 0.95  # the bundled sample is trained
    assert float(_metric(at, "Size").split()[0].replace(",", "")) > 100  # ~200 kB of fp32 weights
    assert at.button[0].label == "Try the demo" and not at.button[0].disabled  # first on the page
    images = at.get("image")  # digits rows are 8×8 images: a grid of the first ones, labelled
    assert images and len(images[0].value) == 16 and images[0].captions[:3] == ["0", "1", "2"]


def test_garbage_model_upload_shows_error_and_keeps_previous_model() -> None:
    at = _page()
    before = at.session_state[state.MODEL_REF]
    at.file_uploader(key=state.MODEL_UPLOAD).upload("weights.pt", b"\x00garbage" * 50).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("weights.pt" in e and "not a recognised model format" in e for e in errors), errors
    assert at.session_state[state.MODEL_REF] == before
    assert at.session_state[state.UPLOAD_ERROR]
    assert float(_metric(at, "accuracy")) >= 0.95  # the previous model is still loaded and shown


def test_torchscript_upload_replaces_the_model(load_sample) -> None:
    import torch

    baseline, _ = load_sample("digits-mlp")
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(baseline.torch_module()), buf)
    data = buf.getvalue()
    at = _page()
    at.file_uploader(key=state.MODEL_UPLOAD).upload("my-mlp.pt", data).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    ref = at.session_state[state.MODEL_REF]
    assert Path(ref).name == hashlib.sha256(data).hexdigest() + ".pt"
    assert Path(ref).parent == Path(os.environ["OPTIM_HOME"]) / "uploads"
    assert at.session_state[state.UPLOAD_NAMES][ref] == "my-mlp.pt"
    assert float(_metric(at, "accuracy")) >= 0.95  # same weights, same accuracy


def test_csv_upload_needs_a_target_then_flags_the_model_mismatch() -> None:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    df = pd.DataFrame(bunch.data, columns=[f"f{i}" for i in range(bunch.data.shape[1])])
    df["diagnosis"] = np.where(bunch.target == 1, "benign", "malignant")
    at = _page()
    at.file_uploader(key=state.DATA_UPLOAD).upload("cancer.csv", df.to_csv(index=False).encode()).run()
    assert not at.exception
    assert any("cancer.csv" in e.value and "target" in e.value for e in at.error)
    assert at.session_state[state.DATA_REF] == "sample:digits"  # unchanged until it loads

    at.selectbox(key=state.UP_TARGET).set_value("diagnosis").run()
    assert not at.exception
    assert at.session_state[state.DATA_REF].endswith(".csv")
    assert at.session_state[state.TARGET] == "diagnosis"
    assert _metric(at, "Rows") == "569" and _metric(at, "Classes") == "2"
    # The digits model cannot take 30 features: said plainly, and nothing is measured.
    assert any("do not work together" in e.value for e in at.error)
    assert not any(m.label == "accuracy" for m in at.metric)


def test_bad_csv_keeps_previous_dataset() -> None:
    at = _page()
    bad = b"a,b,target\n1,2,0\n3,,1\n" + b"1,2,0\n" * 20
    at.file_uploader(key=state.DATA_UPLOAD).upload("holes.csv", bad).run()
    assert any("holes.csv" in e.value and "missing values" in e.value for e in at.error)
    assert at.session_state[state.DATA_REF] == "sample:digits"
    assert _metric(at, "Rows") == "1,797"


def test_save_upload_is_content_addressed() -> None:
    a = uploads.save_upload("x.CSV", b"a,b\n1,2\n")
    b = uploads.save_upload("other-name.csv", b"a,b\n1,2\n")
    assert a == b and a.name == hashlib.sha256(b"a,b\n1,2\n").hexdigest() + ".csv"
    assert uploads.save_upload("weird.name.$$$", b"z").suffix == ".bin"


def test_demo_button_starts_a_worker_and_the_run_page_shows_a_dead_one_failed() -> None:
    from optim.jobs import is_alive
    from optim.presets import get_preset
    from optim.store import Store

    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=90)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    next(b for b in at.button if b.label == "Try the demo").click().run()
    assert not at.exception, [e.value for e in at.exception]
    run_id = at.session_state[state.ACTIVE_RUN]
    store = Store()
    run = store.run(run_id)
    assert run["spec"]["recipes"] == list(get_preset("demo").recipes)
    assert run["spec"]["model"] == "sample:digits-mlp"
    assert any(t.value == "Run" for t in at.title)  # switched to the Run page

    # Stop the worker we started (by its pid) and check the Run page reports it failed.
    os.kill(run["pid"], signal.SIGKILL)
    deadline = time.time() + 30
    while is_alive(run["pid"]) and time.time() < deadline:
        time.sleep(0.1)
    assert not is_alive(run["pid"])
    assert store.run(run_id)["status"] in ("queued", "running")  # the worker could not record an end
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert store.run(run_id)["status"] == "failed"
    assert any("failed" in e.value and "worker process" in e.value for e in at.error)


def test_pickled_module_needs_trust_and_weights_need_an_architecture(load_sample) -> None:
    import torch
    from safetensors.torch import save as save_safetensors

    baseline, _ = load_sample("digits-mlp")
    module = baseline.torch_module()
    at = _page()
    pickled = io.BytesIO()
    torch.save(module, pickled)
    at.file_uploader(key=state.MODEL_UPLOAD).upload("full.pt", pickled.getvalue()).run()
    assert any("full.pt" in e.value and "pickle" in e.value.lower() for e in at.error), [e.value for e in at.error]
    assert at.session_state[state.MODEL_REF] == "sample:digits-mlp"
    assert not any("runs code from the file" in w.value for w in at.warning)
    at.toggle(key=state.UP_TRUST).set_value(True).run()
    assert any("runs code from the file" in w.value for w in at.warning)  # said before it is used
    assert at.session_state[state.MODEL_REF].endswith(".pt") and at.session_state[state.TRUST_PICKLE] is True
    assert not at.error

    weights = save_safetensors({k: v.contiguous() for k, v in module.state_dict().items()})
    at.toggle(key=state.UP_TRUST).set_value(False)
    at.file_uploader(key=state.MODEL_UPLOAD).clear().upload("w.safetensors", weights).run()
    assert any("w.safetensors" in e.value and "arch" in e.value for e in at.error)
    at.selectbox(key=state.UP_ARCH).set_value("digits-mlp").run()
    assert not at.error, [e.value for e in at.error]
    assert at.session_state[state.MODEL_REF].endswith(".safetensors")
    assert at.session_state[state.ARCH] == "digits-mlp"
    assert float(_metric(at, "accuracy")) >= 0.95


def test_endless_model_upload_gets_a_timeout_error_and_is_not_kept(monkeypatch, tmp_path) -> None:
    from tests.security.adversarial import forever_torchscript

    path = forever_torchscript(tmp_path / "forever.pt")
    monkeypatch.setenv("OPTIM_MODEL_TIMEOUT_S", "2")  # the child process inherits it
    at = _page()
    at.file_uploader(key=state.MODEL_UPLOAD).upload("forever.pt", path.read_bytes()).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("forever.pt: the model did not answer within 2 s" in e for e in errors), errors
    assert at.session_state[state.MODEL_REF] == "sample:digits-mlp"  # the previous model stays
    assert float(_metric(at, "accuracy")) >= 0.95
    assert not any((Path(os.environ["OPTIM_HOME"]) / "uploads").glob("*.pt"))  # the rejected file is gone


def _open_run(run_id: str) -> None:
    from app import state

    state.init()
    state.select_run(run_id)


def test_opening_a_run_on_the_samples_own_data_loads_that_data(small_run, optim_home) -> None:
    """The session's run says data "sample" (the CLI's shorthand): opening it loads sample:digits
    (which Model & data measures), not a dataset file named 'sample' that does not exist."""
    from streamlit.testing.v1 import AppTest

    from tests.app._stored import copy_store

    run_id, _ = copy_store(small_run, optim_home)
    assert small_run[1].run(run_id)["spec"]["data"] == "sample"
    opened = AppTest.from_function(_open_run, args=(run_id,), default_timeout=30)
    opened.run()
    assert not opened.exception, [e.value for e in opened.exception]
    assert (opened.session_state[state.MODEL_REF], opened.session_state[state.DATA_REF]) == \
        ("sample:digits-mlp", "sample:digits")
