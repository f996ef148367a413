"""Jobs: the machine-wide queue, liveness (pid + start time, heartbeat), cancel, and progress read
from structured events. Real worker processes; assertions on states and event order, never on time."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from optim import jobs
from optim.errors import CancelledError
from optim.experiment import ExperimentSpec, run_experiment
from optim.store import Store
from tests.conftest import FAST, wait_for

SPEC = dict(model="sample:breast-cancer-mlp", data="sample", recipes=["quantize-dynamic"], **FAST)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _status_events(store: Store, run_id: str) -> list[tuple[int, str]]:
    return [(e["id"], e["message"]) for e in store.events(run_id, kind="status")]


def _log(store: Store, run_id: str) -> str:
    return (store.runs_dir / f"{run_id}.log").read_text()


def test_dead_worker_is_failed_wherever_runs_are_listed(tmp_path) -> None:
    store = Store(tmp_path / "o.db")
    dead = store.create_run({"model": "m"}, pid=_dead_pid(), host=jobs.this_host())
    reused = store.create_run({"model": "m"}, **{**jobs.owner(), "pid_start": jobs.process_start(os.getpid()) - 3600})
    alive = store.create_run({"model": "m"}, **jobs.owner())
    runs = {r["id"]: r for r in jobs.list_runs(store)}
    assert runs[dead]["status"] == "failed" and f"pid {store.run(dead)['pid']}" in runs[dead]["error"]
    # This test's own pid, but recorded with another start time: a process that reused the pid.
    assert runs[reused]["status"] == "failed" and "worker process" in runs[reused]["error"]
    assert runs[alive]["status"] == "queued"
    assert [e[1] for e in _status_events(store, dead)] == ["queued", "failed"]


def test_run_on_another_host_is_judged_by_its_heartbeat(tmp_path) -> None:
    store = Store(tmp_path / "o.db")
    rid = store.create_run({}, host="elsewhere", pid=1, heartbeat=1000.0)
    run = store.run(rid)
    assert jobs.dead_reason(run, now=1000.0 + jobs.STALE_S - 1) is None
    reason = jobs.dead_reason(run, now=1000.0 + jobs.STALE_S + 1)
    assert reason is not None and "elsewhere" in reason
    orphan = store.run(store.create_run({}))  # never owned by any process
    assert jobs.dead_reason(orphan, now=orphan["created"] + 1) is None
    assert jobs.dead_reason(orphan, now=orphan["created"] + jobs.STALE_S + 1) is not None
    store.update_run(rid, heartbeat=time.time())  # a live run with a recent heartbeat stays alive, here too
    assert jobs.get_run(store, rid)["status"] == "queued"


def test_heartbeat_beats_while_the_block_runs(tmp_path) -> None:
    store = Store(tmp_path / "o.db")
    rid = store.create_run({})
    with jobs.heartbeat(store, rid, every=0.01):
        wait_for(lambda: store.run(rid)["heartbeat"] is not None, "a heartbeat")
    first = store.run(rid)["heartbeat"]
    assert first <= time.time()


def test_two_runs_started_at_once_run_one_after_the_other(tmp_path) -> None:
    store = Store(tmp_path / "o.db")
    # This test holds the machine's slot with a run of its own, so both workers must queue.
    holder = store.create_run({"model": "x"}, name="holder", **jobs.owner())
    assert store.claim(holder, **jobs.owner())
    # The queue is the point here, not measuring: each run stops at its missing data file, right
    # after it got its turn (a worker that measures to the end: test_experiment).
    quick = {**SPEC, "data": str(tmp_path / "missing.csv")}
    first = jobs.start_background(ExperimentSpec(**quick, name="first"), store)
    second = jobs.start_background(ExperimentSpec(**quick, name="second"), store)
    wait_for(
        lambda: (
            "queued behind run “holder”" in _log(store, first) and "queued behind run “holder”" in _log(store, second)
        ),
        "both workers reporting that they wait",
    )
    assert store.run(first)["status"] == store.run(second)["status"] == "queued"
    position = jobs.queue_position(store, second)
    assert position.running["id"] == holder and [r["id"] for r in position.ahead] == [holder, first]
    assert position.describe().startswith("queued behind run “holder”") and "1 more run" in position.describe()
    store.finish_if_active(holder, "done")
    wait_for(lambda: store.run(second)["status"] not in ("queued", "running"), "the second run finishing")
    for rid in (first, second):
        run = store.run(rid)
        assert run["status"] == "failed" and "missing.csv" in run["error"], _log(store, rid)[-2000:]
    holder_done = _status_events(store, holder)[-1]
    (q1, r1, d1), (q2, r2, d2) = _status_events(store, first), _status_events(store, second)
    assert [q1[1], r1[1], d1[1], q2[1], r2[1], d2[1]] == ["queued", "running", "failed"] * 2
    # Submitted first, started first; the second started only after the first had ended.
    assert holder_done[0] < r1[0] < d1[0] < r2[0] < d2[0]


def test_no_queue_starts_at_once_and_cancel_leaves_the_queue(optim_home) -> None:
    store = Store()  # the CLI's store: $OPTIM_HOME of this test
    holder = store.create_run({}, **jobs.owner())
    assert store.claim(holder, **jobs.owner())
    proc = subprocess.run(
        [sys.executable, "-m", "optim", "run", "--model", "sample:breast-cancer-mlp", "--data", "sample",
         "--recipe", "quantize-dynamic", "--no-queue", "--threads", "1", "--latency-budget", "0.05",
         "--energy-inferences", "200", "--no-device-profiles", "--quiet"],
        check=False, capture_output=True, text=True, env=dict(os.environ, OPTIM_HOME=str(optim_home)),
        timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "status: done" in proc.stdout and "queued behind" not in proc.stderr
    assert store.run(holder)["status"] == "running"  # it did not wait for the run holding the slot
    waiting = jobs.create_run(store, ExperimentSpec(**SPEC), ExperimentSpec(**SPEC).validate())
    jobs.cancel(store, waiting)
    with pytest.raises(CancelledError):
        jobs.wait_turn(store, waiting)
    assert store.run(waiting)["status"] == "cancelled"
    assert [(c["recipe"], c["state"]) for c in jobs.candidates(store, waiting)] == [("quantize-dynamic", "not run")]


def test_partial_run_counts_failed_variants(small_run) -> None:
    results, store = small_run
    assert store.run(results.run_id)["status"] == "partial"
    entries = jobs.candidates(store, results.run_id)
    assert [e["state"] for e in entries] == ["ok", "ok", "ok", "ok", "failed"]
    assert "prune" in entries[-1]["error"]
    assert jobs.outcome(entries) == {"total": 4, "ok": 3, "failed": 1, "not_run": 0}
    recipes = [e["data"]["recipe"] for e in store.events(results.run_id, kind="recipe")]
    assert recipes == jobs.plan(store, results.run_id) == [
        "quantize-dynamic", "prune-magnitude:sparsity=0.5", "prune-magnitude:sparsity=0.9",
        "quantize-dynamic+prune-magnitude"]


def test_cancelled_run_lists_what_never_ran(tmp_path) -> None:
    store = Store(tmp_path / "o.db")
    spec = ExperimentSpec(**{**SPEC, "recipes": ["quantize-dynamic", "prune-magnitude:sparsity=0.5|0.9"]})
    seen: list[str] = []
    results = run_experiment(spec, store=store, on_event=lambda e: seen.append(e["type"]),
                             cancel=lambda: "row" in seen)
    assert results.status == "cancelled"
    entries = jobs.candidates(store, results.run_id)
    assert [(e["candidate_id"], e["state"]) for e in entries] == [
        ("c0", "ok"), (None, "not run"), (None, "not run"), (None, "not run")]
    assert jobs.outcome(entries)["not_run"] == 3


def _planned_run(store: Store, estimates: list[float | None], *, baseline_s: float | None = 0.0,
                 timing_s: float | None = 0.0) -> str:
    """A running run (queued at t=0, started at t=1000) whose plan carries these estimates."""
    recipes = [f"r{i}" for i in range(len(estimates))]
    run_id = store.create_run({}, plan=recipes)
    store.event(run_id, "plan", data={"recipes": recipes, "estimates_s": estimates, "baseline_s": baseline_s,
                                      "timing_s": timing_s})
    store.update_run(run_id, status="running", started=1000.0)
    store.put_row(run_id, {"candidate_id": "c0", "recipe": "baseline", "status": "ok"})
    for i in range(len(estimates)):
        store.event(run_id, "recipe", candidate_id=f"c{i + 1}", data={"index": i, "recipe": recipes[i]})
    return run_id


def test_eta_weighs_progress_by_each_recipes_estimate(tmp_path) -> None:
    store = Store(tmp_path / "o.db")
    run_id = _planned_run(store, [10.0, 90.0])
    store.progress(run_id, "c1", "quantize", 0.4)
    store.put_row(run_id, {"candidate_id": "c1", "recipe": "r0", "status": "ok"})  # recipe 1 done
    store.progress(run_id, "c2", "distill", 0.5)  # recipe 2 half way
    run = store.run(run_id)
    # Done: (10 × 1 + 90 × 0.5) / 100 = 0.55, 30 s after the start (not 1030 s after queueing);
    # past 25 % done the ETA is the measured rate alone: 30 / 0.55 × 0.45.
    assert jobs.weighted_done(store, run) == (pytest.approx(0.55), 100.0)
    # (Counting recipes instead, 1.5 of 2 done, said 10 s.)
    assert jobs.eta_s(store, run, now=1030.0) == pytest.approx(30 / 0.55 * 0.45)
    assert jobs.eta_s(store, {**run, "status": "queued"}, now=1030.0) is None
    assert jobs.fmt_duration(75) == "1 min 15 s" and jobs.fmt_duration(3725) == "1 h 02 min"


def test_eta_without_estimates_counts_parts_equally(tmp_path) -> None:
    store = Store(tmp_path / "o.db")
    run_id = _planned_run(store, [None, 90.0])  # one recipe could not be estimated
    store.progress(run_id, "c1", "quantize", 0.5)
    run = store.run(run_id)
    # baseline 1, r0 0.5, r1 0, timing 0: 1.5 of 4 parts; 30 s for 0.375 → 50 s left, no estimate to blend.
    assert jobs.weighted_done(store, run) == (pytest.approx(0.375), None)
    assert jobs.eta_s(store, run, now=1030.0) == pytest.approx(50.0)


def test_eta_converges_on_the_measured_rate(tmp_path) -> None:
    """Estimated 100 s, the recipe really takes 400 s: the ETA starts at the estimate and, from
    25 % done on, equals what the measured rate says is left."""
    store = Store(tmp_path / "o.db")
    run_id = _planned_run(store, [100.0])
    etas = []
    for t in (0, 40, 100, 200, 300):
        store.progress(run_id, "c1", "train", t / 400)
        etas.append(jobs.eta_s(store, store.run(run_id), now=1000.0 + t))
    # 40 s in (10 % done): 0.4 × measured 360 + 0.6 × the estimate's 60 s left.
    assert etas == [pytest.approx(100.0), pytest.approx(180.0), pytest.approx(300.0), pytest.approx(200.0),
                    pytest.approx(100.0)]


def test_run_records_estimates_from_the_cached_calibration(tmp_path) -> None:
    from optim import cost

    store = Store(tmp_path / "o.db")
    spec = ExperimentSpec(**{**SPEC, "recipes": ["quantize-dynamic", "prune-magnitude:sparsity=0.5,finetune_epochs=1"]})
    first = run_experiment(spec, store=store)  # no calibration cached: equal weights
    assert store.events(first.run_id, kind="plan", last=1)[0]["data"]["estimates_s"] == [None, None]
    cost.calibrate(threads=1)
    second = run_experiment(spec, store=store)
    data = store.events(second.run_id, kind="plan", last=1)[0]["data"]
    assert data["recipes"] == ["quantize-dynamic", "prune-magnitude:sparsity=0.5,finetune_epochs=1"]
    # Fine-tuning costs more than quantizing; the timing phase covers the baseline and both variants.
    assert 0 < data["estimates_s"][0] < data["estimates_s"][1]
    assert data["timing_s"] == pytest.approx(3 * (data["baseline_s"] - cost.CANDIDATE_OVERHEAD_S))
    assert jobs.weighted_done(store, store.run(second.run_id))[0] == 1.0


def test_cli_runs_shows_queue_position_and_dead_runs(tmp_path, capsys) -> None:
    from optim import cli

    store = Store()  # the CLI's store: $OPTIM_HOME of this test
    holder = store.create_run({"model": "a.onnx", "data": "a.csv"}, name="big sweep", **jobs.owner())
    assert store.claim(holder, **jobs.owner())
    waiting = store.create_run({"model": "b.onnx", "data": "b.csv"}, **jobs.owner())
    dead = store.create_run({"model": "c.onnx", "data": "c.csv"}, pid=_dead_pid(), host=jobs.this_host())
    partial = store.create_run({"model": "d.onnx", "data": "d.csv"}, plan=["half", "distill"], **jobs.owner())
    store.put_row(partial, {"candidate_id": "c0", "status": "ok"})
    for index, (cid, status) in enumerate((("c1", "ok"), ("c2", "failed"))):
        store.event(partial, "recipe", candidate_id=cid, data={"index": index, "recipe": ("half", "distill")[index]})
        store.put_row(partial, {"candidate_id": cid, "status": status})
    store.finish_if_active(partial, "partial")
    assert cli.main(["runs"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if not line.startswith(" ")}
    assert "running" in lines[holder] and "queued" in lines[waiting] and "failed" in lines[dead]
    assert f"queued behind run “big sweep” ({holder}) — started " in out
    assert "worker process" in out and store.run(dead)["status"] == "failed"
    assert "partial" in lines[partial] and "1 of 2 variant(s) failed" in out
