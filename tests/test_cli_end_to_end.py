"""The vertical slice through the real CLI: the library is indexed by `run.py` in a child process
(what a user runs), then searched and re-indexed through the same `run.main` in this process.

Random weights of the tiny registered variant stand in for pretrained ones (no hub here); the
checks rely on the same pixels giving the same vectors, which any fixed weights guarantee.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_VIDEOS
from helpers import ENCODER, ROOT, cli, cli_in_process, index, overlaps, peak_overlaps, search

from app.demo import cut_segment, synthesize_video

pytestmark = pytest.mark.slow  # indexes the generated and shared libraries through the CLI


@pytest.fixture(scope="module")
def library(tmp_path_factory, demo_videos):
    """Generated videos, broken files and (when present) ../shared/videos, indexed once."""
    lib = tmp_path_factory.mktemp("lib")
    for video in demo_videos:
        shutil.copy(video, lib / video.name)
    # Seeded: about 1 in 150 random byte strings happens to probe as an LRC subtitle file.
    noise = np.random.default_rng(7)
    (lib / "garbage.mp4").write_bytes(noise.bytes(20_000))
    (lib / "empty.mov").write_bytes(b"")
    (lib / "notes.txt").write_text("not a video")
    (lib / "mystery").write_bytes(noise.bytes(5_000))  # no extension: probed, not a video
    roots = [lib] + ([SHARED_VIDEOS] if SHARED_VIDEOS.is_dir() else [])
    data = tmp_path_factory.mktemp("data")
    report = json.loads(cli("index", "--data", data, *roots, *ENCODER, "--json", expect=3).stdout)  # a real process
    return lib, data, report


def test_first_run_indexes_everything_and_lists_failures(library):
    _lib, data, report = library
    failures = {Path(f["path"]).name: f["error"] for f in report["failures"]}
    assert failures["garbage.mp4"].startswith("cannot open as media")
    assert failures["empty.mov"].startswith("cannot open as media")
    assert failures["mystery"].startswith("cannot open as media")
    assert "notes.txt" not in failures and report["files"]["skipped"] >= 1
    expected_new = 6
    if SHARED_VIDEOS.is_dir():
        assert failures["torchcodec_nasa_13013_audio_only.mp3"] == "no video stream (has audio streams only)"
        assert failures["chrome_no_streams_INVALID.webm"].startswith("cannot open as media")
        expected_new += 23  # MANIFEST: 23 main files + the corrupt edge case, less the audio-only one
    assert report["files"]["new"] == expected_new
    assert report["files"]["failed"] == len(report["failures"])
    status = json.loads(cli_in_process("status", "--data", data, "--json").stdout)
    assert status["clips"] == report["clips_embedded"] == status["vectors"]
    assert status["videos"]["indexed"] == expected_new and status["index_file"]["current"]


def test_segment_cut_from_a_library_video_finds_that_moment(library, tmp_path):
    lib, data, _ = library
    source = lib / "scene_02.mp4"
    query = cut_segment(source, tmp_path / "query.mp4", 3.0, 5.5)
    hits = search(data, "--video", query, "-k", "5")
    assert hits[0]["path"] == str(source)
    assert overlaps(hits[0], 3.0, 5.5) and peak_overlaps(hits[0], 3.0, 5.5)
    assert all(h["start"] <= h["peak_start"] < h["peak_end"] <= h["end"] for h in hits)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_segment_of_real_footage_finds_its_source(library, tmp_path):
    _lib, data, _ = library
    source = SHARED_VIDEOS / "askanything_yoga.mp4"
    if not source.exists():
        pytest.skip("../shared/videos not present")
    hits = search(data, "--video", cut_segment(source, tmp_path / "yoga.mp4", 4.0, 6.5), "-k", "3")
    assert hits[0]["path"] == str(source) and overlaps(hits[0], 4.0, 6.5) and peak_overlaps(hits[0], 4.0, 6.5)


def test_query_range_of_a_longer_file(library):
    lib, data, _ = library
    hits = search(data, "--video", lib / "scene_04.mp4", "--start", "2.2", "--end", "4.2", "-k", "1")
    assert hits[0]["path"] == str(lib / "scene_04.mp4") and overlaps(hits[0], 2.2, 4.2)
    assert peak_overlaps(hits[0], 2.2, 4.2)


def test_more_like_this_returns_the_clip_first(library):
    lib, data, _ = library
    some = search(data, "--video", lib / "scene_01.mp4", "-k", "3")
    clip_id = some[1]["clip_id"]
    hits = search(data, "--like", clip_id, "-k", "3")
    assert hits[0]["clip_id"] == clip_id and hits[0]["scores"]["video"] == pytest.approx(1.0, abs=1e-4)
    assert hits[0]["scores"]["appearance"] == pytest.approx(1.0, abs=1e-4)
    assert len(hits) == 3 and hits[0]["score"] > hits[1]["score"]


def test_bad_queries_are_clear_errors(library, tmp_path):
    lib, data, _ = library
    done = cli_in_process("search", "--data", data, "--like", "999999", expect=2)
    assert "no clip with id 999999" in done.stderr
    done = cli_in_process("search", "--data", data, "--video", lib / "garbage.mp4", expect=2)
    assert "garbage.mp4: cannot open as media" in done.stderr
    done = cli_in_process("search", "--data", tmp_path / "nothing", "--like", "1", expect=2)
    assert "run `python run.py index PATH` first" in done.stderr


def test_status_and_help_do_not_load_the_model_libraries(library):
    """torch, open_clip and ray take seconds to import: commands that need no model never import them."""
    _, data, _ = library
    script = (
        "import contextlib, io, json, sys, run\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    codes = [run.main(['status', '--data', sys.argv[1], '--json'])]\n"
        "    try:\n        run.main(['index', '--help'])\n    except SystemExit as exc:\n"
        "        codes.append(exc.code)\n"
        "print(json.dumps([codes, [m for m in ('torch', 'open_clip', 'ray') if m in sys.modules]]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(data)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert json.loads(done.stdout) == [[0, 0], []], done.stderr


@pytest.mark.parametrize("command", [["index", "x"], ["demo"]])
def test_former_clip_flags_parse_like_the_image_text_ones(command):
    """`--no-clip`, `--clip-model`, `--clip-weights`, `--clip-frames` keep working as aliases."""
    import run

    parser = run.build_parser()
    names = ("no_image_text", "image_text_model", "image_text_weights", "image_text_frames")
    new = parser.parse_args(
        [
            *command,
            "--no-image-text",
            "--image-text-model",
            "M",
            "--image-text-weights",
            "W",
            "--image-text-frames",
            "3",
        ]
    )
    old = parser.parse_args([*command, "--no-clip", "--clip-model", "M", "--clip-weights", "W", "--clip-frames", "3"])
    assert [getattr(new, n) for n in names] == [getattr(old, n) for n in names] == [True, "M", "W", 3]
    defaults = parser.parse_args(command)
    assert [getattr(defaults, n) for n in names] == [False, None, None, None]  # not given: the data dir's
    assert run.index_settings(old) == run.index_settings(new)


def test_help_names_the_image_text_flags_first(capsys):
    import run

    with pytest.raises(SystemExit):
        run.main(["index", "--help"])
    out = capsys.readouterr().out
    for new, old in [
        ("no-image-text", "no-clip"),
        ("image-text-model", "clip-model"),
        ("image-text-weights", "clip-weights"),
        ("image-text-frames", "clip-frames"),
    ]:
        assert f"--{new}" in out and out.index(f"--{new}") < out.index(f"--{old}")


def test_an_unknown_encoder_is_refused_with_the_valid_names(tmp_path):
    done = cli_in_process("index", tmp_path, "--data", tmp_path / "data", "--encoder", "vit-huge", expect=2)
    assert "unknown VideoMAE v2 variant 'vit-huge'; valid: vit-tiny, vit-s" in done.stderr


def test_incremental_reindex(tmp_path, demo_videos, catalog_url):
    """Index, re-index unchanged, replaced, moved and deleted files; on the default SQLite catalog in the data dir
    and on a PostgreSQL one (`--catalog-url`)."""
    lib, data = tmp_path / "lib", tmp_path / "data"
    url = [] if catalog_url.startswith("sqlite") else ["--catalog-url", catalog_url]
    lib.mkdir()
    for video in demo_videos:
        shutil.copy(video, lib / video.name)
    first = index(data, lib, *url)
    assert first["files"]["new"] == 6 and first["clips_embedded"] == 24  # 4 windows per 8 s video
    assert (data / "catalog.db").exists() == (not url)  # the PostgreSQL catalog is all in the server

    again = index(data, lib, *url)
    assert again["clips_embedded"] == 0 and again["files"]["unchanged"] == 6

    synthesize_video(lib / "scene_03.mp4", seed=42, seconds=4.0)  # replaced content, same name
    replaced = index(data, lib, *url)
    assert replaced["files"]["changed"] == 1 and replaced["files"]["unchanged"] == 5
    assert replaced["clips_embedded"] == 2  # only the new 4 s video's windows

    (lib / "scene_01.mp4").rename(lib / "renamed scene.mp4")
    moved = index(data, lib, *url)
    assert moved["files"]["moved"] == 1 and moved["clips_embedded"] == 0
    hits = search(data, "--video", lib / "renamed scene.mp4", "-k", "1", *url)
    assert hits[0]["path"] == str(lib / "renamed scene.mp4")

    doomed = search(data, "--video", lib / "scene_05.mp4", "-k", "1", *url)[0]
    (lib / "scene_05.mp4").unlink()
    deleted = index(data, lib, *url)
    assert deleted["files"]["deleted"] == 1 and deleted["clips_embedded"] == 0
    everything = search(data, "--like", hits[0]["clip_id"], "-k", "100", *url)
    assert sum(len(h["clip_ids"]) for h in everything) == 24 - 4 + 2 - 4
    assert all("scene_05" not in h["path"] for h in everything)
    assert json.loads(cli_in_process("status", "--data", data, "--json", *url).stdout)["clips"] == 24 - 4 + 2 - 4
    assert (
        "no clip with id"
        in cli_in_process("search", "--data", data, "--like", doomed["clip_id"], *url, expect=2).stderr
    )
