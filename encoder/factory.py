"""Build encoders: architecture + weights + preprocessing + runtime, in one explicit load step."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from encoder.errors import ConfigError, WeightsError
from encoder.preprocess import VideoPreprocess, normalize_clips, resize_clips, to_device
from encoder.runtime import Runtime
from encoder.tower import FromSpec
from encoder.videomae2 import VideoMAE2, checkpoint_filter_fn, load_filtered_state, variant_config
from encoder.videomae2_weights import resolve_videomae2_weights
from encoder.weights import (
    ResolvedWeights,
    default_cache_dir,
    read_checkpoint,
    verify_weights,
    with_overrides,
)


def load_videomae2(
    variant: str = "vit-s",
    weights: str | None = None,
    cache_dir: Path | None = None,
    device: str | torch.device = "cpu",
) -> VideoMAE2:
    """VideoMAE v2 `variant` with `weights` loaded, in eval mode.

    `weights`: a pretrained tag, `hf:OWNER/REPO/FILE`, a local checkpoint, or `random`
    (see `encoder.weights`, `encoder.videomae2_weights`). The resolved weights, with their preprocessing,
    are attached as `model.pretrained_cfg` (the timm convention).
    """
    resolved = resolve_videomae2_weights(variant, weights, Path(cache_dir or default_cache_dir()))
    model = build_videomae2(variant, resolved)
    return model.to(device)


def build_videomae2(variant: str, weights: ResolvedWeights) -> VideoMAE2:
    cfg = variant_config(variant)
    if weights.preprocess.size != cfg.img_size:
        raise WeightsError(
            f"weights expect {weights.preprocess.size}px input but {variant!r} is built for {cfg.img_size}px"
        )
    model = VideoMAE2(cfg)
    state = checkpoint_filter_fn(read_checkpoint(weights.path), cfg)
    load_filtered_state(model, state, variant)
    model.pretrained_cfg = weights
    return model.eval()


class VideoEncoder(FromSpec):
    """A loaded VideoMAE v2 with its preprocessing and runtime: uint8 clips in, unit vectors out (a `Tower`)."""

    def __init__(self, spec: VideoEncoderSpec, model: VideoMAE2, runtime: Runtime):
        self.spec = spec
        self.model = model
        self.runtime = runtime
        pre = spec.weights.preprocess
        # Clips at the model's size skip the float normalisation pass: it is folded into a copy
        # of the tubelet embedding that takes 0-255 pixels (integers, exact in bf16).
        self.raw_pixel_embed = model.patch_embed.for_raw_pixels(pre.mean, pre.std)

    @torch.inference_mode()
    def embed(self, clips: np.ndarray) -> np.ndarray:
        """uint8 (B, T, S, S, 3), any square size S -> float32 (B, D), rows L2-normalised."""
        pre = self.preprocess
        x = to_device(clips, self.runtime.device)
        dtype = next(self.model.parameters()).dtype
        with self.runtime.autocast() if dtype == torch.float32 else contextlib.nullcontext():
            if x.ndim == 5 and x.shape[2:4] == (pre.size, pre.size):
                tokens = self.raw_pixel_embed(x.permute(0, 4, 1, 2, 3).to(dtype))  # (B, 3, T, S, S) 0-255
                features = self.model.forward_tokens(tokens)
            else:
                x = normalize_clips(x, pre.size, pre.mean, pre.std)
                features = self.model.forward_features(x.to(dtype))
        features = torch.nn.functional.normalize(features.float(), dim=-1)
        return features.cpu().numpy()


class RawClipFeatures(torch.nn.Module):
    """What a runtime converts: uint8 clips (B, T, S, S, 3) at the model's size in, features (B, D) out.

    The layout change, the cast and the normalisation (folded into the tubelet embedding, as `VideoEncoder`
    does) are part of the converted graph, so decoded clips go straight in: no float32 pass over every
    frame in torch before each call (bench/RESULTS.md, the indexing hot path)."""

    def __init__(self, model: VideoMAE2, pre: VideoPreprocess):
        super().__init__()
        self.model = model
        self.raw_pixel_embed = model.patch_embed.for_raw_pixels(pre.mean, pre.std)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        pixels = clips.permute(0, 4, 1, 2, 3).float()  # (B, 3, T, S, S), 0-255
        return self.model.forward_tokens(self.raw_pixel_embed(pixels))


class ConvertedVideoEncoder(FromSpec):
    """VideoMAE v2 through a converted runtime (OpenVINO): uint8 clips in, unit vectors out (a `Tower`)."""

    def __init__(self, spec: VideoEncoderSpec, part, runtime: Runtime):
        self.spec = spec
        self.part = part
        self.runtime = runtime

    def embed(self, clips: np.ndarray) -> np.ndarray:
        """uint8 (B, T, S, S, 3), any square size S -> float32 (B, D), rows L2-normalised."""
        size = self.preprocess.size
        if clips.ndim != 5:
            raise ValueError(f"expected clips shaped (B, T, S, S, 3), got {tuple(clips.shape)}")
        if clips.shape[2:4] != (size, size):  # the decoder gives every tower its own size: rare
            clips = resize_clips(clips, size)
        features = self.part(clips)
        return features / np.linalg.norm(features, axis=1, keepdims=True)


@dataclass(frozen=True)
class VideoEncoderSpec:
    """Which architecture with which (resolved, checksummed) weights; nothing loaded yet."""

    variant: str
    weights: ResolvedWeights
    tower: str = "videomae2"

    @property
    def dim(self) -> int:
        return variant_config(self.variant).embed_dim

    @property
    def preprocess(self) -> VideoPreprocess:
        return self.weights.preprocess

    def identity(self) -> dict:
        """Everything that determines the vectors: a query must use exactly this."""
        return {
            "tower": self.tower,
            "variant": self.variant,
            "weights": self.weights.source,
            "sha256": self.weights.sha256,
            "preprocess": self.weights.preprocess.to_dict(),
            "dim": self.dim,
        }

    def load(
        self, device: str = "auto", precision: str = "auto", backend: str = "auto", cache_dir: Path | None = None
    ) -> VideoEncoder | ConvertedVideoEncoder:
        """The encoder on the runtime picked from the arguments (`encoder.runtime.pick_runtime`); a converted
        runtime's model is cached under `cache_dir` (see `encoder.openvino_runtime`)."""
        verify_weights(self.weights)  # the checksum named at resolve time may come from a cache
        from encoder.openvino_runtime import load_on_runtime  # openvino is imported only where it runs

        converted = lambda runtime: self._load_openvino(runtime, cache_dir)  # noqa: E731
        return load_on_runtime(self._load_torch, converted, device, precision, backend)

    def probe_shape(self, batch: int = 2) -> tuple[int, ...]:
        """The shape of a batch of clips as the converted model takes them: (B, T, S, S, 3)."""
        pre = self.preprocess
        return (batch, pre.window_frames, pre.size, pre.size, 3)

    def _load_openvino(self, runtime: Runtime, cache_dir: Path | None) -> ConvertedVideoEncoder:
        from encoder.openvino_runtime import Part, load_faithful, probe_clips, runtime_of

        def build() -> torch.nn.Module:
            return RawClipFeatures(build_videomae2(self.variant, self.weights), self.preprocess).eval()

        part = Part("video", self.identity(), build, probe_clips(self.probe_shape()))
        converted = load_faithful(part, runtime, cache_dir)
        return ConvertedVideoEncoder(self, converted, runtime_of(runtime, [converted]))

    def _load_torch(self, runtime: Runtime) -> VideoEncoder:
        model = build_videomae2(self.variant, self.weights).to(runtime.device)
        if runtime.amp_dtype == torch.bfloat16:
            # bf16 weights beat bf16 autocast (no per-call casts): 0.153 vs 0.164 s per ViT-S clip
            # on the 2-core AMX box, cosine 0.99999 to fp32 (bench/RESULTS.md).
            model = model.to(torch.bfloat16)
        return VideoEncoder(self, model, runtime)

    @classmethod
    def from_identity(cls, identity: dict, cache_dir: Path) -> VideoEncoderSpec:
        """The encoder an identity names, with its recorded preprocessing; checksum not compared
        (`encoder.registry.spec_from_identity` does)."""
        spec = resolve_video_encoder(identity["variant"], identity["weights"], cache_dir)
        return cls(spec.variant, replace(spec.weights, preprocess=VideoPreprocess.from_dict(identity["preprocess"])))


def resolve_video_encoder(
    variant: str,
    weights: str | None,
    cache_dir: Path,
    window_frames: int | None = None,
    frame_interval: int | None = None,
) -> VideoEncoderSpec:
    """Resolve weights (downloading if needed) and fix the preprocessing; no model load."""
    cfg = variant_config(variant)
    if window_frames is not None and (window_frames < cfg.tubelet_size or window_frames % cfg.tubelet_size):
        raise ConfigError(f"window frames must be a positive multiple of {cfg.tubelet_size}, got {window_frames}")
    if frame_interval is not None and frame_interval < 1:
        raise ConfigError(f"frame interval must be at least 1, got {frame_interval}")
    resolved = resolve_videomae2_weights(variant, weights, Path(cache_dir))
    resolved = with_overrides(resolved, window_frames=window_frames, frame_interval=frame_interval)
    return VideoEncoderSpec(variant, resolved)
