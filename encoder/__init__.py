"""Tubelet encoders: VideoMAE v2 (motion) and the image-text tower, open_clip (appearance).

    from encoder import load_videomae2
    m = load_videomae2("vit-s", weights="k710-distill")
    features = m.forward_features(x)  # x: (B, 3, 16, 224, 224) normalised -> (B, 384)

Names are imported on first use, so `encoder.errors` (what every entry point catches) does not
pull in torch: `run.py status` and `--help` stay fast.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "CheckpointError": "encoder.errors",
    "ConfigError": "encoder.errors",
    "EncoderError": "encoder.errors",
    "WeightsError": "encoder.errors",
    "VARIANTS": "encoder.videomae2",
    "VideoMAE2": "encoder.videomae2",
    "VideoMAE2Config": "encoder.videomae2",
    "checkpoint_filter_fn": "encoder.videomae2",
    "VideoEncoder": "encoder.factory",
    "VideoEncoderSpec": "encoder.factory",
    "load_videomae2": "encoder.factory",
    "resolve_video_encoder": "encoder.factory",
    "spec_from_identity": "encoder.registry",
    "TextTower": "encoder.tower",
    "Tower": "encoder.tower",
    "TowerSpec": "encoder.tower",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'encoder' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
