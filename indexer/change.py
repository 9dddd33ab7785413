"""Tell a window that shows nothing new from one that does, from frames already decoded.

Fixed cameras (corridors, car parks, machines) are static for most of the day; embedding every window
of an empty scene changes no answer. Each window is compared with the last *embedded* window of the same
video, frame by frame, on a tiny grey signature: the tower input (centre crop) averaged down to
GRID x GRID cells (fewer for the tiny test towers), which is a box blur of the crop. For each sampled
frame and each frame of the reference window, with d = their cell differences:

- global = |median(d)|: the scene got uniformly brighter or darker (a light switched on);
- local  = max |d - median(d)|: something changed in part of the scene (a person crossing).

A window differs when any of its frames is, by global or local, more than the threshold (grey levels,
0-255) from any frame of the reference. Against every reference frame, not only its last: the window
after an event (empty again) differs from the event's window and is embedded, so the event's clip stays
as short as the event and the static scene after it gets a clip of its own.
Why this is robust:
- sensor noise and compression flicker average out over a cell (a 224 crop gives 14 x 14 pixels a
  cell: noise of sigma 4 levels becomes ~0.3);
- slow light drift moves every cell alike, so it never shows as local; as global it grows with the
  distance to the reference, and past the threshold one window is embedded and becomes the reference
  (a few re-embeds an hour, never a missed change);
- every sampled frame is checked, not one per window, so a short event inside a window (between two
  keyframes or not) is seen whenever the encoder would have seen it.

Grey is luma (BT.601 weights), full range. Indexing takes each sampled frame's cells from the decoded
frame's luma plane (indexer/grey_cells.py), not from the towers' RGB input: a window that does not differ
is never converted to the towers' sizes, which cost ~10x as much at 720p.
"""

from __future__ import annotations

import numpy as np

GRID = 16  # signature cells per side (fewer for small tower inputs: a cell averages MIN_CELL^2 pixels or more)
MIN_CELL = 8
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # BT.601 grey, what a decoded frame's Y plane holds
DEFAULT_THRESHOLD = 10.0  # grey levels; ClipSampling.change_threshold (part of the vector set identity)


def cells_per_side(size: int) -> int:
    """Signature cells per side for a tower input of `size` pixels: GRID, fewer for small inputs."""
    return max(1, min(GRID, size // MIN_CELL))


def signature(frames: np.ndarray) -> np.ndarray:
    """uint8 (T, S, S, 3) RGB -> float32 (T, n, n) mean grey level per cell, n = cells_per_side(S)."""
    t, height, width, _ = frames.shape
    n = max(1, min(cells_per_side(height), width // MIN_CELL))
    cell_h, cell_w = height // n, width // n
    grey = frames[:, : cell_h * n, : cell_w * n] @ LUMA  # (T, n * cell_h, n * cell_w) float32
    return grey.reshape(t, n, cell_h, n, cell_w).mean(axis=(2, 4))


def difference(window: np.ndarray, reference: np.ndarray) -> float:
    """The largest change, in grey levels, between any frame signature of `window` (T, G, G) and any of
    `reference` (R, G, G): max of its global and local parts (module docstring)."""
    d = (window[:, None] - reference[None]).reshape(window.shape[0] * reference.shape[0], -1)
    shift = np.median(d, axis=1, keepdims=True)
    local = np.abs(d - shift).max(axis=1)
    return float(np.maximum(np.abs(shift[:, 0]), local).max())


class ChangeDetector:
    """One per video: `differs(frames)` for each window in order; a window that differs becomes the
    reference (the caller embeds it), one that does not is skipped and leaves the reference alone."""

    def __init__(self, threshold: float):
        if threshold < 0:
            raise ValueError(f"change threshold must be >= 0 grey levels, got {threshold}")
        self.threshold = threshold
        self._reference: np.ndarray | None = None  # frame signatures of the last embedded window

    def differs(self, frames: np.ndarray) -> bool:
        """`frames`: uint8 (T, S, S, 3) RGB, the towers' input."""
        return self.signature_differs(signature(frames))

    def signature_differs(self, window: np.ndarray) -> bool:
        """`window`: float32 (T, n, n) cell signatures of its sampled frames (`signature`, or
        `indexer.grey_cells.GreyCells` of each decoded frame, which is how indexing computes them)."""
        if self._reference is not None and difference(window, self._reference) <= self.threshold:
            return False
        self._reference = window
        return True
