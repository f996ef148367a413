"""Run page: shows a run's progress, log and result from the store; follows the newest active
run after a reload; cancels; reports a dead worker as failed with its log."""

from __future__ import annotations

from pathlib import Path

import sqlite3
import subprocess
import sys
import time

import pytest
from streamlit.testing.v1 import AppTest

from app import state
from app.components import run_panel
from optim.experiment import ExperimentSpec, run_experiment
from optim.store import Store

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "app" / "app_pages" / "run.py")
FAST = dict(latency_budget_s=0.05, energy_inferences=200, threads=1, device_profiles=False)


def _page(**session) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    for k, v in session.items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_finished_run_shows_every_candidate_log_and_compare_button() -> None:
    store = Store()
    results = run_experiment(ExperimentSpec(model="sample:digits-mlp", data="sample:digits",
                                            recipes=["quantize-dynamic"], **FAST), store=store)
    assert results.status == "done"
    at = _page(**{state.ACTIVE_RUN: results.run_id})
    assert any(s.value == "Done." for s in at.success)
    assert next(m.value for m in at.metric if m.label == "Progress") == "100%"
    bars = [p for p in at.get("progress")]
    texts = [getattr(b, "proto").text for b in bars]
    assert any("c0" in t and "baseline" in t and "measured" in t for t in texts), texts
    assert any("c1" in t and "quantize-dynamic" in t and "measured" in t for t in texts), texts
    log = "\n".join(c.value for c in at.code)
    assert "recipe quantize-dynamic" in log
    assert any(b.label == "Open in Compare" for b in at.button)
    assert not any(b.label == "Cancel run" for b in at.button)


def test_reload_follows_newest_active_run_with_progress_eta_and_cancel() -> None:
    import os

    store = Store()
    spec = ExperimentSpec(model="sample:digits-mlp", data="sample:digits",
                          recipes=["prune-magnitude:sparsity=0.9,finetune_epochs=4"])
    run_id = store.create_run(spec.to_dict())
    # A live worker (this process stands in for it) halfway through, 20 s after it started.
    store.update_run(run_id, status="running", pid=os.getpid(), progress=0.5, message="c1 fine-tuning")
    with sqlite3.connect(store.path) as db:  # backdate the start so the ETA has elapsed time to work from
        db.execute("UPDATE runs SET created=? WHERE id=?", (time.time() - 20, run_id))
    store.progress(run_id, "c1", "step 1/1 prune-magnitude", 0.5, "epoch 2/4")
    store.log(run_id, "recipe prune-magnitude:sparsity=0.9,finetune_epochs=4", "c1")
    at = _page()  # no ACTIVE_RUN in this session: a reload or a second tab
    elapsed = time.time() - store.run(run_id)["created"]  # 20 s + however long the page took here
    assert at.session_state[state.ACTIVE_RUN] == run_id
    eta = next(m.value for m in at.metric if m.label == "ETA")
    # elapsed × (1 − 0.5) / 0.5 = elapsed: at least the 20 s, at most the time that really passed
    assert eta.endswith(" s") and 19 <= int(eta.split()[0]) <= elapsed + 1
    texts = [b.proto.text for b in at.get("progress")]
    assert any("epoch 2/4" in t and "prune-magnitude:sparsity=0.9" in t for t in texts), texts
    assert next(b for b in at.button if b.label == "Start run").disabled  # one job at a time
    next(b for b in at.button if b.label == "Cancel run").click().run()
    assert store.run(run_id)["cancel_requested"]
    assert any("Cancel requested" in i.value for i in at.info)


def test_dead_worker_is_shown_failed_with_its_log_tail() -> None:
    store = Store()
    run_id = store.create_run({"model": "sample:digits-mlp", "data": "sample:digits", "recipes": ["quantize-dynamic"]})
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    store.update_run(run_id, status="running", pid=proc.pid)
    store.runs_dir.mkdir(parents=True, exist_ok=True)
    (store.runs_dir / f"{run_id}.log").write_text("loading\nTraceback (most recent call last):\nMemoryError\n")
    at = _page(**{state.ACTIVE_RUN: run_id})
    assert store.run(run_id)["status"] == "failed"
    assert any("worker process" in e.value for e in at.error)
    assert any("MemoryError" in c.value for c in at.code)


def test_eta_is_elapsed_times_remaining_fraction() -> None:
    now = 1000.0
    run = {"status": "running", "progress": 0.25, "created": now - 10}
    assert run_panel.eta_s(run, now) == pytest.approx(30.0)
    assert run_panel.eta_s({**run, "progress": 0.0}, now) is None
    assert run_panel.eta_s({**run, "status": "done"}, now) is None
    assert run_panel.fmt_s(75) == "1 min 15 s"


def test_no_run_yet_says_so() -> None:
    at = _page()
    assert any("No run yet" in i.value for i in at.info)
    assert next(b for b in at.button if b.label == "Start run").disabled  # nothing chosen
