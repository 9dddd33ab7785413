"""A throwaway PostgreSQL server for one test session, from Debian's `postgresql` package.

initdb + pg_ctl in a temp dir, listening on a Unix socket only (no port to collide with another
session), with fsync off (the cluster dies with the session anyway). PostgreSQL refuses to run as
root, and CI runs as root: there the server runs as the `postgres` user (Debian's package makes it)
or `nobody`, through setpriv; tests connect over the socket, as root, with trust auth.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "tubelet"


class PgUnavailable(RuntimeError):
    """Why no server could be started (the tests that need one skip with this reason)."""


def bin_dir() -> Path:
    """The newest /usr/lib/postgresql/N/bin with initdb, else the one on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    initdb = found[-1] if found else shutil.which("initdb")
    if initdb is None:
        raise PgUnavailable("no initdb: install Debian's `postgresql` package (apt-get install -y postgresql)")
    return Path(initdb).parent


def _as_server_user() -> tuple[list[str], pwd.struct_passwd | None]:
    """(command prefix, the user to run as) - an unprivileged user when we are root."""
    if os.geteuid() != 0:
        return [], None
    for name in ("postgres", "nobody"):
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"], user
    raise PgUnavailable("running as root and there is neither a `postgres` nor a `nobody` user to run the server")


@dataclass
class PgServer:
    base: Path  # cluster files, log and socket
    prefix: list[str]
    bin: Path
    _databases: int = 0

    @classmethod
    def start(cls, durable: bool = False) -> PgServer:
        """A new cluster, started; `durable` keeps fsync and synchronous commits on (benchmarks)."""
        bin_path = bin_dir()
        prefix, user = _as_server_user()
        base = Path(tempfile.mkdtemp(prefix="tubelet-pg-"))
        if user is not None:
            os.chown(base, user.pw_uid, user.pw_gid)
        server = cls(base, prefix, bin_path)
        try:
            server._run("initdb", "-D", base / "data", "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync")
            options = f"-k {base} -c listen_addresses=''"
            if not durable:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            server._run("pg_ctl", "-D", base / "data", "-o", options, "-l", base / "log", "-w", "-t", "60", "start")
        except PgUnavailable:
            shutil.rmtree(base, ignore_errors=True)
            raise
        return server

    def _run(self, tool: str, *args) -> None:
        command = [*self.prefix, str(self.bin / tool), *map(str, args)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PgUnavailable(f"{tool}: {exc}") from exc
        if done.returncode != 0:
            log = self.base / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise PgUnavailable(f"{tool} failed ({done.returncode}): {done.stderr.strip()[-2000:]} {tail}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@/{database}?host={self.base}"

    def new_database(self) -> str:
        """The URL of a new, empty database (one per test: nothing leaks between tests)."""
        import psycopg

        self._databases += 1
        name = f"t{os.getpid()}_{self._databases}"
        with psycopg.connect(host=str(self.base), user=SUPERUSER, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", self.base / "data", "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
