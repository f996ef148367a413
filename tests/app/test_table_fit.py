"""The comparison table fits: candidate, recipe and task metric pinned on the left, the other
columns chosen by the reader and kept for the session."""

from __future__ import annotations

import json

from app import state
from tests.app._stored import CHAIN, LONG_CHAIN, add_chains, copy_store, page


def test_key_columns_are_pinned_and_the_column_choice_is_kept(small_run, optim_home) -> None:
    _, rows = copy_store(small_run, optim_home)
    at = page("compare")
    proto = at.dataframe[0].proto
    config = json.loads(proto.columns)
    assert config["_index"]["pinned"] and config["Recipe"]["pinned"] and config["Accuracy (%)"]["pinned"]
    # As wide as the longest recipe up to the widest column, 240 px (30 characters × 7 px + padding):
    # prune-magnitude:sparsity=0.5 (28) fits, quantize-dynamic+prune-magnitude (32) is written out in full.
    assert config["Recipe"]["width"] == 240
    c4 = next(r["candidate_id"] for r in rows if r["recipe"] == "quantize-dynamic+prune-magnitude")
    assert [m.value for m in at.markdown if "Recipes in full" in m.value] == [
        f"**Recipes in full** — {c4} `quantize-dynamic+prune-magnitude`"]
    order = list(proto.column_order)
    assert order[:2] == ["Recipe", "Accuracy (%)"] and "Size (KB)" in order and "Size vs baseline" in order
    picker = at.multiselect(key=state.TABLE_COLUMN_PICKER)
    assert "Recipe" not in picker.options and "Size (KB)" in picker.value
    picker.unselect("Size (KB)").run()
    assert not at.exception
    order = list(at.dataframe[0].proto.column_order)
    assert "Size (KB)" not in order and order[:2] == ["Recipe", "Accuracy (%)"]
    assert "Size (KB)" not in at.session_state[state.TABLE_COLUMNS]
    at.toggle(key=state.ONLY_WITHIN).set_value(False).run()  # a rerun keeps the choice
    assert "Size (KB)" not in list(at.dataframe[0].proto.column_order)
    assert "Size vs baseline" in list(at.dataframe[0].proto.column_order)


def test_the_limits_filter_every_chart_too(small_run, optim_home) -> None:
    run_id, rows = copy_store(small_run, optim_home)
    at = page("compare")
    q = next(r for r in rows if r["recipe"] == "quantize-dynamic")
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    drawn = {c for t in spec["data"] for c in t.get("customdata") or []}
    assert q["candidate_id"] in drawn
    # A size limit below the int8 model: only the baseline (and failed rows, which have no point) remain.
    at.number_input(key=state.widget_key(state.LIMIT, "max_size_kb")).set_value(q["size_bytes"] / 1024 / 2).run()
    assert not at.exception
    shown = set(at.dataframe[0].value.index)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    drawn = {c for t in spec["data"] for c in t.get("customdata") or []}
    assert drawn == {"c0"} and drawn <= shown


def test_a_recipe_longer_than_the_widest_column_is_written_out_in_full(small_run, optim_home) -> None:
    run_id, rows = copy_store(small_run, optim_home)
    chain, long_chain = add_chains(optim_home, run_id, rows)
    at = page("compare", **{state.ONLY_WITHIN: False})
    config = json.loads(at.dataframe[0].proto.columns)
    assert config["Recipe"]["width"] == 240  # the widest: neither chain fits
    (full,) = [m.value for m in at.markdown if m.value.startswith("**Recipes in full**")]
    assert f"{chain} `{CHAIN}`" in full and f"{long_chain} `{LONG_CHAIN}`" in full
