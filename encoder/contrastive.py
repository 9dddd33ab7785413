"""A clip-level contrastive term beside the reconstruction loss (plain tensors in, loss out).

Masked-autoencoder features are weak for nearest-neighbour retrieval: reconstruction rewards keeping
appearance, and k-NN over pooled features is dominated by it. As InternVideo combines objectives, the
pooled clip embedding is also trained with InfoNCE:

- positive: another view of the same clip, with its own crop and colour change;
- negatives: every other clip's positive in the batch, and every positive played BACKWARDS
  (`reverse_time`): the positive's own pixels in reverse order, so the only thing that tells the
  positive from that negative is the arrow of time. (The anchor's own view reversed would be closer to
  the anchor in pixels than its positive: the model would have to learn crop and colour invariance
  before the arrow of time could lower the loss at all.)

Views are made with `appearance_jitter` (per-clip channel gains and offsets, the same for every frame):
it changes what the clip looks like and leaves its motion as it was. Permuting the channels as well is
an option, off by default: with it, InfoNCE between two views of vit-tiny clips stayed at 3.38 after 576
steps (log 32 = 3.47: nothing told apart), without it it fell to 1.42 in 623 (bench/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

DEFAULT_TEMPERATURE = 0.1  # SimCLR / MoCo v3 range; lower sharpens the hard (reversed) negatives
VIEW_STRENGTH = 0.2  # colour gain / offset of a view (the screens in bench/RESULTS.md used 0.2)


def reverse_time(clips: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> the same clips played backwards."""
    return clips.flip(2)


def appearance_jitter(
    clips_01: torch.Tensor, generator: torch.Generator | None, strength: float = VIEW_STRENGTH, permute: bool = False
) -> torch.Tensor:
    """(B, 3, T, H, W) in [0, 1] -> the same clips with a random colour change per clip, constant over time:
    the channels permuted (when `permute`), each scaled by 1 +- strength and shifted by +- strength / 2,
    clamped to [0, 1]."""
    B, C = clips_01.shape[:2]
    device = clips_01.device
    shuffle = torch.rand(B, C, generator=generator)  # drawn either way: a seed gives the same gains with or without
    if permute:
        order = torch.argsort(shuffle, dim=1).to(device)
        clips_01 = torch.gather(clips_01, 1, order.view(B, C, 1, 1, 1).expand_as(clips_01))
    gain = 1 + strength * (2 * torch.rand(B, C, 1, 1, 1, generator=generator) - 1)
    offset = strength / 2 * (2 * torch.rand(B, C, 1, 1, 1, generator=generator) - 1)
    return (clips_01 * gain.to(device) + offset.to(device)).clamp(0, 1)


def info_nce(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of pairs (float32 scalar).

    anchors, positives: (B, D), row i of each is a view of the same clip; negatives: (K, D) extra
    embeddings that are no row's positive (e.g. the batch played backwards), shared by every row.
    Row i's candidates are all B positives plus the K negatives (and, the other way round, all B anchors
    plus the K negatives); the target is its own pair.
    """
    a = F.normalize(anchors.float(), dim=-1)
    p = F.normalize(positives.float(), dim=-1)
    targets = torch.arange(a.shape[0], device=a.device)
    logits_a = a @ p.T  # (B, B)
    logits_p = p @ a.T
    if negatives is not None:
        n = F.normalize(negatives.float(), dim=-1)
        logits_a = torch.cat([logits_a, a @ n.T], dim=1)
        logits_p = torch.cat([logits_p, p @ n.T], dim=1)
    return 0.5 * (F.cross_entropy(logits_a / temperature, targets) + F.cross_entropy(logits_p / temperature, targets))


def random_crop(clips: torch.Tensor, generator: torch.Generator | None, min_side: float = 0.66) -> torch.Tensor:
    """(B, C, T, H, W) -> per clip a random square crop (side min_side..1 of the frame, the same for every
    frame, so the motion is kept) resized back to H x W."""
    B, _C, _T, H, W = clips.shape
    out = torch.empty_like(clips)
    for i in range(B):
        side = int(min(H, W) * (min_side + (1 - min_side) * torch.rand(1, generator=generator).item()))
        y = int(torch.randint(0, H - side + 1, (1,), generator=generator))
        x = int(torch.randint(0, W - side + 1, (1,), generator=generator))
        part = clips[i, :, :, y : y + side, x : x + side].transpose(0, 1)  # (T, C, side, side)
        out[i] = F.interpolate(part, size=(H, W), mode="bilinear", align_corners=False).transpose(0, 1)
    return out


def two_views(
    clips_01: torch.Tensor, generator: torch.Generator | None, strength: float = VIEW_STRENGTH, permute: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two views of each clip (B, 3, T, H, W) in [0, 1]: each its own random crop, then colour change."""
    view_a = appearance_jitter(random_crop(clips_01, generator), generator, strength, permute)
    view_b = appearance_jitter(random_crop(clips_01, generator), generator, strength, permute)
    return view_a, view_b


def clip_contrastive_loss(
    embed: Callable[[torch.Tensor], torch.Tensor],
    clips_01: torch.Tensor,
    generator: torch.Generator | None,
    temperature: float = DEFAULT_TEMPERATURE,
    strength: float = VIEW_STRENGTH,
    permute: bool = False,
) -> torch.Tensor:
    """InfoNCE between two views of each clip (own crop and colour change each), with every view-b clip
    played backwards as an extra negative. `embed`: (B, 3, T, H, W) pixels in [0, 1] -> (B, D), the
    pooled clip embedding that search uses (e.g. the encoder's `forward_features` after normalising)."""
    view_a, view_b = two_views(clips_01, generator, strength, permute)
    return info_nce(embed(view_a), embed(view_b), embed(reverse_time(view_b)), temperature)
