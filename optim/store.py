"""The store: one SQLite file (embedded, zero setup) under ``OPTIM_HOME`` plus artifacts beside it.

A run writes its progress, log lines and every finished row as it goes, so a crash, a page
reload or a second browser tab loses nothing and sees the same job. Every call opens its own
connection (WAL mode), which keeps the store safe to use from the UI and a worker process at once.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    finished REAL,
    name TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,            -- queued, running, done, failed, cancelled
    spec TEXT NOT NULL,              -- ExperimentSpec as JSON: replays the run
    out_dir TEXT NOT NULL,
    error TEXT,
    progress REAL NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    pid INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    environment TEXT
);
CREATE TABLE IF NOT EXISTS rows (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    candidate_id TEXT NOT NULL,
    row TEXT NOT NULL,
    PRIMARY KEY (run_id, candidate_id)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,              -- log, progress
    candidate_id TEXT,
    step TEXT,
    fraction REAL,
    message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_run ON events(run_id, id);
"""

RUN_STATUSES = ("queued", "running", "done", "failed", "cancelled")


def optim_home() -> Path:
    """``$OPTIM_HOME`` or ``~/.optim``: where the store and run artifacts live."""
    home = Path(os.environ.get("OPTIM_HOME") or Path.home() / ".optim").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def to_json(value: Any) -> str:
    """JSON that turns NaN/inf into null and numpy scalars into plain numbers."""
    return json.dumps(_clean(value), default=_default, allow_nan=False)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            return _clean(value.item())
        except (ValueError, AttributeError):
            pass
    return value


def _default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return _clean(value.tolist())
    if isinstance(value, Path):
        return str(value)
    return str(value)


class Store:
    """Runs, their result rows, and their progress/log events in SQLite."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else optim_home() / "optim.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(SCHEMA)

    @property
    def runs_dir(self) -> Path:
        return self.path.parent / "runs"

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
            db.commit()
        finally:
            db.close()

    # --- runs -------------------------------------------------------------------------------
    def create_run(self, spec: dict[str, Any], out_dir: str | Path | None = None, name: str = "") -> str:
        """Record a new run (status ``queued``) and return its id."""
        run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        out = Path(out_dir) if out_dir else self.runs_dir / run_id
        with self._connect() as db:
            db.execute(
                "INSERT INTO runs (id, created, name, status, spec, out_dir) VALUES (?,?,?,?,?,?)",
                (run_id, time.time(), name, "queued", to_json(spec), str(out.resolve())),
            )
        return run_id

    def update_run(self, run_id: str, **fields: Any) -> None:
        allowed = {"status", "error", "progress", "message", "pid", "finished", "environment", "name"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"cannot update {sorted(bad)}")
        if "status" in fields and fields["status"] not in RUN_STATUSES:
            raise ValueError(f"status {fields['status']!r}")
        if "environment" in fields and not isinstance(fields["environment"], str):
            fields["environment"] = to_json(fields["environment"])
        sets = ", ".join(f"{k}=?" for k in fields)
        with self._connect() as db:
            db.execute(f"UPDATE runs SET {sets} WHERE id=?", (*fields.values(), run_id))

    def run(self, run_id: str) -> dict[str, Any]:
        """The run's record; a KeyError names an unknown id."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(run_id)
        return self._run_dict(row)

    def runs(self, limit: int = 200) -> list[dict[str, Any]]:
        """Recent runs, newest first, each with its row count."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT runs.*, (SELECT COUNT(*) FROM rows WHERE rows.run_id = runs.id) AS n_rows "
                "FROM runs ORDER BY created DESC LIMIT ?", (limit,),
            ).fetchall()
        return [self._run_dict(r) for r in rows]

    @staticmethod
    def _run_dict(row: sqlite3.Row) -> dict[str, Any]:
        d = dict(row)
        d["spec"] = json.loads(d["spec"])
        d["environment"] = json.loads(d["environment"]) if d.get("environment") else {}
        d["cancel_requested"] = bool(d["cancel_requested"])
        return d

    def delete_run(self, run_id: str, *, artifacts: bool = True) -> None:
        """Forget a run; with ``artifacts`` also remove its folder if it lives under the store."""
        info = self.run(run_id)
        with self._connect() as db:
            db.execute("DELETE FROM events WHERE run_id=?", (run_id,))
            db.execute("DELETE FROM rows WHERE run_id=?", (run_id,))
            db.execute("DELETE FROM runs WHERE id=?", (run_id,))
        out = Path(info["out_dir"])
        if artifacts and out.is_dir() and self.runs_dir.resolve() in out.resolve().parents:
            shutil.rmtree(out, ignore_errors=True)

    def request_cancel(self, run_id: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE runs SET cancel_requested=1 WHERE id=?", (run_id,))

    def cancel_requested(self, run_id: str) -> bool:
        with self._connect() as db:
            row = db.execute("SELECT cancel_requested FROM runs WHERE id=?", (run_id,)).fetchone()
        return bool(row and row[0])

    # --- rows -------------------------------------------------------------------------------
    def put_row(self, run_id: str, row: dict[str, Any]) -> None:
        """Insert or replace one candidate's result row (keyed by ``candidate_id``)."""
        cid = str(row["candidate_id"])
        with self._connect() as db:
            idx = db.execute(
                "SELECT COALESCE((SELECT idx FROM rows WHERE run_id=? AND candidate_id=?),"
                " (SELECT COUNT(*) FROM rows WHERE run_id=?))", (run_id, cid, run_id),
            ).fetchone()[0]
            db.execute("INSERT OR REPLACE INTO rows (run_id, idx, candidate_id, row) VALUES (?,?,?,?)",
                       (run_id, idx, cid, to_json(row)))

    def rows(self, run_id: str) -> list[dict[str, Any]]:
        """The run's rows in the order they were first written (baseline first)."""
        with self._connect() as db:
            rows = db.execute("SELECT row FROM rows WHERE run_id=? ORDER BY idx", (run_id,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def results(self, run_id: str) -> Any:
        """The rows as a pandas DataFrame (nested details stay as Python objects)."""
        import pandas as pd

        return pd.DataFrame(self.rows(run_id))

    # --- events -----------------------------------------------------------------------------
    def log(self, run_id: str, message: str, candidate_id: str | None = None) -> None:
        with self._connect() as db:
            db.execute("INSERT INTO events (run_id, ts, kind, candidate_id, message) VALUES (?,?,?,?,?)",
                       (run_id, time.time(), "log", candidate_id, message))

    def progress(self, run_id: str, candidate_id: str, step: str, fraction: float, message: str = "") -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO events (run_id, ts, kind, candidate_id, step, fraction, message) VALUES (?,?,?,?,?,?,?)",
                (run_id, time.time(), "progress", candidate_id, step, fraction, message),
            )

    def events(self, run_id: str, since_id: int = 0, kind: str | None = None) -> list[dict[str, Any]]:
        q = "SELECT * FROM events WHERE run_id=? AND id>?"
        args: list[Any] = [run_id, since_id]
        if kind:
            q += " AND kind=?"
            args.append(kind)
        with self._connect() as db:
            return [dict(r) for r in db.execute(q + " ORDER BY id", args).fetchall()]

    def latest_progress(self, run_id: str) -> dict[str, dict[str, Any]]:
        """The newest progress event of each candidate: what a progress bar per candidate shows."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT e.* FROM events e JOIN (SELECT candidate_id, MAX(id) AS id FROM events "
                "WHERE run_id=? AND kind='progress' GROUP BY candidate_id) m ON e.id = m.id ORDER BY e.id",
                (run_id,),
            ).fetchall()
        return {r["candidate_id"]: dict(r) for r in rows}
