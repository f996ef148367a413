"""optim.compare: deltas, constraints, recommendation and headline, on hand-made rows and a real run."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from optim.compare import (
    Constraints,
    apply_constraints,
    comparison_table,
    constraint_mask,
    display_columns,
    energy_header,
    format_bytes,
    front_2d,
    headline,
    metrics_of,
    pareto_front,
    recommend,
)
from optim.presentation import styled

METHOD = "estimate: CodeCarbon 3.3.2, process tracking: CPU estimated as TDP 85 W × share (no RAPL) + RAM 10 W"


def _row(cid: str, recipe: str, family: str, **kw):
    row = dict(candidate_id=cid, recipe=recipe, family=family, status="ok", error="", metric_name="accuracy",
               metric_value=0.97, size_bytes=780_000, size_bytes_gzip=700_000, params=200_000,
               nonzero_params=200_000, macs=190_000, latency_ms_p50_b1=2.1, latency_ms_p50_bN=9.0, batch_n=32,
               throughput_sps=3500.0, energy_j_per_1k=10.0, energy_method=METHOD, pareto=False, optimize_s=0.0,
               lineage=[], details={})
    row.update(kw)
    return row


@pytest.fixture
def hand_rows():
    return [
        _row("c0", "baseline", "baseline", pareto=True),
        _row("c1", "quantize-dynamic", "quantization", metric_value=0.967, size_bytes=100_000,
             latency_ms_p50_b1=1.0, energy_j_per_1k=4.6, pareto=True),
        _row("c2", "prune-magnitude:sparsity=0.9", "pruning", metric_value=0.90, size_bytes=780_000,
             latency_ms_p50_b1=2.5, energy_j_per_1k=9.0, slower_than_parent=True),
        _row("c3", "half", "quantization", metric_value=0.971, size_bytes=390_000, latency_ms_p50_b1=3.0,
             energy_j_per_1k=12.0, pareto=True),
        dict(candidate_id="c4", recipe="quantize-dynamic+prune-magnitude", family="quantization+pruning",
             status="failed", error="ConfigError: no float Linear layer to prune"),
    ]


def test_headline_matches_the_issue_example(hand_rows):
    assert headline(hand_rows[0], hand_rows[1]) == \
        "7.8× smaller, 2.1× faster, −0.3 pt accuracy, −54% energy per 1,000 predictions"
    worse = headline(hand_rows[0], hand_rows[2])
    assert worse.startswith("same size, 1.2× slower, −7.0 pt accuracy, −10% energy")


def test_table_deltas_units_flags_and_failed_rows(hand_rows):
    df = comparison_table(hand_rows)
    assert list(df["ID"]) == ["c0", "c1", "c2", "c3", "c4"]
    for header in ("Accuracy (%)", "Size (KB)", "MACs (k)", "Latency p50 b1 (ms)", "Latency p50 b32 (ms)",
                   "Energy / 1k inferences (J, estimate: CPU TDP 85 W)"):
        assert header in df.columns, header
    c1 = df.set_index("ID").loc["c1"]
    assert c1["Size (KB)"] == pytest.approx(100_000 / 1024)
    assert c1["Size ×"] == pytest.approx(100_000 / 780_000)
    assert c1["Size Δ%"] == pytest.approx((100_000 - 780_000) / 780_000 * 100)
    assert c1["Size vs baseline"] == "7.8× smaller (−87%)"
    assert c1["Latency b1 vs baseline"] == "2.1× faster (−52%)"
    assert c1["Accuracy Δ pt"] == pytest.approx(-0.3)
    assert c1["Accuracy vs baseline"] == "−0.3 pt"
    assert bool(c1["Size better"]) and bool(c1["Latency b1 better"]) and not bool(c1["Accuracy better"])
    assert c1["Energy better"] and c1["Energy ×"] == pytest.approx(0.46)
    c3 = df.set_index("ID").loc["c3"]
    assert c3["Latency b1 vs baseline"] == "1.4× slower (+43%)" and c3["Latency b1 better"] is False
    # c2's own flag and c3's judged against the baseline (no flag in the row) both show.
    flags = df.set_index("ID")["Flags"]
    assert "slower than parent" in flags["c2"] and "slower than parent" in flags["c3"]
    assert flags["c1"] == "" and flags["c0"] == ""
    failed = df.set_index("ID").loc["c4"]
    assert failed["Status"] == "failed" and "no float Linear" in failed["Error"]
    assert math.isnan(failed["Size (KB)"]) and failed["Size vs baseline"] == ""
    base = df.set_index("ID").loc["c0"]
    assert base["Size ×"] == 1.0 and base["Size vs baseline"] == "baseline"
    assert df["metric_drop_pt"].tolist()[:4] == pytest.approx([0.0, 0.3, 7.0, -0.1])
    shown = display_columns(df)
    assert shown[:6] == ["ID", "Recipe", "Family", "Status", "Pareto", "Flags"] and "Error" in shown
    assert "Gzipped size (KB)" not in shown and "Gzipped size (KB)" in display_columns(df, ("main", "more"))
    html = styled(df, recommended="c1").to_html()
    assert "#dcfce7" in html and "#fee2e2" in html  # green and red cells


def test_energy_header_names_its_method():
    assert energy_header("measured: CodeCarbon, machine tracking: CPU measured by RAPL + RAM 5 W") == \
        "Energy / 1k inferences (J, measured: RAPL)"
    assert energy_header("CodeCarbon") == "Energy / 1k inferences (J, estimate: CodeCarbon)"


def test_constraints_filter(hand_rows):
    df = comparison_table(hand_rows)
    assert list(apply_constraints(df)["ID"]) == ["c0", "c1", "c2", "c3"]  # no limits: every ok row
    assert list(apply_constraints(df, max_metric_drop_pt=1.0)["ID"]) == ["c0", "c1", "c3"]
    assert list(apply_constraints(df, max_metric_drop_pt=1.0, max_latency_ms=2.2)["ID"]) == ["c0", "c1"]
    assert list(apply_constraints(df, max_size_bytes=400_000)["ID"]) == ["c1", "c3"]
    assert list(apply_constraints(df, max_energy_j_per_1k=9.5)["ID"]) == ["c1", "c2"]
    assert apply_constraints(df, max_latency_ms=0.5).empty


def test_recommend_meets_limits_and_quotes_figures(hand_rows):
    cid, reason = recommend(hand_rows)
    assert cid == "c1"
    assert "7.8× smaller (97.7 KB vs 761.7 KB)" in reason and "−0.3 pt accuracy (96.7% vs 97.0%)" in reason
    assert reason.count(".") >= 1 and "\n" not in reason
    # Allow no latency above the baseline's and no size limit: c1 still fits.
    cid, _ = recommend(hand_rows, Constraints(max_metric_drop_pt=0.1))
    assert cid in ("c0", "c3")  # c1 drops 0.3 pt; c3 only trades speed for size
    cid, reason = recommend(hand_rows, {"max_latency_ms": 0.5})
    assert cid is None and "No candidate meets" in reason and "latency ≤ 0.5 ms" in reason
    only_base = [hand_rows[0], hand_rows[2]]
    cid, reason = recommend(only_base)
    assert cid == "c0" and reason.startswith("Keep the baseline")


def test_pareto_front_mask():
    pts = np.array([[1.0, 1.0], [2.0, 0.5], [0.5, 2.0], [0.9, 0.9], [np.nan, 5.0], [2.0, 0.5]])
    assert pareto_front(pts).tolist() == [True, True, True, False, False, True]
    # latency down, accuracy up
    assert front_2d([1.0, 2.0, 3.0], [0.9, 0.95, 0.94]).tolist() == [True, True, False]
    assert format_bytes(2048) == "2.0 KB" and format_bytes(3 * 1024 ** 2) == "3.00 MB"


# --- on a real run ---------------------------------------------------------------------------------
def test_real_run_table_matches_rows(small_run):
    results, _ = small_run
    rows = results.rows
    df = comparison_table(rows).set_index("ID")
    base = rows[0]
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) >= 3 and any(r["status"] == "failed" for r in rows)
    metrics = {m.key: m for m in metrics_of(df)}
    assert {"metric_value", "size_bytes", "latency_ms_p50_b1", "energy_j_per_1k", "macs"} <= set(metrics)
    for r in ok:
        t = df.loc[r["candidate_id"]]
        assert t["Size ×"] == pytest.approx(r["size_bytes"] / base["size_bytes"])
        assert t["Latency b1 ×"] == pytest.approx(r["latency_ms_p50_b1"] / base["latency_ms_p50_b1"])
        assert t["Accuracy Δ pt"] == pytest.approx((r["metric_value"] - base["metric_value"]) * 100)
        assert t["Accuracy (%)"] == pytest.approx(r["metric_value"] * 100)
        assert t["Size (KB)"] == pytest.approx(r["size_bytes"] / 1024)
        if r["size_bytes"] < base["size_bytes"] * 0.99:
            assert t["Size better"] is True and "smaller" in t["Size vs baseline"]
        if r.get("slower_than_parent"):
            assert "slower than parent" in t["Flags"]
    for r in rows:
        if r["status"] != "ok":
            assert df.loc[r["candidate_id"], "Error"] == r["error"] != ""


def test_real_run_constraints_and_recommendation(small_run):
    rows = small_run[0].rows
    df = comparison_table(rows)
    base = rows[0]
    q = next(r for r in rows if r["recipe"] == "quantize-dynamic")
    limit = base["size_bytes"] * 0.5
    kept = apply_constraints(df, max_metric_drop_pt=1.0, max_size_bytes=limit)
    by_id = {r["candidate_id"]: r for r in rows}
    for cid in kept["ID"]:
        r = by_id[cid]
        assert r["size_bytes"] <= limit and (base["metric_value"] - r["metric_value"]) * 100 <= 1.0 + 1e-9
    dropped = set(df.loc[df["Status"].eq("ok"), "ID"]) - set(kept["ID"])
    for cid in dropped:
        r = by_id[cid]
        assert r["size_bytes"] > limit or (base["metric_value"] - r["metric_value"]) * 100 > 1.0
    assert q["candidate_id"] in set(kept["ID"])  # dynamic int8 is < 35% of the baseline's size
    cid, reason = recommend(rows, Constraints(max_metric_drop_pt=1.0, max_size_bytes=limit))
    assert cid in set(kept["ID"])
    pick = by_id[cid]
    assert format_bytes(pick["size_bytes"]) in reason and cid in reason
    factor = base["size_bytes"] / pick["size_bytes"]
    assert f"{factor:.1f}× smaller" in headline(base, pick)
    pts = (pick["metric_value"] - base["metric_value"]) * 100
    assert re.search(rf"[−+±]{abs(pts):.1f} pt accuracy", headline(base, pick))
    assert constraint_mask(df, max_latency_ms=0.0).sum() == 0
    assert recommend(rows, {"max_latency_ms": 0.0})[0] is None


def test_empty_rows():
    assert comparison_table([]).empty
    assert recommend([]) == (None, "There are no results yet.")
    assert isinstance(comparison_table([]), pd.DataFrame)


def test_every_measured_column_is_kept(hand_rows):
    rows = [dict(r, est_latency_ms_rpi4=0.5 + i, weight_bits=8) if r["status"] == "ok" else r
            for i, r in enumerate(hand_rows)]
    df = comparison_table(rows)
    assert df.attrs["extra"] == ["est_latency_ms_rpi4", "weight_bits"]
    assert df["est_latency_ms_rpi4"].tolist()[:4] == [0.5, 1.5, 2.5, 3.5] and math.isnan(
        df["est_latency_ms_rpi4"].iloc[4]
    )
    assert "est_latency_ms_rpi4" in display_columns(df, ("main", "more"))
    assert "est_latency_ms_rpi4" not in display_columns(df) and "optimize_s" not in df.attrs["extra"]


def test_recipe_column_shows_a_steps_title_not_its_replay_spec(hand_rows):
    rows = [dict(r) for r in hand_rows]
    rows[1].update(recipe="distill:alpha=0,epochs=3", recipe_title="distill (no teacher, control)")
    df = comparison_table(rows)
    assert df["Recipe"].iloc[1] == "distill (no teacher, control)"
    assert df["Recipe"].iloc[2] == hand_rows[2]["recipe"]
    assert "recipe_title" not in df.columns


def test_what_a_technique_said_about_its_variant_is_a_flag(hand_rows):
    rows = [*hand_rows[:2],
            _row("c5", "quantize-dynamic", "quantization", little_effect="only 3% of the weights are in Linear"),
            _row("c6", "huffman", "compression", no_effect="the packed file is no smaller"),
            _row("c7", "quantize-static:max_drop=0", "quantization",
                 accuracy_control="not met: no configuration tried is within 0 points",
                 saturation="int8 kernels lose 2.10 points more than the same file run as float"),
            _row("c8", "select-k-best", "feature selection", input_not_narrowed="kept columns filled back in"),
            _row("c9", "quantize-static", "quantization", accuracy_control="met with every layer int8",
                 saturation="none: int8 kernels within 1 point")]
    flags = dict(zip(*(comparison_table(rows)[c] for c in ("ID", "Flags")), strict=True))
    assert flags["c5"] == "⚠ little effect"
    assert flags["c6"] == "⚠ no effect"
    assert flags["c7"] == "⚠ accuracy limit not met; ⚠ int8 saturation"
    assert flags["c8"] == "all inputs still needed"
    assert flags["c9"] == "" and flags["c1"] == ""


def test_a_row_timed_on_another_node_compares_through_the_baseline_timed_beside_it():
    # --measure-on per-node: c1 was timed on a node twice as slow as this machine, beside a copy of the
    # baseline there (3.0 ms), and is 2× faster than it; its raw 1.5 ms looks slower than c0's 1.0 ms here.
    from optim.evaluation.noise import NODE_BASELINE
    from optim.evaluation.pareto import DEFAULT_OBJECTIVES, rows_mask

    timed = dict(latency_ms_p50_b1=1.0, latency_ms_p95_b1=1.2, latency_ms_p95_b1_ci_lo=1.1, latency_ms_p95_b1_ci_hi=1.3)
    base = _row("c0", "baseline", "", accuracy=0.97, **timed)
    node = {k: 3 * v for k, v in timed.items()}
    c1 = _row("c1", "onnx-runtime", "edge", accuracy=0.97, latency_ms_p50_b1=1.5, speedup_b1=2.0, speedup_b1_ci_lo=1.9,
              speedup_b1_ci_hi=2.1, latency_ms_p95_b1=1.8, latency_ms_p95_b1_ci_lo=1.7, latency_ms_p95_b1_ci_hi=1.9,
              slower_than_parent=False, measured_on="node b", **{NODE_BASELINE: node})
    objectives = DEFAULT_OBJECTIVES("classification")
    assert rows_mask([base, c1], objectives).tolist() == [False, True]
    assert rows_mask([base, {**c1, NODE_BASELINE: None}], objectives).tolist() == [True, False]  # raw: c0 wins
    t = comparison_table([base, c1]).set_index("ID")
    p95 = next(m for m in metrics_of(t) if m.key == "latency_ms_p95_b1")
    assert t.at["c1", p95.vs_col].startswith("2.0× faster")  # 1.8 ms vs 3.6 ms beside it, not 1.2 ms here
    assert t.at["c1", p95.ratio_col] == pytest.approx(0.5)
    assert "slower than parent" not in t.at["c1", "Flags"] and "another node" in t.at["c1", "Flags"]
    assert recommend([base, c1])[0] == "c1"
