"""A throwaway PostgreSQL server for the store tests: Debian's binaries, one server per session.

``initdb`` into a temporary folder, ``pg_ctl`` on 127.0.0.1 and a free port (its unix socket in
that folder, password authentication), stopped and removed at teardown. Each test gets a fresh
schema of one database (its URL sets the search_path), so a store starts empty in milliseconds.
initdb refuses to run as root, so as root the server runs as the ``postgres`` user Debian's
package creates (else ``nobody``).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: What to install when the binaries are missing (CI installs it: .ci/run).
INSTALL = "apt-get install postgresql (Debian's package: initdb and pg_ctl in /usr/lib/postgresql/*/bin)"


def find_bin(name: str) -> str | None:
    """``name`` on PATH, else in the newest /usr/lib/postgresql/*/bin (Debian keeps them off PATH)."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                      key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return versions[-1] if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 where nothing listens while the block runs: held bound, never listening,
    so a connection there is refused (a port bound and released could be taken by a server or an
    outgoing connection of another test before the test connects)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


class PostgresServer:
    """One running server; :meth:`new_database` gives each test its own empty database's URL."""

    user = "optim"

    def __init__(self) -> None:
        initdb, self.pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if not initdb or not self.pg_ctl:
            raise FileNotFoundError(f"PostgreSQL's initdb/pg_ctl not found; {INSTALL}")
        self.password = "pw-" + secrets.token_hex(8)  # tests check it never shows
        self.root = Path(tempfile.mkdtemp(prefix="optim-pg-"))
        self.data = self.root / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse root: run them as an unprivileged user
            account = next((u for u in ("postgres", "nobody") if _has_user(u)), None)
            if account is None:
                raise RuntimeError("running as root with neither a 'postgres' nor a 'nobody' user to run PostgreSQL")
            entry = pwd.getpwnam(account)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._as = ["runuser", "-u", account, "--"]
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self._as:
            os.chown(pwfile, pwd.getpwnam(self._as[2]).pw_uid, -1)
        os.chmod(pwfile, 0o600)
        self._run([initdb, "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}", "-A", "scram-sha-256",
                   "-E", "UTF8", "--no-sync", "--no-instructions"])
        pwfile.unlink()
        for attempt in range(5):  # the free port may be taken before the server binds it: another one then
            self.port = _free_port()
            options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c "
                       f"synchronous_commit=off -c full_page_writes=off -c max_connections=100 -c shared_buffers=16MB")
            try:
                self._run([self.pg_ctl, "-D", str(self.data), "-l", str(self.root / "log"), "-o", options, "-w",
                           "-t", "60", "start"])
                break
            except RuntimeError as err:
                if attempt == 4 or "Address already in use" not in str(err):
                    raise
        self._n = 0
        self._admin: Any = None  # a connection that makes the schemas (psycopg, imported when first needed)

    def _run(self, cmd: list[str]) -> None:
        done = subprocess.run(self._as + cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode:
            log = self.root / "log"
            raise RuntimeError(f"{' '.join(cmd[:2])} failed: {done.stderr.strip() or done.stdout.strip()}"
                               + (f"\n{log.read_text()[-2000:]}" if log.exists() else ""))

    def url(self, schema: str = "public", password: str | None = None) -> str:
        """The URL of the database ``optim`` whose tables go in ``schema`` (the connection's search_path)."""
        query = "" if schema == "public" else f"?options=-csearch_path%3D{schema}"
        return (f"postgresql://{self.user}:{self.password if password is None else password}"
                f"@127.0.0.1:{self.port}/optim{query}")

    def new_database(self) -> str:
        """A fresh, empty place for a store: a new schema of one database (CREATE DATABASE takes tenths
        of a second; a schema, milliseconds); its URL, with the password."""
        import psycopg

        if self._admin is None:
            self._admin = psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password,
                                          dbname="postgres", autocommit=True)
            self._admin.execute("CREATE DATABASE optim")
            self._admin.close()
            self._admin = psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password,
                                          dbname="optim", autocommit=True)
        self._n += 1
        name = f"t{self._n}"
        self._admin.execute(f"CREATE SCHEMA {name}")
        return self.url(name)

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
        try:
            self._run([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
