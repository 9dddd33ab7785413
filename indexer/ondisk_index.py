"""An index larger than RAM: IVF-PQ codes in FAISS on-disk inverted lists, re-ranked exactly.

Built from a stream of (clip ids, vectors) chunks in clip-id order (the catalog's order), never
holding all vectors in memory:
1. the chunks are written to a file of float32 rows (and one of their ids), memory-mapped from then on;
2. IVF-PQ (with OPQ when the spec starts `OPQn,`) is trained on a seeded sample of those rows
   (`faiss.index_factory`, L2 on unit vectors, which ranks as cosine does);
3. it is filled in shards of `SHARD_ROWS` rows, each written as its own index file, and the shards
   merged into one `OnDiskInvertedLists` file (`faiss.contrib.ondisk.merge_ondisk`, the FAISS recipe
   for billion-scale indexes);
4. a search takes `REFINE_FACTOR * k` candidates from the codes and re-ranks them with the exact
   vectors read from the rows file (`RowsFile`: one positioned read a row, no mapping): the re-ranking
   of FAISS's `IndexRefineFlat` (factory suffix `,RFlat`, which the spec names), done here because
   IndexRefine wants positional ids under an IndexIDMap2 (a hash map of every id in RAM) and a flat
   index that FAISS serialises from RAM.

What stays resident is the coarse quantizer, the OPQ matrix and the PQ tables (~0.05 GiB at 1M);
the lists are pages of a mapped file that the kernel loads on demand and may drop again, and the rows
are read into a buffer the size of one query's candidates, so the rows file (4 * dim bytes a vector,
the largest by far) never becomes part of the process.

Files of one index (`<name>.faiss` is `store.index_path`): `<name>.faiss` itself (quantizer, OPQ, PQ
and the name of its lists file; renamed into place last, so it is the commit point), and beside it
`<name>.<token>.ivfdata`, `.vectors` and `.ids.npy`, where the token is new for every build: two
builds never write the same data file, and a `.faiss` always names the data it was built with.
faiss-gpu, when it sees GPUs, trains the coarse quantizer and assigns vectors to lists on them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
from faiss.contrib.ondisk import merge_ondisk

from indexer.atomic import atomic_write, fsync_file, temp_path

REFINE_SUFFIX = ",RFlat"  # factory suffix of the on-disk type: exact re-ranking (FAISS IndexRefineFlat)
# candidates re-ranked exactly per result. On clustered vectors with ~2,000 a list, recall@10 was
# 0.867 / 0.942 / 0.992 with 64 / 128 / 256 (1M in 512 clusters, PQ48), and 0.988 at 10M with 256
# (bench/RESULTS.md); PQ96 codes needed half the candidates for the same recall, at twice the scan time
REFINE_FACTOR = 256
SHARD_ROWS = 250_000  # vectors added per shard: what is held in RAM while filling (~0.4 GB at 384-d)
TRAIN_PER_LIST = 32  # training sample per inverted list (FAISS warns below 39; 32 keeps k-means cheap)
TRAIN_MIN = 65_536  # and at least this many, for the PQ and OPQ codebooks
KMEANS_ITERATIONS = 10
PQ_POINTS_PER_CENTROID = 64  # k-means sample per centroid, coarse and PQ
OPQ_ITERATIONS = 10  # FAISS default 50
READ_FLAGS = faiss.IO_FLAG_ONDISK_SAME_DIR | faiss.IO_FLAG_READ_ONLY


def is_on_disk(factory: str) -> bool:
    return factory.endswith(REFINE_SUFFIX)


@dataclass(frozen=True)
class DataFiles:
    """The data files beside an index file, named by the build's token."""

    lists: Path
    vectors: Path
    ids: Path

    @classmethod
    def of(cls, index_file: Path, token: str) -> DataFiles:
        stem = index_file.with_name(f"{index_file.name}.{token}")
        return cls(Path(f"{stem}.ivfdata"), Path(f"{stem}.vectors"), Path(f"{stem}.ids.npy"))

    @classmethod
    def named_by(cls, index: faiss.Index, index_file: Path) -> DataFiles:
        """The data files an index read from `index_file` was built with (its lists file names the token)."""
        lists = Path(faiss.downcast_InvertedLists(ivf_of(index).invlists).filename).name
        token = lists.removeprefix(index_file.name + ".").removesuffix(".ivfdata")
        return cls.of(index_file, token)


def ivf_of(index: faiss.Index) -> faiss.IndexIVFPQ:
    return faiss.downcast_index(faiss.extract_index_ivf(index))


class RowsFile:
    """The exact float32 rows of an index, read a few at a time at random positions.

    Positioned reads, not a memory map: a mapped 15 GB file grows the process's resident set by every
    page the kernel reads around a touched row, and `MADV_RANDOM` on numpy's map did not stop that at
    10M (bench/RESULTS.md). Read-ahead is off for the file, since no two candidates are neighbours."""

    def __init__(self, path: Path, dim: int, file):
        self.path, self.dim, self.row_bytes = path, dim, 4 * dim
        self._file = file  # an unbuffered binary file, open as long as this object lives

    @classmethod
    def open(cls, path: Path, dim: int) -> RowsFile:
        file = open(path, "rb", buffering=0)  # noqa: SIM115 - held open for the index's lifetime, closed with it
        os.posix_fadvise(file.fileno(), 0, 0, os.POSIX_FADV_RANDOM)
        return cls(path, dim, file)

    def read(self, positions: np.ndarray) -> np.ndarray:
        """Rows at `positions` (ascending reads in file order, the rows returned in the given order)."""
        order = np.argsort(positions, kind="stable")
        out = np.empty((len(positions), self.dim), np.float32)
        view, fd, size = memoryview(out).cast("B"), self._file.fileno(), self.row_bytes
        for i in order.tolist():
            got = os.preadv(fd, [view[i * size : (i + 1) * size]], int(positions[i]) * size)
            if got != size:
                raise ValueError(f"{self.path.name} ends before row {positions[i]}")
        return out


@dataclass
class OnDiskIndex:
    """A searchable on-disk index: the FAISS index (lists mapped from disk) and the exact rows' file."""

    index: faiss.Index  # IndexPreTransform(OPQ) over IndexIVFPQ, or the IndexIVFPQ itself
    ids: np.ndarray  # (n,) sorted clip ids; row i of `rows` is clip ids[i]
    rows: RowsFile  # (n, dim) float32
    files: DataFiles

    @classmethod
    def open(cls, index_file: Path, dim: int) -> OnDiskIndex:
        """Read a built index; ValueError naming the file when its data files are missing or the wrong size."""
        return cls.open_built(faiss.read_index(str(index_file), READ_FLAGS), index_file, dim)

    @classmethod
    def open_built(cls, index: faiss.Index, index_file: Path, dim: int) -> OnDiskIndex:
        """`index` (read from `index_file`, or just built for it) with its mapped data files."""
        files = DataFiles.named_by(index, index_file)
        for path in (files.lists, files.vectors, files.ids):
            if not path.is_file():
                raise ValueError(f"{path.name}, a data file of {index_file.name}, is missing")
        ids = np.load(files.ids, mmap_mode="r")
        if files.vectors.stat().st_size != len(ids) * dim * 4 or len(ids) != index.ntotal:
            raise ValueError(f"{files.vectors.name} does not hold the {index.ntotal} {dim}-d rows of {index_file.name}")
        # FAISS starts 32 threads a search to touch the lists' pages first: on 2 cores that cost ~3 ms a
        # query for pages already cached (prefetch_nthread 0: 1.9 ms at nprobe 1 instead of 4.9)
        faiss.downcast_InvertedLists(ivf_of(index).invlists).prefetch_nthread = 0
        return cls(index, ids, RowsFile.open(files.vectors, dim), files)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The exact vectors of `ids` (all must be present)."""
        return self.rows.read(np.searchsorted(self.ids, np.asarray(ids, dtype=np.int64)))

    def present(self, ids: np.ndarray) -> np.ndarray:
        """The sorted unique ids of `ids` that are indexed."""
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        at = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
        return ids[self.ids[at] == ids] if len(self.ids) else ids[:0]

    def search(
        self, query: np.ndarray, k: int, nprobe: int, allowed: np.ndarray | None = None, refine: int = REFINE_FACTOR
    ):
        """Top-k (inner products, ids) for one unit query: candidates from the codes, exact re-rank."""
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        candidates = self.candidates(query, k * refine, nprobe, allowed)
        scores = self.vectors(candidates) @ query[0]
        top = np.argsort(-scores, kind="stable")[:k]
        return scores[top], candidates[top]

    def candidates(self, query: np.ndarray, wanted: int, nprobe: int, allowed: np.ndarray | None = None):
        """The sorted ids (equal exact scores then rank by clip id) of the `wanted` nearest by the codes,
        for one (1, dim) float32 query."""
        selector = None if allowed is None else faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
        params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
        wanted = max(1, min(wanted, self.index.ntotal))
        _, found = ivf_of(self.index).search(transform(self.index, query), wanted, params=params)
        return np.sort(found[0][found[0] >= 0])


def transform(index: faiss.Index, x: np.ndarray) -> np.ndarray:
    """`x` as the inverted lists see it (OPQ-rotated when the index has OPQ)."""
    if isinstance(index, faiss.IndexPreTransform):
        for i in range(index.chain.size()):
            x = index.chain.at(i).apply(x)
    return x


def build(chunks: Iterable[tuple[np.ndarray, np.ndarray]], dim: int, factory: str, index_file: Path, on_chunk=None):
    """Build the index `factory` (an on-disk spec) from `chunks` into files beside `index_file`.

    Returns (the FAISS index, its data files, the row count); the caller writes `index_file` itself
    (`faiss.write_index`, atomically) once it is ready to publish it. `on_chunk(vectors)` sees
    every chunk's vectors as they stream past (for running statistics)."""
    files = DataFiles.of(index_file, secrets.token_hex(4))
    count = write_rows(chunks, dim, files, on_chunk)
    rows = np.memmap(files.vectors, dtype=np.float32, mode="r", shape=(count, dim)) if count else None
    ids = np.load(files.ids, mmap_mode="r")
    index = faiss.index_factory(dim, factory.removesuffix(REFINE_SUFFIX), faiss.METRIC_L2)
    shards = []
    try:
        if count:
            train(index, rows)
            shards = [write_shard(index, rows, ids, start, index_file) for start in range(0, count, SHARD_ROWS)]
        with atomic_write(files.lists) as tmp:
            merge_ondisk(index, [str(s) for s in shards], str(tmp))
            invlists = faiss.downcast_InvertedLists(ivf_of(index).invlists)
            invlists.filename = str(files.lists)  # the name it will have once renamed into place
    finally:
        for shard in shards:
            shard.unlink(missing_ok=True)
    return index, files, count


def write_rows(chunks, dim: int, files: DataFiles, on_chunk=None) -> int:
    """Stream the chunks into the rows file and the ids file; ValueError if ids are not increasing."""
    id_chunks, last = [], -1
    with atomic_write(files.vectors) as tmp, open(tmp, "wb") as out:
        for ids, vectors in chunks:
            if len(ids) and (ids[0] <= last or np.any(np.diff(ids) <= 0)):
                raise ValueError("vectors must come in increasing clip-id order")
            vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, dim)
            out.write(vectors.tobytes())
            id_chunks.append(np.asarray(ids, dtype=np.int64))
            last = int(ids[-1]) if len(ids) else last
            if on_chunk is not None:
                on_chunk(vectors)
        out.flush()
    all_ids = np.concatenate(id_chunks) if id_chunks else np.empty(0, np.int64)  # 8 bytes a vector
    with atomic_write(files.ids, suffix=".npy") as tmp:
        np.save(tmp, all_ids)
    return len(all_ids)


def train(index: faiss.Index, rows: np.ndarray) -> None:
    """Train OPQ, the coarse quantizer and PQ on an evenly spread, seeded sample of the rows."""
    ivf = ivf_of(index)
    size = min(len(rows), max(TRAIN_MIN, TRAIN_PER_LIST * ivf.nlist))
    pick = np.sort(np.random.default_rng(0).choice(len(rows), size, replace=False))
    sample = np.ascontiguousarray(rows[pick])
    for cp in (ivf.cp, ivf.pq.cp):  # FAISS's 25 iterations over 256 points a centroid cost ~3x, for little
        cp.niter = KMEANS_ITERATIONS
        cp.max_points_per_centroid = PQ_POINTS_PER_CENTROID
    ivf.cp.min_points_per_centroid = 1  # no warning: the sample is sized on purpose
    ivf.do_polysemous_training = False  # the factory's default; 90% of training time for codes never used
    if isinstance(index, faiss.IndexPreTransform):
        opq = faiss.downcast_VectorTransform(index.chain.at(0))
        opq.niter, opq.max_train_points = OPQ_ITERATIONS, TRAIN_MIN
    if gpu_count() > 0:
        ivf.clustering_index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatL2(ivf.d))
    index.train(sample)


def write_shard(trained: faiss.Index, rows: np.ndarray, ids: np.ndarray, start: int, index_file: Path) -> Path:
    """Rows [start, start + SHARD_ROWS) added to an empty copy of the trained index, written to a file."""
    shard = faiss.clone_index(trained)
    ivf = ivf_of(shard)
    x = transform(shard, np.ascontiguousarray(rows[start : start + SHARD_ROWS]))
    shard_ids = np.ascontiguousarray(ids[start : start + SHARD_ROWS], dtype=np.int64)
    lists = assign(ivf, x)
    ivf.add_core(len(x), faiss.swig_ptr(x), faiss.swig_ptr(shard_ids), faiss.swig_ptr(lists))
    shard.ntotal = ivf.ntotal
    path = temp_path(index_file, f".shard{start}")  # a temporary name: a killed build's shards are cleaned up
    faiss.write_index(shard, str(path))
    fsync_file(path)
    return path


def assign(ivf: faiss.IndexIVF, x: np.ndarray) -> np.ndarray:
    """The inverted list of each row: on the GPUs when faiss-gpu sees any, else by the index's own quantizer."""
    if gpu_count() > 0:
        centroids = ivf.quantizer.reconstruct_n(0, ivf.nlist)
        flat = faiss.IndexFlatL2(ivf.d)
        flat.add(centroids)
        _, lists = faiss.index_cpu_to_all_gpus(flat).search(x, 1)
    else:
        _, lists = ivf.quantizer.search(x, 1)
    return np.ascontiguousarray(lists[:, 0], dtype=np.int64)


def gpu_count() -> int:
    """GPUs faiss can use: 0 on a CPU-only faiss build."""
    return faiss.get_num_gpus() if hasattr(faiss, "index_cpu_to_all_gpus") else 0
