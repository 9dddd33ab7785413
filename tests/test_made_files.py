"""Files the server makes on demand (app/made_files.py): one maker per preview however many threads ask for it,
and DATA/previews/ and DATA/exports/ trimmed to their caps, least recently used first, at serve start and
after each new file, never a file in use or being written."""

from __future__ import annotations

import os
import threading
import time
from fractions import Fraction

import pytest
from helpers import index
from media_videos import vfr_ticks, write_timed_video

import app.media
from app.made_files import MadeFiles
from app.search import SearchService
from app.ui import Handlers
from indexer.settings import DataDir


@pytest.mark.slow
def test_concurrent_plays_of_one_moment_encode_its_preview_once(tmp_path, monkeypatch):
    """Two server threads asked for the same preview wrote it under one temporary name (per process, not per
    thread): one rename then failed and its player said "Cannot play". Now the second waits for the first."""
    lib = tmp_path / "library"
    lib.mkdir()
    write_timed_video(lib / "a.mp4", vfr_ticks(60), Fraction(1, 30))
    index(tmp_path / "data", lib)
    data = DataDir(tmp_path / "data")
    handlers = Handlers(SearchService(data, "cpu", "fp32"), None, data)
    clip_id = 1  # the first window of the one video
    encodes, real_encode = [], app.media.encode_preview

    def slow_encode(*args):
        encodes.append(args[1])
        time.sleep(0.3)  # widens the race; the assertions are on what was made, not on time
        real_encode(*args)

    monkeypatch.setattr(app.media, "encode_preview", slow_encode)
    players = [None, None]

    def play(slot):
        players[slot] = handlers.play_clip(clip_id)

    threads = [threading.Thread(target=play, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert "tubelet-problem" not in players[0] and players[0] == players[1]
    assert len(encodes) == 1 and [p.name for p in (tmp_path / "data" / "previews").iterdir()] == [encodes[0].name]


def write(path, size, mtime):
    path.write_bytes(b"x" * size)
    os.utime(path, (mtime, mtime))
    return path


def test_trim_deletes_the_least_recently_used_files_beyond_the_cap(tmp_path):
    now = 100_000.0
    old = [write(tmp_path / f"{name}.mp4", 100, now - age) for name, age in (("b", 8000), ("a", 9000), ("c", 7000))]
    recent = write(tmp_path / "d.mp4", 100, now - 60)  # handed out a minute ago: may still be playing
    writing = write(tmp_path / ".e.mp4.123.tmp.mp4", 300, now - 9999)  # a writer's temporary file
    made = MadeFiles(tmp_path, max_bytes=50, keep_seconds=3600)
    assert made.trim(now) == [old[1], old[0], old[2]]  # oldest first, until only what must stay is left
    assert sorted(p.name for p in tmp_path.iterdir()) == [writing.name, recent.name]
    assert MadeFiles(tmp_path).trim(now) == []  # no cap: nothing is deleted


def test_each_new_file_trims_the_folder_and_a_file_handed_out_again_is_kept(tmp_path):
    made = MadeFiles(tmp_path, max_bytes=250, keep_seconds=0)
    for name, mtime in (("a", 1000), ("b", 2000)):
        os.utime(made.get(name, lambda path: path.write_bytes(b"x" * 100)), (mtime, mtime))
    assert made.get("a", pytest.fail) == tmp_path / "a"  # found, not made again: now the most recently used
    made.get("c", lambda path: path.write_bytes(b"x" * 100))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "c"]


def test_serve_start_trims_previews_and_exports_to_their_caps(tmp_path, monkeypatch):
    from app.server import ServeSettings, build_app

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))  # build_app points it at the uploads
    data = DataDir(tmp_path / "data")
    for folder in ("previews", "exports"):
        (data.root / folder).mkdir(parents=True)
        for age, name in ((3, "old.mp4"), (2, "older-than-newest.mp4"), (1, "newest.mp4")):
            write(data.root / folder / name, 600 << 10, time.time() - age * 86400)
    build_app(ServeSettings(data, max_previews_mb=1, max_exports_mb=1))
    for folder in ("previews", "exports"):
        assert [p.name for p in (data.root / folder).iterdir()] == ["newest.mp4"]
