"""Hostile input (issue 11): odd roots and files, huge frames, long query videos, pathological filters
and numbers. Each is refused with a clear message, bounded in time and memory, and loses nothing indexed."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from badfiles import long_video
from helpers import ENCODER, ROOT, cli_in_process, settings

import app.search
from app.demo import synthesize_video
from app.query import MAX_GLOB, Filters, Query, QueryError, SearchOptions
from app.search import MAX_QUERY_WINDOWS, SearchService, _video_passes
from indexer.pipeline import run_index
from indexer.scan import scan_roots
from indexer.settings import DataDir
from indexer.towers import Towers

FP32 = ["--device", "cpu", "--precision", "fp32"]


@pytest.fixture(scope="module")
def long_library(tmp_path_factory, demo_videos):
    """A 5-minute tiny video beside two demo videos, indexed once."""
    lib = tmp_path_factory.mktemp("long-lib")
    long = long_video(lib / "long.mp4", seconds=300)
    for video in demo_videos[:2]:
        shutil.copy(video, lib / video.name)
    data = tmp_path_factory.mktemp("long-data")
    report = run_index(settings(data), [lib])
    assert report.files.new == 3 and not report.failures, report.failures
    return lib, long, data


@pytest.fixture(scope="module")
def service(long_library):
    return SearchService(DataDir(long_library[2]), "cpu", "fp32").load()


# -- finding 4: a single file is a root of one file ------------------------------------------------


def test_a_single_file_root_is_the_file_not_its_folder(tmp_path, demo_videos):
    from sqlalchemy import select

    from indexer.catalog import Catalog
    from indexer.schema import VideoPath

    folder = tmp_path / "folder"
    folder.mkdir()
    video = Path(shutil.copy(demo_videos[0], folder / "one.mp4"))
    (folder / "private.pdf").write_bytes(b"%PDF-1.4 not for the web")
    report = run_index(settings(tmp_path / "data"), [video])
    assert report.files.new == 1
    catalog = Catalog(DataDir(tmp_path / "data").catalog).open()
    try:
        with catalog.session() as s:
            roots = s.scalars(select(VideoPath.root).distinct()).all()
    finally:
        catalog.close()
    assert roots == [str(video)]  # the file is its own root: its folder (and private.pdf) is not part of it


def test_a_link_to_the_catalog_inside_a_root_is_never_opened(tmp_path, demo_videos):
    """Opening and closing the catalog's file under any name drops the indexing process's SQLite locks
    (and a server's, for runs started from the UI), so the scan skips the catalog's inodes."""
    lib, data = tmp_path / "lib", tmp_path / "data"
    lib.mkdir()
    shutil.copy(demo_videos[0], lib / "a.mp4")
    first = run_index(settings(data), [lib])
    assert first.files.new == 1 and not first.failures
    os.link(data / "catalog.db", lib / "looks-like-a.mp4")  # a hard link: same inode, a video's name
    (lib / "Also.MP4").symlink_to(data / "catalog.db")
    shutil.copy(demo_videos[1], lib / "b.mp4")
    second = run_index(settings(data), [lib])
    assert [f.path for f in second.failures] == []  # not probed at all (it would fail as "not media")
    assert second.files.new == 1 and second.files.skipped == first.files.skipped + 2


# -- finding 8: a long query video is embedded from at most N windows, within a deadline -----------


def test_a_long_query_video_embeds_at_most_n_windows_and_finds_itself(long_library, service, monkeypatch, caplog):
    _lib, long, _data = long_library
    embedded = []
    real_embed = Towers.embed

    def counting_embed(self, names, clips):
        embedded.append(next(iter(clips.values())).shape[0] if isinstance(clips, dict) else clips.shape[0])
        return real_embed(self, names, clips)

    monkeypatch.setattr(Towers, "embed", counting_embed)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="app.search"):
        result = service.search(Query(video=long), options=SearchOptions(k=3, group="video"))
    assert sum(embedded) == MAX_QUERY_WINDOWS  # 5 minutes hold 46 windows; 16 are embedded
    assert time.monotonic() - started < 30
    assert result.videos[0].path == str(long)  # still the right video first
    assert f"embedded {MAX_QUERY_WINDOWS} windows spread evenly over 0.0-" in caplog.text


def test_a_short_query_range_embeds_all_its_windows(long_library, service, monkeypatch):
    _lib, long, _data = long_library
    embedded = []
    real_embed = Towers.embed
    monkeypatch.setattr(
        Towers, "embed", lambda self, names, clips: embedded.append(1) or real_embed(self, names, clips)
    )
    vectors = service.embed_video(long, 10.0, 10.0 + 5 * 6.4)  # 5 windows of 6.4 s at 10 fps
    assert len(embedded) == 5 and set(vectors) == {"video", "appearance"}


def test_a_query_range_past_the_end_spreads_over_the_video(long_library, service, monkeypatch):
    _lib, long, _data = long_library
    embedded = []
    real_embed = Towers.embed
    monkeypatch.setattr(
        Towers, "embed", lambda self, names, clips: embedded.append(1) or real_embed(self, names, clips)
    )
    service.embed_video(long, 0.0, 1e8)  # seeking to 1e8 s overflowed; clamped to the video's end
    assert len(embedded) == MAX_QUERY_WINDOWS


def test_a_query_video_past_its_deadline_is_a_clear_error(long_library, service, monkeypatch):
    _lib, long, _data = long_library
    monkeypatch.setattr(app.search, "QUERY_VIDEO_SECONDS", 0.0)
    with pytest.raises(
        QueryError,
        match=r"query video .*long\.mp4: decoding stopped at its time limit \(0 s\); "
        r"give a shorter range",
    ):
        service.embed_video(long)


# -- finding 9: --path-glob is bounded and linear --------------------------------------------------


def test_path_glob_is_bounded_in_length(tmp_path):
    with pytest.raises(QueryError, match=f"path_glob must be at most {MAX_GLOB} characters, got 30000"):
        Filters(path_glob="[" * 30000)
    started = time.monotonic()
    done = cli_in_process("search", "--data", tmp_path, "--text", "x", "--path-glob", "[" * 30000, expect=2)
    assert "path_glob must be at most 1000 characters" in done.stderr and time.monotonic() - started < 2


class _Video:
    def __init__(self, path: str):
        self.paths, self.duration, self.indexed_at = [path], 1.0, None


@pytest.mark.parametrize(
    "pattern",
    ["[" * MAX_GLOB, "*a" * (MAX_GLOB // 2), "[!" * (MAX_GLOB // 2), "*?" * (MAX_GLOB // 2), "*[a]" * (MAX_GLOB // 4)],
)
def test_pathological_path_globs_are_fast(service, pattern):
    videos = [_Video("/lib/" + "a" * 4000 + str(i)) for i in range(200)]
    started = time.monotonic()
    glob = app.search.path_glob_matcher(pattern)  # once per search
    matched = [v for v in videos if _video_passes(v, Filters(path_glob=pattern), glob)]
    assert time.monotonic() - started < 1.0, pattern[:10]
    assert service.allowed_clip_ids(Filters(path_glob=pattern)) is not None
    assert len(matched) in (0, 200)


def test_path_glob_still_filters(long_library, service):
    _lib, long, _data = long_library
    hits = service.search(Query(text="x"), Filters(path_glob="*/long.*"), SearchOptions(k=50))
    assert hits.moments and {m.path for m in hits.moments} == {str(long)}


def test_a_zero_weight_on_every_searched_part_says_what_weights_allow(service):
    with pytest.raises(QueryError) as refused:
        service.search(Query(text="x", negative="y"), options=SearchOptions(weights={"text": 0}))
    assert str(refused.value) == (
        "weight text=0 leaves this query nothing to search for: a weight is 0 or more (0 leaves that part out), "
        "and at least one of text needs a weight above 0"
    )
    hits = service.search(Query(text="x", negative="y"), options=SearchOptions(weights={"negative": 0}))
    assert hits.moments  # a zero weight on another part only leaves that part out


def test_one_rule_says_whether_a_data_dir_has_a_catalog(tmp_path):
    from app.ui import Handlers

    data = DataDir(tmp_path)
    (tmp_path / "catalog.db").mkdir()  # a folder by that name is no catalog
    assert not data.has_catalog and Handlers(SearchService(data, "cpu", "fp32"), None, data).library("") == []
    with pytest.raises(QueryError, match="no index at"):
        SearchService(data, "cpu", "fp32").load()
    assert DataDir(
        tmp_path, "postgresql://db.example/tubelet"
    ).has_catalog  # a server database is asked, not looked for


# -- finding 10: FIFOs, devices -------------------------------------------------------------------


class FifoWatch:
    """A FIFO, and a thread that would unblock (and notice) anyone who opens it for reading."""

    def __init__(self, path: Path):
        self.path = path
        os.mkfifo(path)
        self.opened = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        time.sleep(1.0)
        while not self._stop.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)  # fails with ENXIO while no reader
            except OSError:
                time.sleep(0.1)
                continue
            self.opened = True  # a reader was blocked in open(): release it with EOF
            os.close(fd)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def fifo(tmp_path):
    watch = FifoWatch(tmp_path / "clip.mp4")
    yield watch
    watch.close()


@pytest.mark.parametrize("option, what", [("--video", "query video"), ("--image", "query image")])
def test_a_fifo_query_file_is_refused_without_opening_it(long_library, fifo, option, what):
    _lib, _long, data = long_library
    done = cli_in_process("search", "--data", data, option, fifo.path, *FP32, expect=2)
    assert f"error: {what} {fifo.path}: is not a regular file (a FIFO)" in done.stderr
    assert not fifo.opened


def test_a_fifo_in_the_library_is_reported_as_skipped(tmp_path, demo_videos, fifo):
    lib = fifo.path.parent
    shutil.copy(demo_videos[0], lib / "real.mp4")
    report = run_index(settings(tmp_path / "data"), [lib])
    assert report.files.new == 1
    assert [(Path(f.path).name, f.error) for f in report.failures] == [
        ("clip.mp4", "not a regular file (a FIFO); skipped")
    ]
    assert not fifo.opened


def test_devices_and_fifos_are_refused_as_roots(tmp_path, fifo):
    cases = {
        "/dev/zero": "cannot index /dev/zero: is not a regular file or directory (a character device)",
        str(fifo.path): f"cannot index {fifo.path}: is not a regular file or directory (a FIFO)",
    }
    for root, message in cases.items():
        done = cli_in_process("index", "--data", tmp_path / "data", root, *ENCODER, expect=2)
        assert f"error: {message}" in done.stderr, done.stderr
    assert not fifo.opened


# -- finding 11: frame size bounds memory -----------------------------------------------------------


def measured(*args) -> tuple[float, subprocess.CompletedProcess]:
    """Peak RSS (MB) of one `run.py` command, and its output."""
    code = (
        "import resource, runpy, sys; sys.argv = ['run.py', *sys.argv[1:]]\n"
        "try:\n    runpy.run_path('run.py', run_name='__main__')\n"
        "except SystemExit as exc:\n    code = exc.code\n"
        "print('peak-rss-mb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)\n"
        "sys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=600,
    )
    line = next(x for x in done.stderr.splitlines() if x.startswith("peak-rss-mb"))
    return float(line.split()[1]), done


HUGE = 16000


@pytest.fixture(scope="module")
def huge_video(tmp_path_factory) -> Path:
    """Two 16000x16000 H.264 frames (750 KB). Made in a child process: encoding one takes 2.6 GB."""
    path = tmp_path_factory.mktemp("huge") / "huge.mkv"
    script = f"""
import av, numpy as np
with av.open({str(path)!r}, "w") as c:
    s = c.add_stream("libx264", rate=10)
    s.width = s.height = {HUGE}
    s.pix_fmt = "yuv420p"
    s.options = {{"preset": "ultrafast", "crf": "40", "threads": "1", "rc-lookahead": "0"}}
    frame = av.VideoFrame({HUGE}, {HUGE}, "yuv420p")
    for plane in frame.planes:
        np.frombuffer(plane, np.uint8)[:] = 128
    for i in range(2):
        frame.pts = i
        c.mux(s.encode(frame))
    c.mux(s.encode(None))
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    return path


@pytest.mark.slow
def test_a_huge_frame_is_refused_in_bounded_memory(tmp_path, huge_video):
    (tmp_path / "huge").mkdir()
    shutil.copy(huge_video, tmp_path / "huge" / "huge.mkv")
    synthesize_video(tmp_path / "small" / "small.mp4", seed=3, seconds=1.0, width=160, height=120)
    baseline, _ = measured("index", "--data", tmp_path / "data", tmp_path / "small", *ENCODER, "--json")
    rss, done = measured("index", "--data", tmp_path / "data", tmp_path / "huge", *ENCODER)
    assert done.returncode == 3, done.stderr
    limit = "is above the limit of 8192x4320 (35.4 megapixels)"
    assert f"failed: {tmp_path / 'huge' / 'huge.mkv'}: resolution 16000x16000 {limit}" in done.stdout
    assert rss - baseline < 150, f"peak RSS {rss:.0f} MB vs {baseline:.0f} MB for a small video"  # it was 2.5 GB
    rss, done = measured("search", "--data", tmp_path / "data", "--video", huge_video, *FP32)
    assert done.returncode == 2 and f"query video {huge_video}: resolution 16000x16000 {limit}" in done.stderr
    assert rss - baseline < 150, f"search peak RSS {rss:.0f} MB vs {baseline:.0f} MB"
    image = cli_in_process("search", "--data", tmp_path / "data", "--image", huge_video, *FP32, expect=2)
    assert f"query image {huge_video}: resolution 16000x16000 {limit}" in image.stderr
    small = cli_in_process("search", "--data", tmp_path / "data", "--text", "x", "--json", *FP32)
    assert "small.mp4" in small.stdout  # nothing indexed was lost


# -- finding 19: deep trees, symlinks, pseudo and other filesystems -------------------------------


@pytest.fixture
def deep_tree(tmp_path):
    """lib/d/d/.../d, 1500 levels (made and removed level by level: pathlib and shutil recurse)."""
    levels = [tmp_path / "lib"]
    for _ in range(1500):
        os.mkdir(levels[-1])
        levels.append(levels[-1] / "d")
    deepest = levels[-2]
    yield levels[0], deepest
    for entry in deepest.iterdir():
        entry.unlink()
    for level in reversed(levels[:-1]):
        os.rmdir(level)


def test_a_1500_deep_tree_indexes_its_one_video_quickly(tmp_path, demo_videos, deep_tree):
    lib, deepest = deep_tree
    shutil.copy(demo_videos[0], deepest / "deep.mp4")
    (deepest / "loop").symlink_to(lib)  # a link back up is not walked again
    started = time.monotonic()
    scan = scan_roots([lib])
    assert time.monotonic() - started < 5
    assert [f.path.name for f in scan.files] == ["deep.mp4"] and not scan.failures
    report = run_index(settings(tmp_path / "data"), [lib])
    assert report.files.new == 1 and not report.failures, report.failures
    assert time.monotonic() - started < 60


def test_pseudo_filesystems_are_refused_as_roots_and_skipped_inside_them(tmp_path):
    for root in ("/proc", "/sys", "/dev", "/proc/self/root"):
        started = time.monotonic()
        done = cli_in_process("index", "--data", tmp_path / "data", root, *ENCODER, expect=2)
        assert f"error: cannot index {root}: it is on a pseudo filesystem" in done.stderr, done.stderr
        assert time.monotonic() - started < 2
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "kernel").symlink_to("/proc/sys/kernel/random")  # regular-looking files, under /proc
    scan = scan_roots([lib])
    assert scan.files == [] and scan.failures == [] and scan.skipped == 1


def test_one_file_system_stays_on_the_roots_filesystem(tmp_path, demo_videos):
    other = Path("/dev/shm")
    if not other.is_dir() or os.stat(other).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the temp dir")
    elsewhere = other / f"tubelet-test-{os.getpid()}"
    elsewhere.mkdir()
    try:
        shutil.copy(demo_videos[0], elsewhere / "mounted.mp4")
        lib = tmp_path / "lib"
        lib.mkdir()
        shutil.copy(demo_videos[1], lib / "local.mp4")
        (lib / "mount").symlink_to(elsewhere)
        assert sorted(f.path.name for f in scan_roots([lib]).files) == ["local.mp4", "mounted.mp4"]
        staying = scan_roots([lib], one_file_system=True)
        assert [f.path.name for f in staying.files] == ["local.mp4"] and staying.skipped == 1
    finally:
        shutil.rmtree(elsewhere)


# -- finding 20: numbers a query can use ---------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ("--like", "9223372036854775808"),
            "like must be between -9223372036854775808 and 9223372036854775807, got 9223372036854775808",
        ),
        (("--like", "-9223372036854775809"), "like must be between"),
        (("--video", "q.mp4", "--start", "nan"), "start must be a finite number, got nan"),
        (("--video", "q.mp4", "--start", "inf"), "start must be a finite number, got inf"),
        (("--video", "q.mp4", "--end=-inf"), "end must be a finite number, got -inf"),
        (("--text", "x", "--weight", "text=nan"), "weight text must be a finite number, got nan"),
        (("--text", "x", "--weight", "text=inf"), "weight text must be a finite number, got inf"),
        (("--text", "x", "--weight", "text=-1"), "weight text must be 0 or more, got -1.0"),
        (("--text", "x", "--min-score", "nan"), "min_score must be a finite number, got nan"),
        (("--video", "q.mp4", "--start", "1e300"), "start must be at most 1e+09, got 1e+300"),
        (("--text", "x", "--indexed-after", "0001-01-01T00:00:00+01:00"), "--indexed-after takes an ISO date"),
        (("--text", "x", "--min-duration", "nan"), "min_duration must be a finite number, got nan"),
        (("--text", "x", "--max-duration", "inf"), "max_duration must be a finite number, got inf"),
        (("--text", "x", "--max-moment", "nan"), "max_moment must be a finite number, got nan"),
        (("--text", "x", "--max-moment", "0"), "max_moment must be more than 0 seconds, got 0.0"),
        (("--text", "x", "--max-moment", "-5"), "max_moment must be more than 0 seconds, got -5.0"),
    ],
)
def test_hostile_numbers_are_clear_errors(tmp_path, args, message):
    done = cli_in_process("search", "--data", tmp_path, *args, expect=2)
    assert f"error: {message}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_query_records_refuse_what_the_api_could_send():
    cases = [
        (lambda: SearchOptions(min_score=float("nan")), "min_score must be a finite number, got nan"),
        (lambda: SearchOptions(k=1.7), "k must be a whole number, got 1.7"),
        (lambda: SearchOptions(k=True), "k must be a whole number, got True"),
        (lambda: SearchOptions(max_moment=float("inf")), "max_moment must be a finite number, got inf"),
        (lambda: SearchOptions(max_moment=None), "max_moment must be more than 0 seconds, got None"),
        (lambda: Query(like=1.7), "like must be a whole number, got 1.7"),
        (lambda: Query(video=Path("q.mp4"), start="3"), "start must be a finite number, got 3"),
    ]
    for make, message in cases:
        with pytest.raises(QueryError) as caught:
            make()
        assert str(caught.value) == message


@pytest.mark.parametrize(
    "args, message",
    [
        (("index", "x", "--batch-size", "0"), "argument --batch-size: must be 1 or more, got 0"),
        (("index", "x", "--frame-interval", "-1"), "argument --frame-interval: must be 1 or more, got -1"),
        (("index", "x", "--window-frames", "1e9"), "argument --window-frames: must be a whole number, got '1e9'"),
        (("index", "x", "--stride-frames", "0"), "argument --stride-frames: must be 1 or more, got 0"),
        (("index", "x", "--clip-frames", "0"), "argument --image-text-frames/--clip-frames: must be 1 or more, got 0"),
        (("serve", "--port", "70000"), "argument --port: must be a TCP port, 1 to 65535, got 70000"),
        (("serve", "--max-upload-mb", "-5"), "argument --max-upload-mb: must be 1 or more, got -5"),
    ],
)
def test_hostile_cli_options_are_usage_errors(capsys, args, message):
    import run

    with pytest.raises(SystemExit) as exited:
        run.main(list(args))
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
