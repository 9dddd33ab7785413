"""The allocator settings that keep long index runs from growing (indexer/memory.py)."""

import platform

import pytest

from indexer.memory import tune_malloc


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_allocator_settings_apply_on_glibc(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert tune_malloc() is True


def test_a_users_own_setting_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert tune_malloc() is False


def test_release_free_memory_returns_freed_pages():
    import numpy as np

    from indexer.memory import release_free_memory

    def rss_mb():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS"))

    before = rss_mb()
    blocks = [np.ones(100_000, np.uint8) for _ in range(3000)]  # 300 MB of heap-sized blocks
    keep = blocks[::100]
    del blocks
    release_free_memory()
    assert rss_mb() - before < 100, "freed heap pages stayed resident"
    del keep
