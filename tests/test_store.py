import math
import multiprocessing as mp

from optim.store import Store


def _writer(path, run_id, start):
    s = Store(path)
    for i in range(start, start + 20):
        s.put_row(run_id, {"candidate_id": f"c{i}", "metric_value": i / 100})
        s.progress(run_id, f"c{i}", "measure", 0.5)


def test_run_lifecycle_rows_and_events(tmp_path):
    s = Store(tmp_path / "o.db")
    rid = s.create_run({"model": "m", "data": "d"}, name="demo")
    assert s.run(rid)["status"] == "queued" and s.run(rid)["spec"]["model"] == "m"
    s.update_run(rid, status="running", progress=0.5, environment={"cpu": "x"})
    s.put_row(rid, {"candidate_id": "c0", "metric_value": float("nan"), "size_bytes": 10})
    s.put_row(rid, {"candidate_id": "c1", "metric_value": 0.9})
    s.put_row(rid, {"candidate_id": "c0", "metric_value": 0.95})  # replace keeps position
    rows = s.rows(rid)
    assert [r["candidate_id"] for r in rows] == ["c0", "c1"] and rows[0]["metric_value"] == 0.95
    s.log(rid, "hello")
    s.progress(rid, "c1", "step 1/1", 0.25, "epoch 1")
    s.progress(rid, "c1", "step 1/1", 0.75, "epoch 3")
    assert s.latest_progress(rid)["c1"]["fraction"] == 0.75
    assert [e["kind"] for e in s.events(rid)] == ["log", "progress", "progress"]
    assert not s.cancel_requested(rid)
    s.request_cancel(rid)
    assert s.cancel_requested(rid)
    assert s.runs()[0]["n_rows"] == 2 and s.run(rid)["environment"] == {"cpu": "x"}
    s.delete_run(rid)
    assert s.runs() == []


def test_nan_is_stored_as_null(tmp_path):
    s = Store(tmp_path / "o.db")
    rid = s.create_run({})
    s.put_row(rid, {"candidate_id": "c0", "x": float("inf")})
    assert s.rows(rid)[0]["x"] is None
    assert math.isnan(s.results(rid)["x"].astype(float)[0])


def test_two_processes_write_concurrently(tmp_path):
    path = tmp_path / "o.db"
    rid = Store(path).create_run({})
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), rid, k * 100)) for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    assert len(Store(path).rows(rid)) == 40
