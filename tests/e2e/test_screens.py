"""Every page at 1440 px and 900 px wide, screenshotted into test-artifacts/e2e/ with a stored run
on screen; the comparison table's pinned key columns (candidate, recipe, task metric) and the
report's table lie inside the viewport, no figure (st.metric) is cut short, and a recipe's text
is readable in full without hovering: nothing key is clipped horizontally. The report's own
table keeps its recipe and task metric pinned while it scrolls, offline."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.app._stored import CHAIN, LONG_CHAIN, add_chains, copy_store
from tests.e2e._ui import idle, nav, snap

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

PAGES = [("model_data", "Model & data"), ("techniques", "Techniques"), ("run", "Run"), ("compare", "Compare"),
         ("export", "Export"), ("history", "History"), ("report", "Report")]
WIDTHS = (1440, 900)


def _inside(box: dict | None, width: int) -> bool:
    return box is not None and box["x"] >= -0.5 and box["x"] + box["width"] <= width + 0.5


# The text of every element inside a figure (st.metric) or under `root` that is cut short: wider
# than its own box (what an ellipsis or overflow: hidden hides).
CLIPPED = """(sel) => [...document.querySelectorAll(sel)].flatMap(el => [el, ...el.querySelectorAll('*')])
    .filter(e => e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1 && e.textContent.trim())
    .map(e => e.textContent)"""
FIGURES = '[data-testid="stMetricValue"], [data-testid="stMetricLabel"]'
# Button and toggle labels: a control whose words are cut reads as another control.
CONTROLS = '[data-testid="stButton"], [data-testid="stCheckbox"]'
# A select box shows its choice in a text input: cut when the text is wider than the input.
CHOICES = '[data-testid="stSelectbox"] input'
CLIPPED_CHOICES = f"""() => [...document.querySelectorAll('{CHOICES}')]
    .filter(e => e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1).map(e => e.value)"""


def test_every_page_at_two_widths_with_key_columns_in_view(page, app_url, app_home: Path, artifacts,
                                                           small_run) -> None:  # type: ignore[no-untyped-def]
    run_id, rows = copy_store(small_run, app_home)  # the session's real run, served by the app
    add_chains(app_home, run_id, rows)  # and two recipes longer than most
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 1000})
        for path, title in PAGES:
            # Each page's own address (a link opens it) at the first width; at the second, the sidebar in
            # one session (no reload of the app's page code), except Model & data (a fresh session on the
            # bundled sample: once a run is open its model and data are the loaded ones) and Compare.
            if width == WIDTHS[0] or path in ("model_data", "compare"):
                query = "?drop=none" if path == "compare" else ""  # every row, whatever the default limits
                page.goto(f"{app_url}/{'' if path == 'model_data' else path}{query}")  # Model & data: the default
                page.get_by_role("heading", name=title, exact=True).wait_for()
            else:
                nav(page, title)
            if path == "model_data":  # the data's, the model's and the baseline's figures, four each
                page.locator(".st-key-baseline_figures [data-testid='stMetric']").nth(3).wait_for(timeout=120_000)
            idle(page)
            if path == "model_data":  # twelve figures: a label and a value each
                assert page.locator(FIGURES).count() == 24
            assert page.evaluate(CLIPPED, FIGURES) == [], (path, width)
            if path in ("model_data", "compare"):  # the selector finds the controls it checks
                assert page.locator(CONTROLS).count() >= 2, path
            assert page.evaluate(CLIPPED, CONTROLS) == [], (path, width)
            if path == "model_data":  # the sample, the dataset and the architecture read in full
                assert page.locator(CHOICES).count() == 3
                assert page.evaluate(CLIPPED_CHOICES) == [], (path, width)
            assert page.locator('[data-testid="stException"]').count() == 0, (path, width)
            assert not page.get_by_text("Page not found").count(), (path, width)
            # Material icons come from Streamlit's bundled font: the nav shows glyphs, no emoji.
            sidebar = page.locator('[data-testid="stSidebarNav"]')
            if sidebar.is_visible():
                assert sidebar.locator('[data-testid="stIconMaterial"]').count() == len(PAGES)
            if path == "compare":
                table = page.locator('[data-testid="stDataFrame"]').first
                table.wait_for()
                table.scroll_into_view_if_needed()
                box = table.bounding_box()
                assert _inside(box, width), (width, box)
                # The grid draws its header on a canvas; its accessible table names the columns, filled in
                # once the grid has drawn (wait for that, not for time: a loaded machine draws late).
                for name in ("Recipe", "Accuracy"):
                    table.locator('[role="columnheader"]').filter(has_text=name).first.wait_for(state="attached")
                headers = table.locator('[role="columnheader"]').all_inner_texts()
                assert any("Recipe" in h for h in headers) and any("Accuracy" in h for h in headers), headers
                for name in ("Recipe", "Accuracy"):
                    cell = table.locator('[role="columnheader"]').filter(has_text=re.compile(name)).first
                    assert _inside(cell.bounding_box(), width) or cell.bounding_box() is None, name
                _recipes_read_in_full(page, width)
            if path == "report":
                frame = page.frame_locator("iframe").first
                frame.locator("table").first.wait_for()
                wide = frame.locator("body").evaluate(
                    "b => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
                assert wide[0] <= wide[1] + 1, (width, wide)  # the table scrolls in its box, the page does not clip
                assert _inside(page.locator("iframe").first.bounding_box(), width)
            snap(page, artifacts, f"screen-{path}-{width}")
    shots = sorted(p.name for p in artifacts.glob("screen-*.png"))
    assert len(shots) == len(PAGES) * len(WIDTHS), shots


def _recipes_read_in_full(page, width: int) -> None:  # type: ignore[no-untyped-def]
    """The grid draws on a canvas and cuts a cell at its column's edge. The Recipe column's width,
    set by the app, holds a recipe of up to RECIPE_MAX_CHARS as the browser's own font measures it,
    and leaves room for the pinned ID and task metric; a longer recipe (CHAIN, LONG_CHAIN) is written
    out in full under the table, visible and not cut."""
    from app.components.tables import RECIPE_MAX_CHARS, recipe_width_px

    grid = page.locator('[data-testid="stDataFrame"]').first
    for chain in (CHAIN, LONG_CHAIN):  # the grid's accessible cells are filled in once it has drawn
        grid.locator('[role="gridcell"][aria-colindex="2"]').filter(has_text=chain).first.wait_for(state="attached")
    recipes = [r for r in grid.locator('[role="gridcell"][aria-colindex="2"]').all_text_contents() if r]
    assert CHAIN in recipes and LONG_CHAIN in recipes, recipes
    column = recipe_width_px(recipes)
    fits = max((r for r in recipes if len(r) <= RECIPE_MAX_CHARS), key=len)
    # The grid's cell font: 14 px Source Sans, bold on the recommended row (the wider of the two).
    text_px = page.evaluate("""async (text) => {
        const font = '600 14px "Source Sans", sans-serif';
        await document.fonts.load(font);
        const ctx = document.createElement('canvas').getContext('2d');
        ctx.font = font;
        return ctx.measureText(text).width; }""", fits)
    assert text_px + 16 <= column, (fits, text_px, column)  # 8 px padding either side
    assert grid.bounding_box()["width"] >= 75 + column + 100, width  # ID (small), Recipe, the task metric
    for r in recipes:
        if len(r) > RECIPE_MAX_CHARS:
            full = page.locator(".st-key-full_recipes code").filter(has_text=r[:20])
            assert full.count() >= 1 and full.first.is_visible(), r
            assert r in [t.replace("\u200b", "") for t in full.all_inner_texts()], r
            assert _inside(full.first.bounding_box(), width), r
    assert page.evaluate(CLIPPED, ".st-key-full_recipes") == [], width


def test_report_table_keeps_recipe_and_metric_pinned_while_it_scrolls(browser, small_run, tmp_path, artifacts) -> None:  # type: ignore[no-untyped-def]
    """The report as a file opened in the browser at 700 px: its table scrolls inside its box and
    the ID, the recipe (wrapped, whole) and the accuracy stay at the left edge; nothing is fetched."""
    from optim.report import render_report_html

    results, store = small_run
    report = tmp_path / "report.html"
    report.write_text(render_report_html(store.run(results.run_id), store.rows(results.run_id)))
    context = browser.new_context(viewport={"width": 700, "height": 900})
    try:
        pg = context.new_page()
        asked: list[str] = []
        pg.on("request", lambda r: asked.append(r.url))
        pg.goto(report.as_uri())
        box = pg.locator(".candidates")
        box.wait_for()
        assert box.evaluate("b => b.scrollWidth > b.clientWidth + 100"), "the table fits: nothing to scroll"
        heads = {name: box.locator("th.col_heading").filter(has_text=re.compile(f"^{re.escape(name)}$")).first
                 for name in ("Recipe", "Accuracy (%)")}
        before = {name: h.bounding_box()["x"] for name, h in heads.items()}
        box.evaluate("b => { b.scrollLeft = b.scrollWidth; }")
        assert box.evaluate("b => b.scrollLeft") > 100
        pg.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        after = {name: h.bounding_box()["x"] for name, h in heads.items()}
        assert after == pytest.approx(before, abs=1), (before, after)  # pinned: they did not move
        left = box.bounding_box()["x"]
        assert left <= before["Recipe"] < before["Accuracy (%)"] < left + 400, before
        # Every recipe is whole in its cell (wrapped where long), the one that failed included.
        assert box.evaluate("""b => [...b.querySelectorAll('td.col0')].filter(td => td.scrollWidth > td.clientWidth + 1)
            .map(td => td.textContent)""") == []
        recipes = box.locator("td.col0").all_inner_texts()
        assert set(recipes) == {r["recipe"] for r in results.rows}, recipes
        pg.screenshot(path=str(artifacts / "report-table-scrolled-700.png"))
        assert [u for u in asked if not u.startswith("file:")] == [], asked
    finally:
        context.close()
