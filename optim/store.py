"""The store: runs, result rows and events in a database; run folders under an artifacts root.

By default one SQLite file (embedded, zero setup) ``$OPTIM_HOME/optim.db`` with run folders beside
it. A SQLAlchemy URL (``--store`` or ``$OPTIM_STORE_URL``, e.g. ``postgresql://user:pw@host/db``)
puts the same schema on a database server so a team shares runs and history; ``$OPTIM_ARTIFACTS``
moves the run folders. A run writes its progress, log lines and every finished row as it goes, so
a crash, a page reload or a second browser tab loses nothing and sees the same job. Each call is
one short transaction (SQLite in WAL mode: readers never wait for the writer), which keeps the
store safe to use from the UI and worker processes at once; each process keeps a connection or
two open per store.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    URL,
    BigInteger,
    Column,
    Connection,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Row,
    Table,
    Text,
    and_,
    case,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError
from sqlalchemy.pool import QueuePool

from optim.errors import OptimError, redact_secrets

#: The schema, declared once for every backend (SQLite's file and a PostgreSQL server alike).
#: Times are seconds since the epoch (double precision: a REAL of PostgreSQL would round them).
metadata = MetaData()
runs_table = Table(
    "runs", metadata,
    Column("id", Text, primary_key=True),
    Column("created", Double, nullable=False),
    Column("finished", Double),
    Column("name", Text, nullable=False, server_default=""),
    Column("status", Text, nullable=False),  # queued, running, done, partial, failed, cancelled
    Column("spec", Text, nullable=False),  # ExperimentSpec as JSON: replays the run
    Column("out_dir", Text, nullable=False),
    Column("error", Text),
    Column("progress", Double, nullable=False, server_default="0"),
    Column("message", Text, nullable=False, server_default=""),
    Column("pid", Integer),
    Column("cancel_requested", Integer, nullable=False, server_default="0"),
    Column("environment", Text),
    Column("started", Double),  # when it left the queue (created = when it was submitted)
    Column("host", Text),  # the machine of the process that runs it
    Column("pid_start", Double),  # that process's start time: with pid, immune to pid reuse
    Column("heartbeat", Double),  # last sign of life from that process
    Column("notes", Text, nullable=False, server_default=""),  # the user's notes on the run
    Column("tags", Text, nullable=False, server_default="[]"),  # the user's tags, a JSON list of strings
)
rows_table = Table(
    "rows", metadata,
    Column("run_id", Text, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("idx", Integer, nullable=False),
    Column("candidate_id", Text, primary_key=True),
    Column("row", Text, nullable=False),
)
events_table = Table(
    "events", metadata,
    # SQLite: INTEGER PRIMARY KEY AUTOINCREMENT (ids never reused); PostgreSQL: a 64-bit serial.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("run_id", Text, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("ts", Double, nullable=False),
    Column("kind", Text, nullable=False),  # see EVENT_KINDS
    Column("candidate_id", Text),
    Column("step", Text),
    Column("fraction", Double),
    Column("message", Text, nullable=False, server_default=""),
    Column("data", Text),  # the event's structured payload, JSON
    sqlite_autoincrement=True,
)
Index("events_run", events_table.c.run_id, events_table.c.id)
Index("events_kind", events_table.c.run_id, events_table.c.kind, events_table.c.candidate_id, events_table.c.id)
Index("runs_status", runs_table.c.status, runs_table.c.created)

#: Environment variables: the store's URL (or a SQLite file path), and the root of run folders.
STORE_ENV, ARTIFACTS_ENV = "OPTIM_STORE_URL", "OPTIM_ARTIFACTS"
#: Seconds to wait for a database server before saying it cannot be reached.
CONNECT_TIMEOUT_S = 10
#: PostgreSQL advisory lock held while a run claims its turn (any constant shared by every optim).
_CLAIM_LOCK = 0x6F7074696D

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


_URL_HINT = ("Give a file path, sqlite:////ABSOLUTE/PATH.db, or a PostgreSQL URL: postgresql:// then "
             "USER:PASSWORD@HOST:PORT/DATABASE (--store or OPTIM_STORE_URL).")


class StoreUnavailable(OptimError):
    """The store's database cannot be opened or reached (a server down, a wrong password, a locked file)."""


def store_url(target: str | Path | None = None) -> URL:
    """The SQLAlchemy URL of a store: ``target`` (a SQLite file path or a database URL), else
    ``$OPTIM_STORE_URL``, else the SQLite file ``$OPTIM_HOME/optim.db``. ``postgresql://`` means
    the psycopg (v3) driver; a URL optim cannot use is an OptimError with the forms it accepts."""
    raw: str | Path | None = target if target not in (None, "") else (os.environ.get(STORE_ENV) or "").strip()
    if not raw:
        return URL.create("sqlite", database=str(optim_home() / "optim.db"))
    if isinstance(raw, Path) or "://" not in raw:
        return URL.create("sqlite", database=str(Path(raw).expanduser()))
    shown = redact_secrets(raw)
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise OptimError(f"store {shown!r} is not a database URL.", hint=_URL_HINT) from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise OptimError(f"store {shown!r} names no file: an in-memory store would vanish with each call.",
                             hint=_URL_HINT)
        return url
    if backend == "postgresql":
        # One driver for every PostgreSQL URL: psycopg 3 (SQLAlchemy would pick psycopg2 for a bare scheme).
        return url.set(drivername="postgresql+psycopg") if url.drivername == "postgresql" else url
    raise OptimError(f"store {shown!r}: {backend} is not a supported store.", hint=_URL_HINT)


def store_label(target: str | Path | None = None) -> str:
    """The store as people may see it (sidebar, logs, errors): the SQLite file, or the URL with its
    password masked. Nothing is opened."""
    url = store_url(target)
    if url.get_backend_name() == "sqlite":
        return str(url.database)
    return redact_secrets(url.render_as_string(hide_password=True))


_ENGINES: dict[str, Engine] = {}
_READY: set[str] = set()
_ENGINES_LOCK = threading.Lock()


#: SQLite files whose connections a process keeps open at once (each is three file handles).
MAX_OPEN_FILES = 16


def _engine(url: URL, *, fresh: bool = False) -> Engine:
    """One engine per store URL and process, each keeping a connection or two open between calls
    (opening one per call made every read three times slower). ``fresh``: reconnect (a SQLite file
    that was deleted and made anew must not be read through a handle on the old one)."""
    key = url.render_as_string(hide_password=False)
    with _ENGINES_LOCK:
        engine = _ENGINES.pop(key, None)
        if engine is not None and fresh:
            engine.dispose()
        if engine is None:
            engine = _make_engine(url)
        _ENGINES[key] = engine  # the newest last: the least recently opened file is closed first
        files = [k for k, e in _ENGINES.items() if e.dialect.name == "sqlite"]
        for old in files[:-MAX_OPEN_FILES]:
            _ENGINES.pop(old).dispose()  # a Store still holding it reconnects on its next call
        return engine


def _make_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, poolclass=QueuePool, pool_size=1, max_overflow=8,
                               connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    try:
        return create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=8,
                             connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    except ModuleNotFoundError as err:
        raise OptimError(f"store {store_label(url.render_as_string(hide_password=False))}: its database driver "
                         f"is missing ({err.name}).", hint="pip install 'psycopg[binary]'") from None


def _forget_pools() -> None:
    # A forked child must not share its parent's server connections: it opens its own.
    for engine in _ENGINES.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_pools)


def _ensure_schema(conn: Connection) -> None:
    """Create what is missing: tables, columns added since a store was made, indexes."""
    if conn.dialect.name == "postgresql":  # two processes creating the tables at once would collide
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CLAIM_LOCK + 1})
    metadata.create_all(conn)
    look = inspect(conn)
    quote = conn.dialect.identifier_preparer.quote
    for table in metadata.sorted_tables:
        have = {c["name"] for c in look.get_columns(table.name)}
        for col in table.columns:
            if col.name in have:
                continue
            ddl = f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(col.name)} {col.type.compile(conn.dialect)}"
            if col.server_default is not None:
                value = str(col.server_default.arg).replace("'", "''")  # type: ignore[attr-defined]
                ddl += f" {'' if col.nullable else 'NOT NULL '}DEFAULT '{value}'"
            conn.execute(text(ddl))
        indexes = {i["name"] for i in look.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexes:
                index.create(conn)


def same_queue(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two runs wait in one queue: runs of one machine (a run without a host, recorded by an
    older optim, queues with every machine). :meth:`Store.claim` says the same in SQL."""
    return not a.get("host") or not b.get("host") or a["host"] == b["host"]


class Store:
    """Runs, their result rows, and their progress/log events in a database (SQLite or PostgreSQL).

    ``target``: a SQLite file or a SQLAlchemy URL (default: ``$OPTIM_STORE_URL``, else
    ``$OPTIM_HOME/optim.db``). ``artifacts``: the root of run folders (default:
    ``$OPTIM_ARTIFACTS``, else the SQLite file's folder or ``OPTIM_HOME``).
    """

    def __init__(self, target: str | Path | None = None, *, artifacts: str | Path | None = None) -> None:
        self.url = store_url(target)
        sqlite = self.url.get_backend_name() == "sqlite"
        #: The SQLite file (None for a database server).
        self.path: Path | None = Path(str(self.url.database)) if sqlite else None
        root = artifacts or os.environ.get(ARTIFACTS_ENV) or (self.path.parent if self.path else optim_home())
        #: Where run folders go (``runs/<id>``) when a run names none.
        self.artifacts = Path(root).expanduser()
        #: The store as people may see it: the file, or the URL with its password masked.
        self.label = str(self.path) if self.path else store_label(self.url.render_as_string(hide_password=False))
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        key = self.url.render_as_string(hide_password=False)
        made_anew = bool(self.path and not self.path.exists())
        self._engine = _engine(self.url, fresh=made_anew)
        if key not in _READY or made_anew:
            with self._connect() as db:
                _ensure_schema(db)
            _READY.add(key)

    @property
    def target(self) -> str:
        """What reopens this store: ``Store(store.target)`` (the file, or the URL with its password:
        a cache key or a child's setting, never shown)."""
        return str(self.path) if self.path else self.url.render_as_string(hide_password=False)

    def __repr__(self) -> str:
        return f"Store({self.label!r})"

    @property
    def runs_dir(self) -> Path:
        return self.artifacts / "runs"

    def child_env(self) -> dict[str, str]:
        """Environment variables that point a child process (a background worker) at this store and
        artifacts root. They hold the real URL: pass them in the environment, never on a command line."""
        env = {STORE_ENV: self.target, ARTIFACTS_ENV: str(self.artifacts.resolve())}
        if self.path:
            env.update({STORE_ENV: str(self.path.resolve()), "OPTIM_HOME": str(self.path.parent.resolve())})
        return env

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        """One transaction, committed on success; a database that cannot be reached is an OptimError."""
        try:
            with self._engine.begin() as db:
                yield db
        except (OperationalError, InterfaceError) as err:
            reason = redact_secrets(str(getattr(err, "orig", err) or err).strip().splitlines()[0])
            if self.path:
                hint = (f"Check that {self.path.parent} is writable and that no other program holds the file "
                        f"locked, or point --store / OPTIM_STORE_URL elsewhere.")
            else:
                hint = ("Check that the server runs and that the URL's host, port, user, password and database "
                        "are right (--store or OPTIM_STORE_URL); unset OPTIM_STORE_URL to use the local SQLite store.")
            raise StoreUnavailable(f"the store {self.label} cannot be used: {reason}", hint=hint) from None

    def _upsert(self, table: Table) -> Any:
        """INSERT … ON CONFLICT for this store's dialect."""
        return (pg_insert if self._engine.dialect.name == "postgresql" else sqlite_insert)(table)

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
        with self._connect() as db:
            db.execute(insert(runs_table).values(id=run_id, created=time.time(), name=name, status="queued",
                                                 spec=to_json(spec), out_dir=str(out.resolve()), **owner))
            self._status_event(db, run_id, "queued")
            if plan is not None:
                db.execute(insert(events_table).values(run_id=run_id, ts=time.time(), kind="plan",
                                                       message=f"{len(plan)} variant(s)",
                                                       data=to_json({"recipes": plan})))
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
        with self._connect() as db:
            db.execute(update(runs_table).where(runs_table.c.id == run_id).values(**fields))
            if "status" in fields:
                self._status_event(db, run_id, fields["status"])

    def finish_if_active(self, run_id: str, status: str, *, error: str | None = None,
                         progress: float | None = None) -> bool:
        """End a run that is still queued or running (False if it already ended: a worker that
        finished between a liveness check and this call keeps its own outcome)."""
        if status not in FINISHED_STATUSES:
            raise ValueError(f"status {status!r}")
        values: dict[str, Any] = {"status": status, "message": error or status, "finished": time.time()}
        if error is not None:
            values["error"] = error
        if progress is not None:
            values["progress"] = progress
        r = runs_table.c
        with self._connect() as db:
            cur = db.execute(update(runs_table).where(r.id == run_id, r.status.in_(ACTIVE_STATUSES)).values(**values))
            if cur.rowcount:
                self._status_event(db, run_id, status)
            return bool(cur.rowcount)

    def claim(self, run_id: str, *, wait_for_others: bool = True, **owner: Any) -> bool:
        """Move a queued run to ``running`` if it is its turn; True when it did.

        Its turn: no other run of its host is running and no queued run of its host was submitted
        before it (first come, first served; a shared store queues each machine apart, since a run
        only slows the timings of its own machine). ``wait_for_others=False`` starts it regardless
        (``optim run --no-queue``). One UPDATE decides (on PostgreSQL under a lock that claims take
        in turn), so two processes claiming at once cannot both win.
        """
        r, o = runs_table.c, runs_table.alias("o").c
        turn = []
        if wait_for_others:
            same_host = or_(o.host.is_(None), r.host.is_(None), o.host == r.host)  # as same_queue()
            earlier = or_(o.created < r.created, and_(o.created == r.created, o.id < r.id))
            turn = [~exists().where(o.id != r.id, same_host,
                                    or_(o.status == "running", and_(o.status == "queued", earlier)))]
        with self._connect() as db:
            if db.dialect.name == "postgresql":
                db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CLAIM_LOCK})
            cur = db.execute(update(runs_table).where(r.id == run_id, r.status == "queued", *turn)
                             .values(status="running", started=time.time(), **owner))
            if cur.rowcount:
                self._status_event(db, run_id, "running")
            return bool(cur.rowcount)

    def active_runs(self) -> list[dict[str, Any]]:
        """Runs queued or running, in queue order (the running ones first, then by submission)."""
        r = runs_table.c
        with self._connect() as db:
            rows = db.execute(select(runs_table).where(r.status.in_(ACTIVE_STATUSES))
                              .order_by(case((r.status == "running", 0), else_=1), r.created, r.id)).all()
        return [self._run_dict(row) for row in rows]

    @staticmethod
    def _status_event(db: Connection, run_id: str, status: str) -> None:
        db.execute(insert(events_table).values(run_id=run_id, ts=time.time(), kind="status", message=status))

    def run(self, run_id: str) -> dict[str, Any]:
        """The run's record; a KeyError names an unknown id."""
        with self._connect() as db:
            row = db.execute(select(runs_table).where(runs_table.c.id == run_id)).first()
        if row is None:
            raise KeyError(run_id)
        return self._run_dict(row)

    def runs(self, limit: int = 200) -> list[dict[str, Any]]:
        """Recent runs, newest first, each with its row count."""
        n_rows = (select(func.count()).select_from(rows_table).where(rows_table.c.run_id == runs_table.c.id)
                  .scalar_subquery().label("n_rows"))
        with self._connect() as db:
            rows = db.execute(select(runs_table, n_rows).order_by(runs_table.c.created.desc()).limit(limit)).all()
        return [self._run_dict(r) for r in rows]

    @staticmethod
    def _run_dict(row: Row[Any]) -> dict[str, Any]:
        d = dict(row._mapping)
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
        with self._connect() as db:
            db.execute(update(runs_table).where(runs_table.c.id == run_id).values(**fields))

    def delete_run(self, run_id: str, *, artifacts: bool = True) -> None:
        """Forget a run; with ``artifacts`` also remove its folder if it lives under the store's runs folder."""
        info = self.run(run_id)
        with self._connect() as db:
            db.execute(delete(events_table).where(events_table.c.run_id == run_id))
            db.execute(delete(rows_table).where(rows_table.c.run_id == run_id))
            db.execute(delete(runs_table).where(runs_table.c.id == run_id))
        out = Path(info["out_dir"])
        if artifacts and out.is_dir() and self.runs_dir.resolve() in out.resolve().parents:
            shutil.rmtree(out, ignore_errors=True)

    def request_cancel(self, run_id: str) -> None:
        with self._connect() as db:
            db.execute(update(runs_table).where(runs_table.c.id == run_id).values(cancel_requested=1))

    def cancel_requested(self, run_id: str) -> bool:
        with self._connect() as db:
            value = db.execute(select(runs_table.c.cancel_requested).where(runs_table.c.id == run_id)).scalar()
        return bool(value)

    # --- rows -------------------------------------------------------------------------------
    def put_row(self, run_id: str, row: dict[str, Any]) -> None:
        """Insert or replace one candidate's result row (keyed by ``candidate_id``); a replaced row
        keeps its place. One statement, so concurrent writers never wait on each other's reads."""
        t = rows_table
        position = select(func.count()).select_from(t).where(t.c.run_id == run_id).scalar_subquery()
        stmt = self._upsert(t).values(run_id=run_id, idx=position, candidate_id=str(row["candidate_id"]),
                                      row=to_json(row))
        with self._connect() as db:
            db.execute(stmt.on_conflict_do_update(index_elements=[t.c.run_id, t.c.candidate_id],
                                                  set_={"row": stmt.excluded.row}))

    def rows(self, run_id: str) -> list[dict[str, Any]]:
        """The run's rows in the order they were first written (baseline first)."""
        t = rows_table.c
        with self._connect() as db:
            rows = db.execute(select(t.row).where(t.run_id == run_id).order_by(t.idx, t.candidate_id)).scalars()
            return [json.loads(r) for r in rows]

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
            db.execute(insert(events_table).values(
                run_id=run_id, ts=time.time(), kind=kind, candidate_id=candidate_id, step=step, fraction=fraction,
                message=message, data=None if data is None else to_json(data)))

    def log(self, run_id: str, message: str, candidate_id: str | None = None) -> None:
        self.event(run_id, "log", candidate_id=candidate_id, message=message)

    def progress(self, run_id: str, candidate_id: str, step: str, fraction: float, message: str = "") -> None:
        self.event(run_id, "progress", candidate_id=candidate_id, step=step, fraction=fraction, message=message)

    def events(self, run_id: str, since_id: int = 0, kind: str | None = None,
               last: int | None = None) -> list[dict[str, Any]]:
        """The run's events in order (of one ``kind``; only the ``last`` N when given)."""
        e = events_table.c
        q = select(events_table).where(e.run_id == run_id, e.id > since_id)
        if kind:
            q = q.where(e.kind == kind)
        if last is not None:
            tail = q.order_by(e.id.desc()).limit(int(last)).subquery("tail")
            q = select(tail).order_by(tail.c.id)
        else:
            q = q.order_by(e.id)
        with self._connect() as db:
            rows = db.execute(q).all()
        return [self._event_dict(r) for r in rows]

    @staticmethod
    def _event_dict(row: Row[Any]) -> dict[str, Any]:
        d = dict(row._mapping)
        d["data"] = json.loads(d["data"]) if d.get("data") else {}
        return d

    def latest_progress(self, run_id: str) -> dict[str, dict[str, Any]]:
        """The newest progress event of each candidate: what a progress bar per candidate shows."""
        e = events_table.c
        newest = (select(func.max(e.id).label("id")).where(e.run_id == run_id, e.kind == "progress")
                  .group_by(e.candidate_id).subquery("m"))
        with self._connect() as db:
            rows = db.execute(select(events_table).join(newest, e.id == newest.c.id).order_by(e.id)).all()
        return {r.candidate_id: self._event_dict(r) for r in rows}
