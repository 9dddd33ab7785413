"""Exports: a moment of an indexed video written out as its own MP4 file.

What is exported is the span of the given clips (one clip's window, or the clips a merged moment lists in
its `clip_ids`) widened by `context` seconds on each side. The source must still be the file the catalog
indexed (the same rule as serving it). The cut is a stream copy (packets remuxed untouched: fast,
lossless) when the codec fits MP4 and the first frame of the span is a keyframe; any other cut is
re-encoded to H.264 so that the file starts exactly at the span's first frame. A stream copy keeps the
frames after the end that the last frames inside it are decoded from (B-frames: at most the encoder's
reorder delay, usually one frame). Video only: audio is not exported.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import av
from av.video.reformatter import VideoReformatter

from app.made_files import MadeFiles
from app.media import MP4_OPTIONS, H264Writer, frames_between, video_rate
from app.serving import original_file
from indexer.atomic import atomic_write
from indexer.catalog import Catalog
from indexer.decode import convert_frame
from indexer.settings import DataDir

log = logging.getLogger(__name__)

COPYABLE_CODECS = {"h264", "hevc", "av1", "vp9"}  # MP4 holds them as they are (not MPEG-4 ASP: AVI packs B-frames)
EXPORT_CRF = 18  # near-transparent: an export is for keeping, a preview for a glance


class ExportError(Exception):
    """The export cannot be made as asked; the message says why and names the clip or file."""


@dataclass(frozen=True)
class ExportSpan:
    source: Path  # the indexed file, checked against the catalog
    start: float  # seconds of the source
    end: float


@dataclass(frozen=True)
class Exported:
    path: Path
    start: float  # seconds of the source where the file's first frame is
    end: float
    method: str  # "copy" (packets remuxed) or "encode" (re-encoded to H.264)
    frames: int

    def to_json(self) -> dict:
        return {"path": str(self.path), "start": self.start, "end": self.end, "method": self.method}


def export_span(catalog: Catalog, data: DataDir, clip_ids: list[int], context: float = 0.0) -> ExportSpan:
    """The source span of `clip_ids` (all of one video) plus `context` seconds each side."""
    if context < 0:
        raise ExportError(f"--context must be 0 or more seconds, got {context:g}")
    rows = catalog.clip_rows(sorted(set(clip_ids)))
    missing = sorted(set(clip_ids) - rows.keys())
    if missing:
        raise ExportError(f"no clip {', '.join(map(str, missing))} in the catalog of {data.root}")
    videos = {row.video_id for row in rows.values()}
    if len(videos) > 1:
        raise ExportError(f"clips {', '.join(map(str, sorted(rows)))} are from {len(videos)} videos, not one")
    row = next(iter(rows.values()))
    original = original_file(catalog, data, row.video_id)
    if original is None:
        raise ExportError(f"{row.path} is gone or changed since it was indexed: run index on it again")
    os.close(original.fd)
    start = max(0.0, min(r.start for r in rows.values()) - context)
    return ExportSpan(Path(original.path), start, max(r.end for r in rows.values()) + context)


def default_name(span: ExportSpan) -> str:
    """`NAME_START-END.mp4`, times in seconds: the source and the range at a glance."""
    return f"{span.source.stem}_{span.start:.2f}-{span.end:.2f}.mp4"


def export(span: ExportSpan, target: Path, force: bool = False) -> Exported:
    """Write `span` to `target` (an .mp4, atomically); an existing file is kept unless `force`."""
    if target.suffix.lower() != ".mp4":
        raise ExportError(f"{target}: an export is an MP4 file, name it NAME.mp4")
    if target.exists() and not force:
        raise ExportError(f"{target} exists: pass --force to replace it")
    try:
        with av.open(str(span.source)) as inp:
            stream = inp.streams.best("video")
            if stream is None:
                raise ExportError(f"{span.source.name}: no video stream")
            first = _first_frame(inp, stream, span)
            copy = first.key_frame and stream.codec_context.name in COPYABLE_CODECS
            start_pts = first.pts
        with atomic_write(target, suffix=".mp4") as tmp, av.open(str(span.source)) as inp:
            stream = inp.streams.best("video")
            with av.open(str(tmp), "w", options=MP4_OPTIONS) as out:
                frames = _remux(inp, stream, out, start_pts, span.end) if copy else _reencode(inp, stream, out, span)
    except av.FFmpegError as exc:
        raise ExportError(f"cannot export from {span.source.name}: {exc.strerror or exc}") from exc
    start = float((start_pts - (stream.start_time or 0)) * stream.time_base)
    return Exported(target, start, span.end, "copy" if copy else "encode", frames)


def _first_frame(inp, stream, span: ExportSpan) -> av.VideoFrame:
    for _t, frame in frames_between(inp, stream, span.start, span.end):
        return frame
    raise ExportError(f"{span.source.name} has no frames between {span.start:.2f} s and {span.end:.2f} s")


def _remux(inp, stream, out, start_pts: int, end: float) -> int:
    """Copy the packets from the keyframe at `start_pts` to the end, timestamps shifted to start at 0."""
    target = out.add_stream_from_template(stream)
    origin = stream.start_time or 0
    end_pts = origin + end / stream.time_base
    inp.seek(start_pts, stream=stream, backward=True)
    packets = []  # decode order: up to the next keyframe past the end (B-frames reference later frames)
    for packet in inp.demux(stream):
        if packet.pts is None:
            continue
        if packet.pts < start_pts or (not packets and packet.pts != start_pts):
            continue  # before the start keyframe (where the seek landed, or leading frames of an open GOP)
        if packet.pts >= end_pts and packet.is_keyframe:
            break
        packets.append(packet)
    if not packets:
        at = float((start_pts - origin) * stream.time_base)
        raise ExportError(f"{Path(inp.name).name}: the keyframe at {at:.2f} s cannot be read back")
    packets = packets[: max(i for i, p in enumerate(packets) if p.pts < end_pts) + 1]  # [0] is the start keyframe
    for packet, dts in zip(packets, _decode_stamps(packets), strict=True):
        packet.pts, packet.dts, packet.stream = packet.pts - start_pts, dts - start_pts, target
        out.mux(packet)
    return len(packets)


def _decode_stamps(packets) -> list[int]:
    """The packets' dts, or where any is missing (Matroska stores none for B-frame streams) the usual
    reconstruction: the sorted pts, moved back just enough that no frame is decoded after it is shown."""
    if all(p.dts is not None for p in packets):
        return [p.dts for p in packets]
    shown = sorted(p.pts for p in packets)
    delay = max(s - p.pts for s, p in zip(shown, packets, strict=True))
    return [s - delay for s in shown]


def _reencode(inp, stream, out, span: ExportSpan) -> int:
    writer, reformatter, count = None, VideoReformatter(), 0
    for t, frame in frames_between(inp, stream, span.start, span.end):
        if writer is None:
            begin = t  # the file starts at its first frame
            short_side = min(frame.width, frame.height) // 2 * 2
        image = convert_frame(frame, short_side, reformatter)
        image = image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2]  # even sides for yuv420p
        if writer is None:
            writer = H264Writer(out, image.shape[1], image.shape[0], video_rate(stream), crf=EXPORT_CRF)
        count += writer.write(image, t - begin)
    if writer is None:
        raise ExportError(f"{span.source.name} has no frames between {span.start:.2f} s and {span.end:.2f} s")
    writer.close()
    return count


class Downloads:
    """Exports the server hands out by clip id (the player's download link), made once and kept in
    DATA/exports/ under a hash of the source's identity and the range, like previews."""

    def __init__(self, data: DataDir, files: MadeFiles | None = None) -> None:
        self.data = data
        self.files = files or MadeFiles(data.root / "exports")  # one maker per file: two would share a temp name

    def __call__(self, catalog: Catalog, clip_ids: list[int]) -> tuple[str, str] | None:
        """(file name in DATA/exports, name to save it as), or None when the clips cannot be exported."""
        try:
            span = export_span(catalog, self.data, clip_ids)
            stat = span.source.stat()
            key = f"{span.source}|{stat.st_size}|{stat.st_mtime_ns}|{span.start:.3f}|{span.end:.3f}"
            name = f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.mp4"
            self.files.get(name, lambda target: export(span, target))
        except (ExportError, OSError) as exc:
            log.info("no export of clips %s: %s", clip_ids, exc)  # the client gets the same 404 as for any refusal
            return None
        return name, default_name(span)
