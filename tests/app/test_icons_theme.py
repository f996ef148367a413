"""Icons come from Streamlit's bundled Material font (emoji are empty boxes without an emoji font),
the destructive confirm is not the primary action, and the theme follows the user's system."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

from app import state
from tests.app._stored import copy_store, page

ROOT = Path(__file__).resolve().parents[2]
#: Code points drawn from an emoji font: pictographs, the emoji variation selector, and the
#: dingbats / symbols that default to emoji presentation.
EMOJI = re.compile("[\U0001F000-\U0001FAFF\uFE0F\u231A\u231B\u23E9-\u23F3\u25B6\u26A1\u2705\u274C\u2B50]")
PRESENTATION = [*(ROOT / "app").rglob("*.py"), ROOT / "optim" / "compare.py", ROOT / "optim" / "charts.py",
                ROOT / "optim" / "report.py"]


def _strings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_no_emoji_in_presentation_code_and_every_icon_is_material() -> None:
    found = {f"{p.relative_to(ROOT)}: {s!r}" for p in PRESENTATION for s in _strings(p) if EMOJI.search(s)}
    assert not found, sorted(found)
    icons = re.findall(r"icon=\"([^\"]*)\"", (ROOT / "app" / "streamlit_app.py").read_text())
    assert len(icons) == 8, icons  # page icon + 7 pages
    assert all(re.fullmatch(r":material/[a-z0-9_]+:", i) for i in icons), icons


def test_theme_follows_the_system_and_offers_light_and_dark() -> None:
    cfg = tomllib.loads((ROOT / "app" / ".streamlit" / "config.toml").read_text())
    assert "base" not in cfg["theme"]  # a fixed base would override the user's system setting
    assert cfg["theme"]["light"]["primaryColor"] != cfg["theme"]["dark"]["primaryColor"]
    assert cfg["client"]["toolbarMode"] == "viewer"  # "minimal" hides the menu and its theme choice


def test_delete_confirm_is_not_the_primary_action(small_run, optim_home) -> None:
    run_id, _ = copy_store(small_run, optim_home)
    at = page("history")
    at.button(key=state.widget_key(state.DELETE_RUN, run_id)).click().run()
    yes, keep = at.button(key=state.DELETE_YES), at.button(key=state.DELETE_NO)
    assert yes.proto.type == "secondary" and keep.proto.type == "primary"
    assert yes.proto.icon == ":material/delete_forever:"
