"""SIGKILL the indexer at random moments of one run, restart it each time: nothing lost or doubled.

The kill moments are random (seed printed; set TUBELET_KILL_SEED to replay one). Each kill lands
after the run has committed at least one new video, while work remains.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ENCODER, ROOT, cli_in_process, search

from app.demo import synthesize_video

pytestmark = pytest.mark.slow  # kills a real index process at random moments

KILLS = 6
VIDEOS = 40


def indexed_videos(data: Path) -> dict[str, str]:
    """fingerprint -> indexed_at, read straight from the SQLite file while the indexer may write."""
    db = data / "catalog.db"
    if not db.exists():
        return {}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        try:
            return dict(conn.execute("SELECT fingerprint, indexed_at FROM videos WHERE status = 'indexed'"))
        except sqlite3.OperationalError:
            return {}  # schema not created yet


def start_index(data: Path, lib: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "run.py"),
            "index",
            "--data",
            str(data),
            str(lib),
            *ENCODER,
            "--precision",
            "fp32",
            "--json",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_mid_run(data: Path, lib: Path, rng: random.Random) -> bool:
    """Start a run, wait until it commits a new video, then SIGKILL it a random moment later."""
    before = len(indexed_videos(data))
    proc = start_index(data, lib)
    deadline = time.monotonic() + 120
    while len(indexed_videos(data)) == before and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 0.1))  # short: a run commits a few videos per 0.1 s here
    if proc.poll() is not None:
        return False  # finished before the kill
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def results(data: Path, clip_of: dict) -> dict:
    """Search answers reduced to what does not depend on clip ids."""

    def reduce(moments):
        return [(Path(m["path"]).name, m["start"], m["end"], round(m["score"], 3)) for m in moments]

    some = clip_of[("scene_07.mp4", 1.867)]
    return {
        "text": reduce(search(data, "--text", "a bright orange square", "-k", "8", "--precision", "fp32")),
        "like": reduce(search(data, "--like", some, "-k", "8", "--precision", "fp32")),
    }


def clips_by_position(data: Path) -> dict:
    with sqlite3.connect(data / "catalog.db") as conn:
        rows = conn.execute("SELECT p.path, c.start, c.id FROM clips c JOIN paths p ON p.video_id = c.video_id")
        return {(Path(path).name, round(start, 3)): cid for path, start, cid in rows}


def test_sigkill_at_random_moments_loses_nothing(tmp_path, demo_videos):
    lib = tmp_path / "lib"
    lib.mkdir()
    for seed in range(VIDEOS):
        synthesize_video(lib / f"scene_{seed:02d}.mp4", seed=seed, seconds=4.0, width=160, height=120)
    reference = tmp_path / "reference"
    cli_in_process("index", "--data", reference, lib, *ENCODER, "--precision", "fp32", "--json")

    seed = int(os.environ.get("TUBELET_KILL_SEED", random.randrange(1 << 30)))
    print(f"kill seed {seed}")
    rng = random.Random(seed)
    data = tmp_path / "crashed"
    kills, finished_before = 0, {}
    while kills < KILLS:
        if kill_mid_run(data, lib, rng):
            kills += 1
        done = indexed_videos(data)
        assert all(done.get(fp) == stamp for fp, stamp in finished_before.items()), "a finished video was redone"
        finished_before = done
        assert len(done) < VIDEOS, f"ran out of work after {kills} kills (seed {seed})"
    final = json.loads(cli_in_process("index", "--data", data, lib, *ENCODER, "--precision", "fp32", "--json").stdout)
    assert final["files"]["new"] == VIDEOS - len(finished_before) and final["files"]["unchanged"] == len(
        finished_before
    )
    assert all(indexed_videos(data)[fp] == stamp for fp, stamp in finished_before.items())

    check = json.loads(cli_in_process("status", "--data", data, "--check", "--json").stdout)
    assert check["ok"], check
    crashed_clips, reference_clips = clips_by_position(data), clips_by_position(reference)
    assert sorted(crashed_clips) == sorted(reference_clips)  # none missing, none doubled
    assert results(data, crashed_clips) == results(reference, reference_clips)
