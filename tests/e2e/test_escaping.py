"""In a real browser, Streamlit's own Markdown renderer: a run whose upload name, run name,
recipe and error hold a backtick and image/link Markdown shows them as text on History, and the
browser requests nothing from the URL they name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

NASTY = ("x`![p](http://evil.example/p.png)` <img src=http://evil.example/i.png> [l](http://evil.example) "
         "www.evil.example me@evil.example.pt")


def _plain(text: str) -> str:
    """What the user reads: without the zero-width spaces that keep URLs from becoming links."""
    return text.replace("\u200b", "")


def test_history_shows_nasty_names_as_text_and_loads_nothing(page, app_url, app_home: Path) -> None:  # type: ignore[no-untyped-def]
    from optim.store import Store

    ref = str(app_home / "uploads" / "0123.pt")
    s = Store(app_home / "optim.db")
    run_id = s.create_run({"model": ref, "data": "sample:digits", "recipes": [NASTY], "labels": {ref: NASTY}},
                          name=NASTY)
    s.update_run(run_id, status="failed", error=f"{NASTY}: the model did not answer within 30 s")
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    page.goto(app_url)
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=re.compile("History$")).click()
    page.get_by_role("heading", name="History", exact=True).wait_for()
    card = page.locator('[data-testid="stMarkdownContainer"]').filter(has_text="row(s)").first
    card.wait_for()
    # The model's name and the recipe, each one whole code span.
    codes = [_plain(c) for c in card.locator("code").all_inner_texts()]
    assert codes.count(NASTY) == 2, codes
    assert NASTY in _plain(card.inner_text())  # the run's name, as text
    error = page.locator('[data-testid="stCaptionContainer"]').filter(has_text="did not answer").first
    assert NASTY in _plain(error.inner_text())
    bad = page.locator("main img, main a[href*='evil']")
    assert bad.count() == 0, [bad.nth(i).evaluate("e => e.outerHTML.slice(0, 200)") for i in range(bad.count())]
    assert not [u for u in asked if "evil.example" in u], asked
