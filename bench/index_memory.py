"""Peak memory while indexing one long 1080p video, for two lengths: it must not grow with length.

    .venv/bin/python bench/index_memory.py --minutes 10 60

Each run is a fresh `run.py index` process (default encoders: VideoMAE v2 ViT-S + image-text
CLIP ViT-B-32-256, random weights of the real sizes) measuring its own peak RSS (`ru_maxrss`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from footage import long_video  # noqa: E402
from machine import describe_machine  # noqa: E402

MEASURE = (
    "import resource, runpy, sys; sys.argv = ['run.py', *sys.argv[1:]]\n"
    "try:\n    runpy.run_path('run.py', run_name='__main__')\n"
    "except SystemExit:\n    pass\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)"
)


def peak_rss_mb(video: Path, weights_from: Path | None, data: Path) -> tuple[float, float]:
    lib = data.parent / f"lib-{data.name}"
    lib.mkdir()
    (lib / video.name).symlink_to(video)
    if weights_from is not None:
        data.mkdir()
        (data / "weights").symlink_to(weights_from)
    start = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            MEASURE,
            "index",
            "--data",
            str(data),
            str(lib),
            "--weights",
            "random",
            "--image-text-weights",
            "random",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    if done.returncode:
        raise RuntimeError(done.stderr)
    return float(done.stderr.strip().splitlines()[-1]), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, nargs="+", default=[10, 60])
    parser.add_argument("--height", type=int, default=1080)
    args = parser.parse_args()
    print(describe_machine(), flush=True)
    width = args.height * 16 // 9
    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "warm"
        peak_rss_mb(long_video(1, width, args.height), None, warm)  # writes the random weights once
        print("| video | peak RSS MiB | wall s |\n|---|---|---|")
        for minutes in args.minutes:
            video = long_video(minutes, width, args.height)
            rss, wall = peak_rss_mb(video, warm / "weights", Path(tmp) / f"data{minutes}")
            print(f"| {minutes} min {width}x{args.height} | {rss:.0f} | {wall:.0f} |", flush=True)


if __name__ == "__main__":
    main()
