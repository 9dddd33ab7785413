"""Web security (issue 11): a real `run.py serve` process on loopback over a library that holds more than
video: a PDF, an HTML page with script, a PNG, a hard link and an upper-case symlink to the catalog, a
data dir inside the root, and a singly indexed file with a PDF beside it. Nothing but the servable set
(thumbnails and previews Tubelet made, indexed videos by id) may come back, in any form."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from helpers import ENCODER, cli_in_process
from live_server import live_server

from app.demo import synthesize_video

HTML_MARKER = b"<script>window.tubeletOwned=1</script>"
PDF_MARKER = b"%PDF-1.4 tubelet-secret-pdf"
PNG_MARKER = b"\x89PNG\r\n\x1a\ntubelet-secret-png"
SQLITE_MARKER = b"SQLite format 3"
MISSING_ID = 987654


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """root/ holds lib/ (two videos, a PDF, an HTML page, a PNG) and data/ (the data dir, inside the root);
    single/ holds one video indexed on its own and a PDF beside it."""
    root = tmp_path_factory.mktemp("root")
    lib, single, data = root / "lib", tmp_path_factory.mktemp("single"), root / "data"
    lib.mkdir()
    for seed in (0, 1):
        synthesize_video(lib / f"scene_{seed}.mp4", seed=seed, seconds=4.0, width=160, height=120)
    synthesize_video(single / "alone.mp4", seed=2, seconds=4.0, width=160, height=120)
    (lib / "notes.pdf").write_bytes(PDF_MARKER)
    (lib / "page.html").write_bytes(b"<html><body>" + HTML_MARKER + b"</body></html>")
    (lib / "picture.png").write_bytes(PNG_MARKER)
    (single / "beside.pdf").write_bytes(PDF_MARKER)
    cli_in_process("index", "--data", data, lib, *ENCODER, "--precision", "fp32", "--json")
    cli_in_process("index", "--data", data, single / "alone.mp4", *ENCODER, "--precision", "fp32", "--json")
    # Placed after indexing: links to the catalog (a hard link, and a symlink whose name has capitals).
    os.link(data / "catalog.db", lib / "catalog-link.mp4")
    (lib / "Catalog.DB.mp4").symlink_to(data / "catalog.db")
    (lib / "Upper").symlink_to(data)
    return root, lib, single, data


@pytest.fixture(scope="module")
def server(hostile):
    root, _lib, _single, data = hostile
    with live_server(data, "--root", str(root)) as url:
        yield url


def get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def get_some(url: str, limit: int = 4 << 20, timeout: float = 5.0) -> tuple[int, dict, bytes]:
    """Like get(), for any route: streaming ones (heartbeats, event streams) are read for `timeout` s."""
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()
    with response:
        chunks = []
        try:
            while sum(map(len, chunks)) < limit and (chunk := response.read1(65536)):
                chunks.append(chunk)
        except (TimeoutError, http.client.IncompleteRead):
            pass  # a stream that does not end: what came so far is what is checked
        return response.status, dict(response.headers), b"".join(chunks)


def post(url: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def videos_by_name(data: Path) -> dict[str, int]:
    from sqlalchemy import select

    from indexer.catalog import Catalog
    from indexer.schema import Video, VideoPath

    catalog = Catalog(f"sqlite:///{data / 'catalog.db'}").open()
    try:
        with catalog.session() as s:
            rows = s.execute(select(VideoPath.path, Video.id, Video.status).join(Video)).all()
    finally:
        catalog.close()
    return {Path(path).name: vid for path, vid, status in rows if status == "indexed"}


def outside_paths(hostile) -> list[str]:
    _root, lib, single, data = hostile
    return [
        "/etc/passwd",
        str(data / "catalog.db"),
        str(lib / "catalog-link.mp4"),
        str(lib / "Catalog.DB.mp4"),
        str(lib / "Upper" / "catalog.db"),
        str(lib / "notes.pdf"),
        str(lib / "page.html"),
        str(lib / "picture.png"),
        str(single / "beside.pdf"),
        str(lib / "scene_0.mp4"),
        str(lib / "../lib/page.html"),
        str(next((data / "weights").iterdir())),
    ]


def assert_nothing_outside(body: bytes, data: Path, where: str, sent: tuple[str, ...] = ()) -> None:
    """No byte of an outside file, and no data-dir path beyond what the client itself sent (echoed)."""
    for echo in sorted(sent, key=len, reverse=True):
        body = body.replace(echo.encode(), b"<sent>").replace(quote(echo).encode(), b"<sent>")
    for marker in (HTML_MARKER, PDF_MARKER, PNG_MARKER, SQLITE_MARKER, b"root:x:0:0"):
        assert marker not in body, f"{where} returned {marker!r}"
    for secret in {str(data), os.path.realpath(data)}:
        assert secret.encode() not in body, f"{where} revealed the data dir"


# -- findings 2, 4, 5: serve only what the catalog says is servable ----------------------------------


@pytest.mark.slow
def test_an_indexed_video_is_served_by_id_as_video_with_nosniff(server, hostile):
    _root, lib, single, data = hostile
    ids = videos_by_name(data)
    status, headers, body = get(server + f"tubelet/video/{ids['scene_0.mp4']}")
    assert status == 200 and body == (lib / "scene_0.mp4").read_bytes()
    assert headers["content-type"] == "video/mp4" and headers["x-content-type-options"] == "nosniff"
    status, headers, body = get(server + f"tubelet/video/{ids['alone.mp4']}", {"Range": "bytes=10-19"})
    assert status == 206 and body == (single / "alone.mp4").read_bytes()[10:20]
    assert headers["content-range"] == f"bytes 10-19/{(single / 'alone.mp4').stat().st_size}"


@pytest.mark.slow
def test_nothing_in_a_root_is_served_by_path(server, hostile):
    """Findings 2, 4, 5: the file route serves no library file at all, so no PDF (also beside a singly
    indexed video), HTML page, image, hard link or differently-cased symlink to the catalog."""
    _root, _lib, _single, data = hostile
    for path in outside_paths(hostile):
        status, headers, body = get(server + "gradio_api/file=" + quote(path))
        assert status in (403, 404), path
        assert "text/html" not in headers.get("content-type", "") or status != 200, path
        assert_nothing_outside(body, data, path, sent=(path,))
    status, _, _ = get(server + "gradio_api/file=" + quote(str(next((data / "thumbs").rglob("*.jpg")))))
    assert status == 200  # what Tubelet made stays servable


@pytest.mark.slow
def test_unknown_or_unindexed_ids_get_the_same_404(server, hostile):
    _root, _lib, _single, _data = hostile
    answers = {get(server + f"tubelet/video/{vid}")[0:3:2] for vid in (MISSING_ID, 0, "-1", "1e3", "%2e%2e")}
    answers |= {
        get(server + f"tubelet/preview/{name}")[0:3:2] for name in ("x.mp4", "..%2fcatalog.db", "0" * 24 + ".mp4")
    }
    answers |= {get(server + f"tubelet/thumb/{cid}")[0:3:2] for cid in (MISSING_ID, "abc")}
    exports = (MISSING_ID, "abc", f"1?through={MISSING_ID}", "1?through=abc", "1?through=-2")
    answers |= {get(server + f"tubelet/export/{cid}")[0:3:2] for cid in exports}
    # the same answer whatever exists ("..%2f" does not even reach the route: the router's own 404)
    assert answers == {(404, b"Not found."), (404, b'{"detail":"Not Found"}')}


# -- finding 3: nothing served can be the catalog; the server keeps its locks -------------------------


@pytest.mark.slow
def test_catalog_links_are_refused_and_the_server_still_sees_new_videos(server, hostile, tmp_path):
    from gradio_client import Client

    _root, lib, single, data = hostile
    for path in (lib / "catalog-link.mp4", lib / "Catalog.DB.mp4", lib / "Upper" / "catalog.db"):
        status, _, body = get(server + "gradio_api/file=" + quote(str(path)))
        assert status in (403, 404) and SQLITE_MARKER not in body, path
    # An indexed video replaced by a symlink, then a hard link, to the catalog: its id serves nothing now.
    alone, vid = single / "alone.mp4", videos_by_name(data)["alone.mp4"]
    alone.unlink()
    alone.symlink_to(data / "catalog.db")
    assert get(server + f"tubelet/video/{vid}")[0:3:2] == (404, b"Not found.")
    alone.unlink()
    os.link(data / "catalog.db", alone)
    assert get(server + f"tubelet/video/{vid}")[0:3:2] == (404, b"Not found.")
    client = Client(server, verbose=False, download_files=False)
    before = client.predict(api_name="/status")["videos"]["indexed"]
    late = tmp_path / "late"
    late.mkdir()
    synthesize_video(late / "late.mp4", seed=5, seconds=4.0, width=160, height=120)
    cli_in_process("index", "--data", data, late, *ENCODER, "--precision", "fp32", "--json")
    assert client.predict(api_name="/status")["videos"]["indexed"] == before + 1
    hits = client.predict(text="anything", k=1000, api_name="/search")
    assert any(hit["path"] == str(late / "late.mp4") for hit in hits)


# -- finding 1: handlers take ids, never a path from the client ---------------------------------------


class Session:
    """The browser's side of Gradio's queue protocol: call any event by its index in /config."""

    def __init__(self, url: str):
        self.url, self.hash = url, uuid.uuid4().hex[:11]
        self.config = json.loads(get(url + "config")[2])

    def call(self, fn_index: int, data: list, event_data=None, trigger_id=None) -> tuple[str, bytes]:
        body = json.dumps(
            {
                "data": data,
                "fn_index": fn_index,
                "session_hash": self.hash,
                "event_data": event_data,
                "trigger_id": trigger_id,
            }
        ).encode()
        status, answer = post(self.url + "gradio_api/queue/join", body, "application/json")
        if status != 200:
            return f"refused {status}", answer
        with urllib.request.urlopen(self.url + f"gradio_api/queue/data?session_hash={self.hash}", timeout=120) as r:
            raw = r.read()
        for line in raw.splitlines():
            if line.startswith(b"data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return ("ok" if message.get("success") else "error"), line
        return "no answer", raw

    def dependency(self, elem_id: str, event: str) -> int:
        ids = {c["id"]: c.get("props", {}).get("elem_id") for c in self.config["components"]}
        return next(
            i
            for i, d in enumerate(self.config["dependencies"])
            if any(event == e and ids.get(t) == elem_id for t, e in d["targets"])
        )


LIBRARY_HEADERS = ["id", "path", "status", "clips", "duration s", "indexed at (UTC)", "error / warning"]


def library_table(video_id, path: str) -> dict:
    return {"headers": LIBRARY_HEADERS, "data": [[video_id, path, "indexed", 1, "", "", ""]], "metadata": None}


def previews(data: Path) -> set[Path]:
    return set((data / "previews").glob("*")) if (data / "previews").exists() else set()


@pytest.mark.slow
def test_library_handlers_take_ids_and_ignore_client_paths(server, hostile):
    """Finding 1: the table row the client sends names a video id and a path; only the id counts, the
    timeline state holds clip ids, and the player plays the catalog's file through id-based URLs."""
    _root, lib, _single, data = hostile
    session = Session(server)
    table_select, strip_select = session.dependency("library", "select"), session.dependency("timeline", "select")
    vid = videos_by_name(data)["scene_1.mp4"]
    outcome, body = session.call(
        table_select,
        [library_table(vid, str(lib / "picture.png"))],
        {"index": [0, 1], "value": str(lib / "picture.png")},
    )
    assert outcome == "ok" and b"picture.png" not in body
    assert_nothing_outside(body, data, "timeline")
    outcome, body = session.call(strip_select, [None], {"index": 0, "value": None})
    assert outcome == "ok", body
    player = json.loads(body[5:])["output"]["data"][0]
    assert "scene_1.mp4" in player and "picture.png" not in player
    assert f'href="tubelet/video/{vid}"' in player and 'src="tubelet/preview/' in player
    assert_nothing_outside(player.encode(), data, "player")
    status, headers, clip = get(server + player.split('src="')[1].split("#")[0])
    assert status == 200 and headers["content-type"] == "video/mp4" and clip[4:8] == b"ftyp"

    before = previews(data)
    outcome, body = session.call(
        table_select,
        [library_table(MISSING_ID, str(lib / "picture.png"))],
        {"index": [0, 1], "value": str(lib / "picture.png")},
    )
    assert outcome == "ok" and b"picture.png" not in body
    outcome, body = session.call(strip_select, [None], {"index": 0, "value": None})
    assert outcome == "error" and b"Select a video in the table first." in body and previews(data) == before


# -- finding 6: failed logins are limited -------------------------------------------------------------


def login(url: str, user: str, password: str) -> int:
    body = f"username={quote(user)}&password={quote(password)}".encode()
    return post(url + "login", body, "application/x-www-form-urlencoded")[0]


@pytest.mark.slow
def test_failed_logins_lock_the_address_out_even_for_the_right_password(hostile):
    _root, _lib, _single, data = hostile
    with live_server(data, "--auth", "ann:s3cret word") as url:
        assert login(url, "ann", "s3cret word") == 200
        assert [login(url, "ann", f"guess {i}") for i in range(5)] == [400] * 5
        assert login(url, "ann", "s3cret word") == 429  # locked out: a correct password does not help
        assert login(url, "bob", "x") == 429
        assert get(url + f"tubelet/video/{videos_by_name(data)['scene_0.mp4']}")[0] == 401  # auth on ids too


def test_login_limiter_window_and_lockout():
    from app.server import LoginLimiter

    now = [0.0]
    limiter = LoginLimiter(max_failures=3, window_s=10, lockout_s=30, clock=lambda: now[0])
    for t in (0, 20, 40):  # spread beyond the window: never locked
        now[0] = t
        limiter.record("a", succeeded=False)
    assert limiter.retry_after("a") == 0
    for _ in range(3):
        limiter.record("b", succeeded=False)
    assert limiter.retry_after("b") == 30 and limiter.retry_after("a") == 0
    now[0] += 31
    assert limiter.retry_after("b") == 0


# -- finding 7: uploads go once answered, the folder is capped, no server paths -----------------------


@pytest.mark.slow
def test_api_uploads_are_removed_once_answered_and_never_reveal_the_data_dir(server, hostile, tmp_path):
    from gradio_client import Client, handle_file

    _root, lib, _single, data = hostile
    query = tmp_path / "query.mp4"
    shutil.copy(lib / "scene_1.mp4", query)
    client = Client(server, verbose=False, download_files=False)
    hits = client.predict(video=handle_file(str(query)), k=2, api_name="/search")
    assert hits and hits[0]["path"] == str(lib / "scene_1.mp4")
    assert all(h["thumbnail"] == f"tubelet/thumb/{h['clip_id']}" for h in hits)
    assert get(server + hits[0]["thumbnail"])[1]["content-type"] == "image/jpeg"
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\0garbage" * 100)
    from gradio_client.exceptions import AppError  # a gr.Error raised by the handler

    with pytest.raises(AppError, match="cannot open as media") as refused:
        client.predict(video=handle_file(str(garbage)), api_name="/search")
    assert str(data) not in str(refused.value) and os.path.realpath(data) not in str(refused.value)
    files = [p for p in (data / "uploads").rglob("*") if p.is_file() and p.suffix == ".mp4"]
    assert files == []  # both uploads were removed once answered
    boundary = "tubeletboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="q.mp4"\r\n'
            f"Content-Type: video/mp4\r\n\r\n"
        ).encode()
        + query.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, answer = post(server + "gradio_api/upload", body, f"multipart/form-data; boundary={boundary}")
    assert status == 200 and b"q.mp4" in answer
    assert_nothing_outside(answer, data, "upload response")


def test_upload_folder_sweep_removes_old_files_and_caps_the_size(tmp_path):
    from app.server import UploadFolder

    uploads = UploadFolder(tmp_path / "uploads", max_bytes=250, max_age_s=60)
    now = time.time()
    for i, age in enumerate((500, 30, 20, 10)):  # one stale, then three recent ones of 100 bytes
        path = uploads.folder / f"h{i}" / f"f{i}.mp4"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x" * 100)
        os.utime(path, (now - age, now - age))
    assert uploads.sweep(now) == 2  # the stale one, then the oldest recent one to get under 250 bytes
    assert sorted(p.name for p in uploads.folder.rglob("*.mp4")) == ["f2.mp4", "f3.mp4"]
    assert sorted(p.name for p in uploads.folder.iterdir()) == ["h2", "h3"]
    uploads.remove(uploads.folder / "h2" / "f2.mp4")
    uploads.remove("/etc/passwd")  # not an upload: left alone
    assert [p.name for p in uploads.folder.rglob("*.mp4")] == ["f3.mp4"] and Path("/etc/passwd").exists()


# -- finding 8: a slot for cheap queries --------------------------------------------------------------


def test_cheap_queries_do_not_wait_behind_video_queries():
    from app.query import QueryError
    from app.ui import SEARCH_CONCURRENCY, QuerySlots

    slots = QuerySlots(running=1, admitted=2, wait_s=5)
    release, started = threading.Event(), threading.Semaphore(0)

    def long_video_query():
        started.release()
        release.wait(10)
        return "video"

    threads = [threading.Thread(target=slots.call, args=(True, long_video_query)) for _ in range(2)]
    for thread in threads:
        thread.start()
    assert started.acquire(timeout=5)
    begun = time.monotonic()
    assert slots.call(False, lambda: "text") == "text" and time.monotonic() - begun < 0.5
    with pytest.raises(QueryError, match="busy with other video and image queries"):
        slots.call(True, long_video_query)  # a third heavy query would hold a cheap query's worker
    release.set()
    for thread in threads:
        thread.join(10)
    assert QuerySlots().admitted < SEARCH_CONCURRENCY  # Gradio workers left for cheap queries


@pytest.mark.slow
def test_search_events_have_more_workers_than_heavy_queries(hostile, monkeypatch):
    from app.ui import HEAVY_ADMITTED, SEARCH_CONCURRENCY

    demo, _ = built_server(hostile, monkeypatch)
    limits = {fn.api_name: fn.concurrency_limit for fn in demo.fns.values()}
    assert [limits[name] for name in ("search", "ui_search", "ui_search_submit")] == [SEARCH_CONCURRENCY] * 3
    assert SEARCH_CONCURRENCY > HEAVY_ADMITTED


# -- finding 20 (API half): whole numbers, k=0 refused, NaN refused -----------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"k": 0}, "k must be between 1 and 1000, got 0"),
        ({"like": 1.7}, "like must be a whole number, got 1.7"),
        ({"k": 2.5}, "k must be a whole number, got 2.5"),
        ({"like": 9223372036854775808.0}, "like must be a whole number"),
        ({"min_score": "nan"}, "min_score must be a finite number, got nan"),  # JSON has no NaN: sent as text
        ({"min_score": "inf"}, "min_score must be a finite number, got inf"),
    ],
)
def test_api_refuses_numbers_it_would_otherwise_round(server, kwargs, message):
    from gradio_client import Client
    from gradio_client.exceptions import AppError  # a gr.Error raised by the handler

    with pytest.raises(AppError, match=re.escape(message)):
        Client(server, verbose=False, download_files=False).predict(text="x", **kwargs, api_name="/search")


# -- the route walk (Bar) -----------------------------------------------------------------------------


def built_server(hostile, monkeypatch):
    """(Blocks, launch arguments) exactly as `run.py serve` builds them, built here and not run."""
    from app.server import ServeSettings, build_app
    from indexer.settings import DataDir

    root, _lib, _single, data = hostile
    monkeypatch.setenv("GRADIO_TEMP_DIR", "")  # build_app sets it: restored after the test
    demo, launch, _ = build_app(ServeSettings(DataDir(data), roots=(root,)))
    alias = Path(os.environ["GRADIO_TEMP_DIR"])
    if alias.is_symlink():  # the private folder holding the link build_app made (never the data dir)
        shutil.rmtree(alias.parent, ignore_errors=True)
    return demo, launch


def server_routes(hostile, monkeypatch) -> list[str]:
    """The GET routes of the FastAPI app the server builds."""
    from gradio.routes import App

    demo, launch = built_server(hostile, monkeypatch)
    app = App.create_app(demo, app_kwargs=launch.get("app_kwargs"))
    return sorted({path for path, methods in walk_routes(app.routes) if "GET" in methods})


def walk_routes(routes, prefix: str = ""):
    """(path, methods) of every route, also inside included routers."""
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI's include_router
            yield from walk_routes(route.original_router.routes, prefix + route.include_context.prefix)
        elif getattr(route, "path", None) is not None:
            yield prefix + route.path, set(getattr(route, "methods", None) or ())


def hostile_values(hostile) -> list[str]:
    _root, _lib, _single, _data = hostile
    return [
        *outside_paths(hostile),
        str(MISSING_ID),
        "-1",
        "0",
        "../../catalog.db",
        "%2e%2e%2fcatalog.db",
        "file:///etc/passwd",
        "http://127.0.0.1:1/x",
    ]


def normalised(body: bytes, sent: str) -> bytes:
    """A response with what differs between any two calls (ids, timings, the echoed value) taken out."""
    body = body.replace(sent.encode(), b"<sent>").replace(quote(sent).encode(), b"<sent>")
    return re.sub(
        rb'"(event_id|avg_time|cache_duration|duration|average_duration)":("[^"]*"|[-0-9.e]+|null)', rb'"\1":-', body
    )


@pytest.mark.slow
def test_route_walk_nothing_outside_the_servable_set_comes_back(server, hostile, monkeypatch):
    """Every GET route of the server's FastAPI app and every event in its /config, called with outside
    paths, links and ids the catalog lacks: no outside byte, no data-dir path, no preview made, and an
    existing outside file gets exactly the answer a missing one gets (existence is not revealed)."""
    _root, _lib, _single, data = hostile
    routes = server_routes(hostile, monkeypatch)
    assert "/gradio_api/file={path_or_url:path}" in routes and "/config" in routes
    made_before, walked = previews(data), 0
    exists, missing = "/etc/passwd", "/etc/tubelet-no-such-file"
    for route in routes:
        answers = {}
        for value in [*hostile_values(hostile), missing] if "{" in route else [""]:
            path = route.split("{")[0] + quote(value, safe="/") if "{" in route else route
            status, headers, body = get_some(server + path.lstrip("/"))
            assert_nothing_outside(body, data, f"GET {path}", sent=(value,))
            if value in outside_paths(hostile):
                assert status != 200 or "text/html" not in headers.get("content-type", ""), path
            answers[value] = (status, normalised(body, value))
            walked += 1
        if "{" in route:
            assert answers[exists] == answers[missing], f"GET {route} tells whether {exists} exists"
    session = Session(server)
    types = {c["id"]: c["type"] for c in session.config["components"]}
    for fn_index, dependency in enumerate(session.config["dependencies"]):
        answers = {}
        for value in [*hostile_values(hostile), missing]:
            data_in = [hostile_input(types.get(i), value) for i in dependency["inputs"]]
            trigger = dependency["targets"][0][0] if dependency["targets"] else None
            event_data = {"index": [0, 0] if types.get(trigger) == "dataframe" else 0, "value": value}
            outcome, body = session.call(fn_index, data_in, event_data, trigger)
            where = f"event {fn_index} ({dependency.get('api_name')}) with {value}"
            assert_nothing_outside(body, data, where, sent=(value,))
            answers[value] = (outcome, normalised(body, value))
            walked += 1
        assert answers[exists] == answers[missing], f"event {fn_index} tells whether {exists} exists"
    assert previews(data) == made_before  # no preview of anything a client named
    assert walked > 100 and "/tubelet/video/{video_id}" in routes


def hostile_input(component: str | None, value: str):
    if component == "dataframe":
        return {"headers": ["id", "path"], "data": [[value, value]], "metadata": None}
    if component in ("number", "slider"):
        return int(value) if value.lstrip("-").isdigit() else None
    if component in ("image", "video", "file"):
        return {"path": value, "meta": {"_type": "gradio.FileData"}}
    if component == "gallery":
        return [{"image": {"path": value, "meta": {"_type": "gradio.FileData"}}, "caption": None}]
    if component == "state":
        return [{"clip_id": value, "path": value}]
    return value


def test_error_texts_and_index_progress_never_name_the_data_dir(tmp_path, monkeypatch):
    """Finding 7: messages built from exceptions (no index yet, a failed index run) name "the data dir"."""
    import gradio as gr

    from app.jobs import JobState
    from app.query import QueryError
    from app.ui import Handlers, _user_errors
    from indexer.settings import DataDir

    data = DataDir(tmp_path / "secret-data")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "alias" / "uploads"))

    def no_index():
        raise QueryError(f"no index at {data.root}: run `python run.py index PATH` first")

    with pytest.raises(gr.Error) as refused:
        _user_errors(no_index, data)()
    assert refused.value.message == "no index at the data dir: run `python run.py index PATH` first"

    class FailedJobs:
        allowed_roots = ()

        def state(self):
            return JobState("failed", "/lib", error=f"DataDirError: cannot index into {data.root}: disk full")

    progress = Handlers(None, FailedJobs(), data).tick()
    assert "cannot index into the data dir: disk full" in progress and str(data.root) not in progress
