"""How a catalog URL becomes a SQLAlchemy engine, and which files a SQLite catalog is.

Everything that depends on the backend lives here, so the catalog's queries do not: a server
database (PostgreSQL) is a URL, a SQLite file gets its pragmas, and a SQLite file that cannot be
written is opened read-only (searching still works). A damaged SQLite file surfaces as one
CatalogDamaged wherever it shows.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, event, make_url
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from indexer.catalog_errors import CatalogDamaged
from indexer.files import inode_key

SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26  # primary result codes of a damaged database file
SQLITE_PERM, SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN = 3, 8, 10, 13, 14  # ... of one not writable


def open_engine(
    url: str, needs_upgrade: Callable[[Connection], bool], upgrade: Callable[[Connection], None]
) -> tuple[Engine, str]:
    """(engine with its schema brought up to date, why it is read-only or "" when it can write).

    `upgrade` runs when `needs_upgrade` says so, under the schema lock (see `_upgrade_schema`). A SQLite
    file that cannot be written (read-only file system or permissions), or whose schema cannot be
    upgraded (e.g. a full disk: no room for the WAL index), is opened read-only, not upgraded."""
    sqlite_file = _sqlite_file(url)
    if sqlite_file is not None and not _writable(sqlite_file):
        return _read_only_engine(url, sqlite_file), "it is read-only"
    engine = create_engine(url)
    event.listen(engine, "handle_error", _raise_if_damaged(describe_url(url)))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        _upgrade_schema(engine, needs_upgrade, upgrade)
    except OperationalError as exc:
        if sqlite_file is None or not sqlite_file.exists() or not _cannot_write(exc.orig):
            raise  # a migration that fails for another reason is a bug to see, not a read-only catalog
        engine.dispose()  # reading still works
        return _read_only_engine(url, sqlite_file), str(exc.orig) or "it cannot be written"
    return engine, ""


def _upgrade_schema(
    engine: Engine, needs_upgrade: Callable[[Connection], bool], upgrade: Callable[[Connection], None]
) -> None:
    """Create or upgrade the schema in one write transaction that one opener at a time runs.

    Two processes (say `index` and `serve`, or two machines sharing a PostgreSQL catalog) may open a
    catalog that does not exist yet at the same moment; each checking and then creating tables would
    collide ("no such table", a unique row inserted twice). So the transaction first takes a lock (see
    `_schema_lock`), then asks again: the second opener waits and finds the work done. A catalog that is
    up to date is left alone without taking the lock."""
    with engine.connect() as conn:
        pending = needs_upgrade(conn)
        conn.rollback()
        if not pending:
            return
        with _schema_lock(conn):
            if needs_upgrade(conn):
                upgrade(conn)


SCHEMA_LOCK_KEY = 0x7475_6265  # "tube": pg_advisory_xact_lock's key for schema changes


@contextmanager
def _schema_lock(conn: Connection) -> Iterator[None]:
    """A write transaction for a schema change, under a lock held until it commits (or rolls back).

    SQLite: BEGIN IMMEDIATE takes the database's write lock before reading anything; foreign keys are
    off meanwhile (a table that batch mode copies and drops must not cascade its rows away) and checked
    before the commit. PostgreSQL: a transaction-scoped advisory lock (DDL there is transactional). Other
    server databases: the transaction alone."""
    if conn.dialect.name != "sqlite":
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})")
        yield
        conn.commit()
        return
    conn.exec_driver_sql("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction: set before BEGIN
    conn.exec_driver_sql("BEGIN IMMEDIATE")
    try:
        yield
        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise CatalogDamaged(describe_url(str(conn.engine.url)), f"rows whose parent is gone: {broken[:5]}")
        conn.commit()
    finally:
        conn.rollback()  # no-op after the commit
        conn.exec_driver_sql("PRAGMA foreign_keys=ON")


def describe_url(url: str) -> str:
    """The catalog as users know it: the SQLite file, else the URL without its password."""
    sqlite_file = _sqlite_file(url)
    return str(sqlite_file) if sqlite_file is not None else make_url(url).render_as_string(hide_password=True)


@dataclass(frozen=True)
class FileIdentity:
    """(st_dev, st_ino) of a SQLite catalog's files; None where a file does not exist."""

    database: tuple[int, int] | None
    wal: tuple[int, int] | None
    shm: tuple[int, int] | None

    def replaced_since(self, earlier: FileIdentity) -> bool:
        """Whether these are other files than `earlier`: the database itself, or a -wal/-shm that
        existed then (a reader's connection keeps those; another one means someone deleted them)."""
        if self.database != earlier.database:
            return True
        return any(old is not None and new != old for old, new in ((earlier.wal, self.wal), (earlier.shm, self.shm)))


def file_identity(url: str) -> FileIdentity | None:
    """Which files the catalog at `url` is, by (st_dev, st_ino); None for a server database."""
    sqlite_file = _sqlite_file(url)
    if sqlite_file is None:
        return None
    return FileIdentity(*(inode_key(p) for p in _sqlite_files(sqlite_file)))


@contextmanager
def companions_kept(url: str) -> Iterator[None]:
    """Keep a SQLite catalog's -wal and -shm files while stale connections to it close.

    SQLite deletes `-wal` and `-shm` *by name* when a connection that can lock the database
    closes it; when those names now belong to another process's live files, that would throw
    away its committed transactions. So they are kept aside (hard links) during the block, and
    put back if SQLite removed them.
    """
    sqlite_file = _sqlite_file(url)
    companions = _sqlite_files(sqlite_file)[1:] if sqlite_file is not None else ()
    kept = [(path, _keep_aside(path)) for path in companions]
    try:
        yield
    finally:
        for path, aside in kept:
            if aside is not None:
                _put_back(aside, path)


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _sqlite_files(path: Path) -> tuple[Path, Path, Path]:
    return path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def _keep_aside(path: Path) -> Path | None:
    """A hard link to `path` under a hidden name (None if there is no such file)."""
    aside = path.with_name(f".{path.name}.{os.getpid()}.keep")
    aside.unlink(missing_ok=True)
    try:
        os.link(path, aside)
    except FileNotFoundError:
        return None
    return aside


def _put_back(aside: Path, path: Path) -> None:
    """Restore `path` from its hard link if it was removed meanwhile; drop the link either way."""
    if path.exists():
        aside.unlink(missing_ok=True)
    else:
        os.replace(aside, path)


def _writable(path: Path) -> bool:
    if path.exists():
        return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
    return os.access(path.parent if path.parent.exists() else path.parent.parent, os.W_OK)


def _read_only_engine(url: str, sqlite_file: Path) -> Engine:
    engine = create_engine("sqlite://", creator=lambda: _read_only_connection(sqlite_file))
    event.listen(engine, "handle_error", _raise_if_damaged(describe_url(url)))
    return engine


def _read_only_connection(path: Path) -> sqlite3.Connection:
    """A connection that never writes, for a data dir that cannot be written (or is full).

    SQLite's read-only WAL mode (3.22+) reads committed transactions still in the -wal file, but
    needs a usable WAL index (-shm). When it has none (no -wal left after a clean shutdown, or a
    disk too full to recover one), `immutable` reads the main file as of the last checkpoint.
    """
    uri = f"file:{quote(str(path))}?mode=ro"
    try:
        if path.with_name(path.name + "-wal").exists():
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return conn
            except sqlite3.OperationalError:
                conn.close()
        conn = sqlite3.connect(uri + "&immutable=1", uri=True, check_same_thread=False)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.DatabaseError as exc:
        if _is_damaged_file_error(exc):
            raise CatalogDamaged(str(path), str(exc)) from exc
        raise


def _cannot_write(exc: BaseException) -> bool:
    """Whether a SQLite error says the file cannot be written (permissions, read-only mount, full disk, I/O)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (
        SQLITE_PERM,
        SQLITE_READONLY,
        SQLITE_IOERR,
        SQLITE_FULL,
        SQLITE_CANTOPEN,
    )


def _is_damaged_file_error(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)  # extended code; the low byte is the primary one
    return (
        isinstance(exc, sqlite3.DatabaseError) and code is not None and code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB)
    )


def _raise_if_damaged(where: str):
    """An engine `handle_error` hook: a damaged file becomes one clear CatalogDamaged, wherever it shows."""

    def hook(context) -> None:
        if _is_damaged_file_error(context.original_exception):
            raise CatalogDamaged(where, str(context.original_exception)) from context.original_exception

    return hook


def _switch_to_wal(cursor, attempts: int = 250) -> None:
    """PRAGMA journal_mode=WAL, retried: on a new file that another connection is switching at the same
    moment, SQLite answers "database is locked" at once, without waiting for busy_timeout."""
    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.02)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    _switch_to_wal(cursor)  # readers never block the indexer, nor it them
    cursor.execute("PRAGMA synchronous=FULL")  # a committed video survives power loss
    cursor.execute("PRAGMA foreign_keys=ON")  # clip and vector rows cascade with their video
    cursor.close()
