"""The query service: one object shared by the CLI, the web UI and the API.

A query is embedded exactly as the library was: encoders, weights checksums, preprocessing,
clip sampling and decode size are read from the data dir, never from the caller.

Fusion. A query has one or more parts, each a vector in one tower's space:
  video      (--video, --like)  VideoMAE v2 vector of the query clip   -> "video" vectors
  appearance (--video, --like)  image-text vector of the query clip   -> "image" vectors
  text       (--text)           image-text text vector                -> "image" vectors
  image      (--image)          image-text vector of the example image -> "image" vectors
  negative   (--negative)       image-text text vector, subtracted    -> "image" vectors
Raw cosine similarities of different towers are not comparable (image-text text-image cosines sit
around 0.2-0.35, VideoMAE ones near 1), so each part's score is calibrated as a z-score against
the distribution of that query's scores over the whole index (exact: mean q.mu, variance
q'Cq from the index's mean and covariance). The fused score is
    sum(w_p * z_p over positive parts) - w_neg * z_neg, divided by the sum of positive weights,
so a single-part query's score is its z-score: how many standard deviations above the library's
typical clip a hit is. Weights default to 1 (SearchOptions.weights). Candidates are the union
of each positive part's top hits, searched inside the filters.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

import numpy as np

from app.moments import ScoredClip, best, merge_moments
from app.query import Filters, Query, QueryError, SearchOptions, SearchRequest
from encoder.tower import TextTower
from indexer import store
from indexer.catalog import Catalog, VectorSetInfo
from indexer.decode import DecodeTimeout, ProbeError, probe, read_image
from indexer.records import IMAGE_SET, VIDEO_SET, Moment, in_folder, stack_by_size
from indexer.settings import DataDir
from indexer.towers import Towers, towers_from_catalog

log = logging.getLogger(__name__)

PART_SETS = {"video": VIDEO_SET, "appearance": IMAGE_SET, "text": IMAGE_SET, "image": IMAGE_SET, "negative": IMAGE_SET}
CANDIDATES_PER_K = 20  # each positive part contributes max(200, 20 k) candidates
MOMENTS_PER_VIDEO = 3  # with group="video", up to this many moments per video
# A query video is embedded from at most this many windows, spread evenly over its range (a 5-minute
# query took 234 s to embed window by window), within this much time for decoding and embedding.
MAX_QUERY_WINDOWS = 16
QUERY_VIDEO_SECONDS = 300.0


@dataclass(frozen=True)
class QueryPart:
    name: str  # one of PART_SETS
    vector: np.ndarray  # unit vector in the part's tower space
    weight: float  # negative for "not this"


@dataclass
class VideoGroup:
    video_id: int
    path: str
    score: float
    moments: list[Moment]

    def to_json(self) -> dict:
        return {
            "video_id": self.video_id,
            "path": self.path,
            "score": round(self.score, 4),
            "moments": [m.to_json() for m in self.moments],
        }


@dataclass
class SearchResult:
    moments: list[Moment] = field(default_factory=list)
    videos: list[VideoGroup] = field(default_factory=list)  # filled with group="video"
    best_score: float | None = None  # best fused score among candidates, even below min_score
    no_match: bool = False  # nothing reached min_score (or the filters left nothing)
    snapshot: Snapshot | None = field(default=None, repr=False, compare=False)  # what it was answered from


class FilterRows:
    """The catalog's video rows and clip -> (video, start) map behind filters, read once per snapshot, on its first
    filtered search (an unfiltered server never pays for them). Safe to share between threads."""

    def __init__(self, catalog: Catalog):
        self._catalog = catalog
        self._lock = threading.Lock()
        self._rows: tuple | None = None

    def get(self) -> tuple:
        with self._lock:
            if self._rows is None:
                self._rows = (self._catalog.video_rows(), *self._catalog.clip_times())
            return self._rows


@dataclass(frozen=True, eq=False)
class Snapshot:
    """Everything a search reads besides the catalog's rows: the towers and one index per vector set, as of
    one moment. Never changed once made (only its towers load their models on first use, once, under their
    own lock): a refresh makes a new snapshot beside it and swaps that in, so a search that took a snapshot
    at its start answers from one consistent state while new videos are committed."""

    towers: Towers
    indexes: Mapping[str, store.LoadedIndex]
    files: tuple  # (data dir inode, catalog FileIdentity) when the towers and indexes were loaded
    filter_rows: FilterRows = field(repr=False)


class SearchService:
    """Cheap to construct; `load()` opens the catalog and indexes; encoders load on first use.

    Shared by concurrent handlers: loading and refreshing run one at a time (under a lock) and publish a new
    Snapshot with one assignment; searches read `self._snapshot` once and use only that.
    """

    def __init__(
        self,
        data: DataDir,
        device: str = "auto",
        precision: str = "auto",
        memory_budget: int = 4 << 30,
        runtime: str = "auto",
    ):
        self.data = data
        self.device = device
        self.precision = precision
        self.runtime = runtime  # auto | torch | openvino: queries embed through it
        self.memory_budget = memory_budget
        self.catalog = Catalog(data.catalog)
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()  # one load or refresh at a time

    @property
    def snapshot(self) -> Snapshot:
        state = self._snapshot
        if state is None:
            raise QueryError("search service is not loaded: call load() first")
        return state

    @property
    def towers(self) -> Towers | None:
        state = self._snapshot
        return None if state is None else state.towers

    @property
    def indexes(self) -> Mapping[str, store.LoadedIndex]:
        state = self._snapshot
        return MappingProxyType({}) if state is None else state.indexes

    # -- loading --------------------------------------------------------------------------------
    def load(self) -> SearchService:
        with self._lock:
            self._snapshot = self._load()
        return self

    def ensure_ready(self) -> SearchService:
        """Load on first use (the index may not exist when a server starts), else refresh."""
        with self._lock:
            if self._snapshot is None:
                self._snapshot = self._load()
            else:
                self._refresh()
        return self

    def warm_up(self) -> SearchService:
        """Load the indexes and every tower's encoder now, not on the first query: a server does this as it starts,
        so its first search answers as fast as the rest (a search meanwhile waits for the same one load)."""
        towers = self.ensure_ready().snapshot.towers
        for name in towers.specs():
            towers.encoder(name)
        return self

    def refresh(self) -> bool:
        """Catch up with the data dir since `load()`; True if anything changed.

        Vectors committed since then are added incrementally, to copies of the indexes (a search may
        be reading the current ones). When the vector sets are other ones (`index --rebuild`, other
        weights, a replaced catalog: another id, key or generation), encoders and indexes are all
        loaded again, so a query is never embedded by one encoder and compared with another's
        vectors. When the catalog's files were replaced under this process (restored from a backup,
        `-wal`/`-shm` deleted by another process), the catalog is opened again first: the old
        connection would never see new videos.
        """
        with self._lock:
            return self._refresh()

    def _load(self) -> Snapshot:
        if not self.data.has_catalog:
            raise QueryError(f"no index at {self.data.root}: run `python run.py index PATH` first")
        if not self.catalog.is_open:
            self.catalog.open()
        if self.catalog.vector_set(VIDEO_SET) is None:
            raise QueryError(f"the index at {self.data.root} is empty: run `python run.py index PATH` first")
        towers, sets = towers_from_catalog(
            self.catalog, self.data.weights_dir, self.device, self.precision, self.runtime, self.data.runtime_dir
        )
        indexes = {name: self._open_index(vset) for name, vset in sets.items()}
        return Snapshot(towers, MappingProxyType(indexes), self._file_identity(), FilterRows(self.catalog))

    def _refresh(self) -> bool:
        state = self._snapshot
        if state is None:
            self._snapshot = self._load()
            return True
        if self._files_replaced(state.files):
            log.warning("the catalog's files under %s were replaced: opening it again", self.data.root)
            self.catalog.close_stale()
            self._snapshot = self._load()
            return True
        sets = {name: vset for name in (VIDEO_SET, IMAGE_SET) if (vset := self.catalog.vector_set(name))}
        if set(sets) != set(state.indexes) or not all(sets[n].same_set(state.indexes[n].vset) for n in sets):
            self._snapshot = self._load()
            return True
        stale = [name for name, vset in sets.items() if vset.version != state.indexes[name].vset.version]
        if not stale:
            return False
        indexes = dict(state.indexes)
        for name in stale:
            indexes[name] = store.catch_up(
                indexes[name], self.catalog, sets[name], self.memory_budget, self.data.index_dir
            )
        self._snapshot = Snapshot(state.towers, MappingProxyType(indexes), state.files, FilterRows(self.catalog))
        return True

    def _file_identity(self) -> tuple:
        try:
            stat = self.data.root.stat()
            root = (stat.st_dev, stat.st_ino)
        except FileNotFoundError:
            root = None
        return root, self.catalog.file_identity()

    def _files_replaced(self, files: tuple) -> bool:
        (old_root, old_catalog), (root, catalog) = files, self._file_identity()
        if root != old_root:
            return True
        return old_catalog is not None and catalog is not None and catalog.replaced_since(old_catalog)

    def _open_index(self, vset: VectorSetInfo) -> store.LoadedIndex:
        loaded = store.open_index(self.catalog, vset, self.data.index_dir, self.memory_budget)
        if (
            not loaded.from_file
            and not self.catalog.read_only
            and not self.catalog.run_lock(self.data.lock_file).is_held_elsewhere()
        ):
            try:
                loaded.save(self.data.index_dir)  # rebuilt from the catalog: keep it for the next reader
            except OSError as exc:  # a full disk: searching from memory is still right, only slower to start
                log.warning("could not save the rebuilt index: %s", exc)
        return loaded

    def has_text_search(self) -> bool:
        return IMAGE_SET in self.indexes

    # -- searching ------------------------------------------------------------------------------
    def search(
        self, request: SearchRequest | Query, filters: Filters = Filters(), options: SearchOptions = SearchOptions()
    ) -> SearchResult:
        """Answer a request from the snapshot current at its start (a bare Query takes `filters`, `options`)."""
        if isinstance(request, Query):
            request = SearchRequest(request, filters, options)
        state = self.snapshot  # read once: a concurrent refresh swaps in a new one, never changes this one
        query, filters, options = request.query, request.filters, request.options
        parts = self.query_parts(query, options, state)
        allowed = self.allowed_clip_ids(filters, state)
        if allowed is not None and len(allowed) == 0:
            return SearchResult(no_match=True, snapshot=state)
        scored = self.rank(parts, allowed, options.k, state)
        if not scored:
            return SearchResult(no_match=True, snapshot=state)
        best_score = max(c.score for c, _ in scored)
        if options.min_score is not None:
            scored = [(c, raw) for c, raw in scored if c.score >= options.min_score]
            if not scored:
                return SearchResult(best_score=best_score, no_match=True, snapshot=state)
        result = SearchResult(best_score=best_score, snapshot=state)
        if options.group == "video":
            # Enough moments that k videos are represented, each with its best few.
            moments = self._moments(scored, options.k * MOMENTS_PER_VIDEO, options.max_moment)
            result.videos = group_by_video(moments)[: options.k]
        result.moments = self._moments(scored, options.k, options.max_moment)
        if options.sort == "time":
            result.moments = by_recording_time(result.moments)
            result.videos = videos_by_recording_time(result.videos)
        return result

    def query_parts(self, query: Query, options: SearchOptions, state: Snapshot | None = None) -> list[QueryPart]:
        state = state or self.snapshot
        vectors: dict[str, np.ndarray] = {}
        if query.like is not None:
            vectors.update(self._clip_vectors(query.like, state))
        if query.video is not None:
            vectors.update(self.embed_video(query.video, query.start, query.end, state))
        if query.text:
            vectors["text"] = _image_text_tower(state, "text").encode_text([query.text])[0]
        if query.image is not None:
            vectors["image"] = self.embed_image(query.image, state)
        if query.negative:
            vectors["negative"] = _image_text_tower(state, "negative").encode_text([query.negative])[0]
        searched = [name for name in vectors if name != "negative"]
        if searched and all(options.weight(name) == 0 for name in searched):
            zero = ", ".join(f"{name}=0" for name in searched)
            raise QueryError(
                f"weight {zero} leaves this query nothing to search for: a weight is 0 or more (0 leaves that part "
                f"out), and at least one of {', '.join(searched)} needs a weight above 0"
            )
        return [
            QueryPart(name, v, -options.weight(name) if name == "negative" else options.weight(name))
            for name, v in vectors.items()
            if options.weight(name) != 0
        ]

    def embed_video(
        self, path: Path, start: float | None = None, end: float | None = None, state: Snapshot | None = None
    ) -> dict[str, np.ndarray]:
        """Query clip -> {"video": VideoMAE vector, "appearance": image-text vector (if indexed)}.

        Cut into windows like a library video; several windows' unit vectors are averaged and
        re-normalised (the usual clip-to-video pooling), so hits match the query as a whole. A range
        holding more than MAX_QUERY_WINDOWS windows is represented by that many, spread evenly over it
        (the first ones when its length is unknown); past QUERY_VIDEO_SECONDS the query is refused.
        """
        state = state or self.snapshot
        towers = state.towers
        names = [VIDEO_SET] + ([IMAGE_SET] if IMAGE_SET in state.indexes else [])
        deadline = time.monotonic() + QUERY_VIDEO_SECONDS
        try:
            info = probe(Path(path))
            decoder = towers.clip_decoder(Path(path), info, names, (start, end), MAX_QUERY_WINDOWS, deadline)
            per_window = []
            for clip in decoder.clips():
                per_window.append(towers.embed(names, stack_by_size([clip])))
                if time.monotonic() > deadline:
                    raise DecodeTimeout("embedding stopped at its time limit")
        except DecodeTimeout as exc:
            raise QueryError(
                f"query video {path}: {exc} ({QUERY_VIDEO_SECONDS:g} s); give a shorter range with start/end"
            ) from exc
        except ProbeError as exc:
            raise QueryError(f"query video {path}: {exc}") from exc
        if decoder.summary.note:
            log.warning("query video %s: embedded %s", path, decoder.summary.note)
        if not per_window:
            where = f" between {start} s and {end} s" if start is not None or end is not None else ""
            raise QueryError(f"query video {path}: no frames{where}")
        part_of = {VIDEO_SET: "video", IMAGE_SET: "appearance"}
        return {part_of[name]: _unit(np.concatenate([w[name] for w in per_window]).mean(axis=0)) for name in names}

    def embed_image(self, path: Path, state: Snapshot | None = None) -> np.ndarray:
        state = state or self.snapshot
        tower = _image_text_tower(state, "image")
        try:
            image = read_image(Path(path), state.towers.input_size(IMAGE_SET))
        except ProbeError as exc:
            raise QueryError(f"query image {path}: {exc}") from exc
        return tower.encode_images(image[None])[0]

    def _clip_vectors(self, clip_id: int, state: Snapshot) -> dict[str, np.ndarray]:
        found = {}
        for part, name in (("video", VIDEO_SET), ("appearance", IMAGE_SET)):
            if name in state.indexes:
                vector = self.catalog.clip_vector(state.indexes[name].vset.id, clip_id)
                if vector is not None:
                    found[part] = vector
        if "video" not in found:
            raise QueryError(f"no clip with id {clip_id} in this index")
        return found

    def rank(
        self, parts: list[QueryPart], allowed: np.ndarray | None, k: int, state: Snapshot | None = None
    ) -> list[tuple[ScoredClip, dict[str, float]]]:
        """Candidate clips with their fused score, best first, and each part's raw cosine."""
        indexes = (state or self.snapshot).indexes
        per_part = max(200, CANDIDATES_PER_K * k)
        positive = [p for p in parts if p.weight > 0]
        if not positive:
            raise QueryError("a negative text needs something to search for (text, image, video or clip)")
        candidates = np.unique(
            np.concatenate([indexes[PART_SETS[p.name]].search(p.vector, per_part, allowed)[1] for p in positive])
        )
        for p in parts:  # a clip must have a vector in every tower the query uses
            candidates = candidates[np.isin(candidates, indexes[PART_SETS[p.name]].ids)]
        if len(candidates) == 0:
            return []
        fused = np.zeros(len(candidates))
        raw: dict[str, np.ndarray] = {}
        for p in parts:
            loaded = indexes[PART_SETS[p.name]]
            raw[p.name] = loaded.vectors(candidates) @ p.vector
            fused += p.weight * loaded.stats.zscores(p.vector, raw[p.name])
        fused /= sum(p.weight for p in positive)
        order = np.argsort(-fused, kind="stable")
        rows = self.catalog.clip_rows(candidates.tolist())
        return [
            (
                ScoredClip(int(candidates[i]), rows[c].video_id, rows[c].start, rows[c].end, float(fused[i])),
                {name: float(values[i]) for name, values in raw.items()},
            )
            for i in order
            if (c := int(candidates[i])) in rows
        ]

    def _moments(self, scored: list[tuple[ScoredClip, dict]], k: int, max_length: float) -> list[Moment]:
        raw_of = {c.clip_id: raw for c, raw in scored}
        groups = merge_moments([c for c, _ in scored], k, max_length)
        rows = self.catalog.clip_rows([best(g).clip_id for g in groups])
        moments = []
        for group in groups:
            top = best(group)
            row = rows.get(top.clip_id)
            if row is None:
                continue  # removed from the catalog since the index was built
            moments.append(
                Moment(
                    top.video_id,
                    row.path,
                    group[0].start,
                    max(c.end for c in group),
                    top.score,
                    top.clip_id,
                    tuple(c.clip_id for c in group),
                    raw_of[top.clip_id],
                    str(self.data.root / row.thumbnail) if row.thumbnail else None,
                    top.start,
                    top.end,
                    recorded=row.recorded.shifted(group[0].start) if row.recorded else None,
                )
            )
        return moments

    # -- filters --------------------------------------------------------------------------------
    def allowed_clip_ids(self, filters: Filters, state: Snapshot | None = None) -> np.ndarray | None:
        """Clip ids passing the filters (None = no filter), decided from the catalog."""
        if not filters.active():
            return None
        videos, clip_ids, clip_videos, clip_starts = (state or self.snapshot).filter_rows.get()
        glob = path_glob_matcher(filters.path_glob)  # compiled once per search, not once per path
        keep = [v.video_id for v in videos if _video_passes(v, filters, glob)]
        passing = np.isin(clip_videos, keep)
        if filters.recorded_after is not None or filters.recorded_before is not None:
            passing &= recorded_in_range(videos, clip_videos, clip_starts, filters)
        return clip_ids[passing]


def _image_text_tower(state: Snapshot, part: str) -> TextTower:
    if IMAGE_SET not in state.indexes:
        raise QueryError(
            f"{part} search needs image-text vectors (open_clip), and this index has none: run "
            "`python run.py index PATH --image-text-weights default` (or another source) to add them"
        )
    return state.towers.encoder(IMAGE_SET)


def path_glob_matcher(pattern: str | None) -> re.Pattern | None:
    """The fnmatch pattern as one compiled regex. `fnmatch.translate` makes `*` atomic, so matching is
    linear in the path; the pattern's length is bounded by Filters (translating is quadratic in it)."""
    return re.compile(fnmatch.translate(pattern), re.DOTALL) if pattern else None


def _video_passes(video, filters: Filters, glob: re.Pattern | None = None) -> bool:
    if filters.path_prefix and not any(in_folder(p, filters.path_prefix) for p in video.paths):
        return False
    if filters.path_glob and glob is None:
        glob = path_glob_matcher(filters.path_glob)
    if glob is not None and not any(glob.match(p) for p in video.paths):
        return False
    duration = video.duration or 0.0
    if filters.min_duration is not None and duration < filters.min_duration:
        return False
    if filters.max_duration is not None and duration > filters.max_duration:
        return False
    return not (
        filters.indexed_after is not None and (video.indexed_at is None or video.indexed_at < filters.indexed_after)
    )


EPOCH = datetime(1970, 1, 1)  # naive UTC, as the catalog's times


def recorded_in_range(videos, clip_videos: np.ndarray, clip_starts: np.ndarray, filters: Filters) -> np.ndarray:
    """Per clip: its wall-clock start (its video's recording start + the clip's start) is at or after
    `recorded_after` and before `recorded_before`. False for the clips of videos whose recording start is unknown."""
    start_of = np.full(int(clip_videos.max(initial=0)) + 1, np.nan)  # seconds since EPOCH, by video id
    for video in videos:
        if video.recorded_at is not None and video.video_id < len(start_of):
            start_of[video.video_id] = _epoch_seconds(video.recorded_at)
    wall = start_of[clip_videos] + clip_starts
    inside = ~np.isnan(wall)
    if filters.recorded_after is not None:
        inside &= wall >= _epoch_seconds(filters.recorded_after)
    if filters.recorded_before is not None:
        inside &= wall < _epoch_seconds(filters.recorded_before)
    return inside


def _epoch_seconds(at: datetime) -> float:
    return (at - EPOCH).total_seconds()


def by_recording_time(moments: list[Moment]) -> list[Moment]:
    """Moments in order of their wall-clock time; those of unknown time last, in their given (score) order."""
    known = sorted((m for m in moments if m.recorded), key=lambda m: m.recorded.at)
    return known + [m for m in moments if m.recorded is None]


def videos_by_recording_time(groups: list[VideoGroup]) -> list[VideoGroup]:
    """Each video's moments by time, then the videos by their earliest moment; videos of unknown time last."""
    for group in groups:
        group.moments = by_recording_time(group.moments)
    known = sorted((g for g in groups if g.moments[0].recorded), key=lambda g: g.moments[0].recorded.at)
    return known + [g for g in groups if g.moments[0].recorded is None]


def group_by_video(moments: list[Moment]) -> list[VideoGroup]:
    groups: dict[int, VideoGroup] = {}
    for moment in moments:  # best first, so a video's first moment is its best
        group = groups.setdefault(moment.video_id, VideoGroup(moment.video_id, moment.path, moment.score, []))
        if len(group.moments) < MOMENTS_PER_VIDEO:
            group.moments.append(moment)
    return list(groups.values())


def _unit(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)
