"""Run page: shows a run's queue position, progress, log and outcome (done, partial, cancelled,
failed) from the store; follows the newest active run after a reload; cancels; reports a dead
worker as failed with its log, and shows a new run instead once one is started."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app import state
from optim import jobs
from optim.experiment import ExperimentSpec, run_experiment
from optim.store import Store
from tests.app._stored import copy_store

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


def _bars(at: AppTest) -> list[str]:
    return [b.proto.text for b in at.get("progress")]


def _seconds(shown: str) -> int:
    """``45 s`` or ``2 min 05 s`` (:func:`optim.jobs.fmt_duration` under an hour) in seconds."""
    match = re.fullmatch(r"(?:(\d+) min )?(\d+) s", shown)
    assert match, shown
    return int(match[1] or 0) * 60 + int(match[2])


def test_finished_run_shows_every_candidate_log_and_compare_button() -> None:
    store = Store()
    results = run_experiment(ExperimentSpec(model="sample:digits-mlp", data="sample:digits",
                                            recipes=["quantize-dynamic"], **FAST), store=store)
    assert results.status == "done"
    at = _page(**{state.ACTIVE_RUN: results.run_id})
    assert [s.value for s in at.success] == ["Finished — all 1 variant(s) measured."]
    assert next(m.value for m in at.metric if m.label == "Progress") == "100%"
    texts = _bars(at)
    assert any("c0" in t and "baseline" in t and "measured" in t for t in texts), texts
    assert any("c1" in t and "quantize-dynamic" in t and "measured" in t for t in texts), texts
    log = "\n".join(c.value for c in at.code)
    assert "recipe quantize-dynamic" in log
    assert any(b.label == "Open in Compare" for b in at.button)
    assert not any(b.label == "Cancel run" for b in at.button)


def test_partial_run_says_how_many_variants_failed_and_why(small_run, optim_home) -> None:
    run_id, rows = copy_store(small_run, optim_home)
    at = _page(**{state.ACTIVE_RUN: run_id})
    assert [w.value for w in at.warning] == ["Finished — 1 of 4 variant(s) failed; their errors are below."]
    assert not at.success
    failed = next(r for r in rows if r["status"] == "failed")
    (box,) = at.error  # the failed candidate's bar, red, with its error
    assert box.value.startswith(f"`{failed['candidate_id']}` quantize-dynamic+prune-magnitude — failed: ")
    assert failed["error"].split(":")[-1].strip() in box.value  # the row's own error, e.g. "no Linear … to prune"
    assert sum("measured" in t for t in _bars(at)) == 4


def test_reload_follows_newest_active_run_with_progress_eta_and_cancel() -> None:
    store = Store()
    spec = ExperimentSpec(model="sample:digits-mlp", data="sample:digits",
                          recipes=["prune-magnitude:sparsity=0.9,finetune_epochs=4", "quantize-dynamic"])
    run_id = jobs.create_run(store, spec, spec.validate())
    # A live worker (this process stands in for it) halfway through, 20 s after it started.
    assert store.claim(run_id, **jobs.owner())
    store.update_run(run_id, progress=0.5, message="c1 fine-tuning")
    with sqlite3.connect(store.path) as db:  # backdate the start so the ETA has elapsed time to work from
        db.execute("UPDATE runs SET started=? WHERE id=?", (time.time() - 20, run_id))
    store.put_row(run_id, {"candidate_id": "c0", "recipe": "baseline", "status": "ok"})
    store.event(
        run_id,
        "recipe",
        candidate_id="c1",
        data={"index": 0, "recipe": "prune-magnitude:sparsity=0.9,finetune_epochs=4"},
    )
    store.progress(run_id, "c1", "step 1/1 prune-magnitude", 0.5, "epoch 2/4")
    at = _page()  # no ACTIVE_RUN in this session: a reload or a second tab
    elapsed = time.time() - store.run(run_id)["started"]  # 20 s + however long the page took here
    assert at.session_state[state.ACTIVE_RUN] == run_id
    eta = next(m.value for m in at.metric if m.label == "ETA")
    # No estimates in this plan: baseline, 2 recipes and the timing phase weigh alike, 1.5 of 4 are
    # done, so elapsed × 2.5 / 1.5 — at least 20 s × 5/3, at most the time that really passed × 5/3
    # (past 36 s on a loaded machine that reads "1 min 05 s": read in seconds, whatever the unit).
    assert 33 <= _seconds(eta) <= elapsed * 5 / 3 + 1, eta
    texts = _bars(at)
    assert any("epoch 2/4" in t and "prune-magnitude:sparsity=0.9" in t for t in texts), texts
    assert any("quantize-dynamic" in t and t.endswith("— queued") for t in texts), texts  # planned, not started
    next(b for b in at.button if b.label == "Cancel run").click().run()
    assert store.run(run_id)["cancel_requested"]
    assert any("Cancel requested" in i.value for i in at.info)


def test_queued_run_says_what_it_waits_for_and_lists_its_recipes() -> None:
    store = Store()
    holder = store.create_run({"model": "m", "data": "d"}, name="first one", **jobs.owner())
    assert store.claim(holder, **jobs.owner())
    spec = ExperimentSpec(model="sample:digits-mlp", data="sample:digits",
                          recipes=["quantize-dynamic", "prune-magnitude:sparsity=0.5|0.9"])
    waiting = jobs.create_run(store, spec, spec.validate())
    at = _page(**{state.ACTIVE_RUN: waiting})
    (info,) = [i.value for i in at.info]
    assert info.startswith(f"Waiting: queued behind run “first one” ({holder}) — started ")
    assert [t.split(" — ")[-1] for t in _bars(at)] == ["queued"] * 3
    assert any(b.label == "Cancel run" for b in at.button)
    assert not any(m.label == "ETA" for m in at.metric)
    other_tab = _page()  # no run of its own: it follows the run being measured, not the newest queued
    assert other_tab.session_state[state.ACTIVE_RUN] == holder and not other_tab.info
    next(b for b in at.button if b.label == "Cancel run").click().run()
    assert store.run(waiting)["cancel_requested"] and store.run(holder)["status"] == "running"


def test_cancelled_run_lists_what_never_ran() -> None:
    store = Store()
    run_id = store.create_run({"model": "m", "data": "d", "recipes": ["a", "b"]}, plan=["quantize-dynamic", "half"],
                              **jobs.owner())
    assert store.claim(run_id, **jobs.owner())
    store.put_row(run_id, {"candidate_id": "c0", "recipe": "baseline", "status": "ok"})
    store.finish_if_active(run_id, "cancelled")
    at = _page(**{state.ACTIVE_RUN: run_id})
    assert [w.value for w in at.warning] == ["Cancelled — 0 of 2 variant(s) measured and kept, 2 not run."]
    assert [t.split(" — ")[-1] for t in _bars(at)][-2:] == ["not run", "not run"]


def test_dead_worker_is_shown_failed_with_its_log_tail_and_a_new_run_replaces_it() -> None:
    store = Store()
    run_id = store.create_run({"model": "sample:digits-mlp", "data": "sample:digits", "recipes": ["quantize-dynamic"]})
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    store.update_run(run_id, status="running", pid=proc.pid, host=jobs.this_host())
    store.runs_dir.mkdir(parents=True, exist_ok=True)
    (store.runs_dir / f"{run_id}.log").write_text("loading\nTraceback (most recent call last):\nMemoryError\n")
    at = _page(**{state.ACTIVE_RUN: run_id, state.RECIPES: ["quantize-dynamic"]})
    assert store.run(run_id)["status"] == "failed"
    assert any("worker process" in e.value for e in at.error)
    assert any("MemoryError" in c.value for c in at.code)
    # Starting a new run shows the new run, not the old failure.
    at.button(key=state.START_RUN).click().run()
    assert not at.exception, [e.value for e in at.exception]
    new_id = at.session_state[state.ACTIVE_RUN]
    new = store.run(new_id)
    try:
        assert new_id != run_id and new["status"] in ("queued", "running")
        assert not at.error and f"Run {new_id}" in [h.value for h in at.subheader]
    finally:  # stop the worker this test started (by its pid)
        os.kill(new["pid"], signal.SIGKILL)


def test_no_run_yet_says_so() -> None:
    at = _page()
    assert any("No run yet" in i.value for i in at.info)
    assert next(b for b in at.button if b.label == "Start run").disabled  # nothing chosen


def test_progress_is_weighed_like_the_eta() -> None:
    """Progress counts each part by its estimated seconds, as the ETA does: one quick recipe done
    and a slow one half way is 55% done, not the 3 of 4 parts the runner counts."""
    store = Store()
    recipes = ["quantize-dynamic", "prune-magnitude:sparsity=0.9,finetune_epochs=4"]
    run_id = store.create_run({"model": "sample:digits-mlp", "data": "sample:digits", "recipes": recipes},
                              plan=recipes)
    store.event(run_id, "plan", data={"recipes": recipes, "estimates_s": [10.0, 90.0], "baseline_s": 0.0,
                                      "timing_s": 0.0})
    assert store.claim(run_id, **jobs.owner())
    store.update_run(run_id, progress=0.75, message="c2 fine-tuning")  # the runner's count: 3 of 4 parts
    store.put_row(run_id, {"candidate_id": "c0", "recipe": "baseline", "status": "ok"})
    for i, cid in enumerate(("c1", "c2")):
        store.event(run_id, "recipe", candidate_id=cid, data={"index": i, "recipe": recipes[i]})
    store.put_row(run_id, {"candidate_id": "c1", "recipe": recipes[0], "status": "ok"})
    store.progress(run_id, "c2", "step 1/1 prune-magnitude", 0.5, "epoch 2/4")
    at = _page(**{state.ACTIVE_RUN: run_id})
    assert jobs.weighted_done(store, store.run(run_id))[0] == pytest.approx(0.55)
    assert next(m.value for m in at.metric if m.label == "Progress") == "55%"
    (bar,) = [b for b in at.get("progress") if b.proto.text == "c2 fine-tuning"]
    assert bar.proto.value == 55


def test_cancelled_run_counts_no_timing_it_never_did() -> None:
    store = Store()
    recipes = ["quantize-dynamic", "half"]
    run_id = store.create_run({"model": "m", "data": "d", "recipes": recipes}, plan=recipes)
    store.event(run_id, "plan", data={"recipes": recipes, "estimates_s": [30.0, 30.0], "baseline_s": 10.0,
                                      "timing_s": 30.0})
    assert store.claim(run_id, **jobs.owner())
    store.update_run(run_id, progress=0.25)
    store.put_row(run_id, {"candidate_id": "c0", "recipe": "baseline", "status": "ok"})
    store.finish_if_active(run_id, "cancelled")
    # Only the baseline (10 of 100 estimated seconds) was done: the timing phase never ran.
    assert jobs.weighted_done(store, store.run(run_id))[0] == pytest.approx(0.10)
