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


def test_two_runs_of_one_model_compared_in_one_table_and_chart(small_run, optim_home) -> None:
    run_id, rows = copy_store(small_run, optim_home)
    store = Store()
    src = store.run(run_id)
    second = store.create_run(src["spec"], out_dir=src["out_dir"])
    for r in rows[:2]:  # a second run of the same model and data: its baseline and one variant
        store.put_row(second, dict(r))
    store.update_run(second, status="done")
    other = store.create_run({**src["spec"], "data": "sample:wine"}, out_dir=src["out_dir"])
    store.put_row(other, dict(rows[0]))
    store.update_run(other, status="done")
    at = page("history")
    picker = at.multiselect(key=state.COMPARE_RUNS)
    assert len(picker.options) == 3  # options are shown as run titles
    picker.set_value([second]).run()
    assert not at.exception
    picker = at.multiselect(key=state.COMPARE_RUNS)
    assert len(picker.options) == 2  # the run on other data is not comparable: no longer offered
    assert not any("wine" in o for o in picker.options)
    picker.set_value([second, run_id]).run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert list(table.index) == [f"{second}/{r['candidate_id']}" for r in rows[:2]] + \
        [f"{run_id}/{r['candidate_id']}" for r in rows]
    q = next(r for r in rows if r["recipe"] == "quantize-dynamic")
    assert table.loc[f"{run_id}/{q['candidate_id']}", "Size (KB)"] == q["size_bytes"] / 1024
    spec = at.get("plotly_chart")[0].proto.spec
    assert f"run {run_id}" in spec and f"run {second}" in spec
