"""An uploaded model that never answers: the user gets a clear error box within the stated time
limit, and meanwhile another browser tab's page still draws (the model runs in a child process,
not in the server).

Streamlit draws after load over a websocket, so every step waits for the app's own text or for
the state of the process that runs the model; nothing waits for a fixed time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

# The dashboard's model time limit in this test (OPTIM_MODEL_TIMEOUT_S). The other tab is loaded
# before the model starts, so while the model loops the server only has to run one light page for it
# (a click in its sidebar): a fraction of this limit even on a machine whose cores are all busy.
LIMIT_S = 20


@pytest.fixture(scope="module")
def app_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """This module's own served app (conftest's app_url uses it), started with a short model limit."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPTIM_MODEL_TIMEOUT_S", str(LIMIT_S))
        yield tmp_path_factory.mktemp("e2e-hang-home")


@pytest.fixture(scope="module")
def forever(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.security.adversarial import forever_torchscript

    return forever_torchscript(tmp_path_factory.mktemp("e2e-hang") / "forever.pt")


def _sandboxes(home: Path) -> list[psutil.Process]:
    """The processes running a user's model (named optim-sandbox by optim.sandbox) for the app
    served from OPTIM_HOME ``home``: other tests (in parallel under xdist) run sandboxes too."""
    out = []
    for p in psutil.process_iter(["name"]):
        if p.info.get("name") == "optim-sandbox":
            try:
                if p.environ().get("OPTIM_HOME") == str(home):
                    out.append(p)
            except psutil.Error:  # ended meanwhile, or not ours to read
                pass
    return out


def _wait_for_sandbox(home: Path, timeout_s: float = 120) -> psutil.Process:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = _sandboxes(home)
        if found:
            return found[0]
        time.sleep(0.2)  # polling the process table for a state change
    raise TimeoutError("the model never started in a child process")


def test_endless_model_gets_an_error_box_and_another_tab_still_loads(page, browser, app_url, app_home, forever,
                                                                     artifacts) -> None:  # type: ignore[no-untyped-def]
    # Another user's tab, open before the model starts (its page code is loaded and connected).
    other = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        tab = other.new_page()
        tab.set_default_timeout(60_000)
        tab.goto(f"{app_url}/history")
        tab.get_by_role("heading", name="History", exact=True).wait_for()

        page.goto(app_url)
        page.get_by_role("heading", name="Baseline").wait_for(timeout=120_000)  # the sample is loaded and measured
        uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text="Upload a model")
        uploader.locator('input[type="file"]').set_input_files(str(forever))

        # The model is now looping in its child process...
        child = _wait_for_sandbox(app_home)
        # ...and the other tab still gets a page drawn by the same server: a script run of its own.
        tab.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=re.compile("Report$")).click()
        tab.get_by_role("heading", name="Report", exact=True).wait_for()
        tab.get_by_text("No results yet.", exact=False).first.wait_for()
        assert child.is_running(), "the model stopped before the other tab loaded: cannot tell if the server hung"
    finally:
        other.close()

    # The first tab gets the error box, within the limit (plus a generous start-up allowance).
    box = page.locator('[data-testid="stAlertContentError"]').filter(has_text="did not answer within")
    box.wait_for(timeout=(LIMIT_S + 90) * 1000)
    text = box.inner_text()
    assert f"forever.pt: the model did not answer within {LIMIT_S} s" in text, text
    assert "OPTIM_MODEL_TIMEOUT_S" in text and "previous choice stays loaded" in text
    page.screenshot(path=str(artifacts / "hang-error.png"))
    psutil.wait_procs([child], timeout=30)
    assert not child.is_running()  # stopped, not left spinning
    assert page.locator('[data-testid="stMarkdownContainer"]').filter(has_text="Loaded:") \
        .filter(has_text="digits-mlp").count() >= 1  # the previous model is still the loaded one
