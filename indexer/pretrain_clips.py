"""Clips for pretraining: random windows over a whole library, decoded as indexing decodes them, augmented
as the official VideoMAE v2 recipe does (multi-scale crop; plus a horizontal flip).

The data order is a pure function of the seed: clip number i takes its video, position, crop and flip
from a generator seeded with (seed, i). A run resumed at clip i therefore sees exactly the clips an
uninterrupted run would, with no generator state to save. Footage that cannot be decoded is skipped
with a warning naming the file, never stopping the run; the draw that picked it is repeated from the
same generator. A file is tried again each time it is drawn (a damaged file may decode elsewhere), so a
resumed run, which knows nothing of earlier failures, draws exactly the same clips.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.decode import ClipDecoder, ProbeError, probe
from indexer.pretrain_errors import NoClipsError
from indexer.records import ClipSampling, VideoInfo

# Official `GroupMultiScaleCrop(input_size, [1, .875, .75, .66])`: crop sides as fractions of the short side.
CROP_SCALES = (1.0, 0.875, 0.75, 0.66)
MAX_DISTORT = 1  # a crop's width and height scales differ by at most one step (aspect jitter)
FLIP_PROBABILITY = 0.5


@dataclass(frozen=True)
class Footage:
    """A probed video pretraining may draw clips from."""

    path: Path
    info: VideoInfo


@dataclass(frozen=True)
class Crop:
    """Where a clip's crop lies in its frames (pixels), and whether it is mirrored."""

    top: int
    left: int
    height: int
    width: int
    flip: bool


def probe_footage(paths: list[Path], warn: Callable[[str], None]) -> list[Footage]:
    """The videos among `paths` that open as video; the others are named in a warning and left out."""
    found = []
    for path in paths:
        try:
            found.append(Footage(path, probe(path)))
        except ProbeError as exc:
            warn(f"skipping {path}: {exc}")
    return found


def clip_rng(seed: int, index: int) -> np.random.Generator:
    """The generator that decides clip number `index` of a run seeded with `seed`."""
    return np.random.default_rng([seed, index])


def sample_crop(rng: np.random.Generator, height: int, width: int) -> Crop:
    """A multi-scale corner/centre crop as the official recipe draws it (13 fixed offsets), plus a flip."""
    base = min(height, width)
    sides = [int(base * s) for s in CROP_SCALES]
    pairs = [(h, w) for i, h in enumerate(sides) for j, w in enumerate(sides) if abs(i - j) <= MAX_DISTORT]
    crop_h, crop_w = pairs[rng.integers(len(pairs))]
    h_step, w_step = (height - crop_h) // 4, (width - crop_w) // 4
    # corners, centre, edge centres, quarter points: the official `fill_fix_offset(more_fix_crop=True)`
    grid = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2), (2, 0), (2, 4), (4, 2), (0, 2), (1, 1), (1, 3), (3, 1), (3, 3)]
    row, col = grid[rng.integers(len(grid))]
    return Crop(row * h_step, col * w_step, crop_h, crop_w, bool(rng.random() < FLIP_PROBABILITY))


def apply_crop(frames: list[np.ndarray], crop: Crop, size: int) -> np.ndarray:
    """uint8 (T, size, size, 3): each frame cropped, resized (bilinear, as the official code) and maybe mirrored."""
    import torch

    stack = np.stack([f[crop.top : crop.top + crop.height, crop.left : crop.left + crop.width] for f in frames])
    x = torch.from_numpy(stack).permute(0, 3, 1, 2).float()
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    if crop.flip:
        x = x.flip(-1)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


class ClipSampler:
    """Clip number i of a seeded run, from any of `footage`: uint8 (T, size, size, 3), augmented."""

    def __init__(
        self, footage: list[Footage], sampling: ClipSampling, size: int, seed: int, warn: Callable[[str], None]
    ):
        if not footage:
            raise NoClipsError("no decodable video to pretrain on")
        self.footage = footage
        self.sampling = sampling
        self.size = size
        self.seed = seed
        self.warn = warn
        self.warned: set[Path] = set()  # files already named in a warning (once per file is enough)
        self.max_draws = 8 * len(footage) + 8  # past this many failed draws in a row, nothing decodes

    def clip(self, index: int) -> np.ndarray:
        rng = clip_rng(self.seed, index)
        for _ in range(self.max_draws):
            footage = self.footage[int(rng.integers(len(self.footage)))]
            start, crop_seed = rng.random(), int(rng.integers(2**32))
            frames = self._decode(footage, start)
            if frames is not None:
                crop = sample_crop(np.random.default_rng(crop_seed), *frames[0].shape[:2])
                return apply_crop(frames, crop, self.size)
        raise NoClipsError(
            f"no clip could be decoded from the {len(self.footage)} videos in {self.max_draws} tries "
            "(see the warnings above)"
        )

    def batch(self, first: int, count: int) -> np.ndarray:
        """uint8 (count, T, size, size, 3): clips first .. first + count - 1."""
        return np.stack([self.clip(first + i) for i in range(count)])

    def _decode(self, footage: Footage, fraction: float) -> list[np.ndarray] | None:
        """The window starting at `fraction` of the positions a whole window fits in, uncropped (short
        side = size); None (after a warning) when the file cannot be decoded there."""
        info = footage.info
        window_s = self.sampling.span / info.fps if info.fps else 0.0
        start = fraction * max(0.0, (info.duration or 0.0) - window_s)
        decoder = ClipDecoder(footage.path, info, self.sampling, self.size, time_range=(start, None), max_windows=1)
        try:
            clip = next(iter(decoder.clips()), None)
        except ProbeError as exc:  # the decoder's own messages; anything else is a bug and propagates
            return self._skip(footage.path, str(exc))
        if clip is None:
            return self._skip(footage.path, decoder.summary.error or "no decodable frames")
        return clip.full_frames

    def _skip(self, path: Path, reason: str) -> None:
        if path not in self.warned:
            self.warned.add(path)
            self.warn(f"skipping {path}: {reason}")
        return None
