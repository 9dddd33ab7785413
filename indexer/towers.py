"""The encoders an index uses ("towers"), their identities, and how frames reach them.

- "video": VideoMAE v2 (motion, actions); always present.
- "image": open_clip image tower (appearance, aligned with text); optional (`--no-clip`).

Frames are decoded once per clip at `decode_size` (the largest input among the towers, fixed
for a data dir when it is first indexed) and each tower resizes the square to its own input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from encoder.clip import ClipTower, ClipTowerSpec, clip_image_size, clip_spec_from_identity, resolve_clip_tower
from encoder.factory import VideoEncoder, VideoEncoderSpec, resolve_video_encoder, spec_from_identity
from indexer.catalog import Catalog, VectorSetInfo
from indexer.records import ClipSampling
from indexer.settings import ClipSettings, DataDir, EncoderSettings, IndexSettings

VIDEO_SET = "video"
IMAGE_SET = "image"
DECODE_SIZE_KEY = "decode_size"


@dataclass
class Towers:
    video: VideoEncoderSpec
    image: ClipTowerSpec | None  # None when CLIP vectors are not computed
    sampling: ClipSampling
    decode_size: int  # square side frames are decoded at
    device: str = "auto"
    precision: str = "auto"
    _loaded: dict = field(default_factory=dict)

    def specs(self) -> dict[str, VideoEncoderSpec | ClipTowerSpec]:
        specs = {VIDEO_SET: self.video}
        if self.image is not None:
            specs[IMAGE_SET] = self.image
        return specs

    def identities(self) -> dict[str, dict]:
        ids = {VIDEO_SET: {**self.video.identity(), "sampling": self.sampling.to_dict()}}
        if self.image is not None:
            ids[IMAGE_SET] = self.image.identity()
        return ids

    def encoder(self, name: str) -> VideoEncoder | ClipTower:
        """The loaded encoder of a tower; loads on first use (the explicit, costly step)."""
        if name not in self._loaded:
            self._loaded[name] = self.specs()[name].load(self.device, self.precision)
        return self._loaded[name]

    def embed(self, names: list[str], clips: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 (B, T, S, S, 3) -> {tower: (B, D) unit vectors}: decode once, embed per tower."""
        return {name: self.encoder(name).embed(clips) for name in names}


def resolve_towers(settings: IndexSettings, catalog: Catalog) -> Towers:
    """The towers an index run asks for; resolves (downloads, checksums) weights, loads nothing."""
    enc = settings.encoder
    weights_dir = settings.data.weights_dir
    video = resolve_video_encoder(enc.variant, enc.weights, weights_dir,
                                  settings.window_frames, settings.frame_interval)
    image = None
    if settings.clip.enabled:
        image = resolve_clip_tower(settings.clip.model, settings.clip.weights, weights_dir,
                                   settings.clip.frames_per_clip)
    pre = video.weights.preprocess
    sampling = ClipSampling(pre.num_frames, pre.frame_interval, settings.stride_frames)
    decode_size = catalog.get_meta(DECODE_SIZE_KEY)
    if decode_size is None:
        # Fixed once per data dir, so vectors never depend on which towers a run computes.
        decode_size = max(pre.size, clip_image_size(settings.clip.model))
        catalog.set_meta(DECODE_SIZE_KEY, str(decode_size))
    return Towers(video, image, sampling, int(decode_size), enc.device, enc.precision)


def towers_from_catalog(catalog: Catalog, weights_dir: Path, device: str = "auto",
                        precision: str = "auto") -> tuple[Towers, dict[str, VectorSetInfo]]:
    """Exactly the towers recorded with a data dir's vector sets (what queries must use)."""
    sets = {name: vset for name in (VIDEO_SET, IMAGE_SET) if (vset := catalog.vector_set(name))}
    video_identity = sets[VIDEO_SET].identity
    video = spec_from_identity(video_identity, weights_dir)
    image = clip_spec_from_identity(sets[IMAGE_SET].identity, weights_dir) if IMAGE_SET in sets else None
    sampling = ClipSampling(**video_identity["sampling"])
    decode_size = int(catalog.get_meta(DECODE_SIZE_KEY) or video.weights.preprocess.size)
    return Towers(video, image, sampling, decode_size, device, precision), sets


def index_settings_from_catalog(data: DataDir, device: str = "auto", precision: str = "auto") -> IndexSettings:
    """Settings that index more footage into `data` with exactly the encoders it already uses."""
    catalog = Catalog(data.catalog).open()
    try:
        video, image = catalog.vector_set(VIDEO_SET), catalog.vector_set(IMAGE_SET)
    finally:
        catalog.close()
    if video is None:
        return IndexSettings(data, EncoderSettings(device=device, precision=precision))
    ident, sampling = video.identity, video.identity["sampling"]
    clip = ClipSettings(enabled=False)
    if image is not None:
        clip = ClipSettings(True, image.identity["model"], image.identity["weights"],
                            image.identity["frames_per_clip"])
    return IndexSettings(data, EncoderSettings(ident["variant"], ident["weights"], device, precision), clip,
                         window_frames=sampling["num_frames"], frame_interval=sampling["frame_interval"],
                         stride_frames=sampling["stride_frames"])
