"""FAISS indexes, derived from the catalog's vectors and rebuildable from it at any time.

File name = vector set key + generation + catalog version (`video-<key>-<generation>-v<version>.faiss`),
so a reader can tell from the catalog alone whether a file is current; the generation is new when a
set is rebuilt, so a file of the old set never passes for the new one. Files are written to a
temporary name, fsynced and renamed: a crash leaves either the old file or the new one, never half
of one. The statistics sidecar holds the index file's sha256, checked on every load: a damaged
file (bit flips, truncation) is rebuilt from the catalog instead of answering with garbage.

The index type is a pure function of (vector count, dimension, memory budget), see
`choose_index_spec`. An index that is behind the catalog catches up incrementally (new vectors
added, removed ones dropped) when its type still fits, and is rebuilt when it does not.
"""

from __future__ import annotations

import errno
import logging
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from indexer import ondisk_index
from indexer.atomic import atomic_write
from indexer.catalog import Catalog, VectorSetInfo
from indexer.files import sha256_file

log = logging.getLogger(__name__)

EXACT_LIMIT = 20_000  # up to here exact search takes ~2 ms and is perfect (bench/RESULTS.md)
SUBSET_EXACT_LIMIT = 50_000  # a filter leaving at most this many clips is searched exactly
HNSW_M = 32  # graph degree
HNSW_EF_SEARCH = 128  # recall@10 vs latency at 1M: bench/RESULTS.md
HNSW_EF_CONSTRUCTION = 80
ONDISK_NPROBE = 64  # on-disk IVF: lists visited per query (recall vs latency: bench/big_index.py)

# Exact search over many queries at once is ~10x slower with faiss 1.15's default BLAS threshold.
faiss.cvar.distance_compute_blas_threshold = 7680


@dataclass(frozen=True)
class IndexSpec:
    factory: str  # faiss index_factory description
    ef_search: int | None = None  # HNSW: candidates explored per query
    nprobe: int | None = None  # IVF: inverted lists visited per query

    @property
    def family(self) -> str:
        return self.factory.split(",")[0].rstrip("0123456789_")


def index_bytes(spec: IndexSpec, count: int, dim: int) -> int:
    """Approximate memory of an index of `count` vectors (what the budget is checked against)."""
    ids = 16 * count  # IndexIDMap2: id array + reverse map
    if spec.factory == "Flat":
        return count * dim * 4 + ids
    if spec.factory.startswith("HNSW"):
        code = dim if spec.factory.endswith("SQ8") else 4 * dim
        graph = count * (2 * HNSW_M * 4 + 16)  # level 0 holds 2M neighbours; upper levels ~1/M of it
        return count * code + graph + ids
    if ondisk_index.is_on_disk(spec.factory):  # resident: quantizer (+ its graph), OPQ and PQ tables
        nlist = int(spec.factory.split("IVF", 1)[1].split("_")[0])
        return nlist * (4 * dim + 2 * HNSW_M * 4 + 16) + 4 * dim * dim + 256 * 4 * dim
    m = int(spec.factory.rsplit("PQ", 1)[1].split("x")[0])
    return count * m + ids


def choose_index_spec(count: int, dim: int, memory_budget: int) -> IndexSpec:
    """The index for `count` vectors of `dim` floats within `memory_budget` bytes. Pure.

    exact (Flat)          up to EXACT_LIMIT vectors: perfect recall, ~2 ms
    HNSW32 (full floats)  if it fits: recall@10 >= 0.95 at a few ms even at 1M
    HNSW32,SQ8            8-bit scalar codes, 4x smaller, recall close to full floats
    on-disk IVF-PQ        when nothing else fits: codes and exact vectors in memory-mapped files,
                          candidates re-ranked exactly (`,RFlat`), see indexer/ondisk_index.py
    """
    candidates = [IndexSpec("Flat")] if count <= EXACT_LIMIT else []
    candidates += [
        IndexSpec(f"HNSW{HNSW_M}", ef_search=HNSW_EF_SEARCH),
        IndexSpec(f"HNSW{HNSW_M},SQ8", ef_search=HNSW_EF_SEARCH),
    ]
    for spec in candidates:
        if index_bytes(spec, count, dim) <= memory_budget:
            return spec
    return ondisk_spec(count, dim)


def ondisk_spec(count: int, dim: int) -> IndexSpec:
    """IVF over ~sqrt(N) lists (k-means cost grows with lists squared), 8-dim PQ cells, re-ranked exactly.

    No OPQ: on clustered vectors it left recall@10 as it was (0.913 vs 0.914 at 30k, RESULTS.md)
    for 8x the training time; the exact re-rank, not the codes, decides the final order."""
    nlist = max(64, min(65536, 2 ** round(math.log2(math.sqrt(max(count, 1))))))
    m = next((m for m in (dim // 8, dim // 4, dim // 2) if m and dim % m == 0), dim)
    return IndexSpec(f"IVF{nlist}_HNSW32,PQ{m}{ondisk_index.REFINE_SUFFIX}", nprobe=ONDISK_NPROBE)


def build_index(ids: np.ndarray, vectors: np.ndarray, spec: IndexSpec) -> faiss.Index:
    """Inner-product index over unit vectors (= cosine), ids = catalog clip ids."""
    dim = vectors.shape[1]
    base = faiss.index_factory(dim, spec.factory, faiss.METRIC_INNER_PRODUCT)
    if spec.factory.startswith("HNSW"):
        base.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index = faiss.IndexIDMap2(base)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if not base.is_trained and len(vectors):
        base.train(vectors[np.random.default_rng(0).permutation(len(vectors))[: 256 * 1024]])
    if len(ids):
        index.add_with_ids(vectors, ids.astype(np.int64))
    return index


class DamagedIndexFile(RuntimeError):
    """An index file or its statistics cannot be trusted; the catalog can rebuild both."""


def index_path(index_dir: Path, vset: VectorSetInfo) -> Path:
    return index_dir / f"{vset.name}-{vset.key}-{vset.generation}-v{vset.version}.faiss"


def stats_path(index_file: Path) -> Path:
    return index_file.with_suffix(".stats.npz")


def save_index(index: faiss.Index, path: Path) -> None:
    with atomic_write(path) as tmp:
        _write_index(index, tmp, path)


def _write_index(index: faiss.Index, tmp: Path, path: Path) -> None:
    """Write `index` to `tmp`, the temporary name of `path`; a full disk is an OSError with ENOSPC."""
    try:
        faiss.write_index(index, str(tmp))
    except RuntimeError as exc:  # faiss reports a full disk as RuntimeError
        raise OSError(errno.ENOSPC if "No space" in str(exc) else errno.EIO, f"cannot write {path}: {exc}") from exc


def remove_stale(index_dir: Path, vset: VectorSetInfo) -> None:
    """Delete older versions of this set's index (readers holding them open keep their copy)."""
    current = index_path(index_dir, vset)
    keep = {current.name, stats_path(current).name}
    for old in index_dir.glob(f"{vset.name}-*"):
        if old.name not in keep and not old.name.startswith(current.name + "."):  # + on-disk data files
            old.unlink(missing_ok=True)


@dataclass
class ScoreStats:
    """Running sums of the indexed vectors, for the distribution of any query's scores.

    For a query q the scores q.x over all indexed x have mean q.mu and variance q' C q, where mu
    and C are the vectors' mean and covariance: exact over the whole index, from one D x D matrix
    that vectors can be added to and removed from. Puts different towers' scores on one scale.
    """

    count: int
    total: np.ndarray  # (D,) float64 sum of vectors
    outer: np.ndarray  # (D, D) float64 sum of x x'

    @classmethod
    def of(cls, vectors: np.ndarray) -> ScoreStats:
        x = vectors.astype(np.float64)
        return cls(len(x), x.sum(axis=0), x.T @ x)

    def add(self, vectors: np.ndarray, sign: int = 1) -> None:
        x = vectors.astype(np.float64)
        self.count += sign * len(x)
        self.total += sign * x.sum(axis=0)
        self.outer += sign * (x.T @ x)

    @property
    def mean(self) -> np.ndarray:
        return self.total / max(self.count, 1)

    @property
    def cov(self) -> np.ndarray:
        if self.count < 2:
            return np.eye(len(self.total))
        mean = self.mean
        return (self.outer - self.count * np.outer(mean, mean)) / (self.count - 1)

    def zscores(self, query: np.ndarray, scores: np.ndarray) -> np.ndarray:
        q = query.astype(np.float64)
        std = float(np.sqrt(max(q @ self.cov @ q, 1e-12)))
        return (scores - q @ self.mean) / std

    def save(self, path: Path, spec: IndexSpec, index_sha256: str) -> None:
        """With the index's spec and checksum: the sidecar says how the index file was built and
        is searched, and what its bytes must hash to."""
        with atomic_write(path, suffix=".npz") as tmp:  # np.savez adds .npz to a name without it
            np.savez(
                tmp,
                count=self.count,
                total=self.total,
                outer=self.outer,
                factory=spec.factory,
                ef_search=spec.ef_search or 0,
                nprobe=spec.nprobe or 0,
                index_sha256=index_sha256,
            )

    @classmethod
    def load(cls, path: Path) -> tuple[ScoreStats, IndexSpec]:
        stats, spec, _ = load_sidecar(path)
        return stats, spec


def load_sidecar(path: Path) -> tuple[ScoreStats, IndexSpec, str | None]:
    """(statistics, spec, the index file's sha256 or None if written before checksums existed)."""
    with np.load(path) as data:
        spec = IndexSpec(str(data["factory"]), int(data["ef_search"]) or None, int(data["nprobe"]) or None)
        checksum = str(data["index_sha256"]) if "index_sha256" in data.files else None
        return ScoreStats(int(data["count"]), data["total"], data["outer"]), spec, checksum


def check_sidecar(path: Path, dim: int) -> tuple[ScoreStats, IndexSpec, str]:
    """An index file's statistics, spec and checksum, read and checked for shape; the file itself is not
    read. Raises DamagedIndexFile when the sidecar is unreadable or inconsistent."""
    sidecar = stats_path(path)
    try:
        stats, spec, checksum = load_sidecar(sidecar)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # garbage, truncated, torn
        raise DamagedIndexFile(f"its statistics {sidecar.name} cannot be read: {exc}") from exc
    if stats.total.shape != (dim,) or stats.outer.shape != (dim, dim):
        raise DamagedIndexFile(f"its statistics {sidecar.name} are for {stats.total.shape} vectors, not {dim}-d")
    if checksum is None:
        raise DamagedIndexFile(f"{sidecar.name} holds no checksum (written by an older Tubelet)")
    return stats, spec, checksum


def verify_files(path: Path, dim: int) -> tuple[ScoreStats, IndexSpec]:
    """An index file's statistics, once the file is proven to be the one they were saved with.

    Raises DamagedIndexFile when the sidecar is unreadable or inconsistent, or the index file's
    bytes do not hash to the recorded checksum (bit flips, truncation, a torn copy)."""
    stats, spec, checksum = check_sidecar(path, dim)
    try:
        actual = sha256_file(path)
    except OSError as exc:
        raise DamagedIndexFile(f"it cannot be read: {exc.strerror or exc}") from exc
    if actual != checksum:
        raise DamagedIndexFile(
            f"its sha256 is {actual[:12]}, but it was saved as {checksum[:12]} (changed or truncated on disk)"
        )
    return stats, spec


@dataclass
class LoadedIndex:
    index: faiss.Index
    vset: VectorSetInfo
    stats: ScoreStats
    spec: IndexSpec
    from_file: bool  # False when it was built or brought up to date from the catalog
    disk: ondisk_index.OnDiskIndex | None = None  # the on-disk type: its mapped lists and exact vectors

    def __post_init__(self):
        if self.disk is not None:
            self.ids = self.disk.ids
        else:
            self.ids = np.sort(faiss.vector_to_array(self.index.id_map).astype(np.int64))
        self._searcher = _on_gpus(self.index) if self.spec.factory == "Flat" else self.index

    def save(self, index_dir: Path) -> None:
        """Index written first under a temporary name (its checksum goes into the statistics), then
        the statistics, then the index renamed into place: an index file on disk always has its
        statistics, and they describe exactly its bytes."""
        path = index_path(index_dir, self.vset)
        with atomic_write(path) as tmp:
            _write_index(self.index, tmp, path)
            self.stats.save(stats_path(path), self.spec, sha256_file(tmp))

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The indexed vectors of `ids` (all must be present)."""
        if self.disk is not None:
            return self.disk.vectors(ids)
        return self.index.reconstruct_batch(np.asarray(ids, dtype=np.int64))

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None):
        """Top-k (scores, ids) for one query; `allowed` restricts the search to those ids.

        A restriction to few clips is searched exactly (their vectors scored directly), so a
        narrow filter gets the true top-k whatever the index type.
        """
        query = query.reshape(1, -1).astype(np.float32)
        if allowed is not None and len(allowed) <= SUBSET_EXACT_LIMIT:
            allowed = self.disk.present(allowed) if self.disk is not None else np.intersect1d(allowed, self.ids)
            scores = self.vectors(allowed) @ query[0] if len(allowed) else np.empty(0, np.float32)
            top = np.argsort(-scores, kind="stable")[:k]
            return scores[top], allowed[top]
        if self.disk is not None:
            return self.disk.search(query, k, self.spec.nprobe or ONDISK_NPROBE, allowed)
        params = _search_params(self.spec, allowed)
        k = max(1, min(k, self.index.ntotal))
        searcher = self.index if params is not None else self._searcher  # GPU copies search unfiltered
        scores, ids = searcher.search(query, k, params=params)
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep]


def _on_gpus(index: faiss.Index) -> faiss.Index:
    """An exact index copied to the GPUs when this is a faiss-gpu build with GPUs, else itself.

    Untested here (no GPU on the build machines); any failure keeps the CPU index.
    """
    if not hasattr(faiss, "index_cpu_to_all_gpus") or faiss.get_num_gpus() == 0:
        return index
    try:
        return faiss.index_cpu_to_all_gpus(index)
    except RuntimeError as exc:
        log.warning("searching on the CPU: could not copy the index to the GPUs: %s", exc)
        return index


def _search_params(spec: IndexSpec, allowed: np.ndarray | None):
    """Per-search settings (efSearch, nprobe) and filter. The only place they are set: faiss needs
    the typed parameters for a filter anyway, and they override whatever the index file holds."""
    selector = None if allowed is None else faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
    if spec.ef_search is not None:
        return faiss.SearchParametersHNSW(sel=selector, efSearch=spec.ef_search)
    if spec.nprobe is not None:
        return faiss.SearchParametersIVF(sel=selector, nprobe=spec.nprobe)
    return None if selector is None else faiss.SearchParameters(sel=selector)


def build_from_catalog(
    catalog: Catalog, vset: VectorSetInfo, memory_budget: int, index_dir: Path | None = None
) -> LoadedIndex:
    """A fresh index of the catalog's vectors; the on-disk type streams them into files in `index_dir`."""
    spec = choose_index_spec(catalog.vector_count(vset.id), vset.dim, memory_budget)
    if ondisk_index.is_on_disk(spec.factory):
        return _build_on_disk(catalog, vset, spec, index_dir)
    ids, vectors = catalog.load_vectors(vset.id, vset.dim)
    return LoadedIndex(build_index(ids, vectors, spec), vset, ScoreStats.of(vectors), spec, from_file=False)


def _build_on_disk(catalog: Catalog, vset: VectorSetInfo, spec: IndexSpec, index_dir: Path | None) -> LoadedIndex:
    if index_dir is None:
        raise ValueError(f"the {vset.name} index ({spec.factory}) lives on disk: it needs an index directory")
    stats = ScoreStats(0, np.zeros(vset.dim), np.zeros((vset.dim, vset.dim)))
    chunks = catalog.iter_vectors(vset.id, vset.dim)
    index, _, _ = ondisk_index.build(chunks, vset.dim, spec.factory, index_path(index_dir, vset), stats.add)
    disk = ondisk_index.OnDiskIndex.open_built(index, index_path(index_dir, vset), vset.dim)
    return LoadedIndex(index, vset, stats, spec, from_file=False, disk=disk)


def catch_up(
    loaded: LoadedIndex, catalog: Catalog, vset: VectorSetInfo, memory_budget: int, index_dir: Path | None = None
) -> LoadedIndex:
    """An index for the current version of `vset` from one built for an older version, incrementally if it can.

    New vectors are added; removed ones are dropped (Flat) — an HNSW graph cannot drop nodes, so
    removals, a change of index type, or more change than index rebuild it from the catalog. Either way
    the result is a new index beside `loaded`, which is left as it was: searches may still be reading it.
    """
    current = catalog.vector_ids(vset.id)
    new = np.setdiff1d(current, loaded.ids, assume_unique=True)
    gone = np.setdiff1d(loaded.ids, current, assume_unique=True)
    spec = choose_index_spec(len(current), vset.dim, memory_budget)
    removable = loaded.spec.factory == "Flat" or len(gone) == 0
    if loaded.disk is not None:  # rebuilt beside itself: its files stay for searches still reading them
        return build_from_catalog(catalog, vset, memory_budget, index_dir or loaded.disk.files.lists.parent)
    if spec != loaded.spec or not removable or len(new) + len(gone) > len(current):
        return build_from_catalog(catalog, vset, memory_budget, index_dir)
    index = faiss.clone_index(loaded.index)
    stats = ScoreStats(loaded.stats.count, loaded.stats.total.copy(), loaded.stats.outer.copy())
    if len(gone):
        stats.add(loaded.vectors(gone), sign=-1)
        index.remove_ids(faiss.IDSelectorBatch(gone))
    if len(new):
        ids, vectors = catalog.load_vectors(vset.id, vset.dim, only=new)
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        stats.add(vectors)
    return LoadedIndex(index, vset, stats, spec, from_file=False)


def latest_file(index_dir: Path, vset: VectorSetInfo) -> Path | None:
    """The newest index file of this vector set (same key), whatever its version."""
    files = []
    for path in index_dir.glob(f"{vset.name}-{vset.key}-{vset.generation}-v*.faiss"):
        version = path.stem.rsplit("-v", 1)[1]
        if version.isdigit() and stats_path(path).is_file():
            files.append((int(version), path))
    return max(files)[1] if files else None


def read_index(path: Path, vset: VectorSetInfo) -> LoadedIndex:
    """A verified index file (see `verify_files`); DamagedIndexFile if it cannot be trusted."""
    stats, spec = verify_files(path, vset.dim)
    disk = None
    try:
        if ondisk_index.is_on_disk(spec.factory):
            disk = ondisk_index.OnDiskIndex.open(path, vset.dim)
            index = disk.index
        else:
            index = faiss.read_index(str(path))
    except RuntimeError as exc:  # checksum right but faiss refuses it: still a file to rebuild
        raise DamagedIndexFile(f"faiss cannot read it: {str(exc).strip().splitlines()[0]}") from exc
    except ValueError as exc:  # an on-disk index's data files are missing or cut short
        raise DamagedIndexFile(str(exc)) from exc
    if index.d != vset.dim or index.ntotal != stats.count:
        raise DamagedIndexFile(
            f"it holds {index.ntotal} {index.d}-d vectors, its statistics {stats.count} {vset.dim}-d ones"
        )
    return LoadedIndex(index, vset, stats, spec, from_file=True, disk=disk)


def index_file_problem(index_dir: Path, vset: VectorSetInfo) -> str | None:
    """Why the current index file of `vset` cannot be used as it is (None: it can), without loading it."""
    path = index_path(index_dir, vset)
    if not path.is_file() or not stats_path(path).is_file():
        return "missing or stale"
    try:
        verify_files(path, vset.dim)
    except DamagedIndexFile as exc:
        return f"damaged: {exc}"
    return None


HASH_LIMIT = 256 << 20  # plain `status` hashes index files up to this size (~0.3 s); `status --check` all


@dataclass(frozen=True)
class IndexFileState:
    """How a vector set's index file on disk stands, for `status` (cheap: no FAISS load)."""

    state: str  # current | stale (only an older version on disk) | missing | damaged
    path: Path  # the file the catalog's current version names
    detail: str | None = None  # why damaged or stale, or why not hashed
    verified: bool = False  # its bytes were hashed against the checksum saved with it

    @property
    def current(self) -> bool:
        return self.state == "current"


def index_file_state(index_dir: Path, vset: VectorSetInfo, hash_limit: int = HASH_LIMIT) -> IndexFileState:
    """current / stale / missing / damaged; files larger than `hash_limit` get the sidecar checks only."""
    path = index_path(index_dir, vset)
    if not path.is_file() or not stats_path(path).is_file():
        older = latest_file(index_dir, vset)
        if older is not None:
            return IndexFileState("stale", path, f"{older.name} lacks the newest vectors")
        return IndexFileState("missing", path)
    try:
        size = path.stat().st_size
        if size > hash_limit:
            check_sidecar(path, vset.dim)
            return IndexFileState("current", path, f"{size / 2**30:.1f} GiB, not hashed: `status --check` does")
        verify_files(path, vset.dim)
    except DamagedIndexFile as exc:
        return IndexFileState("damaged", path, str(exc))
    except OSError as exc:  # vanished or unreadable between the checks
        return IndexFileState("damaged", path, f"it cannot be read: {exc.strerror or exc}")
    return IndexFileState("current", path, verified=True)


def open_index(catalog: Catalog, vset: VectorSetInfo, index_dir: Path, memory_budget: int) -> LoadedIndex:
    """The current index file; else an older one caught up with the catalog; else a fresh build.

    A damaged file is never used: the catalog holds every vector, so it is rebuilt from there
    (and replaced on disk by whoever saves the result)."""
    path = index_path(index_dir, vset)
    if path.is_file() and stats_path(path).is_file():
        try:
            loaded = read_index(path, vset)
            if loaded.index.ntotal == catalog.vector_count(vset.id):
                return loaded
        except DamagedIndexFile as exc:
            log.warning("rebuilding %s from the catalog: it is damaged: %s", path.name, exc)
    older = latest_file(index_dir, vset)
    if older is not None and older != path:
        try:
            return catch_up(read_index(older, vset), catalog, vset, memory_budget, index_dir)
        except DamagedIndexFile as exc:  # the catalog has it all
            log.warning("rebuilding %s from the catalog: it is damaged: %s", older.name, exc)
    return build_from_catalog(catalog, vset, memory_budget, index_dir)
