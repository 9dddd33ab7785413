"""Screening runs for the k-NN research: which objective and settings make pretraining help retrieval.

    .venv/bin/python bench/pretrain_research.py --minutes 3 --objective mae
    .venv/bin/python bench/pretrain_research.py --minutes 3 --objective mae+nce --nce-weight 1

A short loop in one process, for comparing recipes quickly on the shared 2-core machine: the motion library
(`bench/motion_library.py`) is decoded once into memory, training clips are random 16-frame windows (every
4th frame, as indexing samples) with a multi-scale crop and a flip, and the model, masks, reconstruction
loss (encoder/pretrain_step.py) and contrastive term (encoder/contrastive.py) are the product's own. Every
`--eval-every` seconds the encoder embeds the library's clip windows (the two windows `index` makes per
video, the same pooled feature) and prints leave-one-video-out k-NN and forward-vs-reversed accuracy
(`bench/pretrain_knn.score`). This is a screen, not the bar: finalists are measured with
`bench/pretrain_knn.py`, through `run.py pretrain` and `run.py index`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from machine import describe_machine  # noqa: E402
from motion_library import make_library  # noqa: E402
from motion_objective import motion_contrastive_loss  # noqa: E402
from pretrain_knn import OUT, score  # noqa: E402

from encoder.contrastive import (  # noqa: E402
    VIEW_STRENGTH,
    appearance_jitter,
    clip_contrastive_loss,
    info_nce,
    reverse_time,
    two_views,
)
from encoder.masking import MaskSpec, make_masks  # noqa: E402
from encoder.pretrain_step import normalize_input, pretrain_loss  # noqa: E402
from encoder.videomae2_pretrain import VideoMAE2Pretrain, pretrain_config  # noqa: E402

FRAMES, INTERVAL = 16, 4
SPAN = FRAMES * INTERVAL


def decode_library(folder: Path, labels: dict) -> tuple[np.ndarray, list[str]]:
    """uint8 (V, F, H, W, 3) every frame of every video, and the file names."""
    names = sorted(labels)
    cache = folder.parent / f"{folder.name}-frames-{len(names)}.npy"  # beside the library, not in it
    if cache.exists():
        return np.load(cache), names
    videos = []
    for name in names:
        with av.open(str(folder / name)) as container:
            videos.append(np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]))
    np.save(cache, np.stack(videos))
    return np.load(cache), names


def windows(videos: torch.Tensor, video: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """(B,) video and start indices -> float (B, 3, T, H, W) in [0, 1]."""
    index = start[:, None] + INTERVAL * torch.arange(FRAMES)[None, :]
    clips = videos[video[:, None], index]  # (B, T, H, W, 3) uint8
    return clips.permute(0, 4, 1, 2, 3).float() / 255.0


def crop_flip(clips: torch.Tensor, generator: torch.Generator, flip: torch.Tensor) -> torch.Tensor:
    """Multi-scale crop (side 0.66-1 of the frame, anywhere) resized back, then a horizontal flip where `flip`."""
    B, _C, _T, H, W = clips.shape
    out = torch.empty_like(clips)
    for i in range(B):
        side = int(H * (0.66 + 0.34 * torch.rand(1, generator=generator).item()))
        y, x = (torch.randint(0, H - side + 1, (2,), generator=generator)).tolist()
        part = clips[i, :, :, y : y + side, x : x + side].transpose(0, 1)  # (T, C, s, s)
        out[i] = F.interpolate(part, size=(H, W), mode="bilinear", align_corners=False).transpose(0, 1)
    return torch.where(flip.view(B, 1, 1, 1, 1), out.flip(-1), out)


@torch.no_grad()
def library_embeddings(model: VideoMAE2Pretrain, videos: torch.Tensor) -> np.ndarray:
    model.eval()
    feats = []
    for start in (0, SPAN):  # the two windows `index` cuts from a 128-frame video
        idx = torch.arange(len(videos))
        for chunk in idx.split(64):
            clips = normalize_input(windows(videos, chunk, torch.full_like(chunk, start)), model.cfg)
            feats.append(embed(model, clips))
    model.train()
    per_window = torch.cat(feats).view(2, len(videos), -1)
    return per_window.transpose(0, 1).reshape(2 * len(videos), -1).numpy()  # video-major, like clip ids


def embed(model: VideoMAE2Pretrain, clips_normalised: torch.Tensor) -> torch.Tensor:
    """The clip feature `index` stores: the encoder's own pooling over all tokens."""
    enc = model.encoder
    return enc.pool(enc.forward_blocks(enc.add_positions(enc.patch_embed(clips_normalised))))


def mix_still(clips: torch.Tensor, generator: torch.Generator, weight: float) -> torch.Tensor:
    """`--mix-still` (a screen): each clip blended with a still frame of another clip of the batch, held
    for every frame ("background erasing", Wang et al., CVPR 2021): the blend adds a static scene that
    changes the look and leaves the motion, so two views agree only in what moves."""
    B, _C, T = clips.shape[:3]
    other = (torch.arange(B) + torch.randint(1, B, (B,), generator=generator)) % B
    frame = torch.randint(0, T, (B,), generator=generator)
    stills = clips[other, :, frame].unsqueeze(2)  # (B, C, 1, H, W)
    return (1 - weight) * clips + weight * stills


def future_masks(grid: tuple[int, int, int], batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`--mask future` (a screen, not a product mask): the encoder sees the first half of the time slices
    whole, the decoder predicts the second half: extrapolating needs the direction and speed of motion."""
    t, h, w = grid
    hidden = (torch.arange(t) >= t // 2)[:, None].expand(t, h * w).reshape(1, -1).expand(batch, -1)
    return hidden.clone(), hidden.clone()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--library", type=Path, default=OUT / "motion")
    p.add_argument("--encoder", default="vit-tiny")
    p.add_argument("--minutes", type=float, default=3.0, help="budget in --clock minutes")
    p.add_argument(
        "--clock", default="cpu", choices=["cpu", "wall"], help="cpu: this process's CPU time (fair under load)"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: no spinning on a loaded machine)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (not scaled)")
    p.add_argument("--warmup", type=float, default=0.05, help="share of the budget")
    p.add_argument("--objective", default="mae", choices=["mae", "nce", "mae+nce", "motion", "mae+motion"])
    p.add_argument("--nce-weight", type=float, default=1.0)
    p.add_argument("--temperature", type=float, default=0.1)
    p.add_argument("--jitter", type=float, default=VIEW_STRENGTH, help="colour gain/offset strength of the views")
    p.add_argument("--permute", action="store_true", help="views also permute the colour channels")
    p.add_argument("--mix-still", type=float, default=0.0, help="nce: blend each view with another clip's still")
    p.add_argument("--across-batch", action="store_true", help="motion: other clips are negatives too")
    p.add_argument("--no-reversed-negatives", action="store_true", help="(nearby positives only)")
    p.add_argument(
        "--positive",
        default="same",
        choices=["same", "nearby"],
        help="same: two views of the clip, the product's code (encoder/pretrain_objective.py); nearby: another "
        "window of the same video within +-16 frames",
    )
    p.add_argument("--mask", default="tube")
    p.add_argument("--mask-ratio", type=float, default=0.9)
    p.add_argument("--decoder-mask-ratio", type=float, default=0.5)
    p.add_argument("--eval-every", type=float, default=60.0, help="seconds")
    p.add_argument(
        "--difference",
        default="off",
        choices=["off", "init", "tied"],
        help="init: start with each tubelet's second frame weighted as minus its first (a temporal difference: "
        "what is still cancels; with --minutes 0, only scores that); tied: and keep it so after every step",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)
    print(describe_machine(), flush=True)
    print(f"load average at start: {os.getloadavg()}  args: {vars(args)}", flush=True)

    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    labels = make_library(args.library)
    frames, names = decode_library(args.library, labels)
    videos = torch.from_numpy(frames)
    clip_names = [n for n in names for _ in range(2)]
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    model = VideoMAE2Pretrain(pretrain_config(args.encoder)).init_random_(args.seed).train()
    if args.difference != "off":
        model.encoder.patch_embed.keep_only_change_()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.05)
    if args.mask == "future":
        masks = lambda B: future_masks(model.cfg.grid, B)  # noqa: E731
    else:
        spec = MaskSpec(args.mask, args.mask_ratio, args.decoder_mask_ratio)
        masks = lambda B: make_masks(spec, model.cfg.grid, B, gen)  # noqa: E731

    def evaluate(step: int, elapsed: float) -> dict:
        s = score(library_embeddings(model, videos), clip_names, labels)
        row = {"tag": args.tag, "step": step, "s": round(elapsed), "wall_s": round(time.perf_counter() - wall0)}
        row |= {"knn": round(s.knn, 3)}
        row |= {"fwd_rev": round(s.reversal, 3), "load": round(os.getloadavg()[0], 1)}
        print(json.dumps(row), flush=True)
        return row

    budget = args.minutes * 60
    wall0 = time.perf_counter()
    evaluate(0, 0.0)
    started = last_eval = clock()
    step, losses = 0, []
    while (elapsed := clock() - started) < budget:
        frac = elapsed / budget
        lr = args.lr * (frac / args.warmup if frac < args.warmup else 0.5 * (1 + np.cos(np.pi * frac)))
        for group in opt.param_groups:
            group["lr"] = lr
        B = args.batch_size
        video = torch.randint(0, len(videos), (B,), generator=gen)
        start = torch.randint(0, videos.shape[1] - SPAN + INTERVAL, (B,), generator=gen)
        flip = torch.rand(B, generator=gen) < 0.5
        clips = crop_flip(windows(videos, video, start), gen, flip)
        loss = torch.zeros(())
        parts = {}
        if "mae" in args.objective:
            hidden, decoded = masks(B)
            parts["mae"] = pretrain_loss(model, clips, hidden, decoded)
            loss = loss + parts["mae"]

        def embed_01(x: torch.Tensor) -> torch.Tensor:
            return embed(model, normalize_input(x, model.cfg))

        if "motion" in args.objective:
            parts["motion"] = motion_contrastive_loss(
                embed_01, clips, gen, args.temperature, args.jitter, args.across_batch
            )
            loss = loss + args.nce_weight * parts["motion"]
        elif "nce" in args.objective and args.mix_still > 0:
            view_a, view_b = (mix_still(v, gen, args.mix_still) for v in two_views(clips, gen, args.jitter))
            backwards = embed_01(reverse_time(view_b))
            parts["nce"] = info_nce(embed_01(view_a), embed_01(view_b), backwards, args.temperature)
            loss = loss + args.nce_weight * parts["nce"]
        elif "nce" in args.objective and args.positive == "same":
            parts["nce"] = clip_contrastive_loss(embed_01, clips, gen, args.temperature, args.jitter, args.permute)
            loss = loss + args.nce_weight * parts["nce"]
        elif "nce" in args.objective:
            # the positive: a nearby window of the same video (+-16 source frames), its own crop, same flip
            shift = torch.randint(-16, 17, (B,), generator=gen)
            start2 = (start + shift).clamp(0, videos.shape[1] - SPAN + INTERVAL - 1)
            view2 = crop_flip(windows(videos, video, start2), gen, flip)

            def jitter(x: torch.Tensor) -> torch.Tensor:
                return appearance_jitter(x, gen, args.jitter, args.permute)

            a = embed_01(jitter(clips))
            b = embed_01(jitter(view2))
            neg = None
            if not args.no_reversed_negatives:
                backwards = reverse_time(jitter(clips))
                neg = embed_01(backwards)
            parts["nce"] = info_nce(a, b, neg, args.temperature)
            loss = loss + args.nce_weight * parts["nce"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if args.difference == "tied":
            model.encoder.patch_embed.keep_only_change_()
        step += 1
        losses.append({k: v.item() for k, v in parts.items()})
        if clock() - last_eval >= args.eval_every:
            before = clock()
            recent = {k: round(float(np.mean([x[k] for x in losses[-50:]])), 4) for k in parts}
            print(json.dumps({"step": step, "loss": recent}))
            evaluate(step, before - started)
            last_eval = clock()  # evaluation time is not training budget
            started += last_eval - before
    final = evaluate(step, clock() - started)
    print("FINAL " + json.dumps(final | {"steps": step, "args": vars(args) | {"library": str(args.library)}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
