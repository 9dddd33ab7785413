"""File-system events under library roots -> a SettleTracker. `start()` / `stop()`; nothing runs before.

The observer (the engine) is chosen by the caller: `observer_for(poll=None)` gives the platform's
event API (inotify, FSEvents, ReadDirectoryChangesW), `observer_for(poll=S)` a poller that lists the
roots every S seconds, for network shares where no events arrive.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from indexer.scan import NON_MEDIA_EXTENSIONS, RootError
from indexer.settle import SettleTracker

FILE_EVENTS = {EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED, EVENT_TYPE_CLOSED, EVENT_TYPE_DELETED, EVENT_TYPE_MOVED}
# A folder's own "modified" event only says an entry inside it changed: that entry has its own event.
FOLDER_EVENTS = {EVENT_TYPE_CREATED, EVENT_TYPE_DELETED, EVENT_TYPE_MOVED}


def observer_for(poll: float | None = None) -> BaseObserver:
    return Observer() if poll is None else PollingObserver(timeout=poll)


class FolderWatcher:
    def __init__(self, roots: list[Path], tracker: SettleTracker, observer: BaseObserver, ignored: list[Path] = ()):
        self.roots = [Path(os.path.abspath(r)) for r in roots]
        self.tracker = tracker
        self.observer = observer
        self.ignored = [Path(os.path.abspath(p)) for p in ignored]  # the data dir: its writes are not footage

    def start(self) -> FolderWatcher:
        handler = _Handler(self._changed)
        try:
            for root in self.roots:
                self.observer.schedule(handler, str(root), recursive=True)
            self.observer.start()
        except OSError as exc:  # e.g. inotify's watch limit on a large library
            raise RootError(
                f"cannot watch {', '.join(map(str, self.roots))}: {exc.strerror or exc}; use --poll S, "
                "or raise the limit (Linux: sysctl fs.inotify.max_user_watches)"
            ) from exc
        return self

    def stop(self) -> None:
        if self.observer.is_alive():
            self.observer.stop()
            self.observer.join()

    def _changed(self, path: Path, is_dir: bool) -> None:
        if not self._wanted(path, is_dir):
            return
        if is_dir and path.is_dir():  # moved or copied in: its files arrive with it, maybe without events
            for folder, dirs, files in os.walk(path):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                for name in files:
                    if self._wanted(Path(folder) / name, False):
                        self.tracker.note(Path(folder) / name)
        else:  # a file, or a folder gone (an index run over it drops what it held)
            self.tracker.note(path)

    def _wanted(self, path: Path, is_dir: bool) -> bool:
        if any(path == p or p in path.parents for p in self.ignored):
            return False
        root = next((r for r in self.roots if r == path or r in path.parents), None)
        if root is None or any(part.startswith(".") for part in path.relative_to(root).parts):
            return False  # hidden, as the scan skips them (cameras and copiers write .part/.tmp files there)
        return is_dir or path.suffix.lower() not in NON_MEDIA_EXTENSIONS


class _Handler(FileSystemEventHandler):
    def __init__(self, changed: Callable[[Path, bool], None]):
        self.changed = changed

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in (FOLDER_EVENTS if event.is_directory else FILE_EVENTS):
            return
        self.changed(Path(os.fsdecode(event.src_path)), event.is_directory)
        if event.event_type == EVENT_TYPE_MOVED:
            self.changed(Path(os.fsdecode(event.dest_path)), event.is_directory)
