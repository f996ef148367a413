"""Techniques: the ten families with a toggle per registered technique, presets, chains, sweeps.

Thin page: the widgets come from each technique's declared config (components/config_form.py),
applicability from optim.applicability, presets from optim.presets, and every recipe is
validated by optim.check_recipe (bounded: a sweep above the run limit is refused, never expanded).
The recipe list lands in state.RECIPES.
"""

from __future__ import annotations

import streamlit as st

from app import state
from app.components import config_form, run_panel, uploads
from app.components.text import code, md
from optim import (
    COST_WARN_S,
    FAMILIES,
    ConfigError,
    OptimError,
    all_presets,
    all_techniques,
    check_recipe,
    count_variants,
    format_duration,
    get_preset,
)


def _use_preset(mode: str) -> None:
    key = st.session_state.get(state.PRESET)
    if not key:
        return
    preset = get_preset(key)
    current = [ln for ln in st.session_state.get(state.RECIPE_TEXT, "").splitlines() if ln.strip()]
    lines = list(preset.recipes) if mode == "replace" else list(dict.fromkeys(current + list(preset.recipes)))
    st.session_state[state.RECIPE_TEXT] = "\n".join(lines)


def _add_chain(steps: dict[str, str]) -> None:
    chain = st.session_state.get(state.CHAIN) or []
    if not chain:
        return
    spec = "+".join(steps.get(name, name) for name in chain)
    current = [ln for ln in st.session_state.get(state.RECIPE_TEXT, "").splitlines() if ln.strip()]
    if spec not in current:
        current.append(spec)
    st.session_state[state.RECIPE_TEXT] = "\n".join(current)
    st.session_state[state.CHAIN] = []


def _start(recipes: list[str]) -> None:
    try:
        run_panel.start_run(recipes)
    except OptimError as err:
        st.error(md(err.for_dashboard()))
    else:
        st.switch_page("app_pages/run.py")


state.init()
st.title("Techniques")
choice = state.choice()
st.caption(f"For model {code(state.get(state.UPLOAD_NAMES).get(choice.model, choice.model))} on "
           f"{code(state.get(state.UPLOAD_NAMES).get(choice.data, choice.data))}. Switch techniques on to run each "
           "as its own variant; chain them into recipes below. The baseline is always measured.")

techniques = all_techniques()
reasons: dict[str, str | None] = {}
try:
    reasons = uploads.cached_applicability(*uploads.choice_args(choice))
except OptimError as err:
    st.warning(f"The loaded model and data do not load ({md(err.for_dashboard())}); applicability is not checked. "
               "Fix it on the Model & data page.")

# What will run, with the Run button: at the top, so it is reachable however many techniques are on
# (filled at the end, once every form has given its step).
summary = st.container(border=True)

# Presets -------------------------------------------------------------------------------------------
with st.container(border=True):
    st.markdown("**Presets for common goals**")
    presets = {p.key: p for p in all_presets()}
    cols = st.columns([2, 1, 1])
    picked = cols[0].selectbox("Preset", list(presets), key=state.PRESET, index=None,
                               placeholder="Pick a goal…", label_visibility="collapsed",
                               format_func=lambda k: f"{presets[k].title} ({presets[k].n_variants} variants)")
    cols[1].button("Use preset", on_click=_use_preset, args=("replace",), disabled=picked is None,
                   width="stretch", help="Replace the recipes below with the preset's.")
    cols[2].button("Add preset", on_click=_use_preset, args=("add",), disabled=picked is None,
                   width="stretch", help="Add the preset's recipes to those below.")
    if picked:
        p = presets[picked]
        st.caption(p.goal)
        st.code("\n".join(p.recipes) or "(no registered technique serves this goal yet)", language="text")
        if p.skipped:
            with st.expander(f"Left out for now ({len(p.skipped)})"):
                st.markdown("\n".join(f"- {s}" for s in p.skipped))

# Families: one tab each (a compact page however many are on); a search box finds a technique --------
single: list[str] = []       # one recipe per enabled technique
steps: dict[str, str] = {}   # technique -> its configured step (used by chains)
form_errors = 0
query = st.text_input("Find a technique", key=state.TECH_SEARCH, placeholder="e.g. prune, int8, distill",
                      icon=":material/search:", help="Filters the techniques in every tab by name or summary.")
query = (query or "").strip().lower()
tabs = st.tabs([title for _, title in FAMILIES])  # fixed titles: a changing title would reset the open tab
for (family, title), tab in zip(FAMILIES, tabs):
    members = [t for t in techniques if t.family == family]
    with tab:
        if not members:
            st.caption(f"{title} — coming soon: no technique of this family is registered yet.")
            continue
        for t in members:
            reason = reasons.get(t.name)
            key = state.widget_key(state.TECH_ON, t.name)
            if reason and st.session_state.get(key):
                st.session_state[key] = False  # was on for another model: it cannot apply to this one
            if query and query not in f"{t.name} {t.summary}".lower() and not st.session_state.get(key):
                continue  # filtered out (a technique that is on always shows)
            on = st.toggle(
                f"**{t.name}** — {t.summary}",
                key=key,
                disabled=bool(reason),
                help=(t.__doc__ or t.summary).strip() + (f"\n\nReference: {t.reference}" if t.reference else ""),
            )
            if reason:
                st.caption(f"Not available for this model: {reason}")
                continue
            if on:
                with st.container(border=True):
                    result = config_form.render(t)
                if result.step:
                    single.append(result.step)
                    steps[t.name] = result.step
                else:
                    form_errors += 1

# Chains and typed recipes ---------------------------------------------------------------------------
st.subheader("Recipes")
with st.container(border=True):
    st.markdown("**Chain techniques** — in the order you pick them; each uses its settings above when it is on")
    # Every technique, even one that cannot start a recipe: huffman applies after cluster.
    # The button under the picker, not beside it: a fifth of the row cut its label at 900 px.
    st.multiselect("Chain", [t.name for t in techniques], key=state.CHAIN, label_visibility="collapsed",
                   placeholder="e.g. prune-magnitude, then cluster, then huffman")
    st.button("Add chain", on_click=_add_chain, args=(steps,), disabled=not st.session_state.get(state.CHAIN))
st.text_area("Recipes, one per line", key=state.RECIPE_TEXT, height=120,
             placeholder="prune-magnitude:sparsity=0.9+cluster:bits=5+huffman\nquantize-dynamic",
             help="technique[:key=value,...][+technique...]; key=a|b|c sweeps a setting (one variant per value).")

typed: list[str] = []
for n, line in enumerate(st.session_state.get(state.RECIPE_TEXT, "").splitlines(), start=1):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    try:
        check_recipe(line)
    except ConfigError as err:
        st.error(f"Line {n} {code(line)}: {md(err.for_dashboard())}")
        form_errors += 1
        continue
    first = line.split("+", 1)[0].partition(":")[0].strip()
    if reasons.get(first):
        st.warning(f"Line {n} {code(line)}: {md(first)} cannot apply to this model ({md(reasons[first])}); its row "
                   "will fail.")
    typed.append(line)

recipes = list(dict.fromkeys(single + typed))
state.set(state.RECIPES, recipes)
n_variants = count_variants(recipes)  # counted from the text: nothing is expanded

on_by_family = {title: sum(bool(st.session_state.get(state.widget_key(state.TECH_ON, t.name)))
                          for t in techniques if t.family == family) for family, title in FAMILIES}
with summary:
    cols = st.columns([3, 1])
    if recipes:
        cols[0].markdown(f"**{len(recipes)} recipe(s) → {n_variants} variant(s)** + the baseline will run")
        on = [f"{title} ({n})" for title, n in on_by_family.items() if n]
        cols[0].caption("On: " + (", ".join(on) if on else "typed recipes only") + ". The full list is below.")
    else:
        cols[0].info("Switch a technique on, pick a preset or type a recipe to run something.")
    if form_errors:
        cols[0].caption(f"{form_errors} setting(s) or recipe(s) on this page have errors and are left out until "
                        "fixed.")
    try:
        est = run_panel.estimates(choice, recipes) if recipes else []
    except OptimError:
        est = []  # the warning at the top says why; the Run page says it again
    total = sum(e.seconds for e in est)
    if est:
        cols[1].caption(f"Estimated time: {format_duration(total)}", help="On this machine, from the model's MACs, "
                        "the data size and each recipe's epochs or trials (the Run page lists each recipe).")
    if cols[1].button("Run", type="primary", disabled=not recipes, width="stretch", key=state.TECH_RUN,
                      help="Start the experiment in a background worker and follow it on the Run page."):
        # A long run waits for a second click: the estimate is seen before the time is spent.
        if total > COST_WARN_S:
            state.set(state.CONFIRM_RUN, recipes)
        else:
            _start(recipes)
    if recipes and state.get(state.CONFIRM_RUN) == recipes:
        st.warning(run_panel.long_run_text(est) + " Start it anyway?", icon=":material/schedule:")
        answer = st.columns(2)
        if answer[0].button(f"Start the {format_duration(total)} run", key=state.CONFIRM_YES, type="primary"):
            state.set(state.CONFIRM_RUN, None)
            _start(recipes)
        if answer[1].button("Not now", key=state.CONFIRM_NO):
            state.set(state.CONFIRM_RUN, None)
            st.rerun()

st.divider()
if recipes:
    st.markdown("**The recipes that will run** (the Run button is at the top of the page):")
    st.code("\n".join(recipes), language="text", wrap_lines=True)
