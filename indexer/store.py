"""FAISS indexes, derived from the catalog's vectors and rebuildable from it at any time.

File name = vector set key + catalog version (`video-<key>-v<version>.faiss`), so a reader can
tell from the catalog alone whether a file is current. Files are written to a temporary name,
fsynced and renamed: a crash leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from indexer.catalog import Catalog, VectorSetInfo

def choose_index_spec(count: int, dim: int, memory_budget: int) -> str:
    """FAISS factory string for `count` vectors of `dim` floats within `memory_budget` bytes.

    Exact inner-product search for now: perfect recall, and fast enough for libraries of up to
    about 100k clips (bench/RESULTS.md).
    """
    del count, dim, memory_budget
    return "Flat"


def build_index(ids: np.ndarray, vectors: np.ndarray, spec: str) -> faiss.Index:
    """Inner-product index over unit vectors (= cosine), ids = catalog clip ids."""
    dim = vectors.shape[1]
    base = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
    index = faiss.IndexIDMap2(base)
    if not base.is_trained:
        base.train(vectors)
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
    return index


def index_path(index_dir: Path, vset: VectorSetInfo) -> Path:
    return index_dir / f"{vset.name}-{vset.key}-v{vset.version}.faiss"


def save_index(index: faiss.Index, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    faiss.write_index(index, str(tmp))
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_stale(index_dir: Path, vset: VectorSetInfo) -> None:
    """Delete older versions of this set's index (readers holding them open keep their copy)."""
    current = index_path(index_dir, vset).name
    for old in index_dir.glob(f"{vset.name}-*.faiss"):
        if old.name != current:
            old.unlink(missing_ok=True)


@dataclass
class LoadedIndex:
    index: faiss.Index
    vset: VectorSetInfo
    from_file: bool  # False when it had to be rebuilt from the catalog


def build_from_catalog(catalog: Catalog, vset: VectorSetInfo, memory_budget: int) -> faiss.Index:
    ids, vectors = catalog.load_vectors(vset.id, vset.dim)
    return build_index(ids, vectors, choose_index_spec(len(ids), vset.dim, memory_budget))


def open_index(catalog: Catalog, vset: VectorSetInfo, index_dir: Path, memory_budget: int) -> LoadedIndex:
    """The current index file if it exists and agrees with the catalog, else a rebuild."""
    path = index_path(index_dir, vset)
    if path.is_file():
        index = faiss.read_index(str(path))
        if index.ntotal == catalog.vector_count(vset.id) and index.d == vset.dim:
            return LoadedIndex(index, vset, from_file=True)
    return LoadedIndex(build_from_catalog(catalog, vset, memory_budget), vset, from_file=False)

