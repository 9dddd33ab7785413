"""Probing and decoding real and generated footage: timestamps, streams, rotation, bad input."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from conftest import shared_video
from media_videos import frame_times, vfr_ticks, write_timed_video

from app.demo import Scene, cut_segment, render_frame
from indexer.decode import ClipDecoder, ProbeError, probe
from indexer.records import ClipSampling


def decode(path, size=64, sampling=ClipSampling(), time_range=None):
    decoder = ClipDecoder(path, probe(path), sampling, size, time_range)
    return list(decoder.clips()), decoder.summary


def spans(clips):
    return [(round(c.window.start, 3), round(c.window.end, 3)) for c in clips]


def test_generated_cfr_video_has_exact_window_times(demo_videos):
    info = probe(demo_videos[0])
    assert (info.codec, info.width, info.height, info.fps, info.rotation) == ("h264", 320, 240, 30.0, 0)
    clips, summary = decode(demo_videos[0])
    assert summary.frames == 240 and summary.duration == pytest.approx(8.0)
    assert spans(clips) == [(0.0, 2.133), (2.133, 4.267), (4.267, 6.4), (5.867, 8.0)]
    assert clips[0].frames.shape == (16, 64, 64, 3) and clips[0].frames.dtype == np.uint8


def test_decoded_pixels_match_the_rendered_scene(demo_videos):
    clips, _ = decode(demo_videos[1], size=240, sampling=ClipSampling(16, 4))
    expected = render_frame(Scene.from_seed(1), 4 / 30, 320, 240)[:, 40:280]  # frame 4, centre crop
    error = np.abs(clips[0].frames[1].astype(int) - expected.astype(int)).mean()
    assert error < 6  # H.264 at crf 20 plus YUV 4:2:0 round trip


def test_extra_sizes_are_resized_from_the_source_like_a_decode_at_that_size():
    path = shared_video("sleap_dance.mp4")  # portrait 406x720: the crop differs per size
    both = list(ClipDecoder(path, probe(path), ClipSampling(), 96, extra_sizes=(64, 96)).clips())
    alone = list(ClipDecoder(path, probe(path), ClipSampling(), 64).clips())
    assert [sorted(c.by_size()) for c in both] == [[64, 96]] * len(alone) and len(alone) == 7
    assert all(c.frames.shape == (16, 96, 96, 3) and c.full_frames[0].shape == (170, 96, 3) for c in both)
    assert all(np.array_equal(b.resized[64], a.frames) for a, b in zip(alone, both))


def test_time_range_decodes_only_that_range(demo_videos):
    clips, summary = decode(demo_videos[2], time_range=(3.0, 5.5))
    assert summary.frames == 75  # frames shown at 3.0 <= t < 5.5
    assert spans(clips) == [(3.0, 5.5)]  # 11 frames past the window: stretched, no second window


def test_variable_frame_rate_times_come_from_pts():
    path = shared_video("videollama_skateboarding_dog.mp4")
    clips, summary = decode(path)
    assert summary.frames == 421
    assert summary.duration == pytest.approx(14.181, abs=0.01)  # last PTS + duration, not 421/29.97
    assert clips[-1].window.end == pytest.approx(summary.duration)
    starts = [c.window.start for c in clips]
    assert starts == sorted(starts) and starts[0] == 0.0


def test_window_times_follow_the_display_clock_on_an_avi_with_packed_b_frames():
    """MPEG-4 ASP in AVI gives decoded frames pts in decode order (1, 2, 4, 3, 5, 7, 6, ...): times are read as
    FFmpeg's best-effort timestamp does (the dts then), so each 8-frame window spans 8 frames, not 7 or 9."""
    path = shared_video("mmaction2_test_makeup.avi")  # 164 frames at 25 fps, the first at 0.04 s
    clips, summary = decode(path, sampling=ClipSampling(8, 1, stride_frames=8))
    assert summary.frames == 164 and summary.duration == pytest.approx(6.6)
    assert spans(clips)[:20] == [(round((8 * k + 1) / 25, 3), round((8 * k + 9) / 25, 3)) for k in range(20)]


def test_window_times_of_generated_vfr_footage_with_b_frames_are_its_frame_times(tmp_path):
    path = write_timed_video(tmp_path / "vfr.mp4", vfr_ticks(48), Fraction(1, 30))  # x264: B-frames on
    times = frame_times(path)
    clips, summary = decode(path, sampling=ClipSampling(4, 1, stride_frames=4))
    assert summary.frames == 48
    assert [c.window.start for c in clips] == [float(times[4 * k]) for k in range(12)]


def test_container_without_duration():
    path = shared_video("moviepy_no_duration_vp9.webm")
    info = probe(path)
    assert info.duration is None and info.codec == "vp9"
    clips, summary = decode(path)
    assert summary.frames == 74 and summary.duration == pytest.approx(4.94, abs=0.01)
    assert clips[-1].window.end == pytest.approx(summary.duration)


def test_multistream_file_uses_the_best_video_stream():
    info = probe(shared_video("torchcodec_nasa_13013_multistream.mp4"))
    assert (info.stream_index, info.width, info.height) == (3, 480, 270)


def test_audio_first_stream_layout():
    info = probe(shared_video("mdn_friday.mp4"))
    assert info.stream_index == 1 and (info.width, info.height) == (640, 480)


def test_rotation_metadata_is_applied():
    path = shared_video("decord_video_90_rot.mov")
    info = probe(path)
    assert (info.rotation, info.width, info.height) == (-90, 320, 568)
    import av

    with av.open(str(path)) as container:
        raw = next(container.decode(video=0)).to_ndarray(format="rgb24")  # stored 568x320
    upright = np.rot90(raw, k=-1)  # display = 90 degrees clockwise
    clips, summary = decode(path, size=320)
    assert summary.frames == 3 and len(clips) == 1
    top = upright[(568 - 320) // 2 : (568 - 320) // 2 + 320]
    assert np.abs(clips[0].frames[0].astype(int) - top.astype(int)).mean() < 3


def test_gif_is_a_video():
    clips, summary = decode(shared_video("i3d_v_CricketShot_g04_c01_rgb.gif"))
    assert summary.frames == 79 and spans(clips) == [(0.0, 3.16)]


def test_audio_only_file_is_refused_with_a_reason():
    with pytest.raises(ProbeError, match=r"no video stream \(has audio streams only\)"):
        probe(shared_video("torchcodec_nasa_13013_audio_only.mp3"))


def test_unopenable_file_is_refused_with_a_reason():
    with pytest.raises(ProbeError, match="cannot open as media: Invalid data"):
        probe(shared_video("edge_cases/chrome_no_streams_INVALID.webm"))


def test_corrupt_packets_are_skipped_and_counted():
    clips, summary = decode(shared_video("edge_cases/decord_corrupted_SYNTHETIC.mp4"))
    assert summary.bad_packets >= 1 and summary.frames > 28 and len(clips) == 1


def test_garbage_and_empty_files(tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).bytes(50_000))
    empty = tmp_path / "empty.mkv"
    empty.write_bytes(b"")
    for path in (garbage, empty):
        with pytest.raises(ProbeError, match="cannot open as media"):
            probe(path)


def test_still_image_is_not_a_video(tmp_path):
    from PIL import Image

    path = tmp_path / "photo.dat"
    Image.fromarray(render_frame(Scene.from_seed(0), 0, 64, 48)).save(path, format="PNG")
    with pytest.raises(ProbeError, match="still image"):
        probe(path)


def test_text_is_not_a_video(tmp_path):
    (tmp_path / "README").write_text("Footage from camera 3, March.\n" * 20)
    with pytest.raises(ProbeError, match="cannot open as media"):
        probe(tmp_path / "README")
    (tmp_path / "art.ans").write_text("Footage from camera 3, March.\n" * 20)  # FFmpeg's tty demuxer
    with pytest.raises(ProbeError, match="a text file, not a video"):
        probe(tmp_path / "art.ans")


def test_cut_segment_reencodes_the_range(demo_videos, tmp_path):
    cut = cut_segment(demo_videos[3], tmp_path / "cut.mp4", 2.0, 3.0)
    _clips, summary = decode(cut)
    assert summary.frames == 30 and summary.duration == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["intel_one-by-one-person-detection.mp4", "pims_bulk-water.mov"])
def test_sparse_windows_by_seeking_equal_sequential_decoding(name):
    path = shared_video(name)
    sparse = ClipSampling(16, 4, stride_frames=200)
    seeking = list(ClipDecoder(path, probe(path), sparse, 64, seek=True).clips())
    decoding = list(ClipDecoder(path, probe(path), sparse, 64, seek=False).clips())
    assert [c.window for c in seeking] == [c.window for c in decoding] and len(seeking) >= 3
    assert all(np.array_equal(a.frames, b.frames) for a, b in zip(seeking, decoding))


def test_sparse_windows_leave_gaps_and_no_tail(demo_videos):
    clips, _ = decode(demo_videos[0], sampling=ClipSampling(8, 2, stride_frames=90))
    assert spans(clips) == [(0.0, 0.533), (3.0, 3.533), (6.0, 6.533)]


def test_max_windows_spreads_them_evenly_over_the_range(demo_videos):
    info = probe(demo_videos[0])  # 8 s at 30 fps: 4 windows of 64 frames when decoded in full
    decoder = ClipDecoder(demo_videos[0], info, ClipSampling(), 64, max_windows=3)
    clips = list(decoder.clips())
    assert [round(c.window.start, 3) for c in clips] == [0.0, 2.933, 5.867]  # first, middle, last
    assert decoder.summary.note == "3 windows spread evenly over 0.0-8.0 s"
    full, _ = decode(demo_videos[0])
    assert np.array_equal(clips[0].frames, full[0].frames) and np.array_equal(clips[-1].frames, full[-1].frames)
    ranged = ClipDecoder(demo_videos[0], info, ClipSampling(), 64, (1.0, 3.2), max_windows=3)
    assert spans(list(ranged.clips())) == [(1.0, 3.2)] and ranged.summary.note is None  # one window: as before


def test_decoding_threads_never_change_a_pixel(demo_videos):
    """Indexing on the CPU decodes with slice threads only (no CPU beyond one thread's), on a GPU box with
    frame threads: the frames must be the same either way, and the same as one thread's."""
    from indexer.decode import SHARED_CORES, SPARE_CORES

    path = demo_videos[0]
    decoded = {
        threading: [c.frames for c in ClipDecoder(path, probe(path), ClipSampling(), 64, threading=threading).clips()]
        for threading in (SPARE_CORES, SHARED_CORES, "NONE")
    }
    assert len(decoded[SPARE_CORES]) == 4
    for frames in decoded.values():
        assert all(np.array_equal(a, b) for a, b in zip(frames, decoded[SPARE_CORES], strict=True))


def test_indexing_on_the_cpu_decodes_without_frame_threads(tmp_path):
    from helpers import settings

    from indexer.decode import SHARED_CORES, SPARE_CORES
    from indexer.towers import resolve_towers

    towers = resolve_towers(settings(tmp_path))
    assert towers.device == "cpu" and towers.decode_threading() == SHARED_CORES
    towers.device = "cuda"  # resolving never loads a model: only the choice is asked of it
    assert towers.decode_threading() == SPARE_CORES
