"""User text is shown as text: a file name (or run name, recipe, error) holding a backtick and
image Markdown must neither break out of its code span on the dashboard nor load a URL, and must
not inject HTML into the report.

Streamlit renders CommonMark; markdown-it-py (a CommonMark implementation) renders what the pages
send, so the tests check the HTML a browser would build from it.
"""

from __future__ import annotations

import html
import re

import pytest
from markdown_it import MarkdownIt

from app import state
from app.components.text import code, md
from optim.store import Store
from tests.app._stored import page

NASTY = (
    "x`![p](http://evil.example/p.png)` <img src=http://evil.example/i.png> [l](http://evil.example) *b* :red[r] $x$.pt"
)
ESCAPED_OUT = ("<img", "<a ", "<em>", "<script")


def _render(markdown: str) -> str:
    """CommonMark's HTML, without the zero-width spaces code() puts in link-like text."""
    return MarkdownIt("commonmark").render(markdown).replace("\u200b", "")


def _text(rendered: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", rendered)).strip()


@pytest.mark.parametrize("value", [NASTY, "``` `a` ``", "# heading\n- item", "`", "plain-name_v2.csv", "_x_ and __y__",
                                   "- item", "12. item", "> quote", "a\\*b\\*", "|a|b|", "~~s~~"])
def test_md_and_code_keep_text_literal(value: str) -> None:
    one_line = " ".join(value.split())
    for wrapped in (md(value), code(value)):
        out = _render(f"Model {wrapped} loaded")
        assert not any(tag in out for tag in ESCAPED_OUT), out
        assert out.count("<p>") == 1  # no heading, list or second paragraph
        assert _text(out) == f"Model {one_line} loaded"
    assert _render(code(value)).count("<code>") == 1


def test_history_shows_a_nasty_upload_name_as_text(optim_home) -> None:
    ref = str(optim_home / "uploads" / "abc.pt")
    s = Store()
    run_id = s.create_run({"model": ref, "data": "sample:digits", "recipes": [NASTY], "labels": {ref: NASTY}},
                          name="")
    s.update_run(run_id, status="failed", error=f"{NASTY}: the model did not answer within 30 s")
    at = page("history")
    shown = [m.value for m in at.markdown] + [c.value for c in at.caption]
    line = next(v for v in shown if "Model " in v)
    rendered = _render(line)
    assert not any(tag in rendered for tag in ESCAPED_OUT), rendered
    assert f"<code>{html.escape(NASTY, quote=False)}</code>" in rendered  # name and recipe, each one code span
    assert rendered.count("<code>") == 3
    assert f"{NASTY} on sample:digits" in _text(rendered)  # the title, as text
    error = _render(next(v for v in shown if v.startswith("Error:")))
    assert not any(tag in error for tag in ESCAPED_OUT) and NASTY in _text(error)


def test_model_page_error_box_shows_the_name_as_text() -> None:
    from streamlit.testing.v1 import AppTest

    from tests.app._stored import ROOT

    # The page measures the sample's baseline first (in a child process): slow on a busy machine.
    at = AppTest.from_file(str(ROOT / "app" / "app_pages" / "model_data.py"), default_timeout=240)
    at.run()
    at.file_uploader(key=state.MODEL_UPLOAD).upload(NASTY, b"\x00garbage" * 50).run()
    box = next(e.value for e in at.error if "not a recognised model format" in e.value)
    rendered = _render(box)
    assert not any(tag in rendered for tag in ESCAPED_OUT), rendered
    assert NASTY in _text(rendered)


def test_report_escapes_names_recipes_and_errors_everywhere() -> None:
    from optim.report import render_report_html

    script = "q</script><script>alert(1)</script>"
    run = {"id": "r1", "name": NASTY, "status": "done", "created": 0,
           "spec": {"model": "/h/uploads/abc.pt", "data": "sample:digits", "recipes": [script]}}
    base = {"candidate_id": "c0", "recipe": "baseline", "family": "baseline", "status": "ok",
            "metric_name": "accuracy", "metric_value": 0.9, "size_bytes": 1000, "latency_ms_p50_b1": 1.0,
            "energy_j_per_1k": 1.0, "is_baseline": True, "pareto": True}
    rows = [base,
            {**base, "candidate_id": "c1", "recipe": script, "family": NASTY, "is_baseline": False,
             "metric_value": 0.95, "size_bytes": 500, "latency_ms_p50_b1": 0.5},
            {"candidate_id": "c2", "recipe": NASTY, "family": "x", "status": "failed", "error": script,
             "metric_name": "accuracy"}]
    page_html = render_report_html(run, rows, names={"/h/uploads/abc.pt": NASTY})
    assert "<img" not in page_html and "<script>alert(1)" not in page_html
    assert "src=http://evil" not in page_html.replace("&lt;img src=http://evil", "")
    assert page_html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3  # tried-list, table recipe and error
    assert f"<code>{html.escape(NASTY)}</code>" in page_html  # the model's name, as text
