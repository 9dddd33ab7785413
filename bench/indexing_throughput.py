"""Indexing throughput, split into decode-only, encode-only and end to end, on the same input.

    .venv/bin/python bench/indexing_throughput.py --input shared         # ../shared/videos
    .venv/bin/python bench/indexing_throughput.py --input 720p --minutes 60
    .venv/bin/python bench/indexing_throughput.py --input shared --rounds 3   # medians of 3 rounds

decode-only: every clip window decoded, resized and cropped exactly as indexing does, nothing else.
encode-only: the same number of clips through the encoders (VideoMAE v2 and, unless --no-image-text,
             the image-text tower), from clips already in memory.
end to end:  a real index run into an empty data dir (decode thread + encoders + catalog +
             thumbnails + FAISS).
Throughput is video seconds per wall second. The last column compares each time with
max(decode-only, encode-only): end to end at 1.0 would mean decoding is completely hidden.
Real-size architectures with random weights (no model hub here; speed does not depend on weights).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from footage import long_video  # noqa: E402
from machine import describe_machine  # noqa: E402

from indexer.decode import ProbeError, probe  # noqa: E402
from indexer.memory import tune_malloc  # noqa: E402
from indexer.pipeline import run_index  # noqa: E402
from indexer.scan import scan_roots  # noqa: E402
from indexer.settings import DataDir, EncoderSettings, ImageTextSettings, IndexSettings  # noqa: E402
from indexer.towers import resolve_towers  # noqa: E402


def settings(data: Path, args) -> IndexSettings:
    return IndexSettings(
        DataDir(data),
        EncoderSettings(args.encoder, "random", args.device, args.precision),
        ImageTextSettings(not args.no_image_text, args.image_text_model, "random"),
        batch_size=args.batch_size,
    )


def inputs(args) -> list[Path]:
    if args.input == "shared":
        return [f.path for f in scan_roots([ROOT.parent / "shared" / "videos"]).files]
    width, height = {"720p": (1280, 720), "1080p": (1920, 1080), "360p": (640, 360)}[args.input]
    return [long_video(args.minutes, width, height)]


def decode_only(files: list[Path], towers) -> tuple[float, int, float]:
    start, clips, seconds = time.perf_counter(), 0, 0.0
    for path in files:
        try:
            decoder = towers.clip_decoder(path, probe(path))
        except ProbeError:
            continue
        clips += sum(1 for _ in decoder.clips())
        seconds += decoder.summary.duration
    return time.perf_counter() - start, clips, seconds


def encode_only(clips: int, towers, batch_size: int) -> tuple[float, float]:
    """Seconds to embed `clips` clips, and seconds to load the models (which end to end includes)."""
    names = list(towers.specs())
    frames, rng = towers.sampling.window_frames, np.random.default_rng(0)
    batch = {
        size: rng.integers(0, 255, (batch_size, frames, size, size, 3), dtype=np.uint8) for size in towers.input_sizes()
    }  # each size indexing decodes
    start = time.perf_counter()
    for name in names:
        towers.encoder(name)
    load_s = time.perf_counter() - start
    towers.embed(names, {size: b[:1] for size, b in batch.items()})  # warm up, not timed
    start = time.perf_counter()
    for done in range(0, clips, batch_size):
        towers.embed(names, {size: b[: min(batch_size, clips - done)] for size, b in batch.items()})
    return time.perf_counter() - start, load_s


def end_to_end(files: list[Path], args) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "lib"
        lib.mkdir()
        for i, path in enumerate(files):
            (lib / f"{i:03d}{path.suffix}").symlink_to(path)
        (Path(tmp) / "empty").mkdir()
        run_index(settings(Path(tmp) / "warm", args), [Path(tmp) / "empty"])  # random weights made, not timed
        (Path(tmp) / "data").mkdir()
        (Path(tmp) / "data" / "weights").symlink_to(Path(tmp) / "warm" / "weights")
        start = time.perf_counter()
        report = run_index(settings(Path(tmp) / "data", args), [lib])
        elapsed = time.perf_counter() - start
        print(f"  end to end: {report.clips_embedded} clips, {len(report.failures)} failed files")
        return elapsed


def main() -> None:
    tune_malloc()  # as run.py does
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default="shared", choices=["shared", "360p", "720p", "1080p"])
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--encoder", default="vit-s")
    parser.add_argument("--image-text-model", "--clip-model", dest="image_text_model", default="ViT-B-32-256")
    parser.add_argument("--no-image-text", "--no-clip", dest="no_image_text", action="store_true")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat the three stages in turn and report medians (for noisy machines)"
    )
    args = parser.parse_args()
    print(describe_machine(), flush=True)

    files = inputs(args)
    times: dict[str, list[float]] = {"decode-only": [], "encode-only": [], "end to end": []}
    loads: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        towers = resolve_towers(settings(Path(tmp), args))
        for round_ in range(args.rounds):  # stages in turn, so a slow spell of the VM hits all three
            decode_s, clips, video_s = decode_only(files, towers)
            encode_s, load = encode_only(clips, towers, args.batch_size)
            loads.append(load)  # the models load in the first round only
            e2e_s = end_to_end(files, args)
            for stage, seconds in zip(times, (decode_s, encode_s, e2e_s)):
                times[stage].append(seconds)
            print(
                f"  round {round_ + 1}: decode {decode_s:.1f} s, encode {encode_s:.1f} s, end to end "
                f"{e2e_s:.1f} s = {e2e_s / max(decode_s, encode_s):.2f} x max(dec, enc)",
                flush=True,
            )
        runtime = towers.encoder("video").runtime.describe()
    median = {stage: statistics.median(values) for stage, values in times.items()}
    slowest = max(median["decode-only"], median["encode-only"])
    towers_used = args.encoder + ("" if args.no_image_text else f" + {args.image_text_model}")
    print(
        f"\ninput: {args.input}{'' if args.input == 'shared' else f' {args.minutes} min'}, "
        f"{len(files)} files, {video_s:.0f} s of video, {clips} clips; towers: {towers_used}; "
        f"runtime: {runtime}; {args.rounds} round(s), medians"
    )
    print(f"{'stage':14s} {'wall s':>8s} {'video s/s':>10s} {'x max(dec, enc)':>16s}")
    for name, seconds in median.items():
        print(f"{name:14s} {seconds:8.1f} {video_s / seconds:10.2f} {seconds / slowest:16.2f}")
    e2e_s, load_s = median["end to end"], loads[0]
    print(
        f"end to end includes loading the models, {load_s:.1f} s when measured alone; without it "
        f"{e2e_s - load_s:.1f} s = {(e2e_s - load_s) / slowest:.2f} x max(dec, enc)"
    )


if __name__ == "__main__":
    main()
