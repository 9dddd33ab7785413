"""What the frame path costs, step by step, against the way it was done before (same run).

    .venv/bin/python bench/preprocess_costs.py

1. FFmpeg conversion of a decoded frame to the model's input: `frame.reformat` (a new scaler per
   call) against one `VideoReformatter` kept for the stream.
2. A second tower size: resizing the 256 px squares to 224 in torch (antialiased bilinear, as the
   encoders do for a size they were not given) against a second FFmpeg conversion from the source.
3. VideoMAE v2 ViT-S tubelet embedding: the official Conv3d against the same kernel as one matmul.
4. Normalising uint8 clips then embedding, against the raw-pixel embedding with the
   normalisation folded in.
Each row: milliseconds per unit, median of repeats, and the ratio old / new.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from footage import long_video  # noqa: E402
from machine import describe_machine  # noqa: E402

from encoder.preprocess import IMAGENET_MEAN, IMAGENET_STD, normalize_clips  # noqa: E402
from encoder.videomae2 import VideoMAE2, variant_config  # noqa: E402
from indexer.decode import convert_frame  # noqa: E402


def median_ms(fn, units: int, repeats: int = 5) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000 / units)
    return statistics.median(times)


def frames_of(path: Path, count: int) -> list:
    with av.open(str(path)) as container:
        return [frame for _, frame in zip(range(count), container.decode(video=0))]


def row(what: str, unit: str, old_ms: float, new_ms: float) -> None:
    print(f"| {what} | {unit} | {old_ms:.2f} | {new_ms:.2f} | {old_ms / new_ms:.1f} |")


def conversions(frames: list, label: str) -> None:
    one_per_call = median_ms(lambda: [convert_frame(f, 224) for f in frames], len(frames))  # fresh scaler
    kept = VideoReformatter()
    reused = median_ms(lambda: [convert_frame(f, 224, kept) for f in frames], len(frames))
    row(f"{label} frame -> 224 px RGB: new scaler per frame / one per stream", "frame", one_per_call, reused)

    squares = np.stack([convert_frame(f, 256, kept)[:256, :256] for f in frames[:16]])[None]  # (1, 16, 256, 256, 3)
    in_torch = median_ms(lambda: normalize_clips(squares, 224, IMAGENET_MEAN, IMAGENET_STD), 16)
    second = VideoReformatter()
    from_source = median_ms(lambda: [convert_frame(f, 224, second) for f in frames[:16]], 16)
    row(f"{label} second size 224 px: torch resize of 256 px / FFmpeg from source", "frame", in_torch, from_source)


@torch.inference_mode()
def embeddings() -> None:
    model = VideoMAE2(variant_config("vit-s")).init_random_(0).eval().to(torch.bfloat16)
    clips = np.random.default_rng(0).integers(0, 256, (4, 16, 224, 224, 3), dtype=np.uint8)
    x = normalize_clips(clips, 224, IMAGENET_MEAN, IMAGENET_STD).to(torch.bfloat16)
    proj = model.patch_embed.proj
    conv = median_ms(lambda: proj(x).flatten(2).transpose(1, 2), 4)
    matmul = median_ms(lambda: model.patch_embed(x), 4)
    row("ViT-S tubelet embedding, bf16: Conv3d / matmul", "clip", conv, matmul)

    raw = model.patch_embed.for_raw_pixels(IMAGENET_MEAN, IMAGENET_STD)
    normalising = median_ms(
        lambda: model.patch_embed(normalize_clips(clips, 224, IMAGENET_MEAN, IMAGENET_STD).to(torch.bfloat16)), 4
    )
    folded = median_ms(lambda: raw(torch.from_numpy(clips).permute(0, 4, 1, 2, 3).to(torch.bfloat16)), 4)
    row("uint8 clip to tokens: normalise + embed / folded raw-pixel embed", "clip", normalising, folded)


def main() -> None:
    print(describe_machine(), flush=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, PyAV {av.__version__}")
    print("| step | per | old ms | new ms | old / new |\n|---|---|---|---|---|")
    conversions(frames_of(long_video(1, 1280, 720), 64), "720p")
    conversions(frames_of(ROOT.parent / "shared" / "videos" / "askanything_yoga.mp4", 64), "568x320")
    embeddings()


if __name__ == "__main__":
    main()
