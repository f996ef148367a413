"""Export a candidate of a finished run as ONNX, TorchScript or safetensors, with a model card.

Every export takes the dataset's raw features: the candidate's transform (scaling, selected
features, PCA) is part of the exported graph. An ONNX export is checked with ``onnx.checker`` and
against the PyTorch outputs within a stated tolerance before it is written.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from optim.candidate import Candidate, is_quantized_module, torchscript_bytes
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


#: Row statuses whose candidate the run saved.
MEASURED = ("ok", "invalid")
#: A candidate id as the runner writes it (c0 is the baseline): nothing else is ever joined to a path.
CANDIDATE_ID = re.compile(r"^c[0-9]{1,6}$")


def run_id_of(run_dir: str | Path) -> str:
    """The run id recorded in ``run_dir/run.json``, or an InputError when the folder is not a run."""
    run_dir = Path(run_dir)
    try:
        run_id = json.loads((run_dir / "run.json").read_text()).get("run_id")
    except (OSError, ValueError, AttributeError):
        run_id = None
    if not isinstance(run_id, str) or not run_id:
        raise InputError(f"{str(run_dir)!r} is not a run folder (no readable run.json with a run id).",
                         hint="Pass the --out folder of `optim run`, or a run id from `optim runs`.")
    return run_id


def candidate_ids(run_dir: str | Path) -> list[str]:
    """The ids of the candidates the run saved: ``results.json`` rows with status ``ok`` or
    ``invalid`` (made and measured, outputs flagged); failed and cancelled rows have no model."""
    return [r["candidate_id"] for r in _rows(Path(run_dir))
            if isinstance(r, dict) and r.get("status") in MEASURED and isinstance(r.get("candidate_id"), str)
            and CANDIDATE_ID.match(r["candidate_id"])]


def load_run_candidate(run_dir: str | Path, candidate_id: str, *, run_id: str | None = None) -> Candidate:
    """The candidate ``candidate_id`` that ``optim run`` saved in ``run_dir``.

    ``candidate_id`` must be one of the run's recorded candidates; with ``run_id`` the folder must
    belong to that run. The candidate is rebuilt from its manifest and TorchScript / ONNX /
    torch.export / safetensors files: nothing in the folder is unpickled.
    """
    from optim.candidate import load_candidate

    run_dir = Path(run_dir)
    folder_run = run_id_of(run_dir)
    if run_id is not None and folder_run != run_id:
        raise InputError(f"{str(run_dir)!r} holds run {folder_run}, not run {run_id} (was its folder reused?).",
                         hint="Export from the folder of the run you mean (see 'optim runs').")
    known = candidate_ids(run_dir)
    if not isinstance(candidate_id, str) or candidate_id not in known:
        raise InputError(
            f"--candidate {str(candidate_id)[:40]!r}: not a measured candidate of run {folder_run}"
            + (f"; candidates there: {', '.join(known)}." if known else "; it has no measured candidate."),
            hint="Pick an id from the candidate_id column of its results.csv.")
    cand, manifest = load_candidate(run_dir / "candidates" / candidate_id)
    if (manifest.get("candidate_id"), manifest.get("run_id")) != (candidate_id, folder_run):
        raise InputError(f"candidates/{candidate_id} in {str(run_dir)!r} was written by run "
                         f"{manifest.get('run_id')!r} as {manifest.get('candidate_id')!r}, not by run {folder_run}.",
                         hint="The folder mixes runs; run the experiment again into a new --out folder.")
    return cand


def display_ref(ref: Any, labels: dict[str, str] | None = None) -> str:
    """A model or data reference as its user knows it: the upload's own file name (``labels``:
    stored path → name given), ``wine-mlp`` for ``sample:wine-mlp``, else the file's name."""
    ref = str(ref or "")
    if labels and ref in labels:
        return str(labels[ref])
    if ref.startswith("sample:"):
        return ref.split(":", 1)[1] or "sample"
    return Path(ref).name or ref


def _slug(text: str, keep: str) -> str:
    out = re.sub(rf"[^A-Za-z0-9{re.escape(keep)}]+", "_", text).strip("_.")
    return out or "model"


def export_name(model: str, recipe: str, fmt: str) -> str:
    """The exported file's name after the model and the recipe: ``wine_mlp-quantize-static.onnx``
    (``model`` as :func:`display_ref` gives it; at most 120 characters, file-system safe)."""
    if fmt not in SUFFIX:
        raise ExportError(f"format={fmt!r}: unknown; allowed: {', '.join(FORMATS)}.")
    stem = _slug(Path(model).stem if Path(model).suffix else model, "")
    rec = _slug(str(recipe or "baseline").replace(":", "_").replace("=", ""), "+.=-")
    return f"{stem}-{rec}"[:120] + SUFFIX[fmt]


def export_formats(run_dir: str | Path, candidate_id: str, *, run_id: str | None = None) -> dict[str, str | None]:
    """For each format, None when the candidate can be exported to it, else why not (the reason
    the export would fail with, known before any conversion), so a page can disable the choice
    before the user clicks."""
    return candidate_formats(load_run_candidate(run_dir, candidate_id, run_id=run_id))


def candidate_formats(cand: Candidate) -> dict[str, str | None]:
    """For each format, None when ``cand`` can be exported to it, else why not (see :func:`export_formats`)."""
    if cand.kind == "onnx":
        from optim.parent_runtime import pytorch_hint

        why = "this candidate is an ONNX Runtime model: export it as ONNX." + pytorch_hint(cand)
        return {"onnx": None, "torchscript": why, "safetensors": why}
    module = cand.torch_module()
    out: dict[str, str | None] = {"onnx": None, "torchscript": None, "safetensors": None}
    if is_quantized_module(module):
        out["onnx"] = ("this candidate uses PyTorch int8 kernels, which ONNX cannot express (export it as "
                       "TorchScript, or use quantize-dynamic:backend=onnxruntime for an int8 ONNX model).")
        out["safetensors"] = ("this candidate holds PyTorch quantized tensors, which safetensors cannot store "
                              "(export it as TorchScript).")
    elif _has_dtype(module, "bfloat16"):
        out["onnx"] = ("this candidate computes in bfloat16, which ONNX Runtime's CPU provider has no kernels "
                       "for (export it as TorchScript, or run half:dtype=fp16 for an fp16 ONNX model).")
    return out


def _rows(run_dir: Path) -> list[dict[str, Any]]:
    try:
        rows = json.loads((run_dir / "results.json").read_text())
    except (OSError, ValueError):
        return []
    return rows if isinstance(rows, list) else []


def check_out_file(out_path: str | Path, *, force: bool = False) -> tuple[Path, Path, Path]:
    """``(model, card.json, card.md)`` paths for an export to ``out_path``, or an ExportError: a
    folder, an existing file (unless ``force``) or a place that cannot be written is refused
    before any work."""
    out = Path(out_path).expanduser()
    if out.is_dir() or str(out_path).endswith(("/", "\\")):
        raise ExportError(f"--out {str(out_path)!r} is a folder; it needs a file name.",
                          hint=f"e.g. --out {out / 'model.onnx'}")
    cards = (out.with_name(out.stem + ".card.json"), out.with_name(out.stem + ".card.md"))
    existing = [p for p in (out, *cards) if p.exists() or p.is_symlink()]
    if existing and not force:
        raise ExportError(f"{', '.join(str(p) for p in existing)} already exist(s); not overwritten.",
                          hint="Pass --force (force=True) to overwrite, or choose another --out.")
    for p in existing:
        if p.is_dir():
            raise ExportError(f"{str(p)!r} is a folder; it cannot be overwritten by an export.",
                              hint="Choose another --out.")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ExportError(f"cannot create the folder {str(out.parent)!r} for --out: {err.strerror or err}.",
                          hint="Choose an --out in a folder you can write.") from None
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write in {str(out.parent)!r} (permission denied).",
                          hint="Choose an --out in a folder you can write.")
    return out, cards[0], cards[1]


def _write(path: Path, data: bytes) -> None:
    try:
        if path.is_symlink():  # replace a link rather than write through it
            path.unlink()
        path.write_bytes(data)
    except OSError as err:
        raise ExportError(f"cannot write {str(path)!r}: {err.strerror or err}.",
                          hint="Choose an --out in a folder you can write.") from None


def export_candidate(run_dir: str | Path, candidate_id: str, fmt: str, out_path: str | Path,
                     *, run_id: str | None = None, force: bool = False, check_rows: int = 64) -> ExportResult:
    """Write candidate ``candidate_id`` of ``run_dir`` as ``fmt`` to ``out_path``, plus its card.

    With ``run_id`` the folder must belong to that run. An existing ``out_path`` (or its
    ``.card.json`` / ``.card.md``) is refused unless ``force``.
    """
    if fmt not in FORMATS:
        raise ExportError(f"format={fmt!r}: unknown; allowed: {', '.join(FORMATS)}.")
    out, card_json, card_md = check_out_file(out_path, force=force)
    run_dir = Path(run_dir)
    cand = load_run_candidate(run_dir, candidate_id, run_id=run_id)
    X, source = _check_inputs(run_dir, cand, check_rows)
    data, check = export_bytes(cand, fmt, X, source=source,
                               fresh=lambda: load_run_candidate(run_dir, candidate_id, run_id=run_id))
    _write(out, data)
    row = next((r for r in _rows(run_dir) if r.get("candidate_id") == candidate_id), {})
    card = model_card(run_dir, cand, row, fmt, out, check)
    from optim.store import to_json

    _write(card_json, json.dumps(json.loads(to_json(card)), indent=2).encode())
    _write(card_md, card_markdown(card).encode())
    return ExportResult(out, card_md, card_json, check)


def export_bytes(cand: Candidate, fmt: str, X: np.ndarray, *, source: str,
                 fresh: Callable[[], Candidate]) -> tuple[bytes, str]:
    """``(file bytes, what the check found)``: ``cand`` written as ``fmt``, what
    :func:`export_candidate` writes. An ONNX or TorchScript export is checked against ``cand`` on
    the rows ``X`` (``source`` says what they are, for the card) and refused when it differs;
    ``fresh`` loads another copy of the candidate for the ONNX converter to consume. An ExportError
    says why a candidate cannot be written in ``fmt``."""
    if fmt == "onnx":
        return _onnx(cand, X, source, fresh)
    if fmt == "torchscript":
        return _torchscript(cand, X, source)
    if fmt == "safetensors":
        return _safetensors(cand)
    raise ExportError(f"format={fmt!r}: unknown; allowed: {', '.join(FORMATS)}.")


def _check_inputs(run_dir: Path, cand: Candidate, n: int) -> tuple[np.ndarray, str]:
    """``(rows, what they are)``: the run's test rows when its dataset can be reloaded, else random
    inputs of the right shape. Only the dataset is read (never the model the run.json names)."""
    try:
        from optim.io.datasets import load_dataset
        from optim.settings import ExperimentSpec

        spec = ExperimentSpec.from_dict(json.loads((run_dir / "run.json").read_text())["spec"])
        data = spec.data
        if spec.model.startswith("sample:") and data in ("", "sample"):
            from optim.io.models import list_samples

            name = spec.model.split(":", 1)[1]
            data = next(s["dataset"] for s in list_samples() if s["name"] == name)
        X = np.asarray(load_dataset(data, target=spec.target, task=spec.task).splits().test.X[:n], np.float32)  # type: ignore[arg-type]
        if X.shape[1:] == tuple(cand.input_shape) and len(X):
            return X, f"{len(X)} test rows"
    except Exception:  # the data moved or is gone: random inputs still check the conversion
        pass
    return np.random.default_rng(0).random((n, *cand.input_shape), dtype=np.float32), f"{n} random inputs"


def _onnx(cand: Candidate, X: np.ndarray, source: str, fresh: Callable[[], Candidate]) -> tuple[bytes, str]:
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
    if is_quantized_module(module):
        raise ExportError(
            f"candidate {cand.recipe!r} uses PyTorch int8 kernels, which ONNX cannot express.",
            hint="Export it as TorchScript, or use quantize-dynamic:backend=onnxruntime / quantize-static for an int8 "
                "ONNX model.",
        )
    if _has_dtype(module, "bfloat16"):
        raise ExportError(
            f"candidate {cand.recipe!r} computes in bfloat16, which ONNX Runtime's CPU provider has no "
            f"kernels for (an ONNX file of it would not run).",
            hint="Export it as TorchScript (keeps bf16), or run half:dtype=fp16 for an fp16 ONNX model.")
    try:
        # The converter may leave a TorchScript module unusable afterwards (its graph executor then
        # fails on inference tensors, and a deepcopy shares it): convert a separately loaded copy.
        data = torch_to_onnx_bytes(fresh().torch_module(), cand.input_shape)
        diff = check_onnx_matches(data, module, X, atol=ATOL, rtol=RTOL)
    except ExportError as err:
        if "differ" not in err.message or err.hint:
            raise
        why = (" (fp16 rounds differently in ONNX Runtime and PyTorch)" if _has_dtype(module, "float16") else "")
        raise ExportError(err.message.rstrip(".") + why + ".",
                          hint="Export it as TorchScript, which runs exactly this candidate, or export its float32 "
                               "parent as ONNX.") from None
    except Exception as err:  # the converter or ONNX Runtime failed in a way optim does not know
        raise ExportError(f"candidate {cand.recipe!r} could not be converted to ONNX ({type(err).__name__}: "
                          f"{str(err).strip().splitlines()[0][:200] if str(err).strip() else ''}).",
                          hint="Export it as TorchScript instead.") from None
    return data, (f"onnx.checker passed; ONNX Runtime matches PyTorch on {source}: "
                  f"max |diff| = {diff:.2g} (tolerance atol={ATOL:g}, rtol={RTOL:g}).")


def _torchscript(cand: Candidate, X: np.ndarray, source: str) -> tuple[bytes, str]:
    import io

    import torch

    if cand.kind == "onnx":
        _refuse_onnx(cand)
    module = cand.torch_module()
    try:
        data = torchscript_bytes(module, cand.input_shape)
        loaded = torch.jit.load(io.BytesIO(data))
        with torch.inference_mode():
            want = module(torch.from_numpy(X)).float().numpy()
            got = loaded(torch.from_numpy(X)).float().numpy()
    except Exception as err:
        raise ExportError(f"candidate {cand.recipe!r} could not be written as TorchScript ({type(err).__name__}: "
                          f"{str(err).strip().splitlines()[0][:200] if str(err).strip() else ''}).",
                          hint="Try --format onnx or safetensors.") from None
    diff = float(np.max(np.abs(got - want))) if got.size else 0.0
    if not np.allclose(got, want, atol=ATOL, rtol=RTOL):
        raise ExportError(
            f"the TorchScript model's outputs differ from the original by up to {diff:.3g}; it was not written.",
            hint="Try --format onnx, or safetensors with the architecture of the lineage.",
        )
    return data, f"TorchScript reloaded and matches the candidate on {source}: max |diff| = {diff:.2g}."


def _refuse_onnx(cand: Candidate) -> None:
    from optim.parent_runtime import pytorch_hint

    raise ExportError(f"candidate {cand.recipe!r} is an ONNX Runtime model; export it as onnx.",
                      hint="Pass --format onnx." + pytorch_hint(cand))


def _safetensors(cand: Candidate) -> tuple[bytes, str]:
    from safetensors.torch import save

    if cand.kind == "onnx":
        _refuse_onnx(cand)
    module = cand.torch_module()
    if is_quantized_module(module):
        raise ExportError(f"candidate {cand.recipe!r} holds PyTorch quantized tensors, which safetensors cannot store.",
                          hint="Export it as TorchScript instead.")
    state = {k: v.detach().contiguous().clone() for k, v in module.state_dict().items() if hasattr(v, "detach")}
    return save(state), (f"{len(state)} tensors; load with the architecture of the lineage "
                         f"(model = transform + network) and model.load_state_dict(safetensors.torch.load_file(...)).")


def _has_dtype(module: Any, dtype: str) -> bool:
    return any(str(t.dtype) == f"torch.{dtype}" for t in list(module.parameters()) + list(module.buffers()))


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
        # The names the user knows (an upload's own file name), not the content-hashed upload path.
        "source": {"model": display_ref(spec.get("model"), spec.get("labels")),
                   "data": display_ref(spec.get("data"), spec.get("labels")), "target": spec.get("target")},
        "metrics": {k: row.get(k) for k in METRIC_KEYS if k in row},
        "energy_note": "CodeCarbon estimate unless the method says measured",
        "check": check,
        "environment": run.get("environment", {}),
        "exported": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
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
    lines += [f"{i + 1}. `{s['technique']}` {s['config'] or ''}" for i, s in enumerate(card["lineage"])] or [
        "(baseline)"
    ]
    return "\n".join(lines) + "\n"


def export_to_temp(run_dir: str | Path, candidate_id: str, fmt: str, *, file_name: str | None = None,
                   run_id: str | None = None, replaces: str | Path | None = None) -> ExportResult:
    """:func:`export_candidate` into a new temporary folder, for the dashboard to offer as downloads.

    ``replaces`` is the folder of an earlier call, deleted first (one export folder per session).
    """
    import shutil
    import tempfile

    if replaces and Path(replaces).name.startswith("optim-export-"):
        shutil.rmtree(replaces, ignore_errors=True)
    out_dir = Path(tempfile.mkdtemp(prefix="optim-export-"))
    name = file_name or f"{candidate_id}{SUFFIX[fmt]}"
    return export_candidate(run_dir, candidate_id, fmt, out_dir / name, run_id=run_id)
