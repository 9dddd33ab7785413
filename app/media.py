"""Playable previews of moments, made on demand and cached in the data dir.

Library footage comes in every codec and container (HEVC, MJPEG, AVI, rotated phone video...)
and may be hours long, so the UI never streams the original: a moment is re-encoded once to a
small H.264 MP4 (short side 360 px, display rotation applied, `+faststart` so it plays while it
downloads), with a little context before and after. The player starts it at the moment's start.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.video.reformatter import VideoReformatter

from indexer.atomic import atomic_write
from indexer.decode import ProbeError, convert_frame

PREVIEW_SHORT_SIDE = 360
CONTEXT_SECONDS = 2.0  # shown before and after the moment
MAX_PREVIEW_SECONDS = 120.0  # a longer moment is previewed from its start
MILLISECOND = Fraction(1, 1000)


@dataclass(frozen=True)
class Preview:
    path: Path  # the cached MP4
    offset: float  # seconds into the preview where the moment starts
    length: float  # seconds of the moment inside the preview


def preview_for(previews_dir: Path, source: Path, start: float, end: float) -> Preview:
    """The cached preview of [start, end) of `source`, encoding it first if needed."""
    stat = source.stat()
    begin = max(0.0, start - CONTEXT_SECONDS)
    finish = min(end, start + MAX_PREVIEW_SECONDS) + CONTEXT_SECONDS
    key = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{begin:.3f}|{finish:.3f}"
    path = previews_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.mp4"
    if not path.is_file():
        encode_preview(source, path, begin, finish)
    return Preview(path, start - begin, min(end, finish) - start)


def encode_preview(source: Path, target: Path, begin: float, finish: float) -> None:
    """Re-encode [begin, finish) of `source` to H.264 in `target` (written atomically)."""
    try:
        with (
            atomic_write(target, suffix=".mp4") as tmp,  # PyAV picks the container by the extension
            av.open(str(source)) as inp,
            av.open(str(tmp), "w", options={"movflags": "+faststart"}) as out,
        ):
            stream = inp.streams.best("video")
            if stream is None:
                raise ProbeError("no video stream")
            _copy_range(inp, stream, out, begin, finish)
    except av.FFmpegError as exc:
        raise ProbeError(f"cannot make a preview of {source.name}: {exc.strerror or exc}") from exc


def _copy_range(inp, stream, out, begin: float, finish: float) -> None:
    origin = stream.start_time or 0
    if begin > 0:
        inp.seek(int(begin / stream.time_base) + origin, stream=stream, backward=True)
    encoder, last_pts, reformatter = None, -1, VideoReformatter()
    for frame in inp.decode(stream):
        if frame.pts is None:
            continue
        t = float((frame.pts - origin) * stream.time_base)
        if t < begin - 1e-6:
            continue
        if t >= finish:
            break
        image = convert_frame(frame, PREVIEW_SHORT_SIDE, reformatter)
        image = image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2]  # even sides for yuv420p
        if encoder is None:
            encoder = out.add_stream("libx264", rate=_rate(stream))
            encoder.height, encoder.width = image.shape[:2]
            encoder.pix_fmt = "yuv420p"
            encoder.options = {"crf": "26", "preset": "veryfast"}
            encoder.time_base = MILLISECOND
        pts = round((t - begin) * 1000)  # fresh, strictly increasing timestamps in ms
        if pts <= last_pts:
            continue
        video_frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        video_frame.pts, video_frame.time_base, last_pts = pts, MILLISECOND, pts
        out.mux(encoder.encode(video_frame))
    if encoder is None:
        raise ProbeError(f"no frames between {begin:.2f} s and {finish:.2f} s")
    out.mux(encoder.encode(None))


def _rate(stream):
    rate = stream.average_rate or stream.guessed_rate or 30
    return rate if rate < 240 else 30
