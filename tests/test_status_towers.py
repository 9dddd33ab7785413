"""Plain `status` and `status --json` show every tower: its vectors and its index file's state.

States: current, stale (only an older version of the file on disk), missing, damaged. Plain status
stays cheap: index files above a size limit get the sidecar checks only (`status --check` hashes them).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from helpers import ENCODER, cli_in_process

from app.demo import synthesize_video
from indexer import store
from indexer.catalog import Catalog


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    root = tmp_path_factory.mktemp("status")
    synthesize_video(root / "lib" / "a.mp4", seed=5, seconds=2.0, width=160, height=120)
    cli_in_process("index", root / "lib", "--data", root / "data", *ENCODER, "--json")
    return root / "data"


@pytest.fixture
def data(indexed, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(indexed, copy)
    return copy


def index_file(data, name: str):
    (path,) = (data / "index").glob(f"{name}-*.faiss")
    return path


def status(data) -> tuple[str, dict]:
    plain = cli_in_process("status", "--data", data).stdout
    return plain, json.loads(cli_in_process("status", "--data", data, "--json").stdout)["towers"]


def tower_lines(plain: str) -> list[str]:
    lines = plain.splitlines()
    return [f"{line.split(':')[0]} | {lines[i + 1].strip()}" for i, line in enumerate(lines) if " tower: " in line]


def test_every_tower_is_shown_with_its_vectors_and_file_state(data):
    plain, towers = status(data)
    assert tower_lines(plain) == [
        "video tower | 1 vectors, index file current",
        "image tower | 1 vectors, index file current",
    ]
    assert {name: (t["vectors"], t["index_state"], t["index_verified"]) for name, t in towers.items()} == {
        "video": (1, "current", True),
        "image": (1, "current", True),
    }
    assert "open_clip tubelet-tiny-clip weights=random:0" in plain and "videomae2 vit-tiny weights=random:0" in plain


def test_a_missing_image_text_index_file_is_shown(data):
    """Base behaviour: plain status named the video index only, "current", and said nothing of this."""
    index_file(data, "image").unlink()
    plain, towers = status(data)
    assert tower_lines(plain) == [
        "video tower | 1 vectors, index file current",
        "image tower | 1 vectors, index file missing",
    ]
    assert "searching rebuilds index files from the catalog" in plain
    assert (towers["video"]["index_state"], towers["image"]["index_state"]) == ("current", "missing")


def test_an_older_index_file_is_stale(data):
    path = index_file(data, "image")
    older = path.with_name(path.name.replace("-v1.", "-v0."))
    store.stats_path(path).rename(store.stats_path(older))
    path.rename(older)
    plain, towers = status(data)
    assert tower_lines(plain)[1] == f"image tower | 1 vectors, index file stale: {older.name} lacks the newest vectors"
    assert towers["image"]["index_state"] == "stale" and not towers["image"]["index_current"]


def test_a_damaged_image_text_index_file_is_shown(data):
    path = index_file(data, "image")
    path.write_bytes(path.read_bytes()[:-8] + bytes(8))
    plain, towers = status(data)
    assert tower_lines(plain)[1].startswith("image tower | 1 vectors, index file damaged: its sha256 is ")
    assert towers["image"]["index_state"] == "damaged" and towers["video"]["index_state"] == "current"


def test_large_index_files_get_the_cheap_checks_only(data):
    catalog = Catalog(f"sqlite:///{data / 'catalog.db'}").open()
    vset = catalog.vector_set("image")
    catalog.close()
    path = index_file(data, "image")
    path.write_bytes(path.read_bytes()[:-8] + bytes(8))  # only hashing sees this
    unhashed = store.index_file_state(data / "index", vset, hash_limit=0)
    assert (unhashed.state, unhashed.verified) == ("current", False) and "status --check" in unhashed.detail
    store.stats_path(path).write_bytes(np.random.default_rng(1).bytes(500))  # the sidecar is always read
    assert store.index_file_state(data / "index", vset, hash_limit=0).state == "damaged"


def test_the_library_summary_is_the_video_towers_with_or_without_the_image_tower(indexed, tmp_path):
    with_both = json.loads(cli_in_process("status", "--data", indexed, "--json").stdout)
    assert with_both["indexed"] is True
    assert with_both["encoder"]["tower"] == with_both["towers"]["video"]["identity"]["tower"]
    assert with_both["encoder"]["dim"] == with_both["towers"]["video"]["identity"]["dim"]

    synthesize_video(tmp_path / "lib" / "b.mp4", seed=6, seconds=2.0, width=160, height=120)
    video_only = tmp_path / "data"
    cli_in_process("index", tmp_path / "lib", "--data", video_only, *ENCODER, "--no-image-text", "--json")
    plain = cli_in_process("status", "--data", video_only).stdout
    summary = json.loads(cli_in_process("status", "--data", video_only, "--json").stdout)
    assert "nothing indexed yet" not in plain and "videos: 1 indexed; clips: 1;" in plain
    assert (summary["indexed"], summary["vectors"], list(summary["towers"])) == (True, 1, ["video"])
    assert summary["encoder"] == summary["towers"]["video"]["identity"]
