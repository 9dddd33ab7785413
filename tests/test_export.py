"""`run.py export` (app/export.py): a moment written as its own MP4, stream-copied from a keyframe or
re-encoded from the exact first frame, never over an existing file, never from a changed source."""

from __future__ import annotations

import json
import os
import sqlite3
from fractions import Fraction
from pathlib import Path

import av
import pytest
from helpers import cli_in_process, index
from media_videos import frame_times, vfr_ticks, write_timed_video

from app.export import ExportError, ExportSpan, export

pytestmark = pytest.mark.slow  # the module indexes a small library first

FPS25 = Fraction(1, 25)
TICK = Fraction(1, 90000)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """Two indexed videos: 25 fps with a keyframe every second, and VFR at an odd average rate."""
    lib = tmp_path_factory.mktemp("exports") / "library"
    lib.mkdir()
    write_timed_video(lib / "gop.mp4", list(range(150)), FPS25, keyframe_every=25)
    write_timed_video(lib / "vfr.mp4", [t * 5381 for t in vfr_ticks(90)], TICK)
    data = lib.parent / "data"
    index(data, lib)
    return lib, data


def clips(data: Path, name: str) -> list[tuple[int, float, float]]:
    with sqlite3.connect(data / "catalog.db") as db:
        query = "SELECT c.id, c.start, c.end FROM clips c JOIN paths p ON p.video_id = c.video_id WHERE p.path LIKE ?"
        return sorted(db.execute(query + " ORDER BY c.start", (f"%/{name}",)))


def in_range(times, start, end):
    return [t for t in times if Fraction(start) - Fraction(1, 10**6) <= t < end]


def test_a_cut_at_a_keyframe_is_a_stream_copy_of_the_source_packets(library, tmp_path):
    lib, _data = library
    done = export(ExportSpan(lib / "gop.mp4", 1.0, 2.0), tmp_path / "cut.mp4")
    assert (done.method, done.start) == ("copy", 1.0)
    got, want = frame_times(done.path), [t - 1 for t in in_range(frame_times(lib / "gop.mp4"), 1.0, 2.0)]
    assert got[: len(want)] == want  # from the keyframe at 1 s, every frame at its own time
    assert len(got) - len(want) <= 2  # plus what the last B-frames are decoded from (x264's reorder delay)
    with av.open(str(lib / "gop.mp4")) as src, av.open(str(done.path)) as out:
        key = next(p for p in src.demux(video=0) if p.pts == 25 * src.streams.video[0].time_base.denominator // 25)
        assert bytes(next(out.demux(video=0))) == bytes(key)  # the same bytes: nothing re-encoded


def test_a_cut_between_keyframes_is_reencoded_from_its_exact_first_frame(library, tmp_path):
    lib, _data = library
    done = export(ExportSpan(lib / "gop.mp4", 1.3, 2.3), tmp_path / "cut.mp4")
    assert (done.method, done.start, done.frames) == ("encode", 1.32, 25)  # 1.32 s: the first frame after 1.3
    assert frame_times(done.path) == [t - Fraction(33, 25) for t in in_range(frame_times(lib / "gop.mp4"), 1.3, 2.3)]


def test_a_vfr_cut_keeps_every_frame_at_its_time(library, tmp_path):
    lib, _data = library
    source = frame_times(lib / "vfr.mp4")
    start, end = float(source[30]), float(source[60]) - 0.001
    done = export(ExportSpan(lib / "vfr.mp4", start + 0.01, end), tmp_path / "cut.mp4")
    want = [t - source[31] for t in source[31:60]]
    got = frame_times(done.path)
    assert (done.method, done.frames, len(got)) == ("encode", 29, 29)
    assert all(abs(g - w) <= TICK for g, w in zip(got, want, strict=True))


def test_cli_export_of_a_clip_names_the_file_after_its_range_and_never_overwrites(library, tmp_path, monkeypatch):
    _lib, data = library
    clip_id, start, end = clips(data, "gop.mp4")[1]
    monkeypatch.chdir(tmp_path)
    done = cli_in_process("export", clip_id, "--context", "0.5", "--data", data)
    name = f"gop_{start - 0.5:.2f}-{end + 0.5:.2f}.mp4"
    shown = in_range(frame_times(_lib / "gop.mp4"), start - 0.5, end + 0.5)
    what = f"{float(shown[0]):.2f}-{end + 0.5:.2f} s of gop.mp4, {len(shown)} frames, re-encoded to H.264"
    assert done.stdout == f"wrote {name} ({what})\n"
    assert frame_times(tmp_path / name) == [t - shown[0] for t in shown]
    before = (tmp_path / name).read_bytes()
    again = cli_in_process("export", clip_id, "--context", "0.5", "--data", data, expect=2)
    assert again.stderr == f"error: {name} exists: pass --force to replace it\n"
    assert (tmp_path / name).read_bytes() == before
    cli_in_process("export", clip_id, "--context", "0.5", "--data", data, "--force")


def test_cli_export_of_a_moment_spans_its_clips(library, tmp_path):
    _lib, data = library
    (first, start, _), _, (last, _, end) = clips(data, "gop.mp4")[:3]
    out = tmp_path / "moment.mp4"
    done = cli_in_process("export", first, clips(data, "gop.mp4")[1][0], last, "--out", out, "--data", data, "--json")
    shown = in_range(frame_times(library[0] / "gop.mp4"), start, end)
    method = "copy" if start == 0 else "encode"  # gop.mp4 has a keyframe every second: the first clip starts on one
    assert json.loads(done.stdout) == {"path": str(out), "start": float(shown[0]), "end": end, "method": method}
    assert frame_times(out)[: len(shown)] == [t - shown[0] for t in shown]


def test_export_errors_name_the_problem(library, tmp_path):
    lib, data = library
    gop, vfr = clips(data, "gop.mp4")[0][0], clips(data, "vfr.mp4")[0][0]
    unknown = cli_in_process("export", 99999, "--data", data, expect=2)
    assert unknown.stderr == f"error: no clip 99999 in the catalog of {data}\n"
    mixed = cli_in_process("export", gop, vfr, "--data", data, expect=2)
    assert mixed.stderr == f"error: clips {min(gop, vfr)}, {max(gop, vfr)} are from 2 videos, not one\n"
    not_mp4 = cli_in_process("export", gop, "--out", tmp_path / "x.avi", "--data", data, expect=2)
    assert not_mp4.stderr == f"error: {tmp_path / 'x.avi'}: an export is an MP4 file, name it NAME.mp4\n"
    negative = cli_in_process("export", gop, "--context", "-1", "--data", data, expect=2)
    assert negative.stderr == "error: --context must be 0 or more seconds, got -1\n"
    nothing = cli_in_process("export", gop, "--data", tmp_path / "empty", expect=2)
    assert nothing.stderr == f"error: nothing is indexed in {tmp_path / 'empty'}\n"
    with pytest.raises(ExportError, match=r"has no frames between 99\.00 s and 100\.00 s"):
        export(ExportSpan(lib / "gop.mp4", 99.0, 100.0), tmp_path / "late.mp4")
    source = lib / "gop.mp4"
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # changed since it was indexed
    try:
        changed = cli_in_process("export", gop, "--out", tmp_path / "c.mp4", "--data", data, expect=2)
    finally:
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert changed.stderr == f"error: {source} is gone or changed since it was indexed: run index on it again\n"
    assert not (tmp_path / "c.mp4").exists()


def test_a_matroska_stream_copy_rebuilds_the_decode_timestamps_it_lacks(tmp_path):
    """Matroska stores no dts for B-frame streams; MP4 needs them: rebuilt from the sorted pts."""
    from app.demo import Scene, render_frame, write_video

    scene = Scene.from_seed(2)
    source = write_video(tmp_path / "b-frames.mkv", (render_frame(scene, i / 30, 160, 120) for i in range(45)), fps=30)
    done = export(ExportSpan(source, 0.0, 1.0), tmp_path / "cut.mp4")
    got, want = frame_times(done.path), in_range(frame_times(source), 0.0, 1.0)
    assert done.method == "copy" and got[: len(want)] == want and len(got) - len(want) <= 2
