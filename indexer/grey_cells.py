"""Change signatures of decoded frames, read from their luma plane (see indexer/change.py for their use).

A frame's signature is float32 (n, n): the mean grey level (full range, 0-255) of each cell of the centred
square the towers see, n = cells_per_side(tower input size). Each cell's mean is taken over one luma
sample per tower input pixel (a 224 input in 16 x 16 cells: 14 x 14 samples a cell), read straight from
the decoded frame's Y plane by one gather: no scaling, no copy of the frame. So whatever the towers could
see (a thing a tower pixel wide or more) covers a sample, at any resolution, and the cost does not grow
with it. Scaling each frame to a small grey image in FFmpeg first (what this replaced) cost 0.30 ms a 720p
frame against 0.19 ms (bench/decode_costs.py).

Frames whose first plane is not 8-bit luma (10-bit, RGB, palettes) are converted to 8-bit YUV of the same
size by FFmpeg first. Unrotated: every frame of a video turns alike.
"""

from __future__ import annotations

import numpy as np
from av.video.reformatter import VideoReformatter

from indexer.change import cells_per_side

# 8-bit pixel formats whose first plane is the luma (Y) itself, one byte a pixel
LUMA_PLANE_FORMATS = frozenset(
    {"gray", "nv12", "nv16", "nv21", "nv24", "nv42"}
    | {f"yuv{j}{s}p" for j in ("", "j") for s in ("410", "411", "420", "422", "440", "444")}
)


class GreyCells:
    """The signatures of one stream's frames for towers of input `size`: `cells(frame)`. Keeps the sample
    positions (one gather index per plane geometry) and FFmpeg's converter between frames."""

    def __init__(self, size: int):
        self.n = cells_per_side(size)
        self.samples = max(1, size // self.n)  # a cell's samples a side: one per tower input pixel
        self._index: dict[tuple[int, int, int], np.ndarray] = {}  # (width, height, line size) -> flat index
        self._to_yuv = VideoReformatter()

    def __call__(self, frame) -> np.ndarray:
        if frame.format.name not in LUMA_PLANE_FORMATS:
            frame = self._to_yuv.reformat(frame, format="yuv420p")  # limited range, as FFmpeg converts to YUV
        plane = frame.planes[0]
        luma = np.frombuffer(plane, np.uint8)  # rows of `line_size` bytes, the first `width` of each used
        n, k = self.n, self.samples
        picked = np.take(luma, self._flat_index(plane.width, plane.height, plane.line_size))  # (n * k, n * k)
        cells = picked.reshape(n, k, n, k).mean(axis=(1, 3), dtype=np.float32)
        return _full_range(cells, frame)

    def _flat_index(self, width: int, height: int, line_size: int) -> np.ndarray:
        key = (width, height, line_size)
        if key not in self._index:
            n, k = self.n, self.samples
            side = min(width, height)
            cell = side / n  # source pixels a cell side
            # the centre of each of a cell's k sample strips, in the centred square
            offsets = (np.arange(n * k) + 0.5) * (cell / k)
            rows = np.minimum((height - side) // 2 + offsets.astype(np.intp), height - 1)
            cols = np.minimum((width - side) // 2 + offsets.astype(np.intp), width - 1)
            self._index[key] = rows[:, None] * line_size + cols[None, :]
        return self._index[key]


def _full_range(cells: np.ndarray, frame) -> np.ndarray:
    """Grey levels of limited-range YUV (16-235, what the Y plane of most video holds) as full-range ones
    (0-255), the scale of the detector's threshold and of the towers' RGB."""
    name = frame.format.name
    if name.startswith(("yuv", "nv")) and not name.startswith("yuvj") and frame.color_range != 2:  # 2: JPEG
        return (cells - 16.0) * (255.0 / 219.0)
    return cells
