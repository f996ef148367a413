"""Candidate: a runnable model (torch module or ONNX Runtime session), its input transform and
its lineage. Candidates are never mutated: techniques call :meth:`Candidate.derive`.
"""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Iterable, Mapping

import numpy as np

from optim.dataset import Task


@dataclass(frozen=True)
class Step:
    """One technique applied with one config: an element of a candidate's lineage."""

    technique: str
    config: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""  # e.g. "sparsity=0.9" for one point of a sweep

    def spec(self) -> str:
        from optim.recipe import format_step

        return format_step(self.technique, self.config)


class OnnxModel:
    """An ONNX model held as bytes, with ONNX Runtime sessions made on demand per thread count.

    Holding bytes (not a path) keeps the candidate self-contained and picklable between the
    worker and the store.
    """

    def __init__(self, model_bytes: bytes, providers: Iterable[str] | None = None,
                 graph_optimization: str = "all") -> None:
        self.model_bytes = bytes(model_bytes)
        self.providers = tuple(providers or ("CPUExecutionProvider",))
        self.graph_optimization = graph_optimization
        self._sessions: dict[int, Any] = {}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_sessions"] = {}
        return state

    def __deepcopy__(self, memo: dict) -> "OnnxModel":
        return OnnxModel(self.model_bytes, self.providers, self.graph_optimization)

    def session(self, threads: int = 1) -> Any:
        if threads not in self._sessions:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            opts.graph_optimization_level = {
                "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            }[self.graph_optimization]
            opts.log_severity_level = 3
            self._sessions[threads] = ort.InferenceSession(
                self.model_bytes, sess_options=opts, providers=list(self.providers)
            )
        return self._sessions[threads]

    def run(self, X: np.ndarray, threads: int = 1) -> np.ndarray:
        sess = self.session(threads)
        inp = sess.get_inputs()[0]
        x = X.astype(_ORT_DTYPES.get(inp.type, np.float32), copy=False)
        return np.asarray(sess.run(None, {inp.name: x})[0])

    def proto(self) -> Any:
        import onnx

        return onnx.load_model_from_string(self.model_bytes)


_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
               "tensor(float16)": np.float16, "tensor(int64)": np.int64}


class _ScriptBytes:
    """A TorchScript module held as ``torch.jit.save`` bytes while a Candidate is pickled."""

    def __init__(self, module: Any) -> None:
        import torch

        buf = io.BytesIO()
        torch.jit.save(module, buf)
        self.data = buf.getvalue()
        self.training = bool(getattr(module, "training", False))

    @staticmethod
    def wanted(value: Any) -> bool:
        import torch

        return isinstance(value, torch.jit.ScriptModule)

    def load(self) -> Any:
        import torch

        return torch.jit.load(io.BytesIO(self.data)).train(self.training)


@dataclass(frozen=True, eq=False)
class Candidate:
    """A model variant that can be measured, stored and exported.

    ``model`` takes ``transform(raw features)``; ``transform`` is a torch module (scaling, feature
    selection, PCA) or None. ONNX candidates never carry a transform: converting to ONNX bakes
    it into the graph. ``info`` holds facts a technique wants in the results (learning curve,
    kept features, exit distribution, a ``macs`` override, a ``size_file`` naming the entry of
    ``extra_files`` that is the shippable model).
    """

    model: Any
    task: Task
    input_shape: tuple[int, ...]
    num_outputs: int
    lineage: tuple[Step, ...] = ()
    transform: Any = None
    info: Mapping[str, Any] = field(default_factory=dict)
    extra_files: Mapping[str, bytes] = field(default_factory=dict)
    feature_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "info", MappingProxyType(dict(self.info)))
        object.__setattr__(self, "extra_files", MappingProxyType(dict(self.extra_files)))

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["info"] = dict(self.info)
        state["extra_files"] = dict(self.extra_files)
        # TorchScript modules (an uploaded .pt) refuse to pickle: carry them as torch.jit.save bytes.
        for key in ("model", "transform"):
            if _ScriptBytes.wanted(state.get(key)):
                state[key] = _ScriptBytes(state[key])
        return state

    def __setstate__(self, state: dict) -> None:
        for key in ("model", "transform"):
            if isinstance(state.get(key), _ScriptBytes):
                state[key] = state[key].load()
        self.__dict__.update(state)
        self.__post_init__()

    # --- what it is -------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """``"onnx"`` for an ONNX Runtime candidate, else ``"torch"``."""
        return "onnx" if isinstance(self.model, OnnxModel) else "torch"

    @property
    def recipe(self) -> str:
        from optim.recipe import format_recipe

        return format_recipe((s.technique, s.config) for s in self.lineage)

    @property
    def is_tabular(self) -> bool:
        return len(self.input_shape) == 1

    # --- deriving ---------------------------------------------------------------------------
    def clone_module(self) -> Any:
        """A deep copy of the torch model, to modify without touching this candidate."""
        if self.kind != "torch":
            raise TypeError("clone_module() is for torch candidates")
        return copy.deepcopy(self.model)

    def derive(self, step: Step, *, model: Any = None, transform: Any = ...,
               info: Mapping[str, Any] | None = None, keep_info: bool = False,
               extra_files: Mapping[str, bytes] | None = None, **changes: Any) -> "Candidate":
        """A new candidate made from this one by ``step``; this one is left as it was."""
        new_info = dict(self.info) if keep_info else {}
        new_info.update(info or {})
        return replace(
            self,
            model=self.model if model is None else model,
            transform=self.transform if transform is ... else transform,
            lineage=self.lineage + (step,),
            info=new_info,
            extra_files=dict(extra_files or {}),
            **changes,
        )

    # --- running ----------------------------------------------------------------------------
    def torch_module(self) -> Any:
        """The whole torch pipeline (transform then model) as one module taking raw features."""
        import torch.nn as nn

        if self.kind != "torch":
            raise TypeError("torch_module() is for torch candidates")
        if self.transform is None:
            return self.model
        return nn.Sequential(self.transform, self.model)

    def predict(self, X: np.ndarray, batch_size: int = 256, threads: int | None = None) -> np.ndarray:
        """Raw model outputs (logits for classification) for raw features ``X``."""
        X = np.asarray(X, dtype=np.float32)
        outs = []
        if self.kind == "onnx":
            for i in range(0, len(X), batch_size):
                outs.append(self.model.run(X[i:i + batch_size], threads or 1))
            return np.concatenate(outs) if outs else np.zeros((0, self.num_outputs), np.float32)
        import torch

        module = self.torch_module()
        module.eval()
        old = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            with torch.inference_mode():
                for i in range(0, len(X), batch_size):
                    out = module(torch.from_numpy(X[i:i + batch_size]))
                    outs.append(out.float().numpy())
        finally:
            torch.set_num_threads(old)
        return np.concatenate(outs) if outs else np.zeros((0, self.num_outputs), np.float32)

    def serialize(self) -> tuple[str, bytes]:
        """``(file name, bytes)`` of the model as it would be shipped; its size is ``size_bytes``.

        Torch candidates are TorchScript (traced on one sample of the input shape, so quantized
        and pruned modules serialize as they run); ONNX candidates are their ONNX bytes. A
        technique with its own shippable encoding (Huffman) names it in ``info["size_file"]``.
        """
        size_file = self.info.get("size_file")
        if size_file:
            return size_file, bytes(self.extra_files[size_file])
        if self.kind == "onnx":
            return "model.onnx", self.model.model_bytes
        return "model.pt", torchscript_bytes(self.torch_module(), self.input_shape)


def torchscript_bytes(module: Any, input_shape: tuple[int, ...]) -> bytes:
    """TorchScript bytes of ``module``: scripted when possible (keeps control flow), else traced."""
    import warnings

    import torch

    module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            scripted = torch.jit.script(module)
        except Exception:
            example = torch.zeros((1, *input_shape), dtype=torch.float32)
            with torch.no_grad():
                scripted = torch.jit.trace(module, example, check_trace=False)
        buf = io.BytesIO()
        torch.jit.save(scripted, buf)
    return buf.getvalue()
