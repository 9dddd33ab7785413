"""What a data dir holds: counts, failures, encoder identity, index file state."""

from __future__ import annotations

import importlib.util
import os

from encoder import runtime_cache
from indexer import store
from indexer.catalog import Catalog, VectorSetInfo
from indexer.records import IMAGE_SET, VIDEO_SET
from indexer.set_roles import parse_set_name
from indexer.settings import DataDir


def library_status(data: DataDir) -> dict:
    if data.catalog_url is None and not (data.root / "catalog.db").exists():
        return {"data": str(data.root), "indexed": False, "videos": {}, "clips": 0, "failures": []}
    catalog = Catalog(data.catalog).open()
    try:
        stats = catalog.stats()
        vset = catalog.vector_set(VIDEO_SET)
        index_file = store.index_path(data.index_dir, vset) if vset else None
        towers = {  # (`tower_set`, not `vset`: a walrus in a comprehension binds in this function's scope)
            name: {**_tower_status(catalog, tower_set, data), **_runtime_status(catalog, data, tower_set)}
            for name in (VIDEO_SET, IMAGE_SET)
            if (tower_set := catalog.vector_set(name)) is not None
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
            "vector_sets": _vector_sets(catalog, stats["clips"]),
        }
    finally:
        catalog.close()


def _vector_sets(catalog: Catalog, clips: int) -> list[dict]:
    """Every vector set with its role (indexer/set_roles.py) and how many of the clips it covers: the
    active ones answer searches, a new one is being built for another encoder, old ones wait to be dropped."""
    listed = []
    for vset in catalog.vector_sets():
        name = parse_set_name(vset.name)
        listed.append(
            {
                "name": vset.name,
                "tower": name.tower,
                "role": name.role,
                "identity": vset.identity,
                "vectors": catalog.vector_count(vset.id),
                "clips": clips,
                "complete": catalog.clips_without_vector(vset.id) == 0,
            }
        )
    return listed


def _runtime_status(catalog: Catalog, data: DataDir, vset: VectorSetInfo) -> dict:
    """What ran the tower in the last index run, and the converted encoders a CPU search would use: the
    OpenVINO cache manifests (encoder.runtime_cache) of exactly this tower, read without importing torch."""
    identity = runtime_cache.tower_identity(vset.identity)
    converted = []
    for _, record in runtime_cache.manifests(data.runtime_dir):
        key = record["key"]
        try:
            if key["tower"] == identity:
                converted.append(f"openvino {key['part']} {key['precision']} (cosine {record['cosine']:.6f})")
        except (KeyError, TypeError, ValueError):
            continue  # damaged: the next load rebuilds it
    auto = os.environ.get("TUBELET_RUNTIME", "auto")  # what --runtime auto means here (encoder.runtime)
    openvino = importlib.util.find_spec("openvino") and auto in ("auto", "openvino")
    search = "auto = openvino on CPU, torch on CUDA" if openvino else "auto = torch"
    indexed_with = catalog.last_runtime(vset)
    return {"indexed_with": indexed_with, "search_runtime": search, "converted": converted}


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
