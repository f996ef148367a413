"""A run's folder: checked before a run is recorded, claimed (``run.json``) when it starts.

Used by the job queue (:mod:`optim.jobs`, before recording a run) and the runner
(:mod:`optim.experiment`), so both refuse another run's folder with the same message.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from optim.errors import InputError

if TYPE_CHECKING:
    from optim.settings import ExperimentSpec


def missing_top(path: str | Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (what creating it would make), or None."""
    top = None
    for p in [Path(path).expanduser().absolute(), *Path(path).expanduser().absolute().parents]:
        if p.exists():
            break
        top = p
    return top


def remove_empty(path: Path, *, up_to: Path) -> None:
    """Remove ``path`` and its parents up to ``up_to`` while they are empty folders (what a refused
    run made and nothing else wrote into)."""
    p = path.absolute()
    while True:
        try:
            p.rmdir()  # only an empty folder goes
        except OSError:
            return
        if p == up_to.absolute() or p.parent == p:
            return
        p = p.parent


def check_out_dir(out_dir: str | Path) -> Path:
    """``out_dir`` as a run's folder, or an InputError: a file, a folder that is not empty (another
    run's files would be overwritten and its exports mixed up) or a place that cannot be written."""
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {str(out_dir)!r} is a file; a run needs a folder.",
                         hint="Pass a new folder name, e.g. --out runs/my-run.")
    if out.is_dir():
        try:
            entries = sorted(p.name for p in out.iterdir())
        except OSError as err:
            raise InputError(f"--out {str(out_dir)!r} cannot be read: {err.strerror or err}.",
                             hint="Choose a folder you can write.") from None
        if entries:
            owner = _run_id_in(out)
            what = (
                f"already holds run {owner}"
                if owner
                else f"is not empty ({', '.join(entries[:3])}{', ...' if len(entries) > 3 else ''})"
            )
            raise InputError(f"--out {str(out_dir)!r} {what}; a run writes into a new or empty folder, so "
                             f"earlier results and exports are never overwritten.",
                             hint="Pass a new --out folder (or delete the old one first).")
    try:  # an empty folder is all a refused run can leave behind
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"--out {str(out_dir)!r}: cannot create the folder ({err.strerror or err}).",
                         hint="Choose a folder you can write.") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise InputError(f"--out {str(out_dir)!r}: cannot write in the folder (permission denied).",
                         hint="Choose a folder you can write.")
    return out


def claim_out_dir(out: Path, run_id: str, spec: ExperimentSpec) -> None:
    """Make ``out`` this run's folder: created if needed and marked with ``run.json`` (created
    exclusively, so two runs never share a folder); an InputError when another run owns it."""
    from optim.store import to_json

    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / "run.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        owner = _run_id_in(out)
        if owner == run_id:
            return  # this run's own folder (a worker re-attached to it)
        raise InputError(f"the run folder {str(out)!r} belongs to run {owner or 'unknown'}, not {run_id}; "
                         f"nothing was written.", hint="Pass a new --out folder.") from None
    except OSError as err:
        raise InputError(f"cannot create the run folder {str(out)!r}: {err.strerror or err}.",
                         hint="Choose an --out folder you can write.") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(to_json({"run_id": run_id, "spec": spec.stored()}))
    if sorted(p.name for p in out.iterdir()) != ["run.json"]:
        os.unlink(out / "run.json")
        raise InputError(f"the run folder {str(out)!r} is not empty; nothing was written.",
                         hint="Pass a new --out folder.")


def _run_id_in(out: Path) -> str | None:
    import json

    try:
        run_id = json.loads((out / "run.json").read_text()).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None
    return run_id if isinstance(run_id, str) else None
