"""Shared fixtures. Tests are hermetic: generated videos, ../shared/videos when present, no network."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_VIDEOS = ROOT.parent / "shared" / "videos"
CHROMIUM = Path("/usr/bin/chromium")
sys.path.insert(0, str(ROOT))

# Never reach a model hub from tests, whatever the machine.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TUBELET_RUNTIME"] = "torch"  # "auto" = PyTorch here; tests/test_runtime.py asks for OpenVINO itself
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def shared_video(name: str) -> Path:
    path = SHARED_VIDEOS / name
    if not path.exists():
        pytest.skip(f"{path} not present (../shared/videos is optional)")
    return path


@pytest.fixture(scope="session")
def shared_videos() -> Path:
    if not SHARED_VIDEOS.is_dir():
        pytest.skip("../shared/videos not present")
    return SHARED_VIDEOS


@pytest.fixture(scope="session")
def demo_videos(tmp_path_factory) -> list[Path]:
    """Six distinct 8 s, 30 fps, 320x240 H.264 videos (generated once per session)."""
    from app.demo import generate_demo_library

    return generate_demo_library(tmp_path_factory.mktemp("demo-library"))


@pytest.fixture(scope="session")
def browser():
    """One Debian chromium for the session (Playwright's own browser download does not work here)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        yield browser
        browser.close()


def pytest_collection_modifyitems(items):
    """A test that drives the browser fixture is a browser test, however it gets the fixture."""
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the session (tests/pg_server.py), stopped at its end; skipped, with the
    reason, only where it cannot be started (no Debian `postgresql` package)."""
    from pg_server import PgServer, PgUnavailable

    try:
        server = PgServer.start()
    except PgUnavailable as exc:
        pytest.skip(f"PostgreSQL server cannot be started: {exc}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog_url(request, tmp_path) -> str:
    """A new, empty catalog of each backend: a SQLite file, or a fresh database on the session's server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    return request.getfixturevalue("postgres").new_database()
