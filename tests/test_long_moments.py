"""A long continuous video (one slowly drifting shot, like a street camera) through the CLI, its JSON, the API
and the browser: a query cut from 3 s of it gives a moment no longer than the cap that holds those 3 s, and
names its peak window. Before moments had a margin and a cap, that moment was the whole 40 s file."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from helpers import ENCODER, cli_in_process
from live_server import live_server

from app.demo import Scene, cut_segment, render_frame, write_video

pytestmark = pytest.mark.slow  # indexes a 40 s video, runs a server

SEGMENT = (20.0, 23.0)  # what the query is cut from
CAP = 30.0  # app.moments.MAX_MOMENT_SECONDS
# With the tiny random-weight towers, scores fall slowly away from 21.33-23.47 s; windows within the margin of
# that peak reach from 10.67 s to 32.00 s (windows are 64 frames at 30 fps: 2.133 s, back to back).
MOMENT, PEAK = (10.667, 32.0), (21.333, 23.467)


def continuous_video(path: Path, seconds: float = 40.0, fps: int = 30) -> Path:
    """One shot whose colour drifts slowly and evenly, with no cut: every window looks like its neighbours."""
    base = dataclasses.replace(Scene.from_seed(3), fade=0.0)
    frames = (
        render_frame(dataclasses.replace(base, hue=base.hue + 0.008 * i / fps), i / fps, 160, 120)
        for i in range(round(seconds * fps))
    )
    return write_video(path, frames, fps)


@pytest.fixture(scope="module")
def library(tmp_path_factory, demo_videos):
    lib = tmp_path_factory.mktemp("long-library")
    street = continuous_video(lib / "street.mp4")
    for video in demo_videos[:2]:
        shutil.copy(video, lib / video.name)
    data = tmp_path_factory.mktemp("long-data")
    cli_in_process("index", "--data", data, lib, *ENCODER, "--precision", "fp32", "--json")
    query = cut_segment(street, tmp_path_factory.mktemp("long-query") / "segment.mp4", *SEGMENT)
    return street, data, query


@pytest.fixture(scope="module")
def server(library):
    _street, data, _query = library
    with live_server(data) as url:
        yield url


def search_json(data: Path, *args) -> list[dict]:
    done = cli_in_process("search", "--data", data, *args, "--precision", "fp32", "--json")
    return json.loads(done.stdout)


def spans(hit: dict) -> tuple[tuple[float, float], tuple[float, float]]:
    return (hit["start"], hit["end"]), (hit["peak_start"], hit["peak_end"])


def test_a_segment_of_a_long_continuous_video_is_a_moment_not_the_whole_file(library):
    street, data, query = library
    hits = search_json(data, "--video", query, "-k", "3")
    top = hits[0]
    assert top["path"] == str(street)
    assert top["end"] - top["start"] <= CAP and top["start"] <= SEGMENT[0] and top["end"] >= SEGMENT[1]
    assert spans(top) == (MOMENT, PEAK)
    assert top["peak_start"] < SEGMENT[1] and top["peak_end"] > SEGMENT[0]  # the best window is in the segment
    assert all(h["end"] - h["start"] <= CAP and h["start"] <= h["peak_start"] < h["peak_end"] <= h["end"] for h in hits)


def test_max_moment_caps_the_moment_around_its_peak(library):
    street, data, query = library
    top = search_json(data, "--video", query, "-k", "3", "--max-moment", "5")[0]
    # The peak and the next best window (23.47-25.60 s) make 4.27 s; a third would pass 5 s.
    assert top["path"] == str(street) and spans(top) == ((21.333, 25.6), PEAK)


def test_cli_lines_have_column_headers_say_what_the_score_means_and_show_the_peak(library):
    _street, data, query = library
    lines = cli_in_process("search", "--data", data, "--video", query, "-k", "3", "--precision", "fp32").stdout
    note, header, first = lines.splitlines()[:3]
    assert note.startswith("score: calibrated z-score, standard deviations above the library's typical clip")
    assert header.split() == ["#", "score", "moment", "peak", "clip", "path"]
    assert first.startswith("  1. ") and first.split()[2:4] == ["0:10.67-0:32.00", "0:21.33-0:23.47"]
    assert first.index("0:21.33-0:23.47") + len("0:21.33-0:23.47") == header.index("peak") + len("peak")
    assert "street.mp4  [video=" in first


def test_api_search_gives_the_peak_and_takes_max_moment(server, library):
    from gradio_client import Client, handle_file

    street, data, query = library
    client = Client(server, verbose=False, download_files=False)
    for extra, cli_extra in (({}, []), ({"max_moment": 5}, ["--max-moment", "5"])):
        hits = client.predict(video=handle_file(str(query)), k=3, api_name="/search", **extra)
        expected = search_json(data, "--video", query, "-k", "3", *cli_extra)
        assert [(h["clip_id"], *spans(h), h["score"]) for h in hits] == [
            (h["clip_id"], *spans(h), h["score"]) for h in expected
        ]
        assert hits[0]["path"] == str(street)
    with pytest.raises(ValueError, match="max_moment must be more than 0 seconds"):
        client.predict(video=handle_file(str(query)), max_moment=0, api_name="/search")


def test_browser_shows_a_capped_moment_holding_the_segment_and_plays_from_its_peak(browser, server, library):
    _street, _data, query = library
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.goto(server)
    page.set_input_files("#query-video input[type=file]", str(query))
    page.wait_for_selector("#query-video video", timeout=30_000)
    page.click("#search-button")
    page.wait_for_selector("#moments .thumbnail-item img", timeout=60_000)
    caption = page.locator("#moments .caption-label").first.inner_text()
    assert caption.startswith("street.mp4 · 0:10.67–0:32.00 · peak 0:21.33–0:23.47 · score ")
    box = page.locator("#moments .caption-label").first.evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert box[0] <= box[1]  # shown whole, not cut with an ellipsis

    page.locator("#moments .thumbnail-item").first.click()
    video = page.wait_for_selector("#player video", timeout=60_000)
    page.wait_for_function(
        "() => { const v = document.querySelector('#player video'); return v && !v.paused && v.currentTime > 0; }",
        timeout=30_000,
    )
    state = video.evaluate(
        "v => ({t: v.currentTime, offset: +v.dataset.offset, start: +v.dataset.start, end: +v.dataset.end,"
        " peak: [+v.dataset.peakStart, +v.dataset.peakEnd], error: v.error && v.error.code})"
    )
    assert state["error"] is None and (state["start"], state["end"]) == MOMENT and state["peak"] == list(PEAK)
    # The preview begins 2 s before the moment: the peak is 2 s + (21.333 - 10.667) s into it.
    assert state["offset"] == pytest.approx(2.0 + PEAK[0] - MOMENT[0], abs=0.002)
    assert state["t"] >= state["offset"] - 0.05  # playback began at the peak, not at the moment's start
    assert "peak 0:21.33–0:23.47" in page.inner_text("#player")
    page.close()
