"""Every user-facing failure is an :class:`OptimError` (or a child) with a message a user can act on.

The CLI prints ``str(err)`` on one line and exits with code 2; the dashboard shows it in an
error box. Anything that is not an ``OptimError`` is a bug in optim.
"""

from __future__ import annotations

import importlib
import re
from types import ModuleType

#: ``scheme://user:password@host`` — the password part of a URL (an Optuna storage, a database).
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@'\"]*:)[^\s/'\"]+(?P<at>@)")


def redact_secrets(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` URL replaced by ``***``.

    Errors, logs and result rows may quote a user's setting (an Optuna storage URL); a
    password in it must never reach a terminal, the store or a report.
    """
    return _URL_PASSWORD.sub(r"\g<head>***\g<at>", text)


class OptimError(Exception):
    """A failure the user can fix: bad input, bad setting, unsupported combination."""

    def __init__(self, message: str, *, hint: str | None = None, ui: str | None = None) -> None:
        # Messages quote settings; a URL's password is masked before anything can show it.
        self.message = message = redact_secrets(message)
        self.hint = hint = redact_secrets(hint) if hint else hint
        #: The same failure and next step in the dashboard's words (its controls, not CLI flags such
        #: as ``--arch``); None when the message names no flag and reads the same in both.
        self.ui = redact_secrets(ui) if ui else None
        super().__init__(f"{message} {hint}" if hint else message)

    def one_line(self) -> str:
        """The message folded onto one line, as the CLI prints it."""
        return " ".join(str(self).split())

    def for_dashboard(self) -> str:
        """The message on one line as the dashboard shows it: :attr:`ui` where given, else the CLI's."""
        return " ".join((self.ui or str(self)).split())

    def with_name(self, old: str, new: str) -> OptimError:
        """The same error with ``old`` (e.g. a stored file name) replaced by ``new`` in every wording."""

        def sub(text: str | None) -> str | None:
            return text.replace(old, new) if text else text

        return type(self)(sub(self.message) or "", hint=sub(self.hint), ui=sub(self.ui))


class InputError(OptimError):
    """A model or dataset file that cannot be read or does not fit."""


class UnsafeFileError(InputError):
    """A file whose loading would run arbitrary code (pickle) or escape its folder (zip)."""


class ConfigError(OptimError):
    """A technique setting or recipe that is unknown or out of bounds."""


class UnsupportedError(OptimError):
    """A technique that cannot apply to this model or data; the message says why."""


class CancelledError(OptimError):
    """The user cancelled the run; finished rows are kept."""


class ExportError(OptimError):
    """A candidate that cannot be written in the asked format, or whose export does not match."""


def require_extra(module: str, extra: str, *, feature: str, alternative: str = "") -> ModuleType:
    """``module`` imported, or an OptimError saying ``feature`` needs ``pip install 'optim[extra]'``.

    Optional engines (Ray, MLflow) are imported only where used; one message names what to
    install, and ``alternative`` what to do instead (e.g. "or use --executor local").
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        more = f" ({alternative})" if alternative else ""
        raise OptimError(f"{feature} needs {module}, which is not installed.",
                         hint=f"pip install 'optim[{extra}]', then run again{more}.") from None
