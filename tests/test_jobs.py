"""Background indexing from the UI: progress, cancel, and searching while it runs."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from app.jobs import IndexJobs
from app.query import Query, QueryError, SearchOptions
from app.search import SearchService
from indexer.settings import DataDir, EncoderSettings, ImageTextSettings, IndexSettings


def settings(data: Path) -> IndexSettings:
    return IndexSettings(
        DataDir(data),
        EncoderSettings("vit-tiny", "random", "cpu", "fp32"),
        ImageTextSettings(True, "tubelet-tiny-clip", "random"),
    )


@pytest.fixture
def footage(tmp_path, demo_videos):
    root = tmp_path / "footage"
    for i, video in enumerate(demo_videos[:4]):
        (root / f"batch{i // 2}").mkdir(parents=True, exist_ok=True)
        shutil.copy(video, root / f"batch{i // 2}" / video.name)
    return root, tmp_path / "data"


def test_job_runs_in_the_background_and_search_sees_its_videos(footage):
    root, data = footage
    jobs = IndexJobs(lambda: settings(data), [root])
    state = jobs.start(str(root / "batch0")).status
    assert state == "running"
    final = jobs.wait(120)
    assert final.status == "done" and final.fraction == pytest.approx(1.0)
    assert final.report["files"]["new"] == 2 and final.report["clips_embedded"] == 8

    service = SearchService(DataDir(data), "cpu", "fp32").ensure_ready()
    before = {m.path for m in service.search(Query(text="x"), options=SearchOptions(k=20)).moments}
    jobs.start(str(root / "batch1"))
    deadline = time.monotonic() + 120
    seen = before
    while time.monotonic() < deadline and len(seen) < 4:  # new videos appear as they are committed
        seen = {m.path for m in service.ensure_ready().search(Query(text="x"), options=SearchOptions(k=20)).moments}
        time.sleep(0.2)
    assert len(before) == 2 and len(seen) == 4
    assert jobs.wait(120).status == "done"


def test_cancel_keeps_finished_videos(footage):
    root, data = footage
    jobs = IndexJobs(lambda: settings(data), [root])
    jobs.start(str(root))
    jobs.cancel()
    final = jobs.wait(120)
    assert final.status == "cancelled" and final.report["cancelled"]
    assert final.report["files"]["new"] < 4
    rerun = IndexJobs(lambda: settings(data), [root])
    rerun.start(str(root))
    done = rerun.wait(120)
    assert done.status == "done" and done.report["files"]["new"] == 4 - final.report["files"]["new"]


def test_only_folders_inside_the_roots(footage, tmp_path):
    root, data = footage
    jobs = IndexJobs(lambda: settings(data), [root])
    for bad in [str(tmp_path), "relative/path", str(root / ".." / ".."), ""]:
        with pytest.raises(QueryError):
            jobs.start(bad)
    (root / "escape").symlink_to(tmp_path)
    with pytest.raises(QueryError, match="not inside the allowed library roots"):
        jobs.start(str(root / "escape"))
    with pytest.raises(QueryError, match="indexing from the web UI is off"):
        IndexJobs(lambda: settings(data), []).start(str(root))
