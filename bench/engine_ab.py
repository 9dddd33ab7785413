"""The local engine of this checkout against another checkout's (e.g. main before a refactor), same library,
runs interleaved from one command: baseline, candidate, baseline, candidate, ...

    git archive main | tar -x -C /tmp/base
    .venv/bin/python bench/engine_ab.py --baseline /tmp/base --rounds 2

Each run is a child process (`python -c ...run_index...` with the checkout first on sys.path) indexing the
library into a fresh data dir; the time is the index run's own (imports excluded). Real-size architectures with
random weights, PyTorch runtime.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from machine import describe_machine  # noqa: E402

RUN = """
import json, sys, time
from pathlib import Path
from indexer.pipeline import run_index
from indexer.settings import DataDir, EncoderSettings, ImageTextSettings, IndexSettings
data, lib, encoder, image_text = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
s = IndexSettings(DataDir(data), EncoderSettings(encoder, "random", "auto", "auto", "torch"),
                  ImageTextSettings(True, image_text, "random"))
start = time.perf_counter()
report = run_index(s, [lib])
print(json.dumps({"seconds": time.perf_counter() - start, "clips": report.clips_embedded,
                  "failed": len(report.failures)}))
"""


def run(checkout: Path, data: Path, lib: Path, args) -> dict:
    env = {**os.environ, "PYTHONPATH": str(checkout), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(data), str(lib), args.encoder, args.image_text_model],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout's root")
    parser.add_argument("--library", type=Path, required=True, help="a folder of videos")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--encoder", default="vit-s")
    parser.add_argument("--image-text-model", default="ViT-B-32-256")
    args = parser.parse_args()
    print(describe_machine())
    print(f"load average at start: {os.getloadavg()}")
    times: dict[str, list[float]] = {"baseline": [], "candidate": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name, checkout in (("baseline", args.baseline), ("candidate", ROOT)):
                data = Path(tmp) / f"{name}-{r}"
                result = run(checkout, data, args.library, args)
                times[name].append(result["seconds"])
                print(f"  {name} round {r + 1}: {result}", flush=True)
    print(f"load average at end: {os.getloadavg()}")
    base, cand = statistics.median(times["baseline"]), statistics.median(times["candidate"])
    print(f"median wall: baseline {base:.1f} s, candidate {cand:.1f} s, candidate / baseline {cand / base:.3f}")


if __name__ == "__main__":
    main()
