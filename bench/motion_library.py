"""A generated motion library with ground truth: the class of a video is its MOTION, nothing else.

    .venv/bin/python bench/motion_library.py bench/out/motion --per-class 24

Eight classes, chance 1/8:

    right, left, right_fast, rotate_cw, rotate_ccw, oscillate, put_on, take_off

`left`, `rotate_ccw` and `take_off` are the REVERSED playback of the generators of `right`, `rotate_cw` and
`put_on` (the seeds' "cup put on / taken off the table" probe: the same scene forward or backward), so a
model that ignores the arrow of time cannot tell those pairs apart. Every motion is periodic, so any clip
window of a video shows its class. Appearance is drawn per video from the seed: background (two colours,
gradient angle, blotch texture), the object's shape, size, colour and stripe texture, its position and
phase, three static distractor blobs, and a +-25 % speed jitter; so no single frame tells the class.

Files: `<class>_<nnn>.mp4` (libx264, 64x64 px, 30 fps, 128 frames = two 16x4-frame clip windows) and
`labels.json` beside them ({file: {"class", "family", "reversed"}}). Seeded: the same arguments make the
same files.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.demo import write_video  # noqa: E402
from indexer.atomic import atomic_write  # noqa: E402

SIZE = 64  # frame side in pixels: vit-tiny's input size, so indexing does not resize
FPS = 30
FRAMES = 128  # two clip windows of 16 frames taken every 4th frame

# class -> (generator, played reversed); a reversed class shares its forward class's generator
CLASSES: dict[str, tuple[str, bool]] = {
    "right": ("translate", False),
    "left": ("translate", True),
    "right_fast": ("translate_fast", False),
    "rotate_cw": ("rotate", False),
    "rotate_ccw": ("rotate", True),
    "oscillate": ("oscillate", False),
    "put_on": ("put_on", False),
    "take_off": ("put_on", True),
}


@dataclass(frozen=True)
class Look:
    """Everything about a video that is not its motion, drawn per video."""

    background: np.ndarray  # (SIZE, SIZE, 3) float 0..1, static
    colour: np.ndarray  # (3,) object colour
    stripes: float  # object stripe frequency, cycles per object size
    stripe_angle: float  # radians
    shape: str  # disc | square | triangle | bar
    radius: float  # object half-size in pixels
    anchor: tuple[float, float]  # (x, y) rest position in pixels
    phase: float  # 0..1, where in its cycle the motion starts
    speed: float  # multiplier, 0.75..1.25


def random_look(rng: np.random.Generator, shape: str) -> Look:
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    c0, c1 = rng.uniform(0.05, 0.95, 3), rng.uniform(0.05, 0.95, 3)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * x + np.sin(angle) * y)[..., None]
    ramp = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-6)
    background = (1 - ramp) * c0 + ramp * c1
    fx, fy, ph = rng.uniform(1, 5), rng.uniform(1, 5), rng.uniform(0, 2 * np.pi)
    background *= (0.85 + 0.15 * np.sin(2 * np.pi * (fx * x + fy * y) + ph))[..., None]
    for _ in range(3):  # static distractors: they never move, so they carry no class
        bx, by, br = [*rng.uniform(0, SIZE, 2).tolist(), rng.uniform(3, 8)]
        blob = (x * SIZE - bx) ** 2 + (y * SIZE - by) ** 2 <= br**2
        background[blob] = rng.uniform(0, 1, 3)
    return Look(
        background=background.astype(np.float32),
        colour=rng.uniform(0, 1, 3).astype(np.float32),
        stripes=float(rng.uniform(0.5, 2.5)),
        stripe_angle=float(rng.uniform(0, np.pi)),
        shape=shape,
        radius=float(rng.uniform(6, 11)),
        anchor=(float(rng.uniform(12, SIZE - 12)), float(rng.uniform(14, SIZE - 14))),
        phase=float(rng.uniform(0, 1)),
        speed=float(rng.uniform(0.75, 1.25)),
    )


def _object_mask(look: Look, cx: float, cy: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixels covered by the object centred at (cx, cy) turned by `angle`, and its texture there."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    dx, dy = x - cx, y - cy
    u = np.cos(angle) * dx + np.sin(angle) * dy  # object frame
    v = -np.sin(angle) * dx + np.cos(angle) * dy
    r = look.radius
    if look.shape == "disc":
        inside = u**2 + v**2 <= r**2
    elif look.shape == "square":
        inside = (np.abs(u) <= r * 0.85) & (np.abs(v) <= r * 0.85)
    elif look.shape == "triangle":
        inside = (v >= -r * 0.6) & (v <= r * 0.9) & (np.abs(u) <= (r * 0.9 - v) * 0.7)
    else:  # bar, with a knob at one end: no symmetry that would hide the rotation sense
        inside = ((np.abs(u) <= r * 1.3) & (np.abs(v) <= r * 0.35)) | ((u - r * 1.1) ** 2 + v**2 <= (r * 0.5) ** 2)
    sa = look.stripe_angle
    texture = 0.7 + 0.3 * np.sin(2 * np.pi * look.stripes * (np.cos(sa) * u + np.sin(sa) * v) / r)
    return inside, texture


def _pose(kind: str, look: Look, t: float) -> tuple[float, float, float, bool]:
    """(cx, cy, angle, visible) of the object at `t` seconds for motion generator `kind`."""
    ax, ay = look.anchor
    s = look.speed
    if kind in ("translate", "translate_fast"):
        px_per_s = (22.0 if kind == "translate" else 66.0) * s
        span = SIZE + 2 * look.radius  # leaves on the right, comes back on the left at once
        cx = (look.phase * span + px_per_s * t) % span - look.radius
        return cx, ay, 0.0, True
    if kind == "rotate":
        return ax, ay, 2 * np.pi * look.phase + 2.4 * s * t, True
    if kind == "oscillate":
        amplitude = 12.0 * s
        centre = float(np.clip(ax, look.radius + amplitude, SIZE - look.radius - amplitude))
        return centre + amplitude * np.sin(2 * np.pi * (look.phase + 1.6 * s * t)), ay, 0.0, True
    if kind == "put_on":
        # one cycle: descend from above the frame and settle (45 %), rest (35 %), gone (20 %)
        period = 1.05 / s
        p = (look.phase + t / period) % 1.0
        rest_y = max(ay, SIZE * 0.55)
        if p < 0.45:
            q = p / 0.45
            ease = 1 - (1 - q) ** 2
            return ax, -2 * look.radius + (rest_y + 2 * look.radius) * ease, 0.0, True
        return ax, rest_y, 0.0, p < 0.80
    raise ValueError(f"unknown motion {kind!r}")


def render(kind: str, look: Look, reversed_: bool) -> list[np.ndarray]:
    frames = []
    for i in range(FRAMES):
        cx, cy, angle, visible = _pose(kind, look, i / FPS)
        image = look.background.copy()
        if visible:
            inside, texture = _object_mask(look, cx, cy, angle)
            image[inside] = look.colour * texture[inside][:, None]
        frames.append((np.clip(image, 0, 1) * 255).astype(np.uint8))
    return frames[::-1] if reversed_ else frames


SHAPES = {"rotate": ("bar", "triangle"), "default": ("disc", "square", "triangle", "bar")}


def make_library(folder: Path, per_class: int = 24, seed: int = 0) -> dict[str, dict]:
    """Write the library into `folder` (existing files are kept) and return its labels."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = {}
    for c, (name, (kind, reversed_)) in enumerate(CLASSES.items()):
        for n in range(per_class):
            rng = np.random.default_rng([seed, c, n])
            shapes = SHAPES.get(kind, SHAPES["default"])
            look = random_look(rng, shapes[int(rng.integers(len(shapes)))])
            path = folder / f"{name}_{n:03d}.mp4"
            if not path.exists():
                write_video(path, render(kind, look, reversed_), FPS, crf=18)
            family = kind if kind in ("translate", "rotate", "put_on") else None
            labels[path.name] = {"class": name, "family": family, "reversed": reversed_}
    with atomic_write(folder / "labels.json", suffix=".json") as tmp:
        tmp.write_text(json.dumps(labels, indent=1))
    return labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--per-class", type=int, default=24, help="videos per class (default 24)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    labels = make_library(args.folder, args.per_class, args.seed)
    print(f"{len(labels)} videos, {len(CLASSES)} classes, in {args.folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
