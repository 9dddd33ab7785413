"""Integrity (issue 11): no silent wrong answers from damaged or replaced files, no tracebacks.

A small library is indexed once in-process with the tiny random-weight encoders; each test works
on its own copy of the data dir and damages or replaces one thing in it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import ENCODER, ROOT, cli_in_process, in_mount_namespace, needs_unshare

from app.demo import synthesize_video
from app.query import Query
from app.search import SearchService
from indexer import store
from indexer.catalog import Catalog
from indexer.records import IMAGE_SET, VIDEO_SET
from indexer.settings import DataDir

OTHER_WEIGHTS = [
    "--encoder",
    "vit-tiny",
    "--weights",
    "random:7",
    "--image-text-model",
    "tubelet-tiny-clip",
    "--image-text-weights",
    "random:7",
]


def index(data: Path, *paths, encoder=ENCODER, extra=(), expect: int = 0) -> dict:
    done = cli_in_process("index", "--data", data, *paths, *encoder, *extra, "--json", expect=expect)
    return json.loads(done.stdout)


QUERY_VIDEO: list[Path] = []  # set by `built`: a library video, the clip query of `answers`


def answers(service: SearchService) -> list[list[tuple]]:
    """What a service answers to a text and a video query: (clip id, path, score) per moment.
    Like the web UI, each query first lets the service catch up (`ensure_ready`)."""
    service.ensure_ready()
    queries = (Query(text="a red square"), Query(video=QUERY_VIDEO[0]))
    return [[(m.clip_id, m.path, round(m.score, 4)) for m in service.search(q).moments] for q in queries]


def fresh_answers(data: Path) -> list[list[tuple]]:
    service = SearchService(DataDir(data)).load()
    try:
        return answers(service)
    finally:
        service.catalog.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(library folder, a folder of one more video, indexed data dir): copy the data dir before changing it."""
    lib, more = tmp_path_factory.mktemp("lib"), tmp_path_factory.mktemp("more")
    for seed in range(2):
        synthesize_video(lib / f"v{seed}.mp4", seed=60 + seed, seconds=4.0, width=160, height=120)
    synthesize_video(more / "extra.mp4", seed=70, seconds=4.0, width=160, height=120)
    data = tmp_path_factory.mktemp("data") / "data"
    index(data, lib)
    QUERY_VIDEO[:] = [lib / "v0.mp4"]
    return lib, more, data


@pytest.fixture
def copy(built, tmp_path):
    lib, more, data = built
    target = tmp_path / "data"
    shutil.copytree(data, target)
    return lib, more, target


def video_index_file(data: Path) -> Path:
    catalog = Catalog(DataDir(data).catalog).open()
    try:
        return store.index_path(DataDir(data).index_dir, catalog.vector_set(VIDEO_SET))
    finally:
        catalog.close()


# -- finding 12: `index --rebuild` while a service runs -------------------------------------------


def test_a_running_service_follows_a_rebuild_with_other_weights(copy):
    lib, more, data = copy
    service = SearchService(DataDir(data)).load()
    before = answers(service)
    assert all(before)
    old = {name: service.indexes[name].vset for name in (VIDEO_SET, IMAGE_SET)}

    index(data, lib, encoder=OTHER_WEIGHTS, extra=["--rebuild"])  # another process would do the same
    after = answers(service)
    assert after == fresh_answers(data) and all(after) and after != before
    new = {name: service.indexes[name].vset for name in (VIDEO_SET, IMAGE_SET)}
    assert all(new[n].generation != old[n].generation for n in new)
    assert service.towers.video.weights.source == "random:7"  # the encoders were reloaded too

    index(data, more, encoder=OTHER_WEIGHTS)  # one more video: still one encoder's vectors only
    assert answers(service) == fresh_answers(data)
    assert {Path(p).name for p in service.catalog.video_rows()[-1].paths} == {"extra.mp4"}
    service.catalog.close()


def test_a_rebuild_with_the_same_weights_never_repeats_a_version(copy):
    lib, _more, data = copy
    service = SearchService(DataDir(data)).load()
    before = answers(service)
    first = service.indexes[VIDEO_SET].vset
    index(data, lib, extra=["--rebuild"])
    second = Catalog(DataDir(data).catalog).open().vector_set(VIDEO_SET)
    assert second.version == first.version and second.generation != first.generation  # counter restarted
    assert store.index_path(DataDir(data).index_dir, second) != store.index_path(DataDir(data).index_dir, first)
    after = answers(service)
    assert after == fresh_answers(data) and all(after)
    assert [len(a) for a in after] == [len(b) for b in before]  # same library, new clip ids
    service.catalog.close()


def test_a_schema_3_catalog_is_migrated_on_open(copy):
    _, _, data = copy
    db = data / "catalog.db"
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE vector_sets DROP COLUMN generation")
        conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
        conn.execute("DROP TABLE alembic_version")  # schema 3 predates Alembic
    catalog = Catalog(DataDir(data).catalog).open()
    generations = [catalog.vector_set(name).generation for name in (VIDEO_SET, IMAGE_SET)]
    assert catalog.get_meta("schema_version") == "5" and all(len(g) == 12 for g in generations)
    catalog.close()
    assert cli_in_process("search", "--data", data, "--text", "x", "--json").returncode == 0


# -- findings 14, 16, 17: damaged index files ----------------------------------------------------


def flip_bytes(path: Path) -> None:
    """Overwrite 64 bytes in the middle (vector data), keeping size and mtime."""
    stat = path.stat()
    with open(path, "r+b") as handle:
        handle.seek(stat.st_size // 2)
        handle.write(b"\x7f" * 64)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def truncate(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2)


def garbage_stats(path: Path) -> None:
    store.stats_path(path).write_bytes(np.random.default_rng(3).bytes(2000))


@pytest.mark.parametrize("damage", [flip_bytes, truncate, garbage_stats], ids=["bit-flips", "truncated", "bad-stats"])
def test_a_damaged_index_file_is_reported_and_rebuilt_from_the_catalog(copy, damage):
    lib, _, data = copy
    expected = fresh_answers(data)
    path = video_index_file(data)
    damage(path)

    status = json.loads(cli_in_process("status", "--data", data, "--json").stdout)
    assert status["index_file"]["current"] is False and status["index_file"]["problem"].startswith("damaged: ")
    plain = cli_in_process("status", "--data", data).stdout
    video_tower = plain.split("video tower: ", 1)[1].splitlines()[1]  # the line after the tower's identity
    assert "file damaged: " in video_tower and "file current" not in video_tower
    check = json.loads(cli_in_process("status", "--data", data, "--check", "--json", expect=3).stdout)
    assert any(f"video index file {path.name} is damaged" in p for p in check["problems"]), check

    searched = cli_in_process("search", "--data", data, "--text", "a red square", "--json")
    hits = json.loads(searched.stdout)
    assert [(h["clip_id"], round(h["score"], 4)) for h in hits] == [(c, s) for c, _, s in expected[0]]
    assert all(abs(h["score"]) < 100 for h in hits)  # never the 3.5e28 of a bit-flipped vector

    index(data, lib)  # nothing new to embed: the run still replaces the damaged file
    assert json.loads(cli_in_process("status", "--data", data, "--check", "--json").stdout)["ok"]
    assert fresh_answers(data) == expected


def test_repair_rewrites_a_damaged_index_file(copy):
    _, _, data = copy
    flip_bytes(video_index_file(data))
    fixed = json.loads(cli_in_process("status", "--data", data, "--repair", "--json").stdout)
    assert fixed["ok"] and any("rebuilt the video index" in r for r in fixed["repaired"])


# -- finding 15: a damaged catalog -----------------------------------------------------------------


def zero_catalog(db: Path) -> None:
    db.write_bytes(b"\0" * db.stat().st_size)


def truncate_catalog(db: Path) -> None:
    with open(db, "r+b") as handle:
        handle.truncate(db.stat().st_size // 3)


@pytest.mark.parametrize("damage", [zero_catalog, truncate_catalog], ids=["zeroed", "truncated"])
def test_a_damaged_catalog_is_one_clear_error_for_every_command(copy, damage):
    lib, _, data = copy
    db = data / "catalog.db"
    damage(db)
    damaged = db.read_bytes()
    commands = [
        ("index", "--data", data, lib, *ENCODER),
        ("search", "--data", data, "--text", "x"),
        ("status", "--data", data),
        ("status", "--data", data, "--check"),
        ("status", "--data", data, "--repair"),
        ("serve", "--data", data, "--port", "1"),
    ]
    for args in commands:
        done = cli_in_process(*args, expect=2)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: catalog {db} is damaged: "), (args, done.stderr)
        assert "restore it from a backup or move it away and re-index" in lines[0]
    assert db.read_bytes() == damaged  # nothing wrote over it


# -- finding 13: weights corrupted in place --------------------------------------------------------


def test_weights_corrupted_in_place_are_refused_by_loading_and_by_check(copy):
    _, _, data = copy
    weights = data / "weights" / "random-openclip-tubelet-tiny-clip-seed0.safetensors"
    catalog = Catalog(DataDir(data).catalog).open()
    recorded = catalog.vector_set(IMAGE_SET).identity["sha256"]
    catalog.close()
    flip_bytes(weights)  # same size, same mtime
    # Fool the resolve-time cache completely (as a coarse-timestamp file system could): the new
    # file's every stat field with the old checksum. Loading must still hash the bytes.
    cache_file = data / "weights" / "checksums.json"
    cache = json.loads(cache_file.read_text())
    stat = weights.stat()
    cache[str(weights)] = {
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "inode": stat.st_ino,
        "ctime_ns": stat.st_ctime_ns,
        "sha256": recorded,
    }
    cache_file.write_text(json.dumps(cache))

    searched = cli_in_process("search", "--data", data, "--text", "x", expect=2)
    assert f"weights file '{weights}' is damaged or was replaced" in searched.stderr
    assert "--rebuild" in searched.stderr and "Traceback" not in searched.stderr
    check = json.loads(cli_in_process("status", "--data", data, "--check", "--json", expect=3).stdout)
    assert any(f"weights file '{weights}' is damaged or was replaced" in p for p in check["problems"]), check

    weights.unlink()  # the repair path the message gives for generated weights
    assert cli_in_process("search", "--data", data, "--text", "x", "--json").returncode == 0


# -- finding 18: `status --repair` on a full disk --------------------------------------------------


@needs_unshare
@pytest.mark.slow
def test_repair_on_a_full_disk_is_a_clear_error_and_loses_nothing(copy):
    _, _, data = copy
    video_index_file(data).unlink()  # something for the repair to write
    pages = sum(-(-f.stat().st_size // 4096) for f in data.rglob("*") if f.is_file())  # tmpfs counts pages
    full = "/tmp/tubelet-repair-full"
    done = in_mount_namespace(f"""
        mkdir -p {full} && mount -t tmpfs -o size={pages * 4 + 256}k tmpfs {full}
        cp -r {data}/. {full}/
        dd if=/dev/zero of={full}/filler bs=4k 2>/dev/null || true
        set +e
        "$PY" run.py status --data {full} --repair; echo "repair-exit=$?"
        "$PY" run.py status --data {full} --json > {data.parent}/status.json
        "$PY" run.py search --data {full} --text anything --json > {data.parent}/hits.json; echo "search-exit=$?"
    """)
    assert "repair-exit=2" in done.stdout and "search-exit=0" in done.stdout, done.stderr
    assert f"error: cannot repair {full}: " in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "Nothing indexed was lost" in done.stderr or "Nothing was changed" in done.stderr
    assert json.loads((data.parent / "status.json").read_text())["clips"] == 4
    assert {Path(h["path"]).name for h in json.loads((data.parent / "hits.json").read_text())} == {"v0.mp4", "v1.mp4"}


# -- finding 20 (weights half): a kill during random-weights generation -----------------------------


def test_a_killed_weights_writer_leaves_no_temp_file_behind(tmp_path):
    from encoder.videomae2_weights import resolve_videomae2_weights

    weights_dir = tmp_path / "weights"
    writer = (
        "import sys, time, safetensors.torch\n"
        "from pathlib import Path\n"
        "from encoder.videomae2_weights import random_weights_file\n"
        "def stuck(tensors, name):\n"
        "    Path(name).write_bytes(b'half a checkpoint')\n"
        "    time.sleep(600)\n"
        "safetensors.torch.save_file = stuck\n"
        "random_weights_file('vit-tiny', 3, Path(sys.argv[1]))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", writer, str(weights_dir)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    deadline = time.monotonic() + 120
    while not list(weights_dir.glob(".*.tmp")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = list(weights_dir.glob(".*.tmp"))
    assert [p.name for p in left] == [f".random-videomae2-vit-tiny-seed3.safetensors.{proc.pid}.tmp"]
    sleeper = subprocess.Popen(["sleep", "60"])  # a live writer's temp file must survive
    live = weights_dir / f".random-videomae2-vit-tiny-seed4.safetensors.{sleeper.pid}.tmp"
    live.write_bytes(b"being written")
    try:
        resolved = resolve_videomae2_weights("vit-tiny", "random:3", weights_dir)
        assert sorted(p.name for p in weights_dir.glob(".*.tmp")) == [live.name]
        assert resolved.path.is_file() and resolved.source == "random:3"
    finally:
        sleeper.kill()
        sleeper.wait()


# -- finding 3 (catalog half): the catalog's files replaced under a running service ------------------


def test_a_service_notices_its_catalog_file_was_replaced(copy, tmp_path):
    _lib, more, data = copy
    service = SearchService(DataDir(data)).load()
    answers(service)
    other = tmp_path / "other"
    shutil.copytree(data, other)
    index(other, more)  # the backup being restored knows one more video
    db = data / "catalog.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)  # what a restore does with the old companions
    os.replace(other / "catalog.db", db)
    after = answers(service)
    assert after == fresh_answers(data)
    assert any(Path(p).name == "extra.mp4" for row in service.catalog.video_rows() for p in row.paths)
    service.catalog.close()


@pytest.mark.slow
def test_a_service_notices_its_wal_was_deleted_and_loses_no_commit(copy):
    """Another process deletes -wal/-shm (as after lost locks), then indexes a video."""
    _, more, data = copy
    service = SearchService(DataDir(data)).load()
    answers(service)
    db = data / "catalog.db"
    assert Path(f"{db}-shm").exists()  # the service's connection holds the WAL index
    other = (
        "import os, sys, run\n"
        "db = sys.argv[1]\n"
        "os.unlink(db + '-wal'); os.unlink(db + '-shm')\n"
        "sys.exit(run.main(['index', '--data', sys.argv[2], sys.argv[3], *sys.argv[4:]]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", other, str(db), str(data), str(more), *ENCODER],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    after = answers(service)
    paths = {Path(p).name for row in service.catalog.video_rows() for p in row.paths}
    assert paths == {"v0.mp4", "v1.mp4", "extra.mp4"}
    service.catalog.close()
    assert after == fresh_answers(data)
    stats = Catalog(DataDir(data).catalog).open().stats()
    assert stats["clips"] == 6 and stats["videos"] == {"indexed": 3}  # the other process's commit survived


def test_an_index_run_removes_index_temp_files_of_killed_writers(copy):
    lib, _, data = copy
    dead = subprocess.Popen(["true"])  # its pid is a writer that no longer exists
    dead.wait()
    index_dir = data / "index"
    stale = [index_dir / f".video-x.faiss.{dead.pid}.tmp", index_dir / f".video-x.stats.npz.{dead.pid}.tmp.npz"]
    for path in stale:
        path.write_bytes(b"half an index")
    index(data, lib)
    assert not any(path.exists() for path in stale)


def test_a_torn_checksum_cache_or_schema_version_is_no_traceback(copy):
    from encoder.weights import file_sha256, sha256_file

    _, _, data = copy
    weights = next((data / "weights").glob("random-videomae2-*.safetensors"))
    (data / "weights" / "checksums.json").write_text('["not", "a", "cache"]')
    assert file_sha256(weights, data / "weights") == sha256_file(weights)
    with sqlite3.connect(data / "catalog.db") as conn:
        conn.execute("UPDATE meta SET value = 'x' WHERE key = 'schema_version'")
    done = cli_in_process("status", "--data", data, expect=2)
    assert f"catalog {data / 'catalog.db'} is damaged: its schema version is 'x'" in done.stderr
