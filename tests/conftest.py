"""Shared fixtures. Every test gets its own OPTIM_HOME so the store never touches ~/.optim."""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.ao\..*")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist a worker's temp root is ``<basetemp>/popen-gwN``: six characters shorter as
    ``<basetemp>/gwN``, which keeps Ray's Unix socket paths (tests/test_ray_executor.py) under the
    107-byte limit. Runs before pytest's own tmp_path set-up reads the option."""
    worker = getattr(config, "workerinput", None)
    base = Path(config.option.basetemp) if worker and config.option.basetemp else None
    if base is not None and base.name == f"popen-{worker['workerid']}":
        config.option.basetemp = str(base.with_name(worker["workerid"]))


def pytest_sessionstart(session: pytest.Session) -> None:
    """Screenshots in test-artifacts/e2e describe this session only: cleared once, by the process
    that runs the session (under pytest-xdist the controller, before any worker writes one)."""
    if hasattr(session.config, "workerinput"):
        return
    for old in (Path(__file__).resolve().parents[1] / "test-artifacts" / "e2e").glob("*.png"):
        old.unlink()


@pytest.fixture(autouse=True)
def _real_main_module():
    """Streamlit's AppTest runs its script as ``__main__`` and leaves that module in sys.modules; a
    later ``spawn`` child would then re-run the script (an AppTest.from_function one fails there).
    Each test ends with the interpreter's own ``__main__`` back."""
    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


@pytest.fixture(autouse=True)
def optim_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("optim-home")
    monkeypatch.setenv("OPTIM_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def load_sample():
    """``load_sample("digits-mlp")`` → (baseline Candidate, DataSplits), cached per session.

    Tests must not mutate what they get (candidates are immutable by contract; techniques deepcopy).
    """
    cache: dict[str, tuple] = {}

    def _load(name: str):
        if name not in cache:
            from optim.io.models import load_sample as _ls

            cache[name] = _ls(name)
        return cache[name]

    return _load


@pytest.fixture
def ctx_for(tmp_path: Path):
    """``ctx_for(splits, **overrides)`` → a RunContext with short measurement budgets for tests."""
    from optim.context import RunContext

    def _make(splits, **kw):
        kw.setdefault("threads", 1)
        kw.setdefault("latency_budget_s", 0.05)
        kw.setdefault("energy_inferences", 200)
        return RunContext(data=splits, workdir=tmp_path / "work", **kw)

    return _make


def wait_for(ready: Callable[[], object], what: str, limit_s: float = 480.0) -> None:
    """Poll until ``ready()`` holds. Wait only for a lasting state (a run that ended, a row written),
    never for a passing one another process may go through between two polls. The limit stops a
    broken test from hanging with a message saying what never came (a loaded machine gets there
    long before; pytest-timeout would stop the test at 600 s without saying why); it asserts no timing."""
    end = time.monotonic() + limit_s
    while not ready():
        assert time.monotonic() < end, f"never saw {what} within {limit_s:g} s"
        time.sleep(0.1)


FAST = dict(latency_budget_s=0.05, energy_inferences=200, threads=1, device_profiles=False)


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory):
    """One real run shared by several test files: digits-mlp baseline, dynamic int8, a sparsity
    sweep, and a recipe that fails (pruning an int8 model has no float Linear layer to prune)."""
    from optim.experiment import ExperimentSpec, run_experiment
    from optim.store import Store

    root = tmp_path_factory.mktemp("small-run")
    store = Store(root / "optim.db")
    spec = ExperimentSpec(
        model="sample:digits-mlp", data="sample",
        recipes=["quantize-dynamic", "prune-magnitude:sparsity=0.5|0.9", "quantize-dynamic+prune-magnitude"],
        **FAST,
    )
    results = run_experiment(spec, store=store, out_dir=root / "run")
    return results, store


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for the session (tests/store_pg.py); each test asks it for a fresh database.
    Missing binaries fail on CI (.ci/run installs them) and skip, with what to install, elsewhere."""
    from tests.store_pg import INSTALL, PostgresServer

    try:
        server = PostgresServer()
    except FileNotFoundError as err:
        if os.environ.get("CI"):
            pytest.fail(f"{err} (CI must install it: see .ci/run)")
        pytest.skip(f"{err}; {INSTALL}")
    yield server
    server.stop()
