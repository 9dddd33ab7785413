"""`run.py watch` / `serve --watch`: new footage indexed as it arrives, with real watchdog observers,
real files and small generated videos. Waits poll the catalog; what is asserted is what got indexed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import ENCODER, ROOT, index, settings
from live_server import live_server

from app.demo import synthesize_video
from indexer.catalog import Catalog
from indexer.lock import IndexLock
from indexer.settle import SettleTracker
from indexer.watch import Watch, WatchSettings

WAIT_S = 180.0  # generous: the test machine is shared; nothing below depends on being fast


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    """Three distinct 2 s, 160x120 videos, generated once for the module."""
    folder = tmp_path_factory.mktemp("clips")
    return [synthesize_video(folder / f"clip{i}.mp4", seed=i, seconds=2.0, width=160, height=120) for i in range(3)]


def known(data: Path) -> dict:
    if not (data / "catalog.db").exists():
        return {}
    catalog = Catalog(settings(data).data.catalog).open()
    try:
        return catalog.known_paths()
    finally:
        catalog.close()


def wait_until(predicate, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return value


class Running:
    """A Watch in a thread, recording each batch's report and paths, and each busy notice."""

    def __init__(self, watch: WatchSettings, data: Path):
        self.reports: list[tuple[dict, list[str]]] = []
        self.busy: list[str] = []
        self.watch = Watch(watch, lambda: settings(data), self._report, lambda message, n: self.busy.append(message))
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _report(self, report, paths) -> None:
        self.reports.append((report.to_json(), [str(p) for p in paths]))

    def _run(self) -> None:
        try:
            self.watch.run(self.stop)
        except BaseException as exc:  # re-raised in the test thread by `close`
            self.errors.append(exc)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(60)
        assert not self.errors, self.errors


@contextmanager
def watching(lib: Path, data: Path, settle: float = 1.0, poll: float | None = None):
    running = Running(WatchSettings((lib,), settle=settle, poll=poll, tick=0.2, retry=0.5), data)
    running.thread.start()
    try:
        yield running
    finally:
        running.close()


def folders(tmp_path: Path) -> tuple[Path, Path]:
    """An empty library and a data dir with an empty catalog, made before the test's own catalog reads
    start: two connections creating one new SQLite catalog at the same moment can fail."""
    lib, data = tmp_path / "lib", tmp_path / "data"
    lib.mkdir()
    data.mkdir()
    Catalog(settings(data).data.catalog).open().close()
    return lib, data


# -- the settle rule, on a fake clock ------------------------------------------------------------


def test_a_path_settles_only_after_staying_unchanged_and_a_gone_one_later():
    now, states = [0.0], {Path("/a.mp4"): (10, 1), Path("/gone.mp4"): None}
    tracker = SettleTracker(2.0, clock=lambda: now[0], state=states.get)
    tracker.note(Path("/a.mp4"))
    tracker.note(Path("/gone.mp4"))
    now[0], states[Path("/a.mp4")] = 1.0, (20, 2)  # still growing: its quiet period starts again
    assert tracker.take_settled() == []
    now[0] = 2.5  # 1.5 s quiet
    assert tracker.take_settled() == []
    now[0] = 3.0  # 2 s quiet; the gone path has been gone 3 s, and waits 2 x 2 s
    assert tracker.take_settled() == [Path("/a.mp4")]
    now[0] = 4.0
    assert tracker.take_settled() == [Path("/gone.mp4")]
    assert tracker.waiting() == 0
    tracker.note(Path("/a.mp4"))  # an event starts a path's wait again, changed or not
    now[0] = 5.9
    assert tracker.take_settled() == []
    now[0] = 6.0
    assert tracker.take_settled() == [Path("/a.mp4")]


# -- real watchdog, real files -------------------------------------------------------------------


def test_later_batches_reuse_the_first_batchs_encoders(tmp_path, clips):
    """Each batch is its own index run, but the models are loaded once per watch: the second batch loads
    nothing (both towers were already loaded by the first) and still indexes its file."""
    lib, data = folders(tmp_path)
    with watching(lib, data) as running:
        shutil.copy(clips[0], lib / "first.mp4")
        wait_until(lambda: running.reports, "the first batch")
        assert running.watch.encoders.loads == 2  # the video and the image-text tower
        shutil.copy(clips[1], lib / "second.mp4")
        wait_until(lambda: len(running.reports) == 2, "the second batch")
    assert [paths for _, paths in running.reports] == [[str(lib / "first.mp4")], [str(lib / "second.mp4")]]
    assert all(report["clips_embedded"] > 0 for report, _ in running.reports)
    assert running.watch.encoders.loads == 2


def test_the_encoder_cache_keeps_only_what_the_last_run_used(tmp_path, clips):
    from dataclasses import replace

    from indexer.pipeline import run_index
    from indexer.settings import ImageTextSettings
    from indexer.towers import EncoderCache

    cache = EncoderCache()
    run_index(settings(tmp_path / "a"), [clips[0]], encoders=cache)
    cache.keep_used()
    assert cache.loads == 2 and len(cache) == 2
    video_only = replace(settings(tmp_path / "a"), image_text=ImageTextSettings(False))
    report = run_index(video_only, [clips[1]], encoders=cache)
    cache.keep_used()
    assert report.clips_embedded > 0 and cache.loads == 2 and len(cache) == 1  # reused; the image tower let go


@pytest.mark.slow
def test_a_file_written_after_start_is_indexed_once_settled_never_while_growing(tmp_path, clips):
    lib, data = folders(tmp_path)
    content = clips[0].read_bytes()
    target = lib / "cam" / "0001.mp4"
    with watching(lib, data, settle=3.0) as running:
        target.parent.mkdir()
        with open(target, "wb") as out:  # a camera writing in place, a chunk every 0.2 s for ~3 s
            for start in range(0, len(content), len(content) // 15 + 1):
                out.write(content[start : start + len(content) // 15 + 1])
                out.flush()
                time.sleep(0.2)
                assert str(target) not in known(data), "indexed while still being written"
        wait_until(lambda: known(data).get(str(target)), "the settled file to be indexed")
    entry = known(data)[str(target)]
    assert (entry.status, entry.size) == ("indexed", len(content))  # the whole file, not a prefix
    batches = [(r, paths) for r, paths in running.reports if str(target) in paths]
    assert len(batches) == 1  # indexed once
    report = batches[0][0]
    assert report["files"]["new"] == 1 and report["failures"] == [] and report["clips_embedded"] > 0


@pytest.mark.slow
def test_a_move_is_a_path_update_and_a_deletion_drops_the_video(tmp_path, clips):
    lib, data = folders(tmp_path)
    shutil.copy(clips[0], lib / "a.mp4")
    index(data, lib)
    video_id = known(data)[str(lib / "a.mp4")].video_id
    with watching(lib, data) as running:
        (lib / "moved").mkdir()
        os.rename(lib / "a.mp4", lib / "moved" / "b.mp4")
        wait_until(lambda: set(known(data)) == {str(lib / "moved" / "b.mp4")}, "the move")
        assert known(data)[str(lib / "moved" / "b.mp4")].video_id == video_id
        assert sum(r["clips_embedded"] for r, _ in running.reports) == 0  # nothing embedded again
        (lib / "moved" / "b.mp4").unlink()
        wait_until(lambda: known(data) == {}, "the deletion")
    assert all(r["failures"] == [] for r, _ in running.reports)  # a gone path is no failure


@pytest.mark.slow
def test_index_works_while_a_watch_is_idle_and_a_busy_lock_only_delays_the_watch(tmp_path, clips):
    lib, data = folders(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(clips[2], other / "c.mp4")
    with watching(lib, data) as running:
        assert index(data, other)["files"]["new"] == 1  # the idle watch holds no lock
        with IndexLock(data / "index.lock"):  # now another index run is busy
            shutil.copy(clips[0], lib / "a.mp4")
            wait_until(lambda: running.busy, "the watch to report the data dir busy")
            assert str(lib / "a.mp4") not in known(data)
        wait_until(lambda: str(lib / "a.mp4") in known(data), "the file once the lock is free")
    assert "another index run" in running.busy[0]
    assert len(running.busy) == 1  # said once, not on every retry


@pytest.mark.slow
def test_polling_mode_indexes_new_and_replaced_files(tmp_path, clips):
    lib, data = folders(tmp_path)
    target = lib / "share" / "b.mp4"
    with watching(lib, data, poll=0.5) as running:
        target.parent.mkdir()
        shutil.copy(clips[1], target)
        first = wait_until(lambda: known(data).get(str(target)), "the polled file")
        shutil.copy(clips[2], target.with_name(".b.mp4.part"))  # a copier's temporary name: hidden, ignored
        os.replace(target.with_name(".b.mp4.part"), target)
        wait_until(lambda: known(data)[str(target)].fingerprint != first.fingerprint, "the replaced file")
    assert sum(r["files"]["changed"] for r, _ in running.reports) == 1
    assert all(paths == [str(target)] for _, paths in running.reports)  # never the hidden .part file


@pytest.mark.slow
def test_watch_command_catches_up_after_a_restart_and_stops_cleanly_on_ctrl_c(tmp_path, clips):
    lib, data = folders(tmp_path)
    shutil.copy(clips[0], lib / "a.mp4")
    with watching(lib, data):  # a first watch, in this process, finds the file already there
        wait_until(lambda: str(lib / "a.mp4") in known(data), "the first file")
    (lib / "a.mp4").unlink()  # while no watch runs
    shutil.copy(clips[1], lib / "b.mp4")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    args = [sys.executable, str(ROOT / "run.py"), "watch", str(lib), "--data", str(data), *ENCODER]
    proc = subprocess.Popen(
        [*args, "--settle", "1", "--precision", "fp32"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().startswith(f"watching {lib} (file-system events")
        wait_until(lambda: set(known(data)) == {str(lib / "b.mp4")}, "the catch-up")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "1 new, 0 changed" in out and "0 moved, 1 deleted" in out  # in one batch or two
    assert out.rstrip().endswith("stopped watching; every indexed video is saved")


def test_watch_refuses_a_path_that_is_not_a_folder(tmp_path):
    from helpers import cli_in_process

    done = cli_in_process("watch", tmp_path / "nope", "--data", tmp_path / "data", *ENCODER, expect=2)
    assert "cannot watch" in done.stderr and "not a folder" in done.stderr


# -- the bar: serve --watch in a real browser ----------------------------------------------------


LISTED = "name => (document.querySelector('#recent')?.innerText || '').includes(name)"  # in "Recently indexed"


def test_a_watched_folder_picks_up_a_file_written_after_start(browser, tmp_path, clips):
    lib, data = folders(tmp_path)
    shutil.copy(clips[0], lib / "first.mp4")
    index(data, lib)  # the data dir's encoders (tiny, random) are what the server's watch indexes with
    with live_server(data, "--root", str(lib), "--watch", "--settle", "1") as url:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        try:
            page.goto(url)
            page.get_by_role("tab", name="Index").click()
            page.wait_for_function(LISTED, arg="first.mp4", timeout=60_000)
            shutil.copy(clips[1], lib / "arrived.mp4")
            page.wait_for_function(LISTED, arg="arrived.mp4", timeout=WAIT_S * 1000)
            text = page.inner_text("#recent")
            assert text.index("arrived.mp4") < text.index("first.mp4")  # newest first
            page.get_by_role("tab", name="Search").click()
            page.fill("#query-text textarea", "anything")
            page.click("#search-button")  # the server's search service picks up what the watch committed
            page.wait_for_function(
                "() => [...document.querySelectorAll('#moments .caption-label')]"
                ".some(c => c.textContent.startsWith('arrived.mp4'))",
                timeout=60_000,
            )
        finally:
            page.close()
