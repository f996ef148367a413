"""Adding a technique with its own chart is one module: this test module is that module.

It registers a toy technique and its chart with the public decorators, runs it, and finds the
chart drawn on the Compare page: nothing in app/ names it (docs/ARCHITECTURE.md shows the same).
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import Field

import optim
from app import state
from tests.app._stored import page
from tests.conftest import FAST


def _declare_toy() -> type:
    class ToyConfig(optim.TechniqueConfig):
        factor: float = Field(2.0, gt=0.0, le=10.0, description="How much the toy pretends to scale.")

    @optim.register_technique
    class Toy(optim.Technique):
        """A toy that changes nothing and records one fact its chart draws."""

        name = "toy-scale"
        family = "compression"
        Config = ToyConfig
        summary = "Test-only technique with its own chart."

        def apply(self, candidate: optim.Candidate, config: Any, ctx: optim.RunContext) -> optim.Candidate:
            return candidate.derive(self.step(config), info={"toy_factor": config.factor})

    @optim.chart("toy", "Toy chart", order=95)
    def toy_chart(rows: Any) -> Any:
        import plotly.graph_objects as go

        found = [r for r in rows if (r.get("details") or {}).get("toy_factor") is not None]
        if not found:
            return None
        fig = go.Figure(go.Bar(x=[r["candidate_id"] for r in found],
                               y=[r["details"]["toy_factor"] for r in found]))
        return fig.update_layout(title="Toy factor per candidate")

    return Toy


@pytest.fixture
def toy() -> Any:
    from optim import registry, views

    cls = _declare_toy()
    yield cls
    # Registered for this test only: the conformance suite must not meet the toy.
    registry._REGISTRY.pop("toy-scale", None)
    views._VIEWS.pop("toy", None)


def test_a_technique_from_a_test_module_draws_its_chart_on_compare(toy, optim_home) -> None:
    assert "toy-scale" in [t.name for t in optim.all_techniques()]
    results = optim.run_experiment(optim.ExperimentSpec(model="sample:digits-mlp", data="sample",
                                                        recipes=["toy-scale:factor=3"], **FAST))
    toy_row = next(r for r in results.rows if r["recipe"] == "toy-scale:factor=3")
    assert toy_row["status"] == "ok" and toy_row["details"]["toy_factor"] == 3.0

    at = page("compare", **{state.SELECTED_RUN: results.run_id, state.CHART_TAB: "Toy chart"})
    assert "Toy chart" in [t.label for t in at.tabs]
    spec = at.get("plotly_chart")[0].proto.spec
    assert "Toy factor per candidate" in spec and '"y":[3.0]' in spec.replace(" ", "")
