"""The index beyond RAM: build time, resident memory, recall@10 and latency of the on-disk IVF-PQ index.

    .venv/bin/python bench/big_index.py --count 10000000 --dir /tmp/ivf16-bench

Synthetic clustered unit vectors (`--clusters` centres, `--noise` times their scale around them), generated
chunk by chunk from per-chunk seeds and streamed into `indexer.ondisk_index.build` exactly as the
catalog streams them: never all in RAM. The index is the one `indexer.store.choose_index_spec`
picks for that count under `--budget`. Queries are fresh vectors of the same distribution, searched
one at a time by a separate process (whose resident memory, VmRSS from /proc, is the index's),
k = 10, through the same `LoadedIndex.search` the query service calls. Ground truth: an exact
streamed scan of the rows file for those queries. Data is written under --dir and removed after.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import describe_machine

from indexer import ondisk_index, store
from indexer.atomic import atomic_write

K = 10
CHUNK = 100_000


def centres(dim: int, clusters: int) -> np.ndarray:
    return np.random.default_rng(12345).standard_normal((clusters, dim)).astype(np.float32)


def clustered(centre: np.ndarray, n: int, seed: int, noise: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = centre[rng.integers(0, len(centre), n)]
    x += noise * rng.standard_normal(x.shape, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def chunks(count: int, dim: int, clusters: int, noise: float):
    centre = centres(dim, clusters)
    for start in range(0, count, CHUNK):
        n = min(CHUNK, count - start)
        yield np.arange(start + 1, start + n + 1, dtype=np.int64), clustered(centre, n, start // CHUNK, noise)


def exact_top(rows: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Top-K clip ids per query by a scan of the mapped rows, one chunk in memory at a time."""
    best_s = np.full((len(queries), K), -np.inf, np.float32)
    best_i = np.zeros((len(queries), K), np.int64)
    for start in range(0, len(rows), CHUNK):
        s = queries @ np.asarray(rows[start : start + CHUNK]).T
        i = np.broadcast_to(np.arange(start + 1, start + 1 + s.shape[1]), s.shape)
        s, i = np.concatenate([best_s, s], axis=1), np.concatenate([best_i, i], axis=1)
        top = np.argpartition(-s, K, axis=1)[:, :K]
        best_s, best_i = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
    return best_i


def build(args, index_file: Path) -> dict:
    spec = store.ondisk_spec(args.count, args.dim)  # what choose_index_spec picks once nothing fits in RAM
    if args.factory:
        spec = store.IndexSpec(args.factory, nprobe=spec.nprobe)
    chosen = store.choose_index_spec(args.count, args.dim, args.budget)
    t = time.perf_counter()
    data = chunks(args.count, args.dim, args.clusters, args.noise)
    index, _, count = ondisk_index.build(data, args.dim, spec.factory, index_file)
    with atomic_write(index_file) as tmp:
        faiss.write_index(index, str(tmp))
    took = time.perf_counter() - t
    return {"spec": spec.factory, "nprobe": spec.nprobe, "chosen": chosen.factory, "build_s": took, "count": count}


def rss() -> dict:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS", "RssAnon", "RssFile", "VmHWM")):
            name, value = line.split(":")
            fields[name] = int(value.split()[0]) / 2**20  # kB -> GiB
    return fields


def search(args, index_file: Path) -> dict:
    """In its own process: open the index, search the queries one at a time, report latency and memory."""
    before = rss()  # the interpreter, numpy, faiss (and torch, which bench/machine.py imports)
    disk = ondisk_index.OnDiskIndex.open(index_file, args.dim)
    queries = clustered(centres(args.dim, args.clusters), args.queries, 10**6, args.noise)
    opened = rss()
    truth = np.load(args.dir / "truth.npy")  # scanned by the parent: this process maps only what searches touch
    out = {"before": before, "opened": opened, "runs": []}
    default_threads = faiss.omp_get_max_threads()
    out["split_first"] = split_times(disk, queries, args.nprobe[0], args.refine[-1])  # pages not yet touched
    for threads, nprobe, refine in itertools.product((default_threads, 1), args.nprobe, args.refine):
        faiss.omp_set_num_threads(threads)
        disk.search(queries[0], K, nprobe)  # first touch of the quantizer
        times, found = [], []
        for q in queries:
            t = time.perf_counter()
            found.append(disk.search(q, K, nprobe, refine=refine)[1])
            times.append((time.perf_counter() - t) * 1000)
        recall = float(np.mean([len(np.intersect1d(f, t)) / K for f, t in zip(found, truth)]))
        p50, p95 = np.percentile(times, [50, 95])
        # memory after searching: includes the pages of the mapped files the searches touched
        run = {"threads": threads, "nprobe": nprobe, "refine": refine, "recall": recall, "p50": p50, "p95": p95}
        out["runs"].append({**run, "rss": rss()})
    out["split_last"] = split_times(disk, queries, args.nprobe[0], args.refine[-1])  # after every search above
    return out


def split_times(disk: ondisk_index.OnDiskIndex, queries: np.ndarray, nprobe: int, refine: int) -> dict:
    """p50 ms of a search's two halves, one thread: the candidates from the codes, and reading their rows."""
    faiss.omp_set_num_threads(1)
    codes, rows = [], []
    for q in queries:
        t = time.perf_counter()
        candidates = disk.candidates(np.ascontiguousarray(q[None], dtype=np.float32), K * refine, nprobe)
        t_codes = time.perf_counter()
        disk.vectors(candidates)
        codes.append((t_codes - t) * 1000)
        rows.append((time.perf_counter() - t_codes) * 1000)
    return {
        "nprobe": nprobe,
        "refine": refine,
        "codes_p50": float(np.median(codes)),
        "rows_p50": float(np.median(rows)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=4096)
    parser.add_argument("--noise", type=float, default=0.5, help="noise std per dimension (centres: 1)")
    parser.add_argument("--budget", type=int, default=2 << 30, help="memory budget in bytes (default 2 GiB)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--refine", type=int, nargs="+", default=[128, 256], help="candidates re-ranked per result")
    parser.add_argument("--factory", help="an on-disk FAISS factory string instead of ondisk_spec's (screens)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/ivf16-bench"))
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--search-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    index_file = args.dir / "big.faiss"
    if args.search_only:
        print(json.dumps(search(args, index_file)))
        return
    print(describe_machine(), f"| load average {os.getloadavg()}", flush=True)
    args.dir.mkdir(parents=True, exist_ok=True)
    try:
        built = build(args, index_file)
        print(json.dumps(built), flush=True)
        rows = np.memmap(next(args.dir.glob("*.vectors")), dtype=np.float32, mode="r").reshape(-1, args.dim)
        queries = clustered(centres(args.dim, args.clusters), args.queries, 10**6, args.noise)
        t = time.perf_counter()
        np.save(args.dir / "truth.npy", exact_top(rows, queries))
        print(f"exact scan of {len(queries)} queries: {time.perf_counter() - t:.0f} s", flush=True)
        rest = [a for a in sys.argv[1:] if a != "--keep"]
        proc = subprocess.run([sys.executable, __file__, *rest, "--search-only"], capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"search process failed: {proc.stderr[-2000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"before opening: {result['before']} | opened: {result['opened']}")
        for when in ("split_first", "split_last"):
            print(f"{when}: {json.dumps(result[when])}")
        for run in result["runs"]:
            print(
                f"| {built['count']:,} | {built['spec']} | {run['threads']} | {run['nprobe']} | {run['refine']} | "
                f"{run['recall']:.3f} | "
                f"{run['p50']:.2f} | {run['p95']:.2f} | {built['build_s']:.0f} | {run['rss']['VmRSS']:.2f} "
                f"(anon {run['rss']['RssAnon']:.2f}, file {run['rss']['RssFile']:.2f}) |"
            )
        sizes = {p.name: round(p.stat().st_size / 2**30, 2) for p in args.dir.iterdir()}
        print(f"files GiB: {sizes} | load average {os.getloadavg()}")
    finally:
        if not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
