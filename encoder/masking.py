"""Token masks for VideoMAE v2 dual-masking pretraining, as in the official `dataset/masking_generator.py`.

Masks are bool (B, N) over the token grid (T', H', W') flattened in (t, h, w) order, one row per clip:
- the encoder mask `hidden` (True = hidden from the encoder): tube or random;
- the decoder mask `decoded` (True = the decoder predicts that token): running cell, or exactly the
  hidden tokens when the decoder ratio is 0 (VideoMAE v1).

Every clip gets the same token counts (the model gathers tokens with a reshape), and every draw comes
from the caller's `torch.Generator`, so a seed reproduces the masks. Masks are made on the CPU; the
caller moves them to the model's device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from encoder.errors import ConfigError

Grid = tuple[int, int, int]  # (T', H', W'): tubelets along time, height, width

# The running cell is a 2x2 pattern of decoder places; the official code keeps int(4 * ratio) of them
# from the decoder and accepts only 1..3 (a cell must both decode something and skip something).
CELL = 4


def hidden_count(ratio: float, places: int) -> int:
    """How many of `places` a mask ratio hides: int(ratio * places), exactly the official rounding."""
    return int(ratio * places)


def _random_subset(batch: int, places: int, count: int, generator: torch.Generator | None) -> torch.Tensor:
    """bool (batch, places) with exactly `count` True per row, uniformly chosen."""
    order = torch.rand(batch, places, generator=generator).argsort(dim=1)
    chosen = torch.zeros(batch, places, dtype=torch.bool)
    return chosen.scatter_(1, order[:, :count], True)


def tube_mask(grid: Grid, ratio: float, batch: int, generator: torch.Generator | None) -> torch.Tensor:
    """Tube masking: one random spatial mask per clip, repeated over every time slice. True = hidden.

    Each time slice hides int(ratio * H' * W') places, so a clip hides T' times that.
    """
    t, h, w = grid
    spatial = _random_subset(batch, h * w, hidden_count(ratio, h * w), generator)
    return spatial[:, None, :].expand(batch, t, h * w).reshape(batch, t * h * w)


def random_mask(grid: Grid, ratio: float, batch: int, generator: torch.Generator | None) -> torch.Tensor:
    """Per-token random masking: int(ratio * N) of the clip's N tokens hidden, anywhere. True = hidden."""
    t, h, w = grid
    return _random_subset(batch, t * h * w, hidden_count(ratio, t * h * w), generator)


def running_cell_mask(grid: Grid, ratio: float, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Running-cell decoder masking. True = decoded (the official generator's 0s).

    A 2x2 cell holds int(4 * ratio) skipped places followed by the decoded ones, read circularly from
    a pointer; the cell is tiled over the H' x W' grid, and the pointer moves one step per time slice,
    so over 4 slices every spatial place is decoded (4 - int(4 * ratio)) times. Each clip starts from
    a random pointer. An odd grid side crops the tiling, so its counts are not exactly the ratio.
    """
    t, h, w = grid
    skipped = hidden_count(ratio, CELL)
    if not 0 < skipped < CELL:
        raise ConfigError(f"decoder mask ratio {ratio} leaves {skipped} of 4 cell places skipped; use 0.25..0.75")
    queue = torch.arange(CELL) >= skipped  # False (skipped) first, then True (decoded)
    start = torch.randint(CELL, (batch,), generator=generator)
    # The official generator advances the pointer before reading the first time slice.
    pointer = start[:, None] + torch.arange(1, t + 1)  # (B, T')
    cells = queue[(pointer[..., None] + torch.arange(CELL)) % CELL].view(batch, t, 2, 2)
    tiled = cells.repeat(1, 1, (h + 1) // 2, (w + 1) // 2)[:, :, :h, :w]  # (B, T', H', W')
    return tiled.reshape(batch, t * h * w)


@dataclass(frozen=True)
class MaskSpec:
    kind: Literal["tube", "random"] = "tube"  # encoder masking: tube (VideoMAE) or per-token random
    ratio: float = 0.9  # share of tokens hidden from the encoder (the official default for v2)
    decoder_ratio: float = 0.5  # running-cell share kept from the decoder; 0 = decode every hidden token

    def __post_init__(self):
        if self.kind not in ("tube", "random"):
            raise ConfigError(f"mask kind {self.kind!r}; valid: tube, random")
        if not 0.0 < self.ratio < 1.0:
            raise ConfigError(f"mask ratio {self.ratio} must be between 0 and 1 (exclusive)")
        if self.decoder_ratio != 0.0 and not 0 < hidden_count(self.decoder_ratio, CELL) < CELL:
            raise ConfigError(f"decoder mask ratio {self.decoder_ratio}; valid: 0, or 0.25..0.75 (a 2x2 cell)")


ENCODER_MASKS = {"tube": tube_mask, "random": random_mask}


def make_masks(
    spec: MaskSpec, grid: Grid, batch: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden, decoded), both bool (B, N): what the encoder does not see, and what the decoder predicts."""
    hidden = ENCODER_MASKS[spec.kind](grid, spec.ratio, batch, generator)
    if not hidden.any(dim=1).all():
        raise ConfigError(f"mask ratio {spec.ratio} hides no token of a {grid} grid: nothing to learn")
    if spec.decoder_ratio == 0.0:
        return hidden, hidden.clone()
    return hidden, running_cell_mask(grid, spec.decoder_ratio, batch, generator)
