"""Run a user's model in a child process, with a time limit and a memory cap.

A model file is code: a TorchScript ``while`` loop that never ends, or a graph that allocates
tens of gigabytes, would otherwise freeze (or kill) whatever process runs it — the dashboard's
server included. :func:`probe_model` (load + the two-row fit check) and :func:`measure_baseline`
(the baseline's result columns, measured by :func:`optim.evaluation.measure.measure_candidate`)
run the model in a process of its own, in its own session (named ``optim-sandbox``), and stop it
when a stage overruns its time limit. That process is forked from a multiprocessing fork server
which has imported torch and ONNX Runtime once and never runs a user's model, so a check starts in
milliseconds rather than re-importing torch for every upload.

The child answers with JSON lines on a dedicated pipe (never pickles: a compromised child must
not be able to run code in the parent), one per stage, so the limit applies to the model's own
work: importing torch on a busy machine does not count against it.
"""

from __future__ import annotations

import dataclasses
import io
import json
import multiprocessing
import os
import select
import signal
import sys
import tempfile
import threading
import time
from multiprocessing import context as mp_context
from multiprocessing import forkserver, popen_forkserver, reduction, spawn, util
from pathlib import Path
from typing import Any

from optim import errors
from optim.errors import InputError, OptimError

#: Seconds the model may take to load and answer the two-row fit check (``OPTIM_MODEL_TIMEOUT_S``).
DEFAULT_TIMEOUT_S = 30.0
#: Seconds the baseline measurement (accuracy on the test split, latency, energy) may take
#: (``OPTIM_MEASURE_TIMEOUT_S``).
DEFAULT_MEASURE_TIMEOUT_S = 300.0
#: Megabytes of address space the model may add on top of the runtime's own (``OPTIM_MODEL_MEMORY_MB``).
DEFAULT_MEMORY_MB = 4096
#: Longest line the child may send (a result row is a few kB): more is not the protocol.
MAX_ANSWER_BYTES = 1 << 20
#: Seconds for the child to import torch and load the dataset: this is optim's own work, so the
#: bound only catches a wedged machine.
STARTUP_TIMEOUT_S = 300.0


@dataclasses.dataclass(frozen=True)
class ModelLimits:
    """How long and how much memory a user's model gets in the child process."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    measure_timeout_s: float = DEFAULT_MEASURE_TIMEOUT_S
    memory_mb: int = DEFAULT_MEMORY_MB

    def __post_init__(self) -> None:
        for name in ("timeout_s", "measure_timeout_s", "memory_mb"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0 and value == value and value != float("inf")):
                raise errors.ConfigError(f"model limit {name}={value!r}: must be a positive finite number.")

    @classmethod
    def from_env(cls) -> ModelLimits:
        """The defaults, overridden by ``OPTIM_MODEL_TIMEOUT_S``, ``OPTIM_MEASURE_TIMEOUT_S`` and
        ``OPTIM_MODEL_MEMORY_MB``."""

        def read(var: str, default: float, kind: type) -> Any:
            raw = os.environ.get(var, "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                value = float("nan")
            if not 0 < value < float("inf"):
                raise errors.ConfigError(f"{var}={raw!r}: must be a positive finite number.",
                                         hint=f"Unset it to use the default ({default:g}).")
            return kind(value)

        return cls(read("OPTIM_MODEL_TIMEOUT_S", DEFAULT_TIMEOUT_S, float),
                   read("OPTIM_MEASURE_TIMEOUT_S", DEFAULT_MEASURE_TIMEOUT_S, float),
                   read("OPTIM_MODEL_MEMORY_MB", DEFAULT_MEMORY_MB, int))


def probe_model(model: str, data: str, *, target: str | None = None, task: str | None = None,
                arch: str | None = None, trust_pickle: bool = False, name: str | None = None,
                limits: ModelLimits | None = None) -> dict[str, Any]:
    """Load ``model`` against dataset ``data`` in a child process and run the fit check there.

    Returns ``{"num_outputs", "model_format"}``. Raises the loader's OptimError, or an InputError
    saying the model did not answer within ``limits.timeout_s`` seconds or needed more than
    ``limits.memory_mb`` MB. ``name`` is how messages call the model (default: its file name).
    """
    request = {"op": "probe", "model": str(model), "data": str(data), "target": target, "task": task,
               "arch": arch, "trust_pickle": bool(trust_pickle)}
    return _run_child(request, limits or ModelLimits.from_env(), name or _display(model))


def measure_baseline(model: str, data: str, *, target: str | None = None, task: str | None = None,
                     arch: str | None = None, trust_pickle: bool = False, threads: int = 1, batch_size: int = 32,
                     latency_budget_s: float = 0.1, energy_inferences: int = 300, name: str | None = None,
                     limits: ModelLimits | None = None) -> dict[str, Any]:
    """The baseline's result columns (:func:`~optim.evaluation.measure.measure_candidate`), measured
    in a child process with ``limits``; short budgets by default (a quick look, not a run)."""
    request = {"op": "measure", "model": str(model), "data": str(data), "target": target, "task": task,
               "arch": arch, "trust_pickle": bool(trust_pickle), "threads": int(threads),
               "batch_size": int(batch_size), "latency_budget_s": float(latency_budget_s),
               "energy_inferences": int(energy_inferences)}
    return _run_child(request, limits or ModelLimits.from_env(), name or _display(model))["metrics"]


def _display(ref: str) -> str:
    return ref if ref.startswith("sample:") else Path(ref).name


# --- parent side --------------------------------------------------------------------------------

#: What the fork server imports once, so that each model's process starts in milliseconds instead
#: of re-importing torch (2–8 s): only optim's own modules and the runtimes, never a user's file.
#: Every child answers through optim.store's JSON, and the bundled datasets come from scikit-learn
#: (1–3 s to import), so those load once here too.
_PRELOAD = ["onnxruntime", "torch", "codecarbon", "optim.evaluation.measure", "optim.io.models", "optim.io.datasets",
            "optim.store", "sklearn.datasets"]
_context_lock = threading.Lock()
_context: Any = None


def _fork_context() -> Any:
    """The ``forkserver`` multiprocessing context whose server has the runtimes imported.

    Each model still gets a process of its own (forked from that clean server, which never runs a
    user's model), its own session, memory cap and time limit; the server is started on first
    use and shared by every later call of this process.
    """
    global _context
    with _context_lock:
        if _context is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(list(_PRELOAD))  # once per process, before the server starts
            _context = ctx
        return _context


class _Popen(popen_forkserver.Popen):
    """multiprocessing's fork-server launch, without re-importing the caller's ``__main__`` in the
    child: under Streamlit ``__main__`` is the page script being run, which must not run again in
    the model's process (nor start another check from there)."""

    def _launch(self, process_obj: Any) -> None:
        prep_data = spawn.get_preparation_data(process_obj._name)
        prep_data.pop("init_main_from_name", None)
        prep_data.pop("init_main_from_path", None)
        buf = io.BytesIO()
        mp_context.set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            mp_context.set_spawning_popen(None)
        self.sentinel, w = forkserver.connect_to_new_process(self._fds)  # type: ignore[attr-defined]
        parent_w = os.dup(w)  # the child's sentinel of this process, as in the original
        self.finalizer = util.Finalize(self, util.close_fds, (parent_w, self.sentinel))  # type: ignore[attr-defined]
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class _SandboxProcess(mp_context.ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> _Popen:
        return _Popen(process_obj)


def _run_child(request: dict[str, Any], limits: ModelLimits, name: str) -> dict[str, Any]:
    from optim.io import sample_ref

    if sample_ref(request["model"]) is None:
        from optim.io.models import check_model_file

        # A file that is no model by its content alone (missing, empty, unknown format) is refused
        # here, with the loader's own words: nothing is run or unpickled to say so, and the user
        # does not wait for a process that imports the runtimes.
        check_model_file(request["model"])
    # The fork server was started with the environment and directory of its first caller: each
    # request carries the caller's own (OPTIM_HOME, relative model paths).
    request = {**request, "memory_mb": int(limits.memory_mb), "env": dict(os.environ), "cwd": os.getcwd()}
    stage_limits = {"start": STARTUP_TIMEOUT_S, "probe": limits.timeout_s, "measure": limits.measure_timeout_s}
    ctx = _fork_context()
    reader, writer = ctx.Pipe(duplex=False)
    with tempfile.NamedTemporaryFile(prefix="optim-sandbox-", suffix=".err") as stderr:
        proc = _SandboxProcess(target=_forked, args=(request, writer, stderr.name), name="optim-sandbox", daemon=True)
        try:
            proc.start()
        finally:
            writer.close()
        try:
            return _follow(proc, reader.fileno(), stage_limits, limits, name, stderr)
        finally:
            reader.close()
            _stop(proc)


def _follow(proc: Any, fd: int, stage_limits: dict[str, float], limits: ModelLimits, name: str,
            stderr: Any) -> dict[str, Any]:
    stage, deadline, buf = "start", time.monotonic() + stage_limits["start"], b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            _stop(proc)
            raise _timeout_error(stage, stage_limits[stage], name)
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:  # the child closed the pipe: it ended (answered or not), or the model closed it
            proc.join(timeout=10)
            code = proc.exitcode
            _stop(proc)
            raise _crash_error(code, limits, name, stderr)
        buf += chunk
        if len(buf) > MAX_ANSWER_BYTES:
            buf = b"\0\n"  # not the protocol: refused below
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            msg = _parse(line)
            if msg is None:  # only code the model ran can write anything else on this pipe
                _stop(proc)
                raise InputError(f"{name}: the process running the model sent an unreadable answer; it was stopped.",
                                 hint="Load a model that only computes (TorchScript, ONNX or weights).")
            if "stage" in msg:
                stage = msg["stage"]
                deadline = time.monotonic() + stage_limits[stage]
            elif "error" in msg:
                raise _error_from(msg["error"], limits, name)
            elif "result" in msg:
                return msg["result"]


def _parse(line: bytes) -> dict[str, Any] | None:
    """One message of the child's protocol, or None when the line is not one."""
    try:
        msg = json.loads(line)
    except ValueError:
        return None
    if not isinstance(msg, dict) or ("stage" in msg and msg["stage"] not in ("probe", "measure")):
        return None
    if not isinstance(msg.get("error", {}), dict) or not isinstance(msg.get("result", {}), dict):
        return None
    return msg


def _stop(proc: Any) -> None:
    """Kill the child's whole session (a model may have started threads or processes)."""
    if proc.exitcode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session, from its first instruction on
        except (ProcessLookupError, PermissionError):
            proc.kill()  # not yet a session leader: the process alone
    proc.join()


def _timeout_error(stage: str, seconds: float, name: str) -> OptimError:
    if stage == "start":
        return OptimError(f"the model checker did not start within {seconds:g} s (is the machine overloaded?).",
                          hint="Try again when the machine is less busy.")
    what = "the baseline measurement" if stage == "measure" else "loading and a two-row test call"
    var = "OPTIM_MEASURE_TIMEOUT_S" if stage == "measure" else "OPTIM_MODEL_TIMEOUT_S"
    return InputError(f"{name}: the model did not answer within {seconds:g} s ({what}); it was stopped.",
                      hint=f"Check the model for an endless loop or a very slow layer, or raise the limit with "
                           f"{var}=SECONDS.")


def _memory_error(limits: ModelLimits, name: str) -> OptimError:
    return InputError(f"{name}: the model needed more than {limits.memory_mb:,} MB of memory; it was stopped.",
                      hint="Use a smaller model or batch size, or raise the cap with OPTIM_MODEL_MEMORY_MB=MB.")


def _error_from(err: dict[str, Any], limits: ModelLimits, name: str) -> OptimError:
    if err.get("kind") == "memory":
        return _memory_error(limits, name)
    cls = getattr(errors, str(err.get("kind")), None)
    if not (isinstance(cls, type) and issubclass(cls, OptimError)):
        cls = InputError
    return cls(str(err.get("message", "")), hint=err.get("hint"), ui=err.get("ui"))


def _crash_error(code: int | None, limits: ModelLimits, name: str, stderr: Any) -> OptimError:
    stderr.seek(0)
    tail = stderr.read()[-4000:].decode(errors="replace")
    if _out_of_memory(tail):
        return _memory_error(limits, name)
    last = next((ln.strip() for ln in reversed(tail.splitlines()) if ln.strip()), "")
    how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
    return InputError(f"{name}: the model crashed the process that ran it ({how}){': ' + last if last else ''}.",
                      hint="Check that the model runs with plain torch/onnxruntime on a few rows of your data.")


# --- child side ---------------------------------------------------------------------------------

def _out_of_memory(text: str) -> bool:
    return any(s in text for s in ("MemoryError", "can't allocate memory", "bad_alloc", "Cannot allocate memory"))


def _forked(request: dict[str, Any], writer: Any, stderr_path: str) -> None:
    """The model's process, forked from the fork server: its own session and name, the caller's
    environment and directory, stderr into the caller's file, then :func:`_child`."""
    os.setsid()
    _name_process(b"optim-sandbox")
    # multiprocessing made "forkserver" this process's default: libraries the model's code uses
    # would then register their semaphores with the caller's resource tracker, which warns about
    # "leaked" ones on the caller's stderr when this process is stopped. Back to the platform default.
    multiprocessing.set_start_method(None, force=True)
    err = os.open(stderr_path, os.O_WRONLY | os.O_APPEND)
    os.dup2(err, 2)
    os.close(err)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    os.environ.clear()
    os.environ.update(request.pop("env"))
    os.chdir(request.pop("cwd"))
    code = _child(os.dup(writer.fileno()), request)
    sys.stderr.flush()
    os._exit(code)  # no atexit or multiprocessing clean-up of the server's state in this child


def _name_process(name: bytes) -> None:
    """Set the process name (``ps``, ``psutil.Process.name()``), so it can be told from its server."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name), 0, 0, 0)  # PR_SET_NAME (Linux)
    except (OSError, AttributeError):
        pass


def _child(fd: int, request: dict[str, Any]) -> int:
    out = os.fdopen(fd, "w", buffering=1)

    def say(**msg: Any) -> None:
        from optim.store import to_json

        out.write(to_json(msg) + "\n")
        out.flush()

    try:
        import onnxruntime  # noqa: F401 - both runtimes load before the cap, which is the model's share
        import torch  # noqa: F401

        from optim.evaluation.measure import measure_candidate  # noqa: F401
        from optim.io.datasets import load_dataset
        from optim.io.models import load_model

        dataset = load_dataset(request["data"], target=request["target"], task=request["task"])
        _cap_memory(int(request["memory_mb"]))
        say(stage="probe")
        candidate = load_model(request["model"], dataset=dataset, arch=request["arch"],
                               trust_pickle=request["trust_pickle"])
        result: dict[str, Any] = {"num_outputs": int(candidate.num_outputs),
                                  "model_format": str(candidate.info.get("model_format", ""))}
        if request["op"] == "measure":
            say(stage="measure")
            result["metrics"] = _measure(candidate, dataset, request)
        say(result=result)
    except OptimError as err:
        if _out_of_memory(str(err)):
            say(error={"kind": "memory"})
        else:
            say(error={"kind": type(err).__name__, "message": err.message, "hint": err.hint, "ui": err.ui})
    except MemoryError:
        say(error={"kind": "memory"})
    except Exception as err:  # noqa: BLE001 - the user's model raised: report it, do not crash
        text = " ".join(str(err).split())
        if _out_of_memory(text):
            say(error={"kind": "memory"})
        else:
            say(error={"kind": "InputError", "message": f"the model failed: {type(err).__name__}: {text[:500]}",
                       "hint": "Check that it runs with plain torch/onnxruntime on a few rows of your data."})
    return 0


def _cap_memory(memory_mb: int) -> None:
    """Cap the address space at what the runtime uses now plus ``memory_mb``: the model's share."""
    import resource

    with open("/proc/self/status") as fh:
        vm_kb = next(int(line.split()[1]) for line in fh if line.startswith("VmSize:"))
    limit = vm_kb * 1024 + memory_mb * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _measure(candidate: Any, dataset: Any, request: dict[str, Any]) -> dict[str, Any]:
    from optim.context import RunContext
    from optim.evaluation.batching import accepted_batch_limit
    from optim.evaluation.measure import measure_candidate

    splits = dataset.splits()
    # Like a run: within the batch sizes the model accepts, or an InputError saying which it does.
    limit = accepted_batch_limit(candidate, splits.test.X, request["batch_size"])
    with tempfile.TemporaryDirectory(prefix="optim-probe-") as tmp:
        batch_n = min(request["batch_size"], limit) if limit else request["batch_size"]
        ctx = RunContext(data=splits, threads=request["threads"], batch_size=batch_n, max_batch=limit,
                         workdir=Path(tmp), latency_budget_s=request["latency_budget_s"],
                         energy_inferences=request["energy_inferences"])
        return dict(measure_candidate(candidate, ctx))

