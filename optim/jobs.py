"""Jobs: start runs, queue them machine-wide, tell live ones from dead ones, cancel, follow progress.

Everything here goes through the store, so the dashboard (any tab, any session), the CLI and the
worker processes see the same jobs:

- **Queue.** Measuring two runs at once makes each time the other, so a run waits (status
  ``queued``) until no other run is running and every run submitted before it has gone; then one
  atomic UPDATE (:meth:`Store.claim`) starts it. ``optim run --no-queue`` skips the wait.
- **Liveness.** The process that runs a job records its host, pid and the pid's start time (a pid
  alone is fooled by reuse) and beats a heartbeat every few seconds. A queued or running job whose
  process is gone (same host: pid + start time; another host: a stale heartbeat) is marked
  ``failed`` wherever runs are listed (:func:`list_runs`, :func:`get_run`).
- **Progress** is structured events (``plan``, ``recipe``, ``progress``, ``status``); the UI only
  reads them (:func:`candidates`, :func:`queue_position`), it never parses log lines.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optim import cost
from optim.errors import CancelledError, OptimError, redact_secrets
from optim.store import ACTIVE_STATUSES, Store, StoreUnavailable, same_queue

if TYPE_CHECKING:
    from optim.recipe import Recipe
    from optim.settings import ExperimentSpec

#: Seconds between heartbeats of the process that runs a job.
HEARTBEAT_S = 10.0
#: A job on another host whose last heartbeat is older than this counts as dead (on this host the
#: pid and its start time decide at once). Also how long a job may sit without any owner process.
STALE_S = 90.0
#: Seconds between two looks at the queue while a job waits for its turn.
POLL_S = 1.0


# --- liveness -------------------------------------------------------------------------------------
def this_host() -> str:
    return socket.gethostname()


def process_start(pid: int) -> float | None:
    """The start time of process ``pid`` (seconds since the epoch), or None if there is none."""
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def is_alive(pid: int | None, start: float | None = None) -> bool:
    """Whether process ``pid`` runs (not a zombie) and, given ``start``, is the process that
    started then — not a later one that reused the pid."""
    import psutil

    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:  # finished, not yet reaped by its parent
            return False
        # create_time is derived from boot time and clock ticks: equal to within rounding.
        return start is None or abs(proc.create_time() - start) < 1.0
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def owner(pid: int | None = None) -> dict[str, Any]:
    """The fields that name the process running a job: host, pid, its start time, a heartbeat."""
    pid = pid or os.getpid()
    return {"host": this_host(), "pid": pid, "pid_start": process_start(pid), "heartbeat": time.time()}


def dead_reason(run: dict[str, Any], now: float | None = None) -> str | None:
    """Why an active run is dead (its process is gone), or None while it may still be alive."""
    if run["status"] not in ACTIVE_STATUSES:
        return None
    now = time.time() if now is None else now
    pid, host = run.get("pid"), run.get("host")
    if pid and host in (None, this_host()):  # no host: recorded by an older optim on this machine
        if is_alive(pid, run.get("pid_start")):
            return None
        return f"the worker process (pid {pid}) stopped without finishing the run"
    last = run.get("heartbeat") or run.get("started") or run["created"]
    if now - float(last) <= STALE_S:
        return None
    where = f"on {host}" if host else "(no process ever took it)"
    return f"no sign of life from the process running it {where} for {fmt_duration(now - float(last))}"


def reap(store: Store, runs: list[dict[str, Any]] | None = None, now: float | None = None) -> list[str]:
    """Mark every active run whose process is gone ``failed``; return their ids."""
    reaped = []
    for run in store.active_runs() if runs is None else runs:
        reason = dead_reason(run, now)
        if reason and store.finish_if_active(run["id"], "failed", error=reason):
            reaped.append(run["id"])
    return reaped


def list_runs(store: Store, limit: int = 200) -> list[dict[str, Any]]:
    """Recent runs, newest first (as :meth:`Store.runs`), dead ones already marked failed."""
    reap(store)
    return store.runs(limit=limit)


def get_run(store: Store, run_id: str) -> dict[str, Any]:
    """One run (KeyError if unknown), marked failed first if its process is gone."""
    run = store.run(run_id)
    if dead_reason(run) and reap(store, [run]):
        run = store.run(run_id)
    return run


@contextmanager
def heartbeat(store: Store, run_id: str, every: float = HEARTBEAT_S) -> Iterator[None]:
    """Beat ``run_id``'s heartbeat from a background thread while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            try:
                store.update_run(run_id, heartbeat=time.time())
            except (StoreUnavailable, OSError):  # a busy store: the next beat will do; never kill the run for it
                continue

    thread = threading.Thread(target=beat, name=f"heartbeat-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every + 5)


# --- queue ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QueuePosition:
    """Where a queued run stands: the run being measured, and every active run ahead of it."""

    run_id: str
    running: dict[str, Any] | None
    ahead: list[dict[str, Any]]

    def describe(self, now: float | None = None) -> str:
        """``queued behind run X — started 2 min ago`` (and how many more wait before it)."""
        now = time.time() if now is None else now
        waiting = [r for r in self.ahead if r["status"] == "queued"]
        if self.running is not None:
            r = self.running
            text = (f"queued behind run {run_label(r)} — started "
                    f"{fmt_duration(now - float(r.get('started') or r['created']))} ago")
        elif waiting:
            text = f"queued behind run {run_label(waiting[0])} — starting"
            waiting = waiting[1:]
        else:
            return "queued — starting now"
        if waiting:
            text += f"; then {len(waiting)} more run(s) submitted earlier"
        return text


def run_label(run: dict[str, Any]) -> str:
    """A run as people name it: its name and id, or its id."""
    return f"“{run['name']}” ({run['id']})" if run.get("name") else str(run["id"])


def queue_position(store: Store, run_id: str) -> QueuePosition:
    """The runs ahead of ``run_id`` in its machine's queue (empty once it runs)."""
    active = store.active_runs()
    me = next((r for r in active if r["id"] == run_id), None)
    if me is None or me["status"] != "queued":
        return QueuePosition(run_id, None, [])
    key = (me["created"], me["id"])
    ahead = [r for r in active if r["id"] != run_id and same_queue(r, me)
             and (r["status"] == "running" or (r["created"], r["id"]) < key)]
    running = next((r for r in ahead if r["status"] == "running"), None)
    return QueuePosition(run_id, running, ahead)


def wait_turn(store: Store, run_id: str, *, queue: bool = True, cancel: Callable[[], bool] | None = None,
              on_wait: Callable[[QueuePosition], None] | None = None, poll_s: float = POLL_S) -> None:
    """Block until ``run_id`` may run, then mark it running by this process.

    With ``queue=False`` it starts at once, whatever else runs. Cancelling while it waits ends
    it ``cancelled`` (CancelledError); a run no longer queued (failed, deleted) is an OptimError.
    """
    me = owner()
    store.update_run(run_id, **me)  # from now on, a dead waiter is seen as dead
    last = None
    while True:
        if (cancel and cancel()) or store.cancel_requested(run_id):
            store.finish_if_active(run_id, "cancelled", error="cancelled while waiting in the queue")
            raise CancelledError("Run cancelled while it waited in the queue; nothing was measured.")
        reap(store)
        if store.claim(run_id, wait_for_others=queue, **me):
            return
        try:
            status = store.run(run_id)["status"]
        except KeyError:
            raise OptimError(f"run {run_id} was deleted while it waited in the queue.") from None
        if status != "queued":
            raise OptimError(f"run {run_id} is {status}, not queued: it cannot start.")
        pos = queue_position(store, run_id)
        key = tuple(r["id"] for r in pos.ahead)
        if on_wait is not None and key != last:
            on_wait(pos)
        last = key
        time.sleep(poll_s)


# --- starting and stopping ------------------------------------------------------------------------
def create_run(store: Store, spec: ExperimentSpec, recipes: list[Recipe],
               out_dir: str | Path | None = None, *, pid: int | None = None) -> str:
    """Record a queued run with its plan (one recipe per variant), owned by process ``pid``
    (default: this one). A given ``out_dir`` must be a new or empty folder (checked first, so a
    refused one records no run)."""
    from optim.rundir import check_out_dir

    if out_dir is not None:
        check_out_dir(out_dir)
    # Recipes may quote a storage URL with a password: the store keeps it masked.
    return store.create_run(spec.stored(), out_dir, name=spec.name,
                            plan=[redact_secrets(r.spec) for r in recipes], **owner(pid))


def start_background(spec: ExperimentSpec, store: Store | None = None,
                     out_dir: str | Path | None = None) -> str:
    """Validate ``spec``, record the run and start a worker process for it; return the run id.

    The worker is a separate process (``python -m optim worker RUN_ID``) in its own session, so
    the dashboard stays responsive, a reload re-attaches to the same job, and a crash in the
    worker cannot take the UI down. The worker waits in the queue if another run is measured.
    """
    recipes = spec.validate()
    store = store if store is not None else Store()
    run_id = create_run(store, spec, recipes, out_dir)
    log_path = store.runs_dir / f"{run_id}.log"
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, **store.child_env())  # the store's URL goes in the environment, never in argv
        with open(log_path, "ab") as log_fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "optim", "worker", run_id],
                stdout=log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=env,
            )
    except OSError as err:
        store.finish_if_active(run_id, "failed", error=f"could not start a worker process: {err}")
        raise OptimError(f"could not start a worker process: {err}",
                         hint="Check free memory and the permissions of OPTIM_HOME.") from err
    store.update_run(run_id, **owner(proc.pid))
    return run_id


def cancel(store: Store, run_id: str) -> None:
    """Ask ``run_id`` to stop: a queued run leaves the queue, a running one stops after its
    current step and keeps its finished rows."""
    store.request_cancel(run_id)


# --- progress, read from the events ---------------------------------------------------------------
def plan(store: Store, run_id: str) -> list[str]:
    """The recipe of every variant the run was to run, in order (empty for older runs)."""
    events = store.events(run_id, kind="plan", last=1)
    return list(events[0]["data"].get("recipes", [])) if events else []


def candidates(store: Store, run_id: str, status: str | None = None) -> list[dict[str, Any]]:
    """One entry per candidate: measured, failed, in progress, or still to come.

    Each has ``candidate_id`` (None for a variant not started), ``recipe``, ``state`` (``ok``,
    ``failed``, ``cancelled``, ``running``, ``interrupted`` — started, but the run ended before
    it finished —, ``queued`` — waiting its turn in an active run — or ``not run`` — never started
    in a finished run), ``step``, ``fraction``, ``message``, ``error``.
    """
    status = status or store.run(run_id)["status"]
    rows = {r["candidate_id"]: r for r in store.rows(run_id)}
    latest = store.latest_progress(run_id)
    started = store.events(run_id, kind="recipe")
    recipes = {e["candidate_id"]: e["data"].get("recipe", "") for e in started}
    ids = list(dict.fromkeys([*latest, *rows, *recipes]))
    out = []
    for cid in sorted(ids, key=lambda c: int(c[1:]) if c[1:].isdigit() else 10**9):
        ev, row = latest.get(cid, {}), rows.get(cid)
        state = (row or {}).get("status") or ("running" if status in ACTIVE_STATUSES else "interrupted")
        out.append({
            "candidate_id": cid,
            "recipe": (row or {}).get("recipe_title") or (row or {}).get("recipe") or recipes.get(cid)
            or ("baseline" if cid == "c0" else ""),
            "state": state,
            "step": ev.get("step") or "",
            "fraction": 1.0 if row else float(ev.get("fraction") or 0.0),
            "message": ev.get("message") or "",
            "error": (row or {}).get("error") or "",
        })
    n_started = 1 + max((int(e["data"].get("index", -1)) for e in started), default=-1)
    pending = "queued" if status in ACTIVE_STATUSES else "not run"
    for recipe in plan(store, run_id)[n_started:]:
        out.append({"candidate_id": None, "recipe": recipe, "state": pending, "step": "", "fraction": 0.0,
                    "message": "", "error": ""})
    return out


def outcome(entries: list[dict[str, Any]]) -> dict[str, int]:
    """Counts over the variants (baseline excluded) of :func:`candidates`: total, ok, failed,
    not_run (cancelled before or while running)."""
    variants = [e for e in entries if e["candidate_id"] != "c0"]
    return {
        "total": len(variants),
        "ok": sum(e["state"] == "ok" for e in variants),
        "failed": sum(e["state"] in ("failed", "invalid") for e in variants),  # invalid: NaN/inf outputs
        "not_run": sum(e["state"] in ("not run", "cancelled", "interrupted") for e in variants),
    }


def weighted_done(store: Store, run: dict[str, Any]) -> tuple[float, float | None]:
    """How much of ``run`` is done (0–1), each part — the baseline, every planned variant, the
    timing at the end — weighted by its estimated seconds from the ``plan`` event (equal weights
    when the plan has no estimates); and the total estimate (None without estimates).

    A part's fraction is 1 once it has a row, else its candidate's latest progress event."""
    events = store.events(run["id"], kind="plan", last=1)
    data = events[0]["data"] if events else {}
    recipes = list(data.get("recipes", []))
    estimates = list(data.get("estimates_s") or [None] * len(recipes))
    rows = {r["candidate_id"] for r in store.rows(run["id"])}
    latest = store.latest_progress(run["id"])
    first_ids = {int(e["data"].get("index", -1)): e["candidate_id"] for e in store.events(run["id"], kind="recipe")}

    def fraction(cid: str | None) -> float:
        if cid is None:
            return 0.0
        return 1.0 if cid in rows else float(latest.get(cid, {}).get("fraction") or 0.0)

    n = len(recipes)
    if run["status"] in ("done", "partial"):
        timing = 1.0
    else:  # the timing phase has no candidate of its own: its share of the runner's count-based progress
        timing = min(1.0, max(0.0, float(run.get("progress") or 0.0) * (n + 2) - (n + 1)))
    parts = [(data.get("baseline_s"), fraction("c0")),
             *((estimates[i] if i < len(estimates) else None, fraction(first_ids.get(i))) for i in range(n)),
             (data.get("timing_s"), timing)]
    return cost.weighted_done(parts)


def eta_s(store: Store, run: dict[str, Any], now: float | None = None) -> float | None:
    """Seconds left of a running ``run`` (None while queued or ended): :func:`optim.cost.eta_s` of
    the time since it started and its :func:`weighted_done` — the estimate while little is done,
    then the measured rate."""
    if run["status"] != "running":
        return None
    done, total = weighted_done(store, run)
    elapsed = (time.time() if now is None else now) - float(run.get("started") or run["created"])
    return cost.eta_s(max(0.0, elapsed), done, estimate_s=total)


def fmt_duration(seconds: float | None) -> str:
    """``45 s``, ``2 min 05 s``, ``1 h 03 min``; ``—`` for None."""
    if seconds is None:
        return "—"
    s = max(0, round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"
