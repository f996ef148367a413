"""Variants run in their parent's runtime.

Layer techniques edit an uploaded ONNX model on its editable PyTorch graph
(:attr:`optim.candidate.Candidate.editable`), so what they make is a torch module. Timed in eager
PyTorch next to a parent timed in ONNX Runtime, it would look slower (or faster) because of the
runtime, not the technique: the converted fp32 ResNet-18 runs 1.46× slower in PyTorch than the
original in ONNX Runtime. So once a recipe's steps are done, a torch variant of an ONNX baseline is
exported back to ONNX (the shared fp32 export of the ONNX-based techniques), checked against
PyTorch's outputs on validation rows with ``onnx-runtime``'s tolerance, and run with the parent's
execution providers and graph-optimization level. The lineage shows it as a final ``onnx-runtime``
step, shown as "onnx-runtime (like the upload)", so the recipe a row shows replays it.

Where that cannot be done (PyTorch's int8 or half-precision kernels have no ONNX Runtime
counterpart worth timing, or the export or its check fails) the variant stays in PyTorch and its
row says why and that its latency is not comparable with its parent's (``runtime_mismatch``,
shown as a flag). TorchScript and ``torch.export`` uploads are left alone: their variants run in
PyTorch like their parent.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from optim.candidate import Candidate, OnnxModel, Step
from optim.context import RunContext
from optim.errors import OptimError

#: Row key (from the candidate's info) of a variant timed in another runtime than its parent: the
#: text says which and why; the comparison table flags the row.
MISMATCH = "runtime_mismatch"
#: Row key saying a variant was exported back to run in its parent's runtime.
NOTE = "runtime_note"
#: The technique whose step the lineage gets (it replays the same conversion).
TECHNIQUE = "onnx-runtime"


def in_parent_runtime(cand: Candidate, baseline: Candidate, ctx: RunContext, *, enabled: bool = True) -> Candidate:
    """``cand`` in its parent's runtime: a torch variant of an ONNX ``baseline`` exported back to an
    ONNX Runtime candidate, or the torch variant with ``runtime_mismatch`` saying why it stayed; any
    other candidate as it is. ``enabled=False`` (``--no-parent-runtime``) keeps torch variants, flagged."""
    if baseline.kind != "onnx" or cand.kind != "torch":
        return cand
    if not enabled:
        return _stays(cand, "kept in PyTorch as asked (--no-parent-runtime)")
    why = _not_exported(cand)
    if why:
        return _stays(cand, why)
    from optim.techniques.edge import ATOL, RTOL, export_for_onnx_runtime

    try:
        exported = export_for_onnx_runtime(cand, ctx)
    except OptimError as err:
        return _stays(cand, f"exporting it back to ONNX failed: {err.message}")
    except Exception as err:  # noqa: BLE001 — an exporter bug: the torch variant is still a result
        return _stays(cand, f"exporting it back to ONNX failed: {type(err).__name__}: {str(err)[:200]}")
    diff = exported.max_abs_diff
    parent: OnnxModel = baseline.model
    step = _step(parent)
    ctx.log(f"{cand.recipe}: exported back to ONNX to run in ONNX Runtime like the uploaded model "
            f"(max |Δ| vs PyTorch {diff:.2g})")
    info = {NOTE: f"edited as a PyTorch graph, exported back to ONNX and measured in ONNX Runtime like its "
                  f"parent ({', '.join(parent.providers)}, graph optimization {parent.graph_optimization}); "
                  f"outputs match PyTorch's within {ATOL:g} + {RTOL:g}·|y| (max |Δ| {diff:.2g})",
            "max_abs_diff_vs_torch": diff}
    return cand.derive(step, model=OnnxModel(exported.model_bytes, parent.providers, parent.graph_optimization),
                       transform=None, info=info, keep_info=True, extra_files=cand.extra_files)


def _not_exported(cand: Candidate) -> str | None:
    """Why ``cand`` is not exported back (PyTorch-only kernels), or None."""
    import torch

    from optim.candidate import is_quantized_module

    module = cand.torch_module()
    if is_quantized_module(module):
        return "it runs PyTorch's int8 kernels, which have no ONNX form"
    dtypes = {t.dtype for t in list(module.parameters()) + list(module.buffers()) if t.is_floating_point()}
    half = sorted(str(d).replace("torch.", "") for d in dtypes if d in (torch.float16, torch.bfloat16))
    if half:
        return (f"its {'/'.join(half)} weights would run in ONNX Runtime's CPU provider mostly as casts "
                "around float32 kernels, which says nothing about the technique")
    return None


def _stays(cand: Candidate, why: str) -> Candidate:
    text = f"measured in PyTorch, parent in ONNX Runtime: latency not comparable ({why})"
    return dataclasses.replace(cand, info={**cand.info, MISMATCH: text})


def _step(parent: OnnxModel) -> Step:
    """The ``onnx-runtime`` step that replays the parent's settings (only those not its defaults)."""
    from optim.techniques.edge import PROVIDERS, OnnxRuntime

    config: dict[str, Any] = {}
    if parent.graph_optimization != "all":
        config["graph_optimization"] = parent.graph_optimization
    short = {full: name for name, full in PROVIDERS.items()}.get(parent.providers[0])
    try:
        auto = OnnxRuntime._providers("auto")
    except OptimError:
        auto = ()
    if short and tuple(parent.providers) != tuple(auto):
        config["provider"] = short
    plain = Step(TECHNIQUE, config)
    return Step(TECHNIQUE, config, title=f"{plain.spec()} (like the upload)")


def pytorch_hint(cand: Candidate) -> str:
    """For an export refused because ``cand`` is ONNX: how to get its PyTorch form when it was edited
    in PyTorch and only exported back to run like its parent (else "")."""
    if NOTE not in cand.info:
        return ""
    return (" It was edited as a PyTorch graph and exported back to ONNX to run like the upload: for the "
            "PyTorch model, run the recipe without that last onnx-runtime step and with --no-parent-runtime "
            "(the dashboard: Run settings › Keep ONNX uploads in ONNX Runtime, off).")
