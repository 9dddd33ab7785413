"""The seam between an index run and its embedding engine (indexer/jobs.py): the run hands the engine typed
jobs, and stores exactly what the engine hands back (its thumbnails as bytes too), one version step per commit."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
from helpers import settings

from indexer.catalog import Catalog
from indexer.jobs import AddVectors, EmbeddedVideo, NewVideo
from indexer.pipeline import run_index
from indexer.records import ClipWindow, VideoInfo
from indexer.settings import ImageTextSettings

INFO = VideoInfo(0, "h264", 64, 48, 30.0, 2.0, 0, "mp4")


class FakeEngine:
    """Two windows per video, seeded vectors, thumbnails `b"jpeg-N"` for new content; records its jobs."""

    def __init__(self):
        self.jobs = []

    def embed(self, jobs, towers, should_stop, on_embedded):
        self.jobs.extend(jobs)
        rng = np.random.default_rng(0)
        for job in jobs:
            dims = {name: towers.specs()[name].dim for name in job.towers}
            vectors = {name: list(rng.standard_normal((2, dim)).astype(np.float32)) for name, dim in dims.items()}
            thumbs = [f"jpeg-{o}".encode() for o in range(2)] if job.new_content else [None, None]
            windows = [ClipWindow(0, 0.0, 1.0), ClipWindow(1, 1.0, 2.0)]
            stats = {"duration": 2.0, "frames": 60, "warning": None}
            yield EmbeddedVideo(job, INFO, windows, vectors, thumbs, stats)


def versions(data) -> dict[str, int]:
    catalog = Catalog(settings(data).data.catalog).open()
    try:
        return {name: vset.version for name in ("video", "image") if (vset := catalog.vector_set(name))}
    finally:
        catalog.close()


def test_the_run_stores_what_the_engine_returns_one_version_step_per_commit(tmp_path):
    lib, data = tmp_path / "lib", tmp_path / "data"
    lib.mkdir()
    video = lib / "a.mp4"
    video.write_bytes(b"not decoded by the fake engine")
    engine = FakeEngine()
    report = run_index(settings(data), [lib], engine=engine)
    (job,) = engine.jobs
    assert isinstance(job, NewVideo) and job.task.reason == "new" and job.towers == ("video", "image")
    assert report.clips_embedded == 2 and not report.failures
    thumbs = sorted((data / "thumbs").rglob("*.jpg"))
    assert [t.read_bytes() for t in thumbs] == [b"jpeg-0", b"jpeg-1"]  # written by the store step
    assert versions(data) == {"video": 1, "image": 1}

    video.write_bytes(b"changed content, same engine")  # re-stored: old clips dropped, new ones added
    os.utime(video, ns=(1, 1))
    run_index(settings(data), [lib], engine=engine)
    assert versions(data) == {"video": 2, "image": 2}  # one commit, one step (drop + insert once stepped twice)


def test_a_tower_added_later_is_an_add_vectors_job(tmp_path):
    lib, data = tmp_path / "lib", tmp_path / "data"
    lib.mkdir()
    (lib / "a.mp4").write_bytes(b"some video")
    video_only = replace(settings(data), image_text=ImageTextSettings(False))
    run_index(video_only, [lib], engine=FakeEngine())
    engine = FakeEngine()
    report = run_index(settings(data), [lib], engine=engine)
    (job,) = engine.jobs
    assert isinstance(job, AddVectors) and job.towers == ("image",) and not job.new_content
    assert report.vectors_embedded == {"video": 0, "image": 2}
