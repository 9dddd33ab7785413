"""Index progress in seconds of video to embed.

The total is planned before embedding starts (each video's stated duration, from probing), and
progress advances as clip windows are embedded, not as they are decoded: decoding runs ahead of
the encoders, so counting decoded bytes reached 100% long before the run did. A video counts at
most its planned seconds and is topped up to them when it finishes (a file that decodes shorter
than it says, or fails), so progress only grows and ends exactly at the total.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class Progress(Protocol):
    """What the pipeline reports to: seconds of video embedded, and the file being embedded."""

    def update(self, n: float) -> None: ...
    def set_postfix_str(self, s: str) -> None: ...
    def close(self) -> None: ...


class NoProgress:
    def update(self, n: float) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass

    def close(self) -> None:
        pass


ProgressFactory = Callable[[float], Progress]  # total seconds of video to embed -> progress receiver


@dataclass(frozen=True)
class ProgressSnapshot:
    """Where an index run stands. `total_s` is None while the run is still scanning and planning."""

    total_s: float | None = None
    done_s: float = 0.0
    elapsed_s: float = 0.0  # since embedding started
    current: str = ""  # the file being embedded

    @property
    def planned(self) -> bool:
        return self.total_s is not None

    @property
    def fraction(self) -> float:
        if self.total_s is None:
            return 0.0
        if self.total_s <= 0:
            return 1.0  # nothing to embed: all of it is done
        return min(1.0, self.done_s / self.total_s)

    def eta_seconds(self) -> float | None:
        """Seconds left at the rate observed so far; None until something has been embedded."""
        if not self.total_s or self.done_s <= 0 or self.elapsed_s <= 0:
            return None
        rate = self.done_s / self.elapsed_s
        return max(0.0, self.total_s - self.done_s) / rate


class ProgressCounter:
    """A thread-safe Progress that never passes its total; `snapshot()` for whoever shows it."""

    def __init__(self, total_s: float, clock: Callable[[], float] = time.monotonic):
        self.total_s = max(0.0, float(total_s))
        self._clock = clock
        self._started = clock()
        self._done = 0.0
        self._current = ""
        self._lock = threading.Lock()

    def update(self, n: float) -> None:
        with self._lock:
            self._done = min(self.total_s, self._done + max(0.0, n))

    def set_postfix_str(self, s: str) -> None:
        with self._lock:
            self._current = s

    def close(self) -> None:
        pass

    def snapshot(self) -> ProgressSnapshot:
        with self._lock:
            return ProgressSnapshot(self.total_s, self._done, self._clock() - self._started, self._current)


class VideoSeconds:
    """Turns "video K is embedded up to T s" into increments of planned seconds for a Progress."""

    def __init__(self, planned: dict[str, float], progress: Progress):
        self.planned = {key: max(0.0, seconds) for key, seconds in planned.items()}
        self.progress = progress
        self._done = dict.fromkeys(self.planned, 0.0)

    @property
    def total_s(self) -> float:
        return sum(self.planned.values())

    def reached(self, key: str, position_s: float) -> None:
        target = min(position_s, self.planned.get(key, 0.0))
        step = target - self._done.get(key, 0.0)
        if step > 0:
            self._done[key] = target
            self.progress.update(step)

    def finished(self, key: str) -> None:
        self.reached(key, self.planned.get(key, 0.0))
