"""Folders of files the server makes on demand and keeps (DATA/previews/, DATA/exports/), capped in size.

Each file is named by a hash of what it shows, so it is made once and found again. Two requests for the same
file while it is being made wait for one maker (the second finds the file made). A file's mtime is its last use:
making it or handing it out again. After each new file (and when a server starts) the least recently used files
beyond the folder's size cap are deleted, oldest first, but never one being made, one of the writers' temporary
files, or one used within `keep_seconds` (a player fetches a preview in ranges for as long as it plays).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

KEEP_SECONDS = 3600.0  # a file used this recently may still be playing or downloading


class MadeFiles:
    def __init__(self, folder: Path, max_bytes: int | None = None, keep_seconds: float = KEEP_SECONDS) -> None:
        self.folder, self.max_bytes, self.keep_seconds = folder, max_bytes, keep_seconds  # max_bytes None: no cap
        self._guard = threading.Lock()
        self._makers: dict[str, tuple[threading.Lock, int]] = {}  # name -> (its lock, threads holding or waiting)

    def get(self, name: str, make: Callable[[Path], None]) -> Path:
        """The file `name` in the folder, made first by `make(path)` (which writes it atomically) if missing."""
        path = self.folder / name
        with self._making(name):
            if path.is_file():
                self._mark_used(path)
                return path
            make(path)
        self.trim()
        return path

    def trim(self, now: float | None = None) -> list[Path]:
        """Delete the least recently used files beyond the size cap; return what was deleted."""
        if self.max_bytes is None or not self.folder.is_dir():
            return []
        now = time.time() if now is None else now
        files = sorted(self._files(), key=lambda item: item[1].st_mtime)
        total, deleted = sum(stat.st_size for _path, stat in files), []
        for path, stat in files:
            if total <= self.max_bytes:
                break
            if now - stat.st_mtime >= self.keep_seconds and self._delete_unused(path, now):
                total -= stat.st_size
                deleted.append(path)
        if deleted:
            log.info(
                "deleted %d least recently used files of %s (cap %d MB)",
                len(deleted),
                self.folder,
                self.max_bytes >> 20,
            )
        return deleted

    def _delete_unused(self, path: Path, now: float) -> bool:
        """Delete `path` unless it is being made or handed out, or was since the folder was listed."""
        with self._guard:  # no maker starts meanwhile
            try:
                if path.name in self._makers or now - path.stat().st_mtime < self.keep_seconds:
                    return False
                path.unlink()
            except FileNotFoundError:
                return False  # deleted meanwhile (another trim)
        return True

    def _mark_used(self, path: Path) -> None:
        """Its mtime is now: the last to be trimmed. A read-only data dir still serves what it holds."""
        try:
            os.utime(path)
        except OSError as exc:
            log.info("cannot mark %s as used (it may be trimmed early): %s", path.name, exc)

    def _files(self) -> Iterator[tuple[Path, os.stat_result]]:
        for entry in os.scandir(self.folder):
            if entry.name.startswith("."):  # a writer's temporary file (indexer/atomic.py): being written
                continue
            try:
                if entry.is_file(follow_symlinks=False):
                    yield Path(entry.path), entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted meanwhile

    @contextmanager
    def _making(self, name: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._makers.get(name, (threading.Lock(), 0))
            self._makers[name] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                users = self._makers[name][1] - 1
                if users:
                    self._makers[name] = (lock, users)
                else:
                    del self._makers[name]
