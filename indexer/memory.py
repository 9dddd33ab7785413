"""Allocator housekeeping for long indexing runs (glibc; a no-op elsewhere).

Clip frames (megabytes each) are allocated in the decode thread and freed after embedding,
between long-lived small objects. With glibc's defaults (up to 8 arenas per core, and freed
blocks kept inside heaps that cannot shrink past a live object) a one-hour 1080p index run grew
to 4.9 GiB. Two arenas and a trim after every batch keep it flat (bench/RESULTS.md).
"""

from __future__ import annotations

import ctypes
import functools
import os

M_ARENA_MAX = -8  # glibc mallopt parameter number (malloc.h)
ARENA_MAX = 2


@functools.cache
def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def tune_malloc() -> bool:
    """Cap malloc arenas at ARENA_MAX (call at the entry point, before threads start), unless
    the user set MALLOC_ARENA_MAX. Returns whether the cap was applied."""
    libc = _libc()
    if libc is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, ARENA_MAX))


def release_free_memory() -> None:
    """Give freed heap pages back to the system (`malloc_trim`); cheap next to a batch."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
