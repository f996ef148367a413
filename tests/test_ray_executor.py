"""Ray executor: a local Ray cluster (head + one more node labelled for measurement, all on
127.0.0.1, started once for this module) makes the candidates. The numbers match a local run with
the same seed; a worker killed mid-recipe fails only that recipe; cancelling kills the running task;
``--measure-on per-node`` times each candidate where it was made, ``--measure-on KEY=VALUE`` on the
labelled node.

Nothing here waits for time: the tests wait for state (a Ray worker process titled
``ray::optim-make-r<index>`` exists, a process has ended), each wait bounded so a bug fails
instead of hanging.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from optim.errors import ConfigError, OptimError

# Every Ray address on the loopback interface (read when ray is imported): nothing listens outside.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
# The nodes this module starts run their workers at normal priority, as optim's own cluster does
# (optim.executor): at Ray's default nice 15 a busy machine starved them past the test's timeout.
os.environ.setdefault("RAY_worker_niceness", "0")
# The head's Ray Client proxy forks the per-client server while its own gRPC threads run; gRPC's
# fork handlers then crashed the child before its exec (SIGSEGV in cygrpc, "Starting Ray client
# server failed"), more often on a busy machine. The child only execs: it needs no fork support.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
ray = pytest.importorskip("ray", reason="the dev extra installs Ray (pip install -e '.[dev]')")

MODEL = "sample:digits-mlp"
#: Both keep the baseline's layer types: a recipe that changes them (quantize-dynamic) serializes
#: ~100 B larger in a process that scripted the baseline first (TorchScript renames the second
#: class of a name ___torch_mangle_N), so its size_bytes depends on the process, not the model.
#: The search's trials run as Ray tasks sharing one Optuna study (a journal file in the run folder);
#: the random sampler draws the same settings in any order of finishing, so the trials match.
HPO = "hpo:sampler=random,trials=2,pruner=none,fixed=epochs:1"
RECIPES = ["prune-magnitude:sparsity=0.5", HPO]
#: L-BFGS on batches of one row for 1000 epochs: hours on one CPU, so this recipe is still being
#: made whenever the test acts on it (kills its worker, cancels the run).
ENDLESS = "retrain:optimizer=lbfgs,epochs=1000,batch_size=1"
#: Bound of every wait on state below (a broken executor fails the test instead of hanging it).
STATE_WAIT_S = 180
#: The Ray label of the node the cancel test's run measures on (``ray start --labels``).
MEASURE_LABEL = ("optim-measure", "yes")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """A head node and one more worker node (each its own raylet and worker processes), 1 CPU each.

    Workers read OPTIM_HOME from the environment they start with: a folder of this module's.
    """
    from ray.cluster_utils import Cluster

    home = tmp_path_factory.mktemp("ray-home")
    old = os.environ.get("OPTIM_HOME")
    os.environ["OPTIM_HOME"] = str(home)
    node = {"num_cpus": 1, "node_ip_address": "127.0.0.1", "object_store_memory": 80 * 1024 * 1024}
    client_port = _port_for_a_server()  # the Ray Client server's
    c = Cluster(initialize_head=True, head_node_args={
        **node, "include_dashboard": False, "temp_dir": str(tmp_path_factory.mktemp("ray")),
        "ray_client_server_port": client_port})
    c.client_address = f"ray://127.0.0.1:{client_port}"
    c.measure_node = c.add_node(**node, labels=dict([MEASURE_LABEL])).node_id[:8]
    c.wait_for_nodes()
    yield c
    c.shutdown()
    if old is None:
        os.environ.pop("OPTIM_HOME", None)
    else:
        os.environ["OPTIM_HOME"] = old


def _port_for_a_server() -> int:
    """A free port on 127.0.0.1 for a server that binds it seconds later (the head node starts first),
    taken below the kernel's ephemeral range and above Ray's worker ports (10002-19999): there no
    outgoing connection and no port Ray picks for itself can take it meanwhile."""
    import random

    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in random.sample(range(20000, low), min(50, max(0, low - 20000))):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # no such range on this machine: any free port
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spec(recipes: list[str], **kw: Any) -> Any:
    from optim.experiment import ExperimentSpec
    from tests.conftest import FAST

    return ExperimentSpec(model=MODEL, data="sample", recipes=recipes, **FAST, **kw)


def _making(index: int) -> psutil.Process:
    """The Ray worker process making recipe ``index`` (its title is ``ray::optim-make-r<index>``),
    one of this test process's cluster: only its descendants (another session's Ray cluster on the
    same machine names its workers alike)."""
    title = f"ray::optim-make-r{index}"
    deadline = time.monotonic() + STATE_WAIT_S
    while time.monotonic() < deadline:
        for p in psutil.Process().children(recursive=True):
            try:
                if (p.cmdline() or [""])[0].strip() == title:
                    return p
            except psutil.Error:  # ended, or became a zombie, while the list was read
                continue
        time.sleep(0.2)
    raise AssertionError(f"no Ray worker process {title} within {STATE_WAIT_S} s")


def test_ray_sweep_matches_local_run_and_a_lost_worker_fails_only_its_recipe(
        cluster, tmp_path: Path, optim_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from optim.experiment import run_experiment
    from optim.store import Store

    monkeypatch.setenv("RAY_ADDRESS", cluster.address)
    store = Store(tmp_path / "o.db")
    local = run_experiment(_spec(RECIPES), store=store, out_dir=tmp_path / "local", queue=False)

    killed: dict[str, Any] = {}

    def kill_the_endless_recipe() -> None:  # runs while the driver waits for recipe 2 (ENDLESS)
        proc = _making(2)
        killed["pid"] = proc.pid
        proc.kill()

    killer = threading.Thread(target=kill_the_endless_recipe, daemon=True)
    killer.start()
    remote = run_experiment(_spec([*RECIPES, ENDLESS], executor="ray", measure_on="per-node"), store=store,
                            out_dir=tmp_path / "ray", queue=False)
    killer.join(timeout=STATE_WAIT_S)
    assert "pid" in killed
    # Only this process writes to optim's store: a worker opening one (its OPTIM_HOME is optim_home)
    # would have created optim.db there. The workers' log lines (each hpo trial's) came back with
    # their task and were written here.
    assert not (optim_home / "optim.db").exists()
    logged = [e["message"] for e in store.events(remote.run_id, kind="log")]
    assert sum(m.startswith("hpo trial {") for m in logged) == 2

    assert [r["candidate_id"] for r in local.rows] == ["c0", "c1", "c2"]
    assert [r["candidate_id"] for r in remote.rows] == ["c0", "c1", "c2", "c3"]
    ids = {n.node_id[:8] for n in cluster.list_all_nodes()}
    for want, row in zip(local.rows, remote.rows):
        assert (row["recipe"], row["status"]) == (want["recipe"], "ok")
        assert row["accuracy"] == want["accuracy"] > 0.5
        assert row["nonzero_params"] == want["nonzero_params"]
        assert row["size_bytes"] == want["size_bytes"], row["recipe"]
        assert row["size_bytes_gzip"] == want["size_bytes_gzip"], row["recipe"]  # the weights' values
        assert row["latency_ms_p50_b1"] > 0
        if row["candidate_id"] != "c0":  # made and timed (beside the baseline) on a node of the cluster
            assert any(f"node {i} " in row["made_on"] for i in ids), row["made_on"]
            assert row["measured_on"] == row["made_on"]
            assert row["speedup_b1"] > 0
            # its raw latency compares with the baseline copy timed beside it, kept in the row
            assert row["node_baseline"]["latency_ms_p50_b1"] > 0
        else:
            assert "measured_on" not in row  # the baseline is timed here
    assert local.rows[1]["nonzero_params"] < local.rows[0]["nonzero_params"]  # the prune did prune
    trials = {"local": local.rows[2]["details"]["hpo_trials"], "ray": remote.rows[2]["details"]["hpo_trials"]}
    assert [len(t) for t in trials.values()] == [2, 2]
    for a, b in zip(*(sorted(t, key=lambda r: r["number"]) for t in trials.values())):
        assert (a["number"], a["params"], a["state"], a["value"]) == (b["number"], b["params"], b["state"], b["value"])
        assert any(f"node {i} " in b["made_on"] for i in ids)  # each trial on a worker of the cluster
    best = max(t["value"] for t in trials["ray"])
    assert remote.rows[2]["details"]["hpo_best_value"] == local.rows[2]["details"]["hpo_best_value"] == best
    journal = tmp_path / "ray" / "work" / "ray" / "r1" / "hpo" / "optim-hpo-retrain.journal"
    assert journal.is_file()
    assert not ray.is_initialized()  # the run connected and disconnected itself
    lost = remote.rows[3]
    assert (lost["recipe"], lost["status"]) == (ENDLESS, "failed")
    assert "Ray worker making this candidate was lost" in lost["error"]
    assert remote.status == "partial"
    # both nodes of the cluster, on 127.0.0.1 only
    assert [n.node_ip_address for n in cluster.list_all_nodes()] == ["127.0.0.1", "127.0.0.1"]

    # The Compare page (AppTest, on this store) says where each candidate was made.
    from app import state
    from tests.app._stored import page

    with sqlite3.connect(store.path) as src, sqlite3.connect(optim_home / "optim.db") as dst:
        src.backup(dst)
    at = page("compare")
    assert at.session_state[state.SELECTED_RUN] == remote.run_id  # the newest run
    at.toggle(key=state.ONLY_WITHIN).set_value(False).run()
    from optim.compare import OTHER_NODE_FLAG

    table = at.dataframe[0].value
    made_on = {"c0": "this machine", "c1": remote.rows[1]["made_on"], "c2": remote.rows[2]["made_on"]}
    assert table["Made on"].to_dict() == {**made_on, "c3": ""}  # c3: its worker was lost
    assert table["Measured on"].to_dict() == {**made_on, "c3": ""}
    assert [OTHER_NODE_FLAG in f for f in table["Flags"]] == [False, True, True, False]


def test_cancel_through_ray_client_kills_the_running_task(cluster, tmp_path: Path) -> None:
    from optim.experiment import run_experiment
    from optim.store import Store

    # Connected here through Ray Client (the ray://HOST:PORT the run names), so the run leaves the
    # connection open: a task still running after the run returns would stay alive, and only the
    # cancel can have ended it.
    ray.init(address=cluster.client_address, logging_level="ERROR", log_to_driver=False,
             runtime_env={"env_vars": {"OPTIM_HOME": os.environ["OPTIM_HOME"],
                                       "PYTHONPATH": os.environ.get("PYTHONPATH", "")}})
    try:
        making: dict[str, psutil.Process] = {}
        seen = threading.Event()

        def watch() -> None:
            making["proc"] = _making(0)
            seen.set()

        threading.Thread(target=watch, daemon=True).start()
        # Timed on the labelled node: the baseline (the one row left) goes there once the making
        # task is cancelled, even when that task held the node's only CPU.
        res = run_experiment(_spec([ENDLESS], executor=cluster.client_address, measure_on="=".join(MEASURE_LABEL)),
                             store=Store(tmp_path / "o.db"), out_dir=tmp_path / "run", queue=False,
                             cancel=seen.is_set)
        assert res.status == "cancelled"
        assert [(r["candidate_id"], r["status"]) for r in res.rows] == [("c0", "ok"), ("c1", "cancelled")]
        making["proc"].wait(timeout=STATE_WAIT_S)  # psutil.TimeoutExpired if the task still ran
        assert not making["proc"].is_running()
        assert ray.is_initialized()
        assert f"node {cluster.measure_node} " in res.rows[0]["measured_on"]
        assert res.rows[0]["latency_ms_p50_b1"] > 0
        # A label no node has is refused before any recipe is sent (its task would wait forever).
        with pytest.raises(OptimError, match="--measure-on optim-measure=no: no node of the Ray cluster has"):
            run_experiment(_spec([ENDLESS], executor=cluster.client_address, measure_on="optim-measure=no"),
                           store=Store(tmp_path / "o.db"), out_dir=tmp_path / "typo", queue=False)
    finally:
        ray.shutdown()


def test_ray_session_files_go_under_optim_home_unless_too_deep(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    import shutil
    import tempfile

    from optim.executor import _SOCKET_MAX, _SOCKET_TAIL, ray_temp_dir

    shallow = Path(tempfile.mkdtemp(prefix="oh-"))  # /tmp/oh-XXXXXXXX: short enough
    try:
        monkeypatch.setenv("OPTIM_HOME", str(shallow))
        assert ray_temp_dir() == shallow.resolve() / "ray"
    finally:
        shutil.rmtree(shallow)
    deep = tmp_path / ("d" * 60)
    monkeypatch.setenv("OPTIM_HOME", str(deep))
    short = ray_temp_dir()
    assert not short.is_relative_to(deep) and len(str(short)) + _SOCKET_TAIL <= _SOCKET_MAX


def test_a_run_removes_the_session_folder_of_the_cluster_it_started(optim_home: Path) -> None:
    """Only that session (and Ray's link to it) under $OPTIM_HOME/ray; nothing outside it."""
    from optim.executor import _disconnect

    root = optim_home / "ray"
    session, other = root / "session_2026-12-01_03-50-00_000001_42", root / "session_2026-12-01_03-40-00_000001_41"
    for folder in (session / "logs", other / "logs"):
        folder.mkdir(parents=True)
        (folder / "raylet.out").write_text("log")
    (root / "session_latest").symlink_to(session)
    outside = optim_home.parent / "session_2026-12-01_03-50-00_000001_43"
    outside.mkdir()
    _disconnect(ray, session)
    _disconnect(ray, outside)  # a session folder that is not under $OPTIM_HOME/ray stays
    _disconnect(ray, True)  # connected to a running cluster: its sessions are not ours
    assert sorted(p.name for p in root.iterdir()) == [other.name]
    assert outside.is_dir()
    assert not ray.is_initialized()


def test_measure_on_is_checked() -> None:
    from optim.executor import check_measure_on, label_selector
    from optim.experiment import ExperimentSpec

    assert check_measure_on(" optim-measure=yes ", "ray") == "optim-measure=yes"
    assert label_selector("example.com/measure=") == {"example.com/measure": ""}
    assert label_selector("per-node") is label_selector("driver") is None
    with pytest.raises(ConfigError, match="driver, per-node, or a Ray node label KEY=VALUE"):
        check_measure_on("a=b=c", "ray")
    with pytest.raises(ConfigError, match="only candidates made on Ray"):
        ExperimentSpec(model=MODEL, data="sample", measure_on="per-node").validate_run()


def test_a_quantized_candidate_sent_by_a_worker_keeps_its_parameter_counts(load_sample, ctx_for,
                                                                          tmp_path: Path) -> None:
    """What a Ray task sends back is TorchScript; its packed int8 weights still count as parameters."""
    from optim.evaluation.size import count_params
    from optim.executor import pack, unpack
    from optim.registry import get

    baseline, splits = load_sample("digits-mlp")
    q = get("quantize-dynamic")
    (cand,) = q.run(baseline, q.config(), ctx_for(splits))
    back = unpack(pack(cand, tmp_path / "out", "m0"), tmp_path / "back")
    assert type(back.model).__name__ == "RecursiveScriptModule"
    assert count_params(back) == count_params(cand) == (50610, 49033)


def test_bad_executor_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from optim.executor import check_executor

    with pytest.raises(ConfigError, match="ray://HOST:PORT"):
        check_executor("dask")
    assert check_executor(" ray://127.0.0.1:10001 ") == "ray://127.0.0.1:10001"
    monkeypatch.setitem(sys.modules, "grpc", None)  # Ray without its client extra: import grpc fails
    with pytest.raises(OptimError, match=r"Ray Client\) needs grpc.*pip install 'optim\[ray-client\]'"):
        check_executor("ray://127.0.0.1:10001")


def test_run_settings_in_the_sidebar_name_the_executor_and_mlflow() -> None:
    """The sidebar draws every RunSettings field marked for the UI: executor and MLflow are text fields."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string("from app.components import sidebar\nsidebar.render()", default_timeout=60).run()
    assert not at.exception
    fields = {w.key: (w.label, w.value) for w in at.sidebar.text_input}
    assert fields["executor"] == ("Executor (local, ray, ray://HOST:PORT)", "local")
    assert fields["mlflow"] == ("MLflow tracking URI", "")
    assert fields["measure_on"] == ("Measure on (driver, per-node, KEY=VALUE node label)", "driver")
