"""History: a run gets a name, notes and tags, and the list can be searched and filtered by them."""

from __future__ import annotations

from app import state
from optim.store import Store
from tests.app._stored import copy_store, page


def test_name_notes_tags_then_search_and_filter(small_run, optim_home) -> None:
    run_id, _ = copy_store(small_run, optim_home)
    other = Store().create_run({"model": "sample:wine-mlp", "data": "sample:wine", "recipes": ["half"]})
    Store().update_run(other, status="failed", error="stopped")
    at = page("history")
    at.text_input(key=state.widget_key(state.RUN_NAME, run_id)).input("int8 for the Q3 review")
    at.text_area(key=state.widget_key(state.RUN_NOTES, run_id)).input("Size <matters> most.")
    at.text_input(key=state.widget_key(state.RUN_TAG_TEXT, run_id)).input("Review, int8, review")
    next(b for b in at.button if b.label == "Save" and b.key and run_id in b.key).click().run()
    assert not at.exception, [e.value for e in at.exception]
    stored = Store().run(run_id)
    assert (stored["name"], stored["notes"], stored["tags"]) == ("int8 for the Q3 review", "Size <matters> most.",
                                                                 ["review", "int8"])
    text = "\n".join(m.value for m in at.markdown)
    assert ":gray-badge[review]" in text and "int8 for the Q3 review" in text
    assert "Size \\<matters\\> most." in text or "Size &lt;matters&gt; most." in text  # user text escaped

    def listed() -> set[str]:
        return {b.key.split(":", 1)[1] for b in at.button if b.key and b.key.startswith(state.OPEN_RUN + ":")}

    assert listed() == {run_id, other}
    at.text_input(key=state.RUN_SEARCH).input("Q3").run()
    assert listed() == {run_id}
    at.text_input(key=state.RUN_SEARCH).input("wine").run()  # model names search too
    assert listed() == {other}
    at.text_input(key=state.RUN_SEARCH).input("").run()
    at.multiselect(key=state.RUN_TAGS).select("int8").run()
    assert listed() == {run_id}
    at.text_input(key=state.RUN_SEARCH).input("wine").run()
    assert listed() == set() and any("No run of 2 matches" in i.value for i in at.info)
