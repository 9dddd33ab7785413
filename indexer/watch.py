"""Keep a data dir's index up to date with library roots: events -> settled paths -> index runs.

Nothing lives only in memory: on start (and every `rescan` seconds, a safety net for missed events)
the roots are compared with the catalog, so a restart catches up with whatever happened meanwhile.
The data dir's lock is taken only while a batch is indexed: an idle watch never blocks `run.py index`,
and a batch that finds the lock held waits and tries again.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from indexer.catalog import Catalog
from indexer.incremental import changed_paths, index_paths
from indexer.lock import LockHeld
from indexer.records import IndexReport
from indexer.scan import RootError
from indexer.settings import DataDir, IndexSettings
from indexer.settle import SettleTracker
from indexer.towers import EncoderCache
from indexer.watcher import FolderWatcher, observer_for

DEFAULT_SETTLE_S = 5.0
DEFAULT_RESCAN_S = 600.0


@dataclass(frozen=True)
class WatchSettings:
    roots: tuple[Path, ...]
    settle: float = DEFAULT_SETTLE_S  # seconds a file must stay unchanged before it is indexed
    poll: float | None = None  # poll the roots every N seconds (network shares); None: file-system events
    rescan: float = DEFAULT_RESCAN_S  # compare the roots with the catalog this often, in case events were lost
    tick: float = 0.5  # how often settled paths are collected
    retry: float = 5.0  # seconds before a batch that found the lock held tries again


class Watch:
    """`run(stop)` watches until `stop` is set. Cheap to construct."""

    def __init__(
        self,
        watch: WatchSettings,
        settings: Callable[[], IndexSettings],  # called per batch (serve reads the data dir's encoders)
        on_report: Callable[[IndexReport, list[Path]], None] = lambda report, paths: None,
        on_busy: Callable[[str, int], None] = lambda message, waiting: None,
    ):
        self.watch = watch
        self.settings = settings
        self.on_report = on_report
        self.on_busy = on_busy
        self.ready: set[Path] = set()  # settled, not yet indexed (the lock was held, or a batch is on)
        # the batches' encoders, loaded by the first and kept: loading ViT-S + CLIP B-32 again for each batch
        # made every file ~1.7 s later to be searchable on the 2-core EPYC (bench/watch_latency.py)
        self.encoders = EncoderCache()
        self._busy = False  # the last try found the lock held (said once per busy spell)

    def run(self, stop: threading.Event) -> None:
        data = self.settings().data
        create_catalog(data)
        tracker = SettleTracker(self.watch.settle)
        watcher = FolderWatcher(list(self.watch.roots), tracker, observer_for(self.watch.poll), ignored=[data.root])
        watcher.start()  # before the catch-up scan, so nothing changes unseen in between
        try:
            self._loop(stop, tracker, data)
        finally:
            watcher.stop()

    def _loop(self, stop: threading.Event, tracker: SettleTracker, data: DataDir) -> None:
        next_scan, retry_at = time.monotonic(), 0.0
        while not stop.is_set():
            if time.monotonic() >= next_scan:
                for path in changed_paths(data, list(self.watch.roots)):
                    tracker.note(path)
                next_scan = time.monotonic() + self.watch.rescan
            self.ready.update(tracker.take_settled())
            if self.ready and time.monotonic() >= retry_at:
                retry_at = self._index_ready(stop)
            stop.wait(self.watch.tick)

    def _index_ready(self, stop: threading.Event) -> float:
        """Index the settled paths in one run; returns when to try again if the lock was held, else 0."""
        batch = sorted(self.ready)
        try:
            report = index_paths(self.settings(), batch, stop.is_set, self.encoders)
        except LockHeld as exc:
            if not self._busy:
                self.on_busy(str(exc), len(batch))
            self._busy = True
            return time.monotonic() + self.watch.retry
        self._busy = False
        self.encoders.keep_used()
        if not report.cancelled:  # a cancelled run's unfinished files are found again by the next start's scan
            self.ready.difference_update(batch)
        self.on_report(report, batch)
        return 0.0


def create_catalog(data: DataDir) -> None:
    """Make a new data dir's catalog before anything else can open it: two connections creating one new
    SQLite catalog at the same moment can fail (one sees the other's half-made schema), and with a watch
    the first batch would race the server's UI, or an `index` started beside it."""
    if data.catalog_url is None and not (data.root / "catalog.db").exists():
        data.root.mkdir(parents=True, exist_ok=True)
        Catalog(data.catalog).open().close()


def watch_roots(paths: list[Path]) -> tuple[Path, ...]:
    """Absolute folders to watch; RootError naming a path that is not an existing folder."""
    roots = []
    for path in paths:
        if not os.path.isdir(path):
            raise RootError(f"cannot watch {path}: not a folder")
        roots.append(Path(os.path.abspath(path)))
    return tuple(roots)
