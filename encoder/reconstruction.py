"""What the pretraining model sees and fills in: masked input and reconstructed pixels (tensors only).

The decoder predicts each hidden tubelet's pixels normalised by that tubelet's own mean and std, which
the model never saw. `reconstruct_pixels` turns predictions back into pixels with statistics it could
know: the mean and std of the clip's visible tubelets, per channel ("visible", the default). "own" uses
each hidden tubelet's true statistics instead (the official VideoMAE visualisation): sharper, but it
leaks the hidden patch's brightness and contrast into the picture.
"""

from __future__ import annotations

from typing import Literal

import torch

from encoder.pretrain_step import normalize_input, patch_statistics, patchify, unpatchify
from encoder.videomae2_pretrain import VideoMAE2Pretrain

FILL = 0.5  # grey: hidden tokens the decoder did not predict, and the masked-input picture


def masked_input(clips_01: torch.Tensor, hidden: torch.Tensor, model: VideoMAE2Pretrain) -> torch.Tensor:
    """(B, 3, T, H, W) in [0, 1] with the tubelets hidden from the encoder painted grey."""
    e = model.cfg.encoder
    patches = patchify(clips_01.float(), e.tubelet_size, e.patch_size).clone()
    patches[hidden] = FILL
    return unpatchify(patches, e.grid, e.tubelet_size, e.patch_size)


@torch.no_grad()
def reconstruct_pixels(
    model: VideoMAE2Pretrain,
    clips_01: torch.Tensor,
    masks: tuple[torch.Tensor, torch.Tensor],
    statistics: Literal["visible", "own"] = "visible",
) -> torch.Tensor:
    """clips_01: (B, 3, T, H, W) in [0, 1]; masks: (hidden, decoded) bool (B, N) -> (B, 3, T, H, W) in
    [0, 1]: visible tubelets pasted back from the clip, hidden-and-decoded ones from the prediction,
    hidden ones the decoder skipped grey. Pass decoded = hidden to see every hidden tubelet filled in."""
    hidden, decoded = masks
    e = model.cfg.encoder
    patches = patchify(clips_01.float(), e.tubelet_size, e.patch_size)  # (B, N, L, C)
    B, _N, L, C = patches.shape
    predicted = model(normalize_input(clips_01, model.cfg), hidden, decoded).float().view(B, -1, L, C)
    if model.cfg.normalize_target:
        mean, std = _statistics(patches, hidden, statistics)  # (B, N, 1, C)
        predicted = predicted * std[decoded].view(B, -1, 1, C) + mean[decoded].view(B, -1, 1, C)
    out = patches.clone()
    out[hidden] = FILL
    filled = hidden & decoded
    out[filled] = predicted[hidden[decoded].view(B, -1)]
    return unpatchify(out.clamp(0.0, 1.0), e.grid, e.tubelet_size, e.patch_size)


def _statistics(patches: torch.Tensor, hidden: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = patch_statistics(patches)  # each tubelet's own, (B, N, 1, C)
    if kind == "own":
        return mean, std
    if kind != "visible":
        raise ValueError(f"statistics {kind!r}; valid: visible, own")
    weights = (~hidden).to(patches.dtype)[:, :, None, None]  # (B, N, 1, 1)
    count = weights.sum(dim=1, keepdim=True)
    visible_mean = (mean * weights).sum(dim=1, keepdim=True) / count  # (B, 1, 1, C)
    visible_std = (std * weights).sum(dim=1, keepdim=True) / count
    return visible_mean.expand_as(mean), visible_std.expand_as(std)
