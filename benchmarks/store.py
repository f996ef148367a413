"""What one store call costs: SQLite (the default) and a PostgreSQL server on this machine, and, for
contrast, the SQLite store as it was before it moved to SQLAlchemy (``--before COMMIT``).

Each round times a batch of writes (``put_row``, ``progress`` events) and of the reads a Run page
refresh does (``run``, ``rows``, ``latest_progress``, ``runs``) on every backend in turn, so a busy
machine slows them alike; the table gives medians over the rounds, in milliseconds per call.
PostgreSQL is Debian's, started like the tests start it (tests/store_pg.py: fsync off, so its
writes are not comparable with SQLite's synced commits; its reads are).

    .venv/bin/python benchmarks/store.py [--rounds 15] [--before 9c94745] [--out benchmarks/results/store.md]
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import emit  # noqa: E402
from optim.store import Store  # noqa: E402
from tests.store_pg import PostgresServer  # noqa: E402


def _old_store(commit: str, folder: Path) -> Any:
    """``optim/store.py`` of ``commit``, loaded as its own module (its imports are the stdlib's)."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:optim/store.py"], check=True,
                            capture_output=True, text=True).stdout
    path = folder / "store_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("store_before", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Store


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _round(store: Any, rid: str, n: int) -> dict[str, float]:
    """Milliseconds per call of each kind, over ``n`` calls of each."""
    out = {}
    t = time.perf_counter()
    for i in range(n):
        store.put_row(rid, {"candidate_id": f"c{i % 20}", "metric_value": i})
    out["put_row"] = (time.perf_counter() - t) / n * 1e3
    t = time.perf_counter()
    for i in range(n):
        store.progress(rid, f"c{i % 20}", "measure", 0.5)
    out["progress event"] = (time.perf_counter() - t) / n * 1e3
    t = time.perf_counter()
    for _ in range(n):
        store.run(rid), store.rows(rid), store.latest_progress(rid), store.runs()
    out["read (run, rows, latest_progress, runs)"] = (time.perf_counter() - t) / (4 * n) * 1e3
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=20, help="calls of each kind per round")
    ap.add_argument("--before", default="", help="a commit whose SQLite store to time beside this one")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="optim-store-bench-"))
    server = PostgresServer()
    try:
        stores: dict[str, Any] = {"SQLite (this code)": Store(folder / "new.db"),
                                  "PostgreSQL 127.0.0.1 (this code)": Store(server.new_database())}
        if args.before:
            stores[f"SQLite (before, {args.before})"] = _old_store(args.before, folder)(folder / "old.db")
        runs = {name: s.create_run({"model": "m"}, plan=["x"]) for name, s in stores.items()}
        times: dict[str, list[dict[str, float]]] = {name: [] for name in stores}
        for _ in range(args.rounds):
            for name, s in stores.items():  # interleaved: a busy spell slows every backend alike
                times[name].append(_round(s, runs[name], args.calls))
    finally:
        server.stop()
    kinds = list(next(iter(times.values()))[0])
    lines = [
        "## What one store call costs (`benchmarks/store.py`)",
        "",
        f"Command: `.venv/bin/python benchmarks/store.py --rounds {args.rounds} --calls {args.calls}"
        f"{' --before ' + args.before if args.before else ''}` · date {time.strftime('%Y-%m-%d')} · "
        f"{_cpu()}, shared machine · medians over {args.rounds} interleaved "
        f"rounds, ms per call.",
        "",
        "| store | " + " | ".join(kinds) + " |",
        "| --- |" + " --- |" * len(kinds),
    ]
    for name, rounds in times.items():
        lines.append(f"| {name} | " + " | ".join(f"{statistics.median(r[k] for r in rounds):.2f}" for k in kinds)
                     + " |")
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
