"""A store that cannot be used is an error box with the next step on every page, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.store_pg import closed_port

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["app_pages/run.py", "app_pages/compare.py", "app_pages/export.py", "app_pages/history.py",
         "app_pages/report.py"]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_shows_an_unreachable_store_as_an_error_box(monkeypatch: pytest.MonkeyPatch, page: str) -> None:
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=90)
    with closed_port() as port:
        monkeypatch.setenv("OPTIM_STORE_URL", f"postgresql://ann:s3cr3t@127.0.0.1:{port}/optim")
        at.switch_page(page).run()  # straight to the page: no baseline measured on Model & data first
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert any("cannot be used" in e and "OPTIM_STORE_URL" in e for e in errors), errors
    assert not any("s3cr3t" in e for e in errors)  # the password is masked
