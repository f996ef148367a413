"""Compare page (AppTest): builds its table, recommendation and figures from a stored run;
limits filter the table; an axis change re-reads nothing."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from app import state
from optim.compare import recommend
from tests.app._stored import ROOT, copy_store, page


def test_compare_renders_table_recommendation_and_charts(small_run, optim_home) -> None:
    run_id, rows = copy_store(small_run, optim_home)
    at = page("compare")
    assert at.session_state[state.SELECTED_RUN] == run_id  # the newest finished run by default
    table = at.dataframe[0].value
    base = rows[0]
    # Default limit: at most 1 pt below the baseline; the baseline and failed rows always show.
    within = [r["candidate_id"] for r in rows if r["status"] != "ok" or r is base
              or (base["metric_value"] - r["metric_value"]) * 100 <= 1.0]
    assert list(table.index) == within and len(within) < len(rows)
    at.toggle(key=state.ONLY_WITHIN).set_value(False).run()
    table = at.dataframe[0].value
    assert list(table.index) == [r["candidate_id"] for r in rows]  # every row, the failed one too
    assert {"Accuracy (%)", "Size (KB)", "Latency p50 b1 (ms)", "Size vs baseline"} <= set(table.columns)
    q = next(r for r in rows if r["recipe"] == "quantize-dynamic")
    assert table.loc[q["candidate_id"], "Size (KB)"] == q["size_bytes"] / 1024
    assert (
        table.loc[q["candidate_id"], "Size vs baseline"].split("×")[0] == f"{base['size_bytes'] / q['size_bytes']:.1f}"
    )
    failed = next(r for r in rows if r["status"] == "failed")
    assert table.loc[failed["candidate_id"], "Error"] == failed["error"]
    cid, reason = recommend(rows)  # measured latency/energy decide it: the page must say the same
    boxes = [s.value for s in at.success] + [i.value for i in at.info]
    assert any(f"Recommended: {cid} " in b or f"keep the baseline ({cid})" in b for b in boxes), boxes
    assert reason in [c.value for c in at.caption] + boxes or reason in " ".join(boxes)
    # Every timed variant has speed intervals, listed (st.dataframe has no per-cell hover).
    listed = next(e for e in at.expander if e.label == "95% intervals of the timed figures").markdown[0].value
    for r in rows[1:]:
        if r["status"] == "ok":
            assert f"**{r['candidate_id']}**: Latency b1 " in listed
    assert [t.label for t in at.tabs][:4] == [
        "Pareto front",
        "Per metric",
        "Parallel coordinates",
        "Sensitivity (sweeps)",
    ]
    charts = at.get("plotly_chart")
    assert len(charts) == 1  # only the open tab is drawn
    if cid == "c0":  # measured latency decides; both outcomes are checked
        assert not at.metric and any("keep the baseline" in i.value for i in at.info)
    else:
        assert {m.label for m in at.metric} >= {"Accuracy", "Size", "Latency (batch 1)"}

    # A size limit below the int8 model hides every variant but keeps the baseline and the failed row.
    at.toggle(key=state.ONLY_WITHIN).set_value(True).run()
    at.number_input(key=state.widget_key(state.LIMIT, "max_size_kb")).set_value(q["size_bytes"] / 1024 / 2).run()
    assert not at.exception
    shown = at.dataframe[0].value
    assert list(shown.index) == ["c0", failed["candidate_id"]]
    assert any("No candidate meets all the limits" in w.value for w in at.warning)
    assert at.session_state[state.LIMITS]["max_size_bytes"] == q["size_bytes"] / 2

    # Changing the Pareto axis only redraws one cached figure.
    at.number_input(key=state.widget_key(state.LIMIT, "max_size_kb")).set_value(None).run()
    at.selectbox(key=state.PARETO_X).set_value("size_bytes").run()
    assert not at.exception
    fig_json = at.get("plotly_chart")[0].proto.spec
    assert "Size (KB)" in fig_json


def test_compare_other_tabs_and_empty_store(small_run, optim_home) -> None:
    at = page("compare")
    assert any("No results yet" in i.value for i in at.info)
    copy_store(small_run, optim_home)
    # Every candidate: the limits filter the charts too, and the default one hides the 0.9 sweep point.
    at = page("compare", **{state.CHART_TAB: "Sensitivity (sweeps)", state.ONLY_WITHIN: False})
    spec = at.get("plotly_chart")[0].proto.spec
    assert "sparsity" in spec and "Sensitivity" in spec


def test_a_run_without_rows_yet_stays_selected(small_run, optim_home) -> None:
    from optim.store import Store

    run_id, _ = copy_store(small_run, optim_home)
    started = Store().create_run({"model": "sample:digits-mlp", "data": "sample", "recipes": ["quantize-dynamic"]})
    Store().update_run(started, status="running")
    at = page("compare", **{state.SELECTED_RUN: started})
    assert any(f"Run {started} has no finished candidate yet" in i.value for i in at.info)
    assert at.session_state[state.SELECTED_RUN] == started  # still followed
    assert at.session_state[state.RUN_PICKER] == run_id  # the stored run is shown meanwhile


def test_picked_candidates_side_by_side_and_in_the_link(small_run, optim_home) -> None:
    """Two candidates picked: one column each with every field, a detail panel each, ringed on the
    Pareto chart; a link (query) with run, picks, axis and limits reopens the same view."""
    run_id, rows = copy_store(small_run, optim_home)
    ok = [r["candidate_id"] for r in rows if r["status"] == "ok" and r["candidate_id"] != "c0"]
    a, b = ok[0], ok[-1]
    at = AppTest.from_file(str(ROOT / "app" / "app_pages" / "compare.py"), default_timeout=60)
    at.query_params["run"] = run_id
    at.query_params["picked"] = f"{a},{b},zz9"  # an unknown id in a link is dropped
    at.query_params["x"] = "size_bytes"
    at.query_params["drop"] = "none"
    at.query_params["kb"] = "5000"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state[state.SELECTED_RUN] == run_id
    assert at.session_state[state.PICKED] == [a, b]
    assert at.session_state[state.PARETO_X] == "size_bytes"
    assert at.session_state[state.LIMITS] == {"max_metric_drop_pt": None, "max_latency_ms": None,
                                              "max_size_bytes": 5000 * 1024, "max_energy_j_per_1k": None}
    side = next(d.value for d in at.dataframe if list(d.value.columns) == [a, b])
    by = {r["candidate_id"]: r for r in rows}
    assert side.loc["Recipe", a] == by[a]["recipe"] and side.loc["Recipe", b] == by[b]["recipe"]
    assert side.loc["size_bytes", b] == f"{by[b]['size_bytes']:,.0f}"
    assert "prune-magnitude" in side.loc["Steps", b] or "quantize-dynamic" in side.loc["Steps", b]
    panels = [m.value for m in at.markdown if m.value.startswith(f"**{a}**") or m.value.startswith(f"**{b}**")]
    assert len(panels) == 2
    spec = at.get("plotly_chart")[0].proto.spec
    assert '"name":"picked"' in spec.replace(" ", "")
    # The view written back is the one read.
    at.multiselect(key=state.PICKED).set_value([b]).run()
    assert not at.exception
    assert [d.value.columns.tolist() for d in at.dataframe if d.value.columns.tolist() == [b]]
