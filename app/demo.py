"""A small generated video library, so a newcomer (and the tests) can see Tubelet work offline.

Each video is a distinct synthetic scene: a colour gradient in its own hue (hues of successive
seeds are spread by the golden ratio), moving stripes and a shape on a Lissajous path, encoded
with libx264 through PyAV. The scene darkens steadily, so different moments of one video are
distinguishable too.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from indexer.atomic import atomic_write


@dataclass(frozen=True)
class Scene:
    hue: float  # hue, 0..1
    fade: float  # brightness lost per second
    angle: float  # gradient direction, radians
    stripes: float  # stripe spatial frequency, cycles per frame width
    stripe_speed: float  # stripe phase, radians per second
    orbit: tuple[float, float]  # shape angular speeds (x, y), radians per second
    radius: float  # shape radius, fraction of frame height

    @classmethod
    def from_seed(cls, seed: int) -> Scene:
        rng = np.random.default_rng(seed)
        return cls(
            hue=(seed * 0.6180339887) % 1.0,
            fade=float(rng.uniform(0.04, 0.06)),
            angle=float(rng.uniform(0, np.pi)),
            stripes=float(rng.uniform(2, 9)),
            stripe_speed=float(rng.uniform(-4, 4)),
            orbit=(float(rng.uniform(0.6, 2.2)), float(rng.uniform(0.6, 2.2))),
            radius=float(rng.uniform(0.1, 0.25)),
        )


def _rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, saturation, value), dtype=np.float32)


def render_frame(scene: Scene, t: float, width: int, height: int) -> np.ndarray:
    """uint8 (height, width, 3) RGB frame of `scene` at `t` seconds."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = x / width, y / height
    hue, light = scene.hue, max(0.3, 1.0 - scene.fade * t)
    ramp = (np.cos(scene.angle) * u + np.sin(scene.angle) * v)[..., None]
    image = (1 - ramp) * _rgb(hue, 0.7, 0.95 * light) + ramp * _rgb(hue + 0.15, 0.8, 0.4 * light)
    stripes = np.sin(2 * np.pi * scene.stripes * (u + 0.5 * v) + scene.stripe_speed * t)
    image *= (0.85 + 0.15 * stripes)[..., None]
    cx = width * (0.5 + 0.35 * np.sin(scene.orbit[0] * t))
    cy = height * (0.5 + 0.35 * np.sin(scene.orbit[1] * t + 1.0))
    inside = (x - cx) ** 2 + (y - cy) ** 2 <= (scene.radius * height) ** 2
    image[inside] = _rgb(hue + 0.5, 0.9, light)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def write_video(path: Path, frames, fps: int = 30, crf: int = 20, metadata: dict[str, str] | None = None) -> Path:
    """Encode RGB frames (an iterable of (H, W, 3) uint8) to H.264 in an MP4/MKV container, with `metadata`
    as container tags (e.g. {"creation_time": "2024-01-01T12:00:00Z"})."""
    path = Path(path)
    with atomic_write(path, suffix=path.suffix) as tmp, av.open(str(tmp), mode="w") as container:
        container.metadata.update(metadata or {})
        stream = None
        for image in frames:
            if stream is None:
                stream = container.add_stream("libx264", rate=fps)
                stream.height, stream.width = image.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf), "preset": "veryfast"}
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        if stream is not None:
            container.mux(stream.encode(None))
    return path


def synthesize_video(
    path: Path,
    seed: int,
    seconds: float = 8.0,
    fps: int = 30,
    width: int = 320,
    height: int = 240,
    metadata: dict[str, str] | None = None,
) -> Path:
    scene = Scene.from_seed(seed)
    count = round(seconds * fps)
    frames = (render_frame(scene, i / fps, width, height) for i in range(count))
    return write_video(path, frames, fps, metadata=metadata)


def generate_demo_library(folder: Path, count: int = 6, seconds: float = 8.0) -> list[Path]:
    """`count` distinct videos in `folder` (skips files that already exist)."""
    paths = []
    for seed in range(count):
        path = Path(folder) / f"scene_{seed:02d}.mp4"
        if not path.exists():
            synthesize_video(path, seed=seed, seconds=seconds)
        paths.append(path)
    return paths


def cut_segment(source: Path, target: Path, start: float, end: float) -> Path:
    """Re-encode the frames of `source` shown in [start, end) seconds into a new file."""
    with av.open(str(source)) as container:
        stream = container.streams.best("video")
        fps = round(float(stream.average_rate or 30))
        frames = [
            f.to_ndarray(format="rgb24")
            for f in container.decode(stream)
            if f.time is not None and start <= f.time < end
        ]
    if not frames:
        raise ValueError(f"{source} has no frames between {start} s and {end} s")
    return write_video(target, frames, fps)
