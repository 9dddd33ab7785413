"""Per-stage time of a run, for benchmarks: wrap named functions, sum their wall and CPU seconds.

    timer = StageTimer()
    with timer.watch(Towers, "embed", "model"), timer.watch(thumbnails, "write_thumbnail", "thumbnails"):
        run_index(...)
    timer.rows()  # [(stage, calls, wall s, cpu s of the calling thread)]

Generator functions (a decoder's `clips`) are timed per item, so only the work done inside them counts, not
the time their consumer holds an item. CPU seconds are the calling thread's (`time.thread_time`): work
that a stage hands to native threads (FFmpeg's frame threads, OpenVINO's) shows in wall time only, and in
`process` (every thread's CPU seconds over a stage: meaningful for a whole run). Bench-only: the timed
code is not changed, its attributes are swapped for the duration of the `with` and put back after.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import time
from collections import defaultdict


class StageTimer:
    def __init__(self) -> None:
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.process: dict[str, float] = defaultdict(float)  # CPU seconds of every thread of the process

    @contextlib.contextmanager
    def watch(self, owner, attr: str, stage: str):
        """Time every call of `owner.attr` (a module function or a class's method) as `stage`."""
        original = inspect.getattr_static(owner, attr)
        function = getattr(owner, attr)
        wrapped = self._wrap_generator(function, stage) if inspect.isgeneratorfunction(function) else None
        setattr(owner, attr, wrapped or self._wrap(function, stage))
        try:
            yield
        finally:
            setattr(owner, attr, original)

    def add(self, stage: str, wall: float, cpu: float) -> None:
        self.wall[stage] += wall
        self.cpu[stage] += cpu
        self.calls[stage] += 1

    @contextlib.contextmanager
    def span(self, stage: str):
        """Time a block of the benchmark's own code as `stage`."""
        wall, cpu, process = time.perf_counter(), time.thread_time(), time.process_time()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - wall, time.thread_time() - cpu)
            self.process[stage] += time.process_time() - process

    def _wrap(self, function, stage: str):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            with self.span(stage):
                return function(*args, **kwargs)

        return timed

    def _wrap_generator(self, function, stage: str):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            items = function(*args, **kwargs)
            try:
                while True:
                    with self.span(stage):
                        try:
                            item = next(items)
                        except StopIteration:
                            return
                    yield item
            finally:
                items.close()

        return timed

    def rows(self) -> list[tuple[str, int, float, float]]:
        return [(stage, self.calls[stage], self.wall[stage], self.cpu[stage]) for stage in self.wall]
