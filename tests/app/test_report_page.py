"""Report page (AppTest): the stored run's report inline and as a download."""

from __future__ import annotations

import html as html_lib

from app import state
from optim.compare import headline, recommend
from tests.app._stored import copy_store, page


def test_report_renders_inline_and_downloadable(small_run, optim_home) -> None:
    run_id, rows = copy_store(small_run, optim_home)
    at = page("report", **{state.LIMITS: {"max_metric_drop_pt": 1.0}})
    frames = [e for e in at.main if getattr(e, "type", "") == "iframe"]
    assert len(frames) == 1
    html = frames[0].proto.srcdoc
    cid, _ = recommend(rows)
    pick = next(r for r in rows if r["candidate_id"] == cid)
    assert html.startswith("<!DOCTYPE html>") and run_id in html
    # The recommendation's headline (a variant) or the keep-the-baseline sentence is in the report.
    text = html_lib.unescape(html)
    assert (headline(rows[0], pick) if cid != "c0" else "Keep the baseline") in text
    assert any(b.label == "Download report (HTML)" for b in at.get("download_button"))
    assert "accuracy drop ≤ 1 pt" in "".join(c.value for c in at.caption)
