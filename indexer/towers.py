"""The encoders an index uses ("towers"), their identities, and how frames reach them.

- "video": VideoMAE v2 (motion, actions); always present.
- "image": the image-text tower (open_clip) (appearance, aligned with text); optional (`--no-image-text`).

Frames are decoded once per clip and FFmpeg resizes each one to every tower's input size, from
the source frame: a tower's vectors do not depend on which other towers a run computes.
Thumbnails come from the largest size.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from encoder.factory import resolve_video_encoder
from encoder.image_text import resolve_image_text_tower
from encoder.offline import HubUnreachableError
from encoder.registry import spec_from_identity
from encoder.tower import Tower, TowerSpec
from indexer.catalog import Catalog, VectorSetInfo
from indexer.change import ChangeDetector
from indexer.decode import SHARED_CORES, SPARE_CORES, ClipDecoder
from indexer.encoder_choice import recorded_settings
from indexer.records import IMAGE_SET, VIDEO_SET, ClipSampling, VideoInfo
from indexer.settings import DataDir, EncoderSettings, IndexSettings


class EncoderCache:
    """Loaded encoders kept between the index runs of one process (a watch's batches), so that a batch does
    not load and compile its models again. Keyed by what fixes a loaded encoder: the tower's identity (its
    weights' checksum included) and where it runs. `keep_used()` after a run drops the encoders it did not
    use (after an encoder switch, the old ones)."""

    def __init__(self) -> None:
        self._encoders: dict[str, Tower] = {}
        self._used: set[str] = set()
        self._lock = threading.Lock()
        self.loads = 0  # encoders loaded so far (the rest were reused)

    def load(self, spec: TowerSpec, device: str, precision: str, backend: str, runtime_dir: Path | None) -> Tower:
        key = json.dumps([spec.identity(), device, precision, backend, str(runtime_dir)], sort_keys=True, default=str)
        with self._lock:
            self._used.add(key)
            if key not in self._encoders:
                self._encoders[key] = spec.load(device, precision, backend, runtime_dir)
                self.loads += 1
            return self._encoders[key]

    def __len__(self) -> int:
        return len(self._encoders)

    def keep_used(self) -> None:
        with self._lock:
            self._encoders = {key: tower for key, tower in self._encoders.items() if key in self._used}
            self._used = set()


@dataclass
class Towers:
    video: TowerSpec  # VideoMAE v2: its preprocessing fixes the clip sampling
    image: TowerSpec | None  # None when image-text vectors are not computed
    sampling: ClipSampling
    device: str = "auto"
    precision: str = "auto"
    backend: str = "auto"  # the inference runtime: auto | torch | openvino
    runtime_dir: Path | None = None  # where converted encoders are cached (DataDir.runtime_dir)
    # Towers of the sets being built beside the active ones, by set name ("video.new": indexer/set_roles.py):
    # they embed the same clips, so an index run decodes once for the active and the new encoders.
    building: dict[str, TowerSpec] = field(default_factory=dict)
    cache: EncoderCache | None = None  # loaded encoders shared with earlier runs (a watch); None: load here
    _loaded: dict = field(default_factory=dict)
    _loading: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def specs(self) -> dict[str, TowerSpec]:
        specs = {VIDEO_SET: self.video}
        if self.image is not None:
            specs[IMAGE_SET] = self.image
        return {**specs, **self.building}

    def identities(self) -> dict[str, dict]:
        ids = {VIDEO_SET: {**self.video.identity(), "sampling": self.sampling.to_dict()}}
        if self.image is not None:
            ids[IMAGE_SET] = self.image.identity()
        return ids

    def input_size(self, name: str) -> int:
        return self.specs()[name].preprocess.size

    def input_sizes(self, names: Iterable[str] | None = None) -> tuple[int, ...]:
        """The distinct input sizes of the towers `names` (default: all), largest first."""
        return tuple(sorted({self.input_size(name) for name in names or self.specs()}, reverse=True))

    def clip_decoder(
        self,
        path: Path,
        info: VideoInfo,
        names: Iterable[str] | None = None,
        time_range: tuple[float | None, float | None] | None = None,
        max_windows: int | None = None,
        deadline: float | None = None,
        change: ChangeDetector | None = None,
        threading: str = SPARE_CORES,
    ) -> ClipDecoder:
        """A decoder giving every tower in `names` (default: all) clips at its own input size
        (at most `max_windows` of them, decoded before the `deadline`, when given: see ClipDecoder).
        A decoder that runs while the towers embed takes `threading=self.decode_threading()`."""
        largest, *others = self.input_sizes(names)
        return ClipDecoder(
            path,
            info,
            self.sampling,
            largest,
            time_range,
            extra_sizes=tuple(others),
            max_windows=max_windows,
            deadline=deadline,
            change=change,
            threading=threading,
        )

    def decode_threading(self) -> str:
        """How decoding that runs while these towers embed uses the cores: frame threads when the towers run
        on a GPU; when they share the CPU, only threads that cost no extra CPU (indexer/decode.py)."""
        on_gpu = self.device.startswith("cuda") or (self.device == "auto" and torch.cuda.is_available())
        return SPARE_CORES if on_gpu else SHARED_CORES

    def is_loaded(self, name: str) -> bool:
        return name in self._loaded

    def encoder(self, name: str) -> Tower:
        """The loaded encoder of a tower; loads on first use (the explicit, costly step), once: concurrent
        first searches wait for the one load instead of each loading the model."""
        loaded = self._loaded.get(name)
        if loaded is None:
            with self._loading:
                loaded = self._loaded.get(name)
                if loaded is None:
                    spec, where = self.specs()[name], (self.device, self.precision, self.backend, self.runtime_dir)
                    loaded = self.cache.load(spec, *where) if self.cache is not None else spec.load(*where)
                    self._loaded[name] = loaded
        return loaded

    def runtimes(self) -> dict[str, str]:
        """What runs each loaded tower ("openvino cpu bf16", "cuda bf16"), for run reports and status."""
        return {name: tower.runtime.describe() for name, tower in self._loaded.items()}

    def embed(self, names: list[str], clips: np.ndarray | dict[int, np.ndarray]) -> dict[str, np.ndarray]:
        """uint8 clips (B, T, S, S, 3), or {S: clips} at several sizes -> {tower: (B, D) unit
        vectors}. Each tower takes its own input size when given, else the largest and resizes."""
        by_size = clips if isinstance(clips, dict) else {clips.shape[2]: clips}
        largest = by_size[max(by_size)]  # a tower whose size is missing resizes the largest
        return {name: self.encoder(name).embed(by_size.get(self.input_size(name), largest)) for name in names}


def resolve_towers(settings: IndexSettings, cache: EncoderCache | None = None) -> Towers:
    """The towers an index run asks for; resolves (downloads, checksums) weights, loads nothing (then loads
    through `cache` when given)."""
    enc = settings.encoder
    weights_dir = settings.data.weights_dir
    try:
        video = resolve_video_encoder(
            enc.variant, enc.weights, weights_dir, settings.window_frames, settings.frame_interval
        )
    except HubUnreachableError as offline:  # one message for every tower's missing weights
        raise _with_image_text_offline(offline, settings) from None
    image = None
    if settings.image_text.enabled:
        image = resolve_image_text_tower(
            settings.image_text.model, settings.image_text.weights, weights_dir, settings.image_text.frames_per_clip
        )
    pre = video.weights.preprocess
    sampling = ClipSampling(pre.window_frames, pre.frame_interval, settings.stride_frames, settings.change_threshold)
    return Towers(
        video, image, sampling, enc.device, enc.precision, enc.runtime, settings.data.runtime_dir, cache=cache
    )


def _with_image_text_offline(offline: HubUnreachableError, settings: IndexSettings) -> HubUnreachableError:
    """`offline` (the video tower's weights), joined by the image-text tower's when the hub has those too."""
    if not settings.image_text.enabled:
        return offline
    it = settings.image_text
    try:
        resolve_image_text_tower(it.model, it.weights, settings.data.weights_dir, it.frames_per_clip)
    except HubUnreachableError as more:
        return offline.joined(more)
    return offline


def towers_from_catalog(
    catalog: Catalog,
    weights_dir: Path,
    device: str = "auto",
    precision: str = "auto",
    backend: str = "auto",
    runtime_dir: Path | None = None,
) -> tuple[Towers, dict[str, VectorSetInfo]]:
    """Exactly the towers recorded with a data dir's vector sets (what queries must use)."""
    sets = {name: vset for name in (VIDEO_SET, IMAGE_SET) if (vset := catalog.vector_set(name))}
    video_identity = sets[VIDEO_SET].identity
    try:
        video = spec_from_identity(video_identity, weights_dir)
        image = spec_from_identity(sets[IMAGE_SET].identity, weights_dir) if IMAGE_SET in sets else None
    except HubUnreachableError as offline:
        raise offline.for_recorded_vectors() from None
    sampling = ClipSampling.from_dict(video_identity["sampling"])
    return Towers(video, image, sampling, device, precision, backend, runtime_dir), sets


def index_settings_from_catalog(
    data: DataDir, device: str = "auto", precision: str = "auto", runtime: str = "auto"
) -> IndexSettings:
    """Settings that index more footage into `data` with exactly the encoders it already uses
    (the default encoders for a data dir without vectors)."""
    return recorded_settings(data, device, precision, runtime) or IndexSettings(
        data, EncoderSettings(device=device, precision=precision, runtime=runtime)
    )
