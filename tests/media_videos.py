"""Generated videos with awkward timestamps (VFR, odd average rates, coarse time bases) for the media tests."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from app.demo import Scene, render_frame

ODD_RATE = Fraction(4800, 287)  # ≈ 16.72 fps, the average rate of a real VFR traffic clip


def write_timed_video(
    path: Path, ticks: list[int], time_base: Fraction, size: tuple[int, int] = (160, 120), keyframe_every: int = 0
) -> Path:
    """An H.264 MP4 whose frame i is shown at ticks[i] * time_base seconds, stored in that time base
    (x264 defaults: B-frames on). `keyframe_every` > 0 fixes the GOP length (in frames)."""
    scene = Scene.from_seed(5)
    options = {"video_track_timescale": str(time_base.denominator)}  # keep the mp4 track in `time_base`
    with av.open(str(path), "w", options=options) as out:
        stream = out.add_stream("libx264", rate=ODD_RATE)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        stream.time_base = stream.codec_context.time_base = time_base
        stream.options = {"crf": "30", "preset": "veryfast"}
        if keyframe_every:
            stream.options |= {"g": str(keyframe_every), "keyint_min": str(keyframe_every), "sc_threshold": "0"}
        for tick in ticks:
            frame = av.VideoFrame.from_ndarray(render_frame(scene, float(tick * time_base), *size), format="rgb24")
            frame.pts, frame.time_base = tick, time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def vfr_ticks(count: int, seed: int = 0) -> list[int]:
    """Frame ticks with gaps of 1 to 3 frame durations, in irregular order of gap size."""
    gaps = np.random.default_rng(seed).integers(1, 4, size=count - 1)
    return [0, *np.cumsum(gaps).tolist()]


def frame_times(path: Path, from_start: bool = True) -> list[Fraction]:
    """Every decoded frame's time in seconds (from the stream's start, or as stored), in display order."""
    with av.open(str(path)) as inp:
        stream = inp.streams.video[0]
        origin = (stream.start_time or 0) if from_start else 0
        return sorted((f.pts - origin) * stream.time_base for f in inp.decode(stream))
