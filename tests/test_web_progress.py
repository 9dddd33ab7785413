"""The Index tab's progress bar in a real browser: monotonic to 100%, "done", durations not clock times, no raw
Gradio i18n keys in the page; the Library table is selectable but not editable."""

from __future__ import annotations

import re
import time
from pathlib import Path

import av
import pytest
from helpers import ENCODER, cli_in_process
from live_server import live_server

from app.demo import synthesize_video

pytestmark = pytest.mark.slow  # a live server (and a browser) over an indexed library

PERCENT = re.compile(r"(\d+)%")
# Every text Gradio's status tracker announces in its screen-reader region (part of the page text).
RECORD_ANNOUNCEMENTS = """() => { window.__said = [];
  new MutationObserver(() => document.querySelectorAll('[role=status]').forEach(e => {
    const t = e.textContent.trim(); if (t) window.__said.push(t); }))
  .observe(document.body, {subtree: true, childList: true, characterData: true}); }"""


def retitled(source: Path, target: Path, title: str) -> Path:
    """`source`'s packets in a new file whose container title differs: other bytes (another video to the
    catalog, embedded anew), the same frames, and no encoding."""
    with av.open(str(source)) as src, av.open(str(target), "w", options={"movflags": "faststart"}) as out:
        out.metadata["title"] = title
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return target


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """A data dir indexed from one short video, and a folder of 24 videos of 20 s for the UI to index (six
    made, each also in three re-titled copies): enough work for the Index tab's 1 s timer to show the bar
    between 0 and 100% (`run.py index` of the 24 took 7.9 s here with the tiny towers, model load included;
    the UI's job over six once took 1.5 s, and the timer then sometimes saw only 0 and 100%)."""
    root = tmp_path_factory.mktemp("progress-library")
    (root / "first").mkdir()
    (root / "batch").mkdir()
    synthesize_video(root / "first" / "seed.mp4", seed=7, seconds=3.0, width=160, height=120)
    for seed in range(6):
        made = synthesize_video(root / "batch" / f"cam{seed}.mp4", seed=seed, seconds=20.0, width=160, height=120)
        for copy in range(1, 4):
            retitled(made, root / "batch" / f"cam{seed}-{copy}.mp4", f"copy {copy}")
    data = tmp_path_factory.mktemp("progress-data")
    cli_in_process("index", "--data", data, root / "first", *ENCODER, "--precision", "fp32", "--json")
    return root, data


@pytest.fixture(scope="module")
def server(library):
    root, data = library
    with live_server(data, "--root", str(root)) as url:
        yield url


@pytest.fixture
def page(browser, server):
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.goto(server)
    page.wait_for_selector("#query-text textarea")
    page.evaluate(RECORD_ANNOUNCEMENTS)
    yield page
    page.close()


def sample_bar(page) -> tuple[float, str]:
    value = page.evaluate("() => document.querySelector('#index-progress progress')?.value ?? null")
    return value, page.inner_text("#index-progress [data-status]")


def test_index_bar_moves_monotonically_to_100_and_ends_done(page, library):
    root, _data = library
    page.get_by_role("tab", name="Index").click()
    page.fill("#index-folder textarea", str(root / "batch"))
    page.click("#index-start")
    page.wait_for_selector("#index-progress [data-status]", timeout=30_000)
    samples = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        samples.append(sample_bar(page))
        if samples[-1][1].startswith("done"):
            break
        page.wait_for_timeout(200)
    texts = [text for _, text in samples]
    percents = [int(PERCENT.search(text).group(1)) for text in texts]
    values = [value for value, _ in samples]
    assert texts[-1].startswith("done") and "100% · 8 min 00 s of video embedded" in texts[-1], texts
    assert percents == sorted(percents) and percents[-1] == 100, texts
    assert values == sorted(values) and values[-1] == 1, values
    assert any(0 < p < 100 for p in percents), texts  # it moved through the run, not 0 then 100
    assert all("of video embedded" in t for t in texts if "scanning" not in t), texts
    assert not any(re.search(r"\d:\d\d", t) or "ETA" in t for t in texts), texts  # durations, not clock times
    assert "24 new" in page.inner_text("#index-progress")

    page.wait_for_function("() => window.__said.includes('Done')", timeout=30_000)  # the tracker said it
    assert not [t for t in page.evaluate("() => window.__said") if "common." in t]
    assert "common." not in page.evaluate("() => document.body.textContent")

    page.click("#index-start")  # again: nothing new
    # the line says "nothing new to index" while the job still runs (its last steps); wait for it to end
    page.wait_for_function(
        "() => (document.querySelector('#index-progress [data-status]')?.innerText || '').startsWith('done')"
        " && document.querySelector('#index-progress').innerText.includes('nothing new to index')",
        timeout=60_000,
    )
    assert sample_bar(page) == (1, "done " + str(root / "batch") + " · 100% · nothing new to index")


def test_library_table_is_selectable_not_editable(page):
    page.get_by_role("tab", name="Library").click()
    # a video's visible row (seed.mp4, or the batch's when indexed: the table then holds 25 and hides some)
    cell = page.locator("#library >> text=/\\.mp4$/ >> visible=true").first
    cell.wait_for(timeout=30_000)
    before = page.inner_text("#library")
    cell.dblclick()
    page.keyboard.type("EDITED")
    page.keyboard.press("Enter")
    assert page.locator("#library input:not([type=file]), #library textarea").count() == 0
    assert page.inner_text("#library") == before
    cell.click()  # selecting a row still shows its timeline
    page.wait_for_selector("#timeline .thumbnail-item", timeout=30_000)


def test_opening_the_filters_changes_no_search(page):
    page.get_by_text("Filters").click()  # shows the filter widgets (Gradio then sends 0 for empty numbers)
    page.fill("#query-text textarea", "anything")
    page.click("#search-button")
    page.wait_for_function(
        "() => /moments, best first|No match|No good match/.test(document.querySelector('#search-status').innerText)",
        timeout=60_000,
    )
    assert "moments, best first" in page.inner_text("#search-status")
    field = page.locator("#min-score input, #min-score textarea").first
    assert field.input_value() == "" and field.get_attribute("placeholder") == "none: every match"


def test_no_raw_gradio_keys_in_the_page(page):
    page.fill("#query-text textarea", "anything")
    page.click("#search-button")
    page.wait_for_selector("#search-status >> text=moments, best first", timeout=60_000)
    page.wait_for_function("() => window.__said.some(t => t !== 'Loading')", timeout=30_000)  # the search ended
    assert [t for t in page.evaluate("() => window.__said") if t != "Loading"] == ["Done"]
