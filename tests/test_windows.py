"""Clip windows assembled from a frame stream of unknown length."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.records import ClipSampling
from indexer.windows import WindowAssembler


def run(n: int, sampling: ClipSampling, fps: float = 30.0):
    """Push n frames whose pixel value is their index; returns windows and peak frames held."""
    assembler = WindowAssembler(sampling)
    clips, converted = [], []
    peak = [0, 0]  # frames held: while the first span may still be a short video, and after
    for i in range(n):

        def convert(i=i):
            converted.append(i)
            return np.full((2, 2, 3), i, dtype=np.int32)

        clips += assembler.push(i, i / fps, convert)
        phase = 0 if i <= sampling.span else 1
        peak[phase] = max(peak[phase], len(assembler._frames))
    clips += assembler.finish(n / fps)
    return clips, peak, converted


def sampled(clip) -> list[int]:
    return [int(f[0, 0, 0]) for f in clip.frames]  # each frame's pixels hold its index


def test_back_to_back_windows_tile_the_video_and_cover_the_tail():
    clips, _, _ = run(300, ClipSampling(16, 4))  # 10 s at 30 fps, span 64 frames
    assert [c.window.ordinal for c in clips] == [0, 1, 2, 3, 4]
    assert [sampled(c)[:2] for c in clips[:4]] == [[0, 4], [64, 68], [128, 132], [192, 196]]
    assert [round(c.window.start * 30) for c in clips] == [0, 64, 128, 192, 236]
    assert [round(c.window.end * 30) for c in clips] == [64, 128, 192, 256, 300]
    tail = sampled(clips[-1])
    assert tail == list(range(236, 300, 4)) and tail[-1] == 296  # same phase, ends at the stream's end


def test_small_remainder_gets_no_near_duplicate_window():
    clips, _, _ = run(64 * 3 + 10, ClipSampling(16, 4))  # 10 frames left over < span/4
    assert [round(c.window.end * 30) for c in clips] == [64, 128, 202]  # last one stretched


def test_exact_multiple_has_no_tail():
    clips, _, _ = run(128, ClipSampling(16, 4))
    assert [round(c.window.end * 30) for c in clips] == [64, 128]


def test_video_shorter_than_a_window_yields_one_spread_window():
    clips, _, _ = run(3, ClipSampling(16, 4))
    assert len(clips) == 1
    assert sampled(clips[0]) == [0] * 4 + [1] * 8 + [2] * 4  # round(linspace(0, 2, 16))
    assert (clips[0].window.start, clips[0].window.end) == (0.0, pytest.approx(0.1))
    clips, _, _ = run(40, ClipSampling(16, 4))
    assert sampled(clips[0])[0] == 0 and sampled(clips[0])[-1] == 39


def test_overlapping_stride():
    clips, _, _ = run(200, ClipSampling(8, 2, stride_frames=8))
    starts = [round(c.window.start * 30) for c in clips]
    assert starts[:4] == [0, 8, 16, 24] and all(len(c.frames) == 8 for c in clips)
    assert sampled(clips[1]) == list(range(8, 24, 2))


def test_stride_off_the_sampling_phase_converts_the_frames_it_needs():
    clips, _, _ = run(100, ClipSampling(4, 4, stride_frames=10))
    assert sampled(clips[1]) == [10, 14, 18, 22]


def test_memory_is_bounded_and_unneeded_frames_are_not_converted():
    clips, peak, converted = run(30 * 600, ClipSampling(16, 4))  # ten minutes
    assert len(clips) == 30 * 600 // 64 + 1
    assert peak[0] <= 64 + 1  # a possible short video: every frame of the first span
    assert peak[1] <= 2 * 16 + 1  # then: the pending window plus the possible tail
    assert len(converted) <= 30 * 600 // 4 + 64


def test_frames_must_arrive_in_order():
    assembler = WindowAssembler(ClipSampling())
    assembler.push(0, 0.0, lambda: np.zeros(1))
    with pytest.raises(ValueError, match="expected 1, got 2"):
        assembler.push(2, 0.1, lambda: np.zeros(1))
