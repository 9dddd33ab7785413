"""Index runs over a few paths instead of whole roots (what a watch does), and the cheap look at the
roots that finds what changed while nobody watched (a watch's start, and its periodic safety net).

Both reuse the normal index pipeline and plan: a path given here is a root of one file or one gone
path, so a deletion is a deletion and a move (old path gone, new path with the same content, in one
run) is a path update, exactly as `run.py index` would do it over the whole roots.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from indexer.catalog import Catalog
from indexer.pipeline import run_index
from indexer.plan import under_roots
from indexer.records import IndexReport
from indexer.scan import scan_roots
from indexer.settings import DataDir, IndexSettings
from indexer.towers import EncoderCache

GONE = "no such file or directory"  # what the scan reports for a root that does not exist


def index_paths(
    settings: IndexSettings,
    paths: list[Path],
    should_stop: Callable[[], bool] = lambda: False,
    encoders: EncoderCache | None = None,
) -> IndexReport:
    """One index run over these files and folders, present or gone (with the loaded `encoders` of earlier
    runs, when given). Raises LockHeld while another run holds the data dir's lock."""
    report = run_index(settings, paths, should_stop=should_stop, encoders=encoders)
    gone = {str(Path(os.path.abspath(p))) for p in paths if not os.path.lexists(p)}
    report.failures = [f for f in report.failures if not (f.path in gone and f.error == GONE)]  # deleted, not failed
    report.files.failed = len(report.failures)
    return report


def changed_paths(data: DataDir, roots: list[Path]) -> list[Path]:
    """Paths under `roots` whose state differs from the catalog's: new files, files with another size or
    mtime, files left half-indexed ("pending"), and known paths that are gone. Reads no file's content."""
    roots = [Path(os.path.abspath(r)) for r in roots]
    scan = scan_roots(roots, exclude=[data.root], exclude_files=list(data.catalog_files))
    known = _known_paths(data)
    changed = []
    for f in scan.files:
        k = known.get(str(f.path))
        if k is None or (k.size, k.mtime_ns) != (f.size, f.mtime_ns) or k.status == "pending":
            changed.append(f.path)
    present = {str(f.path) for f in scan.files}
    inside = under_roots(roots)
    changed += [Path(p) for p in known if p not in present and inside(p)]
    return sorted(changed)


def _known_paths(data: DataDir) -> dict:
    if data.catalog_url is None and not (data.root / "catalog.db").is_file():
        return {}  # nothing indexed yet: every file is new
    catalog = Catalog(data.catalog).open()
    try:
        return catalog.known_paths()
    finally:
        catalog.close()
