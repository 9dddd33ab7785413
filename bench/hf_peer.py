"""Tubelet against the peer most users would write from the Hugging Face docs, same model and clips.

    .venv/bin/python bench/hf_peer.py                  # ../shared/videos
    .venv/bin/python bench/hf_peer.py --input 720p --minutes 2

Peer (the VideoMAE docs recipe, made fair): each video decoded once with PyAV, the frames of every
clip window converted with `frame.to_ndarray(format="rgb24")`, then per clip
`VideoMAEImageProcessor` (resize 224, centre crop, normalise) and transformers `VideoMAEModel`
(ViT-S sizes, fp32 as in the docs), feature = mean of the last hidden state.
Tubelet: a real index run with the same VideoMAE v2 ViT-S (`--no-image-text`, so the same single model),
whatever precision it picks on this machine. Both use the same clip windows (Tubelet's planner) and
random weights of the same architecture (no model hub here; speed does not depend on weights).

Tubelet's wall time is its whole `index` run: scan, fingerprints, probes, loading the (already converted)
model, decoding, thumbnails (the peer writes none), catalog writes and the FAISS index. The peer's is its
decode + preprocess + model loop only (its model is built before the clock starts). Below the table, each
pipeline's time per stage (bench/stages.py): wall seconds in the thread that ran it, that thread's CPU
seconds, and each pipeline's CPU seconds in all threads (2 cores: CPU / wall near 2 means both were busy).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path

import av
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from indexing_throughput import inputs  # noqa: E402
from machine import describe_machine  # noqa: E402
from stages import StageTimer  # noqa: E402

from encoder.factory import VideoEncoderSpec  # noqa: E402
from indexer import embedding, thumbnails  # noqa: E402
from indexer.catalog import Catalog  # noqa: E402
from indexer.decode import ClipDecoder, ProbeError, probe  # noqa: E402
from indexer.memory import tune_malloc  # noqa: E402
from indexer.pipeline import Indexer, run_index  # noqa: E402
from indexer.records import VIDEO_SET, ClipSampling  # noqa: E402
from indexer.settings import DataDir, EncoderSettings, ImageTextSettings, IndexSettings  # noqa: E402
from indexer.towers import Towers, resolve_towers  # noqa: E402


def window_indices(path: Path, sampling: ClipSampling) -> list[list[int]]:
    """Source frame indices of each clip window, from Tubelet's own planner (so clips match)."""
    info = probe(path)
    decoder = ClipDecoder(path, info, sampling, 16)
    fps = info.fps or 30.0
    windows = [c.window for c in decoder.clips()]
    frames = decoder.summary.frames
    out = []
    for w in windows:
        first = min(round(w.start * fps), max(frames - 1, 0))
        last = max(first, min(round(w.end * fps) - 1, frames - 1))
        out.append(np.linspace(first, last, sampling.window_frames).round().astype(int).tolist())
    return out


def peer(files: list[Path], sampling: ClipSampling, timer: StageTimer) -> tuple[float, int]:
    from transformers import VideoMAEConfig, VideoMAEImageProcessor, VideoMAEModel

    processor = VideoMAEImageProcessor()  # the docs' defaults: shortest edge 224, crop 224, ImageNet
    model = VideoMAEModel(
        VideoMAEConfig(
            hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536, use_mean_pooling=True
        )
    ).eval()
    plans = {path: window_indices(path, sampling) for path in files}  # planning is not timed
    clips = 0
    with timer.span("whole run"):
        clips = peer_loop(plans, processor, model, timer)
    return timer.wall["whole run"], clips


def peer_loop(plans: dict[Path, list[list[int]]], processor, model, timer: StageTimer) -> int:
    """The docs recipe over every planned window: decode, RGB, processor, model."""
    clips = 0
    for path, windows in plans.items():
        wanted = {i for w in windows for i in w}
        frames = {}
        last = None
        with av.open(str(path)) as container:
            decoded = enumerate(container.decode(video=0))
            while True:
                with timer.span("decode"):
                    i, frame = next(decoded, (None, None))
                if frame is None:
                    break
                if i in wanted:
                    with timer.span("to RGB (full size)"):
                        frames[i] = frame.to_ndarray(format="rgb24")
                last = frame
        if last is None:
            continue
        final = last.to_ndarray(format="rgb24")  # windows past the end repeat the last frame, as ours do
        for window in windows:
            video = [frames.get(i, final) for i in window]
            with timer.span("VideoMAEImageProcessor"):
                inputs = processor(video, return_tensors="pt")
            with timer.span("model"), torch.no_grad():
                model(**inputs).last_hidden_state.mean(1)
            clips += 1
    return clips


# What Tubelet's run is timed by: (owner, attribute, stage). The embed loop's own wall time minus the model and
# catalog writes is its wait for decoded clips (the pipeline's stall).
TUBELET_STAGES = (
    (Indexer, "_plan", "scan + fingerprints"),
    (Indexer, "_probed", "probe"),
    (VideoEncoderSpec, "load", "model load (converted, cached)"),
    (Indexer, "_embed", "embed loop (main thread)"),
    (Towers, "embed", "  model (preprocess + encoder)"),
    (Catalog, "store_video", "  catalog writes"),
    (ClipDecoder, "clips", "decode + resize + crop (decode thread)"),
    (thumbnails, "write_thumbnail", "thumbnails (decode thread)"),
    (embedding.DecodeThread, "_put", "decode thread blocked on a full queue"),
    (Indexer, "_refresh_indexes", "FAISS index"),
)


def tubelet(files: list[Path], timer: StageTimer, runtime: str = "auto") -> tuple[float, int, str]:
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "lib"
        lib.mkdir()
        for i, path in enumerate(files):
            (lib / f"{i:03d}{path.suffix}").symlink_to(path)

        def settings(name: str) -> IndexSettings:
            return IndexSettings(
                DataDir(Path(tmp) / name),
                EncoderSettings("vit-s", "random", runtime=runtime),
                ImageTextSettings(enabled=False),
                change_threshold=None,  # every window, as the peer embeds: the same clips on both sides
            )

        (Path(tmp) / "empty").mkdir()
        run_index(settings("warm"), [Path(tmp) / "empty"])  # random weights written once, not timed
        resolve_towers(settings("warm")).encoder(VIDEO_SET)  # a CPU runtime converts once, not timed
        (Path(tmp) / "data").mkdir()
        for cached in ("weights", "runtime"):
            (Path(tmp) / "warm" / cached).mkdir(exist_ok=True)
            (Path(tmp) / "data" / cached).symlink_to(Path(tmp) / "warm" / cached)
        with contextlib.ExitStack() as stack:
            for owner, attr, stage in TUBELET_STAGES:
                stack.enter_context(timer.watch(owner, attr, stage))
            with timer.span("whole run"):
                report = run_index(settings("data"), [lib])
        return timer.wall["whole run"], report.clips_embedded, report.runtimes.get(VIDEO_SET, "?")


def print_stages(name: str, timer: StageTimer) -> None:
    total = timer.process["whole run"]
    print(f"\n{name}, per stage ({total:.1f} CPU s in all threads over the run):\n")
    print("| stage | calls | wall s | thread CPU s |\n|---|---|---|---|")
    for stage, calls, wall, cpu in timer.rows():
        print(f"| {stage} | {calls} | {wall:.1f} | {cpu:.1f} |")


def main() -> None:
    tune_malloc()  # as run.py does
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default="shared", choices=["shared", "360p", "720p", "1080p"])
    parser.add_argument("--minutes", type=int, default=2)
    parser.add_argument("--runtime", default="auto", choices=["auto", "torch", "openvino"])
    parser.add_argument("--tubelet-only", action="store_true", help="profile Tubelet's stages; no peer, no ratio")
    args = parser.parse_args()
    print(describe_machine(), flush=True)
    files = []
    for path in inputs(args):
        if "edge_cases" in path.parts:
            continue  # deliberately broken files: the docs recipe has no answer for them
        try:
            probe(path)
            files.append(path)
        except ProbeError:
            continue
    ours_timer, theirs_timer = StageTimer(), StageTimer()
    print(f"load average at the start: {os.getloadavg()[0]:.1f}", flush=True)
    ours, our_clips, ran = tubelet(files, ours_timer, args.runtime)
    print(f"load average after Tubelet: {os.getloadavg()[0]:.1f}", flush=True)
    if args.tubelet_only:
        print(f"Tubelet index ({ran}): {our_clips} clips in {ours:.1f} s")
        print_stages("Tubelet", ours_timer)
        return
    theirs, their_clips = peer(files, ClipSampling(), theirs_timer)
    print(f"load average after the peer: {os.getloadavg()[0]:.1f}")
    print(f"input: {args.input}, {len(files)} videos; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| pipeline | clips | wall s | clips/s | speed-up |")
    print("|---|---|---|---|---|")
    print(
        f"| HF-docs peer (PyAV + VideoMAEImageProcessor + VideoMAEModel) | {their_clips} | {theirs:.1f} | "
        f"{their_clips / theirs:.2f} | 1.0 |"
    )
    print(
        f"| Tubelet index (VideoMAE v2 ViT-S, {ran}) | {our_clips} | {ours:.1f} | {our_clips / ours:.2f} | "
        f"{(our_clips / ours) / (their_clips / theirs):.1f} |"
    )
    print_stages("Tubelet", ours_timer)
    print_stages("HF-docs peer", theirs_timer)


if __name__ == "__main__":
    main()
