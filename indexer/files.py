"""Facts about files on disk: the sha256 of their bytes (how weights and index files are checked)
and their (device, inode) identity (how links to the same file are told apart). A leaf module."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

BLOCK = 1 << 20  # read in 1 MiB blocks: a multi-GB index file is hashed in bounded memory


def sha256_file(path: Path) -> str:
    """The real checksum of a file's bytes (no cache)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def inode_key(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file `path` names, following links; None if it cannot be stat'ed."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino
