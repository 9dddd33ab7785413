"""Bad footage, concurrent use, a full or read-only data dir, encoder changes, hostile queries."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from badfiles import ODD_NAMES, bad_corpus, huge_frames, long_video
from helpers import ENCODER, ROOT, cli, cli_in_process, in_mount_namespace, index, needs_unshare, search, settings

from app.demo import synthesize_video
from indexer.pipeline import run_index

pytestmark = pytest.mark.slow  # real CLI runs over bad corpora, memory, full and read-only disks

FP32 = ["--precision", "fp32"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, demo_videos):
    folder = tmp_path_factory.mktemp("bad") / "footage"
    expected = bad_corpus(folder, demo_videos[0])
    data = tmp_path_factory.mktemp("data")
    report = index(data, folder, expect=3)
    return folder, data, expected, report


def test_every_bad_input_gets_a_per_file_status(corpus):
    _folder, data, expected, report = corpus
    failures = {Path(f["path"]).name: f["error"] for f in report["failures"]}
    for name, outcome in expected.items():
        if outcome == "indexed":
            assert name not in failures, (name, failures.get(name))
        else:
            assert failures[name].startswith(outcome), (name, failures.get(name))
    assert report["files"]["new"] == sum(o == "indexed" for o in expected.values())
    warnings = {Path(w["path"]).name: w["error"] for w in report["warnings"]}
    assert "corrupt packet" in warnings["glitch in the middle.mp4"]  # policy: keep what decodes
    status = json.loads(cli_in_process("status", "--data", data, "--json").stdout)
    assert {Path(f["path"]).name for f in status["failures"]} >= {"zero-byte.mp4", "garbage.mov", "voice memo.m4a"}


def test_odd_file_names_round_trip_through_search(corpus):
    folder, data, *_ = corpus
    for name in ODD_NAMES:
        [top] = search(data, "--video", folder / name, "-k", "1", *FP32)
        assert top["path"] == str(folder / name)


def test_short_and_vfr_videos_have_true_times(corpus):
    folder, data, *_ = corpus
    [short] = search(data, "--video", folder / "five frames.mp4", "-k", "1", *FP32)
    assert (short["start"], short["end"]) == (0.0, pytest.approx(5 / 30, abs=1e-3))
    vfr = search(
        data, "--like", search(data, "--video", folder / "vfr.mp4", "-k", "1", *FP32)[0]["clip_id"], "-k", "20", *FP32
    )
    assert max(m["end"] for m in vfr if m["path"].endswith("vfr.mp4")) == pytest.approx(3.8, abs=0.1)


def peak_rss_mb(*args: str) -> float:
    """Peak resident memory of one `run.py` command, measured by the process itself."""
    code = (
        "import resource, runpy, sys; sys.argv = ['run.py', *sys.argv[1:]];\n"
        "try:\n    runpy.run_path('run.py', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=600,
    )
    return float(done.stderr.strip().splitlines()[-1])


def test_8k_frames_index_in_bounded_memory(tmp_path):
    (tmp_path / "8k").mkdir()
    huge_frames(tmp_path / "8k" / "8k.mp4")
    synthesize_video(tmp_path / "small" / "small.mp4", seed=3, seconds=1.0, width=160, height=120)
    baseline = peak_rss_mb("index", "--data", str(tmp_path / "data-small"), str(tmp_path / "small"), *ENCODER)
    rss = peak_rss_mb("index", "--data", str(tmp_path / "data-8k"), str(tmp_path / "8k"), *ENCODER)
    assert json.loads(cli_in_process("status", "--data", tmp_path / "data-8k", "--json").stdout)["clips"] == 1
    # One 8K frame is 50 MB in YUV and 100 MB in RGB; frames are never converted at full size.
    assert rss - baseline < 600, f"peak RSS {rss:.0f} MB vs {baseline:.0f} MB for a small video"


def test_memory_does_not_grow_with_video_length(tmp_path):
    rss = {}
    for minutes in (1, 10):
        lib = tmp_path / f"lib{minutes}"
        long_video(lib / "long.mp4", seconds=60 * minutes)
        rss[minutes] = peak_rss_mb("index", "--data", str(tmp_path / f"data{minutes}"), str(lib), *ENCODER)
    assert rss[10] - rss[1] < 60, rss  # ten times the footage, (almost) the same memory


class TouchWhileIndexing:
    """Progress hook that appends to a file the moment the indexer starts on it."""

    def __init__(self, victim: Path):
        self.victim = victim

    def __call__(self, total):
        return self

    def set_postfix_str(self, name: str) -> None:
        if name == self.victim.name:
            with open(self.victim, "ab") as handle:
                handle.write(b"\0" * 100)

    def update(self, n):
        pass

    def close(self):
        pass


def test_a_file_changing_while_indexed_is_not_stored(tmp_path, demo_videos):
    lib = tmp_path / "lib"
    lib.mkdir()
    for video in demo_videos[:2]:
        shutil.copy(video, lib / video.name)
    report = run_index(settings(tmp_path / "data"), [lib], TouchWhileIndexing(lib / "scene_01.mp4"))
    assert [(Path(f.path).name, f.error.split(";")[0]) for f in report.failures] == [
        ("scene_01.mp4", "changed while being indexed")
    ]
    assert report.files.new == 1
    again = run_index(settings(tmp_path / "data"), [lib])
    assert again.files.new == 1 and not again.failures  # picked up by the next run


def test_a_second_index_run_is_refused_while_one_runs(small_index):
    from indexer.lock import IndexLock

    _lib, more, data = small_index
    with IndexLock(data / "index.lock"):  # this process is "the other run"
        refused = cli("index", "--data", data, more, *ENCODER, expect=2)
        searching = search(data, "--text", "x", *FP32)  # readers never wait for the lock
    assert f"another index run (pid {os.getpid()}) is using {data}" in refused.stderr
    assert {Path(h["path"]).name for h in searching} == {"scene_00.mp4", "scene_01.mp4"}
    assert json.loads(cli_in_process("index", "--data", data, more, *ENCODER, "--json").stdout)["files"]["new"] == 3


def test_another_encoder_with_rebuild_replaces_every_clip_and_vector(tmp_path, demo_videos):
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(demo_videos[0], lib / "a.mp4")
    data = tmp_path / "data"
    index(data, lib)
    other = [a if a != "random" else "random:1" for a in ENCODER]
    rebuilt = json.loads(cli_in_process("index", "--data", data, lib, *other, "--rebuild", "--json").stdout)
    assert rebuilt["clips_embedded"] == 4 and rebuilt["vectors_embedded"] == {"video": 4, "image": 4}
    status = json.loads(cli_in_process("status", "--data", data, "--json").stdout)
    assert status["towers"]["video"]["identity"]["weights"] == "random:1" and status["clips"] == 4
    assert [s["name"] for s in status["vector_sets"]] == ["video", "image"]  # no second set: nothing kept


@pytest.fixture
def small_index(tmp_path, demo_videos):
    lib = tmp_path / "lib"
    lib.mkdir()
    for video in demo_videos[:2]:
        shutil.copy(video, lib / video.name)
    more = tmp_path / "more"
    for i in range(3):
        synthesize_video(more / f"m{i}.mp4", seed=50 + i, seconds=8.0)
    data = tmp_path / "data"
    index(data, lib)
    return lib, more, data


ENC = " ".join(ENCODER)


@needs_unshare
def test_read_only_data_dir_refuses_indexing_and_still_searches(small_index):
    _lib, more, data = small_index
    done = in_mount_namespace(f"""
        mount --bind {data} {data} && mount -o remount,bind,ro {data}
        set +e
        "$PY" run.py index --data {data} {more} {ENC}; echo "index-exit=$?"
        "$PY" run.py search --data {data} --text anything --json > {data.parent}/hits.json; echo "search-exit=$?"
    """)
    assert "index-exit=2" in done.stdout and "search-exit=0" in done.stdout, done.stderr
    assert "is read-only. Searching it still works" in done.stderr
    hits = json.loads((data.parent / "hits.json").read_text())
    assert {Path(h["path"]).name for h in hits} == {"scene_00.mp4", "scene_01.mp4"}


@needs_unshare
@pytest.mark.parametrize("HEADROOM_KB", [16, 160])  # full before the run starts / during the run
def test_full_disk_stops_cleanly_and_keeps_the_previous_index(small_index, HEADROOM_KB):
    _lib, more, data = small_index
    pages = sum(-(-f.stat().st_size // 4096) for f in data.rglob("*") if f.is_file())  # tmpfs counts pages
    size_kb = pages * 4 + HEADROOM_KB
    done = in_mount_namespace(f"""
        mkdir -p /tmp/tubelet-full && mount -t tmpfs -o size={size_kb}k tmpfs /tmp/tubelet-full
        cp -r {data}/. /tmp/tubelet-full/
        set +e
        "$PY" run.py index --data /tmp/tubelet-full {more} {ENC}; echo "index-exit=$?"
        "$PY" run.py search --data /tmp/tubelet-full --text anything --json > {data.parent}/hits.json
        echo "search-exit=$?"
        "$PY" run.py status --data /tmp/tubelet-full --check --json > {data.parent}/check.json
    """)
    assert "index-exit=2" in done.stdout and "search-exit=0" in done.stdout, done.stderr
    assert "cannot index into" in done.stderr or "cannot write to the data dir" in done.stderr, done.stderr
    assert "still works" in done.stderr or "intact and searchable" in done.stderr
    hits = json.loads((data.parent / "hits.json").read_text())
    assert {Path(h["path"]).name for h in hits} >= {"scene_00.mp4", "scene_01.mp4"}
    check = json.loads((data.parent / "check.json").read_text())
    assert not any("vector" in p and "missing" in p for p in check["problems"]), check


def test_check_finds_and_repair_fixes_derived_files(small_index):
    _lib, _more, data = small_index
    assert json.loads(cli_in_process("status", "--data", data, "--check", "--json").stdout)["ok"]
    for f in (data / "index").glob("video-*.faiss"):
        f.unlink()
    shutil.rmtree(data / "thumbs")
    broken = json.loads(cli_in_process("status", "--data", data, "--check", "--json", expect=3).stdout)
    assert any("video index file" in p for p in broken["problems"])
    assert any("thumbnails are missing" in p for p in broken["problems"])
    fixed = json.loads(cli_in_process("status", "--data", data, "--repair", "--json").stdout)
    assert fixed["ok"] and "re-made 8 thumbnails" in fixed["repaired"]


def test_hostile_cli_queries_are_clear_errors(small_index, tmp_path):
    _lib, _more, data = small_index
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    cases = {
        ("--text", "x", "-k", "0"): "k must be between 1 and 1000",
        ("--text", "x", "-k", "99999999"): "k must be between 1 and 1000",
        ("--text", ""): "nothing to search for",
        ("--text", "   "): "text must be 1 to 1000 characters",
        ("--text", "x" * 5000): "text must be 1 to 1000 characters",
        ("--text", "x", "--indexed-after", "yesterday"): "--indexed-after takes an ISO date",
        ("--video", "/etc/passwd"): "cannot open as media",
        ("--video", str(tmp_path / "../../nope.mp4")): "cannot read file",
        ("--image", str(notes)): "query image",
        ("--text", "x", "--min-duration", "5", "--max-duration", "1"): "max duration must not be below",
        ("--like", "-5"): "no clip with id -5",
    }
    for args, message in cases.items():
        done = cli_in_process("search", "--data", data, *args, expect=2)
        assert message in done.stderr, (args, done.stderr)
    odd_filters = search(data, "--text", "x", "--path-prefix", "%'; DROP TABLE clips;--", "--path-glob", "[")
    assert odd_filters == []
    assert json.loads(cli_in_process("status", "--data", data, "--json").stdout)["clips"] == 8
