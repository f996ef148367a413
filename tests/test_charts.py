"""optim.charts: each builder's figure carries the rows' numbers, and None when there is no data."""

from __future__ import annotations

import os

import numpy as np
import pytest

from optim import charts, rendering
from optim.evaluation.pareto import front_2d
from optim.views import chart_views


def _r(cid, family, acc, lat, size, **kw):
    row = dict(candidate_id=cid, recipe=kw.pop("recipe", family), family=family, status="ok", metric_name="accuracy",
               metric_value=acc, size_bytes=size, latency_ms_p50_b1=lat, energy_j_per_1k=1.0, macs=1000,
               lineage=kw.pop("lineage", []), details=kw.pop("details", {}))
    row.update(kw)
    return row


@pytest.fixture
def rows():
    sweep = [_r(f"c{i + 2}", "pruning", acc, 1.0, 4000, recipe=f"prune-magnitude:sparsity={s}",
                lineage=[{"technique": "prune-magnitude", "config": {"sparsity": s}, "label": ""}],
                details={"learning_curve": [{"epoch": e, "train_loss": 1.0 / e, "val_metric": 0.9 + e / 100}
                                            for e in (1, 2, 3)]})
             for i, (s, acc) in enumerate([(0.9, 0.80), (0.7, 0.95), (0.8, 0.93)])]
    return [
        _r("c0", "baseline", 0.96, 1.0, 4000, recipe="baseline"),
        _r("c1", "quantization", 0.955, 2.0, 1000),
        *sweep,
        _r("c5", "hpo", 0.97, 1.1, 4000, details={
            "hpo_trials": [{"number": i, "value": v, "state": s} for i, (v, s) in
                           enumerate([(0.9, "complete"), (0.95, "complete"), (0.5, "pruned"), (0.93, "complete")])],
            "hpo_importance": {"lr": 0.8, "epochs": 0.2}}),
        _r("c6", "adaptive", 0.95, 0.4, 5000, details={"exit_fractions": [0.7, 0.2, 0.1]}),
        dict(candidate_id="c7", recipe="x", family="pruning", status="failed", error="boom"),
    ]


def test_pareto_scatter_front_is_the_non_dominated_set(rows):
    fig = charts.pareto_scatter(rows, "latency_ms_p50_b1", highlight="c1")
    front = next(t for t in fig.data if t.name == "Pareto front")
    ok = [r for r in rows if r["status"] == "ok"]
    lat = np.array([r["latency_ms_p50_b1"] for r in ok])
    acc = np.array([r["metric_value"] * 100 for r in ok])
    mask = front_2d(lat, acc)
    # Brute force: on the front iff nobody is at least as fast and as accurate and strictly better in one.
    brute = [not any((lat[j] <= lat[i] and acc[j] >= acc[i]) and (lat[j] < lat[i] or acc[j] > acc[i])
                     for j in range(len(ok))) for i in range(len(ok))]
    assert mask.tolist() == brute
    assert sorted(front.x) == sorted(lat[mask].tolist()) and front.line.shape == "hv"
    assert list(front.y) == pytest.approx(acc[mask][np.argsort(lat[mask])].tolist())
    names = {t.name for t in fig.data}
    assert {"baseline", "quantization", "pruning", "hpo", "adaptive", "recommended"} <= names
    marker_ids = {i for t in fig.data if t.mode == "markers+text" for i in t.customdata}
    assert marker_ids == {r["candidate_id"] for r in ok}  # the failed row is not plotted
    assert fig.layout.xaxis.title.text.startswith("Latency")
    size = charts.pareto_scatter(rows, "size_bytes")
    xs = sorted(x for t in size.data if t.mode == "markers+text" for x in t.x)
    assert xs[0] == pytest.approx(1000 / 1024)  # KB on the axis
    assert charts.pareto_scatter(rows, "energy_j_per_1k") is not None
    assert charts.pareto_scatter(rows, "latency_ms_p50_bN") is None  # nobody measured it
    assert charts.pareto_scatter([rows[-1]]) is None
    assert set(charts.axis_options(rows)) == {"Latency (batch 1)", "Size", "Energy", "MACs"}


def test_a_row_timed_on_another_node_sits_where_its_ratio_to_the_baseline_there_puts_it(rows):
    # --measure-on per-node: c1 ran 2.0 ms on a node where the baseline took 4.0 ms: half the baseline's
    # 1.0 ms here, so 0.5 ms on the plot (and on the front), its raw figure in the hover.
    rows[1] = {**rows[1], "measured_on": "node b", "node_baseline": {"latency_ms_p50_b1": 4.0}}
    fig = charts.pareto_scatter(rows, "latency_ms_p50_b1")
    (x,) = [x for t in fig.data if t.mode == "markers+text" for x, cid in zip(t.x, t.customdata) if cid == "c1"]
    assert x == pytest.approx(0.5)
    assert 0.5 in list(next(t for t in fig.data if t.name == "Pareto front").x)
    (hover,) = [h for t in fig.data if t.name == "quantization" for h in t.hovertext]
    assert "timed on node b" in hover and " 2 raw" in hover


def test_bars_and_parallel_coordinates(rows):
    fig = charts.metric_bars(rows)
    acc = next(t for t in fig.data if t.name == "Accuracy")
    assert list(acc.x) == ["c0", "c1", "c2", "c3", "c4", "c5", "c6"]
    assert list(acc.y) == pytest.approx([96.0, 95.5, 80.0, 95.0, 93.0, 97.0, 95.0])
    par = charts.parallel_coordinates(rows)
    dims = par.data[0].dimensions
    assert dims[0].label == "Candidate" and len(dims[0].values) == 7
    assert any("Size" in d.label for d in dims)
    assert charts.parallel_coordinates(rows[:1]) is None


def test_sensitivity_reads_the_swept_value_from_lineage(rows):
    series = charts.sweep_series(rows)
    assert len(series) == 1
    s = series[0]
    assert s["technique"] == "prune-magnitude" and s["setting"] == "sparsity"
    assert s["x"] == [0.7, 0.8, 0.9] and s["y"] == [0.95, 0.93, 0.80] and s["ids"] == ["c3", "c4", "c2"]
    fig = charts.sensitivity_curves(rows)
    line = fig.data[0]
    assert list(line.x) == [0.7, 0.8, 0.9] and list(line.y) == pytest.approx([95.0, 93.0, 80.0])
    assert charts.sensitivity_curves(rows[:2]) is None


def test_training_hpo_and_exit_charts(rows):
    lc = charts.learning_curves(rows)
    assert len([t for t in lc.data if t.showlegend]) == 3
    assert list(lc.data[0].y) == pytest.approx([0.91, 0.92, 0.93])
    hist = charts.build_figure("hpo_history", rows)
    best = next(t for t in hist.data if t.name.endswith("best so far"))
    assert list(best.y) == pytest.approx([0.9, 0.95, 0.95, 0.95])  # the pruned 0.5 is not a best
    imp = charts.build_figure("hpo_importance", rows)
    assert list(imp.data[0].y) == ["epochs", "lr"] and list(imp.data[0].x) == [0.2, 0.8]
    ex = charts.build_figure("exits", rows)
    assert list(ex.data[0].x) == ["exit 1", "exit 2", "final"]
    assert list(ex.data[0].y) == pytest.approx([70.0, 20.0, 10.0])
    plain = [rows[0], rows[1]]
    for name in ("learning", "hpo_history", "hpo_importance", "exits"):
        assert charts.build_figure(name, plain) is None
    declared = {v.name for v in chart_views()}
    assert set(charts.all_figures(rows)) == declared - {"devices"}  # no catalog columns here


def test_sensitivity_on_a_real_sweep(small_run):
    rows = small_run[0].rows
    series = charts.sweep_series(rows)
    s = next(s for s in series if s["setting"] == "sparsity")
    by_recipe = {r["recipe"]: r for r in rows}
    # sparsity=0.5 is the default: its lineage config omits it, the chart fills in the default.
    assert s["x"] == [0.5, 0.9]
    assert s["y"][1] == by_recipe["prune-magnitude:sparsity=0.9"]["metric_value"]
    figs = charts.all_figures(rows)
    assert {"pareto", "bars", "parallel", "sensitivity"} <= set(figs)


@pytest.mark.skipif(
    not os.path.exists("/usr/bin/chromium"), reason="PNG export needs Chromium (apt-get install chromium)"
)
def test_png_export(rows):
    png = rendering.figure_png(charts.pareto_scatter(rows), width=600, height=400)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (w, h) == (600, 400)


def test_device_estimates_chart(rows):
    assert charts.device_estimates(rows) is None  # no catalog columns
    est = [dict(r, est_latency_ms_rpi4=0.5 * (i + 1), est_latency_ms_a100=0.01, latency_ms_p50_edge=0.7)
           for i, r in enumerate(rows[:2])]
    fig = charts.device_estimates(est)
    assert [t.name for t in fig.data] == ["c0 baseline", "c1 quantization"]
    assert list(fig.data[1].x) == ["this CPU (measured)", "edge profile (measured)", "rpi4", "a100"]
    assert list(fig.data[1].y) == pytest.approx([2.0, 0.7, 1.0, 0.01])
    assert fig.layout.yaxis.type == "log"


def test_outliers_get_log_axes_and_parallel_axes_that_vary(rows):
    rows = [dict(r) for r in rows]
    rows[1]["latency_ms_p50_b1"] = 50.0  # one candidate 50× slower than the rest
    bars = charts.metric_bars(rows)
    lat = next(i for i, t in enumerate(bars.data) if t.name and "atency" in t.name)
    axis = bars.layout["yaxis" if lat == 0 else f"yaxis{lat + 1}"]
    assert axis.type == "log"  # the other bars stay readable
    size = next(i for i, t in enumerate(bars.data) if t.name and t.name.startswith("Size"))
    assert bars.layout["yaxis" if size == 0 else f"yaxis{size + 1}"].type != "log"  # 1000..5000: 5×, linear
    assert charts.spans_decade(np.array([1.0, 10.5])) and not charts.spans_decade(np.array([1.0, 9.0, 0.0]))
    same = [dict(r, energy_j_per_1k=2.0) if r.get("status") == "ok" else r for r in rows]
    par = charts.parallel_coordinates(same)
    labels = [d.label for d in par.data[0].dimensions]
    assert not any("Energy" in lab for lab in labels), labels  # constant: separates nothing
    colours = par.data[0].line.colorscale
    assert len({c for _, c in colours}) == len(par.data[0].dimensions[0].values)  # one colour per line
