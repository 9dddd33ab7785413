"""Content fingerprints: a video is known by what it contains, not where it lives.

Small files are hashed whole. Large ones are hashed from their size plus 16 evenly spaced
64 KiB samples (head and tail included): 1 MiB read per file however long the footage, which
matters on network drives. Any re-encode, trim or append changes the size or the sampled bytes;
an in-place edit of unsampled bytes that keeps the size would go unnoticed (see README).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

WHOLE_FILE_LIMIT = 8 << 20  # hash files up to 8 MiB entirely
SAMPLES = 16
SAMPLE_BYTES = 64 << 10


def content_fingerprint(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as handle:
        size = handle.seek(0, 2)
        digest.update(size.to_bytes(8, "little"))
        for offset in sample_offsets(size):
            handle.seek(offset)
            digest.update(handle.read(SAMPLE_BYTES if size > WHOLE_FILE_LIMIT else size))
    return digest.hexdigest()


def sample_offsets(size: int) -> list[int]:
    if size <= WHOLE_FILE_LIMIT:
        return [0]
    last = size - SAMPLE_BYTES
    return [round(i * last / (SAMPLES - 1)) for i in range(SAMPLES)]
