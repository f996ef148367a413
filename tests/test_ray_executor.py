"""Ray executor: a local Ray cluster (head + one more node, all on 127.0.0.1) makes the candidates,
this process measures them; the numbers match a local run with the same seed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from optim.errors import ConfigError

# Every Ray address on the loopback interface (read when ray is imported): nothing listens outside.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray", reason="the dev extra installs Ray (pip install -e '.[dev]')")

RECIPES = ["prune-magnitude:sparsity=0.3|0.6|0.9", "quantize-dynamic+prune-magnitude"]


@pytest.fixture(scope="module")
def cluster():
    """A head node and one more worker node (each its own raylet and worker processes), 1 CPU each."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "node_ip_address": "127.0.0.1",
        "object_store_memory": 80 * 1024 * 1024})
    c.add_node(num_cpus=1, node_ip_address="127.0.0.1", object_store_memory=80 * 1024 * 1024)
    c.wait_for_nodes()
    yield c
    c.shutdown()


def test_ray_sweep_matches_local_run(cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from optim.experiment import ExperimentSpec, run_experiment
    from optim.store import Store
    from tests.conftest import FAST

    monkeypatch.setenv("RAY_ADDRESS", cluster.address)
    store = Store(tmp_path / "o.db")
    local = run_experiment(ExperimentSpec(model="sample:digits-mlp", data="sample", recipes=RECIPES, **FAST),
                           store=store, out_dir=tmp_path / "local", queue=False)
    remote = run_experiment(ExperimentSpec(model="sample:digits-mlp", data="sample", recipes=RECIPES,
                                           executor="ray", **FAST),
                            store=store, out_dir=tmp_path / "ray", queue=False)
    assert [r["candidate_id"] for r in remote.rows] == [r["candidate_id"] for r in local.rows] == \
        ["c0", "c1", "c2", "c3", "c4"]
    by_id = {r["candidate_id"]: r for r in local.rows}
    for row in remote.rows:
        want = by_id[row["candidate_id"]]
        assert (row["recipe"], row["status"]) == (want["recipe"], want["status"])
        if row["status"] != "ok":  # pruning an int8 model fails on Ray as it does here, with the same reason
            assert row["error"] == want["error"] and "prune" in row["recipe"]
            continue
        assert row["accuracy"] == want["accuracy"]
        assert row["nonzero_params"] == want["nonzero_params"]
        assert row["size_bytes"] == want["size_bytes"], row["recipe"]
        if row["candidate_id"] != "c0":
            assert "made_on" in row and row["latency_ms_p50_b1"] > 0  # made on Ray, timed here
    assert remote.status == local.status == "partial"
    # both nodes of the cluster, on 127.0.0.1 only
    assert [n.node_ip_address for n in cluster.list_all_nodes()] == ["127.0.0.1", "127.0.0.1"]


def test_bad_executor_is_refused() -> None:
    from optim.executor import check_executor

    with pytest.raises(ConfigError, match="ray://HOST:PORT"):
        check_executor("dask")
