"""Query-service latency at 10k and 100k clips, models already loaded.

Builds a synthetic data dir per size (clustered random unit vectors of the real dimensions:
VideoMAE v2 ViT-S 384, CLIP ViT-B-32-256 512; real-size random-weight encoders), then times
`SearchService.search` for a text query, a "more like this" query and a filtered text query.
Baseline, measured in the same run: FAISS alone searching the same vector (k=10), so the
ratio is the service's overhead over the bare index search.

    .venv/bin/python bench/query_latency.py [--sizes 10000 100000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import describe_machine

from app.query import Filters, Query, SearchOptions
from app.search import SearchService
from indexer.catalog import Catalog
from indexer.records import ClipWindow, ScannedFile, VideoInfo
from indexer.settings import DataDir, EncoderSettings, ImageTextSettings, IndexSettings
from indexer.towers import resolve_towers

CLIPS_PER_VIDEO = 100


def clustered(n: int, dim: int, rng, clusters: int = 200) -> np.ndarray:
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def build(data: DataDir, n: int) -> None:
    catalog = Catalog(data.catalog).open()
    settings = IndexSettings(data, EncoderSettings("vit-s", "random", "cpu"), ImageTextSettings(weights="random"))
    towers = resolve_towers(settings)
    sets = {
        name: catalog.ensure_vector_set(name, identity, towers.specs()[name].dim)
        for name, identity in towers.identities().items()
    }
    rng = np.random.default_rng(0)
    video_vectors, image_vectors = clustered(n, 384, rng), clustered(n, 512, rng)
    info = VideoInfo(0, "h264", 1280, 720, 30.0, 213.3, 0, "mp4")
    for v in range(n // CLIPS_PER_VIDEO):
        f = ScannedFile(Path(f"/library/cam{v % 10}/video{v:05d}.mp4"), 10_000 + v, v, Path("/library"))
        windows = [ClipWindow(i, i * 2.133, (i + 1) * 2.133) for i in range(CLIPS_PER_VIDEO)]
        rows = slice(v * CLIPS_PER_VIDEO, (v + 1) * CLIPS_PER_VIDEO)
        catalog.store_video(
            f,
            f"fp{v:08d}",
            info,
            {"duration": 213.3, "frames": 6400},
            windows,
            {sets["video"].id: video_vectors[rows], sets["image"].id: image_vectors[rows]},
        )
    catalog.close()


def timed(fn, repeat: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def run(n: int, repeat: int) -> list[tuple]:
    with tempfile.TemporaryDirectory() as tmp:
        data = DataDir(Path(tmp))
        t = time.perf_counter()
        build(data, n)
        build_s = time.perf_counter() - t
        service = SearchService(data, device="cpu").load()
        text = Query(text="a person riding a bike")
        like = Query(like=n // 2)
        filtered = Filters(path_glob="/library/cam3/*")
        options = SearchOptions(k=10)
        vector = service.query_parts(text, options)[0].vector
        image_index = service.indexes["image"]
        rows = [
            ("FAISS alone (baseline)", timed(lambda: image_index.search(vector, 10), repeat)),
            ("text query", timed(lambda: service.search(text, options=options), repeat)),
            ("more like this (2 towers)", timed(lambda: service.search(like, options=options), repeat)),
            ("text + path filter (10%)", timed(lambda: service.search(text, filtered, options), repeat)),
        ]
        base = statistics.median(rows[0][1])
        print(f"\n{n} clips (catalog built in {build_s:.0f} s)")
        print(f"{'query':28s} {'p50 ms':>8s} {'p95 ms':>8s} {'x baseline':>10s}")
        out = []
        for name, values in rows:
            p50 = statistics.median(values)
            print(f"{name:28s} {p50:8.2f} {p95(values):8.2f} {p50 / base:10.1f}")
            out.append((n, name, p50, p95(values), p50 / base))
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    print(describe_machine(), flush=True)
    for n in args.sizes:
        run(n, args.repeat)


if __name__ == "__main__":
    main()
