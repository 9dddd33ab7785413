"""`run.py serve`: the web UI and API on a local port, locked down by default.

- binds 127.0.0.1 unless told otherwise; optional username/password (also from TUBELET_AUTH);
- serves only what the catalog says is servable: the thumbnails and previews Tubelet made, and indexed
  videos by id (app/serving.py); never a library root wholesale, the catalog, weights or index files;
- limits failed logins per client address (429 during a lock-out);
- uploads land in DATA/uploads/ (known to clients only by a neutral alias), are size-limited, removed
  once answered (API) or after a TTL, and the folder is capped; no share links, no analytics.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import math
import os
import shutil
import signal
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.settings import DataDir

if TYPE_CHECKING:
    from indexer.watch import WatchSettings

log = logging.getLogger(__name__)

UPLOAD_FOLDER_UPLOADS = 4  # DATA/uploads/ holds at most this many maximum-size uploads


@dataclass(frozen=True)
class ServeSettings:
    data: DataDir
    host: str = "127.0.0.1"
    port: int = 7860
    auth: tuple[str, str] | None = None  # (user, password)
    roots: tuple[Path, ...] = field(default_factory=tuple)  # folders the UI may index
    max_upload_mb: int = 500
    device: str = "auto"
    precision: str = "auto"
    watch: WatchSettings | None = None  # serve --watch: keep indexing new footage under these folders
    max_previews_mb: int = 2048  # DATA/previews/ and DATA/exports/ are trimmed to these, least recently used first
    max_exports_mb: int = 4096
    runtime: str = "auto"  # auto | torch | openvino: what the encoders run on


def parse_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ValueError("auth must look like USER:PASSWORD")
    return user, password


def media_paths(settings: ServeSettings) -> list[str]:
    """What Gradio's file route may serve: only what Tubelet made. Library roots are not in it: originals
    are served by id (app/serving.py), so other files in a root are never served. No block list is
    needed (nothing else is allowed), and Gradio's refusals would list it, naming the data dir."""
    root = settings.data.root
    return [str(root / "thumbs"), str(root / "previews")]


@dataclass
class LoginLimiter:
    """Failed logins per client address: after `max_failures` within `window_s`, every login from that
    address (a correct one too) is refused for `lockout_s`."""

    max_failures: int = 5
    window_s: float = 60.0
    lockout_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    failures: dict[str, list[float]] = field(default_factory=dict)
    locked_until: dict[str, float] = field(default_factory=dict)

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may try again (0: now)."""
        return max(0.0, self.locked_until.get(client, 0.0) - self.clock())

    def record(self, client: str, succeeded: bool) -> None:
        now = self.clock()
        self._forget_before(now - max(self.window_s, self.lockout_s))
        if succeeded:
            self.failures.pop(client, None)
            return
        recent = [t for t in self.failures.get(client, []) if t > now - self.window_s] + [now]
        self.failures[client] = recent
        if len(recent) >= self.max_failures:
            self.locked_until[client] = now + self.lockout_s
            self.failures.pop(client)

    def _forget_before(self, moment: float) -> None:
        """Drop stale entries, so addresses that stopped trying cost no memory."""
        for client in [c for c, times in self.failures.items() if times[-1] <= moment]:
            del self.failures[client]
        for client in [c for c, until in self.locked_until.items() if until <= moment]:
            del self.locked_until[client]


class LoginThrottle:
    """ASGI middleware on Gradio's POST /login: refuses a locked-out address with 429 before Gradio checks
    the password, and tells the limiter how each attempt ended (Gradio answers 200 or 400)."""

    def __init__(self, app, limiter: LoginLimiter):
        self.app, self.limiter = app, limiter

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"].rstrip("/") != "/login":
            return await self.app(scope, receive, send)
        client = (scope.get("client") or ("unknown",))[0]
        wait = self.limiter.retry_after(client)
        if wait > 0:
            from starlette.responses import JSONResponse

            refusal = JSONResponse(
                {"detail": f"Too many failed logins: try again in {math.ceil(wait)} s."},
                status_code=429,
                headers={"Retry-After": str(math.ceil(wait))},
            )
            return await refusal(scope, receive, send)
        status = {}

        async def watch(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        if status.get("code") in (200, 400):  # 400: "Incorrect credentials."; anything else is no attempt
            self.limiter.record(client, succeeded=status["code"] == 200)


def password_check(user: str, password: str) -> Callable[[str, str], bool]:
    """Gradio's auth callable: both parts compared in constant time, so timing tells nothing."""

    def check(given_user: str, given_password: str) -> bool:
        user_ok = hmac.compare_digest(given_user.encode(), user.encode())
        password_ok = hmac.compare_digest(given_password.encode(), password.encode())
        return user_ok and password_ok

    return check


@dataclass(frozen=True)
class UploadFolder:
    """DATA/uploads/: Gradio's upload folder, kept small. Files older than `max_age_s` go, then the oldest
    until the folder holds at most `max_bytes`; a query's upload is removed once it is answered."""

    folder: Path
    max_bytes: int
    max_age_s: float = 15 * 60

    def sweep(self, now: float | None = None) -> int:
        """Remove what is over the limits; returns the number of files removed."""
        now = time.time() if now is None else now
        files = []
        for path in self.folder.rglob("*"):
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue  # removed meanwhile
            if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                files.append((st.st_mtime, st.st_size, path))
        files.sort()
        total, removed = sum(size for _, size, _ in files), 0
        for mtime, size, path in files:
            if mtime >= now - self.max_age_s and total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total, removed = total - size, removed + 1
        self._remove_empty_folders()
        return removed

    def remove(self, upload: str | Path | None) -> None:
        """Remove an answered query's upload (only if it is in this folder)."""
        if not upload:
            return
        path = Path(os.path.realpath(upload))
        if Path(os.path.realpath(self.folder)) in path.parents:
            path.unlink(missing_ok=True)
            self._remove_empty_folders()

    def _remove_empty_folders(self) -> None:
        for folder in sorted(
            (p for p in self.folder.rglob("*") if p.is_dir() and not p.is_symlink()),
            key=lambda p: len(p.parts),
            reverse=True,
        ):
            try:
                folder.rmdir()
            except OSError:
                continue  # not empty, or in use by an upload being written


class UploadSweep:
    """ASGI middleware: after each upload request, sweep the upload folder (so uploads that are never
    queried cannot fill the disk)."""

    def __init__(self, app, uploads: UploadFolder):
        self.app, self.uploads = app, uploads

    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].startswith("/gradio_api/upload"):
            await asyncio.to_thread(self.uploads.sweep)  # file system work: off the event loop


def upload_alias(uploads: Path) -> Path:
    """A neutral name for DATA/uploads/, for Gradio: Gradio tells clients the path of each upload, and that
    path must not reveal where the data dir is. A private temp folder holds one link to DATA/uploads/."""
    uploads.mkdir(parents=True, exist_ok=True)
    alias = Path(tempfile.mkdtemp(prefix="tubelet-")) / "uploads"
    alias.symlink_to(uploads.resolve(), target_is_directory=True)
    return alias


def warm_up_lifespan(service):
    """A server lifespan that loads the index and encoders in a background thread as the server starts (it listens
    at once), so the first search does not wait seconds for the models to load; a search sent meanwhile waits
    for the same one load. No index yet is no error; weights that cannot load are logged here and said again by
    the first search."""

    def load() -> None:
        from app.errors import USER_ERRORS
        from app.query import QueryError

        try:
            service.warm_up()
        except QueryError as exc:
            log.info("nothing to load before the first search: %s", exc)  # no index yet
        except USER_ERRORS as exc:
            log.warning("the encoders did not load (the first search will say so again): %s", exc)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        threading.Thread(target=load, name="tubelet-warm-up", daemon=True).start()
        yield

    return lifespan


def build_app(settings: ServeSettings):
    """The Blocks app and its launch arguments (separate so tests can launch it themselves)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    settings.data.root.mkdir(parents=True, exist_ok=True)
    uploads = UploadFolder(
        settings.data.root / "uploads", max_bytes=UPLOAD_FOLDER_UPLOADS * settings.max_upload_mb << 20
    )
    os.environ["GRADIO_TEMP_DIR"] = str(upload_alias(uploads.folder))
    from starlette.middleware import Middleware

    from app.export import Downloads
    from app.jobs import IndexJobs
    from app.made_files import MadeFiles
    from app.search import SearchService
    from app.serving import media_routes
    from app.ui import CSS, build_ui, open_catalog, status_translations
    from indexer.towers import index_settings_from_catalog

    service = SearchService(settings.data, settings.device, settings.precision, runtime=settings.runtime)
    open_catalog(service, settings.data)  # a damaged catalog is refused now, not at the first search
    jobs = IndexJobs(
        lambda: index_settings_from_catalog(settings.data, settings.device, settings.precision, settings.runtime),
        list(settings.roots),
    )
    previews = MadeFiles(settings.data.root / "previews", settings.max_previews_mb << 20)
    exports = MadeFiles(settings.data.root / "exports", settings.max_exports_mb << 20)
    for made in (previews, exports):
        made.trim()  # what earlier runs left beyond the caps
    demo = build_ui(service, jobs, settings.data, uploads, previews=previews)
    demo.queue(default_concurrency_limit=2)
    app_kwargs = {
        "routes": media_routes(
            settings.data, lambda: open_catalog(service, settings.data), exports=Downloads(settings.data, exports)
        ),
        "openapi_url": None,  # Gradio serves its own, behind the login
        "middleware": [Middleware(LoginThrottle, limiter=LoginLimiter()), Middleware(UploadSweep, uploads=uploads)],
        "lifespan": warm_up_lifespan(service),
    }
    auth = password_check(*settings.auth) if settings.auth else None
    launch = dict(
        server_name=settings.host,
        server_port=settings.port,
        auth=auth,
        share=False,
        allowed_paths=media_paths(settings),
        max_file_size=f"{settings.max_upload_mb}mb",
        ssr_mode=False,
        show_error=True,
        css=CSS,
        i18n=status_translations(),
        footer_links=["api"],
        app_kwargs=app_kwargs,
    )
    return demo, launch, jobs


def serve(settings: ServeSettings) -> None:
    if settings.host not in ("127.0.0.1", "localhost", "::1") and settings.auth is None:
        log.warning(
            "serving on %s without --auth: anyone who can reach this port can search and watch your library",
            settings.host,
        )
    demo, launch, _ = build_app(settings)
    alias = Path(os.environ["GRADIO_TEMP_DIR"])
    watch = None
    signal.signal(signal.SIGTERM, _exit_cleanly)  # so the alias is removed on `kill` too
    try:
        # quiet: Gradio's own banner suggests `share=True` (a public tunnel), which Tubelet never opens.
        demo.launch(**launch, quiet=True, prevent_thread_lock=True)
        print(f"Tubelet is serving on {demo.local_url} (Ctrl+C to stop)", flush=True)
        watch = start_watch(settings)
        demo.block_thread()
    finally:
        if watch is not None:
            watch.stop(timeout=5.0)  # finish the video being indexed if it is quick, else abandon it
        if alias.is_symlink():
            shutil.rmtree(alias.parent, ignore_errors=True)  # the private folder and its link; uploads stay


def start_watch(settings: ServeSettings):
    """The background watch of `serve --watch`, indexing with the data dir's own encoders; None without it."""
    if settings.watch is None:
        return None
    from app.watching import BackgroundWatch
    from indexer.towers import index_settings_from_catalog

    roots = ", ".join(map(str, settings.watch.roots))
    print(
        f"watching {roots}: new and changed videos are indexed once unchanged for {settings.watch.settle:g} s",
        flush=True,
    )
    return BackgroundWatch(
        settings.watch,
        lambda: index_settings_from_catalog(settings.data, settings.device, settings.precision, settings.runtime),
    ).start()


def _exit_cleanly(signum, frame):
    raise SystemExit(128 + signum)
