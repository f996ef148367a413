"""Loading user files safely: models (:mod:`optim.io.models`) and datasets (:mod:`optim.io.datasets`).

Every failure is an :class:`~optim.errors.InputError` (or :class:`~optim.errors.UnsafeFileError`
for pickles and zips that would run code or escape their folder) whose message names the file
and says what to do.
"""

from __future__ import annotations

from pathlib import Path


def sample_ref(ref: object) -> str | None:
    """``"NAME"`` for a ``"sample:NAME"`` reference, else None."""
    if isinstance(ref, str) and ref.startswith("sample:"):
        return ref.split(":", 1)[1].strip()
    return None


def read_input_file(ref: str | Path, what: str, accepted: str) -> tuple[Path, bytes]:
    """The path and bytes of a user's file; a missing, unreadable or empty file is an InputError."""
    from optim.errors import InputError

    path = Path(ref).expanduser()
    if not path.exists():
        raise InputError(f"{what} file {str(path)!r} does not exist.", hint=f"Accepted: {accepted}.")
    if path.is_dir():
        raise InputError(f"{what} {str(path)!r} is a folder, not a file.", hint=f"Accepted: {accepted}.")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"{what} file {path.name!r} cannot be read: {err.strerror or err}.") from None
    if not data or (len(data) < 4096 and not data.strip()):  # a big file is not blank; skip the copy
        raise InputError(f"{what} file {path.name!r} is empty.", hint=f"Accepted: {accepted}.")
    return path, data
