"""Candidate: a runnable model (torch module or ONNX Runtime session), its input transform and
its lineage. Candidates are never mutated: techniques call :meth:`Candidate.derive`.
"""

from __future__ import annotations

import copy
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from optim.dataset import Task


@dataclass(frozen=True)
class Step:
    """One technique applied with one config: an element of a candidate's lineage."""

    technique: str
    config: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""  # e.g. "sparsity=0.9" for one point of a sweep
    #: What a reader sees instead of :meth:`spec` (e.g. "distill (no teacher, control)" for the
    #: control run whose spec is ``distill:alpha=0``); empty: the spec. The spec still replays it.
    title: str = ""

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

    def __deepcopy__(self, memo: dict) -> OnnxModel:
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


class _ExportBytes:
    """A ``torch.export`` program (an uploaded ``.pt2``) held as ``torch.export.save`` bytes while a
    Candidate is pickled: the module ``ExportedProgram.module()`` returns refuses to pickle."""

    def __init__(self, module: Any, input_shape: tuple[int, ...]) -> None:
        self.data = export_program_bytes(module, input_shape)

    @staticmethod
    def wanted(value: Any) -> bool:
        return is_export_module(value)

    def load(self) -> Any:
        return load_export_program(self.data)


def is_export_module(value: Any) -> bool:
    """Whether ``value`` is the module of a ``torch.export`` program (``ExportedProgram.module()``)."""
    try:
        from torch.export._unlift import _StatefulGraphModule
    except ImportError:  # pragma: no cover - older torch
        return False
    return isinstance(value, _StatefulGraphModule)


def export_program_bytes(module: Any, input_shape: tuple[int, ...]) -> bytes:
    """``torch.export.save`` bytes of ``module`` re-exported with a dynamic batch dimension."""
    import warnings

    import torch

    example = (torch.zeros((2, *input_shape), dtype=torch.float32),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = torch.export.Dim("batch", min=1, max=4096)
        program = torch.export.export(module, example, dynamic_shapes=({0: batch},))
        buf = io.BytesIO()
        torch.export.save(program, buf)
    return buf.getvalue()


class _NoTorchLoad:
    """``torch`` as the ``torch.export`` loader sees it, minus arbitrary unpickling.

    ``torch.export.load`` reads weights stored "as pickles" with ``torch.load(weights_only=False)``
    (and falls back to it when the restricted unpickler refuses), and opaque constants with
    ``pickle.loads``: a crafted ``.pt2`` runs code. Seen through this proxy, every ``torch.load``
    is the restricted one and ``pickle.loads`` refuses.
    """

    def __init__(self, torch_module: Any) -> None:
        self._torch = torch_module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._torch, name)

    def load(self, f: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True
        return self._torch.load(f, *args, **kwargs)

    @staticmethod
    def loads(*args: Any, **kwargs: Any) -> Any:
        import pickle

        raise pickle.UnpicklingError("optim does not unpickle objects inside a torch.export program")


_EXPORT_LOAD_LOCK = __import__("threading").Lock()


def load_export_program(data: bytes) -> Any:
    """The runnable module of a ``torch.export.save`` program, loaded without arbitrary unpickling.

    Weights a file stores as pickles go through PyTorch's restricted unpickler (tensors only);
    pickled opaque objects are refused. The module gets ``nn.Module``'s ``train``/``eval`` back.
    """
    import warnings

    import torch
    import torch._export.serde.serialize as serde
    import torch.export.pt2_archive._package as package

    proxy = _NoTorchLoad(torch)
    with _EXPORT_LOAD_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saved = (package.torch, package.pickle, serde.torch)
        # Module-level names of the two loader modules only: nothing else in the process changes.
        # A stand-in module object on purpose: hence the ignores on the assignment.
        package.torch, package.pickle, serde.torch = proxy, proxy, proxy  # type: ignore[assignment]
        try:
            module = torch.export.load(io.BytesIO(bytes(data))).module()
        finally:
            package.torch, package.pickle, serde.torch = saved
    # ExportedProgram.module() replaces train()/eval() with methods that raise: the graph runs as
    # it was exported whatever the flag says. Restoring nn.Module's methods lets candidates call
    # .eval() like any module (export in eval mode so batch norm and dropout are baked for inference).
    for attr in ("train", "eval"):
        if attr in module.__dict__:
            delattr(module, attr)
    return module


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
    #: An editable ``torch.fx`` copy of a compiled ``model`` (TorchScript, ``torch.export``, ONNX)
    #: that reproduces its outputs (optim.io.convert); techniques that edit layers start from it,
    #: while the compiled original is what is measured. Variants never carry one.
    editable: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "info", MappingProxyType(dict(self.info)))
        object.__setattr__(self, "extra_files", MappingProxyType(dict(self.extra_files)))

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["info"] = dict(self.info)
        state["extra_files"] = dict(self.extra_files)
        # TorchScript modules (an uploaded .pt) and torch.export programs (.pt2) refuse to pickle:
        # carry them as torch.jit.save / torch.export.save bytes.
        shapes = {"model": None, "transform": self.input_shape}
        for key in ("model", "transform"):
            if _ScriptBytes.wanted(state.get(key)):
                state[key] = _ScriptBytes(state[key])
            elif _ExportBytes.wanted(state.get(key)):
                shape = shapes[key] or network_input_shape(self)
                state[key] = _ExportBytes(state[key], shape)
        return state

    def __setstate__(self, state: dict) -> None:
        for key in ("model", "transform"):
            if isinstance(state.get(key), (_ScriptBytes, _ExportBytes)):
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
    def title(self) -> str:
        """The recipe as a reader sees it: each step's title where it has one, else its spec."""
        return "+".join(s.title or s.spec() for s in self.lineage) or "baseline"

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
               extra_files: Mapping[str, bytes] | None = None, **changes: Any) -> Candidate:
        """A new candidate made from this one by ``step``; this one is left as it was."""
        new_info = dict(self.info) if keep_info else {}
        new_info.update(info or {})
        changes.setdefault("editable", None)  # the parent's editable copy is not this variant's
        return replace(
            self,
            model=self.model if model is None else model,
            transform=self.transform if transform is ... else transform,
            lineage=self.lineage + (step,),
            info=new_info,
            extra_files=dict(extra_files or {}),
            **changes,
        )

    def for_editing(self) -> Candidate:
        """This candidate with its editable graph as the model (same lineage and info), or itself
        when it has none. Techniques that edit layers run on this; the original is what was measured."""
        if self.editable is None:
            return self
        return replace(self, model=self.editable, editable=None, transform=self.transform)

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


def network_input_shape(cand: Candidate) -> tuple[int, ...]:
    """The per-sample shape ``cand.model`` takes: the raw input shape, or what the transform gives."""
    if cand.transform is None:
        return tuple(cand.input_shape)
    import torch

    with torch.inference_mode():
        out = cand.transform(torch.zeros((1, *cand.input_shape), dtype=torch.float32))
    return tuple(int(d) for d in out.shape[1:])


# --- a candidate as files: what a run folder holds, with no pickle ----------------------------------
#
# candidates/<id>/candidate.json   manifest: identity (run id, candidate id), task, shapes, lineage,
#                                  info, which file holds the network and how the transform is built
# candidates/<id>/network.*        the network: TorchScript (.pt), a torch.export program (.pt2) or ONNX
# candidates/<id>/transform.safetensors   the transform's arrays (scaling, selected columns, PCA)
#
# Reading it back needs no unpickler: TorchScript and ONNX have their own loaders, torch.export
# programs load through load_export_program, arrays through safetensors, the rest is JSON.

MANIFEST = "candidate.json"
MANIFEST_FORMAT = "optim-candidate/1"
#: File names a manifest may name: plain names inside the candidate folder, nothing else.
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_MAX_DIMS, _MAX_DIM = 8, 1 << 24


def _transform_layers() -> dict[str, tuple[Any, tuple[str, ...]]]:
    """Transform layers stored as arrays + JSON: class name → (class, its constructor's buffers)."""
    from optim.archs import PCAProject, SelectColumns, Standardize

    return {"SelectColumns": (SelectColumns, ("idx",)), "PCAProject": (PCAProject, ("mean", "components")),
            "Standardize": (Standardize, ("mean", "std"))}


def _transform_spec(transform: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``(JSON spec, tensors)`` of a transform made of known layers, else None."""
    import torch.nn as nn

    known = _transform_layers()
    sequential = isinstance(transform, nn.Sequential)
    layers = list(transform) if sequential else [transform]
    spec: list[dict[str, Any]] = []
    tensors: dict[str, Any] = {}
    for i, layer in enumerate(layers):
        entry = known.get(type(layer).__name__)
        if entry is None or type(layer) is not entry[0]:
            return None
        for buf in entry[1]:
            tensors[f"{i}.{buf}"] = getattr(layer, buf).detach().cpu().contiguous().clone()
        spec.append({"type": type(layer).__name__})
    return {"format": "layers", "sequential": sequential, "layers": spec, "file": "transform.safetensors"}, tensors


def _network_file(module: Any, input_shape: tuple[int, ...]) -> tuple[str, str, bytes]:
    """``(file name, format, bytes)`` of a torch network: its torch.export program when it came
    as one, else TorchScript (scripted when possible, else traced)."""
    import torch

    if is_export_module(module):
        try:
            return "network.pt2", "torch.export", export_program_bytes(module, input_shape)
        except Exception:  # a program that does not re-export with a dynamic batch: TorchScript below
            pass
    if isinstance(module, torch.jit.ScriptModule):
        buf = io.BytesIO()
        torch.jit.save(module, buf)
        return "network.pt", "torchscript", buf.getvalue()
    return "network.pt", "torchscript", torchscript_bytes(module, input_shape)


def is_quantized_module(module: Any) -> bool:
    """Whether a torch module runs PyTorch's int8 kernels (no ONNX or safetensors form)."""
    for m in module.modules():
        qualified = m._c._type().qualified_name() if hasattr(m, "_c") else type(m).__module__
        if "quantized" in qualified:
            return True
    return False


def _dtypes(module: Any) -> list[str]:
    return sorted({str(t.dtype).replace("torch.", "") for t in
                   list(module.parameters()) + list(module.buffers()) if t.is_floating_point()})


def save_candidate(cand: Candidate, folder: str | Path, *, candidate_id: str, run_id: str) -> dict[str, Any]:
    """Write ``cand`` into ``folder`` as a manifest plus TorchScript / torch.export / ONNX /
    safetensors files (no pickle), with its shipped file (:meth:`Candidate.serialize`) and
    extra files; return the manifest (``shipped_file`` names the shipped file)."""
    import json

    from optim.store import to_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shipped, shipped_bytes = cand.serialize()
    out: dict[str, bytes] = {name: bytes(data) for name, data in cand.extra_files.items()}
    out[shipped] = shipped_bytes
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT, "run_id": run_id, "candidate_id": candidate_id, "kind": cand.kind,
        "task": cand.task, "input_shape": list(cand.input_shape), "num_outputs": int(cand.num_outputs),
        "feature_names": list(cand.feature_names),
        # The title too: a candidate made on a Ray worker reads as it would locally.
        "lineage": [{"technique": s.technique, "config": dict(s.config), "label": s.label, "title": s.title}
                    for s in cand.lineage],
        "info": json.loads(to_json(dict(cand.info))), "extra_files": sorted(cand.extra_files),
        "transform": None, "shipped_file": shipped,
    }
    if cand.kind == "onnx":
        name = shipped if shipped == "model.onnx" else "network.onnx"  # the same bytes, once
        out[name] = cand.model.model_bytes
        manifest["network"] = {"file": name, "format": "onnx", "providers": list(cand.model.providers),
                               "graph_optimization": cand.model.graph_optimization}
    else:
        shape = network_input_shape(cand)
        if shipped == "model.pt" and cand.transform is None and not is_export_module(cand.model):
            name, fmt = shipped, "torchscript"  # the shipped TorchScript is the network: store it once
        else:
            name, fmt, out_bytes = _network_file(cand.model, shape)
            out[name] = out_bytes
        manifest["network"] = {"file": name, "format": fmt, "input_shape": list(shape),
                               "quantized": is_quantized_module(cand.model), "dtypes": _dtypes(cand.model)}
        if cand.transform is not None:
            from safetensors.torch import save as save_tensors

            stored = _transform_spec(cand.transform)
            if stored is not None:
                spec, tensors = stored
                out[spec["file"]] = save_tensors(tensors)
            else:  # a transform of other layers: TorchScript, still no pickle
                spec = {"format": "torchscript", "file": "transform.pt"}
                out["transform.pt"] = torchscript_bytes(cand.transform, tuple(cand.input_shape))
            manifest["transform"] = spec
    for name, data in out.items():
        (folder / name).write_bytes(data)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def _bad(folder: Path, why: str) -> Exception:
    from optim.errors import InputError

    return InputError(f"candidate folder {str(folder)!r} is damaged or was not written by optim ({why}).",
                      hint="Run the experiment again to recreate it.")


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The checked manifest of a candidate folder, or an InputError."""
    import json

    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        old = " (an older optim stored candidates as pickles, which are never read back)" \
            if (folder / "candidate.pt").exists() else ""
        raise _bad(folder, f"no {MANIFEST}{old}") from None
    except (OSError, ValueError) as err:
        raise _bad(folder, f"{MANIFEST} is not JSON: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise _bad(folder, f"{MANIFEST} is not an {MANIFEST_FORMAT} manifest")
    shape = manifest.get("input_shape")
    if (not isinstance(shape, list) or not 1 <= len(shape) <= _MAX_DIMS
            or not all(isinstance(d, int) and 0 < d for d in shape) or int(np.prod(shape)) > _MAX_DIM):
        raise _bad(folder, f"input_shape {shape!r}")
    if manifest.get("task") not in ("classification", "regression"):
        raise _bad(folder, f"task {manifest.get('task')!r}")
    n_out = manifest.get("num_outputs")
    if not isinstance(n_out, int) or not 0 < n_out <= _MAX_DIM:
        raise _bad(folder, f"num_outputs {n_out!r}")
    network = manifest.get("network")
    if not isinstance(network, dict) or network.get("format") not in ("onnx", "torchscript", "torch.export"):
        raise _bad(folder, "no network entry")
    names = [network.get("file")] + list(manifest.get("extra_files") or [])
    if isinstance(manifest.get("transform"), dict):
        names.append(manifest["transform"].get("file"))
    for name in names:
        if not isinstance(name, str) or not _FILE_NAME.match(name) or name == MANIFEST:
            raise _bad(folder, f"file name {name!r}")
    return manifest


def load_candidate(folder: str | Path) -> tuple[Candidate, dict[str, Any]]:
    """``(candidate, manifest)`` read back from a folder :func:`save_candidate` wrote.

    Nothing here unpickles: TorchScript, ONNX and safetensors have their own loaders and
    ``torch.export`` programs load through :func:`load_export_program`.
    """
    import warnings

    import torch

    folder = Path(folder)
    manifest = read_manifest(folder)
    network = manifest["network"]

    def read(name: str) -> bytes:
        try:
            return (folder / name).read_bytes()
        except OSError as err:
            raise _bad(folder, f"cannot read {name}: {err.strerror or err}") from None

    try:
        transform = None
        if network["format"] == "onnx":
            providers = [p for p in network.get("providers") or () if isinstance(p, str)]
            graph_opt = network.get("graph_optimization", "all")
            model: Any = OnnxModel(read(network["file"]), providers or None,
                                   graph_opt if graph_opt in ("disable", "basic", "extended", "all") else "all")
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if network["format"] == "torch.export":
                    model = load_export_program(read(network["file"]))
                else:
                    model = _editable(torch.jit.load(io.BytesIO(read(network["file"])), map_location="cpu"),
                                      network.get("input_shape") or manifest["input_shape"])
            model.eval()
            spec = manifest.get("transform")
            if isinstance(spec, dict):
                transform = _load_transform(spec, read(spec["file"])).eval()
        lineage = tuple(Step(str(s["technique"]), dict(s.get("config") or {}), str(s.get("label", "")),
                             str(s.get("title") or ""))
                        for s in manifest.get("lineage") or ())
        cand = Candidate(
            model, manifest["task"], tuple(manifest["input_shape"]), manifest["num_outputs"], lineage=lineage,
            transform=transform, info=dict(manifest.get("info") or {}),
            extra_files={name: read(name) for name in manifest.get("extra_files") or ()},
            feature_names=tuple(str(n) for n in manifest.get("feature_names") or ()),
        )
    except Exception as err:
        from optim.errors import OptimError

        if isinstance(err, OptimError):
            raise
        raise _bad(
            folder, f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        ) from None
    return cand, manifest


def _load_transform(spec: dict[str, Any], data: bytes) -> Any:
    import torch
    import torch.nn as nn

    if spec.get("format") == "torchscript":
        return torch.jit.load(io.BytesIO(data), map_location="cpu")
    from safetensors.torch import load as load_tensors

    tensors = load_tensors(data)
    known = _transform_layers()
    layers = []
    for i, entry in enumerate(spec.get("layers") or ()):
        cls, buffers = known[entry["type"]]
        layers.append(cls(*[tensors[f"{i}.{b}"] for b in buffers]))
    if not layers:
        raise ValueError("transform with no layers")
    return nn.Sequential(*layers) if spec.get("sequential") else layers[0]


def _editable(script: Any, input_shape: list[int]) -> Any:
    """The eager module a TorchScript network of standard layers was (so ONNX export takes the
    dynamo path), when rebuilding it reproduces the TorchScript outputs; else the TorchScript."""
    from optim.io.rebuild import editable_module

    if (not all(isinstance(d, int) and 0 < d for d in input_shape) or len(input_shape) > _MAX_DIMS
            or int(np.prod(input_shape)) > _MAX_DIM):
        return script
    example = np.random.default_rng(0).standard_normal((2, *input_shape)).astype(np.float32)
    module = editable_module(script, example)
    return script if module is None else module
