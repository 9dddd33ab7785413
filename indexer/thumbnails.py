"""One thumbnail per clip: its sharpest frame that is not (nearly) black, as a JPEG in the data dir.

Files are named by content fingerprint and window number, so they are written before the
catalog commit that references them (an interrupted run leaves only files it will overwrite).
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from indexer.atomic import write_bytes_atomic

BLACK_LUMA = 16  # mean luma (0-255) under which a frame counts as black
JPEG_QUALITY = 85


def luma(image: np.ndarray) -> np.ndarray:
    return image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def sharpness(gray: np.ndarray) -> float:
    """Variance of a 4-neighbour Laplacian: high for in-focus detail, low for blur."""
    lap = -4 * gray[1:-1, 1:-1] + gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:]
    return float(lap.var())


def pick_thumbnail(frames: list[np.ndarray]) -> int:
    """Index of the sharpest frame among those that are not black (all frames if all are)."""
    grays = [luma(f[::2, ::2]) for f in frames]  # half resolution is plenty to rank them
    candidates = [i for i, g in enumerate(grays) if g.mean() >= BLACK_LUMA] or list(range(len(frames)))
    return max(candidates, key=lambda i: sharpness(grays[i]))


def relative_path(fingerprint: str, ordinal: int) -> str:
    """Where a clip's thumbnail lives, relative to the data dir."""
    return f"thumbs/{fingerprint[:2]}/{fingerprint}/{ordinal:05d}.jpg"


def thumbnail_jpeg(frames: list[np.ndarray]) -> bytes:
    """The clip's thumbnail as JPEG bytes: made where the frames are (an engine's worker), written by the store step."""
    out = io.BytesIO()
    Image.fromarray(frames[pick_thumbnail(frames)]).save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def save_thumbnail(data_root: Path, fingerprint: str, ordinal: int, jpeg: bytes) -> str:
    relative = relative_path(fingerprint, ordinal)
    write_bytes_atomic(data_root / relative, jpeg)
    return relative


def write_thumbnail(data_root: Path, fingerprint: str, ordinal: int, frames: list[np.ndarray]) -> str:
    return save_thumbnail(data_root, fingerprint, ordinal, thumbnail_jpeg(frames))


def remove_thumbnails(data_root: Path, fingerprint: str) -> None:
    """Drop a deleted video's thumbnails; a missing folder is already the goal."""
    shutil.rmtree(data_root / "thumbs" / fingerprint[:2] / fingerprint, ignore_errors=True)
