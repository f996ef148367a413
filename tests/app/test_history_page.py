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
