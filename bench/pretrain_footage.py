"""Real footage before and after pretraining: segment-retrieval R@1 of cropped, brightened, re-encoded queries.

    .venv/bin/python bench/pretrain_footage.py --pretrain "--minutes 10 --batch-size 16 --lr 0.016"

../shared/videos (MANIFEST.md) is indexed with the random-init encoder (`run.py index`, every window, no
image-text tower) into a fresh data dir; `run.py pretrain` on the same folder then adapts that encoder and
the folder is indexed again with the `encoder_weights` it printed. The queries are the same for both: from
every video at least `--seconds` + 1 s long, the segment starting at 30 % of its length, centre-cropped to
80 % of each side, brightened by 25 grey levels and re-encoded with libx264 at crf 28 (`app.demo.write_video`).
A query is a hit at rank 1 when `search --video QUERY -k 1` returns its source video with a moment that
overlaps the segment's time range.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from machine import describe_machine  # noqa: E402
from pretrain_knn import call  # noqa: E402

from app.demo import write_video  # noqa: E402

SHARED = ROOT.parent / "shared" / "videos"
VIDEO_FLAGS = ["--no-image-text", "--every-window"]
SOME_FAILED = 3  # `index` exit code: the edge cases in ../shared/videos/edge_cases do not decode


def make_query(source: Path, target: Path, seconds: float) -> tuple[float, float] | None:
    """Write the transformed segment of `source`; its (start, end) in the source, or None if too short."""
    with av.open(str(source)) as container:
        stream = container.streams.best("video")
        if stream is None:
            return None
        fps = float(stream.average_rate or 25)
        frames = [(f.time, f.to_ndarray(format="rgb24")) for f in container.decode(stream) if f.time is not None]
    if not frames or frames[-1][0] < seconds + 1.0:
        return None
    start = round(0.3 * frames[-1][0], 2)
    end = start + seconds
    kept = [image for t, image in frames if start <= t < end]
    h, w = kept[0].shape[:2]
    dy, dx = int(h * 0.1) // 2 * 2, int(w * 0.1) // 2 * 2  # even sides for yuv420p
    cropped = [
        np.clip(image[dy : h - dy, dx : w - dx].astype(np.int16) + 25, 0, 255).astype(np.uint8) for image in kept
    ]
    write_video(target, cropped, max(1, round(fps)), crf=28)
    return start, end


def recall_at_1(data: Path, queries: dict[Path, tuple[Path, float, float]]) -> tuple[float, list[str]]:
    hits = []
    for query, (source, start, end) in queries.items():
        found = json.loads(call("search", "--data", data, "--video", query, "-k", "1", "--json"))
        top = found[0] if found else None
        if top and Path(top["path"]) == source and top["start"] < end and top["end"] > start:
            hits.append(source.name)
    return len(hits) / len(queries), hits


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--footage", type=Path, default=SHARED)
    p.add_argument("--encoder", default="vit-tiny")
    p.add_argument("--seconds", type=float, default=2.5, help="query segment length")
    p.add_argument("--pretrain", default="--minutes 10", metavar="ARGS", help="arguments for run.py pretrain")
    args = p.parse_args(argv)
    print(describe_machine(), flush=True)
    print(f"load average at start: {os.getloadavg()}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="pretrain-footage-"))
    queries = {}
    for source in sorted(args.footage.iterdir()):
        if source.is_file() and source.suffix.lower() in (".mp4", ".mkv", ".webm", ".avi", ".mov"):
            query = work / "queries" / f"{source.stem}.mp4"
            try:
                span = make_query(source, query, args.seconds)
            except (av.error.FFmpegError, ValueError, IndexError) as exc:
                print(f"no query from {source.name}: {exc}")
                continue
            if span is not None:
                queries[query] = (source.resolve(), *span)
    print(f"{len(queries)} queries of {args.seconds} s", flush=True)

    before = work / "before"
    weights = ["--encoder", args.encoder, "--weights", "random"]
    call("index", "--data", before, args.footage, *weights, *VIDEO_FLAGS, "--json", ok=(0, SOME_FAILED))
    r_before, hits_before = recall_at_1(before, queries)
    print(f"random init: R@1 {r_before:.3f} ({len(hits_before)}/{len(queries)})  load {os.getloadavg()[0]:.1f}")

    trained = work / "pretrain"
    out = call("pretrain", args.footage, "--data", trained, *weights, *args.pretrain.split(), "--json")
    document = json.loads(out[out.index("{") :])
    print(f"pretrain {args.pretrain}: {json.dumps(document)}", flush=True)
    after = work / "after"
    adapted = ["--encoder", args.encoder, "--weights", document["encoder_weights"]]
    call("index", "--data", after, args.footage, *adapted, *VIDEO_FLAGS, "--json", ok=(0, SOME_FAILED))
    r_after, hits_after = recall_at_1(after, queries)
    print(f"after pretrain: R@1 {r_after:.3f} ({len(hits_after)}/{len(queries)})  load {os.getloadavg()[0]:.1f}")
    print(f"lost: {sorted(set(hits_before) - set(hits_after))}; gained: {sorted(set(hits_after) - set(hits_before))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
