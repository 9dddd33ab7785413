"""Pixel preprocessing that travels with a set of weights.

Frames reach the encoders already resized (short side = `size`) and centre-cropped by the
decoder (resizing inside FFmpeg is several times cheaper than in torch), as uint8 RGB.
What is left here is the cheap part: scale to [0, 1], normalise, lay out channels first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class VideoPreprocess:
    num_frames: int = 16  # frames sampled per clip window
    frame_interval: int = 4  # source frames between two sampled frames (4 ≈ 7.5 fps from 30 fps)
    size: int = 224  # square model input; short side resized to this, then centre crop
    mean: tuple[float, float, float] = IMAGENET_MEAN  # per-channel mean of [0, 1] pixels
    std: tuple[float, float, float] = IMAGENET_STD  # per-channel std of [0, 1] pixels

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "VideoPreprocess":
        return cls(**{**data, "mean": tuple(data["mean"]), "std": tuple(data["std"])})


def normalize_clips(clips: np.ndarray | torch.Tensor, mean, std, device=None) -> torch.Tensor:
    """uint8 (B, T, S, S, 3) RGB -> float32 (B, 3, T, S, S) normalised."""
    x = torch.as_tensor(clips, device=device)
    if x.ndim != 5 or x.shape[-1] != 3:
        raise ValueError(f"expected clips shaped (B, T, H, W, 3), got {tuple(x.shape)}")
    x = x.permute(0, 4, 1, 2, 3).float().div_(255.0)  # (B, 3, T, H, W)
    mean_t = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1, 1)
    std_t = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1, 1)
    return x.sub_(mean_t).div_(std_t)
