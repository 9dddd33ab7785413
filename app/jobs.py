"""Index runs started from the web UI: one at a time, in a background thread, cancellable.

Searching keeps working meanwhile: every finished video is committed to the catalog, and the
query service picks up new vectors on its next query (SearchService.refresh).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from app.query import QueryError
from indexer.pipeline import run_index
from indexer.progress import ProgressCounter, ProgressSnapshot
from indexer.settings import IndexSettings


@dataclass(frozen=True)
class JobState:
    status: str = "idle"  # idle | running | done | cancelled | failed
    folder: str | None = None
    progress: ProgressSnapshot = field(default_factory=ProgressSnapshot)  # seconds of video embedded, of planned
    started: float | None = None  # time.monotonic()
    error: str | None = None
    report: dict | None = None

    @property
    def current(self) -> str:  # the file being indexed
        return self.progress.current

    @property
    def fraction(self) -> float:
        return 1.0 if self.status == "done" else self.progress.fraction

    def eta_seconds(self) -> float | None:
        return self.progress.eta_seconds() if self.status == "running" else None


def inside(folder: Path, roots: list[Path]) -> bool:
    real = Path(os.path.realpath(folder))
    return any(real == r or r in real.parents for r in (Path(os.path.realpath(x)) for x in roots))


class IndexJobs:
    """Cheap to construct; `start()` launches a run over a folder inside the allowed roots."""

    def __init__(self, settings: Callable[[], IndexSettings], allowed_roots: list[Path]):
        self._settings = settings
        self.allowed_roots = [Path(r) for r in allowed_roots]
        self._state = JobState()
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._counter: ProgressCounter | None = None  # the running run's, once it has planned

    def state(self) -> JobState:
        with self._lock:
            state, counter = self._state, self._counter
        return replace(state, progress=counter.snapshot()) if counter else state

    def start(self, folder: str) -> JobState:
        path = Path(folder.strip()).expanduser() if folder and folder.strip() else None
        if not self.allowed_roots:
            raise QueryError("indexing from the web UI is off: start the server with --root DIR")
        if path is None or not path.is_absolute():
            raise QueryError("give the absolute path of a folder to index")
        if not inside(path, self.allowed_roots):
            roots = ", ".join(str(r) for r in self.allowed_roots)
            raise QueryError(f"{path} is not inside the allowed library roots ({roots})")
        if not path.is_dir():
            raise QueryError(f"{path} is not a folder")
        with self._lock:
            if self._state.status == "running":
                raise QueryError(f"already indexing {self._state.folder}; wait or cancel it first")
            self._cancel.clear()
            self._counter = None
            self._state = JobState("running", str(path), started=time.monotonic())
        self._thread = threading.Thread(target=self._run, args=(path,), name="tubelet-index", daemon=True)
        self._thread.start()
        return self.state()

    def cancel(self) -> JobState:
        self._cancel.set()
        return self.state()

    def wait(self, timeout: float | None = None) -> JobState:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.state()

    def _run(self, path: Path) -> None:
        try:
            report = run_index(self._settings(), [path], self._progress, self._cancel.is_set)
            status = "cancelled" if report.cancelled else "done"
            self._finish(status=status, report=report.to_json())
        except Exception as exc:  # shown in the UI; the catalog keeps every finished video
            self._finish(status="failed", error=f"{type(exc).__name__}: {exc}")

    def _finish(self, **changes) -> None:
        """The final state keeps the run's last progress (its elapsed time stops here)."""
        with self._lock:
            progress = self._counter.snapshot() if self._counter else self._state.progress
            self._state = replace(self._state, progress=replace(progress, current=""), **changes)
            self._counter = None

    def _progress(self, total_s: float) -> ProgressCounter:
        counter = ProgressCounter(total_s)
        with self._lock:
            self._counter = counter
        return counter
