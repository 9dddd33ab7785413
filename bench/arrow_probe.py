"""Can the encoder learn the arrow of time at all, in a CPU budget, when it is GIVEN the answer?

    .venv/bin/python bench/arrow_probe.py --encoder vit-tiny --lr 1e-3 --minutes 5
    .venv/bin/python bench/arrow_probe.py --encoder vit-tiny --lr 1e-3 --minutes 2.5 --head per-time

An upper bound for the self-supervised screens (bench/pretrain_research.py): the encoder and a linear head
are trained with labels to tell a clip window of the motion library (`bench/motion_library.py`, random
16-frame windows taken every 4th frame, as indexing samples) from the same window played backwards, with
AdamW from the pretraining model's random init. If this does not rise above chance (0.5) within the
budget, no objective that has to discover the arrow of time by itself will make the forward-vs-reversed
k-NN figure rise in it either. `--head pooled` reads the embedding search uses (fc_norm of the token mean);
`--head per-time` reads the token mean of each time slice, concatenated (the order of the slices kept).
Prints the training accuracy of the last 500 steps every 500 steps, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from machine import describe_machine  # noqa: E402
from motion_library import make_library  # noqa: E402
from pretrain_research import INTERVAL, SPAN, decode_library, windows  # noqa: E402

from encoder.pretrain_step import normalize_input  # noqa: E402
from encoder.videomae2_pretrain import VideoMAE2Pretrain, pretrain_config  # noqa: E402

BATCH = 16


def features(model: VideoMAE2Pretrain, clips_01: torch.Tensor, head: str) -> torch.Tensor:
    enc = model.encoder
    x = normalize_input(clips_01, model.cfg)
    if head == "pooled":
        return enc.forward_features(x)  # (B, D)
    tokens = enc.forward_blocks(enc.embed(x))  # (B, T' * H' * W', D), time-major
    t_slices = model.cfg.encoder.num_frames // model.cfg.encoder.tubelet_size
    return tokens.view(len(x), t_slices, -1, tokens.shape[-1]).mean(2).flatten(1)  # (B, T' * D)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--library", type=Path, default=ROOT / "bench" / "out" / "motion")
    p.add_argument("--encoder", default="vit-tiny")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--minutes", type=float, default=5.0, help="this process's CPU minutes")
    p.add_argument("--head", default="pooled", choices=["pooled", "per-time"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(describe_machine(), f"| load average {os.getloadavg()} | {vars(args)}", flush=True)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    videos = torch.from_numpy(decode_library(args.library, make_library(args.library))[0])
    model = VideoMAE2Pretrain(pretrain_config(args.encoder)).init_random_(args.seed).train()
    width = features(
        model, windows(videos, torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long)), args.head
    )
    head = torch.nn.Linear(width.shape[1], 1)
    params = [*model.encoder.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.95), weight_decay=0.05)
    gen = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():  # how far apart the search embedding puts a clip and its reversal, before training
        spread = torch.arange(len(videos))[:: max(1, len(videos) // BATCH)][:BATCH]  # one window of 16 videos
        first = windows(videos, spread, torch.zeros_like(spread))
        pooled = model.encoder.forward_features(normalize_input(torch.cat([first, first.flip(2)]), model.cfg))
        cos = F.cosine_similarity(pooled[: len(first)], pooled[len(first) :])
        print(f"at init, cosine(clip, reversed clip) of the pooled embedding: {cos.min():.4f} - {cos.max():.4f}")
    started, step, hits = time.process_time(), 0, []
    while time.process_time() - started < args.minutes * 60:
        video = torch.randint(0, len(videos), (BATCH,), generator=gen)
        start = torch.randint(0, videos.shape[1] - SPAN + INTERVAL, (BATCH,), generator=gen)
        backwards = torch.rand(BATCH, generator=gen) < 0.5
        clips = windows(videos, video, start)
        clips = torch.where(backwards.view(BATCH, 1, 1, 1, 1), clips.flip(2), clips)
        logit = head(features(model, clips, args.head))[:, 0]
        loss = F.binary_cross_entropy_with_logits(logit, backwards.float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        hits.append(((logit > 0) == backwards).float().mean().item())
        if step % 500 == 0:
            print(
                f"step {step}  cpu {time.process_time() - started:.0f} s  accuracy {np.mean(hits[-500:]):.3f}",
                flush=True,
            )
    accuracy = round(float(np.mean(hits[-500:])), 3) if hits else None
    result = {"steps": step, "accuracy_last_500": accuracy, "args": vars(args)}
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
