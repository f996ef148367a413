"""Run settings' "Quick measurement": a run started with it on measures with the demo's short
budgets, and its Run and Compare pages say so beside the figures; a full run says nothing."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from app import state
from optim import ExperimentSpec, RunSettings, get_preset, jobs
from optim.store import Store
from tests.app._stored import copy_store

ROOT = Path(__file__).resolve().parents[2]


def _spec_script() -> None:
    import streamlit as st

    from app import state
    from app.components import run_panel

    state.init()
    st.json(run_panel.spec_from_state(["quantize-dynamic"]).model_dump(), expanded=True)


def _spec(quick: bool) -> dict:
    at = AppTest.from_function(_spec_script, default_timeout=30)
    at.session_state[state.QUICK] = quick
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return json.loads(at.json[0].proto.body)


def _captions(page: str, run_id: str) -> list[str]:
    at = AppTest.from_file(str(ROOT / "app" / "app_pages" / page), default_timeout=30)
    at.session_state[state.ACTIVE_RUN] = run_id
    at.session_state[state.SELECTED_RUN] = run_id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return [c.value for c in at.caption]


def test_quick_measurement_runs_with_short_budgets_and_says_so(small_run, optim_home) -> None:
    full, quick = _spec(False), _spec(True)
    short = get_preset("demo").run_settings
    assert {k: quick[k] for k in short} == short
    assert short["latency_budget_s"] < RunSettings.defaults()["latency_budget_s"]
    assert {k: full[k] for k in short} == {k: RunSettings.defaults()[k] for k in short}
    assert {k: v for k, v in quick.items() if k not in short} == {k: v for k, v in full.items() if k not in short}

    store = Store()
    ids = {}
    for name, spec in (("full", full), ("quick", quick)):
        s = ExperimentSpec(**spec)
        ids[name] = jobs.create_run(store, s, s.validate())
        store.update_run(ids[name], status="done")
    said = [c for c in _captions("run.py", ids["quick"]) if c.startswith("Quick measurement:")]
    full_budgets = RunSettings.defaults()
    assert said == [f"Quick measurement: latency from {short['latency_budget_s']:g} s of timed repeats per figure, "
                    f"energy over {short['energy_inferences']} inferences, no device profiles (a full run: "
                    f"{full_budgets['latency_budget_s']:g} s and {full_budgets['energy_inferences']}); "
                    "its figures are noisier than a full run's."], said
    assert not [c for c in _captions("run.py", ids["full"]) if "Quick measurement" in c]
    # Compare, beside the figures of a run with rows (the session's small run measured with short budgets).
    run_id, _ = copy_store(small_run, optim_home)
    budgets = Store().run(run_id)["spec"]
    said = [c for c in _captions("compare.py", run_id) if c.startswith("Quick measurement:")]
    assert len(said) == 1 and said[0].startswith(
        f"Quick measurement: latency from {budgets['latency_budget_s']:g} s of timed repeats per figure, "
        f"energy over {budgets['energy_inferences']} inferences"), said
