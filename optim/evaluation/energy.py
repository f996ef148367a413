"""Energy per 1,000 inferences and the energy cost of optimizing, estimated with CodeCarbon.

One ``codecarbon.OfflineEmissionsTracker`` per process and country (no network; its first task
costs ~2 s of hardware detection, so :meth:`EnergyMeter.shared` keeps it), used through its task
API (``start_task``/``stop_task``). How CodeCarbon 3.3 computes a task's energy: at
``stop_task`` it takes CPU power as the time-weighted mean of the samples its monitor thread
took every second during the task plus one final sample, times the task's duration (with RAPL
it reads the energy counter instead); RAM power comes from a size model (5 W per estimated
DIMM, at least 10 W on x86). With no RAPL, CPU power is TDP × load: in ``process`` tracking
(our default) load is this process's CPU time over wall time and core count, so other programs
on a shared machine are not billed to the model; in ``machine`` tracking it is
TDP × (0.1 + 0.9 × load³) of the whole machine. Load comes from CPU-time counters that tick
every 10 ms, so a task needs to last a while: :meth:`EnergyMeter.measure` repeats the workload
for at least ``min_seconds`` and divides by the inferences actually run.

These are estimates: studies find CodeCarbon up to 2× off RAPL-based tools and up to 40% off a
wall meter. ``energy_method`` says how each figure was made; ``energy_is_estimate`` is False
only when every part was read from a hardware meter.
"""

from __future__ import annotations

import logging
import math
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from optim.errors import ConfigError

NAN = float("nan")
#: Shortest workload window CodeCarbon is asked to measure (its load counters tick every 10 ms).
MIN_SECONDS = 1.0
_METERED_CPU = {"intel_rapl": "RAPL", "windows_emi": "Windows EMI (RAPL)",
                "intel_power_gadget": "Intel Power Gadget", "apple_powermetrics": "powermetrics"}


def _quiet_codecarbon() -> None:
    # CodeCarbon logs INFO/WARNING lines before its log_level argument takes effect.
    logging.getLogger("codecarbon").setLevel(logging.ERROR)


def check_country(country_iso_code: str) -> str:
    """The upper-cased 3-letter ISO code if CodeCarbon has its energy mix; else ConfigError."""
    code = str(country_iso_code or "").strip().upper()
    _quiet_codecarbon()
    from codecarbon.input import DataSource

    known = DataSource().get_global_energy_mix_data()
    if code not in known:
        examples = ", ".join(c for c in ("USA", "FRA", "DEU", "GBR", "CHN", "IND") if c in known)
        raise ConfigError(
            f"country_iso_code must be a 3-letter ISO code with a known energy mix (e.g. {examples}); "
            f"got {country_iso_code!r}."
        )
    return code


@dataclass
class EnergyCost:
    """What a :meth:`EnergyMeter.cost` block used: filled in when the block exits."""

    seconds: float = NAN
    energy_j: float = NAN
    co2_g: float = NAN
    method: str = ""
    _t0: float = field(default=0.0, repr=False)
    _error: str = field(default="", repr=False)


class EnergyMeter:
    """Energy estimates from one CodeCarbon offline tracker, started lazily.

    ``measure(fn, n)`` gives energy and CO₂ per 1,000 inferences; ``cost()`` measures a block of
    work (an optimization step). Blocks may nest (a measurement inside an optimization): the
    running CodeCarbon task is split so each open block is billed for everything inside it.
    If CodeCarbon fails, figures are NaN and ``energy_method`` starts with ``"unavailable:"``;
    a run never fails because of energy.
    """

    _shared: ClassVar[dict[tuple[str, str], EnergyMeter]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, country_iso_code: str = "USA", *, tracking_mode: str = "process",
                 min_seconds: float = MIN_SECONDS) -> None:
        if tracking_mode not in ("process", "machine"):
            raise ConfigError(f"tracking_mode must be 'process' or 'machine'; got {tracking_mode!r}.")
        if not min_seconds > 0:
            raise ConfigError(f"min_seconds must be > 0; got {min_seconds!r}.")
        self.country_iso_code = check_country(country_iso_code)
        self.tracking_mode = tracking_mode
        self.min_seconds = float(min_seconds)
        self._tracker: Any = None
        self._error = ""
        self._method = ""
        self._is_estimate = True
        self._lock = threading.RLock()
        self._open: list[EnergyCost] = []
        self._task_running = False

    @classmethod
    def shared(cls, country_iso_code: str = "USA", *, tracking_mode: str = "process") -> EnergyMeter:
        """The process-wide meter for this country (its tracker starts once, on first use)."""
        key = (str(country_iso_code).strip().upper(), tracking_mode)
        with cls._shared_lock:
            if key not in cls._shared:
                cls._shared[key] = cls(country_iso_code, tracking_mode=tracking_mode)
            return cls._shared[key]

    # --- what it measured with ------------------------------------------------------------------
    @property
    def available(self) -> bool:
        return self._ensure_tracker() is not None

    @property
    def method(self) -> str:
        """How energy is obtained, e.g. ``"estimate: CodeCarbon ... CPU = TDP 8 W × ..."``."""
        if self._ensure_tracker() is None:
            return f"unavailable: {self._error}"
        if not self._method:
            self.prepare()
        return self._method or f"unavailable: {self._error}"

    @property
    def is_estimate(self) -> bool:
        self.method  # noqa: B018 - fills _is_estimate
        return self._is_estimate

    def prepare(self) -> None:
        """Pay CodeCarbon's one-off hardware detection (~2 s) now, e.g. when a worker starts."""
        with self._open_block(EnergyCost()):
            pass

    # --- measuring ------------------------------------------------------------------------------
    def measure(self, fn: Callable[[], Any], n_inferences: int, *, min_seconds: float | None = None,
                warmup: bool = False) -> dict[str, Any]:
        """Energy and CO₂ per 1,000 inferences of ``fn``, which runs ``n_inferences`` per call.

        ``fn`` is called at least once and until ``min_seconds`` (default: the meter's, 1 s) have
        passed; energy is divided by the inferences actually run. Returns ``energy_j_per_1k``,
        ``co2_g_per_1k``, ``energy_method``, ``energy_is_estimate`` and ``energy_window_s``.
        """
        n = int(n_inferences)
        if n < 1:
            raise ValueError(f"n_inferences must be >= 1, got {n_inferences!r}")
        window = self.min_seconds if min_seconds is None else float(min_seconds)
        if not self._method and self._ensure_tracker() is not None:
            # The first task in a process pays CodeCarbon's hardware detection (~2 s of CPU);
            # never bill that to the first model measured (it made baselines look 100× worse).
            self.prepare()
        if warmup:
            fn()
        calls = 0
        with self._open_block(EnergyCost()) as block:
            start = time.perf_counter()
            while True:
                fn()
                calls += 1
                if time.perf_counter() - start >= window:
                    break
        result = {"energy_j_per_1k": NAN, "co2_g_per_1k": NAN, "energy_method": self.method,
                  "energy_is_estimate": True, "energy_window_s": block.seconds}
        if block._error:
            result["energy_method"] = f"unavailable: {block._error}"
            return result
        if not (block.energy_j > 0 and math.isfinite(block.energy_j)):
            result["energy_method"] = f"unavailable: CodeCarbon reported {block.energy_j!r} J"
            return result
        per_1k = 1000.0 / (calls * n)
        result.update(energy_j_per_1k=block.energy_j * per_1k, co2_g_per_1k=block.co2_g * per_1k,
                      energy_is_estimate=self._is_estimate)
        return result

    @contextmanager
    def cost(self) -> Iterator[EnergyCost]:
        """Measure a block of work: ``with meter.cost() as c: ...`` then ``c.seconds``, ``c.energy_j``."""
        with self._open_block(EnergyCost()) as block:
            yield block

    # --- CodeCarbon plumbing --------------------------------------------------------------------
    @contextmanager
    def _open_block(self, block: EnergyCost) -> Iterator[EnergyCost]:
        tracker = self._ensure_tracker()
        with self._lock:
            self._split()
            self._open.append(block)
            self._start_task(tracker)
            block._t0 = time.perf_counter()  # after start_task: its first call detects hardware (~2 s)
        try:
            yield block
        finally:
            with self._lock:
                self._split()
                block.seconds = time.perf_counter() - block._t0
                self._open.remove(block)
                if tracker is None:
                    block._error = self._error
                elif not block._error and not math.isfinite(block.energy_j):
                    block.energy_j = block.co2_g = 0.0  # opened and closed without a task stop
                if not self._method and tracker is not None:
                    self._describe(tracker)
                block.method = f"unavailable: {block._error}" if block._error else self._method
                if self._open:
                    self._start_task(tracker)

    def _start_task(self, tracker: Any) -> None:
        if tracker is None:
            return
        try:
            tracker.start_task()
            self._task_running = True
        except Exception as err:  # noqa: BLE001 - energy must never fail a run
            self._fail_open_blocks(f"CodeCarbon start_task failed: {type(err).__name__}: {err}")

    def _split(self) -> None:
        """Stop the running task and bill its energy to every open block."""
        if not self._task_running:
            return
        self._task_running = False
        try:
            data = self._tracker.stop_task()
        except Exception as err:  # noqa: BLE001
            self._fail_open_blocks(f"CodeCarbon stop_task failed: {type(err).__name__}: {err}")
            return
        if data is None:
            self._fail_open_blocks("CodeCarbon recorded no task (see its log)")
            return
        energy_j = float(data.energy_consumed) * 3.6e6  # kWh -> J
        co2_g = float(data.emissions) * 1e3  # kg -> g
        for block in self._open:
            block.energy_j = (0.0 if math.isnan(block.energy_j) else block.energy_j) + energy_j
            block.co2_g = (0.0 if math.isnan(block.co2_g) else block.co2_g) + co2_g

    def _fail_open_blocks(self, reason: str) -> None:
        for block in self._open:
            block._error = block._error or reason

    def _ensure_tracker(self) -> Any:
        if self._tracker is not None or self._error:
            return self._tracker
        with self._lock:
            if self._tracker is not None or self._error:
                return self._tracker
            try:
                _quiet_codecarbon()
                from codecarbon import OfflineEmissionsTracker

                self._tracker = OfflineEmissionsTracker(
                    country_iso_code=self.country_iso_code, tracking_mode=self.tracking_mode,
                    save_to_file=False, save_to_api=False, save_to_logger=False,
                    save_to_prometheus=False, save_to_logfire=False,
                    # Nothing is written; a temp dir keeps a stray file out of the user's folder.
                    output_dir=tempfile.gettempdir(), log_level="error",
                    # Several optim workers (and other programs) may track at once: no lock file.
                    allow_multiple_runs=True, electricitymaps_api_token=None,
                    project_name="optim",
                )
            except Exception as err:  # noqa: BLE001
                self._error = f"CodeCarbon could not start: {type(err).__name__}: {err}"
                self._tracker = None
            return self._tracker

    def _describe(self, tracker: Any) -> None:
        """Read from CodeCarbon how it obtains CPU, GPU and RAM power; set the method label."""
        try:
            import codecarbon

            parts: list[str] = []
            estimated = False
            order = {"CPU": 0, "GPU": 1, "RAM": 3}
            for hw in sorted(tracker._hardware, key=lambda h: order.get(type(h).__name__, 2)):
                kind = type(hw).__name__
                if kind == "CPU":
                    text, est = _describe_cpu(hw)
                elif kind == "RAM":
                    text, est = _describe_ram(hw)
                elif kind == "GPU":
                    text, est = "GPU measured by NVML/AMDSMI", False
                elif kind in ("AppleSiliconChip", "Raspberry"):
                    text, est = f"{getattr(hw, 'chip_part', '')} measured by {kind}".strip(), False
                else:
                    text, est = kind, True
                parts.append(text)
                estimated = estimated or est
            self._is_estimate = estimated or not parts
            # Without a hardware counter every part is a power model times the window's duration.
            head = "estimate: power × time," if self._is_estimate else "measured:"
            self._method = (f"{head} CodeCarbon {codecarbon.__version__}, {self.tracking_mode} tracking: "
                            + " + ".join(parts))
        except Exception as err:  # noqa: BLE001 - the label is informative; keep the figure
            self._is_estimate = True
            self._method = f"estimate: CodeCarbon (method not readable: {type(err).__name__})"


def _describe_cpu(hw: Any) -> tuple[str, bool]:
    mode = getattr(hw, "_mode", "")
    if mode in _METERED_CPU:
        return f"CPU measured by {_METERED_CPU[mode]}", False
    tdp = getattr(hw, "_tdp", None)
    model = getattr(hw, "_model", "") or "unknown CPU"
    if getattr(hw, "_is_generic_tdp", False):
        source = f"CodeCarbon's default TDP, '{model}' not recognised"
    else:
        source = _tdp_source(model, tdp)
    if mode == "constant":
        return f"CPU estimated as a constant 50% of TDP {tdp} W (no RAPL; {source})", True
    if getattr(hw, "_tracking_mode", "machine") == "process":
        share = "this process's CPU time share"
    else:
        share = "(0.1 + 0.9 × machine load³)"
    return f"CPU estimated as TDP {tdp} W × {share} (no RAPL; {source})", True


def _tdp_source(model: str, tdp: Any) -> str:
    try:
        from codecarbon.core import cpu as cc_cpu
        from codecarbon.core.hardware_cache import get_cached_tdp

        if get_cached_tdp(cc_cpu)._get_cpu_power_from_registry(model):
            return f"'{model}' TDP from CodeCarbon's CPU table"
        return f"'{model}' not in CodeCarbon's CPU table: {cc_cpu.DEFAULT_POWER_PER_CORE} W per thread"
    except Exception:  # noqa: BLE001
        return f"'{model}'"


def _describe_ram(hw: Any) -> tuple[str, bool]:
    forced = getattr(hw, "_force_ram_power", None)
    if forced is not None:
        return f"RAM at a user-set {forced} W", True
    try:
        watts = f"{hw.total_power().W:.0f} W"
    except Exception:  # noqa: BLE001
        watts = "?"
    basis = "this process's memory" if getattr(hw, "_tracking_mode", "machine") == "process" else "installed memory"
    return f"RAM estimated at {watts} from {basis} (≥ 10 W on x86)", True
