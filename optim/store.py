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
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    finished REAL,
    name TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,            -- queued, running, done, partial, failed, cancelled
    spec TEXT NOT NULL,              -- ExperimentSpec as JSON: replays the run
    out_dir TEXT NOT NULL,
    error TEXT,
    progress REAL NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    pid INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    environment TEXT,
    started REAL,                    -- when it left the queue (created = when it was submitted)
    host TEXT,                       -- the machine of the process that runs it
    pid_start REAL,                  -- that process's start time: with pid, immune to pid reuse
    heartbeat REAL,                  -- last sign of life from that process
    notes TEXT NOT NULL DEFAULT '',  -- the user's notes on the run
    tags TEXT NOT NULL DEFAULT '[]'  -- the user's tags, a JSON list of strings
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
    kind TEXT NOT NULL,              -- see EVENT_KINDS
    candidate_id TEXT,
    step TEXT,
    fraction REAL,
    message TEXT NOT NULL DEFAULT '',
    data TEXT                        -- the event's structured payload, JSON
);
CREATE INDEX IF NOT EXISTS events_run ON events(run_id, id);
CREATE INDEX IF NOT EXISTS events_kind ON events(run_id, kind, candidate_id, id);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status, created);
"""

#: Columns added after the first release: added to an older store file when it is opened.
_ADDED_COLUMNS = {
    "runs": {"started": "REAL", "host": "TEXT", "pid_start": "REAL", "heartbeat": "REAL",
             "notes": "TEXT NOT NULL DEFAULT ''", "tags": "TEXT NOT NULL DEFAULT '[]'"},
    "events": {"data": "TEXT"},
}

#: Bounds of what a user writes about a run (History): a name, notes, tags.
MAX_NAME_CHARS, MAX_NOTES_CHARS, MAX_TAGS, MAX_TAG_CHARS = 120, 5000, 20, 40


def clean_tags(tags: Iterable[str]) -> list[str]:
    """Tags as stored: trimmed, lower-case, de-duplicated in order, bounded in count and length."""
    out = [t.strip().lower()[:MAX_TAG_CHARS] for t in tags if t and t.strip()]
    return list(dict.fromkeys(out))[:MAX_TAGS]


def search_runs(runs: Iterable[dict[str, Any]], text: str = "", tags: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The runs whose name, notes, tags, id, status, model, data or recipes contain every word of
    ``text`` (case-insensitive), and that carry every tag in ``tags``."""
    words = text.lower().split()
    wanted = set(clean_tags(tags))
    out = []
    for run in runs:
        spec = run.get("spec") or {}
        hay = " ".join(str(v) for v in (
            run.get("name"), run.get("notes"), " ".join(run.get("tags") or []), run.get("id"), run.get("status"),
            spec.get("model"), spec.get("data"), " ".join(spec.get("recipes") or []),
            " ".join((spec.get("labels") or {}).values()))).lower()
        if all(w in hay for w in words) and wanted <= set(run.get("tags") or []):
            out.append(run)
    return out


#: Every status a run can have. ``partial``: finished, but some variants failed.
RUN_STATUSES = ("queued", "running", "done", "partial", "failed", "cancelled")
#: Statuses of a run that is not over: waiting for its turn, or being measured.
ACTIVE_STATUSES = ("queued", "running")
#: Statuses of a finished run.
FINISHED_STATUSES = ("done", "partial", "failed", "cancelled")
#: Kinds of events a run records. ``status``: the run's status changed (message = new status);
#: ``plan``: the variants it will run (data = {"recipes": [...]}); ``recipe``: a recipe started
#: (candidate_id = its first candidate, data = {"index", "recipe"}); ``progress``: a candidate's
#: step and fraction; ``log``: a line for people to read, never parsed.
EVENT_KINDS = ("status", "plan", "recipe", "progress", "log")


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
            for table, columns in _ADDED_COLUMNS.items():
                have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
                for name, kind in columns.items():
                    if name not in have:
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

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
    def create_run(self, spec: dict[str, Any], out_dir: str | Path | None = None, name: str = "",
                   *, plan: list[str] | None = None, **owner: Any) -> str:
        """Record a new run (status ``queued``) and return its id.

        ``plan``: the recipe of every variant it will run, in order (a ``plan`` event, so the
        queued variants can be shown before any starts); ``owner``: host/pid/pid_start of the
        process that will run it.
        """
        bad = set(owner) - {"host", "pid", "pid_start", "heartbeat"}
        if bad:
            raise ValueError(f"cannot set {sorted(bad)}")
        run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        out = Path(out_dir) if out_dir else self.runs_dir / run_id
        cols = ("id", "created", "name", "status", "spec", "out_dir", *owner)
        with self._connect() as db:
            db.execute(
                f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                (run_id, time.time(), name, "queued", to_json(spec), str(out.resolve()), *owner.values()),
            )
            self._status_event(db, run_id, "queued")
            if plan is not None:
                db.execute("INSERT INTO events (run_id, ts, kind, message, data) VALUES (?,?,?,?,?)",
                           (run_id, time.time(), "plan", f"{len(plan)} variant(s)", to_json({"recipes": plan})))
        return run_id

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set fields of a run; a new ``status`` is also recorded as a ``status`` event."""
        allowed = {"status", "error", "progress", "message", "pid", "finished", "environment", "name",
                   "started", "host", "pid_start", "heartbeat"}
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
            if "status" in fields:
                self._status_event(db, run_id, fields["status"])

    def finish_if_active(self, run_id: str, status: str, *, error: str | None = None,
                         progress: float | None = None) -> bool:
        """End a run that is still queued or running (False if it already ended: a worker that
        finished between a liveness check and this call keeps its own outcome)."""
        if status not in FINISHED_STATUSES:
            raise ValueError(f"status {status!r}")
        now = time.time()
        with self._connect() as db:
            cur = db.execute(
                "UPDATE runs SET status=?, error=COALESCE(?, error), message=?, finished=?,"
                " progress=COALESCE(?, progress) WHERE id=? AND status IN (?, ?)",
                (status, error, error or status, now, progress, run_id, *ACTIVE_STATUSES),
            )
            if cur.rowcount:
                self._status_event(db, run_id, status)
            return bool(cur.rowcount)

    def claim(self, run_id: str, *, wait_for_others: bool = True, **owner: Any) -> bool:
        """Move a queued run to ``running`` if it is its turn; True when it did.

        Its turn: no other run is running and no queued run was submitted before it (first come,
        first served). ``wait_for_others=False`` starts it regardless (``optim run --no-queue``).
        One UPDATE decides, so two processes claiming at once cannot both win.
        """
        sets = "".join(f", {k}=?" for k in owner)
        turn = (" AND NOT EXISTS (SELECT 1 FROM runs o WHERE o.id<>runs.id AND (o.status='running'"
                " OR (o.status='queued' AND (o.created<runs.created"
                " OR (o.created=runs.created AND o.id<runs.id)))))") if wait_for_others else ""
        with self._connect() as db:
            cur = db.execute(f"UPDATE runs SET status='running', started=?{sets} WHERE id=? AND status='queued'"
                             + turn, (time.time(), *owner.values(), run_id))
            if cur.rowcount:
                self._status_event(db, run_id, "running")
            return bool(cur.rowcount)

    def active_runs(self) -> list[dict[str, Any]]:
        """Runs queued or running, in queue order (the running ones first, then by submission)."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM runs WHERE status IN (?, ?) ORDER BY CASE WHEN status='running' THEN 0 ELSE 1 END,"
                " created, id", ACTIVE_STATUSES,
            ).fetchall()
        return [self._run_dict(r) for r in rows]

    @staticmethod
    def _status_event(db: sqlite3.Connection, run_id: str, status: str) -> None:
        db.execute("INSERT INTO events (run_id, ts, kind, message) VALUES (?,?,?,?)",
                   (run_id, time.time(), "status", status))

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
        d["tags"] = json.loads(d.get("tags") or "[]")
        return d

    def describe_run(self, run_id: str, *, name: str | None = None, notes: str | None = None,
                     tags: Iterable[str] | None = None) -> None:
        """Set a run's name, notes and tags (what the user calls and remembers it by); ``None`` keeps
        a field. Tags are trimmed, de-duplicated and bounded (``MAX_TAGS`` of ``MAX_TAG_CHARS``)."""
        fields: dict[str, Any] = {}
        if name is not None:
            fields["name"] = name.strip()[:MAX_NAME_CHARS]
        if notes is not None:
            fields["notes"] = notes.strip()[:MAX_NOTES_CHARS]
        if tags is not None:
            fields["tags"] = to_json(clean_tags(tags))
        if not fields:
            return
        self.run(run_id)  # a KeyError names an unknown id
        sets = ", ".join(f"{k}=?" for k in fields)
        with self._connect() as db:
            db.execute(f"UPDATE runs SET {sets} WHERE id=?", (*fields.values(), run_id))

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
    def event(self, run_id: str, kind: str, *, candidate_id: str | None = None, step: str | None = None,
              fraction: float | None = None, message: str = "", data: dict[str, Any] | None = None) -> None:
        """Record one event of ``kind`` (one of EVENT_KINDS) with its structured ``data``."""
        if kind not in EVENT_KINDS:
            raise ValueError(f"event kind {kind!r}")
        with self._connect() as db:
            db.execute(
                "INSERT INTO events (run_id, ts, kind, candidate_id, step, fraction, message, data)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (run_id, time.time(), kind, candidate_id, step, fraction, message,
                 None if data is None else to_json(data)),
            )

    def log(self, run_id: str, message: str, candidate_id: str | None = None) -> None:
        self.event(run_id, "log", candidate_id=candidate_id, message=message)

    def progress(self, run_id: str, candidate_id: str, step: str, fraction: float, message: str = "") -> None:
        self.event(run_id, "progress", candidate_id=candidate_id, step=step, fraction=fraction, message=message)

    def events(self, run_id: str, since_id: int = 0, kind: str | None = None,
               last: int | None = None) -> list[dict[str, Any]]:
        """The run's events in order (of one ``kind``; only the ``last`` N when given)."""
        q = "SELECT * FROM events WHERE run_id=? AND id>?"
        args: list[Any] = [run_id, since_id]
        if kind:
            q += " AND kind=?"
            args.append(kind)
        if last is not None:
            q = f"SELECT * FROM ({q} ORDER BY id DESC LIMIT ?) tail"
            args.append(int(last))
        with self._connect() as db:
            rows = db.execute(q + " ORDER BY id", args).fetchall()
        return [self._event_dict(r) for r in rows]

    @staticmethod
    def _event_dict(row: sqlite3.Row) -> dict[str, Any]:
        d = dict(row)
        d["data"] = json.loads(d["data"]) if d.get("data") else {}
        return d

    def latest_progress(self, run_id: str) -> dict[str, dict[str, Any]]:
        """The newest progress event of each candidate: what a progress bar per candidate shows."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT e.* FROM events e JOIN (SELECT candidate_id, MAX(id) AS id FROM events "
                "WHERE run_id=? AND kind='progress' GROUP BY candidate_id) m ON e.id = m.id ORDER BY e.id",
                (run_id,),
            ).fetchall()
        return {r["candidate_id"]: self._event_dict(r) for r in rows}
