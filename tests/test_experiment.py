import json

import pandas as pd
import pytest

from optim.experiment import RESULT_COLUMNS, ExperimentSpec, run_experiment
from optim.jobs import start_background
from optim.store import Store
from tests.conftest import FAST, wait_for


def test_rows_baseline_first_and_failed_recipe_does_not_stop_others(small_run):
    results, store = small_run
    rows = results.rows
    assert [r["candidate_id"] for r in rows] == ["c0", "c1", "c2", "c3", "c4"]
    assert rows[0]["recipe"] == "baseline"
    status = {r["recipe"]: r["status"] for r in rows}
    assert status["quantize-dynamic"] == "ok"
    assert status["prune-magnitude:sparsity=0.9"] == "ok"
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and "prune" in failed[0]["error"]
    assert results.status == "partial"  # finished, but one variant failed
    assert len(store.rows(results.run_id)) == 5
    assert store.run(results.run_id)["status"] == "partial"


def test_dynamic_int8_gate(small_run):
    rows = {r["recipe"]: r for r in small_run[0].rows}
    base, q = rows["baseline"], rows["quantize-dynamic"]
    assert base["accuracy"] >= 0.95
    assert q["size_bytes"] <= 0.35 * base["size_bytes"]
    assert abs(q["accuracy"] - base["accuracy"]) <= 0.01
    assert q["size_ratio"] == pytest.approx(q["size_bytes"] / base["size_bytes"], rel=1e-6)


def test_sparsity_sweep_is_recorded(small_run):
    rows = {r["recipe"]: r for r in small_run[0].rows}
    p9 = rows["prune-magnitude:sparsity=0.9"]
    assert p9["nonzero_params"] <= 0.15 * rows["baseline"]["nonzero_params"]
    assert p9["size_bytes_gzip"] < rows["baseline"]["size_bytes_gzip"]
    assert p9["lineage"][0]["config"]["sparsity"] == 0.9


def test_results_files_have_required_columns(small_run):
    out = small_run[0].out_dir
    df = pd.read_csv(out / "results.csv")
    assert list(df.columns[: len(RESULT_COLUMNS)]) == RESULT_COLUMNS
    assert df.loc[0, "candidate_id"] == "c0"
    ok = df[df.status == "ok"]
    for col in ["metric_value", "size_bytes", "params", "macs", "latency_ms_p50_b1", "latency_ms_p50_bN",
                "throughput_sps", "energy_j_per_1k"]:
        assert (ok[col] > 0).all(), col
    assert ok["energy_method"].str.contains("estimate|measured").all()
    assert df["pareto"].astype(bool).any()
    rows = json.loads((out / "results.json").read_text())
    assert rows[0]["candidate_id"] == "c0" and "details" in rows[1]
    for r in rows:
        if r["status"] == "ok":
            assert (out / r["model_file"]).stat().st_size == r["size_bytes"]


def test_same_run_twice_gives_same_accuracy_and_sizes(small_run, tmp_path):
    spec = ExperimentSpec(model="sample:digits-mlp", data="sample", recipes=["prune-magnitude:sparsity=0.9"], **FAST)
    again = run_experiment(spec, store=Store(tmp_path / "o.db"), out_dir=tmp_path / "r").rows
    first = {r["recipe"]: r for r in small_run[0].rows}
    for r in again:
        assert r["accuracy"] == first[r["recipe"]]["accuracy"]
        assert r["size_bytes"] == first[r["recipe"]]["size_bytes"]


def test_cancel_keeps_finished_rows(tmp_path):
    store = Store(tmp_path / "o.db")
    spec = ExperimentSpec(model="sample:digits-mlp", data="sample",
                          recipes=["quantize-dynamic", "prune-magnitude"], **FAST)
    seen = []
    results = run_experiment(spec, store=store, out_dir=tmp_path / "r",
                             on_event=lambda e: seen.append(e["type"]), cancel=lambda: "row" in seen)
    assert results.status == "cancelled"
    assert [r["candidate_id"] for r in results.rows] == ["c0"]
    assert store.run(results.run_id)["status"] == "cancelled"
    assert len(store.rows(results.run_id)) == 1


def test_background_worker_runs_and_records(tmp_path):
    store = Store(tmp_path / "o.db")
    spec = ExperimentSpec(model="sample:breast-cancer-mlp", data="sample", recipes=["quantize-dynamic"], **FAST)
    run_id = start_background(spec, store)
    wait_for(lambda: store.run(run_id)["status"] not in ("queued", "running"), "the worker ending the run")
    run = store.run(run_id)
    assert run["status"] == "done", (run, (store.runs_dir / f"{run_id}.log").read_text()[-2000:])
    assert [r["status"] for r in store.rows(run_id)] == ["ok", "ok"]
    assert run["environment"]["threads"] == 1


def test_results_carry_intervals_stability_and_load(small_run):
    """Every candidate is timed together at the end: intervals, stability and load per row."""
    df = pd.read_csv(small_run[0].out_dir / "results.csv")
    ok = df[df.status == "ok"]
    for key in ("latency_ms_p50_b1", "latency_ms_p95_b1", "latency_ms_p50_bN", "latency_ms_p95_bN", "energy_j_per_1k"):
        assert (ok[f"{key}_ci_lo"] <= ok[key]).all() and (ok[key] <= ok[f"{key}_ci_hi"]).all(), key
    variants = ok[ok.candidate_id != "c0"]
    for key in ("speedup_b1", "speedup_bN", "energy_ratio"):
        assert (variants[f"{key}_ci_lo"] <= variants[key]).all() and (variants[key] <= variants[f"{key}_ci_hi"]).all()
    assert ok["measurement_stable"].isin([True, False]).all() and (ok["latency_cv"] >= 0).all()
    assert ok["load_other_cpu_pct"].between(0, 100).all() and (ok["measure_s"] > 0).all()
    assert (ok["latency_rounds"] >= 5).all() and ok["energy_method"].str.contains("power × time|measured").all()
    # Energy agrees with time: an estimate is the windows' mean power × the median time per inference.
    # (A machine whose CPU power is read from a hardware meter keeps the joules it read instead.)
    by_time = ok.energy_method.str.contains("power × time")
    expected = (ok.energy_power_w * ok.latency_ms_p50_bN / ok.batch_n).where(by_time, ok.energy_j_per_1k_windows)
    assert ok.energy_j_per_1k.to_numpy() == pytest.approx(expected.to_numpy(), rel=1e-9)
    if by_time.all():
        base_power = float(ok.loc[ok.candidate_id == "c0", "energy_power_w"].iloc[0])
        assert variants.energy_ratio.to_numpy() == pytest.approx(
            (variants.energy_power_w / base_power / variants.speedup_bN).to_numpy(), rel=1e-9)
    # One load figure for the run (all candidates were timed in the same phase), also in its record.
    assert ok["load_other_cpu_pct"].nunique() == 1
    run = small_run[1].run(small_run[0].run_id)
    assert run["environment"]["load_other_cpu_pct"] == pytest.approx(ok["load_other_cpu_pct"].iloc[0], abs=0.05)
