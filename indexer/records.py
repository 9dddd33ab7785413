"""Record types shared by the indexer, the query service and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer.recorded import Recorded


# Names of the vector sets (one per tower), as the catalog and the index files know them.
def folder_prefix(folder: str) -> str:
    """What a path under `folder` starts with: whole path components, so "/a/b" covers "/a/b/x.mp4"
    but not "/a/bc.mp4" (a folder filter is a folder, not a string prefix)."""
    return folder.rstrip("/") + "/"


def in_folder(path: str, folder: str) -> bool:
    """`path` lies under `folder`, or is that very file."""
    return path.startswith(folder_prefix(folder)) or path == folder.rstrip("/")


VIDEO_SET = "video"  # VideoMAE v2: motion, actions
IMAGE_SET = "image"  # the image-text tower (open_clip): appearance, aligned with text


@dataclass(frozen=True)
class ScannedFile:
    path: Path  # absolute path as found under a root (symlinks not resolved)
    size: int  # bytes
    mtime_ns: int  # modification time
    root: Path  # the scan root it was found under


@dataclass(frozen=True)
class VideoInfo:
    """What probing a file tells before decoding it."""

    stream_index: int  # the container's best video stream
    codec: str
    width: int  # display width (after rotation)
    height: int  # display height (after rotation)
    fps: float | None  # average frame rate, if the container states one
    duration: float | None  # seconds, if the container or stream states it
    rotation: int  # degrees counter-clockwise to apply for display
    container: str  # demuxer name
    recorded: Recorded | None = None  # recording start (indexer/recorded.py), when tags or the file name say


@dataclass(frozen=True)
class ClipSampling:
    """How a video is cut into clip windows (source frame units)."""

    window_frames: int = 16  # frames sampled per window (the encoder's T)
    frame_interval: int = 4  # take every Nth source frame
    stride_frames: int | None = None  # source frames between window starts; None = back to back
    # Windows differing from the last embedded one by at most this many grey levels are not embedded
    # (indexer/change.py); None = every window, which is what data dirs that record no threshold hold.
    change_threshold: float | None = None

    @property
    def span(self) -> int:
        """Source frames one window represents."""
        return self.window_frames * self.frame_interval

    @property
    def stride(self) -> int:
        return self.stride_frames or self.span

    def to_dict(self) -> dict:
        """The form stored with the video vectors. Its "num_frames" key is the field's former name, which
        existing data dirs hold: this and `from_dict` are the one place it is spelled. "change_threshold" is
        left out when None, so the identity of every-window sets (all those made before skipping) is unchanged."""
        out = {"num_frames": self.window_frames, "frame_interval": self.frame_interval, "stride_frames": self.stride}
        if self.change_threshold is not None:
            out["change_threshold"] = self.change_threshold
        return out

    @classmethod
    def from_dict(cls, data: dict) -> ClipSampling:
        return cls(data["num_frames"], data["frame_interval"], data["stride_frames"], data.get("change_threshold"))


@dataclass(frozen=True)
class ClipWindow:
    ordinal: int  # window number within the video (tail and short-video windows included)
    start: float  # seconds from the start of the stream, first sampled frame
    end: float  # seconds, end of the last frame the window represents


@dataclass(frozen=True)
class UnchangedWindow:
    """A window that shows nothing new since the last embedded one (indexer/change.py): not converted,
    not embedded; the last embedded clip's time span extends over it."""

    window: ClipWindow


@dataclass(frozen=True)
class DecodedClip:
    window: ClipWindow
    frames: np.ndarray  # uint8 (T, S, S, 3) RGB, resized and centre-cropped: the towers' input
    full_frames: list[np.ndarray]  # the same T frames uncropped (short side S): thumbnails
    resized: dict[int, np.ndarray] = field(default_factory=dict)  # size -> the frames at that size

    def by_size(self) -> dict[int, np.ndarray]:
        """Every square size the frames were decoded at -> uint8 (T, size, size, 3)."""
        return {self.frames.shape[1]: self.frames, **self.resized}


def stack_by_size(clips: list[DecodedClip]) -> dict[int, np.ndarray]:
    """A batch for the towers: {size: uint8 (B, T, size, size, 3)} for every size decoded."""
    per_clip = [clip.by_size() for clip in clips]
    return {size: np.stack([frames[size] for frames in per_clip]) for size in per_clip[0]}


@dataclass(frozen=True)
class Failure:
    path: str
    error: str


@dataclass
class FileCounts:
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    moved: int = 0
    deleted: int = 0
    failed: int = 0
    # Left out by the scan, not probed and not failed (indexer/scan.py): hidden entries, obvious non-media by
    # extension, links to the catalog's own files, directories on other or pseudo filesystems. A file probed
    # and found to hold no video stream, a FIFO or a device is a failure instead.
    skipped: int = 0


@dataclass
class IndexReport:
    files: FileCounts = field(default_factory=FileCounts)
    clips_embedded: int = 0  # new clip windows (each with every enabled tower's vector)
    windows_skipped: int = 0  # windows not embedded: no different from the last embedded (indexer/change.py)
    seconds_saved: float = 0.0  # estimate: windows_skipped x this run's mean encoder seconds per clip
    vectors_embedded: dict[str, int] = field(default_factory=dict)  # per tower, backfills included
    failures: list[Failure] = field(default_factory=list)
    warnings: list[Failure] = field(default_factory=list)  # indexed, but with a problem
    seconds: float = 0.0
    cancelled: bool = False  # stopped early on request; finished videos are kept
    runtimes: dict[str, str] = field(default_factory=dict)  # set name -> what ran its tower ("openvino cpu bf16")
    # The same by vector set generation: a switch renames sets ("video.new" becomes "video") but keeps their
    # generation, so status finds what made the active set's vectors after it. Not by set id: SQLite gives a
    # set made after `--rebuild` or `drop-set` the id of the one it replaced, whose runs are not its own.
    generation_runtimes: dict[str, str] = field(default_factory=dict)
    activated: list[str] = field(default_factory=list)  # towers whose new vector set became active (switch)
    building: dict[str, dict] = field(default_factory=dict)  # new sets still lacking clips: {clips, vectors}

    def to_json(self) -> dict:
        return {
            "files": vars(self.files),
            "clips_embedded": self.clips_embedded,
            "windows_skipped": self.windows_skipped,
            "seconds_saved": round(self.seconds_saved, 3),
            "vectors_embedded": self.vectors_embedded,
            "failures": [vars(f) for f in self.failures],
            "warnings": [vars(w) for w in self.warnings],
            "seconds": round(self.seconds, 3),
            "cancelled": self.cancelled,
            "runtimes": self.runtimes,
            "generation_runtimes": self.generation_runtimes,
            "activated": self.activated,
            "building": self.building,
        }


@dataclass(frozen=True)
class Moment:
    """A time range of one video that answers a query: one clip window or several merged (app/moments.py),
    with the best of them, its peak, named by its own times too."""

    video_id: int
    path: str
    start: float  # seconds, start of the first merged window
    end: float  # seconds, end of the last merged window
    score: float  # fused, calibrated score of the best window (see app/search.py)
    clip_id: int  # the best window
    clip_ids: tuple[int, ...]  # every merged window, in time order
    scores: dict[str, float]  # the best window's raw cosine similarity per query part
    thumbnail: str | None  # absolute path of the best window's thumbnail
    peak_start: float  # seconds, start of the best window (where the player starts)
    peak_end: float  # seconds, end of the best window
    recorded: Recorded | None = None  # wall-clock time of the moment's start, when the video's is known

    def to_json(self) -> dict:
        return {
            "clip_id": self.clip_id,
            "video_id": self.video_id,
            "path": self.path,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "peak_start": round(self.peak_start, 3),
            "peak_end": round(self.peak_end, 3),
            "score": round(self.score, 4),
            "scores": {k: round(v, 6) for k, v in self.scores.items()},
            "clip_ids": list(self.clip_ids),
            "thumbnail": self.thumbnail,
            "recorded_at": self.recorded.to_json() if self.recorded else None,  # ISO 8601 UTC
            "recorded_source": self.recorded.source if self.recorded else None,
        }
