"""The runtime table: each tower per runtime and precision on this machine, with its fidelity.

    .venv/bin/python bench/runtime_table.py [--repeats 5] [--towers vit-s vit-b clip]

Rows: VideoMAE v2 ViT-S and ViT-B, ms per 16x224² clip (batch 1); the open_clip ViT-B-32-256 image
tower, ms per batch of 4 frames (one clip's `frames_per_clip`); its text tower, ms per query (batch 1).
Runtimes: PyTorch fp32 (the reference), PyTorch bf16 (what Tubelet ran before: bf16 weights), OpenVINO
fp32 and OpenVINO bf16 (INFERENCE_PRECISION_HINT), and ONNX Runtime fp32 when it is installed
(bench/onnx_towers.py: the same modules exported to ONNX; not a Tubelet dependency). Random weights of
the real sizes (speed does not depend on them). Every runtime of a tower is timed round-robin in the same
process, so a load change hits them alike; "cosine" is the worst row's cosine to PyTorch fp32 on the timed inputs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import onnx_towers  # noqa: E402
from machine import describe_machine  # noqa: E402

from encoder.factory import resolve_video_encoder  # noqa: E402
from encoder.image_text import resolve_image_text_tower  # noqa: E402
from encoder.openvino_runtime import row_cosines  # noqa: E402

RUNTIMES = (("torch", "fp32"), ("torch", "bf16"), ("openvino", "fp32"), ("openvino", "bf16"))
TEXT = ["a person in a red coat crossing the corridor"]


def round_robin(calls: dict[str, callable], repeats: int) -> dict[str, float]:
    """Median ms of each call, the calls interleaved round by round after one warm-up each."""
    for call in calls.values():
        call()
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def table(title: str, unit: str, loaded: dict, run, repeats: int) -> None:
    outputs = {name: run(tower) for name, tower in loaded.items()}
    reference = outputs["torch fp32"]
    ms = round_robin({name: (lambda tower=tower: run(tower)) for name, tower in loaded.items()}, repeats)
    for name, tower in loaded.items():
        cosine = row_cosines(reference, outputs[name]).min()
        print(
            f"| {title} | {name} ({tower.runtime.describe()}) | {ms[name]:.0f} {unit} | "
            f"{ms['torch fp32'] / ms[name]:.2f} | {cosine:.6f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--towers", nargs="+", default=["vit-s", "vit-b", "clip"])
    args = parser.parse_args()
    print(describe_machine(), flush=True)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    if not onnx_towers.available():
        print("ONNX Runtime not installed (pip install onnxruntime onnx onnxscript): its rows are left out")
    rng = np.random.default_rng(0)
    print("| tower | runtime | median | × torch fp32 | cosine to torch fp32 |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "runtime"
        for variant in [t for t in args.towers if t.startswith("vit-")]:
            spec = resolve_video_encoder(variant, "random", Path(tmp))
            clips = rng.integers(0, 256, (1, 16, 224, 224, 3), dtype=np.uint8)
            loaded = {f"{b} {p}": spec.load("cpu", p, b, cache) for b, p in RUNTIMES}
            if onnx_towers.available():
                loaded["onnxruntime fp32"] = onnx_towers.video_encoder(spec, clips, Path(tmp))
            table(f"VideoMAE v2 {variant}", "ms/clip", loaded, lambda t, clips=clips: t.embed(clips), args.repeats)
        if "clip" in args.towers:
            spec = resolve_image_text_tower("ViT-B-32-256", "random", Path(tmp))
            frames = rng.integers(0, 256, (4, spec.size, spec.size, 3), dtype=np.uint8)
            loaded = {f"{b} {p}": spec.load("cpu", p, b, cache) for b, p in RUNTIMES}
            if onnx_towers.available():
                loaded["onnxruntime fp32"] = onnx_towers.image_text_tower(spec, len(frames), TEXT, Path(tmp))
            table("CLIP ViT-B-32-256 image", "ms/4 frames", loaded, lambda t: t.encode_images(frames), args.repeats)
            table("CLIP ViT-B-32-256 text", "ms/query", loaded, lambda t: t.encode_text(TEXT), args.repeats * 4)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


if __name__ == "__main__":
    main()
