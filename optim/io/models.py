"""Model files: TorchScript, ``torch.export`` programs, ONNX, and weights (safetensors or a state_dict)
with an architecture name; plus the bundled samples in ``sample_models/``.

Formats are recognised by content, not by extension. Nothing is unpickled unless the user says they
trust the file: weights load with ``torch.load(weights_only=True)`` (PyTorch's restricted
unpickler), and a full pickled ``nn.Module`` is refused with :class:`~optim.errors.UnsafeFileError`
because unpickling runs whatever code the file names.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import pickletools
import re
import struct
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from optim.candidate import Candidate, OnnxModel
from optim.dataset import Dataset, DataSplits, Task
from optim.errors import ConfigError, InputError, UnsafeFileError
from optim.io import read_input_file, sample_ref

ACCEPTED = ("TorchScript (.pt, torch.jit.save), a torch.export program (.pt2, torch.export.save), "
            "ONNX (.onnx), or weights (.safetensors, or torch.save(model.state_dict())) with --arch NAME")

SAVE_SAFELY = ("Save the model in a safe format instead: TorchScript "
               "torch.jit.save(torch.jit.script(model), 'model.pt'), ONNX "
               "torch.onnx.export(model, example_input, 'model.onnx'), or its weights "
               "torch.save(model.state_dict(), 'weights.pt') loaded with --arch NAME.")


# --- format detection -------------------------------------------------------------------------

def detect_format(data: bytes) -> str:
    """``torchscript``, ``export``, ``torch-pickle``, ``safetensors``, ``onnx`` or ``unknown``, by content."""
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except zipfile.BadZipFile:
            return "damaged-zip"
        tails = {n.split("/", 1)[1] if "/" in n else n for n in names}
        if any(t.startswith("code/") for t in tails) and "constants.pkl" in tails:
            return "torchscript"
        if "archive_format" in tails or any(t.startswith("models/") for t in tails):
            return "export"
        if "data.pkl" in tails:
            return "torch-pickle"
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        return "zip"
    if _is_safetensors(data):
        return "safetensors"
    if _is_pickle(data):  # torch.save's legacy format or a bare pickle
        return "torch-pickle"
    if _looks_like_onnx(data):
        return "onnx"
    return "unknown"


def _is_pickle(data: bytes) -> bool:
    """A pickle of protocol 2-5: the PROTO header, then opcodes (read, never run) up to a STOP.

    One byte 0x80 is not enough: random bytes start with it one time in 256. torch.save's legacy
    format is several pickles in a row; the first one (its magic number) is checked.
    """
    if len(data) < 3 or data[0] != 0x80 or not 2 <= data[1] <= pickle.HIGHEST_PROTOCOL:
        return False
    try:
        for op, _, _ in pickletools.genops(io.BytesIO(data)):
            if op.name == "STOP":
                return True
    except Exception:  # noqa: BLE001 - an unknown opcode or a truncated stream: not a pickle
        return False
    return False


def _is_safetensors(data: bytes) -> bool:
    if len(data) < 10:
        return False
    (header_len,) = struct.unpack("<Q", data[:8])
    return 2 <= header_len <= len(data) - 8 and data[8:9] == b"{"


def _looks_like_onnx(data: bytes) -> bool:
    import onnx

    try:
        proto = onnx.load_model_from_string(data)
    except Exception:
        return False
    return bool(proto.graph.node) and proto.ir_version > 0


def _pickle_globals(data: Any) -> list[str]:
    """Classes and functions a pickle would import, read from its opcodes without running it."""
    found: list[str] = []
    strings: list[str] = []
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
                found.append(arg.replace(" ", "."))
            elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
                strings.append(str(arg))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
    except Exception:
        pass  # a truncated pickle: report what was seen
    return found


def _unsafe_globals(data: bytes) -> list[str]:
    blob = data
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            pkl = [n for n in zf.namelist() if n.endswith("data.pkl")]
            blob = zf.read(pkl[0]) if pkl else b""
    # torch.save's legacy format is several pickles in a row (magic, version, sys info, object).
    stream = io.BytesIO(blob)
    globals_: list[str] = []
    for _ in range(5):
        start = stream.tell()
        if start >= len(blob):
            break
        globals_ += _pickle_globals(stream)
        if stream.tell() == start:
            break
    harmless = ("torch._utils.", "collections.OrderedDict", "torch.FloatStorage", "torch.LongStorage",
                "torch.storage.", "torch.Size", "__builtin__.set", "builtins.set")
    seen: list[str] = []
    for g in globals_:
        if not g.startswith(harmless) and g not in seen:
            seen.append(g)
    # The user's own classes and non-torch callables first: they are what would run.
    return sorted(seen, key=lambda g: g.startswith("torch."))


# --- loading each format ----------------------------------------------------------------------

def _load_torchscript(path: Path) -> Any:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(path), map_location="cpu")


def _load_export(path: Path, data: bytes) -> Any:
    # torch.export.load would unpickle weights a crafted file flags as pickled (and opaque
    # constants): load_export_program allows PyTorch's restricted unpickler only.
    from optim.candidate import load_export_program

    return load_export_program(data)


def _load_onnx(path: Path, data: bytes) -> OnnxModel:
    import onnx

    where = repr(path.name)
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as err:
        raise InputError(
            f"{where} is not a valid ONNX file ({_first_line(err)}).", hint=f"Accepted: {ACCEPTED}."
        ) from None
    for init in proto.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            raise InputError(f"{where} keeps its weights in a separate file; save it as one file: "
                             f"onnx.save(model, path, save_as_external_data=False) or "
                             f"torch.onnx.export(..., external_data=False).")
    try:
        onnx.checker.check_model(proto)
    except Exception as err:
        raise InputError(f"{where} fails the ONNX checker: {_first_line(err)}") from None
    inputs = [i.name for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
    if len(inputs) != 1:
        raise InputError(f"{where} has {len(inputs)} inputs ({', '.join(inputs)}); optim feeds a model one "
                         f"tensor of features.")
    model = OnnxModel(data)
    try:
        model.session(1)
    except Exception as err:
        raise InputError(f"ONNX Runtime cannot load {where}: {_first_line(err)}") from None
    return model


def _load_torch_pickle(path: Path, data: bytes, trust_pickle: bool) -> Any:
    """A state_dict (weights only), or, with ``trust_pickle``, whatever the pickle holds."""
    import torch

    where = repr(path.name)
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" not in str(err) and "Unsupported" not in str(err):
            raise InputError(f"{where} is damaged or not a PyTorch file ({_first_line(err)}).",
                             hint=f"Accepted: {ACCEPTED}.") from None
    except Exception as err:
        raise InputError(f"{where} is damaged or not a PyTorch file ({_first_line(err)}).",
                         hint=f"Accepted: {ACCEPTED}.") from None
    if not trust_pickle:
        names = _unsafe_globals(data)
        holds = f" (it names {', '.join(names[:3])}{', ...' if len(names) > 3 else ''})" if names else ""
        raise UnsafeFileError(
            f"{where} is a pickled Python object{holds}, not weights; it was not loaded because "
            f"unpickling runs arbitrary code from the file.",
            hint=SAVE_SAFELY + " If you trust the file, pass --trust-pickle (trust_pickle=True).",
            ui=f"{where} is a pickled Python object{holds}, not weights; it was not loaded because unpickling "
               f"runs arbitrary code from the file. {SAVE_SAFELY} If you trust the file, switch on "
               "“Trust pickled files” and upload it again.")
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    except (AttributeError, ModuleNotFoundError, ImportError) as err:
        raise InputError(f"{where}: the pickled model refers to code that cannot be imported here "
                         f"({_first_line(err)}).", hint=SAVE_SAFELY) from None
    except Exception as err:
        raise InputError(f"{where} could not be unpickled ({_first_line(err)}).", hint=SAVE_SAFELY) from None


def _load_safetensors(path: Path, data: bytes) -> dict[str, Any]:
    from safetensors.torch import load

    try:
        return dict(load(data))
    except Exception as err:
        raise InputError(f"{path.name!r} is not a valid safetensors file ({_first_line(err)}).",
                         hint=f"Accepted: {ACCEPTED}.") from None


def _as_state_dict(obj: Any) -> dict[str, Any] | None:
    """The tensor dict inside ``obj`` (a state_dict or a common checkpoint layout), else None."""
    import torch

    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
        if obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
            sd = dict(obj)
            if all(k.startswith("module.") for k in sd):  # saved from DataParallel
                sd = {k[len("module."):]: v for k, v in sd.items()}
            return sd
    return None


def _build_with_weights(state_dict: dict[str, Any], arch: str, shapes: _DataShapes, where: str) -> Any:
    from optim.archs import build_arch

    module = build_arch(arch, int(np.prod(shapes.input_shape)), shapes.n_out)
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [f"{k} (file {tuple(state_dict[k].shape)}, --arch {tuple(v.shape)})"
             for k, v in expected.items() if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_few(unexpected)}")
        if wrong:
            parts.append(f"shape mismatch {_few(wrong)}")
        raise InputError(
            f"{where} does not fit --arch {arch} for {shapes.describe()}: {'; '.join(parts)}.",
            hint="Check --arch and that the dataset has the features and classes the weights were trained on.",
            ui=f"The model {where} ({arch} architecture) does not fit the loaded data, {shapes.describe()}: "
               f"{'; '.join(parts).replace('--arch', 'expected')}. Load the dataset the model was trained on, "
               "or a model trained on this dataset (for a weights file: the architecture it belongs to).")
    module.load_state_dict(state_dict, strict=True)
    return module


def _few(items: list[str], limit: int = 3) -> str:
    return ", ".join(items[:limit]) + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def describe_error(err: BaseException) -> str:
    """The line of an error message that says what went wrong (TorchScript puts it last)."""
    lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
    line = lines[0] if lines else ""
    if len(lines) > 1 and ("TorchScript" in line or "Traceback" in str(err)):
        line = lines[-1]
    elif len(lines) > 1 and line.endswith(("indices", ":")):  # ONNX Runtime continues on the next line
        line = f"{line} {lines[1]}"
    if not line:
        return type(err).__name__
    return (line if re.match(r"^\w+(Error|Exception):", line) else f"{type(err).__name__}: {line}")[:300]


_first_line = describe_error


# --- fitting the model to the dataset ---------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _DataShapes:
    input_shape: tuple[int, ...]
    task: Task
    num_classes: int
    feature_names: tuple[str, ...]
    X_probe: np.ndarray
    X_check: np.ndarray  # the rows an editable conversion must reproduce

    @property
    def n_out(self) -> int:
        return self.num_classes if self.task == "classification" else 1

    def describe(self) -> str:
        what = f"{self.num_classes} classes" if self.task == "classification" else "regression"
        return f"a dataset of input shape {self.input_shape} ({what})"


def _shapes(dataset: Dataset | DataSplits) -> _DataShapes:
    X = dataset.X if isinstance(dataset, Dataset) else dataset.train.X
    return _DataShapes(tuple(dataset.input_shape), dataset.task, int(dataset.num_classes),
                       tuple(dataset.feature_names), np.asarray(X[:2], dtype=np.float32),
                       np.asarray(X[:64], dtype=np.float32))


def _probe(model: Any, X: np.ndarray) -> np.ndarray:
    if isinstance(model, OnnxModel):
        return model.run(X)
    import torch

    with torch.inference_mode():
        out = model(torch.from_numpy(X))
    if not isinstance(out, torch.Tensor):
        raise InputError(f"the model returns a {type(out).__name__}, not one tensor; optim needs a model "
                         f"that returns one tensor of outputs (logits or values).")
    return out.float().numpy()


def _fit_check(model: Any, shapes: _DataShapes, where: str) -> int:
    """Run the model on two rows of the dataset; the number of outputs, or an InputError."""
    X = shapes.X_probe
    try:
        out = _probe(model, X)
    except InputError:
        raise
    except Exception as err:
        hint = None
        text = str(err)
        if "Guard failed" in text and "size()[0]" in text or "invalid dimensions" in text and "index: 0" in text:
            hint = "If the model was saved with a fixed batch size, export it with a dynamic batch dimension."
        elif len(shapes.input_shape) == 3 and shapes.input_shape[0] == 1:  # a 3-D NPZ read as N×1×H×W images
            hint = ("If X holds N × steps × features sequences rather than grayscale images, save the NPZ with "
                    "layout='sequence': np.savez(path, X=X, y=y, layout='sequence').")
        raise InputError(f"{where}: the model does not accept this dataset's inputs (shape {tuple(X.shape)}): "
                         f"{_first_line(err)}", hint=hint) from None
    n = X.shape[0]
    if shapes.task == "classification":
        if out.shape == (n, shapes.num_classes):
            return shapes.num_classes
        if shapes.num_classes == 2 and out.shape in ((n,), (n, 1)):
            raise InputError(f"{where}: the model gives one output per row (a sigmoid-style binary "
                             f"classifier); optim needs one logit per class (2 outputs).",
                             hint="Replace the last layer with a 2-output Linear, or treat it as regression.")
        raise InputError(f"{where}: the model outputs shape {tuple(out.shape[1:])} per batch row but the "
                         f"dataset has {shapes.num_classes} classes; it needs ({shapes.num_classes},) "
                         f"logits per row.")
    if out.shape in ((n,), (n, 1)):
        return 1
    raise InputError(f"{where}: the model outputs shape {tuple(out.shape[1:])} per row but the dataset is "
                     f"a regression; it needs one value per row.")


# --- public API -------------------------------------------------------------------------------

def load_model(ref: str | Path, *, dataset: Dataset | DataSplits | None = None, arch: str | None = None,
               trust_pickle: bool = False) -> Candidate:
    """Load a model file (or ``sample:NAME``) as the baseline candidate, in eval mode.

    Formats (recognised by content): TorchScript, ``torch.export`` programs (``.pt2``), ONNX, and
    weights (``.safetensors`` or a ``torch.save``'d state_dict) with ``arch`` (a bundled name or
    ``torchvision:NAME``, sized from ``dataset``). With a dataset, the model is run on two rows
    to check that it accepts the raw features and gives one logit per class (or one value for
    regression). A full pickled ``nn.Module`` is refused (UnsafeFileError) unless ``trust_pickle``.
    Without a dataset, only ONNX models (whose graph states its input shape) can be loaded; the
    task is then classification when the model has several outputs, else regression.
    """
    name = sample_ref(ref)
    if name is not None:
        entry = _sample_entry(name)
        if arch is not None:
            raise ConfigError(
                f"--arch {arch}: sample:{name} brings its own architecture ({entry['arch']}); drop --arch.",
                ui=f"The sample model {name} brings its own architecture ({entry['arch']}): set "
                "“Architecture” to the complete-model choice.",
            )
        if dataset is None:
            from optim.io.datasets import load_dataset

            dataset = load_dataset(entry["dataset"])
        _check_sample_fits(name, entry, _shapes(dataset))
        weights = samples_dir() / entry["weights"]
        if not weights.exists():
            raise InputError(f"sample:{name}: weights {str(weights)!r} are missing; build them with "
                             f"python sample_models/build.py --only {name}.")
        cand = load_model(weights, dataset=dataset, arch=entry["arch"])
        return dataclasses.replace(cand, info={"sample": name})
    path, data, fmt = check_model_file(ref)
    where = repr(path.name)
    shapes = _shapes(dataset) if dataset is not None else None
    state_dict = None
    module: Any
    if fmt == "torchscript":
        module = _guard(lambda: _load_torchscript(path), where, "TorchScript")
    elif fmt == "export":
        module = _guard(lambda: _load_export(path, data), where, "torch.export")
    elif fmt == "onnx":
        module = _load_onnx(path, data)
    elif fmt == "safetensors":
        state_dict = _load_safetensors(path, data)
    elif fmt == "torch-pickle":
        obj = _load_torch_pickle(path, data, trust_pickle)
        state_dict = _as_state_dict(obj)
        if state_dict is None:
            import torch

            if not isinstance(obj, torch.nn.Module):
                raise InputError(f"{where} holds a {type(obj).__name__}, not a model or a state_dict of "
                                 f"tensors.", hint=f"Accepted: {ACCEPTED}.")
            module, fmt = obj, "pickled-module"
        else:
            fmt = "state_dict"

    if state_dict is not None:
        if not arch:
            raise InputError(f"{where} holds only weights (a state_dict); pass --arch NAME to say which "
                             f"architecture they belong to (bundled: {_arch_names()}, or torchvision:NAME).",
                             ui=f"{where} holds only weights (a state_dict): choose the architecture they belong "
                                "to under “Architecture (weights files only)” and upload it again.")
        if shapes is None:
            raise InputError(f"{where}: --arch {arch} needs the dataset to size the input and output layers; "
                             f"pass --data.", ui=f"{where} holds only weights: load a dataset first, so the "
                                                 f"{arch} architecture can be sized from it.")
        module = _build_with_weights(state_dict, arch, shapes, where)
        fmt = "safetensors" if fmt == "safetensors" else "state_dict"
    elif arch:
        raise ConfigError(f"--arch {arch}: {where} is a complete model ({fmt}); --arch is only for weight "
                          f"files (safetensors or state_dict). Drop --arch.",
                          ui=f"{where} is a complete model ({fmt}): the architecture choice is only for weights "
                             "files; set “Architecture” back to the complete-model choice.")

    if fmt != "onnx":
        module.eval()
    if shapes is None:
        if fmt != "onnx":
            kind = {"torchscript": "TorchScript", "export": "torch.export", "pickled-module": "pickled"}.get(fmt, fmt)
            raise InputError(f"{where}: a {kind} model does not state its input shape; pass the dataset "
                             f"(--data) to load it.")
        input_shape, num_outputs = _onnx_io_shape(module, where)
        task: Task = "classification" if num_outputs > 1 else "regression"
        return Candidate(module, task, input_shape, num_outputs, info={"model_format": fmt})
    num_outputs = _fit_check(module, shapes, where)
    info: dict[str, Any] = {"model_format": fmt}
    editable = None
    if fmt in ("torchscript", "export", "onnx"):
        # Compiled models get an editable torch.fx copy (real nn layers) for the techniques that edit
        # layers, kept only when it reproduces the original's outputs; the original is measured.
        from optim.io.convert import editable_graph

        editable, report = editable_graph(module, fmt, shapes.X_check)
        info["conversion"] = report
    return Candidate(module, shapes.task, shapes.input_shape, num_outputs,
                     feature_names=shapes.feature_names, info=info, editable=editable)


def check_model_file(ref: str | Path) -> tuple[Path, bytes, str]:
    """``(path, bytes, format)`` of a model file, or the InputError its content alone earns (missing,
    empty, not a model format). Only reads the file (nothing is unpickled or run), so a caller can
    refuse a wrong file at once, before starting a process to load it (:func:`optim.probe_model`)."""
    path, data = read_input_file(ref, "model", ACCEPTED)
    where = repr(path.name)
    fmt = detect_format(data)
    if fmt == "unknown" and path.suffix.lower() == ".onnx":
        fmt = "onnx"  # the ONNX loader says what is wrong with it
    if fmt == "npz":
        raise InputError(f"{where} is a NumPy archive (a dataset?), not a model.", hint=f"Accepted: {ACCEPTED}.")
    if fmt == "damaged-zip":
        raise InputError(f"{where} is a damaged zip archive (truncated?); it cannot be loaded as a model.",
                         hint=f"Accepted: {ACCEPTED}.")
    if fmt not in ("torchscript", "export", "onnx", "safetensors", "torch-pickle"):
        raise InputError(f"{where} is not a recognised model format.", hint=f"Accepted: {ACCEPTED}.")
    return path, data, fmt


def _guard(load: Any, where: str, kind: str) -> Any:
    try:
        return load()
    except Exception as err:
        raise InputError(f"{where} looks like {kind} but cannot be loaded ({_first_line(err)}).",
                         hint=f"Accepted: {ACCEPTED}.") from None


def _onnx_io_shape(model: OnnxModel, where: str) -> tuple[tuple[int, ...], int]:
    sess = model.session(1)
    ins, outs = sess.get_inputs()[0].shape[1:], sess.get_outputs()[0].shape[1:]
    if not all(isinstance(d, int) for d in ins) or not all(isinstance(d, int) for d in outs):
        raise InputError(f"{where}: the ONNX graph does not state fixed feature dimensions "
                         f"(input {ins}, output {outs}); pass the dataset (--data) to load it.")
    return tuple(ins), int(np.prod(outs)) if outs else 1


def _arch_names() -> str:
    from optim.archs import ARCHS

    return ", ".join(ARCHS)


# --- bundled samples --------------------------------------------------------------------------

def samples_dir() -> Path:
    """``sample_models/`` beside the package (editable install), or ``$OPTIM_SAMPLES_DIR``."""
    env = os.environ.get("OPTIM_SAMPLES_DIR")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "sample_models"


def list_samples() -> list[dict[str, Any]]:
    """The bundled sample models from ``sample_models/samples.json``: name, arch, dataset, weights,
    metric_name / metric_value (test split), params, size_bytes, description."""
    path = samples_dir() / "samples.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"no bundled samples: {path} is missing; build them with "
                         f"python sample_models/build.py.") from None
    except (OSError, ValueError) as err:
        raise InputError(f"{path} cannot be read ({_first_line(err)}); rebuild it with "
                         f"python sample_models/build.py.") from None
    return [dict(s) for s in doc.get("samples", [])]


def _sample_entry(name: str) -> dict[str, Any]:
    samples = list_samples()
    for entry in samples:
        if entry["name"] == name:
            return entry
    raise ConfigError(f"sample:{name}: unknown sample model; known: "
                      f"{', '.join('sample:' + s['name'] for s in samples)}.")


def _check_sample_fits(name: str, entry: Mapping[str, Any], shapes: _DataShapes) -> None:
    """An InputError, worded for a bundled sample (the user named no architecture), when the data
    is not the kind the sample was trained on."""
    task, n_out = entry.get("task"), entry.get("num_outputs")
    input_shape = tuple(entry.get("input_shape") or shapes.input_shape)
    if task is None or (task, n_out, input_shape) == (shapes.task, shapes.n_out, shapes.input_shape):
        return
    what = f"{n_out} class scores" if task == "classification" else "one value"
    problem = (f"the data is set up as a {shapes.task} task" if task != shapes.task
               else f"the data is {shapes.describe()}")
    raise InputError(
        f"sample:{name} is a {task} model trained on {entry.get('dataset')} (input shape {input_shape}, "
        f"{what} per row), but {problem}.",
        hint=f"Run it on {entry.get('dataset')} as a {task} task (no task override), or bring your own "
             f"model for this data.")


def sample_data_ref(model: str, data: str | None) -> str | None:
    """The one spelling of a bundled sample's own dataset: a ``sample:MODEL`` run on ``""``,
    ``"sample"`` or its dataset's ``"sample:NAME"`` reads ``"sample:NAME"``; None for any other pair
    (a user's model, or a sample model on other data)."""
    name = sample_ref(model)
    if name is None:
        return None
    own = f"sample:{_sample_entry(name)['dataset'].split(':', 1)[-1]}"
    return own if (data or "sample") in ("sample", own) else None


def load_sample(name: str) -> tuple[Candidate, DataSplits]:
    """A bundled sample: its trained baseline (``info={"sample": name}``) and its dataset's splits."""
    from optim.io.datasets import load_dataset

    name = sample_ref(name) or name
    entry = _sample_entry(name)
    dataset = load_dataset(entry["dataset"])
    return load_model(f"sample:{name}", dataset=dataset), dataset.splits()
