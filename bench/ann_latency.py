"""Vector search at scale: p50/p95 latency and recall@10 against exact search, per index type.

    .venv/bin/python bench/ann_latency.py --sizes 100000 1000000 --dims 384 768

Synthetic unit vectors of the real dimensions (VideoMAE v2 ViT-S 384, ViT-B/CLIP-L 768), shaped
like a video library (`--data video`, the default): 200 scene centres; each video (100 clips)
sits near one scene, and its clips drift along a random walk, so neighbouring clips of a video are
close, as real clip embeddings are. `--data blobs` is the harder isotropic case: 2000 clusters,
noise as large as the centres, the true neighbours nearly equidistant. Queries are 300 fresh clips
of the same distribution, searched one at a time (as the query service does), k = 10. Ground
truth: exact search. The `chosen` row
is what `indexer.store.choose_index_spec(count, dim, budget)` picks for that library. Memory is
the index's own estimate (`index_bytes`), checked against the serialized size at 100k.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import describe_machine

from indexer import store

K = 10
QUERIES = 300


def blobs(n: int, dim: int, rng, clusters: int = 2000) -> np.ndarray:
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)]
    x += rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def video_like(n: int, dim: int, rng, clips_per_video: int = 100, scenes: int = 200) -> np.ndarray:
    videos = -(-n // clips_per_video)
    scene = rng.standard_normal((scenes, dim)).astype(np.float32)
    centre = scene[rng.integers(0, scenes, videos)] + 0.5 * rng.standard_normal((videos, dim)).astype(np.float32)
    x = np.empty((videos * clips_per_video, dim), np.float32)
    for v in range(videos):  # clips drift: a random walk around the video's centre
        steps = 0.08 * rng.standard_normal((clips_per_video, dim)).astype(np.float32)
        x[v * clips_per_video : (v + 1) * clips_per_video] = centre[v] + np.cumsum(steps, axis=0)
    x += 0.15 * rng.standard_normal(x.shape).astype(np.float32)
    x = x[rng.permutation(len(x))[:n]]
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def latency(index: faiss.Index, queries: np.ndarray, params) -> tuple[np.ndarray, np.ndarray]:
    times, found = [], []
    for q in queries:
        t = time.perf_counter()
        _, ids = index.search(q[None], K, params=params)
        times.append((time.perf_counter() - t) * 1000)
        found.append(ids[0])
    return np.array(times), np.array(found)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)]))


def run(n: int, dim: int, budget: int, sweep: bool, data: str) -> list[str]:
    rng = np.random.default_rng(n + dim)
    vectors = (video_like if data == "video" else blobs)(n + QUERIES, dim, rng)
    data, queries = vectors[:n], vectors[n:]
    ids = np.arange(1, n + 1, dtype=np.int64)
    exact = store.build_index(ids, data, store.IndexSpec("Flat"))
    _, truth = exact.search(queries, K)  # batched exact search: the ground truth
    chosen = store.choose_index_spec(n, dim, budget)
    specs = [store.IndexSpec("Flat"), chosen]
    if n <= 200_000:
        specs += [
            store.IndexSpec("HNSW32,SQ8", ef_search=store.HNSW_EF_SEARCH),
            store.choose_index_spec(n, dim, n * 20),
        ]
    rows = []
    for spec in dict.fromkeys(specs):
        t = time.perf_counter()
        index = exact if spec.factory == "Flat" else store.build_index(ids, data, spec)
        build = time.perf_counter() - t
        efs = [32, 64, 128, 256] if sweep and spec.ef_search else [spec.ef_search]
        for ef in efs:
            searched = store.IndexSpec(spec.factory, ef, spec.nprobe) if ef else spec
            times, found = latency(index, queries, store._search_params(searched, None))
            size = store.index_bytes(spec, n, dim)
            actual = f" (file {len(faiss.serialize_index(index)) / 2**30:.2f})" if n <= 200_000 else ""
            label = spec.factory + (f" ef={ef}" if ef else "") + (f" nprobe={spec.nprobe}" if spec.nprobe else "")
            mark = " <- chosen" if spec == chosen and (ef == chosen.ef_search or not ef) else ""
            rows.append(
                f"| {n:,} | {dim} | {label}{mark} | {np.percentile(times, 50):.2f} | "
                f"{np.percentile(times, 95):.2f} | {recall(found, truth):.3f} | {build:.0f} | "
                f"{size / 2**30:.2f}{actual} |"
            )
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[384, 768])
    parser.add_argument("--budget-gib", type=float, default=4.0)
    parser.add_argument("--sweep", action="store_true", help="also time other HNSW ef_search values")
    parser.add_argument("--data", choices=["video", "blobs"], default="video")
    args = parser.parse_args()
    print(describe_machine(), flush=True)
    print(
        f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, budget {args.budget_gib} GiB, "
        f"data {args.data}"
    )
    print("| clips | dim | index | p50 ms | p95 ms | recall@10 | build s | memory GiB |")
    print("|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        for dim in args.dims:
            run(n, dim, int(args.budget_gib * 2**30), args.sweep, args.data)


if __name__ == "__main__":
    main()
