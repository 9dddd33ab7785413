"""What a data dir holds: counts, failures, encoder identity, index file state."""

from __future__ import annotations

from indexer import store
from indexer.catalog import Catalog
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
        towers = {}
        for name in (VIDEO_SET, IMAGE_SET):
            if (s := catalog.vector_set(name)) is not None:
                path = store.index_path(data.index_dir, s)
                problem = store.index_file_problem(data.index_dir, s)
                towers[name] = {
                    "identity": s.identity,
                    "vectors": catalog.vector_count(s.id),
                    "index_file": str(path),
                    "index_current": problem is None,
                    "index_problem": problem,
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
