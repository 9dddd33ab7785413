"""Generators of bad and unusual footage, each a real file made with PyAV (or by breaking one)."""

from __future__ import annotations

import os
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from app.demo import Scene, render_frame, synthesize_video, write_video


def vfr_video(path: Path) -> Path:
    """2 s at 30 fps, then 2 s at 5 fps, timestamps in milliseconds."""
    times = [i / 30 for i in range(60)] + [2 + i / 5 for i in range(10)]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for t in times:
            frame = av.VideoFrame.from_ndarray(render_frame(Scene.from_seed(11), t, 160, 120), format="rgb24")
            frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def truncated(source: Path, path: Path, keep: float) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def corrupted_middle(source: Path, path: Path) -> Path:
    """Overwrite a stretch in the middle of the stream data with noise."""
    data = bytearray(source.read_bytes())
    start = len(data) // 2
    data[start : start + 4000] = np.random.default_rng(0).bytes(4000)
    path.write_bytes(bytes(data))
    return path


def huge_frames(path: Path, frames: int = 3) -> Path:
    """7680x4320 (8K) H.264."""
    image = np.zeros((4320, 7680, 3), np.uint8)
    image[:, :, 1] = np.linspace(0, 255, 7680, dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 7680, 4320, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "35"}
        for _ in range(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def long_video(path: Path, seconds: float, fps: int = 10) -> Path:
    return synthesize_video(path, seed=21, seconds=seconds, fps=fps, width=64, height=48)


def short_video(path: Path, frames: int = 5) -> Path:
    scene = Scene.from_seed(5)
    return write_video(path, (render_frame(scene, i / 30, 160, 120) for i in range(frames)))


ODD_NAMES = ("with space.mp4", "ünïcødé ✓.mp4", "new\nline.mp4", "-leading-dash.mp4", "100% 'quoted' [x].mp4")


def bad_corpus(folder: Path, good: Path) -> dict[str, str]:
    """Every bad input in one folder. Returns name -> expected outcome: 'indexed' or a failure reason."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zero-byte.mp4").write_bytes(b"")
    truncated(good, folder / "truncated.mp4", 0.4)  # MP4 muxer puts the index (moov) at the end
    (folder / "garbage.mov").write_bytes(np.random.default_rng(1).bytes(30_000))
    audio_only(folder / "voice memo.m4a")
    short_video(folder / "five frames.mp4")
    corrupted_middle(good, folder / "glitch in the middle.mp4")
    vfr_video(folder / "vfr.mp4")
    for seed, name in enumerate(ODD_NAMES, start=30):  # distinct content, so each is its own video
        synthesize_video(folder / name, seed=seed, seconds=2.5, width=160, height=120)
    (folder / "loop").mkdir()
    (folder / "loop" / "back").symlink_to(folder)  # a symlink loop
    (folder / "dangling.mp4").symlink_to(folder / "nowhere.mp4")  # unreadable: nothing behind it
    expected = {
        "zero-byte.mp4": "cannot open as media",
        "truncated.mp4": "cannot open as media",
        "garbage.mov": "cannot open as media",
        "voice memo.m4a": "no video stream (has audio streams only)",
        "dangling.mp4": "cannot read file",
    }
    for name in ("five frames.mp4", "glitch in the middle.mp4", "vfr.mp4", *ODD_NAMES):
        expected[name] = "indexed"
    if os.geteuid() != 0:  # root reads anything: permission failures need an ordinary user
        locked = folder / "locked.mp4"
        shutil.copy(good, locked)
        locked.chmod(0)
        expected["locked.mp4"] = "cannot read file"
    return expected
