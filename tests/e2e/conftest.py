"""Browser fixtures: the dashboard served by `streamlit run` on 127.0.0.1 and Debian's Chromium
driven by Playwright (never `playwright install`: CI installs the system package)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("OPTIM_E2E_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    """Poll Streamlit's health check until the server at ``url`` answers "ok"; raise with the
    tail of its ``log`` if the process ends first or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"streamlit did not start: {log.read_text()[-2000:]}")
        time.sleep(0.3)  # polling the server's own health state


@pytest.fixture(scope="module")
def app_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The OPTIM_HOME of the served app (its own store and run folders)."""
    return tmp_path_factory.mktemp("e2e-home")


@pytest.fixture(scope="module")
def app_url(app_home: Path) -> Iterator[str]:
    """Start the dashboard as a user would (`streamlit run`), wait for its health check, stop it after."""
    port = free_port()
    env = dict(os.environ, OPTIM_HOME=str(app_home), STREAMLIT_BROWSER_GATHER_USAGE_STATS="false",
               PYTHONUNBUFFERED="1")
    log = (app_home / "streamlit.log").open("w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("streamlit")), "run", "app/streamlit_app.py",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc, app_home / "streamlit.log")
    yield url
    # The app's process group (start_new_session above), then any run worker still going:
    # workers start their own session so that a page reload never stops them.
    try:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, 9)
    log.close()
    from optim.store import Store

    for run in Store(app_home / "optim.db").runs():
        if run["status"] in ("queued", "running") and run.get("pid"):
            try:
                os.kill(int(run["pid"]), 15)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    """One headless Chromium for the browser tests of this package (each test gets its own context:
    no shared state), closed when they end, before any other test runs."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):  # CI installs it (.ci/run): a missing browser is a failure there
            pytest.fail(f"no Chromium at {CHROMIUM}: .ci/run should have installed it")
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report


@pytest.fixture
def page(browser, app_url, request):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    context.set_default_timeout(60_000)  # 2 shared cores: a cold page can take a while
    pg = context.new_page()
    yield pg
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:  # what the browser showed when the test failed
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"), full_page=True)
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """test-artifacts/e2e (tests/conftest.py clears its screenshots once per session)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
