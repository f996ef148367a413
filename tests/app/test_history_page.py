"""History page (AppTest): lists stored runs with their best candidate; deletes after a confirmation."""

from __future__ import annotations

from app import state
from optim.store import Store
from tests.app._stored import copy_store, page


def test_history_lists_and_deletes_with_confirmation(small_run, optim_home) -> None:
    at = page("history")
    assert any("No runs yet" in i.value for i in at.info)
    run_id, rows = copy_store(small_run, optim_home)
    at = page("history", **{state.SELECTED_RUN: run_id})
    text = "\n".join(m.value for m in at.markdown)
    assert "digits-mlp" in text and f"{len(rows)} row(s)" in text and "Best: c" in text
    for recipe in ("quantize-dynamic", "prune-magnitude:sparsity=0.5|0.9"):
        assert f"`{recipe}`" in text
    assert at.button(key=state.widget_key(state.OPEN_RUN, run_id)).label == "Open"
    at.button(key=state.widget_key(state.DELETE_RUN, run_id)).click().run()
    assert any("cannot be undone" in w.value for w in at.warning)
    at.button(key=state.DELETE_NO).click().run()
    assert not at.warning and Store().runs()
    at.button(key=state.widget_key(state.DELETE_RUN, run_id)).click().run()
    at.button(key=state.DELETE_YES).click().run()
    assert not at.exception
    assert Store().runs() == []
    assert at.session_state[state.SELECTED_RUN] is None
    assert any("No runs yet" in i.value for i in at.info)


def test_history_marks_dead_runs_failed_and_lets_them_be_deleted(small_run, optim_home) -> None:
    import subprocess
    import sys

    from optim import jobs

    run_id, _ = copy_store(small_run, optim_home)
    store = Store()
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = store.create_run({"model": "m.onnx", "data": "d.csv"}, pid=proc.pid, host=jobs.this_host())
    store.claim(dead)
    holder = store.create_run({"model": "m.onnx", "data": "d.csv"}, name="holder", **jobs.owner())
    assert store.claim(holder, wait_for_others=False)
    live = store.create_run({"model": "m.onnx", "data": "d.csv"}, **jobs.owner())
    at = page("history")
    badges = "\n".join(m.value for m in at.markdown)
    assert ":orange-badge[partial]" in badges and ":red-badge[failed]" in badges and ":blue-badge[queued]" in badges
    assert store.run(dead)["status"] == "failed"
    assert any(f"pid {proc.pid}" in c.value for c in at.caption)
    assert not at.button(key=state.widget_key(state.DELETE_RUN, dead)).disabled
    assert at.button(key=state.widget_key(state.DELETE_RUN, live)).disabled  # still queued: cancel it first
    assert not at.button(key=state.widget_key(state.DELETE_RUN, run_id)).disabled
    captions = [c.value for c in at.caption]
    assert "Finished — 1 of 4 variant(s) failed (their errors are on Compare)." in captions
    assert any(c.startswith(f"queued behind run “holder” ({holder}) — started ") for c in captions), captions
    at.button(key=state.widget_key(state.CANCEL, live)).click().run()
    assert store.run(live)["cancel_requested"]
    assert at.button(key=state.widget_key(state.CANCEL, live)).disabled
