"""Tubelet encoders: VideoMAE v2 (motion) and, later, an open_clip image tower (appearance).

    from encoder import load_videomae2
    m = load_videomae2("vit-s", weights="k710-distill")
    features = m.forward_features(x)  # x: (B, 3, 16, 224, 224) normalised -> (B, 384)
"""

from encoder.factory import (
    VideoEncoder,
    VideoEncoderSpec,
    load_videomae2,
    resolve_video_encoder,
    spec_from_identity,
)
from encoder.videomae2 import VARIANTS, VideoMAE2, VideoMAE2Config, checkpoint_filter_fn
from encoder.errors import CheckpointError, ConfigError, EncoderError, WeightsError

__all__ = [
    "CheckpointError",
    "ConfigError",
    "EncoderError",
    "VARIANTS",
    "VideoEncoder",
    "VideoEncoderSpec",
    "VideoMAE2",
    "VideoMAE2Config",
    "WeightsError",
    "checkpoint_filter_fn",
    "load_videomae2",
    "resolve_video_encoder",
    "spec_from_identity",
]
