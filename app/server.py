"""`run.py serve`: the web UI and API on a local port, locked down by default.

- binds 127.0.0.1 unless told otherwise; optional username/password (also from TUBELET_AUTH);
- serves media only from the data dir's thumbnails and previews and the library roots, never the
  catalog, weights or index files (Gradio's allowed/blocked paths);
- uploads land in the data dir and are size-limited; no share links, no analytics.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from indexer.settings import DataDir


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


def parse_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ValueError("auth must look like USER:PASSWORD")
    return user, password


def library_roots(data: DataDir) -> list[Path]:
    """Roots already indexed into this data dir (their files may be played)."""
    if data.catalog_url is None and not (data.root / "catalog.db").is_file():
        return []
    from sqlalchemy import select

    from indexer.catalog import Catalog
    from indexer.schema import VideoPath

    catalog = Catalog(data.catalog).open()
    try:
        with catalog.session() as s:
            return sorted({Path(r) for r in s.scalars(select(VideoPath.root).distinct())})
    finally:
        catalog.close()


def media_paths(settings: ServeSettings) -> tuple[list[str], list[str]]:
    """(allowed, blocked) paths for Gradio's file server."""
    root = settings.data.root
    allowed = [root / "thumbs", root / "previews", *library_roots(settings.data), *settings.roots]
    blocked = [root / name for name in ("catalog.db", "catalog.db-wal", "catalog.db-shm", "weights",
                                        "index", "index.lock")]
    return [str(p) for p in allowed], [str(p) for p in blocked]


def build_app(settings: ServeSettings):
    """The Blocks app and its launch arguments (separate so tests can launch it themselves)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ["GRADIO_TEMP_DIR"] = str(settings.data.root / "uploads")
    from app.jobs import IndexJobs
    from app.search import SearchService
    from app.ui import CSS, build_ui
    from indexer.towers import index_settings_from_catalog

    settings.data.root.mkdir(parents=True, exist_ok=True)
    service = SearchService(settings.data, settings.device, settings.precision)
    jobs = IndexJobs(lambda: index_settings_from_catalog(settings.data, settings.device, settings.precision),
                     list(settings.roots))
    demo = build_ui(service, jobs, settings.data)
    demo.queue(default_concurrency_limit=2)
    allowed, blocked = media_paths(settings)
    launch = dict(server_name=settings.host, server_port=settings.port, auth=settings.auth, share=False,
                  allowed_paths=allowed, blocked_paths=blocked, max_file_size=f"{settings.max_upload_mb}mb",
                  ssr_mode=False, show_error=True, css=CSS, footer_links=["api"])
    return demo, launch, jobs


def serve(settings: ServeSettings) -> None:
    if settings.host not in ("127.0.0.1", "localhost", "::1") and settings.auth is None:
        print(f"warning: serving on {settings.host} without --auth: anyone who can reach this port can "
              "search and watch your library", file=sys.stderr)
    demo, launch, _ = build_app(settings)
    demo.launch(**launch)
