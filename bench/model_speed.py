"""The encoder alone: Tubelet's VideoMAE v2 ViT-S against transformers' VideoMAEModel of the same
sizes, per clip, in the same run (no decoding, no preprocessing).

    .venv/bin/python bench/model_speed.py

Separates what the model costs on this CPU from what the pipeline around it costs: where the
two models take the same time, an end-to-end speed-up over the Hugging Face-docs peer can only
come from the frame path and from a faster precision (bench/hf_peer.py). Random weights (speed
does not depend on them); our encoder is timed on uint8 clips at its input size (its own fast
path, normalisation included), the peer on float pixel values it was handed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from machine import describe_machine  # noqa: E402
from preprocess_costs import median_ms  # noqa: E402

from encoder.factory import resolve_video_encoder  # noqa: E402


def sgemm_gflops(n: int = 2048, repeats: int = 10) -> float:
    """What this CPU's fp32 matmul reaches: the ceiling for a model that is mostly matmuls."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / (median_ms(lambda: a @ b, 1, repeats) / 1e3) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "auto"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(describe_machine(), flush=True)
    print(f"fp32 matmul 2048x2048: {sgemm_gflops():.0f} GFLOP/s", flush=True)
    from transformers import VideoMAEConfig, VideoMAEModel

    peer = VideoMAEModel(
        VideoMAEConfig(
            hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536, use_mean_pooling=True
        )
    ).eval()
    with tempfile.TemporaryDirectory() as tmp:
        spec = resolve_video_encoder("vit-s", "random", Path(tmp), None, None)
        ours = {p: spec.load("cpu", p) for p in args.precisions}
    rng = np.random.default_rng(0)
    print("| batch | model | precision | ms per clip | × peer |")
    print("|---|---|---|---|---|")
    for batch in args.batch_sizes:
        pixels = torch.randn(batch, 16, 3, 224, 224)
        with torch.no_grad():
            theirs = median_ms(lambda pixels=pixels: peer(pixel_values=pixels), batch, args.repeats)
        print(f"| {batch} | transformers VideoMAEModel (peer) | fp32 | {theirs:.0f} | 1.00 |", flush=True)
        clips = rng.integers(0, 255, (batch, 16, 224, 224, 3), dtype=np.uint8)
        for precision, encoder in ours.items():
            mine = median_ms(lambda encoder=encoder, clips=clips: encoder.embed(clips), batch, args.repeats)
            print(
                f"| {batch} | Tubelet VideoMAE v2 ViT-S | {precision} ({encoder.runtime.describe()}) | "
                f"{mine:.0f} | {theirs / mine:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
