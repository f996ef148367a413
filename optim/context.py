"""RunContext: what a technique may use while it works (data, seed, threads, progress, cancel)."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from optim.dataset import DataSplits
from optim.errors import CancelledError

log = logging.getLogger("optim")


@dataclass
class RunContext:
    """Shared by every step of a run. Techniques read from it and report through it."""

    data: DataSplits
    seed: int = 0
    threads: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    batch_size: int = 32
    device: str = "cpu"
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="optim-")))
    country_iso_code: str = "USA"
    #: Seconds of timed repeats per latency configuration (batch 1, batch N).
    latency_budget_s: float = 0.5
    #: Inferences CodeCarbon watches for the energy figure (rounded up to whole batches).
    energy_inferences: int = 2000
    #: The largest batch the baseline model runs (None: any); measuring stays within it.
    max_batch: int | None = None
    #: Whether recipes may name a database server as storage (hpo): set by the command line and
    #: the Python API, never for a recipe typed in the dashboard.
    external_storage: bool = False
    progress_cb: Callable[[str, float], None] | None = None
    cancel_cb: Callable[[], bool] | None = None
    log_cb: Callable[[str], None] | None = None

    def progress(self, message: str, fraction: float) -> None:
        """Report progress of the current step, ``fraction`` in [0, 1]."""
        if self.progress_cb is not None:
            self.progress_cb(message, max(0.0, min(1.0, float(fraction))))

    def log(self, message: str) -> None:
        log.info(message)
        if self.log_cb is not None:
            self.log_cb(message)

    def cancelled(self) -> bool:
        return bool(self.cancel_cb and self.cancel_cb())

    def check_cancelled(self) -> None:
        """Raise CancelledError when the user asked to stop; call it between epochs or trials."""
        if self.cancelled():
            raise CancelledError("Run cancelled by the user; finished candidates are kept.")
