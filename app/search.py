"""The query service: one object shared by the CLI, the web UI and the API.

A query is embedded exactly as the library was: the encoder, weights checksum, preprocessing
and clip sampling are read from the data dir's vector set, never from the caller.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from encoder.factory import VideoEncoder, spec_from_identity
from indexer import store
from indexer.catalog import Catalog, VectorSetInfo
from indexer.decode import ClipDecoder, ProbeError, probe
from indexer.lock import IndexLock
from indexer.pipeline import VIDEO_SET
from indexer.records import ClipSampling, Hit
from indexer.settings import DataDir

MAX_K = 1000


class QueryError(ValueError):
    """A query that cannot be answered; the message is meant for the user."""


class SearchService:
    """Cheap to construct; `load()` opens the catalog and index, encoders load on first use."""

    def __init__(self, data: DataDir, device: str = "auto", precision: str = "auto",
                 memory_budget: int = 4 << 30):
        self.data = data
        self.device = device
        self.precision = precision
        self.memory_budget = memory_budget
        self.catalog = Catalog(data.catalog)
        self._index: store.LoadedIndex | None = None
        self._encoder: VideoEncoder | None = None

    def load(self) -> "SearchService":
        if not Path(self.data.root).is_dir() and self.data.catalog_url is None:
            raise QueryError(f"no index at {self.data.root}: run `python run.py index PATH` first")
        self.catalog.open()
        vset = self.catalog.vector_set(VIDEO_SET)
        if vset is None:
            raise QueryError(f"the index at {self.data.root} is empty: run `python run.py index PATH` first")
        self._index = self._open_index(vset)
        return self

    def _open_index(self, vset: VectorSetInfo) -> store.LoadedIndex:
        loaded = store.open_index(self.catalog, vset, self.data.index_dir, self.memory_budget)
        if not loaded.from_file and not IndexLock(self.data.lock_file).is_held_elsewhere():
            # Rebuilt from the catalog (missing or stale file): keep it for the next reader.
            store.save_index(loaded.index, store.index_path(self.data.index_dir, vset))
        return loaded

    # -- queries --------------------------------------------------------------------------------
    def search_like(self, clip_id: int, k: int = 10) -> list[Hit]:
        """Clips similar to an indexed clip ("more like this"); the clip itself ranks first."""
        vset = self._vset()
        vector = self.catalog.clip_vector(vset.id, clip_id)
        if vector is None:
            raise QueryError(f"no clip with id {clip_id} in this index")
        return self.search_vector(vector, k)

    def search_video(self, path: Path, start: float | None = None, end: float | None = None,
                     k: int = 10) -> list[Hit]:
        """Clips similar to a video file (optionally a time range of it).

        The query is cut into windows exactly like library videos; with several windows their
        unit vectors are averaged and re-normalised (the usual clip-to-video pooling), so the
        answer matches the query as a whole.
        """
        vector = self.embed_video(path, start, end)
        return self.search_vector(vector, k)

    def embed_video(self, path: Path, start: float | None = None, end: float | None = None) -> np.ndarray:
        if start is not None and end is not None and end <= start:
            raise QueryError(f"--end ({end}) must be after --start ({start})")
        encoder = self._video_encoder()
        sampling = ClipSampling(**self._vset().identity["sampling"])
        try:
            info = probe(Path(path))
        except ProbeError as exc:
            raise QueryError(f"query video {path}: {exc}") from exc
        decoder = ClipDecoder(Path(path), info, sampling, encoder.preprocess.size, (start, end))
        vectors = [encoder.embed(clip.frames[None]) for clip in decoder.clips()]
        if not vectors:
            where = f" between {start} s and {end} s" if start is not None or end is not None else ""
            raise QueryError(f"query video {path}: no frames{where}")
        pooled = np.concatenate(vectors).mean(axis=0)
        return (pooled / np.linalg.norm(pooled)).astype(np.float32)

    def search_vector(self, vector: np.ndarray, k: int = 10) -> list[Hit]:
        if not 1 <= k <= MAX_K:
            raise QueryError(f"k must be between 1 and {MAX_K}, got {k}")
        index = self._loaded().index
        # Ask for more than k: hits whose clip left the catalog since the index was built drop out.
        scores, ids = index.search(vector.reshape(1, -1).astype(np.float32), min(index.ntotal, 2 * k) or 1)
        pairs = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
        rows = self.catalog.clip_rows([i for i, _ in pairs])
        hits = [Hit(i, rows[i].video_id, rows[i].path, rows[i].start, rows[i].end, s)
                for i, s in pairs if i in rows]
        return hits[:k]

    # -- internals ------------------------------------------------------------------------------
    def _loaded(self) -> store.LoadedIndex:
        if self._index is None:
            raise QueryError("search service is not loaded: call load() first")
        return self._index

    def _vset(self) -> VectorSetInfo:
        return self._loaded().vset

    def _video_encoder(self) -> VideoEncoder:
        if self._encoder is None:
            spec = spec_from_identity(self._vset().identity, self.data.weights_dir)
            self._encoder = spec.load(self.device, self.precision)
        return self._encoder
