"""Export a candidate of a finished run as ONNX, TorchScript or safetensors, with a model card.

Every export takes the dataset's raw features: the candidate's transform (scaling, selected
features, PCA) is part of the exported graph. An ONNX export is checked with ``onnx.checker`` and
against the PyTorch outputs within a stated tolerance before it is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from optim.candidate import Candidate, torchscript_bytes
from optim.errors import ExportError, InputError

Format = Literal["onnx", "torchscript", "safetensors"]
FORMATS: tuple[str, ...] = ("onnx", "torchscript", "safetensors")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}
#: Tolerance of the ONNX-vs-PyTorch check (float32 graphs; int8 graphs are not compared).
ATOL, RTOL = 1e-4, 1e-3


@dataclass(frozen=True)
class ExportResult:
    path: Path
    card_md: Path
    card_json: Path
    check: str


def load_run_candidate(run_dir: str | Path, candidate_id: str) -> Candidate:
    """The candidate ``candidate_id`` saved by ``optim run`` in ``run_dir``.

    The file is optim's own artifact (written by the run), not an upload.
    """
    import torch

    folder = Path(run_dir) / "candidates" / candidate_id
    path = folder / "candidate.pt"
    if not path.is_file():
        known = sorted(p.name for p in (Path(run_dir) / "candidates").glob("*")) if (Path(run_dir) / "candidates").is_dir() else []
        raise InputError(
            f"no candidate {candidate_id!r} in run folder {str(run_dir)!r}"
            + (f"; candidates there: {', '.join(known)}." if known else "; is this a folder written by `optim run`?")
        )
    try:
        return torch.load(path, weights_only=False)
    except Exception as err:
        raise InputError(f"cannot read {path}: {type(err).__name__}: {err}") from None


def _rows(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "results.json"
    return json.loads(path.read_text()) if path.is_file() else []


def export_candidate(run_dir: str | Path, candidate_id: str, fmt: str, out_path: str | Path,
                     *, check_rows: int = 64) -> ExportResult:
    """Write candidate ``candidate_id`` of ``run_dir`` as ``fmt`` to ``out_path``, plus its card."""
    if fmt not in FORMATS:
        raise ExportError(f"format={fmt!r}: unknown; allowed: {', '.join(FORMATS)}.")
    run_dir = Path(run_dir)
    cand = load_run_candidate(run_dir, candidate_id)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    X = _check_inputs(run_dir, cand, check_rows)
    if fmt == "onnx":
        data, check = _onnx(cand, X)
    elif fmt == "torchscript":
        data, check = _torchscript(cand, X)
    else:
        data, check = _safetensors(cand)
    out.write_bytes(data)
    row = next((r for r in _rows(run_dir) if r.get("candidate_id") == candidate_id), {})
    card = model_card(run_dir, cand, row, fmt, out, check)
    card_json = out.with_name(out.stem + ".card.json")
    card_md = out.with_name(out.stem + ".card.md")
    from optim.store import to_json

    card_json.write_text(json.dumps(json.loads(to_json(card)), indent=2))
    card_md.write_text(card_markdown(card))
    return ExportResult(out, card_md, card_json, check)


def _check_inputs(run_dir: Path, cand: Candidate, n: int) -> np.ndarray:
    """Real test rows when the run's data can be reloaded, else random inputs of the right shape."""
    try:
        from optim.experiment import ExperimentSpec, load_inputs

        spec = ExperimentSpec.from_dict(json.loads((run_dir / "run.json").read_text())["spec"])
        _, splits = load_inputs(spec)
        return np.asarray(splits.test.X[:n], np.float32)
    except Exception:
        return np.random.default_rng(0).random((n, *cand.input_shape), dtype=np.float32)


def _onnx(cand: Candidate, X: np.ndarray) -> tuple[bytes, str]:
    import onnx

    from optim.onnx_convert import check_onnx_matches, torch_to_onnx_bytes

    if cand.kind == "onnx":
        data = cand.model.model_bytes
        try:
            onnx.checker.check_model(onnx.load_model_from_string(data))
        except Exception as err:
            raise ExportError(f"the candidate's ONNX model fails onnx.checker: {err}") from None
        return data, "ONNX Runtime candidate written as is; onnx.checker passed."
    module = cand.torch_module()
    if _is_quantized_torch(module):
        raise ExportError(
            f"candidate {cand.recipe!r} uses PyTorch int8 kernels, which ONNX cannot express.",
            hint="Export it as TorchScript, or use quantize-dynamic:backend=onnxruntime / quantize-static for an int8 ONNX model.",
        )
    data = torch_to_onnx_bytes(module, cand.input_shape)
    diff = check_onnx_matches(data, module, X, atol=ATOL, rtol=RTOL)
    return data, (f"onnx.checker passed; ONNX Runtime matches PyTorch on {len(X)} rows: "
                  f"max |diff| = {diff:.2g} (tolerance atol={ATOL:g}, rtol={RTOL:g}).")


def _torchscript(cand: Candidate, X: np.ndarray) -> tuple[bytes, str]:
    import io

    import torch

    if cand.kind == "onnx":
        raise ExportError(f"candidate {cand.recipe!r} is an ONNX Runtime model; export it as onnx.")
    module = cand.torch_module()
    data = torchscript_bytes(module, cand.input_shape)
    loaded = torch.jit.load(io.BytesIO(data))
    with torch.inference_mode():
        want = module(torch.from_numpy(X)).float().numpy()
        got = loaded(torch.from_numpy(X)).float().numpy()
    diff = float(np.max(np.abs(got - want))) if got.size else 0.0
    if not np.allclose(got, want, atol=ATOL, rtol=RTOL):
        raise ExportError(f"the TorchScript model's outputs differ from the original by up to {diff:.3g}; it was not written.")
    return data, f"TorchScript reloaded and matches the candidate on {len(X)} rows: max |diff| = {diff:.2g}."


def _safetensors(cand: Candidate) -> tuple[bytes, str]:
    from safetensors.torch import save

    if cand.kind == "onnx":
        raise ExportError(f"candidate {cand.recipe!r} is an ONNX Runtime model; export it as onnx.")
    module = cand.torch_module()
    if _is_quantized_torch(module):
        raise ExportError(f"candidate {cand.recipe!r} holds PyTorch quantized tensors, which safetensors cannot store.",
                          hint="Export it as TorchScript instead.")
    state = {k: v.detach().contiguous().clone() for k, v in module.state_dict().items() if hasattr(v, "detach")}
    return save(state), (f"{len(state)} tensors; load with the architecture of the lineage "
                         f"(model = transform + network) and model.load_state_dict(safetensors.torch.load_file(...)).")


def _is_quantized_torch(module: Any) -> bool:
    return any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in module.modules())


METRIC_KEYS = ("metric_name", "metric_value", "accuracy", "rmse", "r2", "size_bytes", "params",
               "nonzero_params", "macs", "latency_ms_p50_b1", "latency_ms_p95_b1", "latency_ms_p50_bN",
               "throughput_sps", "threads", "batch_n", "energy_j_per_1k", "co2_g_per_1k", "energy_method")


def model_card(run_dir: Path, cand: Candidate, row: dict[str, Any], fmt: str, out: Path, check: str) -> dict[str, Any]:
    """The card's content: what the model is, how it was made, how it measured, where."""
    import datetime

    run = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    spec = run.get("spec", {})
    return {
        "file": out.name,
        "format": fmt,
        "size_bytes_file": out.stat().st_size if out.exists() else None,
        "candidate_id": row.get("candidate_id"),
        "recipe": cand.recipe,
        "lineage": [{"technique": s.technique, "config": dict(s.config), "label": s.label} for s in cand.lineage],
        "task": cand.task,
        "input": {"shape_per_sample": list(cand.input_shape), "dtype": "float32",
                  "features": list(cand.feature_names),
                  "note": "raw dataset features: every scaling and feature transform is inside the model"},
        "outputs": cand.num_outputs,
        "source": {"model": spec.get("model"), "data": spec.get("data"), "target": spec.get("target")},
        "metrics": {k: row.get(k) for k in METRIC_KEYS if k in row},
        "energy_note": "CodeCarbon estimate unless the method says measured",
        "check": check,
        "environment": run.get("environment", {}),
        "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def card_markdown(card: dict[str, Any]) -> str:
    m = card["metrics"]
    lines = [
        f"# Model card — {card['file']}",
        "",
        f"- **Recipe**: `{card['recipe']}`",
        f"- **Format**: {card['format']} ({card['size_bytes_file']} bytes)",
        f"- **Task**: {card['task']}, {card['outputs']} output(s)",
        f"- **Input**: float32, per-sample shape {card['input']['shape_per_sample']} — {card['input']['note']}",
        f"- **Made from**: model `{card['source']['model']}` on data `{card['source']['data']}`",
        "",
        "## Measured",
        "",
        "| metric | value |",
        "| --- | --- |",
    ]
    for k, v in m.items():
        lines.append(f"| {k} | {v} |")
    env = card.get("environment", {})
    lines += [
        "",
        f"Energy is a {card['energy_note']} ({m.get('energy_method', 'n/a')}).",
        "",
        "## Check",
        "",
        card["check"],
        "",
        "## Environment",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in env.items() if not isinstance(v, (dict, list))]
    lines += ["", "## Lineage", ""]
    lines += [f"{i + 1}. `{s['technique']}` {s['config'] or ''}" for i, s in enumerate(card["lineage"])] or ["(baseline)"]
    return "\n".join(lines) + "\n"


def export_to_temp(run_dir: str | Path, candidate_id: str, fmt: str, *,
                   replaces: str | Path | None = None) -> ExportResult:
    """:func:`export_candidate` into a new temporary folder, for the dashboard to offer as downloads.

    ``replaces`` is the folder of an earlier call, deleted first (one export folder per session).
    """
    import shutil
    import tempfile

    if replaces and Path(replaces).name.startswith("optim-export-"):
        shutil.rmtree(replaces, ignore_errors=True)
    out_dir = Path(tempfile.mkdtemp(prefix="optim-export-"))
    return export_candidate(run_dir, candidate_id, fmt, out_dir / f"{candidate_id}{SUFFIX[fmt]}")
