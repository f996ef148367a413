"""MLflow tracking: a real MLflow file store receives one run per candidate, read back with MlflowClient."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from optim.errors import OptimError

mlflow = pytest.importorskip("mlflow", reason="the dev extra installs MLflow (pip install -e '.[dev]')")


@pytest.fixture(autouse=True)
def _file_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # the readers below open the same file store


def _runs(uri: str, run_id: str) -> dict[str, object]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exps = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in exps], filter_string=f"tags.`optim.run_id` = '{run_id}'")
    return {r.data.tags["optim.candidate_id"]: r for r in runs}


def test_every_candidate_is_one_mlflow_run_with_its_metrics(small_run, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from optim.experiment import ExperimentSpec
    from optim.tracking import log_run

    results, store = small_run
    uri = (tmp_path / "mlruns").as_uri()
    spec = store.run(results.run_id)["spec"]
    ids = log_run(uri, results.run_id, ExperimentSpec.from_dict(spec).stored(), results.rows, results.out_dir)
    runs = _runs(uri, results.run_id)
    assert len(ids) == len(results.rows) == len(runs) == 5
    client = MlflowClient(tracking_uri=uri)
    for row in results.rows:
        run = runs[row["candidate_id"]]
        assert run.data.tags["optim.recipe"] == row["recipe"]
        assert run.data.tags["optim.status"] == row["status"]
        assert run.data.params["seed"] == "0" and run.data.params["model"] == "sample:digits-mlp"
        artifacts = sorted(a.path for a in client.list_artifacts(run.info.run_id))
        if row["status"] != "ok":
            assert run.info.status == "FAILED" and run.data.tags["optim.error"] == row["error"]
            assert artifacts == [] and "accuracy" not in run.data.metrics
            continue
        assert run.info.status == "FINISHED"
        # every numeric column is a metric, with the value the results row has
        for key in ("accuracy", "size_bytes", "params", "nonzero_params", "latency_ms_p50_b1", "optimize_s"):
            assert math.isclose(run.data.metrics[key], float(row[key]), rel_tol=1e-9), key
        assert run.data.metrics["pareto"] in (0.0, 1.0)
        cid = row["candidate_id"]
        fmt = run.data.tags["optim.export"]
        suffix = {"onnx": "onnx", "torchscript": "pt"}[fmt]
        assert artifacts == sorted([f"{cid}.{suffix}", f"{cid}.card.md", f"{cid}.card.json"])
        if row["recipe"] == "quantize-dynamic":  # PyTorch int8 kernels: ONNX cannot express them, and says so
            assert fmt == "torchscript" and "int8" in run.data.tags["optim.onnx_not_possible"]
        else:
            assert fmt == "onnx"
        steps = [s["technique"] for s in row["lineage"]]
        assert [run.data.params[f"step{i + 1}.technique"] for i in range(len(steps))] == steps
        assert run.data.tags["optim.parent"] == ("" if cid == "c0" else "c0")
    sparse = next(r for r in results.rows if r["recipe"] == "prune-magnitude:sparsity=0.9")
    assert runs[sparse["candidate_id"]].data.params["step1.sparsity"] == "0.9"
    # the exported ONNX is a model ONNX Runtime runs
    import onnxruntime as ort

    local = client.download_artifacts(runs["c0"].info.run_id, "c0.onnx", str(tmp_path))
    assert ort.InferenceSession(local).get_inputs()[0].shape[-1] == 64


def test_run_with_mlflow_logs_each_candidate(tmp_path: Path) -> None:
    from optim.experiment import ExperimentSpec, run_experiment
    from optim.store import Store
    from tests.conftest import FAST

    uri = (tmp_path / "mlruns").as_uri()
    spec = ExperimentSpec(model="sample:digits-mlp", data="sample", recipes=["prune-magnitude:sparsity=0.5"],
                          mlflow=uri, name="mlflow-test", **FAST)
    # The Python API may name any file store (external_storage=True, as optim run does).
    results = run_experiment(spec, store=Store(tmp_path / "o.db"), out_dir=tmp_path / "run", external_storage=True)
    runs = _runs(uri, results.run_id)
    assert sorted(runs) == ["c0", "c1"]
    for row in results.rows:
        assert runs[row["candidate_id"]].data.metrics["accuracy"] == pytest.approx(row["accuracy"], rel=1e-12)
        assert runs[row["candidate_id"]].data.metrics["size_bytes"] == row["size_bytes"]
    assert mlflow.MlflowClient(uri).get_experiment_by_name("mlflow-test") is not None


def test_missing_mlflow_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from optim.tracking import check_uri

    monkeypatch.setitem(sys.modules, "mlflow", None)  # what an install without the extra sees
    with pytest.raises(OptimError, match=r"optim\[mlflow\]"):
        check_uri("file:///tmp/mlruns")


def test_bad_uri_is_refused_before_the_run() -> None:
    from optim.cli import main

    code = main(["run", "--model", "sample:digits-mlp", "--data", "sample", "--mlflow", "mlruns-folder"])
    assert code == 2


def test_dashboard_mlflow_uri_stays_in_optim_home_or_names_a_server(optim_home: Path, tmp_path: Path) -> None:
    """A URI typed in the dashboard (no external_storage) writes only under OPTIM_HOME."""
    from optim.tracking import check_uri

    inside = (optim_home / "mlruns").as_uri()
    assert check_uri(inside, inside=optim_home) == inside
    assert check_uri("http://127.0.0.1:5000", inside=optim_home) == "http://127.0.0.1:5000"
    for uri in ((tmp_path / "elsewhere").as_uri(), f"file://{optim_home}/../escape", "postgresql://u:pw@db/x"):
        with pytest.raises(OptimError, match="from the dashboard, a file store inside") as err:
            check_uri(uri, inside=optim_home)
        assert "pw" not in str(err.value)
