"""Cut a stream of decoded frames into clip windows, without knowing its length in advance.

Containers without a duration, VFR footage and broken headers mean the frame count is only
known at the end of the stream, so windows are assembled as frames arrive:

- regular windows start every `stride` source frames and sample `window_frames` frames
  `frame_interval` apart; a window represents `span = window_frames * frame_interval` frames, so
  with the default stride (= span) the windows tile the video;
- the tail: when windows cover the stream (stride <= span) and the last regular window leaves at
  least a quarter span of it uncovered,
  one more window is aligned to the end of the stream (same sampling phase), so the last
  seconds are searchable; a smaller remainder is not worth a near-duplicate window, so the last
  window's time range is extended to the end instead (each window is therefore emitted a
  quarter span late, once it is known not to be the last);
- a stream shorter than one span still yields one window: `window_frames` frames spread evenly
  over whatever was decoded (indices repeat when there are fewer frames than `window_frames`).

Memory is bounded by about two windows of frames, whatever the video's length.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from indexer.records import ClipSampling, ClipWindow


@dataclass(frozen=True)
class AssembledWindow:
    window: ClipWindow
    frames: list[Any]  # the converted frames, in sampling order (shared, not copied)


class WindowAssembler:
    """Feed frames in presentation order with `push`; call `finish` at the end of the stream."""

    def __init__(self, sampling: ClipSampling):
        self.s = sampling
        self._frames: dict[int, Any] = {}  # source index -> converted frame
        self._times: dict[int, float] = {}  # source index -> seconds
        self._next_window = 0  # next regular window to complete
        self._held: AssembledWindow | None = None  # completed, released once it is not the last
        self._ordinal = 0
        self._count = 0  # frames pushed so far

    # -- what to keep -------------------------------------------------------------------------
    def _sampled_by_regular(self, i: int) -> bool:
        s = self.s
        reach = (s.window_frames - 1) * s.frame_interval
        first = max(0, -(-(i - reach) // s.stride))
        return any((i - w * s.stride) % s.frame_interval == 0 for w in range(first, i // s.stride + 1))

    def _kept_after_first_span(self, i: int) -> bool:
        return i % self.s.frame_interval == 0 or self._sampled_by_regular(i)

    def needs(self, i: int) -> bool:
        """Whether frame `i` must be converted (conversion is the costly part, so skip others)."""
        return i < self.s.span or self._kept_after_first_span(i)

    # -- feeding --------------------------------------------------------------------------------
    def push(self, i: int, time: float, convert: Callable[[], Any]) -> list[AssembledWindow]:
        """Add source frame `i` shown at `time`; returns the windows this frame completes."""
        if i != self._count:
            raise ValueError(f"frames must be pushed in order: expected {self._count}, got {i}")
        self._count += 1
        self._times[i] = time
        if self.needs(i):
            self._frames[i] = convert()
        done = []
        if self._held is not None and i == self._held_end_index() + self._quarter:
            done.append(self._held)  # the stream goes on past its grace period
            self._held = None
        start = self._next_window * self.s.stride
        if i == start + self.s.span:  # the frame after a window's span gives its end time
            if self._held is not None:
                done.append(self._held)
            self._held = self._regular(start, end=time)
            self._next_window += 1
        self._prune(i)
        return done

    def finish(self, end_time: float) -> list[AssembledWindow]:
        """End of stream at `end_time` seconds (end of the last frame). Emits what is left."""
        n = self._count
        if n == 0:
            return []
        if n < self.s.span:
            return [self._short(n, end_time)]
        done = []
        start = self._next_window * self.s.stride
        if start + self.s.span == n:  # a window ending exactly at the last frame
            if self._held is not None:
                done.append(self._held)
            self._held = self._regular(start, end=end_time)
            self._next_window += 1
        last_start = (self._next_window - 1) * self.s.stride
        uncovered = n - (last_start + self.s.span)
        covering = self.s.stride <= self.s.span  # sparse windows leave gaps by design: no tail, no stretch
        if self._held is not None:
            held = self._held
            if covering and uncovered < self._quarter:  # stretch the last window over the small remainder
                held = AssembledWindow(replace(held.window, end=end_time), held.frames)
            done.append(held)
            self._held = None
        tail = self._tail_start(n)
        if covering and uncovered >= self._quarter and tail > last_start:
            done.append(self._window(tail, self._phase_indices(tail), end_time))
        return done

    @property
    def _quarter(self) -> int:
        return self.s.span // 4

    def _held_end_index(self) -> int:
        return (self._next_window - 1) * self.s.stride + self.s.span

    # -- assembling -----------------------------------------------------------------------------
    def _phase_indices(self, start: int) -> list[int]:
        return [start + j * self.s.frame_interval for j in range(self.s.window_frames)]

    def _regular(self, start: int, end: float) -> AssembledWindow:
        return self._window(start, self._phase_indices(start), end)

    def _tail_start(self, n: int) -> int:
        interval = self.s.frame_interval
        return (n - 1) // interval * interval - (self.s.window_frames - 1) * interval

    def _short(self, n: int, end_time: float) -> AssembledWindow:
        indices = np.linspace(0, n - 1, self.s.window_frames).round().astype(int).tolist()
        return self._window(0, indices, end_time)

    def _window(self, start: int, indices: list[int], end: float) -> AssembledWindow:
        clip = AssembledWindow(ClipWindow(self._ordinal, self._times[start], end), [self._frames[i] for i in indices])
        self._ordinal += 1
        return clip

    def _prune(self, i: int) -> None:
        """Forget frames no pending window, tail window or short-video window can still use."""
        if i < self.s.span:
            return
        if i == self.s.span:  # longer than one span: the short-video buffer is not needed
            for index in [k for k in self._frames if not self._kept_after_first_span(k)]:
                del self._frames[index]
        keep_from = min(self._next_window * self.s.stride, i - self.s.span)
        for index in [k for k in self._frames if k < keep_from]:
            del self._frames[index]
        for index in [k for k in self._times if k < keep_from]:
            del self._times[index]
