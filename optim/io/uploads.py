"""The uploads folder: ``$OPTIM_HOME/uploads``, content-addressed, bounded in size.

An upload is saved as ``<sha256>.<ext>`` (the same file uploaded twice is one file), validated by
optim's loaders, then either kept (:func:`keep_upload` marks it accepted) or deleted
(:func:`reject_upload`: a zip bomb or a bad NPZ must not stay on disk). The folder is capped at
``OPTIM_UPLOADS_MAX_MB`` (default 2,048 MB): saving a new file removes the least recently used
ones first, never one a queued or running run still reads.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from optim.errors import ConfigError, InputError

#: Default size cap of the uploads folder, in megabytes (``OPTIM_UPLOADS_MAX_MB``).
DEFAULT_UPLOADS_MAX_MB = 2048
#: Suffix of the marker saying "this content passed validation once" (so a later failure with
#: other settings, e.g. another target column, does not delete a file in use).
_ACCEPTED = ".accepted"


def uploads_dir() -> Path:
    """``$OPTIM_HOME/uploads`` (created)."""
    from optim.store import optim_home

    folder = optim_home() / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def uploads_cap_bytes() -> int:
    """The folder's size cap: ``OPTIM_UPLOADS_MAX_MB`` megabytes (default 2,048)."""
    raw = os.environ.get("OPTIM_UPLOADS_MAX_MB", "").strip()
    try:
        mb = float(raw) if raw else DEFAULT_UPLOADS_MAX_MB
    except ValueError:
        mb = float("nan")
    if not mb > 0 or mb == float("inf"):
        raise ConfigError(f"OPTIM_UPLOADS_MAX_MB={raw!r}: must be a positive number of megabytes.",
                          hint=f"Unset it to use the default ({DEFAULT_UPLOADS_MAX_MB} MB).")
    return int(mb * 1024 * 1024)


def upload_path(name: str, data: bytes) -> Path:
    """Where :func:`save_upload` puts ``data``: ``uploads/<sha256>.<ext of name>`` (nothing is written)."""
    ext = Path(name).suffix.lower().lstrip(".")
    ext = ext if re.fullmatch(r"[a-z0-9]{1,12}", ext) else "bin"
    return uploads_dir() / f"{hashlib.sha256(data).hexdigest()}.{ext}"


def save_upload(name: str, data: bytes) -> Path:
    """Write ``data`` as ``uploads/<sha256>.<ext>`` (the extension of ``name``, lower-cased) and
    make room under the cap by removing the least recently used uploads."""
    cap = uploads_cap_bytes()
    if len(data) > cap:
        raise InputError(f"{name!r} is {len(data) / 2**20:,.0f} MB, more than the uploads folder holds "
                         f"({cap / 2**20:,.0f} MB).", hint="Raise OPTIM_UPLOADS_MAX_MB or use a smaller file.")
    path = upload_path(name, data)
    if path.exists():
        path.touch()  # used now: the cap removes it last
    else:
        # Write then rename, so a second session never reads a half-written file.
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".part") as fh:
            fh.write(data)
        Path(fh.name).replace(path)
    enforce_uploads_cap(keep=(path,))
    return path


def keep_upload(path: str | Path) -> None:
    """Mark an upload as accepted: a later failed validation (other settings) will not delete it."""
    path = Path(path)
    if _is_upload(path) and path.exists():
        path.with_name(path.name + _ACCEPTED).touch()


def reject_upload(path: str | Path) -> bool:
    """Delete an upload that failed validation, unless it was accepted before; whether it was deleted."""
    path = Path(path)
    if not _is_upload(path) or path.with_name(path.name + _ACCEPTED).exists():
        return False
    path.unlink(missing_ok=True)
    return True


def enforce_uploads_cap(*, keep: tuple[Path, ...] = ()) -> list[Path]:
    """Remove least recently used uploads until the folder is under the cap; the removed paths.

    Files in ``keep`` and those a queued or running run reads are never removed.
    """
    cap = uploads_cap_bytes()
    folder = uploads_dir()
    files = []
    for p in folder.iterdir():
        if p.is_file() and not p.name.endswith((_ACCEPTED, ".part")):
            st = p.stat()
            files.append((st.st_mtime, st.st_size, p))
    total = sum(size for _, size, _ in files)
    if total <= cap:
        return []
    protected = {Path(k).resolve() for k in keep} | _in_use()
    removed = []
    for _, size, p in sorted(files, key=lambda f: f[0]):
        if total <= cap:
            break
        if p.resolve() in protected:
            continue
        p.unlink(missing_ok=True)
        p.with_name(p.name + _ACCEPTED).unlink(missing_ok=True)
        total -= size
        removed.append(p)
    return removed


def _is_upload(path: Path) -> bool:
    try:
        return path.resolve().parent == uploads_dir().resolve()
    except OSError:
        return False


def _in_use() -> set[Path]:
    """Uploads the store's queued or running runs read."""
    from optim.store import ACTIVE_STATUSES, Store

    used = set()
    for run in Store().runs(limit=1000):
        if run.get("status") in ACTIVE_STATUSES:
            spec = run.get("spec") or {}
            for key in ("model", "data"):
                ref = spec.get(key)
                if ref and not str(ref).startswith("sample"):
                    used.add(Path(str(ref)).resolve())
    return used
