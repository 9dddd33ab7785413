"""One index run at a time per catalog: a file lock next to a SQLite catalog, an advisory lock in a
PostgreSQL one (so runs on different machines exclude each other). Both go when their process does."""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

RUN_LOCK_KEY = (0x7475_6265, 2)  # ("tube", 2): pg_try_advisory_lock(int, int)'s key for index runs
HOLDER_PREFIX = "tubelet index run, "  # the lock connection's application_name: who holds it


def _refused(holder: str, where: object) -> str:
    return f"another index run ({holder}) is using {where}; wait for it to finish (searching works meanwhile)"


class RunLock(Protocol):
    def __enter__(self) -> RunLock: ...

    def __exit__(self, *exc) -> None: ...

    def is_held_elsewhere(self) -> bool: ...


class LockHeld(RuntimeError):
    pass


class IndexLock:
    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> IndexLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockHeld(_refused(f"pid {holder}", self.path.parent)) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def is_held_elsewhere(self) -> bool:
        """True while another process holds the lock (used by readers deciding to persist)."""
        if not self.path.exists():
            return False
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False


class AdvisoryLock:
    """A PostgreSQL session-level advisory lock on a connection of its own, held for the run.

    The connection is detached from the pool (a pooled connection would keep the lock after the run),
    and the server drops the lock when that connection goes, so a killed run on any machine holds
    nothing. Its application_name names the holder, for the next run's error message."""

    def __init__(self, engine: Engine, where: str):
        self.engine, self.where = engine, where
        self._conn: Connection | None = None

    def _connect(self) -> Connection:
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        conn.detach()
        return conn

    def _try(self, conn: Connection) -> bool:
        return bool(conn.scalar(text("SELECT pg_try_advisory_lock(:a, :b)"), dict(zip("ab", RUN_LOCK_KEY))))

    def __enter__(self) -> AdvisoryLock:
        conn = self._connect()
        try:
            name = f"{HOLDER_PREFIX}pid {os.getpid()} on {socket.gethostname()}"[:63]
            conn.execute(text("SELECT set_config('application_name', :name, false)"), {"name": name})
            if not self._try(conn):
                raise LockHeld(_refused(self._holder(conn), self.where))
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return self

    def _holder(self, conn: Connection) -> str:
        name = conn.scalar(
            text(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :a AND l.objid = :b "
                "AND l.objsubid = 2 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            dict(zip("ab", RUN_LOCK_KEY)),
        )
        return name.removeprefix(HOLDER_PREFIX) if name and name.startswith(HOLDER_PREFIX) else "unknown"

    def __exit__(self, *exc) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"), dict(zip("ab", RUN_LOCK_KEY)))
            finally:
                self._conn.close()  # closing alone would release it too: the lock is the connection's
                self._conn = None

    def is_held_elsewhere(self) -> bool:
        """True while another connection (any machine's run) holds the lock."""
        conn = self._connect()
        try:
            if not self._try(conn):
                return True
            conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"), dict(zip("ab", RUN_LOCK_KEY)))
            return False
        finally:
            conn.close()
