"""The sha256 of a file's bytes: how weights and index files are checked (a leaf module)."""

from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK = 1 << 20  # read in 1 MiB blocks: a multi-GB index file is hashed in bounded memory


def sha256_file(path: Path) -> str:
    """The real checksum of a file's bytes (no cache)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
