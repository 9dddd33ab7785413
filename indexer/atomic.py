"""Atomic file writes: a reader sees the old file or the new one, never part of one, even after a crash.

Every file Tubelet writes in place goes through `atomic_write`: the content goes to a temporary
name in the same directory (a rename never crosses file systems), is fsynced, renamed over the
target, and the directory is fsynced so that the rename itself survives a power loss.

Temporary names are `.NAME.PID.tmp[SUFFIX]`: hidden, the writer's pid tells stale-file cleanup a
dead writer's leftovers from a live writer's work, and SUFFIX keeps an extension for writers that
choose their format by it (np.savez, PyAV). This module is a leaf: it imports nothing of Tubelet.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_GLOB = ".*.tmp*"  # matches every temporary name below (and, harmlessly, a few others)
TEMP_NAME = re.compile(r"^\..+\.(\d+)\.tmp(\.[A-Za-z0-9]+)?$")  # group 1: the writer's pid


def temp_path(path: Path, suffix: str = "") -> Path:
    """The temporary name this process writes `path`'s new content under."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")


@contextmanager
def atomic_write(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path to write `path`'s new content to; when the block ends it replaces `path`.

    On an exception (in the block, or while fsyncing or renaming) the temporary file is removed and
    `path` keeps its old content. The parent directory is created if needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path, suffix)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_write(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_directory(folder: Path) -> None:
    """Make a rename inside `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
