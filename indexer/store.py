"""FAISS indexes, derived from the catalog's vectors and rebuildable from it at any time.

File name = vector set key + catalog version (`video-<key>-v<version>.faiss`), so a reader can
tell from the catalog alone whether a file is current. Files are written to a temporary name,
fsynced and renamed: a crash leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import errno
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
    try:
        faiss.write_index(index, str(tmp))
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
    except (RuntimeError, OSError) as exc:  # faiss reports a full disk as RuntimeError
        tmp.unlink(missing_ok=True)
        raise OSError(errno.ENOSPC if "No space" in str(exc) else errno.EIO, f"cannot write {path}: {exc}") from exc
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_stale(index_dir: Path, vset: VectorSetInfo) -> None:
    """Delete older versions of this set's index (readers holding them open keep their copy)."""
    current = index_path(index_dir, vset)
    keep = {current.name, stats_path(current).name}
    for old in index_dir.glob(f"{vset.name}-*"):
        if old.name not in keep:
            old.unlink(missing_ok=True)


@dataclass(frozen=True)
class ScoreStats:
    """The distribution of inner products between any query and this index's vectors.

    For a query q the scores q.x over all indexed x have mean q.mu and variance q' C q, where
    mu and C are the vectors' mean and covariance: exact over the whole index, at the cost of one
    D x D matrix. Used to put different towers' scores on one scale (z-scores).
    """

    mean: np.ndarray  # (D,) float64
    cov: np.ndarray  # (D, D) float64

    @classmethod
    def of(cls, vectors: np.ndarray) -> "ScoreStats":
        if len(vectors) < 2:
            dim = vectors.shape[1]
            return cls(vectors.mean(axis=0).astype(np.float64) if len(vectors) else np.zeros(dim), np.eye(dim))
        x = vectors.astype(np.float64)
        return cls(x.mean(axis=0), np.cov(x, rowvar=False))

    def zscores(self, query: np.ndarray, scores: np.ndarray) -> np.ndarray:
        q = query.astype(np.float64)
        std = float(np.sqrt(max(q @ self.cov @ q, 1e-12)))
        return (scores - q @ self.mean) / std

    def save(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        try:
            np.savez(tmp, mean=self.mean, cov=self.cov)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> "ScoreStats":
        with np.load(path) as data:
            return cls(data["mean"], data["cov"])


def stats_path(index_file: Path) -> Path:
    return index_file.with_suffix(".stats.npz")


@dataclass
class LoadedIndex:
    index: faiss.Index
    vset: VectorSetInfo
    stats: ScoreStats
    from_file: bool  # False when it had to be rebuilt from the catalog

    def save(self, index_dir: Path) -> None:
        """Statistics first, index last: an index file on disk always has its statistics."""
        path = index_path(index_dir, self.vset)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.stats.save(stats_path(path))
        save_index(self.index, path)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The indexed vectors of `ids` (all must be present)."""
        return self.index.reconstruct_batch(np.asarray(ids, dtype=np.int64))

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None):
        """Top-k (scores, ids) for one query; `allowed` restricts the search to those ids."""
        params = None
        if allowed is not None:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64)))
        k = max(1, min(k, self.index.ntotal))
        scores, ids = self.index.search(query.reshape(1, -1).astype(np.float32), k, params=params)
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep]


def build_from_catalog(catalog: Catalog, vset: VectorSetInfo, memory_budget: int) -> LoadedIndex:
    ids, vectors = catalog.load_vectors(vset.id, vset.dim)
    index = build_index(ids, vectors, choose_index_spec(len(ids), vset.dim, memory_budget))
    return LoadedIndex(index, vset, ScoreStats.of(vectors), from_file=False)


def open_index(catalog: Catalog, vset: VectorSetInfo, index_dir: Path, memory_budget: int) -> LoadedIndex:
    """The current index file if it exists and agrees with the catalog, else a rebuild."""
    path = index_path(index_dir, vset)
    if path.is_file() and stats_path(path).is_file():
        index = faiss.read_index(str(path))
        if index.ntotal == catalog.vector_count(vset.id) and index.d == vset.dim:
            return LoadedIndex(index, vset, ScoreStats.load(stats_path(path)), from_file=True)
    return build_from_catalog(catalog, vset, memory_budget)

