"""Skipping windows that do not change (indexer/change.py): the detector on generated frames, and an index
run over a generated static video with one short event."""

from __future__ import annotations

import itertools
import json
import sqlite3

import numpy as np
import pytest
from helpers import ENCODER, cli_in_process, index

from app.demo import write_video
from indexer.change import DEFAULT_THRESHOLD, ChangeDetector, signature
from indexer.records import ClipSampling, DecodedClip, UnchangedWindow

SIZE, T = 112, 16  # the tiny towers' crops are smaller still; real ones 224


def scene(seed: int = 0, size: int = SIZE) -> np.ndarray:
    """A textured grey-ish still: float32 (size, size, 3)."""
    yy, xx = np.mgrid[0:size, 0:size]
    grey = 90 + 50 * np.sin(xx / 11.0 + seed) + 40 * np.cos(yy / 7.0)
    return np.repeat(grey[..., None], 3, axis=2).astype(np.float32)


def window(still: np.ndarray, rng, noise: float = 4.0, offset: float = 0.0) -> np.ndarray:
    """T frames of `still` with sensor noise (sigma `noise`) and a brightness offset: uint8 (T, S, S, 3)."""
    frames = still[None] + offset + rng.normal(0, noise, (T, *still.shape))
    return np.clip(frames, 0, 255).astype(np.uint8)


def first_embedded(detector: ChangeDetector, frames: np.ndarray) -> ChangeDetector:
    assert detector.differs(frames)  # the first window of a video is always embedded
    return detector


def test_noise_and_compression_flicker_are_static():
    rng = np.random.default_rng(0)
    still = scene()
    detector = first_embedded(ChangeDetector(DEFAULT_THRESHOLD), window(still, rng))
    for _ in range(20):
        frames = window(still, rng, noise=6.0).astype(np.float32)
        # compression flicker: each 8x8 block of each frame shifted by up to +-3 levels
        blocks = rng.uniform(-3, 3, (T, SIZE // 8, SIZE // 8, 1)).repeat(8, axis=1).repeat(8, axis=2)
        assert not detector.differs(np.clip(frames + blocks, 0, 255).astype(np.uint8))


def test_slow_light_drift_is_static_and_re_embeds_rarely():
    """An hour's drift of 30 levels, 0.25 level a window: over 120 windows a handful are embedded again."""
    rng = np.random.default_rng(1)
    still = scene()
    detector = first_embedded(ChangeDetector(DEFAULT_THRESHOLD), window(still, rng))
    embedded = sum(detector.differs(window(still, rng, offset=0.25 * w)) for w in range(1, 121))
    assert embedded <= 4  # 30 levels / a 10-level threshold: at most one re-embed every 10 levels
    assert not detector.differs(window(still, rng, offset=30.0))


def test_sudden_brightness_change_is_a_change():
    rng = np.random.default_rng(2)
    still = scene()
    detector = first_embedded(ChangeDetector(DEFAULT_THRESHOLD), window(still, rng))
    assert not detector.differs(window(still, rng))
    lit = window(still, rng)
    lit[T // 2 :] = np.clip(lit[T // 2 :].astype(np.int16) + 40, 0, 255).astype(np.uint8)  # a light switched on
    assert detector.differs(lit)
    assert detector.differs(window(still + 40, rng))  # all lit: differs from the half-dark reference
    assert not detector.differs(window(still + 40, rng))  # the lit scene is the reference now


def test_an_event_in_one_sampled_frame_is_a_change():
    """A short event between two keyframes, seen in a single sampled frame of the window, is embedded."""
    rng = np.random.default_rng(3)
    still = scene()
    detector = first_embedded(ChangeDetector(DEFAULT_THRESHOLD), window(still, rng))
    frames = window(still, rng)
    frames[7, 40:60, 50:65] = (230, 30, 30)  # an object crossing, 20 x 15 px of the 112 crop
    assert detector.differs(frames)
    assert detector.differs(window(still, rng))  # gone again: embedded, the event's clip stays short
    assert not detector.differs(window(still, rng))


def test_threshold_is_part_of_the_sampling_identity_and_absent_means_every_window():
    every = ClipSampling(16, 4)
    # the form every data dir made before skipping holds: its identity must not change
    assert every.to_dict() == {"num_frames": 16, "frame_interval": 4, "stride_frames": 64}
    skipping = ClipSampling(16, 4, change_threshold=DEFAULT_THRESHOLD)
    assert skipping.to_dict()["change_threshold"] == DEFAULT_THRESHOLD
    assert ClipSampling.from_dict(skipping.to_dict()).change_threshold == DEFAULT_THRESHOLD
    assert ClipSampling.from_dict(every.to_dict()).change_threshold is None


# -- an index run ---------------------------------------------------------------------------------
FPS, SECONDS, EVENT = 30, 20, (10.0, 10.4)  # 600 frames: 9 windows of 64 frames + an end-aligned tail
EVENT_WINDOW = 4  # frames 256-319 (8.53-10.67 s) hold the event's frames 300-311


def static_video(path, event=EVENT):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:120, 0:160]
    base = (80 + 60 * np.sin(xx / 13.0) + 40 * np.cos(yy / 9.0)).astype(np.float32)

    def frames():
        for i in range(FPS * SECONDS):
            image = np.repeat((base + rng.normal(0, 4, base.shape))[..., None], 3, axis=2)
            if event[0] <= i / FPS < event[1]:
                image[40:80, 60:100] = (240, 20, 20)
            yield np.clip(image, 0, 255).astype(np.uint8)

    return write_video(path, frames(), FPS)


def clip_rows(data) -> list[tuple[int, float, float]]:
    with sqlite3.connect(data / "catalog.db") as db:
        return db.execute("select ordinal, start, end from clips order by ordinal").fetchall()


def video_sampling(data) -> dict:
    with sqlite3.connect(data / "catalog.db") as db:
        (identity,) = db.execute("select identity from vector_sets where name = 'video'").fetchone()
    return json.loads(identity)["sampling"]


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    folder = tmp_path_factory.mktemp("static")
    static_video(folder / "corridor.mp4")
    return folder


@pytest.mark.slow
def test_static_video_embeds_the_first_the_event_and_the_after_event_window_only(footage, tmp_path):
    report = index(tmp_path / "data", footage)
    assert (report["clips_embedded"], report["windows_skipped"]) == (3, 7)
    assert report["vectors_embedded"] == {"video": 3, "image": 3}
    assert report["seconds_saved"] > 0
    rows = clip_rows(tmp_path / "data")
    assert [r[0] for r in rows] == [0, EVENT_WINDOW, EVENT_WINDOW + 1]
    # the kept windows tile the video: each reaches the next one's start, the last the end of the stream
    assert rows[0][1] == 0.0 and all(a[2] == pytest.approx(b[1]) for a, b in itertools.pairwise(rows))
    assert rows[1][1:] == pytest.approx((256 / FPS, 320 / FPS))  # the event's clip: its own window
    assert rows[2][2] == pytest.approx(SECONDS)
    assert video_sampling(tmp_path / "data")["change_threshold"] == DEFAULT_THRESHOLD


@pytest.mark.slow
def test_every_window_embeds_all_and_a_data_dir_without_threshold_keeps_doing_so(footage, tmp_path):
    data = tmp_path / "data"
    report = index(data, footage, "--every-window")
    assert (report["clips_embedded"], report["windows_skipped"]) == (10, 0)
    assert "change_threshold" not in video_sampling(data)  # the identity of data dirs made before skipping
    rows = clip_rows(data)
    assert [r[0] for r in rows] == list(range(10))
    assert all(a[2] == pytest.approx(b[1]) for a, b in itertools.pairwise(rows[:9]))  # regular windows tile
    # more footage, no flags: the data dir's record (no threshold) says every window, no re-embedding
    more = tmp_path / "more"
    more.mkdir()
    static_video(more / "car_park.mp4", event=(3.0, 3.3))
    done = json.loads(cli_in_process("index", "--data", data, more, "--json").stdout)
    assert (done["clips_embedded"], done["windows_skipped"]) == (10, 0)


@pytest.mark.slow
def test_cli_line_says_how_many_windows_were_skipped(footage, tmp_path):
    out = cli_in_process("index", "--data", tmp_path / "data", footage, *ENCODER, "--change-threshold", "12").stdout
    assert "3 clips embedded" in out
    assert "7 windows skipped" in out and "s saved" in out
    assert video_sampling(tmp_path / "data")["change_threshold"] == 12.0


# -- quiet GOPs (indexer/quiet.py) ------------------------------------------------------------------
def camera_video(path, event_frames=range(100, 104), fps=10, seconds=24):
    """A noiseless still scene coded like a camera (a keyframe every 2 s), a 4-frame event inside a GOP."""
    import av

    yy, xx = np.mgrid[0:120, 0:160]
    still = np.repeat((80 + 60 * np.sin(xx / 13.0) + 40 * np.cos(yy / 9.0))[..., None], 3, axis=2)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "28", "g": str(2 * fps)}
        for i in range(fps * seconds):
            image = still.copy()
            if i in event_frames:
                image[40:80, 20 + 20 * (i % 4) : 60 + 20 * (i % 4)] = (240, 20, 20)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image.clip(0, 255).astype(np.uint8), format="rgb24")))
        out.mux(stream.encode(None))
    return path


def decode_all(path, quiet: bool):
    from indexer.decode import ClipDecoder, probe

    change = ChangeDetector(DEFAULT_THRESHOLD) if quiet else None
    decoder = ClipDecoder(path, probe(path), ClipSampling(16, 4), 64, change=change)
    return list(decoder.clips()), decoder.summary


def test_quiet_gops_are_decoded_as_their_keyframe_and_an_event_inside_a_gop_is_decoded(tmp_path):
    path = camera_video(tmp_path / "camera.mp4")
    plain, plain_summary = decode_all(path, quiet=False)
    quiet, summary = decode_all(path, quiet=True)
    assert plain_summary.stills == 0 and summary.stills > 0
    # 12 GOPs of 20 frames: all but the first (the encoder still refining it) and the event's (100-119)
    # are stills after their keyframe
    assert summary.stills == 10 * 19 and summary.frames == plain_summary.frames == 240
    assert [c.window for c in quiet] == [c.window for c in plain]  # same windows, same times
    # window 1 samples frames 64, 68, ..., 124: its 10th to 14th (frames 100-116) lie in the event's GOP,
    # decoded for real; the others are stills of their keyframes, a level or so from the decoded frames
    event = slice(9, 14)
    assert np.array_equal(quiet[1].frames[event], plain[1].frames[event])
    assert (quiet[1].frames[event] != quiet[1].frames[8]).any()  # the event is in them
    # first, event, after it; the last window is unchanged and never converted
    assert [type(c) for c in quiet] == [DecodedClip, DecodedClip, DecodedClip, UnchangedWindow]
    for q, p in zip(quiet[:3], plain):
        assert np.abs(q.frames.astype(int) - p.frames).mean() < 1.0


def test_grey_cells_of_decoded_frames_see_the_changes_the_towers_input_shows(tmp_path):
    """Indexing takes signatures from the luma plane (never converting unchanged windows to RGB): the
    change between two frames must measure, in grey levels, what the RGB signature of the towers' input
    does (absolute levels differ a little in saturated colours: RGB clips, the Y plane does not)."""
    import av

    from indexer.decode import _center_crop, convert_frame
    from indexer.grey_cells import GreyCells

    path = camera_video(tmp_path / "camera.mp4", event_frames=range(30, 34), seconds=4)
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    for size in (64, 224):
        grey_cells = GreyCells(size)

        def rgb_cells(frame, size=size):
            return signature(_center_crop(convert_frame(frame, size), size)[None])[0]

        quiet, event, still_again = frames[24], frames[31], frames[38]
        grey_change = np.abs(grey_cells(event) - grey_cells(quiet))
        rgb_change = np.abs(rgb_cells(event) - rgb_cells(quiet))
        assert grey_change.max() > 4 * DEFAULT_THRESHOLD  # the event, far past the threshold
        assert np.abs(grey_change - rgb_change).max() < 0.25 * rgb_change.max()
        assert (grey_change > DEFAULT_THRESHOLD).sum() == (rgb_change > DEFAULT_THRESHOLD).sum()
        assert np.abs(grey_cells(still_again) - grey_cells(quiet)).max() < 2.0  # static: ~0


def test_skipped_windows_never_wait_for_room_only_clips_do():
    """While the towers hold a full queue of clips, the decode thread still queues skipped windows' ends
    and a video's end (no frames, no memory): on static footage it goes on deciding what to skip instead
    of waiting out each model call."""
    from indexer.embedding import CLIP, EXTEND, ClipChannel

    channel = ClipChannel(clips=2)
    never = lambda: False  # noqa: E731
    channel.put((CLIP, "video", 1), never)
    channel.put((CLIP, "video", 2), never)
    for end in range(100):  # with a queue bounded in events, the first of these would wait for good
        channel.put((EXTEND, "video", float(end)), never)
    channel.put(("end", "video", None), never)
    checks = []
    channel.put((CLIP, "video", 3), lambda: checks.append(1) or len(checks) >= 2)  # full: waits, then gives up
    assert len(checks) == 2
    events = [channel.get() for _ in range(103)]
    assert [e[2] for e in events[:2]] == [1, 2] and events[-1] == ("end", "video", None)
    assert [e[2] for e in events[2:102]] == [float(end) for end in range(100)]
    channel.put((CLIP, "video", 4), never)  # the two clips taken out made room again
    channel.put((CLIP, "video", 5), never)
    assert channel.get()[2] == 4 and channel.get()[2] == 5


def _yuv_frame(rgb: np.ndarray, fmt: str = "yuv420p", full_range: bool = False):
    import av

    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    if full_range:  # FFmpeg's converter leaves the frame's range unmarked: mark it as a decoder does
        frame = frame.reformat(format=fmt, dst_color_range="JPEG")
        frame.color_range = 2
        return frame
    return frame.reformat(format=fmt)


def test_grey_cells_agree_across_pixel_formats():
    """The luma plane is read directly for 8-bit YUV (planar or not); other formats go through FFmpeg's grey
    conversion first: every way gives the same grey levels, full range, whatever range the frame's YUV is in."""
    from indexer.grey_cells import GreyCells

    rng = np.random.default_rng(3)
    rgb = np.repeat(rng.integers(30, 220, (9, 16, 1), dtype=np.uint8), 80, axis=0).repeat(80, axis=1)
    rgb = np.repeat(rgb, 3, axis=2)  # grey blocks of 80 x 80 px, 1280 x 720
    cells = GreyCells(224)
    reference = cells(_yuv_frame(rgb, "rgb24"))  # FFmpeg's grey of RGB: full range already
    formats = [(f, False) for f in ("yuv420p", "nv12", "yuv444p", "yuv420p10le", "gray")]
    for fmt, full_range in [*formats, ("yuv420p", True), ("yuv420p10le", True), ("nv12", True)]:
        got = cells(_yuv_frame(rgb, fmt, full_range))
        assert got.shape == (16, 16)
        assert np.abs(got - reference).max() < 1.5, (fmt, full_range)
    area = rgb[:, 280:1000, 0].reshape(16, 45, 16, 45).mean(axis=(1, 3))  # the centred square's cells
    assert np.abs(reference - area).mean() < 2.0  # samples, not areas: a level or two off at sharp edges


@pytest.mark.parametrize("width, seen", [(4, True), (1, False)])
def test_grey_cells_see_a_thing_a_tower_pixel_wide_wherever_it_stands(width, seen):
    """One luma sample per tower input pixel (720 / 224 = 3.2 source px apart at 720p): a 4-px line, 1.2
    tower pixels, changes its cell past the threshold at every position across a cell; a 1-px line (a
    third of a tower pixel) falls between samples at some positions."""
    from indexer.grey_cells import GreyCells

    still = np.full((720, 1280, 3), 60, np.uint8)
    cells = GreyCells(224)
    quiet = cells(_yuv_frame(still))
    changes = []
    for x in range(280 + 5 * 45, 280 + 6 * 45):  # every position across the sixth cell of a row
        frame = still.copy()
        frame[:, x : x + width] = 255
        changes.append(np.abs(cells(_yuv_frame(frame)) - quiet).max())
    assert bool(min(changes) > DEFAULT_THRESHOLD) is seen
