"""The store's suite, run on both backends: an SQLite file and a PostgreSQL server (tests/store_pg.py)."""

import json
import math
import multiprocessing as mp
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from optim.errors import OptimError
from optim.store import Store
from tests.conftest import wait_for

OLD_STORE = Path(__file__).parent / "data" / "store-0.1.db"  # made by optim 0.1's store.py (SQLite only)


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path):
    """Where a test's store lives: a fresh SQLite file, or a fresh database on the session's server."""
    if request.param == "sqlite":
        return str(tmp_path / "o.db")
    return request.getfixturevalue("postgres").new_database()


def _teammate(url, host, other):
    """One teammate's machine: a run claimed while ``other``'s machine is running one too (another
    machine's runs never hold it back), filled with rows and progress while both write."""
    s = Store(url)
    rid = s.create_run({"model": f"{host}-model"}, name=host, host=host, pid=os.getpid())
    assert s.claim(rid, host=host, pid=os.getpid())
    # The other's run was claimed while this one runs (it may have finished already: it saw this one running).
    wait_for(lambda: any(r["host"] == other and r["status"] in ("running", "done") for r in s.runs()),
             f"{other}'s run claimed")
    for i in range(20):
        s.put_row(rid, {"candidate_id": f"c{i}", "metric_value": i / 10})
        s.progress(rid, f"c{i}", "measure", 1.0)
    assert s.finish_if_active(rid, "done")


def _writer(path, run_id, start):
    s = Store(path)
    for i in range(start, start + 20):
        s.put_row(run_id, {"candidate_id": f"c{i}", "metric_value": i / 100})
        s.progress(run_id, f"c{i}", "measure", 0.5)


def test_run_lifecycle_rows_and_events(target):
    s = Store(target)
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


def test_nan_is_stored_as_null(target):
    s = Store(target)
    rid = s.create_run({})
    s.put_row(rid, {"candidate_id": "c0", "x": float("inf")})
    assert s.rows(rid)[0]["x"] is None
    assert math.isnan(s.results(rid)["x"].astype(float)[0])


def test_two_processes_write_concurrently(target):
    path = target
    rid = Store(path).create_run({})
    other = mp.get_context("spawn").Process(target=_writer, args=(str(path), rid, 100))
    other.start()
    wait_for(lambda: Store(path).rows(rid), "the other process's first row")  # now write beside it
    _writer(path, rid, 0)
    other.join()  # no deadline here: a spawned interpreter starts slowly on a loaded machine (pytest-timeout guards)
    assert other.exitcode == 0
    assert len(Store(path).rows(rid)) == 40


def test_plan_and_structured_events_round_trip(target):
    s = Store(target)
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


def test_claim_is_first_come_first_served_and_one_at_a_time(target):
    s = Store(target)
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


def test_runs_have_names_notes_and_tags_and_can_be_searched(target):
    from optim.store import MAX_TAG_CHARS, MAX_TAGS, search_runs

    s = Store(target)
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


def test_each_machine_queues_its_own_runs(target):
    s = Store(target)
    a1, a2, b1 = s.create_run({}, host="a"), s.create_run({}, host="a"), s.create_run({}, host="b")
    assert s.claim(a1) and not s.claim(a2)  # one machine measures one run at a time
    assert s.claim(b1)  # machine b measures nothing else: its run does not wait for a's
    legacy = s.create_run({})  # no host (an older optim's run): it waits for every machine
    assert not s.claim(legacy)
    assert [r["id"] for r in s.active_runs()] == [a1, b1, a2, legacy]


def test_a_team_shares_one_postgresql_store(postgres):
    url = postgres.new_database()
    bob = mp.get_context("spawn").Process(target=_teammate, args=(url, "bob-pc", "alice-pc"))
    bob.start()
    _teammate(url, "alice-pc", "bob-pc")  # this process is alice's machine: both runs are running at once
    bob.join()  # pytest-timeout guards: a spawned interpreter starts slowly on a loaded machine
    assert bob.exitcode == 0
    runs = Store(url).runs()
    assert sorted(r["name"] for r in runs) == ["alice-pc", "bob-pc"]
    assert {(r["status"], r["n_rows"]) for r in runs} == {("done", 20)}
    for run in runs:  # every run's own story, whatever the other machine wrote meanwhile
        assert [e["message"] for e in Store(url).events(run["id"], kind="status")] == ["queued", "running", "done"]
        assert [r["candidate_id"] for r in Store(url).rows(run["id"])] == [f"c{i}" for i in range(20)]


def test_a_store_file_of_optim_0_1_opens_with_its_history(tmp_path):
    path = tmp_path / "optim.db"
    shutil.copy(OLD_STORE, path)
    s = Store(path)
    (run,) = s.runs()
    assert (run["id"], run["name"], run["status"], run["n_rows"]) == ("20261201-004040-a1b929", "made by optim 0.1",
                                                                      "done", 2)
    assert (run["notes"], run["tags"], run["environment"], run["host"]) == (
        "kept across the upgrade", ["legacy"], {"cpu": "old cpu"}, "oldhost")
    assert [r["metric_value"] for r in s.rows(run["id"])] == [0.97, 0.96]
    assert [e["kind"] for e in s.events(run["id"])] == ["status", "plan", "status", "recipe", "progress", "log",
                                                        "status"]
    assert s.latest_progress(run["id"])["c1"]["message"] == "done"
    new = s.create_run({"model": "m"}, plan=["half"], host="newhost")  # and it takes new runs beside the old
    s.put_row(new, {"candidate_id": "c0"})
    assert [r["id"] for r in s.runs()] == [new, run["id"]] and s.events(new)[-1]["data"] == {"recipes": ["half"]}
    with sqlite3.connect(path) as db:  # still an ordinary SQLite file: 7 old events, 2 new ones after them
        assert db.execute("SELECT COUNT(*), MIN(id), MAX(id) FROM events").fetchone() == (9, 1, 9)


def test_settings_come_from_the_environment_and_reach_a_worker(postgres, tmp_path, monkeypatch):
    from optim import store_label

    url = postgres.new_database()
    monkeypatch.setenv("OPTIM_STORE_URL", url)
    monkeypatch.setenv("OPTIM_ARTIFACTS", str(tmp_path / "artifacts"))
    s = Store()
    rid = s.create_run({})
    assert s.run(rid)["out_dir"] == str((tmp_path / "artifacts" / "runs" / rid).resolve())
    assert postgres.password not in store_label() and postgres.password not in repr(s)
    shown = url.replace(postgres.password, "***").replace("postgresql:", "postgresql+psycopg:")
    assert store_label() == s.label == shown
    monkeypatch.delenv("OPTIM_STORE_URL")
    monkeypatch.delenv("OPTIM_ARTIFACTS")
    assert Store().path == Path(os.environ["OPTIM_HOME"]) / "optim.db"  # unset: the SQLite file again
    for key, value in s.child_env().items():  # what a background worker is started with
        monkeypatch.setenv(key, value)
    assert Store().run(rid)["id"] == rid and Store().runs_dir == tmp_path / "artifacts" / "runs"
    monkeypatch.setenv("PGPASSWORD", postgres.password)  # libpq's own place for it: the URL may leave it out
    assert Store(url.replace(f":{postgres.password}@", "@")).run(rid)["id"] == rid



def test_optim_runs_lists_a_shared_store(postgres, capsys, monkeypatch):
    from optim import cli

    url = postgres.new_database()
    rid = Store(url).create_run({"model": "sample:digits-mlp", "data": "sample"}, host="elsewhere", heartbeat=1e12)
    monkeypatch.setenv("OPTIM_WARNINGS", "1")  # keep cli.main from silencing warnings for the whole session
    assert cli.main(["runs", "--store", url]) == 0
    out = capsys.readouterr().out
    assert rid in out and "queued" in out and "sample:digits-mlp" in out and postgres.password not in out
    assert cli.main(["runs"]) == 0 and rid not in capsys.readouterr().out  # without --store: the local file


@pytest.mark.parametrize("url, words", [
    ("postgresql://ann:s3cr3t@127.0.0.1:{port}/x", ["cannot be used", "ann:***@", "server runs", "OPTIM_STORE_URL"]),
    ("postgresql://ann:s3cr3t@127.0.0.1:notaport/x", ["not a database URL", "USER:PASSWORD@HOST:PORT/DATABASE"]),
    ("mysql://ann:s3cr3t@127.0.0.1/x", ["mysql is not a supported store"]),
    ("sqlite://", ["names no file"]),
])
def test_a_bad_or_unreachable_store_is_an_error_with_a_next_step(url, words, capsys, monkeypatch):
    from optim import cli
    from tests.store_pg import closed_port

    monkeypatch.setenv("OPTIM_WARNINGS", "1")  # keep cli.main from silencing warnings for the whole session
    with closed_port() as port:  # nothing listens there
        url = url.format(port=port)
        with pytest.raises(OptimError) as err:
            Store(url)
        assert all(w in str(err.value) for w in words), str(err.value)
        assert cli.main(["runs", "--store", url]) == 2
    out = capsys.readouterr()
    assert "error: " in out.err and len(out.err.strip().splitlines()) == 1
    assert "s3cr3t" not in out.err + out.out + str(err.value)


def test_a_wrong_password_names_the_cause_not_the_password(postgres):
    with pytest.raises(OptimError, match="password authentication failed") as err:
        Store(postgres.url(postgres.new_database().rsplit("%3D", 1)[1], password="guess-" + postgres.password))
    assert postgres.password not in str(err.value) and "***" in str(err.value)


def test_history_names_the_shared_store_and_lists_its_runs(postgres, monkeypatch):
    from tests.app._stored import page

    url = postgres.new_database()
    monkeypatch.setenv("OPTIM_STORE_URL", url)
    spec = {"model": "sample:digits-mlp", "data": "sample", "recipes": ["half"]}
    rid = Store().create_run(spec, name="on the server")
    Store().finish_if_active(rid, "failed", error="stopped")
    at = page("history")
    shown = [t.value.replace("\u200b", "") for t in [*at.caption, *at.markdown]]  # code() breaks links with it
    assert any("Store:" in c and "optim:***@127.0.0.1" in c for c in shown), shown
    assert any("on the server" in m for m in shown) and not any(postgres.password in m for m in shown)
    monkeypatch.setenv("OPTIM_STORE_URL", url.replace(f":{postgres.port}/", ":1/"))  # a server that is not there
    at = page("history")
    (box,) = at.error
    assert "cannot be used" in box.value and "OPTIM_STORE_URL" in box.value and postgres.password not in box.value


def test_kept_connections_follow_the_file(tmp_path):
    from optim.store import MAX_OPEN_FILES

    path = tmp_path / "o.db"
    first = Store(path)
    first.create_run({})
    for f in tmp_path.glob("o.db*"):  # the user deletes the store; a new one is made at the same place
        f.unlink()
    again = Store(path)
    assert again.runs() == [] and again.run(again.create_run({}))["status"] == "queued"
    others = [Store(tmp_path / f"s{i}.db") for i in range(MAX_OPEN_FILES + 2)]  # the oldest are closed...
    assert [len(s.runs()) for s in (again, *others)] == [1] + [0] * len(others)  # ...and reopen when used


def test_a_run_records_into_the_shared_store(postgres, tmp_path, monkeypatch):
    """A real run on the server (the worker's path, in this process: a worker finds the same store
    through its environment, see above); no file it writes holds the password."""
    from optim.experiment import ExperimentSpec, run_experiment
    from tests.conftest import FAST

    monkeypatch.setenv("OPTIM_ARTIFACTS", str(tmp_path / "shared"))
    store = Store(postgres.new_database())
    spec = ExperimentSpec(model="sample:breast-cancer-mlp", data="sample", recipes=["quantize-dynamic"], **FAST)
    results = run_experiment(spec, store=store)
    run = store.run(results.run_id)
    assert run["status"] == "done" and [r["status"] for r in store.rows(run["id"])] == ["ok", "ok"]
    assert store.rows(run["id"]) == json.loads((results.out_dir / "results.json").read_text())
    assert [e["message"] for e in store.events(run["id"], kind="status")] == ["queued", "running", "done"]
    assert results.out_dir.parent == (tmp_path / "shared" / "runs").resolve()
    written = [p for p in (tmp_path / "shared").rglob("*") if p.is_file() and p.suffix in (".json", ".csv", ".md")]
    assert len(written) >= 3 and not any(postgres.password in p.read_text(errors="replace") for p in written)
