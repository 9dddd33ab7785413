"""A text query's latency through the search service per runtime: PyTorch fp32 against the CPU runtime.

    .venv/bin/python bench/text_query_runtime.py [--clips 10000] [--repeat 40]

One synthetic data dir (bench/query_latency.py's: clustered random vectors, real-size random-weight
towers: ViT-S + CLIP ViT-B-32-256); one `SearchService` per runtime, models loaded before timing; the
services' queries interleaved round by round (each a different text, so no cache helps), so a load
change hits both alike. The bar (issue 15): p50 through the runtime <= 0.6 x through PyTorch fp32.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe_machine
from query_latency import build

from app.query import Query, SearchOptions
from app.search import SearchService
from indexer.records import IMAGE_SET
from indexer.settings import DataDir

RUNTIMES = {"torch fp32": ("torch", "fp32"), "openvino auto": ("openvino", "auto")}
WORDS = ["person", "car", "dog", "corridor", "light", "door", "bike", "truck", "crowd", "night", "rain", "box"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()
    print(describe_machine(), flush=True)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = DataDir(Path(tmp))
        build(data, args.clips)
        services = {}
        for name, (backend, precision) in RUNTIMES.items():
            services[name] = SearchService(data, "cpu", precision, runtime=backend).load()
            ran = services[name].towers.encoder(IMAGE_SET).runtime.describe()  # loads (and converts) now
            print(f"{name}: image-text tower runs on {ran}", flush=True)
        options = SearchOptions(k=10)
        times = {name: [] for name in services}
        for i in range(args.repeat + 1):
            text = Query(text=f"a {WORDS[i % len(WORDS)]} next to a {WORDS[(i * 5 + 3) % len(WORDS)]} {i}")
            for name, service in services.items():
                start = time.perf_counter()
                service.search(text, options=options)
                if i:  # the first round warms up
                    times[name].append((time.perf_counter() - start) * 1000)
    base = statistics.median(times["torch fp32"])
    print(f"\n{args.clips} clips, {args.repeat} text queries per runtime, interleaved")
    print("| runtime | p50 ms | p95 ms | × torch fp32 |")
    print("|---|---|---|---|")
    for name, values in times.items():
        p50, p95 = statistics.median(values), sorted(values)[int(0.95 * (len(values) - 1))]
        print(f"| {name} | {p50:.1f} | {p95:.1f} | {p50 / base:.2f} |")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


if __name__ == "__main__":
    main()
