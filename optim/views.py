"""Chart views: a figure builder with its title, declared next to the code it belongs to.

Generic charts (Pareto, bars, sensitivity...) are declared in :mod:`optim.charts`; a technique's
own charts in its module (``optim/techniques/hpo.py`` declares the search history). The Compare
page, the export and the report list :func:`chart_views`, so adding a chart touches no list
elsewhere::

    from optim.views import chart

    @chart("my_chart", "My technique", order=75)
    def my_chart(rows):            # result rows, baseline first
        ...                        # a plotly Figure, or None when the rows hold no data for it

Builders import plotly inside the function: declaring a view must not make importing the
technique heavier.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

Rows = Sequence[Mapping[str, Any]]
Builder = Callable[..., Any]  # rows (baseline first), options → a plotly Figure or None
B = TypeVar("B", bound=Builder)


@dataclass(frozen=True)
class ChartView:
    """One chart: ``build(rows)`` returns a figure or None; ``title`` names its tab."""

    name: str
    title: str
    build: Builder
    order: int = 100  # display order: lower first; equal orders keep declaration order


_VIEWS: dict[str, ChartView] = {}


def chart(name: str, title: str, *, order: int = 100) -> Callable[[B], B]:
    """Decorator: declare ``build`` as the chart ``name`` with tab title ``title``. Names are unique."""

    def register(build: B) -> B:
        existing = _VIEWS.get(name)
        if existing is not None and (existing.build.__module__, existing.build.__qualname__) != (
                build.__module__, build.__qualname__):
            raise ValueError(f"chart {name!r} is declared twice ({existing.build.__module__}, {build.__module__})")
        _VIEWS[name] = ChartView(name, title, build, order)
        return build

    return register


def _load() -> None:
    # The generic charts, and every technique (whose modules declare their own charts).
    importlib.import_module("optim.charts")
    from optim.registry import all_techniques

    all_techniques()


def chart_views() -> list[ChartView]:
    """Every declared chart, in display order."""
    _load()
    return sorted(_VIEWS.values(), key=lambda v: v.order)


def chart_view(name: str) -> ChartView:
    """The chart called ``name``; KeyError lists the known ones."""
    _load()
    try:
        return _VIEWS[name]
    except KeyError:
        raise KeyError(f"unknown chart {name!r}; known: {', '.join(sorted(_VIEWS))}") from None
