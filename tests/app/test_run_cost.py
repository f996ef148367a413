"""Run page (AppTest): each recipe's estimated time shows before the run starts, with a warning
above five minutes. The machine's calibration is fixed here (written to OPTIM_HOME), so the
figures are arithmetic, not a timing of the test machine."""

from __future__ import annotations

import json
from dataclasses import asdict

import torch
from streamlit.testing.v1 import AppTest

from app import state
from optim import cost
from tests.app._stored import ROOT, page


def _calibrate(home, per_mac: float) -> None:
    cal = cost.Calibration(train_s_per_batch=1e-3, train_s_per_mac=per_mac, infer_s_per_mac=per_mac / 3,
                           threads=2, torch=torch.__version__)
    (home / "cost_calibration.json").write_text(json.dumps(asdict(cal)))


def test_estimates_show_before_the_run_and_warn_when_long(optim_home) -> None:
    _calibrate(optim_home, 1e-6)  # a slow machine: twenty trials of twenty epochs take far more than 5 min
    at = page("run", **{state.RECIPES: ["quantize-dynamic", "hpo"], state.THREADS: 2})
    table = next(d.value for d in at.dataframe if "Estimated time" in d.value.columns)
    assert table["Recipe"].tolist() == ["quantize-dynamic", "hpo"]
    assert table["Training epochs"].tolist() == [0, 240]
    warning = " ".join(w.value for w in at.warning)
    assert "This run may take" in warning and "`hpo` alone" in warning

    _calibrate(optim_home, 1e-12)  # a fast machine: no warning, a caption with the total
    at = page("run", **{state.RECIPES: ["quantize-dynamic"], state.THREADS: 2})
    assert not [w for w in at.warning if "may take" in w.value]
    assert any(c.value.startswith("Estimated time: ~") for c in at.caption)


def test_techniques_page_shows_the_estimate_by_run_and_asks_before_a_long_run(optim_home) -> None:
    import os
    import signal

    from optim import COST_WARN_S, Store, dataset_summary, jobs, load_dataset, load_model, model_summary

    _calibrate(optim_home, 1e-6)  # a slow machine: hpo's trials take far more than 5 min
    # Through the entry point: Run switches to the Run page (st.navigation knows it).
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=60)
    at.session_state[state.THREADS] = 2
    at.switch_page("app_pages/techniques.py").run()
    assert not at.exception, [e.value for e in at.exception]
    at.text_area(key=state.RECIPE_TEXT).set_value("quantize-dynamic\nhpo").run()
    data = load_dataset("sample:digits")
    macs = model_summary(load_model("sample:digits-mlp", dataset=data))["macs"]
    cal = cost.cached_calibration(threads=2)
    assert cal is not None  # the file written above: without it estimate_run would time this machine
    est = cost.estimate_run(["quantize-dynamic", "hpo"], macs=float(macs), n_rows=int(dataset_summary(data)["n_rows"]),
                            cal=cal)
    total = sum(e.seconds for e in est)
    assert total > COST_WARN_S
    assert f"Estimated time: {cost.format_duration(total)}" in [c.value for c in at.caption]

    store = Store()
    at.button(key=state.TECH_RUN).click().run()  # a long run: asks first, starts nothing
    (ask,) = [w.value for w in at.warning if "Start it anyway?" in w.value]
    assert ask.startswith(f"This run may take {cost.format_duration(total)}: `hpo` alone")
    assert store.runs() == []
    at.button(key=state.CONFIRM_NO).click().run()
    assert not [w for w in at.warning if "Start it anyway?" in w.value] and store.runs() == []

    # A run being measured holds the queue, so the confirmed run waits in it (its worker does no work).
    holder = store.create_run({"model": "m", "data": "d"}, name="holder", **jobs.owner())
    assert store.claim(holder, **jobs.owner())
    at.button(key=state.TECH_RUN).click().run()
    at.button(key=state.CONFIRM_YES).click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Run"]
    started = [r for r in store.runs() if r["id"] != holder]
    try:
        assert len(started) == 1 and started[0]["spec"]["recipes"] == ["quantize-dynamic", "hpo"]
    finally:  # stop the worker this test started (by its pid)
        for r in started:
            if r.get("pid"):
                os.kill(int(r["pid"]), signal.SIGKILL)
