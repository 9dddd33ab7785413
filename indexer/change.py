"""Tell a window that shows nothing new from one that does, from frames already decoded.

Fixed cameras (corridors, car parks, machines) are static for most of the day; embedding every window
of an empty scene changes no answer. Each window is compared with the last *embedded* window of the same
video, frame by frame, on a tiny grey signature: the tower input (centre crop) averaged down to
GRID x GRID cells, which is a box blur of the crop. Per sampled frame, with d = cell difference to the
reference signature:

- global = |median(d)|: the scene got uniformly brighter or darker (a light switched on);
- local  = max |d - median(d)|: something changed in part of the scene (a person crossing).

A window differs when any of its frames has global or local above the threshold (grey levels, 0-255).
Why this is robust:
- sensor noise and compression flicker average out over a cell (a 224 crop gives 14 x 14 pixels a
  cell: noise of sigma 4 levels becomes ~0.3);
- slow light drift moves every cell alike, so it never shows as local; as global it grows with the
  distance to the reference, and past the threshold one window is embedded and becomes the reference
  (a few re-embeds an hour, never a missed change);
- every sampled frame is checked, not one per window, so a short event inside a window (between two
  keyframes or not) is seen whenever the encoder would have seen it.
"""

from __future__ import annotations

import numpy as np

GRID = 16  # signature cells per side
DEFAULT_THRESHOLD = 10.0  # grey levels; ClipSampling.change_threshold (part of the vector set identity)


def signature(frames: np.ndarray) -> np.ndarray:
    """uint8 (T, S, S, 3) RGB -> float32 (T, GRID, GRID) mean grey level per cell."""
    t, height, width, _ = frames.shape
    cell_h, cell_w = height // GRID, width // GRID
    if cell_h == 0 or cell_w == 0:
        raise ValueError(f"frames of {height}x{width} are smaller than the {GRID}x{GRID} signature grid")
    grey = frames[:, : cell_h * GRID, : cell_w * GRID].mean(axis=3, dtype=np.float32)
    return grey.reshape(t, GRID, cell_h, GRID, cell_w).mean(axis=(2, 4))


def difference(window: np.ndarray, reference: np.ndarray) -> float:
    """The largest change, in grey levels, of any frame signature in `window` (T, G, G) from the
    reference frame signature (G, G): max of its global and local parts (module docstring)."""
    d = (window - reference[None]).reshape(window.shape[0], -1)
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
        self._reference: np.ndarray | None = None  # last frame signature of the last embedded window

    def differs(self, frames: np.ndarray) -> bool:
        window = signature(frames)
        if self._reference is not None and difference(window, self._reference) <= self.threshold:
            return False
        self._reference = window[-1]
        return True
