"""Can the encoder learn the motion classes at all, in a CPU budget, when it is GIVEN the answer?

    .venv/bin/python bench/arrow_probe.py --encoder vit-tiny --lr 1e-3 --minutes 5
    .venv/bin/python bench/arrow_probe.py --encoder vit-tiny --task paired --minutes 5

An upper bound for the self-supervised screens (bench/pretrain_research.py): the encoder and a linear head
are trained with labels from the same random init, on random 16-frame windows taken every 4th frame (as
indexing samples) of three quarters of the motion library's videos (`bench/motion_library.py`), and scored
on the windows `index` cuts from the held-out quarter (other videos: appearance cannot be memorised).
`--task class`: the eight motion classes (chance 1/8). `--task paired`: forward vs reversed within the
three families played both ways (right/left, rotate cw/ccw, put on/take off; chance 1/2), which is what
the forward-vs-reversed k-NN figure asks of the embedding.

(An earlier version asked "is this window played backwards?" of EVERY video, flipping windows at random.
That task is ill-posed here: `left` is `right` played backwards, so a flipped `left` window is a forward
`right` window labelled "backwards"; only `right_fast` (1/8 of the videos) could be learned, which caps
accuracy near 0.56, and it measured 0.547-0.578.)
`--head pooled` reads the embedding search uses (fc_norm of the token mean); `--head per-time` reads the
token mean of each time slice, concatenated (the order of the slices kept).
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

from encoder.contrastive import appearance_jitter, random_crop  # noqa: E402
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


def targets(names: list[str], labels: dict, task: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Per video: the label index, whether it takes part in the task, and the number of labels."""
    if task == "class":
        classes = sorted({labels[n]["class"] for n in names})
        return np.array([classes.index(labels[n]["class"]) for n in names]), np.ones(len(names), bool), len(classes)
    used = np.array([bool(labels[n]["family"]) for n in names])
    return np.array([int(labels[n]["reversed"]) for n in names]), used, 2


@torch.no_grad()
def held_out_accuracy(model, head, videos, y, held, args) -> float:
    model.eval()
    right = 0
    for start in (0, SPAN):  # the two windows `index` cuts from a 128-frame video
        for chunk in torch.from_numpy(held).split(64):
            clips = windows(videos, chunk, torch.full_like(chunk, start))
            right += int((head(features(model, clips, args.head)).argmax(1) == torch.from_numpy(y)[chunk]).sum())
    model.train()
    return right / (2 * len(held))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--library", type=Path, default=ROOT / "bench" / "out" / "motion")
    p.add_argument("--encoder", default="vit-tiny")
    p.add_argument("--task", default="class", choices=["class", "paired"])
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--minutes", type=float, default=5.0, help="this process's CPU minutes")
    p.add_argument("--head", default="pooled", choices=["pooled", "per-time"])
    p.add_argument("--patch", type=int, default=None, help="override the variant's patch side (pixels)")
    p.add_argument("--augment", action="store_true", help="training windows get a random crop and colour change")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(describe_machine(), f"| load average {os.getloadavg()} | {vars(args)}", flush=True)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    labels = make_library(args.library)
    frames, names = decode_library(args.library, labels)
    videos = torch.from_numpy(frames)
    y, used, n_labels = targets(names, labels, args.task)
    order = np.random.default_rng(args.seed).permutation(np.flatnonzero(used))
    held, train = np.sort(order[: len(order) // 4]), np.sort(order[len(order) // 4 :])
    overrides = {"patch_size": args.patch} if args.patch else {}
    model = VideoMAE2Pretrain(pretrain_config(args.encoder, **overrides)).init_random_(args.seed).train()
    zero = torch.zeros(1, dtype=torch.long)
    head = torch.nn.Linear(features(model, windows(videos, zero, zero), args.head).shape[1], n_labels)
    params = [*model.encoder.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.95), weight_decay=0.05)
    gen = torch.Generator().manual_seed(args.seed)
    print(
        f"{len(train)} training videos, {len(held)} held out; at init held-out accuracy "
        f"{held_out_accuracy(model, head, videos, y, held, args):.3f}",
        flush=True,
    )
    started, step, hits = time.process_time(), 0, []
    train_t, y_t = torch.from_numpy(train), torch.from_numpy(y)
    while time.process_time() - started < args.minutes * 60:
        video = train_t[torch.randint(0, len(train_t), (BATCH,), generator=gen)]
        start = torch.randint(0, videos.shape[1] - SPAN + INTERVAL, (BATCH,), generator=gen)
        clips = windows(videos, video, start)
        if args.augment:
            clips = appearance_jitter(random_crop(clips, gen), gen)
        logits = head(features(model, clips, args.head))
        loss = F.cross_entropy(logits, y_t[video])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        hits.append((logits.argmax(1) == y_t[video]).float().mean().item())
        if step % 500 == 0:
            print(
                f"step {step}  cpu {time.process_time() - started:.0f} s  training accuracy "
                f"{np.mean(hits[-500:]):.3f}  held out {held_out_accuracy(model, head, videos, y, held, args):.3f}",
                flush=True,
            )
    result = {
        "steps": step,
        "train_accuracy_last_500": round(float(np.mean(hits[-500:])), 3) if hits else None,
        "held_out_accuracy": round(held_out_accuracy(model, head, videos, y, held, args), 3),
        "args": vars(args),
    }
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
