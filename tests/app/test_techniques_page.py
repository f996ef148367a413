"""Techniques page: widgets for every registered technique's config, sweeps, presets, recipes,
and techniques that cannot apply shown disabled with optim's reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app import state
from app.components.config_form import field_key
from optim.config import describe_fields
from optim.presets import get_preset
from optim.registry import FAMILIES, all_techniques

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "app" / "app_pages" / "techniques.py")
WIDGETS = ("toggle", "selectbox", "slider", "number_input", "checkbox", "text_input")


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _keys(at: AppTest) -> set[str]:
    return {w.key for kind in WIDGETS for w in getattr(at, kind) if w.key}


def _all_forms() -> None:
    """Script for AppTest: the settings form of every registered technique."""
    from app.components import config_form
    from optim.registry import all_techniques

    results = [config_form.render(t) for t in all_techniques()]
    import streamlit as st

    st.session_state["steps"] = [r.step for r in results]


def test_every_registered_technique_gets_a_widget_per_setting() -> None:
    at = AppTest.from_function(_all_forms, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    techniques = all_techniques()
    keys = _keys(at)
    for t in techniques:
        for info in describe_fields(t.Config):
            assert field_key(t.name, info.name) in keys, (t.name, info.name)
            if info.kind.startswith("optional"):
                assert field_key(t.name, info.name) + ":set" in keys
    # With its defaults every form is valid and gives the bare technique name as its step.
    assert not at.error, [e.value for e in at.error]
    assert at.session_state["steps"] == [t.name for t in techniques]


def test_page_has_a_toggle_per_technique_and_runs_every_applicable_one() -> None:
    at = _page()
    techniques = all_techniques()
    reasons = {}
    for t in techniques:
        toggle = at.toggle(key=state.widget_key(state.TECH_ON, t.name))
        if toggle.disabled:
            reasons[t.name] = True
        else:
            toggle.set_value(True)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert set(at.session_state[state.RECIPES]) == {t.name for t in techniques} - set(reasons)
    assert "prune-magnitude" not in reasons and "quantize-dynamic" not in reasons
    # A family with nothing registered says so.
    registered = {t.family for t in techniques}
    assert [t.label for t in at.tabs] == [title for _, title in FAMILIES]
    for (family, title), tab in zip(FAMILIES, at.tabs):
        assert any("coming soon" in c.value for c in tab.caption) == (family not in registered), title


def test_settings_become_the_recipe_and_bad_values_show_the_config_error() -> None:
    at = _page()
    at.toggle(key=state.widget_key(state.TECH_ON, "prune-magnitude")).set_value(True).run()
    sparsity = at.slider(key=field_key("prune-magnitude", "sparsity"))
    assert (sparsity.min, sparsity.max) == (0.0, 0.99)  # bounds from the field declaration
    assert "Fraction of prunable weights" in sparsity.help
    sparsity.set_value(0.9).run()
    assert at.session_state[state.RECIPES] == ["prune-magnitude:sparsity=0.9"]

    # Sweep toggle: default values from the field's json_schema_extra["sweep"].
    at.toggle(key=state.widget_key(state.SWEEP_ON, "prune-magnitude")).set_value(True).run()
    assert at.session_state[state.RECIPES] == ["prune-magnitude:sparsity=0.5|0.7|0.8|0.9|0.95"]
    assert any("1 recipe(s) → 5 variant(s)" in m.value for m in at.markdown)

    # A typed recipe out of bounds: the ConfigError inline, and the recipe is left out.
    at.text_area(key=state.RECIPE_TEXT).set_value("quantize-dynamic\nprune-magnitude:sparsity=1.5").run()
    errors = [e.value for e in at.error]
    assert any("sparsity" in e and "0.99" in e for e in errors), errors
    assert at.session_state[state.RECIPES] == ["prune-magnitude:sparsity=0.5|0.7|0.8|0.9|0.95", "quantize-dynamic"]


def test_preset_fills_the_recipes() -> None:
    at = _page()
    at.selectbox(key=state.PRESET).set_value("demo").run()
    next(b for b in at.button if b.label == "Use preset").click().run()
    demo = get_preset("demo")
    assert at.session_state[state.RECIPES] == list(demo.recipes)
    assert any(f"→ {demo.n_variants} variant(s)" in m.value for m in at.markdown)


def test_chain_builder_uses_each_steps_settings() -> None:
    at = _page()
    at.toggle(key=state.widget_key(state.TECH_ON, "prune-magnitude")).set_value(True).run()
    at.slider(key=field_key("prune-magnitude", "sparsity")).set_value(0.8).run()
    at.multiselect(key=state.CHAIN).set_value(["prune-magnitude", "quantize-dynamic"]).run()
    next(b for b in at.button if b.label == "Add chain").click().run()
    assert "prune-magnitude:sparsity=0.8+quantize-dynamic" in at.session_state[state.RECIPES]


def test_technique_that_cannot_apply_is_disabled_with_the_reason(tmp_path: Path, load_sample) -> None:
    from optim.applicability import applicability, recipe_reason
    from optim.onnx_convert import torch_to_onnx_bytes

    baseline, splits = load_sample("digits-mlp")
    onnx_path = tmp_path / "mlp.onnx"
    onnx_path.write_bytes(torch_to_onnx_bytes(baseline.torch_module(), baseline.input_shape))
    from optim.io.models import load_model

    onnx_cand = load_model(str(onnx_path), dataset=splits)
    reasons = applicability(onnx_cand, splits)
    # An ONNX upload becomes an editable graph, so the layer techniques apply to it...
    assert reasons["prune-magnitude"].ok and reasons["quantize-dynamic"].ok
    # ...while Huffman coding needs shared weights first, and says so.
    assert reasons["huffman"].reason and "apply cluster first" in reasons["huffman"].reason
    assert applicability(baseline, splits)["prune-magnitude"].ok
    assert recipe_reason("huffman+quantize-dynamic", onnx_cand, splits).startswith("huffman: ")

    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state[state.MODEL_REF] = str(onnx_path)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.toggle(key=state.widget_key(state.TECH_ON, "huffman")).disabled
    assert any("Not available for this model" in c.value and "apply cluster first" in c.value for c in at.caption)
    assert not at.toggle(key=state.widget_key(state.TECH_ON, "prune-magnitude")).disabled
    assert not at.toggle(key=state.widget_key(state.TECH_ON, "quantize-dynamic")).disabled


@pytest.mark.parametrize("kind", ["int", "float"])
def test_log_scaled_numbers_get_a_number_input(kind: str) -> None:
    from app.components.config_form import _is_log, sweep_defaults
    from optim.config import FieldInfo

    wide = FieldInfo("x", kind, 1, "", low=1e-5 if kind == "float" else 1, high=1.0 if kind == "float" else 8192)
    narrow = FieldInfo("x", kind, 1, "", low=0, high=10)
    assert _is_log(wide) and not _is_log(narrow)
    assert sweep_defaults(narrow) == (0, 1, 10)


@pytest.mark.parametrize("page", sorted(p.name for p in (ROOT / "app" / "app_pages").glob("*.py")
                                        if p.name != "__init__.py"))
def test_pages_stay_thin(page: str) -> None:
    """The work (numbers, models, files) is optim's: a page imports streamlit, app and optim only
    (and pathlib/typing for paths it is handed)."""
    import ast

    tree = ast.parse((ROOT / "app" / "app_pages" / page).read_text())
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert modules <= {"__future__", "streamlit", "app", "optim", "pathlib", "typing"}, modules


def test_settings_have_human_labels_and_plain_numbers() -> None:
    at = _page()
    at.toggle(key=state.widget_key(state.TECH_ON, "quantize-static")).set_value(True)
    at.toggle(key=state.widget_key(state.TECH_ON, "distill")).set_value(True).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    lr = at.number_input(key=field_key("distill", "lr"))
    assert lr.label == "Learning rate" and "`lr`" in lr.help  # the recipe key stays in the help
    assert lr.proto.format == "%g"  # 0.001, not 1.00e-03
    ratio = at.number_input(key=field_key("distill", "params_ratio"))  # a log-scale setting
    assert ratio.label == "Student size (share of teacher)" and ratio.value == 0.14 and ratio.proto.format == "%g"
    assert ratio.proto.step == 0.01  # steps by its last digit, not by 1
    alpha = at.slider(key=field_key("distill", "alpha"))
    assert alpha.label == "Teacher loss weight"  # the field's own title wins over the shared label
    assert alpha.value == 0.7 and alpha.proto.format == "%.2f"
    pct = at.slider(key=field_key("quantize-static", "percentile"))
    assert pct.value == 99.999 and pct.proto.format == "%.3f" and pct.proto.step == 0.001
    labels = [f.label for t in all_techniques() for f in describe_fields(t.Config)]
    assert all(lab and lab[0].isupper() and "_" not in lab for lab in labels), labels


def test_run_is_at_the_top_and_the_search_filters_techniques() -> None:
    at = _page()
    at.toggle(key=state.widget_key(state.TECH_ON, "prune-magnitude")).set_value(True).run()
    assert at.button[0].label == "Run" and not at.button[0].disabled  # above presets and every family
    assert "1 recipe(s) → 1 variant(s)" in at.markdown[0].value or any(
        "1 recipe(s) → 1 variant(s)" in m.value for m in at.markdown[:3])
    at.text_input(key=state.TECH_SEARCH).set_value("int8").run()
    shown = {t.key for t in at.toggle if t.key and t.key.startswith(state.TECH_ON)}
    assert state.widget_key(state.TECH_ON, "prune-magnitude") in shown  # on: always shown
    assert state.widget_key(state.TECH_ON, "distill") not in shown
    assert {state.widget_key(state.TECH_ON, n) for n in ("quantize-dynamic", "quantize-static")} <= shown
    assert at.session_state[state.RECIPES] == ["prune-magnitude"]
