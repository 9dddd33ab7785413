"""Thumbnail choice: the sharpest frame that is not black."""

import numpy as np
from PIL import Image

from indexer.thumbnails import pick_thumbnail, write_thumbnail


def frames():
    rng = np.random.default_rng(0)
    black = np.zeros((48, 64, 3), np.uint8)
    black[::2, ::2] = 12  # sharp but dark
    flat = np.full((48, 64, 3), 120, np.uint8)
    sharp = rng.integers(60, 200, (48, 64, 3), dtype=np.uint8)
    blurred = np.full((48, 64, 3), 128, np.uint8)
    blurred[:, 32:] = 140
    return [black, flat, sharp, blurred]


def test_sharpest_non_black_frame_wins():
    assert pick_thumbnail(frames()) == 2


def test_all_black_still_gives_a_thumbnail():
    assert pick_thumbnail([np.zeros((8, 8, 3), np.uint8)] * 3) == 0


def test_thumbnail_is_written_as_jpeg(tmp_path):
    relative = write_thumbnail(tmp_path, "ab12cd", 7, frames())
    assert relative == "thumbs/ab/ab12cd/00007.jpg"
    with Image.open(tmp_path / relative) as image:
        assert image.format == "JPEG" and image.size == (64, 48)
    assert [p.name for p in (tmp_path / relative).parent.iterdir()] == ["00007.jpg"]
