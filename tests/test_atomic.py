"""indexer/atomic.py: the one way Tubelet replaces a file."""

import os

import pytest

from indexer import atomic
from indexer.atomic import TEMP_NAME, atomic_write, temp_path, write_bytes_atomic


def test_new_content_replaces_the_file(tmp_path):
    path = tmp_path / "sub" / "index.faiss"
    write_bytes_atomic(path, b"old")
    write_bytes_atomic(path, b"new")
    assert path.read_bytes() == b"new"
    assert os.listdir(path.parent) == ["index.faiss"]


def test_an_error_keeps_the_old_content_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "stats.npz"
    path.write_bytes(b"old")
    with pytest.raises(ZeroDivisionError), atomic_write(path, suffix=".npz") as tmp:
        tmp.write_bytes(b"half of the new")
        raise ZeroDivisionError  # the writer fails half-way
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["stats.npz"]


def test_a_failed_fsync_keeps_the_old_content(tmp_path, monkeypatch):
    path = tmp_path / "checksums.json"
    path.write_bytes(b"old")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        write_bytes_atomic(path, b"new")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["checksums.json"]


def test_the_file_and_then_its_directory_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def record(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", record)
    path = tmp_path / "thumb.jpg"
    write_bytes_atomic(path, b"jpeg")
    assert synced == [str(temp_path(path)), str(tmp_path)]


def test_temp_names_are_what_stale_file_cleanup_recognises(tmp_path):
    for suffix in ("", ".npz", ".mp4"):
        name = temp_path(tmp_path / "video-x.faiss", suffix).name
        assert name == f".video-x.faiss.{os.getpid()}.tmp{suffix}"
        assert int(TEMP_NAME.match(name).group(1)) == os.getpid()
        assert list(tmp_path.glob(atomic.TEMP_GLOB)) == [] and (tmp_path / name).touch() is None
        assert [p.name for p in tmp_path.glob(atomic.TEMP_GLOB)] == [name]
        (tmp_path / name).unlink()
    assert TEMP_NAME.match("video-x.faiss") is None and TEMP_NAME.match(".notes.txt") is None
