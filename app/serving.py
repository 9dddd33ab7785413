"""What the server hands out besides the UI: only what the catalog says is servable.

Routes (added to the Gradio app, behind the same login as everything else):
  /tubelet/video/{video_id}   the original file of an indexed video, found by id in the catalog;
  /tubelet/preview/{name}     a preview MP4 Tubelet made in DATA/previews/;
  /tubelet/thumb/{clip_id}    a clip's thumbnail, found by id in the catalog;
  /tubelet/export/{clip_id}   the clip (through clip `?through=ID` of the same video) as an MP4 download,
                              made by app/export.py in DATA/exports/ from a source that matches the catalog.
Nothing is ever looked up by a client-sent path. An original is served only when the file the server
opens is the very file (device and inode) the catalog path names, it is a regular file, it lies outside
the data dir and it is none of the catalog's files: so a hard link or a symlink to catalog.db, an HTML
page or a PDF beside a video is never served. Opening the catalog through a second descriptor would
also drop the server's own SQLite locks (POSIX locks go with any close of the file), which is why the
identity checks use stat() before anything is opened. Every refusal is the same 404, whatever exists.
"""

from __future__ import annotations

import mimetypes
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from app.library import indexed_paths
from indexer.catalog import Catalog
from indexer.settings import DataDir

PREVIEW_NAME = re.compile(r"[0-9a-f]{24}\.mp4")  # app/media.py names previews by a hash
CHUNK = 1 << 20
HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"}
# A thumbnail asked for by its version (thumb_version) never changes under that URL: the browser may keep it.
CACHED = "private, max-age=86400, immutable"


def video_url(video_id: int) -> str:
    return f"tubelet/video/{video_id}"


def preview_url(preview: Path) -> str:
    return f"tubelet/preview/{preview.name}"


def thumb_url(clip_id: int) -> str:
    return f"tubelet/thumb/{clip_id}"


def export_url(first: int, last: int) -> str:
    return f"tubelet/export/{first}" + (f"?through={last}" if last != first else "")


def thumb_version(thumbnail: str | Path) -> str:
    """A name for a thumbnail's content: its file is named by its video's content fingerprint and window number
    (indexer/thumbnails.py), so another video under a reused clip id has another version."""
    path = Path(thumbnail)
    return f"{path.parent.name[:16]}-{path.stem}"


def cached_thumb_url(clip_id: int, thumbnail: str | Path) -> str:
    """The thumbnail's URL with its version: served cacheable, so cards seen before load from the browser's cache."""
    return f"{thumb_url(clip_id)}?v={thumb_version(thumbnail)}"


@dataclass(frozen=True)
class OpenedFile:
    path: str  # the name it was opened by (resolved)
    fd: int
    size: int
    content_type: str
    cache_control: str = HEADERS["Cache-Control"]


def not_found() -> Response:
    return PlainTextResponse("Not found.", status_code=404, headers=HEADERS)


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _protected_identities(data: DataDir) -> set[tuple[int, int]]:
    """(device, inode) of the catalog's own files, whatever names link to them."""
    out = set()
    for path in data.catalog_files:
        try:
            out.add(_identity(os.stat(path)))
        except OSError:
            continue  # that file does not exist (yet): nothing to protect
    return out


def _inside(path: str, folder: Path) -> bool:
    real_folder = os.path.realpath(folder)
    return os.path.commonpath([path, real_folder]) == real_folder


def open_exact(path: str, forbidden: set[tuple[int, int]], content_type: str) -> OpenedFile | None:
    """Open `path` only if it is a regular file none of `forbidden` names, and the descriptor opened is
    that same file (a swap between the checks and the open is refused)."""
    real = os.path.realpath(path)
    try:
        before = os.stat(real)
    except OSError:
        return None
    if not stat.S_ISREG(before.st_mode) or _identity(before) in forbidden:
        return None
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    after = os.fstat(fd)
    if _identity(after) != _identity(before) or not stat.S_ISREG(after.st_mode):
        os.close(fd)
        return None
    return OpenedFile(real, fd, after.st_size, content_type)


def video_content_type(path: str) -> str:
    guessed, _ = mimetypes.guess_type(path)
    return guessed if guessed and guessed.startswith("video/") else "video/mp4"


def original_file(catalog: Catalog, data: DataDir, video_id: int) -> OpenedFile | None:
    """The indexed video's file, if one of its catalog paths still names a servable file."""
    forbidden = _protected_identities(data)
    for listed in indexed_paths(catalog, video_id):
        if _inside(os.path.realpath(listed.path), data.root):
            continue  # nothing in the data dir is an original, even if a root contains it
        opened = open_exact(listed.path, forbidden, video_content_type(listed.path))
        if opened is None:
            continue
        now = os.fstat(opened.fd)
        if (now.st_size, now.st_mtime_ns) == (listed.size, listed.mtime_ns):
            return opened
        os.close(opened.fd)  # changed since it was indexed: not the file the catalog knows
    return None


def made_file(folder: Path, relative: str, forbidden: set[tuple[int, int]], content_type: str) -> OpenedFile | None:
    """A file Tubelet wrote under `folder` (thumbs/, previews/): no link may lead out of it."""
    candidate = folder / relative
    try:
        if candidate.is_symlink() or not _inside(os.path.realpath(candidate), folder):
            return None
    except OSError:
        return None
    return open_exact(str(candidate), forbidden, content_type)


def file_response(opened: OpenedFile, request: Request, download_name: str | None = None) -> Response:
    """The file's bytes (one byte range if asked, so players can seek), then the descriptor is closed;
    with `download_name`, browsers save it under that name instead of showing it."""
    first, last = 0, opened.size - 1
    status, headers = 200, {**HEADERS, "Accept-Ranges": "bytes", "Content-Type": opened.content_type}
    if download_name is not None:
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(download_name)}"
    headers["Cache-Control"] = opened.cache_control
    wanted = _byte_range(request.headers.get("range"), opened.size)
    if wanted == "unsatisfiable":
        os.close(opened.fd)
        return Response(status_code=416, headers={**HEADERS, "Content-Range": f"bytes */{opened.size}"})
    if wanted is not None:
        first, last = wanted
        status = 206
        headers["Content-Range"] = f"bytes {first}-{last}/{opened.size}"
    headers["Content-Length"] = str(max(0, last - first + 1))
    if request.method == "HEAD":
        os.close(opened.fd)
        return Response(status_code=status, headers=headers)
    return StreamingResponse(_chunks(opened.fd, first, last), status_code=status, headers=headers)


def _byte_range(header: str | None, size: int):
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", (header or "").strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None  # absent or a form we do not serve partially: the whole file
    first_text, last_text = match.groups()
    if first_text == "":
        first, last = max(0, size - int(last_text)), size - 1  # the last N bytes
    else:
        first, last = int(first_text), min(int(last_text), size - 1) if last_text else size - 1
    if first >= size or first > last:
        return "unsatisfiable"
    return first, last


def _chunks(fd: int, first: int, last: int) -> Iterator[bytes]:
    try:
        offset = first
        while offset <= last:
            chunk = os.pread(fd, min(CHUNK, last - offset + 1), offset)
            if not chunk:
                break
            offset += len(chunk)
            yield chunk
    finally:
        os.close(fd)


def signed_in(request: Request) -> bool:
    """Gradio's own login rule (gradio.routes.App get_current_user): no auth configured, or a valid token."""
    app = request.app
    if getattr(app, "auth", None) is None and getattr(app, "auth_dependency", None) is None:
        return True
    if getattr(app, "auth_dependency", None) is not None:
        return False  # not used by Tubelet: refuse rather than guess
    cookie_id = getattr(app, "cookie_id", "")
    token = request.cookies.get(f"access-token-{cookie_id}") or request.cookies.get(
        f"access-token-unsecure-{cookie_id}"
    )
    return token is not None and app.tokens.get(token) is not None


Exporter = Callable[[Catalog, list[int]], tuple[str, str] | None]  # app.export.Downloads


def media_routes(data: DataDir, catalog: Callable[[], Catalog | None], exports: Exporter | None = None) -> list[Route]:
    """The id-based media routes; `catalog()` gives the server's open catalog (None before an index exists),
    `exports(catalog, clip_ids)` makes a download (its name in DATA/exports and the name to save it as)."""

    def guarded(serve: Callable[[Request], OpenedFile | None]):
        def endpoint(request: Request) -> Response:
            if not signed_in(request):
                return PlainTextResponse("Not authenticated.", status_code=401, headers=HEADERS)
            opened = serve(request)
            return not_found() if opened is None else file_response(opened, request)

        return endpoint

    def video(request: Request) -> OpenedFile | None:
        video_id, current = _int_param(request, "video_id"), catalog()
        return None if video_id is None or current is None else original_file(current, data, video_id)

    def preview(request: Request) -> OpenedFile | None:
        name = request.path_params["name"]
        if not PREVIEW_NAME.fullmatch(name):
            return None
        return made_file(data.root / "previews", name, _protected_identities(data), "video/mp4")

    def thumb(request: Request) -> OpenedFile | None:
        clip_id, current = _int_param(request, "clip_id"), catalog()
        if clip_id is None or current is None:
            return None
        row = current.clip_rows([clip_id]).get(clip_id)
        if row is None or not row.thumbnail:
            return None
        relative = Path(row.thumbnail)
        if relative.is_absolute() or not relative.parts or relative.parts[0] != "thumbs":
            return None
        opened = made_file(
            data.root / "thumbs", str(Path(*relative.parts[1:])), _protected_identities(data), "image/jpeg"
        )
        if opened is not None and request.query_params.get("v") == thumb_version(relative):
            return replace(opened, cache_control=CACHED)
        return opened

    def download(request: Request) -> Response:
        if not signed_in(request):
            return PlainTextResponse("Not authenticated.", status_code=401, headers=HEADERS)
        first, current = _int_param(request, "clip_id"), catalog()
        through = request.query_params.get("through", str(first))
        last = int(through) if through.isdigit() and len(through) < 19 else None
        made = None if None in (first, last, current, exports) else exports(current, sorted({first, last}))
        if made is None:
            return not_found()
        name, download_name = made
        opened = made_file(data.root / "exports", name, _protected_identities(data), "video/mp4")
        return not_found() if opened is None else file_response(opened, request, download_name)

    methods = ["GET", "HEAD"]
    return [
        Route("/tubelet/video/{video_id}", guarded(video), methods=methods),
        Route("/tubelet/preview/{name}", guarded(preview), methods=methods),
        Route("/tubelet/thumb/{clip_id}", guarded(thumb), methods=methods),
        Route("/tubelet/export/{clip_id}", download, methods=methods),
    ]


def _int_param(request: Request, name: str) -> int | None:
    text = request.path_params[name]
    return int(text) if text.isdigit() and len(text) < 19 else None
