"""The Ray engine's overhead against the local engine: the same library indexed by both, in one process.

    .venv/bin/python bench/ray_engine.py                  # a few ../shared/videos files, vit-s + ViT-B-32-256
    .venv/bin/python bench/ray_engine.py --rounds 2 --seconds 120

Each round indexes the library into a fresh data dir with the local engine, then with the Ray engine at 1 and
at 2 encoder workers (actors), interleaved, so load from other processes hits all alike. One local Ray instance
serves every Ray run, as a running cluster would: its start-up is timed once, apart. Wall time is the run's
(scan to FAISS file); throughput is video seconds per wall second. Real-size architectures with random
weights (speed does not depend on weights), PyTorch runtime for both engines.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from machine import describe_machine  # noqa: E402

from indexer.decode import ProbeError, probe  # noqa: E402
from indexer.memory import tune_malloc  # noqa: E402
from indexer.pipeline import run_index  # noqa: E402
from indexer.ray_engine import REPO_ROOT, RayEngine  # noqa: E402
from indexer.scan import scan_roots  # noqa: E402
from indexer.settings import DataDir, EncoderSettings, ImageTextSettings, IndexSettings  # noqa: E402


def settings(data: Path, args) -> IndexSettings:
    return IndexSettings(
        DataDir(data),
        EncoderSettings(args.encoder, "random", "auto", args.precision, "torch"),
        ImageTextSettings(True, args.image_text_model, "random"),
        batch_size=args.batch_size,
    )


def library(tmp: Path, seconds: float) -> tuple[Path, float]:
    """Shared footage files, shortest first, until `seconds` of video: (folder of links, their seconds)."""
    files = [f.path for f in scan_roots([ROOT.parent / "shared" / "videos"]).files]
    timed = sorted((_duration(p), p) for p in files if "edge_cases" not in str(p))
    lib, total = tmp / "lib", 0.0
    lib.mkdir()
    for duration, path in timed:
        if total >= seconds:
            break
        if duration > 0:
            (lib / path.name).symlink_to(path)
            total += duration
    return lib, total


def _duration(path: Path) -> float:
    try:
        return probe(path).duration or 0.0
    except ProbeError:  # audio only, not a video
        return 0.0


def timed_run(tmp: Path, name: str, lib: Path, args, engine) -> float:
    data = tmp / name
    data.mkdir()
    (data / "weights").symlink_to(tmp / "warm" / "weights")  # random weights made once, not timed
    start = time.perf_counter()
    report = run_index(settings(data, args), [lib], engine=engine)
    elapsed = time.perf_counter() - start
    assert not report.failures, report.failures
    print(f"  {name}: {elapsed:.1f} s, {report.clips_embedded} clips", flush=True)
    return elapsed


def main() -> None:
    tune_malloc()  # as run.py does
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of shared footage to index")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--encoder", default="vit-s")
    parser.add_argument("--image-text-model", default="ViT-B-32-256")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    print(describe_machine())
    print(f"load average at start: {os.getloadavg()}")
    import ray

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        lib, seconds = library(tmp, args.seconds)
        print(f"library: {len(list(lib.iterdir()))} files, {seconds:.1f} s of video")
        (tmp / "empty").mkdir()
        run_index(settings(tmp / "warm", args), [tmp / "empty"])
        start = time.perf_counter()
        cores = len(os.sched_getaffinity(0))
        ray.init(
            num_cpus=max(cores, 3),  # 2 encoder actors and a decode task at once (logical CPUs)
            include_dashboard=False,
            logging_level="ERROR",
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}},
        )
        print(f"ray.init (local instance, once): {time.perf_counter() - start:.1f} s")
        engines = {
            "local": None,
            "ray-1": RayEngine(args.batch_size, workers=1),
            "ray-2": RayEngine(args.batch_size, workers=2),
        }
        walls: dict[str, list[float]] = {name: [] for name in engines}
        for r in range(args.rounds):
            print(f"round {r + 1}", flush=True)
            for name, engine in engines.items():
                walls[name].append(timed_run(tmp, f"{name}-{r}", lib, args, engine))
        ray.shutdown()
    print(f"load average at end: {os.getloadavg()}")
    local = statistics.median(walls["local"])
    print("| engine | wall s (median) | video-s/s | x local |")
    print("|---|---|---|---|")
    for name, times in walls.items():
        wall = statistics.median(times)
        print(f"| {name} | {wall:.1f} | {seconds / wall:.2f} | {wall / local:.2f} |")


if __name__ == "__main__":
    main()
