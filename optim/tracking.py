"""Log a finished run to MLflow: one MLflow run per candidate.

``optim run --mlflow URI`` (a file store such as ``file:///srv/mlruns`` or a tracking server
``http://127.0.0.1:5000``) gives each candidate of the run an MLflow run in the experiment
``optim`` (or the run's name): the run settings as params (and the candidate's own technique
settings as ``step1.sparsity``...), every numeric column of its results row as metrics, its
exported ONNX model (TorchScript when ONNX cannot express it; the reason is a tag) and model card as
artifacts, and its lineage as tags. Logging happens after the run is measured, on the driver,
from the rows and files the run folder already holds, so it never changes what was measured.

MLflow is an optional extra (``pip install 'optim[mlflow]'``), imported only here.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from optim.errors import ExportError, OptimError, require_extra

#: MLflow refuses longer param values.
MAX_PARAM_CHARS = 6000
#: Characters MLflow accepts in metric and param names.
_NAME_BAD = re.compile(r"[^A-Za-z0-9_\-. /]")
#: Row keys that are text or structure, not metrics (they go to tags or nowhere).
_NOT_METRICS = {"candidate_id", "lineage", "details"}


def check_uri(uri: str, *, inside: Path | None = None) -> str:
    """``uri`` checked before a run starts: MLflow importable and the URI of a kind it reads.

    ``inside`` (OPTIM_HOME, for a URI typed in the dashboard): a file store must lie in it and a
    database URL is refused — writing elsewhere on this machine, or to a database server, is for
    the command line and the Python API; a tracking server (http/https) is accepted.
    """
    uri = (uri or "").strip()
    if not uri:
        raise OptimError("--mlflow: empty tracking URI.",
                         hint="Give a file store (file:///path/to/mlruns) or a server (http://127.0.0.1:5000).")
    if not re.match(r"^(file|https?|databricks|sqlite|postgresql|mysql)(\+\w+)?:", uri):
        raise OptimError(f"--mlflow {uri!r}: not a tracking URI MLflow reads.",
                         hint="Give file:///absolute/path, http(s)://host:port, or a database URL.")
    if inside is not None:
        from urllib.parse import unquote, urlparse

        scheme = uri.split(":", 1)[0].split("+")[0]
        home = inside.resolve()
        where = Path(unquote(urlparse(uri).path)).resolve() if scheme in ("file", "sqlite") else None
        if scheme not in ("http", "https") and (where is None or not where.is_relative_to(home)):
            raise OptimError(
                f"MLflow tracking URI {uri!r}: from the dashboard, a file store inside {home} or a tracking "
                "server (http://host:port) only.",
                hint=f"Use file://{home}/mlruns or http(s)://host:port here, or optim run --mlflow URI "
                     "for any other store.")
    require_extra("mlflow", "mlflow", feature="--mlflow")
    return uri


def _name(key: str) -> str:
    return _NAME_BAD.sub("_", str(key))[:250]


def params_of(spec: dict[str, Any], row: dict[str, Any]) -> dict[str, str]:
    """The run settings, then the candidate's technique settings (``step1.technique``, ``step1.<key>``)."""
    params: dict[str, str] = {}
    for key, value in spec.items():
        if key in ("labels", "mlflow") or value is None:
            continue
        text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
        params[_name(key)] = text[:MAX_PARAM_CHARS]
    for i, step in enumerate(row.get("lineage") or (), start=1):
        params[f"step{i}.technique"] = str(step.get("technique"))
        for key, value in (step.get("config") or {}).items():
            params[_name(f"step{i}.{key}")] = str(value)[:MAX_PARAM_CHARS]
    return params


def metrics_of(row: dict[str, Any]) -> dict[str, float]:
    """Every numeric column of a results row (booleans as 0/1); NaN and text are left out."""
    import math

    out: dict[str, float] = {}
    for key, value in row.items():
        if key in _NOT_METRICS or isinstance(value, str) or value is None:
            continue
        if isinstance(value, bool):
            out[_name(key)] = float(value)
        elif isinstance(value, (int, float)) and math.isfinite(float(value)):
            out[_name(key)] = float(value)
    return out


def tags_of(run_id: str, row: dict[str, Any]) -> dict[str, str]:
    """Lineage and identity: optim run id, candidate id, recipe, family, status, parent, steps."""
    lineage = row.get("lineage") or []
    tags = {
        "optim.run_id": str(run_id),
        "optim.candidate_id": str(row.get("candidate_id")),
        "optim.recipe": str(row.get("recipe", "")),
        "optim.family": str(row.get("family", "")),
        "optim.status": str(row.get("status", "")),
        # Every variant of a run is made from the run's baseline, c0.
        "optim.parent": "" if row.get("candidate_id") == "c0" else "c0",
        "optim.lineage": json.dumps(lineage, default=str)[:MAX_PARAM_CHARS],
        "mlflow.runName": f"{row.get('candidate_id')} {row.get('recipe', '')}"[:250],
    }
    if row.get("error"):
        tags["optim.error"] = str(row["error"])[:MAX_PARAM_CHARS]
    for key in ("made_on", "measured_on"):  # a Ray node's host and CPU (optim.executor)
        if row.get(key):
            tags[f"optim.{key}"] = str(row[key])
    return tags


def _export(run_dir: Path, cid: str, folder: Path) -> tuple[list[Path], dict[str, str]]:
    """The candidate's exported model and model card (ONNX, else TorchScript), and tags saying which."""
    from optim.export import export_candidate

    try:
        res = export_candidate(run_dir, cid, "onnx", folder / f"{cid}.onnx")
        return [res.path, res.card_md, res.card_json], {"optim.export": "onnx"}
    except ExportError as err:
        why = err.one_line()
    try:
        res = export_candidate(run_dir, cid, "torchscript", folder / f"{cid}.pt")
        return [res.path, res.card_md, res.card_json], {"optim.export": "torchscript",
                                                        "optim.onnx_not_possible": why[:MAX_PARAM_CHARS]}
    except OptimError as err:
        return [], {
            "optim.export": "none",
            "optim.export_error": f"onnx: {why}; torchscript: {err.one_line()}"[:MAX_PARAM_CHARS],
        }


def log_run(uri: str, run_id: str, spec: dict[str, Any], rows: list[dict[str, Any]], run_dir: str | Path,
            experiment: str | None = None) -> list[str]:
    """Log every row of a run as one MLflow run under ``uri``; return the MLflow run ids.

    Candidates whose row is ``ok`` or ``invalid`` get their exported model and card as artifacts;
    failed ones get their error as a tag.
    """
    require_extra("mlflow", "mlflow", feature="--mlflow")
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    if uri.startswith("file:"):
        # MLflow 3 refuses its file store unless opted in; naming a file:// URI is that choice.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=uri)
    name = experiment or spec.get("name") or "optim"
    try:
        found = client.get_experiment_by_name(name)
        exp_id = found.experiment_id if found is not None else client.create_experiment(name)
    except Exception as err:  # a server down, a folder not writable: say where
        raise OptimError(f"MLflow at {uri!r} could not be reached: {type(err).__name__}: {err}",
                         hint="Check the URI and that the tracking server runs; the run's results are saved.") from None
    run_dir = Path(run_dir)
    ids = []
    for row in rows:
        tags = tags_of(run_id, row)
        with tempfile.TemporaryDirectory(prefix="optim-mlflow-") as tmp:
            files: list[Path] = []
            if row.get("status") in ("ok", "invalid"):
                files, export_tags = _export(run_dir, str(row["candidate_id"]), Path(tmp))
                tags.update(export_tags)
            run = client.create_run(exp_id, tags=tags, run_name=tags["mlflow.runName"])
            mid = run.info.run_id
            try:
                now = int(time.time() * 1000)
                client.log_batch(mid, params=[Param(k, v) for k, v in params_of(spec, row).items()],
                                 metrics=[Metric(k, v, now, 0) for k, v in metrics_of(row).items()])
                for path in files:
                    client.log_artifact(mid, str(path))
                client.set_terminated(mid, "FINISHED" if row.get("status") == "ok" else "FAILED")
            except Exception:
                client.set_terminated(mid, "FAILED")
                raise
        ids.append(mid)
    return ids
