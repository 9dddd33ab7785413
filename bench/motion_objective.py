"""A motion-only contrastive term, for the screens in bench/pretrain_research.py (not a product objective:
it did not learn in the screens of bench/RESULTS.md). Imported by scripts that put the project root on
sys.path.

Per clip, the anchor is one view and the positive another (encoder/contrastive.py's crops and colour
changes); the only negatives are the positive played backwards, held still and shuffled in time, so all
of them look exactly like the positive and only move differently. Nothing rewards telling videos apart
by their look, and to score the reversed view far below the positive, the motion part of the embedding
has to outweigh the look it shares with it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from encoder.contrastive import DEFAULT_TEMPERATURE, VIEW_STRENGTH, reverse_time, two_views


def still(clips: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> each clip's middle frame held for all T frames: the same look, no motion."""
    T = clips.shape[2]
    return clips[:, :, T // 2 : T // 2 + 1].expand_as(clips).contiguous()


def shuffle_time(clips: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """(B, C, T, H, W) -> each clip's frames in its own random order: the same look, motion scrambled."""
    B, _C, T = clips.shape[:3]
    order = torch.argsort(torch.rand(B, T, generator=generator), dim=1).to(clips.device)
    return torch.gather(clips, 2, order.view(B, 1, T, 1, 1).expand_as(clips))


def motion_contrastive_loss(
    embed: Callable[[torch.Tensor], torch.Tensor],
    clips_01: torch.Tensor,
    generator: torch.Generator | None,
    temperature: float = DEFAULT_TEMPERATURE,
    strength: float = VIEW_STRENGTH,
    across_batch: bool = False,
) -> torch.Tensor:
    """Cross-entropy over (positive, reversed, still, shuffled) per row, the positive the target; with
    `across_batch`, every other clip's positive is a negative too."""
    view_a, view_b = two_views(clips_01, generator, strength)
    B = len(clips_01)
    negatives = torch.cat([reverse_time(view_b), still(view_b), shuffle_time(view_b, generator)])
    a = F.normalize(embed(view_a).float(), dim=-1)  # (B, D)
    b = F.normalize(embed(view_b).float(), dim=-1)  # (B, D)
    n = F.normalize(embed(negatives).float(), dim=-1).view(3, B, -1)  # (3, B, D)
    logits = torch.cat([(a * b).sum(-1, keepdim=True), torch.einsum("bd,kbd->bk", a, n)], dim=1)  # (B, 4)
    if across_batch:
        others = (a @ b.T).masked_fill(torch.eye(B, dtype=torch.bool, device=a.device), float("-inf"))
        logits = torch.cat([logits, others], dim=1)  # (B, 4 + B)
    return F.cross_entropy(logits / temperature, torch.zeros(B, dtype=torch.long, device=a.device))
