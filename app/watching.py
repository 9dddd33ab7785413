"""`serve --watch`: a Watch (indexer/watch.py) in a background thread of the server.

Searches see each batch on their next query (SearchService.refresh follows the catalog's vector
sets), and the Index tab lists what was indexed lately from the catalog.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from app.cli_output import print_watch_busy, print_watch_report
from indexer.settings import IndexSettings
from indexer.watch import Watch, WatchSettings

log = logging.getLogger(__name__)


class BackgroundWatch:
    def __init__(self, watch: WatchSettings, settings: Callable[[], IndexSettings]):
        self.watch = watch
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> BackgroundWatch:
        self._thread = threading.Thread(target=self._run, name="tubelet-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 30.0) -> None:
        """Ask the watch to stop after the video it is indexing (every finished one is already saved)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            Watch(self.watch, self.settings, print_watch_report, print_watch_busy).run(self._stop)
        except Exception as exc:  # the server keeps serving what is indexed; the log says why watching ended
            log.error("watching %s stopped: %s: %s", ", ".join(map(str, self.watch.roots)), type(exc).__name__, exc)
