"""Edge deployment: run the candidate with ONNX Runtime, with a chosen graph optimization level
and execution provider.

ONNX Runtime documentation, "Graph optimizations" (basic: constant folding and redundant-node
elimination; extended: operator fusions such as Conv+BN, GEMM+activation, attention; all: adds
layout optimizations such as NCHWc for the CPU) and "Execution providers".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator

from optim.candidate import Candidate, OnnxModel
from optim.config import TechniqueConfig
from optim.context import RunContext
from optim.errors import ConfigError, ExportError
from optim.registry import register_technique
from optim.techniques.base import Technique

#: Short provider names on the command line → ONNX Runtime's names, in the order ``auto`` prefers.
PROVIDERS: dict[str, str] = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "directml": "DmlExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "dnnl": "DnnlExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
    "cpu": "CPUExecutionProvider",
}

#: Tolerance of the check that ONNX Runtime's outputs match PyTorch's on validation rows.
ATOL = 1e-4
RTOL = 1e-3
#: Validation rows (test rows when there are none) that check runs on.
CHECK_ROWS = 64
#: Opset of a dynamo export when the caller names none (the TorchScript exporter writes 17 at most).
DYNAMO_OPSET = 18


@dataclass(frozen=True)
class CheckedOnnx:
    """A torch candidate exported for ONNX Runtime, its outputs checked against torch's."""

    model_bytes: bytes
    #: Largest |ONNX Runtime − PyTorch| on the check rows (within ``ATOL + RTOL·|y|``).
    max_abs_diff: float
    #: Which exporter made it and why, for the row's info.
    how: str


def export_for_onnx_runtime(candidate: Candidate, ctx: RunContext, *, opset: int | None = None) -> CheckedOnnx:
    """Export torch ``candidate`` (its transform baked into the graph) to ONNX for ONNX Runtime and
    check ONNX Runtime's outputs against PyTorch's on up to :data:`CHECK_ROWS` validation rows.

    The graph is the ONNX-based techniques' shared fp32 export (TorchScript exporter, seconds
    faster, one conversion per parent), at ``opset`` when given. Not for a model whose work depends
    on the data (:func:`data_dependent`): the TorchScript exporter traces it into a graph that
    computes every branch, right but without the saving, where the dynamo exporter keeps them as
    ONNX ``If`` nodes. A shared graph that fails the check is exported again with dynamo and checked
    the same way. Raises ExportError when no graph matches.
    """
    from optim.onnx_convert import check_onnx_matches, torch_to_onnx_bytes
    from optim.techniques.quantization import fp32_module_onnx

    module = candidate.torch_module()
    rows = ctx.data.val.X[:CHECK_ROWS] if len(ctx.data.val) else ctx.data.test.X[:CHECK_ROWS]
    because = data_dependent(candidate)
    if because is None:
        onnx_bytes = fp32_module_onnx(module, candidate.input_shape, opset=opset)
        try:
            diff = check_onnx_matches(onnx_bytes, module, rows, atol=ATOL, rtol=RTOL)
            return CheckedOnnx(onnx_bytes, diff, "shared fp32 export" + (f", opset {opset}" if opset else ""))
        except ExportError:
            because = "the shared fp32 export did not match torch on validation rows"
    opset = opset or DYNAMO_OPSET
    onnx_bytes = torch_to_onnx_bytes(module, candidate.input_shape, opset=opset, exporter="dynamo")
    try:
        diff = check_onnx_matches(onnx_bytes, module, rows, atol=ATOL, rtol=RTOL)
    except ExportError as err:
        raise ExportError(err.message, hint="Keep this candidate in PyTorch, or convert before the step that "
                                            "ONNX cannot represent.") from None
    return CheckedOnnx(onnx_bytes, diff, f"dynamo exporter, opset {opset}: {because}")


def data_dependent(candidate: Candidate) -> str | None:
    """Why ``candidate``'s computation depends on the data (an early-exit network: an EarlyExitNet
    inside, or early exit's average-MACs figure in its info), or None: the one decision that a
    torch candidate goes to ONNX through the dynamo exporter."""
    from optim.techniques._early_exit_net import EarlyExitNet

    module: Any = candidate.torch_module()
    if candidate.info.get("macs") is not None or any(isinstance(m, EarlyExitNet) for m in module.modules()):
        return "its computation depends on the data (early exit): dynamo keeps the branches"
    return None


def installed_providers() -> list[str]:
    """Short names of the execution providers this ONNX Runtime build has (``cpu`` always)."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    return [short for short, full in PROVIDERS.items() if full in available]


class OnnxRuntimeConfig(TechniqueConfig):
    graph_optimization: Literal["disable", "basic", "extended", "all"] = Field(
        "all",
        description="ONNX Runtime graph optimization level: disable, basic (constant folding, "
        "redundant nodes), extended (operator fusions), all (also memory-layout changes).",
        json_schema_extra={"sweep": ["disable", "basic", "extended", "all"]},
    )
    provider: Literal["auto", "tensorrt", "cuda", "rocm", "migraphx", "openvino", "coreml", "directml",
                      "qnn", "dnnl", "xnnpack", "cpu"] = Field(
        "auto",
        description="Execution provider; must be installed (onnxruntime.get_available_providers()). "
        "auto: the first installed of tensorrt, cuda, rocm, ..., cpu. CPU stays as the fallback for "
        "operators the provider lacks.",
    )
    opset: int = Field(18, ge=17, le=21, description="ONNX opset of the converted graph (torch candidates).")

    @field_validator("provider")
    @classmethod
    def _installed(cls, v: str) -> str:
        # Checked when the recipe is parsed, so a run never starts with a provider it cannot use.
        if v != "auto":
            have = installed_providers()
            if v not in have:
                raise ValueError(f"execution provider {v!r} is not installed in this ONNX Runtime; "
                                 f"installed: {', '.join(have)} (e.g. onnxruntime-gpu adds cuda)")
        return v


@register_technique
class OnnxRuntime(Technique[OnnxRuntimeConfig]):
    """Convert to ONNX and run with ONNX Runtime (graph optimization level, execution provider).

    A torch candidate is exported with its transform baked into the graph, and ONNX Runtime's
    outputs are checked against PyTorch's on validation rows (``|Δ| ≤ 1e-4 + 1e-3·|y|``); an ONNX
    candidate is re-wrapped with the new settings.
    """

    name = "onnx-runtime"
    family = "edge"
    Config = OnnxRuntimeConfig
    summary = "Run with ONNX Runtime: graph optimization level and execution provider."
    reference = "ONNX Runtime docs: graph optimizations, execution providers"
    sweep_field = "graph_optimization"

    def apply(self, candidate: Candidate, config: OnnxRuntimeConfig, ctx: RunContext) -> Candidate:
        providers = self._providers(config.provider)
        info: dict = {"graph_optimization": config.graph_optimization, "providers": ",".join(providers),
                      "runtime": "onnxruntime"}
        if candidate.info.get("macs") is not None:
            # The same computation in another runtime: an average-MACs figure (early exit) still holds,
            # and cannot be recounted from a graph whose work sits inside If branches.
            info["macs"] = candidate.info["macs"]
        if candidate.kind == "onnx":
            model = OnnxModel(candidate.model.model_bytes, providers, config.graph_optimization)
            return candidate.derive(self.step(config), model=model, transform=None, info=info)
        try:
            exported = export_for_onnx_runtime(candidate, ctx, opset=config.opset)
        except ExportError as err:
            raise ExportError(f"onnx-runtime: {err.message}", hint=err.hint) from None
        info["onnx_export"] = exported.how
        info["max_abs_diff_vs_torch"] = exported.max_abs_diff
        model = OnnxModel(exported.model_bytes, providers, config.graph_optimization)
        return candidate.derive(self.step(config), model=model, transform=None, info=info)

    @staticmethod
    def _providers(choice: str) -> tuple[str, ...]:
        have = installed_providers()
        if choice == "auto":
            short = have[0] if have else "cpu"
        elif choice not in have:  # config built on another machine (a replayed run)
            raise ConfigError(
                f"onnx-runtime: provider={choice!r} is not installed in this ONNX Runtime; installed: "
                f"{', '.join(have)} (install e.g. onnxruntime-gpu for cuda)."
            )
        else:
            short = choice
        chain = [PROVIDERS[short]]
        if short != "cpu":
            chain.append(PROVIDERS["cpu"])
        return tuple(chain)
