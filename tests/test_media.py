"""Previews (app/media.py) of footage with awkward timestamps: VFR, odd average rates, coarse time bases,
moments at the very end and the whole file. A preview shows exactly the source's frames, at their times."""

from __future__ import annotations

from fractions import Fraction

import pytest
from conftest import shared_video
from media_videos import frame_times, vfr_ticks, write_timed_video

from app.media import CONTEXT_SECONDS, preview_for

TICK = Fraction(1, 90000)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    return {
        # VFR in the MPEG clock: frame gaps of 1-3 durations of 287/4800 s
        "vfr": write_timed_video(folder / "vfr.mp4", [t * 5381 for t in vfr_ticks(90)], TICK),
        # VFR in the odd rate's own time base: the average rate is a long fraction
        "odd": write_timed_video(folder / "odd.mp4", [t * 287 for t in vfr_ticks(90, seed=1)], Fraction(1, 4800)),
        # a coarse time base (1/20 s), as AVI-born or webcam files have
        "coarse": write_timed_video(folder / "coarse.mp4", vfr_ticks(60, seed=2), Fraction(1, 20)),
    }


def expected(source_times, begin, finish):
    """The source frames shown in [begin, finish) (a frame within a microsecond of `begin` counts: floats)."""
    return [t - Fraction(begin) for t in source_times if Fraction(begin) - Fraction(1, 10**6) <= t < finish]


def assert_same_times(got, want):
    assert len(got) == len(want)
    assert all(abs(g - w) <= TICK for g, w in zip(got, want, strict=True)), (got[:5], want[:5])


@pytest.mark.parametrize("name", ["vfr", "odd", "coarse"])
def test_preview_of_a_middle_moment_has_the_source_frames_at_their_times(videos, tmp_path, name):
    source = videos[name]
    times = frame_times(source)
    start, end = float(times[len(times) // 2]), float(times[len(times) // 2 + 10])
    preview = preview_for(tmp_path, source, start, end)
    begin = start - CONTEXT_SECONDS
    assert preview.offset == pytest.approx(CONTEXT_SECONDS)
    assert_same_times(frame_times(preview.path, from_start=False), expected(times, begin, end + CONTEXT_SECONDS))


@pytest.mark.parametrize("name", ["vfr", "odd", "coarse"])
def test_preview_of_the_whole_file_and_of_its_last_frame(videos, tmp_path, name):
    source = videos[name]
    times = frame_times(source)
    whole = preview_for(tmp_path, source, 0.0, float(times[-1]) + 0.5)
    assert_same_times(frame_times(whole.path, from_start=False), times)
    last = float(times[-1])
    tail = preview_for(tmp_path, source, last, last + 0.05)  # a moment at the very end
    tail_times = frame_times(tail.path, from_start=False)
    assert_same_times(tail_times, expected(times, last - CONTEXT_SECONDS, last + 1))
    assert tail_times[-1] == pytest.approx(float(tail.offset), abs=1e-4)  # the last frame is the moment's start


def test_preview_of_an_avi_with_packed_b_frames_keeps_every_frame(tmp_path):
    """MPEG-4 ASP in AVI gives decoded frames pts in decode order (47, 49, 48, ...): read as FFmpeg's
    best-effort timestamp does (the dts then), not dropped as out of order (a third of the frames were)."""
    source = shared_video("mmaction2_test_makeup.avi")  # 164 frames at 25 fps, time base 1/25, labels 1..164
    preview = preview_for(tmp_path, source, 4.0, 5.0)  # from 2 s (label 50) to the end
    assert frame_times(preview.path, from_start=False) == [Fraction(k - 50, 25) for k in range(50, 165)]
