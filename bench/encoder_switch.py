"""The issue 14 Bar line, end to end: indexing a data dir with adapted weights builds a second vector set
while searches keep answering from the active one, then switches, with no index wiped.

A real footage library is indexed with the tiny random towers; an encoder-only VideoMAE v2 file stands in
for `pretrain`'s adapted weights. `run.py index --weights FILE` then runs as its own process while this
one polls a SearchService (what `serve` answers from) with a more-like-this query and `run.py status`:
every answer must come whole from one set: the old encoder's (identical to before) or, once switched,
the new one's.

    .venv/bin/python bench/encoder_switch.py [--lib ../shared/videos] [--videos 6]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import describe_machine  # noqa: E402

TINY = ["--encoder", "vit-tiny", "--weights", "random", "--image-text-model", "tubelet-tiny-clip"]
TINY += ["--image-text-weights", "random", "--device", "cpu", "--precision", "fp32", "--runtime", "torch"]


def run_cli(*args: str | Path) -> dict:
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lib", type=Path, default=ROOT.parent / "shared" / "videos")
    parser.add_argument("--videos", type=int, default=6, help="how many of the library's videos (smallest first)")
    args = parser.parse_args()
    print(describe_machine(), flush=True)

    import torch

    from app.query import Query
    from app.search import SearchService
    from encoder.videomae2 import VideoMAE2, variant_config
    from indexer.settings import DataDir

    work = Path(tempfile.mkdtemp(prefix="encoder-switch-"))
    lib, data, adapted = work / "lib", work / "data", work / "adapted.pth"
    lib.mkdir()
    videos = sorted(
        (p for p in args.lib.iterdir() if p.suffix in {".mp4", ".mkv", ".avi"}), key=lambda p: p.stat().st_size
    )
    for video in videos[-args.videos :]:
        shutil.copy(video, lib / video.name)
    first = run_cli("index", lib, "--data", data, *TINY, "--json")
    print(f"indexed {len(list(lib.iterdir()))} videos: {first['clips_embedded']} clips in {first['seconds']} s")
    torch.save(VideoMAE2(variant_config("vit-tiny")).init_random_(5).state_dict(), adapted)

    service = SearchService(DataDir(data), "cpu", "fp32", runtime="torch").load()
    query = Query(like=int(service.catalog.clip_video_ids()[0][0]))

    def answer() -> list[tuple[int, float]]:
        service.ensure_ready()
        return [(m.clip_id, round(m.score, 4)) for m in service.search(query).moments]

    before = answer()
    second = ["index", str(lib), "--data", str(data), "--weights", str(adapted), "--batch-size", "1"]
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), *second, *TINY[-6:], "--json"],  # same runtime as the first run
        stdout=subprocess.PIPE,
        text=True,
    )
    polls: dict[tuple[str, str], int] = {}
    building: set[int] = set()
    while child.poll() is None:
        got = answer()
        key = (Path(service.towers.video.weights.source).name, "same as before" if got == before else "different")
        polls[key] = polls.get(key, 0) + 1
        building |= {
            s["vectors"] for s in run_cli("status", "--data", data, "--json")["vector_sets"] if s["role"] == "new"
        }
        time.sleep(0.5)
    report = json.loads(child.stdout.read())
    after = answer()
    status = run_cli("status", "--data", data, "--json")
    print(f"searches during the second run, by (query encoder, answer vs before): {polls}")
    print(f"new set's vector counts seen while it was built: {sorted(building)}")
    print(
        f"second run: vectors_embedded {report['vectors_embedded']}, activated {report['activated']}, "
        f"{report['seconds']} s; after it the service embeds queries with {service.towers.video.weights.source} "
        f"and answers {'the same as' if after == before else 'differently from'} before"
    )
    sets = [(s["name"], s["role"], s["vectors"]) for s in status["vector_sets"]]
    print(f"vector sets after: {sets}; clips {status['clips']} (first run: {first['clips_embedded']})")
    service.catalog.close()
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
