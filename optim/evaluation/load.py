"""How busy the machine was while we measured: other processes' share of its CPU (psutil)."""

from __future__ import annotations

import os
import time
from typing import Any


class LoadMonitor:
    """``with LoadMonitor() as load: ...`` then ``load.other_pct``.

    Other processes' CPU share = (machine busy CPU time − this process's CPU time) ÷ (wall time ×
    logical cores), in percent of the whole machine. Busy time is everything but idle and iowait
    (steal counts as busy: a hypervisor giving our cores to another guest slows us the same).
    ``other_pct`` is NaN where psutil cannot read the counters.
    """

    def __init__(self) -> None:
        self.other_pct = float("nan")
        self.own_pct = float("nan")
        self.seconds = 0.0
        self._start: tuple[Any, Any, float] | None = None

    @staticmethod
    def _read() -> tuple[Any, Any, float]:
        import psutil

        return psutil.cpu_times(), psutil.Process().cpu_times(), time.perf_counter()

    def __enter__(self) -> LoadMonitor:
        try:
            self._start = self._read()
        except Exception:  # noqa: BLE001 - load is informative; never fail a measurement for it
            self._start = None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._start is None:
            return
        try:
            sys1, own1, t1 = self._read()
        except Exception:  # noqa: BLE001
            return
        sys0, own0, t0 = self._start
        self.seconds = t1 - t0
        capacity = self.seconds * (os.cpu_count() or 1)
        if capacity <= 0:
            return
        idle = lambda t: t.idle + getattr(t, "iowait", 0.0)  # noqa: E731
        total = lambda t: sum(t)  # noqa: E731 - psutil's namedtuple fields are all CPU seconds
        # guest time is already counted in user on Linux: drop it so it is not billed twice
        guest = lambda t: getattr(t, "guest", 0.0) + getattr(t, "guest_nice", 0.0)  # noqa: E731
        busy = (total(sys1) - guest(sys1) - idle(sys1)) - (total(sys0) - guest(sys0) - idle(sys0))
        own = (own1.user + own1.system) - (own0.user + own0.system)
        self.own_pct = max(0.0, min(100.0, own / capacity * 100.0))
        self.other_pct = max(0.0, min(100.0, (busy - own) / capacity * 100.0))
