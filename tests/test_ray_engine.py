"""The Ray engine (indexer/ray_engine.py) on one local Ray instance for the module: it stores what the local
engine stores, and a worker process killed mid-run (SIGKILL) costs nothing: Ray restarts or retries it."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, index, search, settings

from indexer.catalog import Catalog
from indexer.decode import ProbeError
from indexer.jobs import NewVideo
from indexer.pipeline import run_index
from indexer.plan import EmbedTask
from indexer.progress import NoProgress
from indexer.ray_engine import RayEngine, TowerParts, decode_rows
from indexer.records import ScannedFile
from indexer.store import open_index
from indexer.towers import resolve_towers

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow
VIDEOS = 3


@pytest.fixture(scope="module")
def ray_instance():
    """One local instance (Ray start-up costs seconds); RayEngine uses the instance its process has."""
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def library(demo_videos, tmp_path_factory) -> Path:
    lib = tmp_path_factory.mktemp("ray-library")
    for video in demo_videos[:VIDEOS]:
        shutil.copy(video, lib / video.name)
    return lib


@pytest.fixture(scope="module")
def local_run(library, tmp_path_factory) -> tuple[Path, dict]:
    data = tmp_path_factory.mktemp("local") / "data"
    return data, index(data, library, "--precision", "fp32")


@pytest.fixture(scope="module")
def local_data(local_run) -> Path:
    return local_run[0]


def clip_rows(data: Path) -> list[tuple]:
    """(file, window number, start, end, has thumbnail) of every clip, ordered."""
    with sqlite3.connect(data / "catalog.db") as conn:
        rows = conn.execute(
            "SELECT p.path, c.ordinal, c.start, c.end, c.thumbnail IS NOT NULL FROM clips c "
            "JOIN paths p ON p.video_id = c.video_id ORDER BY p.path, c.ordinal"
        )
        return [(Path(path).name, *rest) for path, *rest in rows]


def vectors(data: Path) -> dict[tuple, np.ndarray]:
    """(set, file, window number) -> vector."""
    with sqlite3.connect(data / "catalog.db") as conn:
        rows = conn.execute(
            "SELECT s.name, p.path, c.ordinal, v.data FROM vectors v JOIN clips c ON c.id = v.clip_id "
            "JOIN paths p ON p.video_id = c.video_id JOIN vector_sets s ON s.id = v.set_id"
        )
        return {(name, Path(path).name, o): np.frombuffer(data, np.float32) for name, path, o, data in rows}


def assert_same_vectors(data: Path, reference: Path) -> None:
    ours, theirs = vectors(data), vectors(reference)
    assert ours.keys() == theirs.keys()
    for key, vector in theirs.items():
        np.testing.assert_allclose(ours[key], vector, atol=1e-5, err_msg=str(key))


def top10(data: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(data / "catalog.db") as conn:
        some = conn.execute("SELECT id FROM clips ORDER BY video_id, ordinal LIMIT 1 OFFSET 2").fetchone()[0]

    def reduce(moments):
        return [(Path(m["path"]).name, m["start"], m["end"], round(m["score"], 4)) for m in moments]

    return {
        "text": reduce(search(data, "--text", "a bright orange square", "-k", "10", "--precision", "fp32")),
        "like": reduce(search(data, "--like", some, "-k", "10", "--precision", "fp32")),
    }


def test_ray_engine_stores_what_the_local_engine_stores(ray_instance, library, local_run, tmp_path):
    (local_data, local_report), data = local_run, tmp_path / "data"
    report = index(data, library, "--precision", "fp32", "--ray")
    assert report["files"]["new"] == VIDEOS and not report["failures"]
    assert report["runtimes"] == local_report["runtimes"]  # what ran the towers, told by the actors
    assert report["clips_embedded"] == local_report["clips_embedded"]
    assert clip_rows(data) == clip_rows(local_data)
    assert_same_vectors(data, local_data)
    assert top10(data) == top10(local_data)


class KillOnFirstClip(NoProgress):
    """A progress receiver that, when the first clip's vectors reach the driver, SIGKILLs the encoder actor and
    any decode task's worker: real process deaths, mid-run."""

    def __init__(self):
        self.killed: list[str] = []

    def update(self, n: float) -> None:
        if self.killed or n <= 0:
            return
        for child in _ray_workers():
            title = " ".join(child.cmdline())
            if "EmbedClips" in title or "decode_rows" in title:
                os.kill(child.pid, signal.SIGKILL)
                self.killed.append(title)


def _ray_workers():
    import psutil

    return psutil.Process().children(recursive=True)  # the Ray instance this process started, and its workers


def test_killed_workers_leave_a_complete_consistent_catalog(ray_instance, library, local_data, tmp_path):
    data = tmp_path / "data"
    killer = KillOnFirstClip()
    run = settings(data)
    report = run_index(run, [library], lambda total: killer, engine=RayEngine(batch_size=1))
    assert any("EmbedClips" in title for title in killer.killed), killer.killed
    assert report.files.new == VIDEOS and not report.failures
    assert clip_rows(data) == clip_rows(local_data)  # every video's clips, each once
    assert_same_vectors(data, local_data)
    catalog = Catalog(run.data.catalog).open()
    try:
        for name in ("video", "image"):
            vset = catalog.vector_set(name)
            loaded = open_index(catalog, vset, run.data.index_dir, run.memory_budget)
            assert loaded.from_file  # the run saved it
            np.testing.assert_array_equal(loaded.ids, catalog.vector_ids(vset.id))
    finally:
        catalog.close()


def test_a_file_a_worker_cannot_read_says_storage_must_be_shared(tmp_path):
    missing = ScannedFile(tmp_path / "not-here.mp4", 10, 0, tmp_path)
    job = NewVideo(EmbedTask(missing, "f" * 16, "new"), ("video",))
    parts = TowerParts.of(resolve_towers(settings(tmp_path / "data")))
    (end,) = decode_rows({"job": 0, "kind": "job", "item": job}, parts)
    assert end["kind"] == "end" and isinstance(end["item"].error, ProbeError)
    assert f"cannot read {missing.path} on Ray worker node" in str(end["item"].error)
    assert "shared storage" in str(end["item"].error)
