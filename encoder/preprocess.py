"""Pixel preprocessing that travels with a set of weights.

Frames reach the encoders already resized and centre-cropped to a square by the decoder
(resizing inside FFmpeg is several times cheaper than in torch), as uint8 RGB, at the largest
input size of the towers in use. What is left here is the cheap part: bring the square to this
tower's size when it differs, scale to [0, 1], normalise, lay out channels first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class VideoPreprocess:
    window_frames: int = 16  # frames sampled per clip window
    frame_interval: int = 4  # source frames between two sampled frames (4 ≈ 7.5 fps from 30 fps)
    size: int = 224  # square model input; short side resized to this, then centre crop
    mean: tuple[float, float, float] = IMAGENET_MEAN  # per-channel mean of [0, 1] pixels
    std: tuple[float, float, float] = IMAGENET_STD  # per-channel std of [0, 1] pixels

    def to_dict(self) -> dict:
        """The form stored in identities. Its "num_frames" key is `window_frames`' former name, which existing
        data dirs hold: this and `from_dict` are the one place it is spelled."""
        fields = asdict(self)
        return {"num_frames": fields.pop("window_frames"), **fields}

    @classmethod
    def from_dict(cls, data: dict) -> VideoPreprocess:
        fields = {k: v for k, v in data.items() if k != "num_frames"}
        return cls(
            **{**fields, "window_frames": data["num_frames"], "mean": tuple(data["mean"]), "std": tuple(data["std"])}
        )


@dataclass(frozen=True)
class ImagePreprocess:
    size: int  # square model input
    mean: tuple[float, float, float]  # per-channel mean of [0, 1] pixels
    std: tuple[float, float, float]  # per-channel std of [0, 1] pixels

    def to_dict(self) -> dict:
        return asdict(self)


def to_device(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 frames to the device; through pinned memory on CUDA so the copy runs asynchronously."""
    x = torch.from_numpy(np.ascontiguousarray(frames))
    if device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True)
    return x


def normalize_images(images: np.ndarray | torch.Tensor, size: int, mean, std) -> torch.Tensor:
    """uint8 (N, S, S, 3) RGB -> float32 (N, 3, size, size) normalised, on the images' device."""
    x = torch.as_tensor(images)
    if x.ndim != 4 or x.shape[-1] != 3 or x.shape[1] != x.shape[2]:
        raise ValueError(f"expected square images shaped (N, S, S, 3), got {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2).float().div_(255.0)  # (N, 3, S, S)
    if x.shape[-1] != size:
        x = torch.nn.functional.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        ).clamp_(0, 1)
    mean_t = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return x.sub_(mean_t).div_(std_t)


def normalize_clips(clips: np.ndarray | torch.Tensor, size: int, mean, std) -> torch.Tensor:
    """uint8 (B, T, S, S, 3) RGB -> float32 (B, 3, T, size, size) normalised, on the clips' device."""
    x = torch.as_tensor(clips)
    if x.ndim != 5:
        raise ValueError(f"expected clips shaped (B, T, S, S, 3), got {tuple(x.shape)}")
    B, T = x.shape[:2]
    frames = normalize_images(x.reshape(B * T, *x.shape[2:]), size, mean, std)  # (B*T, 3, s, s)
    return frames.view(B, T, 3, size, size).permute(0, 2, 1, 3, 4)


def resize_clips(clips: np.ndarray, size: int) -> np.ndarray:
    """uint8 (B, T, S, S, 3) -> uint8 (B, T, size, size, 3), resized as `normalize_images` resizes, rounded
    back to whole levels: for a tower that takes raw pixels (the converted VideoMAE v2) given another size."""
    x = torch.as_tensor(np.ascontiguousarray(clips))
    B, T, S = x.shape[:3]
    frames = x.reshape(B * T, S, S, 3).permute(0, 3, 1, 2).float()
    frames = torch.nn.functional.interpolate(
        frames, size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )
    frames = frames.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    return frames.reshape(B, T, size, size, 3).numpy()
