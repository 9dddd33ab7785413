"""Training throughput (clips/s) and peak memory of Tubelet's pretraining step vs transformers'
`VideoMAEForPreTraining`, same config, masks and batch.

    .venv/bin/python bench/pretrain_throughput.py --variant vit-tiny --batch 16 --steps 20 --rounds 3
    .venv/bin/python bench/pretrain_throughput.py --variant vit-s --batch 2 --steps 3 --rounds 2

One command; the two implementations alternate round by round (ours, theirs, ours, ...), each round in a
fresh child process so that its peak resident memory (ru_maxrss minus the RSS after building the model and
optimizer) belongs to that implementation alone. A step = forward, loss, backward and an AdamW update, in
fp32, on the same random clips. Masks: tube at --mask-ratio, and the decoder predicts every hidden token
(decoder mask ratio 0), because transformers has no decoder masking; `--decoder-mask-ratio 0.5` also times
our dual-masking step (it decodes half the tokens: what VideoMAE v2 saves).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def build(impl: str, variant: str):
    """(model, step function taking (clips_01, hidden, decoded) -> loss) for `impl`."""
    import torch

    from encoder.pretrain_step import pretrain_loss
    from encoder.videomae2_pretrain import pretrain_config

    cfg = pretrain_config(variant)
    if impl == "tubelet":
        from encoder.videomae2_pretrain import VideoMAE2Pretrain

        model = VideoMAE2Pretrain(cfg).init_random_(0)
        return model, cfg, lambda clips, hidden, decoded: pretrain_loss(model, clips, hidden, decoded)
    from hf_reference import hf_pretraining_model  # tests/: the same transformers model the parity tests use

    hf = hf_pretraining_model(cfg).train()
    mean = torch.tensor(cfg.mean).view(1, 3, 1, 1, 1)
    std = torch.tensor(cfg.std).view(1, 3, 1, 1, 1)

    def step(clips, hidden, decoded):  # transformers takes (B, T, C, H, W), normalised
        pixels = ((clips - mean) / std).permute(0, 2, 1, 3, 4)
        return hf(pixel_values=pixels, bool_masked_pos=hidden).loss

    return hf, cfg, step


def child(args) -> dict:
    import torch

    from encoder.masking import MaskSpec, make_masks

    torch.set_num_threads(args.threads)
    model, cfg, loss_of = build(args.child, args.variant)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05)
    e = cfg.encoder
    generator = torch.Generator().manual_seed(0)
    clips = torch.rand(args.batch, 3, e.num_frames, e.img_size, e.img_size, generator=generator)
    spec = MaskSpec("tube", args.mask_ratio, args.decoder_mask_ratio)
    hidden, decoded = make_masks(spec, cfg.grid, args.batch, generator)
    base = rss_kib()

    def one_step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_of(clips, hidden, decoded)
        loss.backward()
        optimizer.step()
        return float(loss)

    one_step()  # warm-up: allocator, AdamW state
    began = time.perf_counter()
    for _ in range(args.steps):
        loss = one_step()
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"clips_per_s": args.steps * args.batch / seconds, "peak_mib": (peak - base) / 1024, "loss": loss}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variant", default="vit-tiny")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--mask-ratio", type=float, default=0.9)
    p.add_argument("--decoder-mask-ratio", type=float, default=0.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", choices=["tubelet", "transformers"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0

    from machine import describe_machine

    print(describe_machine(), flush=True)
    print(f"load average at start: {os.getloadavg()}  args: {vars(args)}", flush=True)
    results: dict[str, list[dict]] = {"tubelet": [], "transformers": []}
    for _ in range(args.rounds):
        for impl in results:
            done = subprocess.run(
                [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--child", impl],
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(done.stdout.strip().splitlines()[-1])
            results[impl].append(row)
            print(f"{impl:<13} {row['clips_per_s']:8.2f} clips/s  peak +{row['peak_mib']:7.1f} MiB", flush=True)
    ours, theirs = (statistics.median(r["clips_per_s"] for r in results[k]) for k in results)
    mem = {k: statistics.median(r["peak_mib"] for r in v) for k, v in results.items()}
    print(
        f"median: tubelet {ours:.2f} clips/s, transformers {theirs:.2f} clips/s, ratio {ours / theirs:.2f}x; "
        f"peak +{mem['tubelet']:.0f} vs +{mem['transformers']:.0f} MiB; load at end {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
