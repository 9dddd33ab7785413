"""Pretraining masks: exact counts, the tube property, the running-cell pattern, seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from encoder.errors import ConfigError
from encoder.masking import MaskSpec, make_masks, random_mask, running_cell_mask, tube_mask

GRID = (8, 14, 14)  # ViT-B/S at 16 frames, 224 px


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def official_running_cell_maps(grid, ratio):
    """The official RunningCellMaskingGenerator's 4 mask maps, written out in numpy (1 = not decoded)."""
    frames, height, width = grid
    masked = int(4 * ratio)
    queue = np.hstack([np.ones(masked), np.zeros(4 - masked)])
    maps = []
    for start in range(4):
        pointer, rows = start, []
        for _ in range(frames):
            pointer += 1
            unit = queue[(np.arange(4) + pointer) % 4].reshape(2, 2)
            rows.append(np.tile(unit, [height // 2, width // 2]).flatten())
        maps.append(np.stack(rows).flatten())
    return {tuple(m.astype(bool)) for m in maps}


def test_tube_mask_hides_the_same_places_in_every_time_slice():
    hidden = tube_mask(GRID, 0.9, 4, seeded())
    assert hidden.shape == (4, 8 * 196) and hidden.dtype == torch.bool
    slices = hidden.view(4, 8, 196)
    assert torch.equal(slices, slices[:, :1].expand_as(slices))
    assert slices.sum(dim=2).eq(int(0.9 * 196)).all()  # 176 per slice, the official rounding
    assert not torch.equal(slices[0, 0], slices[1, 0])  # each clip draws its own


def test_random_mask_counts_and_is_not_a_tube():
    hidden = random_mask(GRID, 0.75, 3, seeded())
    assert hidden.sum(dim=1).eq(int(0.75 * 1568)).all()
    slices = hidden.view(3, 8, 196)
    assert not torch.equal(slices[0, 0], slices[0, 1])


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_running_cell_equals_the_official_patterns(ratio):
    decoded = running_cell_mask(GRID, ratio, 64, seeded())
    patterns = {tuple((~row).tolist()) for row in decoded}
    assert patterns == official_running_cell_maps(GRID, ratio)  # all 4 starts drawn, nothing else
    assert decoded.sum(dim=1).eq(8 * 196 * (4 - int(4 * ratio)) // 4).all()


def test_running_cell_shifts_one_step_per_time_slice():
    cells = running_cell_mask((4, 2, 2), 0.5, 8, seeded()).view(8, 4, 4)  # one 2x2 cell per slice
    for t in range(1, 4):
        assert torch.equal(cells[:, t], cells[:, t - 1].roll(-1, dims=1))
    # over the 4 slices every place of the cell is decoded exactly twice
    assert cells.sum(dim=1).eq(2).all()


def test_decoder_ratio_zero_decodes_exactly_the_hidden_tokens():
    hidden, decoded = make_masks(MaskSpec("tube", 0.9, 0.0), GRID, 2, seeded())
    assert torch.equal(hidden, decoded) and hidden.data_ptr() != decoded.data_ptr()


def test_dual_masks_have_equal_counts_per_clip():
    hidden, decoded = make_masks(MaskSpec(), GRID, 5, seeded())
    assert hidden.sum(dim=1).eq(8 * 176).all() and decoded.sum(dim=1).eq(8 * 98).all()
    assert not torch.equal(hidden, decoded)


@pytest.mark.parametrize("kind", ["tube", "random"])
def test_seeds_reproduce_and_differ(kind):
    spec = MaskSpec(kind, 0.9, 0.5)
    first = make_masks(spec, GRID, 4, seeded(7))
    again = make_masks(spec, GRID, 4, seeded(7))
    other = make_masks(spec, GRID, 4, seeded(8))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])


@pytest.mark.parametrize(
    "spec", [dict(kind="cube"), dict(ratio=1.0), dict(ratio=0.0), dict(decoder_ratio=0.1), dict(decoder_ratio=1.0)]
)
def test_bad_mask_settings_are_refused(spec):
    with pytest.raises(ConfigError):
        MaskSpec(**spec)


def test_a_ratio_that_hides_nothing_is_refused():
    with pytest.raises(ConfigError, match="hides no token"):
        make_masks(MaskSpec("tube", 0.05), (8, 4, 4), 1, seeded())
