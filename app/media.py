"""Playable previews of moments, made on demand and cached in the data dir.

Library footage comes in every codec and container (HEVC, MJPEG, AVI, rotated phone video...)
and may be hours long, so the UI never streams the original: a moment is re-encoded once to a
small H.264 MP4 (short side 360 px, display rotation applied, `+faststart` so it plays while it
downloads), with a little context before and after. The player starts it at the moment's start.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.video.reformatter import VideoReformatter

from app.made_files import MadeFiles
from indexer.atomic import atomic_write
from indexer.decode import DisplayClock, ProbeError, convert_frame

PREVIEW_SHORT_SIDE = 360
CONTEXT_SECONDS = 2.0  # shown before and after the moment
MAX_PREVIEW_SECONDS = 120.0  # a longer moment is previewed from its start
TIME_BASE = Fraction(1, 90000)  # the MPEG clock: fine enough for any real frame rate
# `+faststart`: plays while it downloads; the movie clock = the frames' clock, so the edit list that
# starts the first frame at its time is exact (the default 1/1000 s moves every frame by up to 1 ms).
MP4_OPTIONS = {"movflags": "+faststart", "movie_timescale": str(TIME_BASE.denominator)}
TOLERANCE = Fraction(1, 1_000_000)  # seconds: a frame this close before `begin` still counts


@dataclass(frozen=True)
class Preview:
    path: Path  # the cached MP4
    offset: float  # seconds into the preview where the moment starts
    length: float  # seconds of the moment inside the preview


def preview_for(previews: Path | MadeFiles, source: Path, start: float, end: float) -> Preview:
    """The cached preview of [start, end) of `source`, encoding it first if needed. A server passes its one
    MadeFiles of DATA/previews (one encode per preview at a time, size-capped); a bare folder is neither."""
    made = previews if isinstance(previews, MadeFiles) else MadeFiles(previews)
    stat = source.stat()
    begin = max(0.0, start - CONTEXT_SECONDS)
    finish = min(end, start + MAX_PREVIEW_SECONDS) + CONTEXT_SECONDS
    key = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{begin:.3f}|{finish:.3f}"
    name = f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.mp4"
    path = made.get(name, lambda target: encode_preview(source, target, begin, finish))
    return Preview(path, start - begin, min(end, finish) - start)


def encode_preview(source: Path, target: Path, begin: float, finish: float) -> None:
    """Re-encode [begin, finish) of `source` to H.264 in `target` (written atomically)."""
    try:
        with (
            atomic_write(target, suffix=".mp4") as tmp,  # PyAV picks the container by the extension
            av.open(str(source)) as inp,
            av.open(str(tmp), "w", options=MP4_OPTIONS) as out,
        ):
            stream = inp.streams.best("video")
            if stream is None:
                raise ProbeError("no video stream")
            _copy_range(inp, stream, out, begin, finish)
    except av.FFmpegError as exc:
        raise ProbeError(f"cannot make a preview of {source.name}: {exc.strerror or exc}") from exc


def _copy_range(inp, stream, out, begin: float, finish: float) -> None:
    encoder, reformatter = None, VideoReformatter()
    for t, frame in frames_between(inp, stream, begin, finish):
        image = convert_frame(frame, PREVIEW_SHORT_SIDE, reformatter)
        image = image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2]  # even sides for yuv420p
        if encoder is None:
            encoder = H264Writer(out, image.shape[1], image.shape[0], video_rate(stream), crf=26)
        encoder.write(image, t - Fraction(begin))
    if encoder is None:
        raise ProbeError(f"no frames between {begin:.2f} s and {finish:.2f} s")
    encoder.close()


def frames_between(inp, stream, begin: float, finish: float) -> Iterator[tuple[Fraction, av.VideoFrame]]:
    """Decoded frames of `stream` shown in [begin, finish), with their time in seconds from the stream's
    start, strictly increasing; frames without a timestamp or out of order (broken files) are skipped."""
    origin, last, clock = stream.start_time or 0, None, DisplayClock()
    if begin > 0:
        inp.seek(int(begin / stream.time_base) + origin, stream=stream, backward=True)
    for frame in inp.decode(stream):
        stamp = clock.timestamp(frame)
        if stamp is None:
            continue
        t = (stamp - origin) * stream.time_base
        if t < Fraction(begin) - TOLERANCE or (last is not None and t <= last):
            continue
        if t >= finish:
            break
        last = t
        yield t, frame


class H264Writer:
    """An H.264 stream in `out` fed RGB images at exact times (VFR-safe).

    The codec and the muxer stream share one fine time base and every frame carries its own pts in it.
    Leaving the codec's time base to PyAV makes it 1/average-rate: on VFR footage (or an odd average
    rate such as 4800/287) several frames then round to the same pts and the muxer fails with
    "non monotonically increasing dts". The rate is only x264's rate-control hint.
    """

    def __init__(self, out, width: int, height: int, rate: Fraction, crf: int) -> None:
        self.stream = out.add_stream("libx264", rate=rate)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
        self.stream.options = {"crf": str(crf), "preset": "veryfast"}
        self.stream.time_base = self.stream.codec_context.time_base = TIME_BASE
        self.out, self.last_pts = out, None

    def write(self, image, t: Fraction) -> bool:
        """Add `image` (H, W, 3 uint8 RGB) shown at `t` seconds of the output; False if it was dropped."""
        pts = round(t / TIME_BASE)
        if self.last_pts is not None and pts <= self.last_pts:
            return False  # closer than one tick to the previous frame: cannot be shown apart
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base, self.last_pts = pts, TIME_BASE, pts
        self.out.mux(self.stream.encode(frame))
        return True

    def close(self) -> None:
        self.out.mux(self.stream.encode(None))


def video_rate(stream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or 30
    rate = Fraction(rate).limit_denominator(1001)  # x264 wants a small fraction; VFR rates are long ones
    return rate if 0 < rate < 240 else Fraction(30)
