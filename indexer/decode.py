"""Probe and decode video files with PyAV.

Timestamps come from presentation timestamps (PTS), relative to the stream's start, so they are
right for variable frame rate footage and for containers that state no duration. Frames are
resized inside FFmpeg (`VideoFrame.reformat`), rotated as the display matrix says, and
centre-cropped to the encoder's square input.

Memory and time are bounded whatever the file says: only regular files are opened (a FIFO would
block, a device never end), frames above MAX_FRAME_PIXELS are refused before one is decoded, and a
decoder may be given a window cap and a deadline (query videos are).
"""

from __future__ import annotations

import itertools
import os
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from indexer.change import ChangeDetector
from indexer.grey_cells import GreyCells
from indexer.quiet import QuietGops, Still, quiet_limit
from indexer.recorded import Recorded, recording_start
from indexer.records import ClipSampling, DecodedClip, UnchangedWindow, VideoInfo
from indexer.windows import AssembledWindow, WindowAssembler

MAX_CONSECUTIVE_BAD_PACKETS = 32  # past this, the rest of the stream is considered unreadable
SEEK_MIN_STRIDE_SPANS = 2  # windows this many spans apart (or more) are reached by seeking
# How FFmpeg spreads a stream's decoding over the cores (ClipDecoder's `threading`). Frame threads give
# the shortest decode but can cost CPU: on the 2-core EPYC, 10 minutes of the 720p fixed-camera video took
# 3.2 CPU s with them (FFmpeg's AUTO), 2.1 in one thread, 2.3 with slice threads, which run in parallel
# only where the encoder cut frames into slices (bench/decode_costs.py). So with spare cores (the towers on
# a GPU) decoding takes frame threads; beside towers on the CPU, only the threading that costs no extra CPU.
SPARE_CORES, SHARED_CORES = "AUTO", "SLICE"
# Largest frame decoded: DCI 8K (8192x4320, 35.4 megapixels), about 53 MB in YUV 4:2:0 and 106 MB in RGB.
# A 16000x16000 frame (a 1.6 MB file can hold one) made a single decode take 2.5 GB; larger ones are refused.
MAX_FRAME_WIDTH, MAX_FRAME_HEIGHT = 8192, 4320
MAX_FRAME_PIXELS = MAX_FRAME_WIDTH * MAX_FRAME_HEIGHT
# FFmpeg checks the same bound itself (its max_pixels option) in stream probing, which otherwise decodes a
# full frame to learn the stream's parameters, and in every decoder Tubelet opens.
DECODER_LIMITS = {"max_pixels": str(MAX_FRAME_PIXELS)}


class ProbeError(Exception):
    """The file cannot be indexed as a video; the message says why, for the user."""


class DecodeTimeout(ProbeError):
    """Decoding ran past its deadline (query videos have one)."""


FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words (for messages)."""
    return next((name for test, name in FILE_KINDS if test(mode)), "not a plain file")


def require_regular_file(path: Path) -> None:
    """Refuse FIFOs, devices and sockets before FFmpeg opens them: opening a FIFO blocks until a writer
    comes (forever, for a query), and a device such as /dev/zero never ends."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ProbeError(f"cannot read file: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(mode):
        raise ProbeError(f"is not a regular file ({file_kind(mode)})")


def check_resolution(width: int, height: int) -> None:
    if width * height > MAX_FRAME_PIXELS:
        raise ProbeError(
            f"resolution {width}x{height} is above the limit of {MAX_FRAME_WIDTH}x{MAX_FRAME_HEIGHT} "
            f"({MAX_FRAME_PIXELS / 1e6:.1f} megapixels)"
        )


def _open(path: Path):
    require_regular_file(path)
    try:
        return av.open(str(path), metadata_errors="ignore", options=DECODER_LIMITS)
    except OSError as exc:  # first: PyAV's missing-file and permission errors are OSErrors too
        raise ProbeError(f"cannot read file: {exc.strerror or exc}") from exc
    except av.FFmpegError as exc:
        raise ProbeError(f"cannot open as media: {exc.strerror or exc}") from exc


# FFmpeg demuxers that present a still image or text (ANSI art, binary text) as a video stream.
TEXT_DEMUXERS = frozenset({"tty", "bin", "xbin", "adf", "idf"})


def _still_or_text(container) -> str | None:
    name = container.format.name
    if name.startswith("image2") or name.endswith("_pipe"):
        return "a still image, not a video"
    if name in TEXT_DEMUXERS:
        return "a text file, not a video"
    return None


def probe(path: Path) -> VideoInfo:
    """Open the file, pick its best video stream and decode one frame to prove it is readable."""
    with _open(path) as container:
        if reason := _still_or_text(container):
            raise ProbeError(reason)
        stream = container.streams.best("video")
        if stream is None:
            kinds = sorted({s.type for s in container.streams})
            has = f" (has {', '.join(kinds)} streams only)" if kinds else " (no streams)"
            raise ProbeError(f"no video stream{has}")
        if stream.codec_context is None:
            raise ProbeError(f"no decoder for its video codec ({stream.codec_tag or 'unknown'})")
        check_resolution(stream.codec_context.width, stream.codec_context.height)  # before decoding a frame
        stream.codec_context.options = dict(DECODER_LIMITS)
        first = _first_frame(container, stream)
        check_resolution(first.width, first.height)
        width, height = first.width, first.height
        rotation = int(first.rotation or 0)
        if rotation % 180:
            width, height = height, width
        return VideoInfo(
            stream_index=stream.index,
            codec=stream.codec_context.name,
            width=width,
            height=height,
            fps=float(stream.average_rate) if stream.average_rate else None,
            duration=_stated_duration(container, stream),
            rotation=rotation,
            container=container.format.name,
            recorded=_recorded(container, path),
        )


def read_recorded(path: Path) -> Recorded | None:
    """The recording start from the file's tags or name, without decoding (for videos indexed before schema 5)."""
    with _open(path) as container:
        return _recorded(container, path)


def _recorded(container, path: Path) -> Recorded | None:
    tags = [container.metadata, *(stream.metadata for stream in container.streams)]
    return recording_start(tags, path.name)


def _first_frame(container, stream):
    try:
        for frame in container.decode(stream):
            return frame
    except av.FFmpegError as exc:
        raise ProbeError(f"video stream cannot be decoded: {exc.strerror or exc}") from exc
    raise ProbeError("video stream has no decodable frames")


def _stated_duration(container, stream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


@dataclass
class DecodeSummary:
    frames: int = 0  # frames decoded (inside the time range, if one was given)
    duration: float = 0.0  # seconds from the stream start to the end of the last frame
    bad_packets: int = 0  # packets FFmpeg could not decode (skipped)
    error: str | None = None  # why decoding stopped early, if it did
    note: str | None = None  # how windows were chosen, when only some of the range's were decoded
    stills: int = 0  # frames of quiet GOPs shown as their keyframe, not decoded (indexer/quiet.py)


class ClipDecoder:
    """Decodes one video into clip windows. Cheap to build; work happens in `clips()`."""

    def __init__(
        self,
        path: Path,
        info: VideoInfo,
        sampling: ClipSampling,
        size: int,
        time_range: tuple[float | None, float | None] | None = None,
        seek: bool | None = None,
        extra_sizes: tuple[int, ...] = (),
        max_windows: int | None = None,
        deadline: float | None = None,
        change: ChangeDetector | None = None,
        threading: str = SPARE_CORES,
    ):
        self.threading = threading  # SPARE_CORES or SHARED_CORES: FFmpeg's thread type for this stream
        # With a change detector, windows that show nothing new come out as UnchangedWindow, never
        # converted to the towers' sizes (indexer/change.py), and static GOPs are decoded as their
        # keyframe alone (indexer/quiet.py): the frames of such a GOP are its keyframe repeated.
        self.change = change
        self._still_source: tuple | None = None  # (keyframe, its sampled frame) for the current quiet GOP
        self._cells_of = GreyCells(size)  # change signatures of sampled frames
        self.seek = seek  # None: seek when windows are sparse; True/False force a mode
        # At most this many windows, spread evenly over the time range when its length is known (queries).
        self.max_windows = max_windows
        self.deadline = deadline  # time.monotonic() past which decoding stops with DecodeTimeout
        self.path = path
        self.info = info
        self.sampling = sampling
        self.size = size  # square side of `DecodedClip.frames` (and of the thumbnails' frames)
        # Other towers' input sizes, each resized from the source frame by FFmpeg: 1.7-3.3x
        # cheaper than resizing the `size` square again in torch (bench/RESULTS.md).
        self.sizes = (size, *sorted(set(extra_sizes) - {size}))
        self.start, self.end = time_range or (None, None)
        self.summary = DecodeSummary()
        # One reformatter per output size: it keeps its scaler between frames. `frame.reformat` builds
        # a new one per call, which made each conversion 2-2.4x slower (bench/RESULTS.md).
        self._reformatters = [VideoReformatter() for _ in self.sizes]

    def clips(self) -> Iterator[DecodedClip]:
        """Windows in time order. Sparse windows (gaps of a window or more between them, in
        constant frame rate footage) are reached by seeking; dense ones by decoding everything.
        With `max_windows`, a range holding more windows yields that many, spread evenly over it
        (by seeking) when its length is known, else the first ones."""
        spread = self._spread_targets()
        if spread is not None:
            self.summary.note = (
                f"{len(spread)} windows spread evenly over {spread[0]:.1f}-"
                f"{spread[-1] + self.sampling.span / self.info.fps:.1f} s"
            )
            clips = self._clips_at(spread)
        elif self._sparse() if self.seek is None else self.seek and bool(self.info.fps):
            clips = self._seeking_clips()
        else:
            clips = self._sequential_clips()
        try:
            yield from itertools.islice(clips, self.max_windows)
        finally:
            clips.close()  # closes the container now, not when the generator is collected

    def _spread_targets(self) -> list[float] | None:
        """Start times of `max_windows` windows spread over the range, if it holds more than that."""
        known_ends = [x for x in (self.end, self.info.duration) if x is not None]
        end = min(known_ends) if known_ends else None  # a range past the video's end stops there
        if not self.max_windows or not self.info.fps or end is None:
            return None
        start = self.start or 0.0
        window_seconds, stride_seconds = self.sampling.span / self.info.fps, self.sampling.stride / self.info.fps
        if (end - start) / stride_seconds <= self.max_windows or end - window_seconds <= start:
            return None
        return np.linspace(start, end - window_seconds, self.max_windows).tolist()

    def _sparse(self) -> bool:
        return (
            self.start is None
            and self.end is None
            and bool(self.info.fps)
            and self.sampling.stride >= SEEK_MIN_STRIDE_SPANS * self.sampling.span
        )

    def _open_stream(self, container):
        stream = container.streams[self.info.stream_index]
        stream.thread_type = self.threading
        # Deblocking changes pixels by 0.09 levels on average once frames are downscaled to the
        # model's input (bench/RESULTS.md) but costs ~30% of H.264 decoding: skip it.
        stream.codec_context.options = {"skip_loop_filter": "all", **DECODER_LIMITS}
        return stream

    def _seeking_clips(self) -> Iterator[DecodedClip]:
        frame_seconds = 1 / self.info.fps
        return self._clips_at(ordinal * self.sampling.stride * frame_seconds for ordinal in itertools.count())

    def _clips_at(self, targets: Iterable[float]) -> Iterator[DecodedClip]:
        """One seek per window: decode from the keyframe before it to its end, nothing between."""
        one_window = ClipSampling(self.sampling.window_frames, self.sampling.frame_interval)
        frame_seconds = 1 / self.info.fps
        with _open(self.path) as container:
            stream = self._open_stream(container)
            clock = _Clock(stream)
            for ordinal, target in enumerate(targets):
                container.seek(clock.to_pts(target), stream=stream, backward=True)
                clock.seeked()
                assembler, index, done, end_of_last = WindowAssembler(one_window), 0, [], target
                for frame in self._frames(container, stream):
                    t = clock.seconds(frame)
                    if t < target - frame_seconds / 2:
                        continue
                    done = assembler.push(index, t, lambda f=frame: self._convert(f))
                    end_of_last, index = t + clock.frame_duration(frame), index + 1
                    if done:
                        break
                if index == 0:
                    return  # sought past the end
                self.summary.frames += index
                self.summary.duration = max(self.summary.duration, end_of_last)
                window = (done or assembler.finish(end_of_last))[0]
                yield self._clip(AssembledWindow(replace(window.window, ordinal=ordinal), window.frames))
                if not done:
                    return  # the stream ended inside this window

    def _sequential_clips(self) -> Iterator[DecodedClip]:
        assembler = WindowAssembler(self.sampling)
        end_of_last = 0.0
        with _open(self.path) as container:
            stream = self._open_stream(container)
            clock = _Clock(stream)
            if self.start:
                container.seek(clock.to_pts(self.start), stream=stream, backward=True)
                clock.seeked()
            index = 0
            for frame in self._frames(container, stream):
                t = clock.seconds(frame)
                if self.start is not None and t < self.start - 1e-6:
                    continue
                if self.end is not None and t >= self.end:
                    break
                for assembled in assembler.push(index, t, lambda f=frame: self._convert(f)):
                    yield self._clip(assembled)
                end_of_last = t + clock.frame_duration(frame)
                index += 1
        self.summary.frames = index
        self.summary.duration = end_of_last
        for assembled in assembler.finish(end_of_last):
            yield self._clip(assembled)

    def _clip(self, assembled: AssembledWindow) -> DecodedClip | UnchangedWindow:
        frames = assembled.frames
        if self.change is not None:
            cells = np.stack([self._cells(f) for f in frames])
            if not self.change.signature_differs(cells):
                return UnchangedWindow(assembled.window)
            frames = [self._images(f) for f in frames]
        per_size = list(zip(*frames))  # [size][frame] uncropped images
        crops = [np.stack([_center_crop(f, size) for f in frames]) for size, frames in zip(self.sizes, per_size)]
        return DecodedClip(assembled.window, crops[0], list(per_size[0]), dict(zip(self.sizes[1:], crops[1:])))

    def _frames(self, container, stream):
        """Decode packet by packet so one corrupt packet costs a frame, not the whole video; with
        a change detector, static GOPs are decoded as their keyframe alone (indexer/quiet.py)."""
        packets = self._packets(container, stream)
        bad = _BadPackets(self.summary)
        try:
            if self.change is None:
                for packet in packets:
                    yield from bad.decode(stream.codec_context, packet)
                return
            context = stream.codec_context
            quiet = QuietGops(
                lambda packet: bad.decode(context, packet),
                context.flush_buffers,
                quiet_limit(context.width, context.height),
            )
            yield from quiet.frames(packets)
            yield from bad.decode(context, None)  # what the decoder still holds
            self.summary.stills = quiet.stills
        except _Unreadable:
            return

    def _packets(self, container, stream):
        for packet in container.demux(stream):
            if self.deadline is not None and time.monotonic() > self.deadline:
                raise DecodeTimeout("decoding stopped at its time limit")
            yield packet

    def _convert(self, frame) -> tuple[np.ndarray, ...] | _Sampled:
        """A sampled frame as the towers' images, or, with a change detector, held as `_Sampled` until
        its window is known to differ."""
        if isinstance(frame, Still):  # every still of a quiet GOP is its keyframe: convert that once
            if self._still_source is None or self._still_source[0] is not frame.source:
                self._still_source = (frame.source, self._convert(frame.source))
            return self._still_source[1]
        if self.change is not None:
            return _Sampled(frame)
        return self._images_of(frame)

    def _images_of(self, frame) -> tuple[np.ndarray, ...]:
        return tuple(
            convert_frame(frame, size, reformatter) for size, reformatter in zip(self.sizes, self._reformatters)
        )

    def _images(self, sampled: _Sampled) -> tuple[np.ndarray, ...]:
        if sampled.images is None:
            sampled.images, sampled.frame = self._images_of(sampled.frame), None  # the decoded frame is done
        return sampled.images

    def _cells(self, sampled: _Sampled) -> np.ndarray:
        if sampled.cells is None:
            sampled.cells = self._cells_of(sampled.frame)
        return sampled.cells


class _Sampled:
    """A sampled frame held until its window is known to differ (then converted once, the decoded frame
    let go) or not (then only its grey cells were made)."""

    __slots__ = ("cells", "frame", "images")

    def __init__(self, frame):
        self.frame = frame  # av.VideoFrame until converted
        self.images: tuple[np.ndarray, ...] | None = None
        self.cells: np.ndarray | None = None


def convert_frame(frame, size: int, reformatter: VideoReformatter | None = None) -> np.ndarray:
    """Resize inside FFmpeg so the short side is `size` and rotate for display (uncropped RGB).
    Pass the same `reformatter` for the frames of one stream to reuse its scaler."""
    width, height = _scaled(frame.width, frame.height, size)
    reformatter = reformatter or VideoReformatter()
    image = reformatter.reformat(frame, width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()
    rotation = int(frame.rotation or 0)
    if rotation % 360:
        image = np.ascontiguousarray(np.rot90(image, k=rotation // 90))
    return image


def read_image(path: Path, size: int) -> np.ndarray:
    """An image file through the same FFmpeg path as video frames: uint8 (size, size, 3) RGB."""
    require_regular_file(path)
    try:
        with av.open(str(path), options=DECODER_LIMITS) as container:
            stream = container.streams.video[0]
            if stream.codec_context is None:
                raise ProbeError("no decoder for its image codec")
            check_resolution(stream.codec_context.width, stream.codec_context.height)
            stream.codec_context.options = dict(DECODER_LIMITS)
            frame = next(container.decode(stream))
            check_resolution(frame.width, frame.height)
            return _center_crop(convert_frame(frame, size), size)
    except (av.FFmpegError, StopIteration, IndexError) as exc:
        raise ProbeError(f"cannot read as an image: {getattr(exc, 'strerror', None) or exc}") from exc
    except OSError as exc:
        raise ProbeError(f"cannot read file: {exc.strerror or exc}") from exc


def _scaled(width: int, height: int, size: int) -> tuple[int, int]:
    scale = size / min(width, height)
    return max(size, round(width * scale)), max(size, round(height * scale))


def _center_crop(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return image[top : top + size, left : left + size]


class DisplayClock:
    """A frame's display timestamp, as FFmpeg's best-effort timestamp guesses it: its pts, unless pts have
    gone backwards more often than dts. AVI files with packed B-frames (MPEG-4 ASP from old cameras) give
    decoded frames in display order but pts in decode order: 47, 49, 48, ...; their dts run 47, 48, 49."""

    def __init__(self) -> None:
        self.last_pts = self.last_dts = None
        self.faulty_pts = self.faulty_dts = 0

    def timestamp(self, frame) -> int | None:
        pts, dts = frame.pts, frame.dts
        if pts is not None:
            self.faulty_pts += self.last_pts is not None and pts <= self.last_pts
            self.last_pts = pts
        if dts is not None:
            self.faulty_dts += self.last_dts is not None and dts <= self.last_dts
            self.last_dts = dts
        if pts is not None and (self.faulty_pts <= self.faulty_dts or dts is None):
            return pts
        return dts


class _Unreadable(Exception):
    """Too many corrupt packets in a row: the rest of the stream is given up (summary.error says why)."""


class _BadPackets:
    """Decodes one packet at a time, counting the corrupt ones."""

    def __init__(self, summary: DecodeSummary):
        self.summary, self.consecutive = summary, 0

    def decode(self, context, packet) -> list:
        try:
            frames = context.decode(packet)
        except av.FFmpegError as exc:
            self.summary.bad_packets += 1
            self.consecutive += 1
            if self.consecutive > MAX_CONSECUTIVE_BAD_PACKETS:
                self.summary.error = f"decoding stopped: {exc.strerror or exc}"
                raise _Unreadable from exc
            return []
        self.consecutive = 0
        return frames


class _Clock:
    """Frame times in seconds from the stream's start, from the display timestamp (DisplayClock) when present."""

    def __init__(self, stream):
        self.time_base = stream.time_base or Fraction(1, 1)
        self.origin = stream.start_time
        rate = stream.average_rate or stream.guessed_rate
        self.nominal = float(1 / rate) if rate else 1 / 30
        self._last: float | None = None
        self._display = DisplayClock()

    def seeked(self) -> None:
        """Forget the timestamp history, as FFmpeg does when a seek flushes the decoder."""
        self._display = DisplayClock()

    def to_pts(self, seconds: float) -> int:
        # Clamped to int64, what FFmpeg takes: a time far past the end (a stated duration, a query range)
        # then seeks to the end instead of overflowing.
        return max(-(2**63), min(2**63 - 1, int(seconds / self.time_base) + (self.origin or 0)))

    def seconds(self, frame) -> float:
        stamp = self._display.timestamp(frame)
        if stamp is None:  # no timestamp: one nominal frame after the previous one
            t = 0.0 if self._last is None else self._last + self.nominal
        else:
            if self.origin is None:
                self.origin = stamp
            t = float((stamp - self.origin) * self.time_base)
        self._last = t
        return t

    def frame_duration(self, frame) -> float:
        if frame.duration:
            return float(frame.duration * self.time_base)
        return self.nominal
