"""Benchmark footage: long H.264 videos made quickly and cached under bench/out/.

One minute is rendered by FFmpeg's own test source (`testsrc2`, with temporal noise so the
bitrate resembles camera footage) and encoded with libx264; longer videos repeat that minute by
copying packets with shifted timestamps (no re-encoding), so an hour takes seconds to make.
"""

from __future__ import annotations

import os
from pathlib import Path

import av

OUT = Path(__file__).resolve().parent / "out"


def one_minute(path: Path, width: int, height: int, fps: int = 30) -> Path:
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.mp4")
    graph = f"testsrc2=size={width}x{height}:rate={fps}:duration=60,noise=alls=3:allf=t"
    with av.open(graph, format="lavfi") as source, av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "26", "g": str(2 * fps)}
        for frame in source.decode(video=0):
            frame.pts = None
            out.mux(stream.encode(frame.reformat(format="yuv420p")))
        out.mux(stream.encode(None))
    os.replace(tmp, path)
    return path


def repeated(source: Path, path: Path, times: int) -> Path:
    """`source` played `times` times in a row, by packet copy."""
    if path.exists():
        return path
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.mp4")
    with av.open(str(source)) as probe:
        stream = probe.streams.video[0]
        span = int(probe.duration / 1_000_000 / stream.time_base)  # stream ticks per copy
    with av.open(str(tmp), "w") as out:
        for k in range(times):
            with av.open(str(source)) as inp:
                src = inp.streams.video[0]
                if k == 0:
                    dst = out.add_stream_from_template(src)
                for packet in inp.demux(src):
                    if packet.dts is None:
                        continue
                    packet.pts += k * span
                    packet.dts += k * span
                    packet.stream = dst
                    out.mux(packet)
    os.replace(tmp, path)
    return path


def long_video(minutes: int, width: int, height: int) -> Path:
    minute = one_minute(OUT / f"minute-{width}x{height}.mp4", width, height)
    if minutes == 1:
        return minute
    return repeated(minute, OUT / f"{minutes}min-{width}x{height}.mp4", minutes)
