"""Which changed paths have gone quiet: a path is settled once its size and mtime have stayed the
same for `settle` seconds. A camera or a copy still writing a file keeps changing it, so a
half-written file is never indexed. A gone path waits one settle period longer (at least a second):
the new half of a move then always goes first or together with it, and the move is a path update
(or a second path, then the old one dropped), never a deletion of the video followed by a re-embed."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

FileState = tuple[int, int] | None  # (size, mtime_ns); None: the path does not exist


def file_state(path: Path) -> FileState:
    try:
        info = os.stat(path)
    except OSError:  # gone, or unreadable: the index run that follows reports which
        return None
    return info.st_size, info.st_mtime_ns


class SettleTracker:
    """Thread-safe: file-system event threads `note`, the watch loop takes what has settled."""

    def __init__(
        self,
        settle: float,
        clock: Callable[[], float] = time.monotonic,
        state: Callable[[Path], FileState] = file_state,
    ):
        self.settle = settle
        self.gone_settle = settle + max(settle, 1.0)
        self._clock = clock
        self._state = state
        self._pending: dict[Path, tuple[FileState, float]] = {}  # path -> (last state seen, since when)
        self._lock = threading.Lock()

    def note(self, path: Path) -> None:
        """Something happened at `path`: its quiet period starts again."""
        state, now = self._state(path), self._clock()
        with self._lock:
            self._pending[path] = (state, now)

    def waiting(self) -> int:
        with self._lock:
            return len(self._pending)

    def take_settled(self) -> list[Path]:
        """The paths unchanged for `settle` seconds, removed from the pending set, in path order."""
        now = self._clock()
        with self._lock:
            paths = list(self._pending)
        states = {path: self._state(path) for path in paths}  # outside the lock: stat can be slow on a share
        settled = []
        with self._lock:
            for path, current in states.items():
                seen, since = self._pending.get(path, (current, now))
                if current != seen:
                    self._pending[path] = (current, now)
                elif now - since >= (self.settle if current is not None else self.gone_settle):
                    settled.append(path)
                    del self._pending[path]
        return sorted(settled)
