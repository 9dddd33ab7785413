"""What a data dir holds: counts, failures, encoder identity, index file state."""

from __future__ import annotations

from indexer import store
from indexer.catalog import Catalog, VectorSetInfo
from indexer.records import IMAGE_SET, VIDEO_SET
from indexer.settings import DataDir


def library_status(data: DataDir) -> dict:
    if data.catalog_url is None and not (data.root / "catalog.db").exists():
        return {"data": str(data.root), "indexed": False, "videos": {}, "clips": 0, "failures": []}
    catalog = Catalog(data.catalog).open()
    try:
        stats = catalog.stats()
        vset = catalog.vector_set(VIDEO_SET)
        index_file = store.index_path(data.index_dir, vset) if vset else None
        towers = {
            name: _tower_status(catalog, vset, data)
            for name in (VIDEO_SET, IMAGE_SET)
            if (vset := catalog.vector_set(name)) is not None
        }
        return {
            "data": str(data.root),
            "indexed": vset is not None,
            "videos": stats["videos"],
            "paths": stats["paths"],
            "clips": stats["clips"],
            "hours": round(stats["duration"] / 3600, 3),
            "failures": [vars(f) for f in stats["failures"]],
            "encoder": vset.identity if vset else None,
            "vectors": catalog.vector_count(vset.id) if vset else 0,
            "index_file": {
                "file": str(index_file),
                "current": towers[VIDEO_SET]["index_current"],
                "problem": towers[VIDEO_SET]["index_problem"],
            }
            if index_file
            else None,
            "towers": towers,
        }
    finally:
        catalog.close()


def _tower_status(catalog: Catalog, vset: VectorSetInfo, data: DataDir) -> dict:
    """One tower (vector set): what made its vectors, how many, and its index file's state."""
    file = store.index_file_state(data.index_dir, vset)
    problem = None if file.current else file.state + (f": {file.detail}" if file.detail else "")
    return {
        "identity": vset.identity,
        "vectors": catalog.vector_count(vset.id),
        "index_file": str(file.path),
        "index_state": file.state,  # current | stale | missing | damaged
        "index_detail": file.detail,
        "index_verified": file.verified,
        "index_current": file.current,
        "index_problem": problem,
    }
