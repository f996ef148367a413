"""Driving the dashboard in the browser: wait for the app's own state, never for a time.

Streamlit marks its root element (``data-testid="stApp"``) with the script's run state
(``data-test-script-state``: ``initial``, ``running``, ``notRunning``, ...) and the websocket's
(``data-test-connection-state``). :func:`idle` waits, with Playwright's own waiting, until the
script is not running, the app is connected and nothing on the page is still being redrawn.

A click does not mark the app as running until the server has started the rerun it asks for, so
after an action the tests first wait for what the action produces (a heading, a line of text, a
flipped switch) and only then for :func:`idle`. A click that lands while the page is redrawn can
be lost on a loaded machine: :func:`until` repeats an action whose effect never shows once the app
has settled, instead of failing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

# Elements of a rerun in progress: the status widget's running icons, a spinner, an element the
# rerun has not redrawn yet (stale).
BUSY = ('[data-testid="stStatusWidgetRunningIcon"], [data-testid="stStatusWidgetRunningManIcon"], '
        '[data-testid="stSpinner"], [data-stale="true"]')
IDLE_JS = """(busy) => {
    const app = document.querySelector('[data-testid="stApp"]');
    return !!app && app.getAttribute('data-test-script-state') === 'notRunning'
        && app.getAttribute('data-test-connection-state') === 'CONNECTED'
        && !document.querySelector(busy);
}"""
#: How long an action's effect may take to show before the app's state is asked whether the action
#: was lost (then it is repeated; a slow rerun is waited for, not repeated).
EFFECT_MS = 15_000


def idle(page: Page, timeout_ms: float = 120_000) -> None:
    """Wait until the app is connected, its script not running and nothing on the page stale."""
    page.wait_for_function(IDLE_JS, arg=BUSY, timeout=timeout_ms)


def until(page: Page, act: Callable[[], None], done: Callable[[float], None], what: str, tries: int = 3) -> None:
    """Do ``act`` and wait for its effect with ``done(timeout_ms)`` (a Playwright wait or
    expectation: it raises while the effect is missing). When the action could not be done or its
    effect has not shown once the app is idle, it was lost (a click on an element being redrawn):
    do it again, up to ``tries`` times."""
    for _ in range(tries):
        try:
            act()
            done(EFFECT_MS)
            return
        except (PlaywrightTimeout, AssertionError):
            idle(page)  # a slow rerun ends here; then the effect shows, or the action was lost
            try:
                done(1_000)
                return
            except (PlaywrightTimeout, AssertionError):
                pass
    raise AssertionError(f"{what}: no effect after {tries} tries")


def heading(page: Page, title: str) -> Locator:
    return page.get_by_role("heading", name=title, exact=True)


def nav(page: Page, title: str) -> None:
    """Open the page ``title`` from the sidebar and wait until it is drawn."""
    link = page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=re.compile(rf"{re.escape(title)}$"))
    until(page, link.click, lambda ms: heading(page, title).wait_for(timeout=ms), f"open {title}")
    idle(page)


def open_page(page: Page, url: str, title: str, timeout_ms: float = 60_000) -> None:
    """Load ``url`` and wait until the page ``title`` has finished drawing."""
    page.goto(url)
    heading(page, title).wait_for(timeout=timeout_ms)
    idle(page)


def upload(page: Page, label: str, path: Path) -> None:
    """Give the file uploader labelled ``label`` the file ``path``; the app confirms a valid upload
    in its "Loaded:" line (a bad one shows an error box instead)."""
    uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text=label)
    uploader.locator('input[type="file"]').set_input_files(str(path))
    page.locator('[data-testid="stMarkdownContainer"]').filter(has_text="Loaded:").filter(has_text=path.name) \
        .wait_for(timeout=90_000)
    idle(page)


def toggle(page: Page, label: str | re.Pattern[str]) -> None:
    """Flip a Streamlit toggle by clicking its label (the switch input itself is covered). The
    switch flips in the browser at once; then the app reruns with it."""
    box = page.locator('[data-testid="stCheckbox"]').filter(has_text=label).first
    switch = box.locator('input[type="checkbox"]')
    want = not switch.is_checked()

    until(page, lambda: box.locator("label").click() if switch.is_checked() != want else None,
          lambda ms: expect(switch).to_be_checked(checked=want, timeout=ms), f"toggle {label!r}")
    idle(page)


def switch_on(page: Page, family: str, technique: str) -> None:
    """On the Techniques page: open the tab of ``family`` and switch ``technique`` on."""
    # The page checks which techniques apply to the uploaded model before it draws the families (tabs).
    tab = page.get_by_role("tab", name=re.compile(re.escape(family))).first
    tab.wait_for(timeout=120_000)
    label = re.compile("^" + re.escape(technique) + " ")
    shown = page.locator('[data-testid="stCheckbox"]').filter(has_text=label).first
    until(page, tab.click, lambda ms: shown.wait_for(timeout=ms), f"open the {family} tab")
    toggle(page, label)


def snap(page: Page, artifacts: Path, name: str) -> None:
    """A screenshot of the whole page: Streamlit scrolls inside .stMain, so grow the viewport to it."""
    size = page.viewport_size
    height = page.evaluate("() => { const m = document.querySelector('.stMain'); return m ? m.scrollHeight : 1000; }")
    page.set_viewport_size({"width": size["width"], "height": min(max(int(height) + 40, size["height"]), 8000)})
    # Two animation frames: the browser has laid out and painted the new size (no fixed wait).
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    page.screenshot(path=str(artifacts / f"{name}.png"))
    page.set_viewport_size(size)


def pick(page: Page, label: str, option: str | re.Pattern[str]) -> None:
    """Choose ``option`` in the select box labelled ``label`` (open it, click the option)."""
    page.locator('[data-testid="stSelectbox"]').filter(has_text=label).click()
    page.get_by_role("option", name=option).click(timeout=EFFECT_MS)
