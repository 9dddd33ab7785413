"""Which encoders an index run uses: the flags the user gave, else the ones the data dir records.

A data dir's vectors were made by the towers its catalog records. `index` with no encoder flags embeds
new footage with exactly those, so a data dir made with a local checkpoint or `--weights random` keeps
working without repeating the flags (and never reaches for the hub's weights instead). A flag names what
the user wants: a tower setting not given is taken from the record only while that tower's architecture
is the recorded one, clip sampling included (other weights of the recorded architecture cut the data
dir's clips as before, since a second vector set is built over those clips: indexer/switch.py; another
architecture starts from its weights' own sampling). The change threshold is part of the sampling: a data
dir that records none (made with `--every-window`, or before windows were skipped) goes on embedding
every window unless a flag says else. A tower the record lacks is added only when a flag asks for it. An
encoder other than the recorded one builds a new vector set beside the active one (`--rebuild` instead
re-embeds everything with it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from indexer.catalog import Catalog
from indexer.records import IMAGE_SET, VIDEO_SET, ClipSampling
from indexer.settings import DataDir, EncoderSettings, ImageTextSettings, IndexSettings


@dataclass(frozen=True)
class EncoderFlags:
    """The encoder options given on the command line; None = not given."""

    variant: str | None = None
    weights: str | None = None
    window_frames: int | None = None
    frame_interval: int | None = None
    stride_frames: int | None = None
    no_image_text: bool = False
    image_text_model: str | None = None
    image_text_weights: str | None = None
    image_text_frames: int | None = None
    change_threshold: float | None = None  # --change-threshold
    every_window: bool = False  # --every-window: no skipping

    def name_image_text(self) -> bool:
        return any(v is not None for v in (self.image_text_model, self.image_text_weights, self.image_text_frames))


def recorded_settings(
    data: DataDir, device: str = "auto", precision: str = "auto", runtime: str = "auto"
) -> IndexSettings | None:
    """Settings that index more footage into `data` with exactly the encoders it already uses; None
    when it has no vectors yet. Creates nothing: a data dir without a catalog file is not opened."""
    if data.catalog_url is None and not (data.root / "catalog.db").is_file():
        return None
    catalog = Catalog(data.catalog).open()
    try:
        video, image = catalog.vector_set(VIDEO_SET), catalog.vector_set(IMAGE_SET)
    finally:
        catalog.close()
    if video is None:
        return None
    ident, sampling = video.identity, ClipSampling.from_dict(video.identity["sampling"])
    image_text = ImageTextSettings(enabled=False)
    if image is not None:
        image_text = ImageTextSettings(
            True, image.identity["model"], image.identity["weights"], image.identity["frames_per_clip"]
        )
    return IndexSettings(
        data,
        EncoderSettings(ident["variant"], ident["weights"], device, precision, runtime),
        image_text,
        window_frames=sampling.window_frames,
        frame_interval=sampling.frame_interval,
        stride_frames=sampling.stride_frames,
        change_threshold=sampling.change_threshold,  # None for data dirs made before skipping: every window
    )


def choose_encoders(base: IndexSettings, flags: EncoderFlags, recorded: IndexSettings | None) -> IndexSettings:
    """`base` (data dir, runtime, run options) with the encoders `flags` and the record name."""
    enc = base.encoder
    defaults = IndexSettings(
        base.data, EncoderSettings(device=enc.device, precision=enc.precision, runtime=enc.runtime)
    )
    recorded = recorded or defaults  # a new data dir: the default encoders
    return replace(base, **_video(flags, recorded, defaults), image_text=_image_text(flags, recorded))


def _video(flags: EncoderFlags, recorded: IndexSettings, defaults: IndexSettings) -> dict:
    variant = flags.variant or recorded.encoder.variant
    same_arch = variant == recorded.encoder.variant
    weights = flags.weights if flags.weights is not None else (recorded.encoder.weights if same_arch else None)
    sampling = recorded if same_arch else defaults

    def pick(flag, name: str):
        return flag if flag is not None else getattr(sampling, name)

    return {
        "encoder": replace(defaults.encoder, variant=variant, weights=weights),
        "window_frames": pick(flags.window_frames, "window_frames"),
        "frame_interval": pick(flags.frame_interval, "frame_interval"),
        "stride_frames": pick(flags.stride_frames, "stride_frames"),
        "change_threshold": None if flags.every_window else pick(flags.change_threshold, "change_threshold"),
    }


def _image_text(flags: EncoderFlags, recorded: IndexSettings) -> ImageTextSettings:
    default, was = ImageTextSettings(), recorded.image_text
    if flags.no_image_text:
        return ImageTextSettings(enabled=False)
    if not was.enabled and not flags.name_image_text():
        return was  # the record has no image-text tower and no flag asks for one
    base = was if was.enabled else default
    model = flags.image_text_model or base.model
    same_arch = model == base.model
    return ImageTextSettings(
        True,
        model,
        flags.image_text_weights if flags.image_text_weights is not None else (base.weights if same_arch else None),
        flags.image_text_frames or (base.frames_per_clip if same_arch else default.frames_per_clip),
    )
