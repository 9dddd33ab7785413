"""Moments of awkward footage in a real browser: VFR moments play, a moment downloads as an MP4, and a
moment that cannot be played says so once, in the player. One server over a library of VFR videos only,
so whichever moment a search ranks first is a VFR one."""

from __future__ import annotations

import os
from fractions import Fraction

import pytest
from helpers import ENCODER, cli_in_process
from live_server import live_server
from media_videos import frame_times, vfr_ticks, write_timed_video

pytestmark = pytest.mark.slow

PLAYING = (
    "() => { const v = document.querySelector('#player video'); return v && v.readyState >= 2 && v.currentTime > 0; }"
)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    lib = tmp_path_factory.mktemp("vfr") / "library"
    lib.mkdir()
    write_timed_video(lib / "vfr.mp4", [t * 5381 for t in vfr_ticks(90)], Fraction(1, 90000))
    write_timed_video(lib / "odd.mp4", [t * 287 for t in vfr_ticks(90, seed=1)], Fraction(1, 4800))
    data = lib.parent / "data"
    cli_in_process("index", "--data", data, lib, *ENCODER, "--precision", "fp32", "--json")
    return lib, data


@pytest.fixture(scope="module")
def server(indexed):
    with live_server(indexed[1]) as url:
        yield url


@pytest.fixture
def page(browser, server):
    page = browser.new_page(viewport={"width": 1280, "height": 1400}, accept_downloads=True)
    page.goto(server)
    page.wait_for_selector("#query-text textarea")
    page.fill("#query-text textarea", "a moving disc")
    page.click("#search-button")
    page.wait_for_selector("#moments .thumbnail-item img", timeout=60_000)
    yield page
    page.close()


def test_a_vfr_moment_plays(page):
    page.locator("#moments .thumbnail-item").first.click()
    page.wait_for_function(PLAYING, timeout=30_000)  # decoded frames are shown and the clock runs
    error = page.eval_on_selector("#player video", "v => v.error && v.error.code")
    assert error is None and page.locator("#player .tubelet-problem").count() == 0
    assert page.locator(".toast-body").count() == 0


def test_a_moment_downloads(page, indexed, tmp_path):
    lib, _data = indexed
    page.locator("#moments .thumbnail-item").first.click()
    video = page.wait_for_selector("#player video", timeout=60_000)
    start, end = video.evaluate("v => [+v.dataset.start, +v.dataset.end]")
    with page.expect_download(timeout=60_000) as info:
        page.click("#player a.tubelet-download")
    download = info.value
    stem, _, span = download.suggested_filename.removesuffix(".mp4").partition("_")
    assert span == f"{start:.2f}-{end:.2f}"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    source = frame_times(lib / f"{stem}.mp4")
    shown = [t for t in source if Fraction(start) - Fraction(1, 1000) <= t < end]
    got = frame_times(saved)
    assert len(shown) <= len(got) <= len(shown) + 2  # a stream copy keeps the B-frames' references past the end
    assert all(abs(g - (w - shown[0])) <= Fraction(1, 90000) for g, w in zip(got, shown, strict=False))


def test_a_moment_that_cannot_be_played_says_so_once(page, indexed):
    lib, _data = indexed
    stats = {path: path.stat() for path in lib.glob("*.mp4")}
    for path, st in stats.items():
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # changed since it was indexed
    try:
        page.locator("#moments .thumbnail-item").first.click()
        problem = page.wait_for_selector("#player .tubelet-problem", timeout=30_000)
        assert problem.inner_text().endswith(".mp4: the file is gone or changed since it was indexed.")
        assert page.locator(".toast-body").count() == 0 and page.locator("#player video").count() == 0
    finally:
        for path, st in stats.items():
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
