"""The pretraining objective: pixel targets and the masked reconstruction loss (plain tensors in, loss out).

As in the official `engine_for_pretraining.py`: the target is the un-normalised clip cut into tubelets
in layout (t h w)(p0 p1 p2 c), each tubelet normalised per channel by its own mean and unbiased std
(+ 1e-6); the loss is the per-token mean squared error averaged over the tokens that are both hidden
from the encoder and decoded. Nothing here touches files, devices or optimisers: the same step runs on
the CPU, on CUDA and under autocast (targets and the loss are always computed in float32).
"""

from __future__ import annotations

import torch

from encoder.videomae2 import keep_tokens
from encoder.videomae2_pretrain import PretrainConfig, VideoMAE2Pretrain

TARGET_EPS = 1e-6  # added to the std, as the official code does


def normalize_input(clips_01: torch.Tensor, cfg: PretrainConfig) -> torch.Tensor:
    """(B, 3, T, H, W) pixels in [0, 1] -> the encoder's input, (x - mean) / std per channel."""
    mean = torch.tensor(cfg.mean, dtype=clips_01.dtype, device=clips_01.device).view(1, -1, 1, 1, 1)
    std = torch.tensor(cfg.std, dtype=clips_01.dtype, device=clips_01.device).view(1, -1, 1, 1, 1)
    return (clips_01 - mean) / std


def patchify(clips: torch.Tensor, tubelet: int, patch: int) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, N, tubelet * patch^2, C): tokens in (t, h, w) order, the pixels of each
    in (p0 p1 p2) order, channels last (the official einops layout)."""
    B, C, T, H, W = clips.shape
    x = clips.reshape(B, C, T // tubelet, tubelet, H // patch, patch, W // patch, patch)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)  # (B, T', H', W', p0, p1, p2, C)
    return x.reshape(B, -1, tubelet * patch * patch, C)


def unpatchify(patches: torch.Tensor, grid: tuple[int, int, int], tubelet: int, patch: int) -> torch.Tensor:
    """The inverse of `patchify`: (B, N, tubelet * patch^2, C) -> (B, C, T, H, W)."""
    B, _N, _L, C = patches.shape
    t, h, w = grid
    x = patches.reshape(B, t, h, w, tubelet, patch, patch, C)
    x = x.permute(0, 7, 1, 4, 2, 5, 3, 6)  # (B, C, T', p0, H', p1, W', p2)
    return x.reshape(B, C, t * tubelet, h * patch, w * patch)


def patch_statistics(patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per token and channel: mean and unbiased std + 1e-6 over the tubelet's pixels, (B, N, 1, C) each."""
    return patches.mean(dim=-2, keepdim=True), patches.var(dim=-2, unbiased=True, keepdim=True).sqrt() + TARGET_EPS


@torch.no_grad()
def pixel_targets(
    clips_01: torch.Tensor, cfg: PretrainConfig, hidden: torch.Tensor, decoded: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """What the decoder should predict, and where it counts.

    clips_01: (B, 3, T, H, W) in [0, 1]; hidden, decoded: bool (B, N) (see `encoder.masking`).
    Returns (targets (B, M, tubelet * patch^2 * 3) float32 for the M decoded tokens in token order,
    counted bool (B, M): True where that token was also hidden from the encoder, i.e. in the loss).
    """
    e = cfg.encoder
    patches = patchify(clips_01.float(), e.tubelet_size, e.patch_size)  # (B, N, L, C)
    if cfg.normalize_target:
        mean, std = patch_statistics(patches)
        patches = (patches - mean) / std
    targets = keep_tokens(patches.flatten(2), decoded)  # (B, M, L*C), pixels then channels
    counted = hidden[decoded].reshape(hidden.shape[0], -1)
    return targets, counted


def masked_mse(predicted: torch.Tensor, targets: torch.Tensor, counted: torch.Tensor) -> torch.Tensor:
    """Per-token mean squared error, averaged over the counted tokens (float32 scalar)."""
    per_token = (predicted.float() - targets).pow(2).mean(dim=-1)  # (B, M)
    weights = counted.to(per_token.dtype)
    return (per_token * weights).sum() / weights.sum()


def pretrain_loss(
    model: VideoMAE2Pretrain, clips_01: torch.Tensor, hidden: torch.Tensor, decoded: torch.Tensor
) -> torch.Tensor:
    """One training step's loss. clips_01: (B, 3, T, H, W) in [0, 1] on the model's device; hidden,
    decoded: bool (B, N) on the same device. Differentiable; the caller runs backward and the optimiser."""
    cfg = getattr(model, "module", model).cfg  # the model itself, or its DistributedDataParallel wrapper
    targets, counted = pixel_targets(clips_01, cfg, hidden, decoded)
    predicted = model(normalize_input(clips_01, cfg), hidden, decoded)
    return masked_mse(predicted, targets, counted)
