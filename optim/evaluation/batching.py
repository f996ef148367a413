"""Which batch sizes a model accepts: probed before anything is measured.

Used by a run (:mod:`optim.experiment`) and by the dashboard's sandboxed first look
(:mod:`optim.sandbox`), so both refuse a fixed-batch model with the same message.
"""

from __future__ import annotations

import numpy as np

from optim.candidate import Candidate
from optim.errors import InputError

#: Rows :meth:`Candidate.predict` runs per call while measuring the task metric.
PREDICT_CHUNK = 256


def accepted_batch_limit(candidate: Candidate, X: np.ndarray, batch_n: int) -> int | None:
    """None when ``candidate`` runs every batch size a measurement uses, else the largest it runs.

    Measuring calls the model at batch 1 (latency), at ``batch_n`` (latency, energy) and in chunks
    of :data:`PREDICT_CHUNK` rows (the metric); the load check only tried 2 rows. A model exported
    with a fixed batch size, or one that raises above some batch, is probed here so the run
    measures within the sizes it accepts, or says which it accepts (InputError) — never a
    traceback half way through the baseline.
    """
    X = np.asarray(X, dtype=np.float32)
    chunk = min(PREDICT_CHUNK, len(X)) or 1
    sizes = sorted({1, int(batch_n), chunk} | ({len(X) % chunk} - {0}))
    failed: dict[int, str] = {}
    for size in sizes:
        err = _batch_error(candidate, X, size)
        if err:
            failed[size] = err
    if not failed:
        return None
    worst = min(failed)
    detail = f"batch {worst}: {failed[worst]}"
    hint = ("Export the model with a dynamic batch dimension (torch.onnx.export(..., dynamic_shapes=...) "
            "or torch.export.export(..., dynamic_shapes={'x': {0: torch.export.Dim('batch')}})), or script "
            "it (torch.jit.script) instead of tracing it.")
    if 1 in failed:  # 2 rows passed the load check
        accepts = ", ".join(map(str, sorted({2} | (set(sizes) - set(failed)))))
        raise InputError(f"the model does not run on one row at a time ({detail}); it accepts batch size "
                         f"{accepts} only, and optim measures latency at batch 1.", hint=hint)
    # Batches of 1 and 2 run: the largest power of two below the first failure is the limit.
    good, bad = 2, worst
    while good * 2 < bad:
        if _batch_error(candidate, X, good * 2):
            bad = good * 2
        else:
            good *= 2
    rest = len(X) % good  # the last chunk when predicting ``good`` rows at a time
    if rest > 2 and _batch_error(candidate, X, rest):
        raise InputError(f"the model runs batches of 1, 2 and {good} rows but not {rest} ({detail}).", hint=hint)
    return good


def _batch_error(candidate: Candidate, X: np.ndarray, size: int) -> str:
    """Why ``candidate`` cannot run one batch of ``size`` rows ('' when it can)."""
    from optim.io.models import describe_error

    rows = np.concatenate([X] * (size // len(X) + 1))[:size] if len(X) < size else X[:size]
    try:
        out = candidate.predict(rows, batch_size=size, threads=1)
    except Exception as err:  # noqa: BLE001 - any failure means "not this batch size"
        return describe_error(err)
    if len(out) != size:
        return f"it returned {len(out)} rows of outputs for {size} rows of inputs"
    return ""
