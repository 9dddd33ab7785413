"""What decoding costs in wall and CPU seconds, by FFmpeg threading, and what a change signature costs.

    .venv/bin/python bench/decode_costs.py                 # 10 minutes of the fixed-camera video + ../shared/videos
    .venv/bin/python bench/decode_costs.py --minutes 2 --rounds 1

1. `ClipDecoder` with the change detector (what a skipping index run's decode thread does) over the first
   `--minutes` of the 720p fixed-camera hour (bench/fixed_camera.py makes it, cached), then every window of
   ../shared/videos (no detector), once per threading: FFmpeg's AUTO (frame threads, what decoding beside
   towers on a GPU uses), SLICE (slice threads only, what it uses beside towers on the CPU) and NONE (one
   thread). Rounds alternate the threadings; each row is the median wall and process CPU seconds.
2. A sampled frame's change signature (indexer/grey_cells.py) against how it was made before: FFmpeg
   scaling the frame to a small grey image (area), then cell means. Milliseconds a frame, median of rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from fixed_camera import make_video  # noqa: E402
from machine import describe_machine  # noqa: E402

from indexer.change import DEFAULT_THRESHOLD, ChangeDetector, cells_per_side  # noqa: E402
from indexer.decode import SHARED_CORES, SPARE_CORES, ClipDecoder, ProbeError, probe  # noqa: E402
from indexer.grey_cells import GreyCells  # noqa: E402
from indexer.records import ClipSampling  # noqa: E402

THREADINGS = (SPARE_CORES, SHARED_CORES, "NONE")
SIZE = 256  # the largest tower input of ViT-S + CLIP ViT-B-32-256


def decode_seconds(paths: list[Path], threading: str, change: bool, end: float | None) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for path in paths:
        try:
            info = probe(path)
        except ProbeError:
            continue  # ../shared/videos holds broken files on purpose
        detector = ChangeDetector(DEFAULT_THRESHOLD) if change else None
        decoder = ClipDecoder(path, info, ClipSampling(), SIZE, (0, end), change=detector, threading=threading)
        for _ in decoder.clips():
            pass
    return time.perf_counter() - wall, time.process_time() - cpu


def threading_rows(name: str, paths: list[Path], change: bool, end: float | None, rounds: int) -> None:
    runs: dict[str, list[tuple[float, float]]] = {t: [] for t in THREADINGS}
    for _ in range(rounds):
        for threading in THREADINGS:
            runs[threading].append(decode_seconds(paths, threading, change, end))
    print(f"\n{name}\n\n| threading | wall s | CPU s |\n|---|---|---|")
    for threading, times in runs.items():
        wall = statistics.median(w for w, _ in times)
        cpu = statistics.median(c for _, c in times)
        print(f"| {threading} | {wall:.2f} | {cpu:.2f} |", flush=True)


def scaled_grey_cells(frame, reformatter: VideoReformatter, n: int) -> np.ndarray:
    """The signature as it was made before: FFmpeg scales the frame to 8 px a cell, grey; cell means."""
    scale = 8 * n / min(frame.width, frame.height)
    width, height = max(8 * n, round(frame.width * scale)), max(8 * n, round(frame.height * scale))
    grey = reformatter.reformat(frame, width=width, height=height, format="gray", interpolation="AREA").to_ndarray()
    side = min(grey.shape)
    top, left = (grey.shape[0] - side) // 2, (grey.shape[1] - side) // 2
    cell = side // n
    square = grey[top : top + cell * n, left : left + cell * n]
    return square.reshape(n, cell, n, cell).mean(axis=(1, 3), dtype=np.float32)


def signature_rows(path: Path, rounds: int) -> None:
    with av.open(str(path)) as container:
        frames = [frame for _, frame in zip(range(300), container.decode(video=0))]
    print(f"\nchange signature of one {frames[0].width}x{frames[0].height} frame ({len(frames)} frames)\n")
    print("| signature | ms a frame |\n|---|---|")
    cells, reformatter, n = GreyCells(SIZE), VideoReformatter(), cells_per_side(SIZE)
    for name, make in (
        ("FFmpeg grey image, then cell means (before)", lambda f: scaled_grey_cells(f, reformatter, n)),
        ("luma plane samples (GreyCells)", cells),
    ):
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            for frame in frames:
                make(frame)
            times.append((time.perf_counter() - started) / len(frames) * 1000)
        print(f"| {name} | {statistics.median(times):.3f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="of the fixed-camera hour to decode")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/tubelet-bench"))
    args = parser.parse_args()
    print(describe_machine(), flush=True)
    camera = make_video(args.cache / "fixed_camera_60m_10fps" / "camera.mp4", 60, 10)
    label = f"fixed camera, first {args.minutes:g} min (720p H.264, 10 fps), with the change detector"
    threading_rows(label, [camera], True, args.minutes * 60, args.rounds)
    shared = sorted(p for p in (ROOT.parent / "shared" / "videos").iterdir() if p.suffix != ".md")
    threading_rows(f"../shared/videos ({len(shared)} files), every window", shared, False, None, args.rounds)
    signature_rows(camera, args.rounds)


if __name__ == "__main__":
    main()
