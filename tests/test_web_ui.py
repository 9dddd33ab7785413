"""The web UI in a real browser (Debian chromium via Playwright) and the API via gradio_client,
against a real `run.py serve` process on loopback over an index of generated videos."""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from helpers import ENCODER, cli_in_process
from live_server import live_server

from app.demo import cut_segment

pytestmark = pytest.mark.slow  # a live server (and a browser) over an indexed library

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, demo_videos):
    root = tmp_path_factory.mktemp("footage")
    lib = root / "library"
    lib.mkdir()
    for video in demo_videos[:5]:
        shutil.copy(video, lib / video.name)
    data = tmp_path_factory.mktemp("data")
    cli_in_process("index", "--data", data, lib, *ENCODER, "--precision", "fp32", "--json")
    return root, lib, data


@pytest.fixture(scope="module")
def server(indexed):
    root, _lib, data = indexed
    with live_server(data, "--root", str(root)) as url:
        yield url


@pytest.fixture
def page(browser, server):
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.goto(server)
    page.wait_for_selector("#query-text textarea")
    yield page
    page.close()


def seconds(text: str) -> float:
    minutes, secs = text.split(":")
    return int(minutes) * 60 + float(secs)


def card_captions(page) -> list[tuple[str, float, float]]:
    """(file name, start, end) of each card; its peak lies inside the moment and its score is a number."""
    out = []
    for caption in page.locator("#moments .caption-label").all_inner_texts():
        name, span, peak, score = caption.split(" · ")
        start, end = (seconds(t) for t in span.split("–"))
        peak_start, peak_end = (seconds(t) for t in peak.removeprefix("peak ").split("–"))
        assert peak.startswith("peak ") and start <= peak_start < peak_end <= end
        assert re.fullmatch(r"score -?\d+\.\d\d", score), caption
        out.append((name, start, end))
    return out


def card_peaks(page) -> list[tuple[float, float]]:
    captions = page.locator("#moments .caption-label").all_inner_texts()
    return [tuple(seconds(t) for t in c.split(" · ")[2].removeprefix("peak ").split("–")) for c in captions]


def test_text_query_shows_moment_cards(page):
    page.fill("#query-text textarea", "a yellow disc on blue stripes")
    page.click("#search-button")
    page.wait_for_selector("#moments .thumbnail-item img", timeout=60_000)
    captions = card_captions(page)
    assert len(captions) >= 3 and all(name.startswith("scene_0") for name, _, _ in captions)
    assert "moments, best first" in page.inner_text("#search-status")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-search-results.png"), full_page=True)


def test_a_recording_time_range_restricts_the_search(page):
    """The demo videos state no recording time: a range leaves them all out, ordering by time keeps them."""
    page.fill("#query-text textarea", "a yellow disc on blue stripes")
    page.get_by_text("Filters").click()
    # Opening the accordion sets its blank number fields to 0 (max duration 0: nothing would pass); blank them.
    for label in ("Min video duration (s)", "Max video duration (s)", "Minimum score"):
        page.get_by_label(label).fill("")
    page.locator("#sort").get_by_text("time").click()
    page.click("#search-button")
    page.wait_for_selector("#moments .thumbnail-item img", timeout=60_000)
    assert len(card_captions(page)) >= 3
    page.fill("#recorded-after textarea", "2000-01-01")
    page.click("#search-button")
    page.wait_for_function(
        "() => document.querySelector('#search-status').innerText.includes('nothing indexed passes the filters')",
        timeout=60_000,
    )


def test_uploaded_clip_finds_its_source_and_plays_the_moment(page, indexed, tmp_path):
    _root, lib, _data = indexed
    query = cut_segment(lib / "scene_02.mp4", tmp_path / "query clip.mp4", 3.0, 5.5)
    page.set_input_files("#query-video input[type=file]", str(query))
    page.wait_for_selector("#query-video video", timeout=30_000)
    page.click("#search-button")
    page.wait_for_selector("#moments .thumbnail-item img", timeout=60_000)
    name, start, end = card_captions(page)[0]
    peak_start, peak_end = card_peaks(page)[0]
    assert name == "scene_02.mp4" and start < 5.5 and end > 3.0 and peak_start < 5.5 and peak_end > 3.0

    page.locator("#moments .thumbnail-item").first.click()
    video = page.wait_for_selector("#player video", timeout=60_000)
    page.wait_for_function(
        "() => { const v = document.querySelector('#player video'); return v && !v.paused && v.currentTime > 0; }",
        timeout=30_000,
    )
    state = video.evaluate(
        "v => ({t: v.currentTime, offset: +v.dataset.offset, start: +v.dataset.start,"
        " peak: +v.dataset.peakStart, paused: v.paused, error: v.error && v.error.code})"
    )
    assert state["error"] is None and not state["paused"]
    assert state["start"] == pytest.approx(start, abs=0.01) and state["peak"] == pytest.approx(peak_start, abs=0.01)
    assert state["offset"] == pytest.approx(min(start, 2.0) + state["peak"] - state["start"], abs=0.002)
    assert state["t"] >= state["offset"] - 0.05  # playback began at the moment's peak
    page.screenshot(path=str(ARTIFACTS / "ui-playing-moment.png"), full_page=True)


def test_library_lists_videos_and_shows_a_timeline(page, indexed, server):
    page.get_by_role("tab", name="Library").click()
    page.wait_for_selector("#library >> text=scene_03.mp4", timeout=30_000)
    assert page.inner_text("#library").count("indexed") >= 5
    page.get_by_text("scene_03.mp4").first.click()
    page.wait_for_function("() => document.querySelectorAll('#timeline .thumbnail-item').length == 4", timeout=30_000)
    captions = page.locator("#timeline .caption-label").all_inner_texts()
    assert captions[0] == "0:00.00–0:02.13" and captions[-1] == "0:05.87–0:08.00"
    # By versioned thumbnail URL, as the search cards: not a file path Gradio hashes and copies per selection.
    sources = page.eval_on_selector_all("#timeline .thumbnail-item img", "imgs => imgs.map(i => i.src)")
    assert all(re.fullmatch(re.escape(server) + r"tubelet/thumb/[0-9]+\?v=[0-9a-f]{16}-[0-9]{5}", s) for s in sources)
    page.locator("#timeline .thumbnail-item").nth(1).click()
    page.wait_for_selector("#timeline-player video[data-start='2.133']", timeout=60_000)


def test_empty_data_dir_says_how_to_start(browser, tmp_path):
    with live_server(tmp_path) as url:
        page = browser.new_page()
        page.goto(url)
        page.fill("#query-text textarea", "anything")
        page.click("#search-button")
        page.wait_for_selector("#search-status >> text=No index yet", timeout=30_000)
        page.close()


def test_index_tab_indexes_a_folder_in_the_background(page, indexed, demo_videos):
    root, _lib, _data = indexed
    incoming = root / "incoming"
    incoming.mkdir(exist_ok=True)
    shutil.copy(demo_videos[5], incoming / "late arrival.mp4")
    page.get_by_role("tab", name="Index").click()
    page.fill("#index-folder textarea", str(incoming))
    page.click("#index-start")
    page.wait_for_selector("#index-progress [data-status=done]", timeout=120_000)
    assert "1 new" in page.inner_text("#index-progress")
    page.get_by_role("tab", name="Search").click()
    page.fill("#query-text textarea", "anything")
    page.click("#search-button")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#moments .caption-label')]"
        ".some(c => c.textContent.startsWith('late arrival.mp4'))",
        timeout=60_000,
    )


def test_index_tab_refuses_folders_outside_the_roots(page, tmp_path):
    page.get_by_role("tab", name="Index").click()
    page.fill("#index-folder textarea", str(tmp_path))
    page.click("#index-start")
    page.wait_for_selector("text=is not inside the allowed library roots", timeout=30_000)


def test_serve_says_where_it_listens_and_never_suggests_a_share_link(server, indexed):
    _root, _lib, data = indexed
    port = server.rstrip("/").rsplit(":", 1)[1]
    printed = (data / f"serve-{port}.log").read_text()
    assert f"Tubelet is serving on http://127.0.0.1:{port}/ (Ctrl+C to stop)" in printed
    assert "share=True" not in printed and "public link" not in printed


def test_api_search_matches_the_cli(server, indexed):
    from gradio_client import Client

    _root, _lib, data = indexed
    client = Client(server, verbose=False, download_files=False)
    hits = client.predict(text="a green square", k=5, api_name="/search")
    expected = json.loads(
        cli_in_process(
            "search", "--data", data, "--text", "a green square", "-k", "5", "--precision", "fp32", "--json"
        ).stdout
    )
    assert len(hits) == 5  # not two empty answers
    assert [(h["clip_id"], h["start"], h["end"], h["score"]) for h in hits] == [
        (h["clip_id"], h["start"], h["end"], h["score"]) for h in expected
    ]
    status = client.predict(api_name="/status")
    assert status["clips"] >= 20 and status["videos"]["indexed"] >= 5


def test_api_video_upload(server, indexed, tmp_path):
    from gradio_client import Client, handle_file

    _root, lib, _data = indexed
    query = cut_segment(lib / "scene_04.mp4", tmp_path / "q.mp4", 1.0, 3.5)
    hits = Client(server, verbose=False, download_files=False).predict(
        video=handle_file(str(query)), k=3, api_name="/search"
    )
    assert hits[0]["path"] == str(lib / "scene_04.mp4") and hits[0]["start"] < 3.5 and hits[0]["end"] > 1.0


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_files_outside_the_allowed_roots_are_refused(server, indexed):
    _root, lib, data = indexed
    file_url = server + "gradio_api/file="
    thumbnail = next((data / "thumbs").rglob("*.jpg"))
    assert status_of(file_url + quote(str(thumbnail))) == 200
    # Originals are served by video id only (tests/test_security_web.py), never by path, not even in a root.
    assert status_of(server + "tubelet/video/1") == 200
    for forbidden in [
        str(lib / "scene_00.mp4"),
        "/etc/passwd",
        str(data / "catalog.db"),
        str(next((data / "weights").iterdir())),
        str(next((data / "index").iterdir())),
        f"{lib}/../../../../etc/passwd",
        str(Path(__file__).resolve()),
    ]:
        assert status_of(file_url + quote(forbidden)) == 403, forbidden


def test_auth_protects_ui_and_api(indexed):
    from gradio_client import Client

    _root, _lib, data = indexed
    with live_server(data, "--auth", "ann:s3cret word") as url:
        assert status_of(url + "gradio_api/info") == 401
        thumbnail = next((data / "thumbs").rglob("*.jpg"))
        assert status_of(url + "gradio_api/file=" + quote(str(thumbnail))) in (401, 403)
        assert status_of(url + "tubelet/video/1") == 401
        hits = Client(url, auth=("ann", "s3cret word"), verbose=False, download_files=False).predict(
            text="x", k=2, api_name="/search"
        )
        assert len(hits) == 2


def test_hostile_api_calls_get_clear_errors(server, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError  # a gr.Error raised by the handler

    client = Client(server, verbose=False, download_files=False)
    garbage = tmp_path / "clip.mp4"
    garbage.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(AppError, match=r"^query video the upload/[0-9a-f]+/clip\.mp4: cannot open as media"):
        client.predict(video=handle_file(str(garbage)), api_name="/search")
    with pytest.raises(AppError, match=r"^k must be between 1 and 1000, got 1000000000$"):
        client.predict(text="x", k=10**9, api_name="/search")
    # gradio_client uploads a local file given as FileData: the server reads only its own copy in the upload
    # folder, never the path the client named (raw calls naming server paths: test_security_web's route walk).
    not_uploaded = {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}
    with pytest.raises(AppError, match=r"^query image the upload/[0-9a-f]+/passwd: cannot read as an image"):
        client.predict(image=not_uploaded, api_name="/search")
    assert client.predict(text="x", path_prefix="../../../etc", api_name="/search") == []


def test_oversized_upload_is_refused_with_a_clear_message(indexed, tmp_path):
    from gradio_client import Client, handle_file

    _root, _lib, data = indexed
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (2 << 20))
    with (
        live_server(data, "--max-upload-mb", "1") as url,
        pytest.raises(ValueError, match=r"big\.mp4 exceeds the maximum file size of 1048576 bytes"),
    ):
        Client(url, verbose=False, download_files=False).predict(video=handle_file(str(big)), api_name="/search")


def test_more_like_this_searches_from_the_selected_moment(page):
    page.fill("#query-text textarea", "a green square")
    page.click("#search-button")
    page.wait_for_selector("#moments .thumbnail-item img", timeout=60_000)
    chosen = card_captions(page)[1]
    page.locator("#moments .thumbnail-item").nth(1).click()
    page.wait_for_selector("#player video", timeout=60_000)
    page.click("#more-like-this")
    page.wait_for_selector("#player video", state="detached", timeout=60_000)  # a new search clears the player
    page.wait_for_selector("#moments .thumbnail-item img", timeout=60_000)
    name, start, end = card_captions(page)[0]
    assert name == chosen[0] and start < chosen[2] and end > chosen[1]  # the selected clip is its own best match


def test_ui_form_and_cli_build_the_same_request(tmp_path):
    import gradio as gr

    import run
    from app.query import build_request
    from app.ui import SearchForm, form_request

    args = run.build_parser().parse_args(
        [
            "search",
            "--text",
            "a dog",
            "-k",
            "12",
            "--path-glob",
            "*.mp4",
            "--indexed-after",
            "2026-11-01",
            "--min-duration",
            "2",
            "--max-moment",
            "12.5",
        ]
    )
    expected = build_request(
        text="a dog", k=12, path_glob="*.mp4", indexed_after="2026-11-01", min_duration=2.0, max_moment=12.5
    )
    assert run.search_request(args) == expected
    # Blank widgets are not given, and start/end apply only with an example clip.
    assert (
        form_request(
            text=" a dog ",
            negative="  ",
            start=3.0,
            end=5.0,
            k=12,
            path_prefix=" ",
            path_glob="*.mp4",
            min_duration=2,
            indexed_after="2026-11-01 ",
            max_moment=12.5,
        )
        == expected
    )
    assert form_request(text="  ", negative="night", k=12) is None  # nothing to search for yet

    with gr.Blocks():
        form = SearchForm(*(gr.Textbox() for _ in range(17)))
    values = {form.text: "ignored", form.negative: "night", form.k: 12.0, form.min_score: None}
    request = form.request({w: v for w, v in values.items() if w in form.inputs(examples=False)}, like=7)
    assert request == build_request(like=7, negative="night", k=12)
    assert form.inputs(examples=False).isdisjoint({form.text, form.image, form.video, form.start, form.end})
    assert len(form.inputs()) == 17


def test_cards_show_thumbnails_by_clip_id_from_one_backend_call(page, server):
    """A UI text search (issue 13: 9.9 s in the browser against 0.53 s through the API) is one event whose
    cards name thumbnails by clip id on this server (Gradio no longer hashes and copies each one into its cache per
    search), versioned so that the browser keeps those it has seen."""
    from gradio_client import Client

    sent = []  # events the page sends with the query in them (the Index tab's timer sends its own every second)
    page.on("request", lambda r: sent.append(r.url) if "a blue circle" in (r.post_data or "") else None)
    page.fill("#query-text textarea", "a blue circle")
    page.click("#search-button")
    page.wait_for_function(
        "() => { const imgs = [...document.querySelectorAll('#moments .thumbnail-item img')];"
        " return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }",
        timeout=60_000,
    )
    sources = page.eval_on_selector_all("#moments .thumbnail-item img", "imgs => imgs.map(i => i.src)")
    hits = Client(server, verbose=False, download_files=False).predict(text="a blue circle", k=12, api_name="/search")
    assert [src.split("?")[0] for src in sources] == [f"{server}tubelet/thumb/{h['clip_id']}" for h in hits]
    # Versioned by content, so the browser may keep them; the bare URL (the API's) is never cached.
    assert all(re.fullmatch(r".*\?v=[0-9a-f]{16}-[0-9]{5}", src) for src in sources)
    with (
        urllib.request.urlopen(sources[0], timeout=10) as versioned,
        urllib.request.urlopen(sources[0].split("?")[0], timeout=10) as bare,
    ):
        assert versioned.headers["Cache-Control"] == "private, max-age=86400, immutable"
        assert bare.headers["Cache-Control"] == "private, no-store" and bare.read() == versioned.read()
    assert status_of(sources[0].replace("?v=", "?v=0")) == 200  # another version: served, not cacheable
    assert [url.split("?")[0].removeprefix(server) for url in sent] == ["gradio_api/queue/join"]


def test_serve_loads_the_encoders_as_it_starts(indexed, monkeypatch):
    """The first search of a fresh server must not wait seconds for the models: `serve` loads them in the
    background as it starts (issue 13, UI latency)."""
    import threading

    from gradio.routes import App
    from starlette.testclient import TestClient

    from app.search import SearchService
    from app.server import ServeSettings, build_app
    from indexer.settings import DataDir

    _root, _lib, data = indexed
    warmed = []
    warm_up = SearchService.warm_up
    monkeypatch.setattr(SearchService, "warm_up", lambda self: warmed.append(self) or warm_up(self))
    monkeypatch.setenv("GRADIO_TEMP_DIR", "")  # build_app sets it: restored after the test
    demo, launch, _ = build_app(ServeSettings(DataDir(data), precision="fp32"))
    try:
        with TestClient(App.create_app(demo, app_kwargs=launch["app_kwargs"])):  # runs the server's start-up
            for thread in [t for t in threading.enumerate() if t.name == "tubelet-warm-up"]:
                thread.join(120)
    finally:
        shutil.rmtree(Path(os.environ["GRADIO_TEMP_DIR"]).parent, ignore_errors=True)  # the alias build_app made
    (service,) = warmed
    assert service.towers is not None and all(service.towers.is_loaded(name) for name in ("video", "image"))
