import math
import multiprocessing as mp
import sqlite3

import pytest

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
    assert [(e["kind"], e["message"]) for e in s.events(rid) if e["kind"] != "progress"] == [
        ("status", "queued"), ("status", "running"), ("log", "hello")]
    assert [e["message"] for e in s.events(rid, kind="progress", last=1)] == ["epoch 3"]
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
        p.join()  # no deadline here: spawned interpreters start slowly on a loaded machine (pytest-timeout guards)
    assert all(p.exitcode == 0 for p in procs)
    assert len(Store(path).rows(rid)) == 40


def test_plan_and_structured_events_round_trip(tmp_path):
    s = Store(tmp_path / "o.db")
    rid = s.create_run({}, plan=["quantize-dynamic", "prune-magnitude:sparsity=0.5"], pid=123, host="h")
    run = s.run(rid)
    assert (run["pid"], run["host"], run["status"]) == (123, "h", "queued")
    (plan,) = s.events(rid, kind="plan")
    assert plan["data"] == {"recipes": ["quantize-dynamic", "prune-magnitude:sparsity=0.5"]}
    s.event(
        rid, "recipe", candidate_id="c1", message="quantize-dynamic", data={"index": 0, "recipe": "quantize-dynamic"}
    )
    assert s.events(rid, kind="recipe")[0]["data"]["index"] == 0
    with pytest.raises(ValueError):
        s.event(rid, "gossip")
    with pytest.raises(ValueError):
        s.create_run({}, status="running")


def test_claim_is_first_come_first_served_and_one_at_a_time(tmp_path):
    s = Store(tmp_path / "o.db")
    first, second = s.create_run({}), s.create_run({})
    assert not s.claim(second)  # submitted later: waits for the first
    assert s.claim(first, pid=1)
    assert not s.claim(first)  # already running
    assert not s.claim(second)  # the first is running
    assert [r["id"] for r in s.active_runs()] == [first, second]
    assert s.finish_if_active(first, "partial")
    assert not s.finish_if_active(first, "failed")  # an ended run keeps its outcome
    assert s.run(first)["status"] == "partial" and s.run(first)["started"] is not None
    assert s.claim(second)
    third = s.create_run({})
    assert s.claim(third, wait_for_others=False)  # --no-queue
    assert {r["status"] for r in s.active_runs()} == {"running"}


def test_an_older_store_file_gains_the_new_columns(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the schema of the first release
        db.executescript(
            "CREATE TABLE runs (id TEXT PRIMARY KEY, created REAL NOT NULL, finished REAL, name TEXT NOT NULL DEFAULT "
            "'',"
            " status TEXT NOT NULL, spec TEXT NOT NULL, out_dir TEXT NOT NULL, error TEXT, progress REAL NOT NULL "
            "DEFAULT 0,"
            " message TEXT NOT NULL DEFAULT '', pid INTEGER, cancel_requested INTEGER NOT NULL DEFAULT 0, environment "
            "TEXT);"
            "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, ts REAL NOT NULL,"
            " kind TEXT NOT NULL, candidate_id TEXT, step TEXT, fraction REAL, message TEXT NOT NULL DEFAULT '');"
            "INSERT INTO runs (id, created, status, spec, out_dir, pid) VALUES ('old', 1.0, 'running', '{}', '/x', 99);"
        )
    s = Store(path)
    run = s.run("old")
    assert run["status"] == "running" and run["host"] is None and run["heartbeat"] is None
    s.update_run("old", heartbeat=2.0)
    s.log("old", "still works")
    assert s.run("old")["heartbeat"] == 2.0 and s.events("old")[-1]["data"] == {}
    assert run["notes"] == "" and run["tags"] == []  # names, notes and tags came later too
    s.describe_run("old", notes="kept", tags=["x"])
    assert s.run("old")["notes"] == "kept" and s.run("old")["tags"] == ["x"]


def test_runs_have_names_notes_and_tags_and_can_be_searched(tmp_path):
    from optim.store import MAX_TAG_CHARS, MAX_TAGS, search_runs

    s = Store(tmp_path / "o.db")
    a = s.create_run({"model": "sample:digits-mlp", "data": "sample:digits", "recipes": ["quantize-dynamic"]})
    b = s.create_run({"model": "/up/3f2a.onnx", "data": "/up/9c1d.csv", "recipes": ["prune-magnitude"],
                      "labels": {"/up/3f2a.onnx": "wine_mlp.onnx"}})
    s.describe_run(
        a, name="  int8 try  ", notes="For the Q3 review.\nLooks fine.", tags=["Int8", " review ", "int8", ""]
    )
    s.describe_run(b, tags=[f"t{i}" for i in range(30)] + ["x" * 100])
    assert s.run(a)["name"] == "int8 try" and s.run(a)["notes"] == "For the Q3 review.\nLooks fine."
    assert s.run(a)["tags"] == ["int8", "review"]
    assert len(s.run(b)["tags"]) == MAX_TAGS and all(len(t) <= MAX_TAG_CHARS for t in s.run(b)["tags"])
    s.describe_run(a, notes="")  # None keeps a field, "" clears it
    assert s.run(a)["notes"] == "" and s.run(a)["name"] == "int8 try"
    with pytest.raises(KeyError):
        s.describe_run("nope", name="x")
    runs = s.runs()
    assert [r["id"] for r in search_runs(runs, "INT8")] == [a]
    assert [r["id"] for r in search_runs(runs, "wine prune")] == [b]  # the upload's own name, the recipe
    assert [r["id"] for r in search_runs(runs, tags=["Review"])] == [a]
    assert search_runs(runs, "int8", tags=["t1"]) == []
    assert len(search_runs(runs)) == 2
