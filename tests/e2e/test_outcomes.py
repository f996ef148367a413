"""In a real browser: each recipe's estimated time shows on the Run page before Run is pressed
(issue item "cost before you press Run"), and a run where one variant failed reads as a partial
finish in warning colour, with the failed candidate's error, and as `partial` on History.

The machine's calibration is fixed (written to the served app's OPTIM_HOME before it starts), so
the estimates are arithmetic, not a timing of the test machine. The failing run is the session's
small run (tests/conftest.py) copied into the app's store. Every step waits for the app's text.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict

import pytest

from tests.app._stored import copy_store
from tests.e2e._ui import idle, nav, open_page, snap, switch_on

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

PER_MAC = 1e-12  # a fast machine: every estimate stays under the five-minute warning


@pytest.fixture(scope="module")
def app_home(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The app's OPTIM_HOME, holding a fixed calibration before the app starts (overrides conftest)."""
    import torch

    import optim
    from optim import cost

    home = tmp_path_factory.mktemp("e2e-outcomes-home")
    cal = cost.Calibration(train_s_per_batch=1e-3, train_s_per_mac=PER_MAC, infer_s_per_mac=PER_MAC / 3,
                           threads=int(optim.RunSettings.defaults()["threads"]), torch=torch.__version__)
    (home / "cost_calibration.json").write_text(json.dumps(asdict(cal)))
    return home


def test_estimates_show_before_run(page, app_url, app_home, artifacts) -> None:  # type: ignore[no-untyped-def]
    from optim import cost, dataset_summary, load_dataset, load_model, model_summary

    open_page(page, f"{app_url}/techniques", "Techniques")
    switch_on(page, "Quantization", "quantize-dynamic")
    switch_on(page, "Pruning", "prune-magnitude")
    page.get_by_text(re.compile(r"2 recipe\(s\) → ")).first.wait_for()
    nav(page, "Run")  # the sidebar link: the page's Run button would start the run
    table = page.locator('[data-testid="stDataFrame"]').filter(has_text="Estimated time")
    table.wait_for(timeout=120_000)
    idle(page)
    caption = page.locator('[data-testid="stCaptionContainer"]').filter(has_text="Estimated time: ~")
    caption.wait_for()
    recipes = [ln for ln in page.locator('[data-testid="stCode"]').first.inner_text().splitlines() if ln.strip()]
    assert sorted(r.split(":")[0] for r in recipes) == ["prune-magnitude", "quantize-dynamic"], recipes

    # The same arithmetic the page does, from the same calibration, model MACs and data size.
    data = load_dataset("sample:digits")
    macs = model_summary(load_model("sample:digits-mlp", dataset=data))["macs"]
    # The served app's calibration file, read here as it is: this process's own OPTIM_HOME has none
    # (and estimate_run would time this machine for a missing one).
    cal = cost.Calibration(**json.loads((app_home / "cost_calibration.json").read_text()))
    assert cal.infer_s_per_mac == PER_MAC / 3
    est = cost.estimate_run(recipes, macs=float(macs), n_rows=int(dataset_summary(data)["n_rows"]), cal=cal)
    text = table.text_content()
    for e in est:
        assert e.recipe in text and cost.format_duration(e.seconds) in text, (e, text)
    total = cost.format_duration(sum(e.seconds for e in est))
    assert caption.inner_text().startswith(f"Estimated time: {total} on this machine"), caption.inner_text()
    assert not page.locator('[data-testid="stAlertContentWarning"]').filter(has_text="may take").count()
    assert page.get_by_text("No run yet.").count() == 1  # nothing was started
    snap(page, artifacts, "outcomes-1-cost-before-run")


def test_partial_failure_is_not_success(page, app_url, small_run, app_home, artifacts) -> None:  # type: ignore[no-untyped-def]
    from optim.store import Store

    run_id, rows = copy_store(small_run, app_home)
    assert Store(app_home / "optim.db").run(run_id)["status"] == "partial"
    failed = [r for r in rows if r["status"] != "ok"]
    variants = [r for r in rows if r["candidate_id"] != "c0"]
    assert len(failed) == 1 and failed[0]["recipe"] == "quantize-dynamic+prune-magnitude", failed

    page.goto(f"{app_url}/run?run={run_id}")
    page.get_by_role("heading", name="Run", exact=True).wait_for()
    outcome = page.locator('[data-testid="stAlertContentWarning"]').filter(
        has_text=f"Finished — 1 of {len(variants)} variant(s) failed")
    outcome.wait_for()
    idle(page)
    assert not page.locator('[data-testid="stAlertContentSuccess"]').filter(has_text="Finished").count()
    error_box = page.locator('[data-testid="stAlertContentError"]').filter(has_text="— failed:")
    assert error_box.count() == 1
    first_line = failed[0]["error"].splitlines()[0][:40]
    assert failed[0]["candidate_id"] in error_box.inner_text() and first_line in error_box.inner_text(), \
        (error_box.inner_text(), failed[0]["error"])
    snap(page, artifacts, "outcomes-2-run-partial")

    page.goto(f"{app_url}/history")
    page.get_by_role("heading", name="History", exact=True).wait_for()
    page.locator('[data-testid="stCaptionContainer"]').filter(
        has_text=f"Finished — 1 of {len(variants)} variant(s) failed").wait_for()
    idle(page)
    assert page.get_by_text("partial", exact=True).count() >= 1
    snap(page, artifacts, "outcomes-3-history-partial")
