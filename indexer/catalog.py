"""The catalog: every read and write of indexed state, through SQLAlchemy.

Default backend is a SQLite file in the data dir; PostgreSQL (`postgresql+psycopg://...`) is a
setting: how a URL is opened lives in indexer/engine.py, the schema in indexer/migrations (Alembic),
this module only queries. Each public write
is one transaction: a video's clips and vectors land together or not at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from sqlalchemy import delete, event, func, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from indexer import migrations
from indexer.catalog_errors import CatalogBackendError, CatalogDamaged, CatalogError, DataDirError
from indexer.engine import FileIdentity, companions_kept, describe_url, file_identity, open_engine
from indexer.lock import AdvisoryLock, IndexLock, RunLock
from indexer.recorded import Recorded
from indexer.records import ClipWindow, Failure, ScannedFile, VideoInfo, folder_prefix
from indexer.schema import (
    SCHEMA_VERSION,
    Clip,
    IndexRun,
    Meta,
    Vector,
    VectorSet,
    Video,
    VideoPath,
    new_generation,
    utcnow,
)
from indexer.set_roles import new_name, old_name, parse_set_name

__all__ = [
    "Catalog",
    "CatalogBackendError",
    "CatalogDamaged",
    "CatalogError",
    "ClipRow",
    "ClipThumbnail",
    "DataDirError",
    "FileIdentity",
    "IdentityMismatch",
    "IncompleteSet",
    "IndexedPath",
    "KnownPath",
    "NewSetInProgress",
    "TimelineClip",
    "VectorSetInfo",
    "VideoFiles",
    "VideoRow",
    "VideoSummary",
    "identity_key",
    "sqlite_url",
]


@dataclass(frozen=True)
class KnownPath:
    path: str
    video_id: int
    size: int
    mtime_ns: int
    fingerprint: str
    status: str
    error: str | None


@dataclass(frozen=True)
class VectorSetInfo:
    id: int
    name: str
    key: str
    identity: dict
    dim: int
    version: int
    generation: str = ""  # random per set: (generation, version) never repeats, even after --rebuild

    def same_set(self, other: VectorSetInfo) -> bool:
        """Whether `other` is this set at some version (vs a rebuilt or replaced one)."""
        return (self.id, self.name, self.key, self.generation) == (other.id, other.name, other.key, other.generation)


@dataclass(frozen=True)
class ClipRow:
    clip_id: int
    video_id: int
    path: str
    start: float
    end: float
    thumbnail: str | None  # relative to the data dir
    recorded: Recorded | None = None  # the video's recording start, when known


@dataclass(frozen=True)
class VideoRow:
    """What search filters look at, per indexed video."""

    video_id: int
    paths: tuple[str, ...]
    duration: float | None
    indexed_at: datetime | None
    recorded_at: datetime | None = None  # recording start, naive UTC


@dataclass(frozen=True)
class VideoSummary:
    """One video as the Library view lists it."""

    video_id: int
    path: str  # its first path, by path order
    status: str  # indexed | failed | pending
    clips: int
    duration: float | None
    indexed_at: datetime | None
    error: str | None


@dataclass(frozen=True)
class TimelineClip:
    clip_id: int
    start: float
    end: float
    thumbnail: str | None  # relative to the data dir


@dataclass(frozen=True)
class IndexedPath:
    path: str
    size: int
    mtime_ns: int  # as scanned: a file changed since then is not the file the catalog indexed


@dataclass(frozen=True)
class ClipThumbnail:
    video_id: int
    ordinal: int
    thumbnail: str | None  # relative to the data dir; None when it was never made


@dataclass(frozen=True)
class VideoFiles:
    fingerprint: str
    paths: tuple[str, ...]  # every path, existing or not, in the order they were recorded


def _summaries():
    """One VideoSummary row per video (its first path, its clip count), for the Library and Recently indexed."""
    clip_counts = select(Clip.video_id, func.count().label("n")).group_by(Clip.video_id).subquery()
    return (
        select(
            Video.id,
            func.min(VideoPath.path),
            Video.status,
            func.coalesce(clip_counts.c.n, 0),
            Video.duration,
            Video.indexed_at,
            Video.error,
        )
        .join(VideoPath)
        .outerjoin(clip_counts, clip_counts.c.video_id == Video.id)
        .group_by(Video.id, clip_counts.c.n)
    )


def identity_key(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


class Catalog:
    """Cheap to construct; `open()` connects and creates the schema."""

    def __init__(self, url: str):
        self.url = url
        self.read_only = False  # decided by open()
        self.read_only_reason = ""
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None

    def open(self) -> Catalog:
        """Connect; create or upgrade the schema if needed (Alembic, indexer/migrations). A SQLite file
        that cannot be written (read-only file system or permissions, full disk) is opened read-only,
        so searching still works."""
        engine, self.read_only_reason = open_engine(self.url, migrations.needs_upgrade, migrations.upgrade)
        self.read_only = bool(self.read_only_reason)
        self._engine, self._sessions = engine, sessionmaker(engine, expire_on_commit=False)
        event.listen(self._sessions, "before_commit", _apply_bumps)  # one version step per commit
        event.listen(self._sessions, "after_rollback", lambda s: s.info.pop("bumped_sets", None))
        self._check_schema_version()
        return self

    def _where(self) -> str:
        return describe_url(self.url)

    @property
    def is_open(self) -> bool:
        return self._engine is not None

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def file_identity(self) -> FileIdentity | None:
        """Which files this catalog is, by (st_dev, st_ino); None for a server database."""
        return file_identity(self.url)

    def close_stale(self) -> None:
        """Drop every connection, for when the files under them were replaced; `open()` connects again.
        The live -wal/-shm files that now carry the catalog's names survive the close."""
        with companions_kept(self.url):
            self.close()
        self._engine = self._sessions = None
        self.read_only, self.read_only_reason = False, ""

    def session(self) -> Session:
        if self._sessions is None:
            raise CatalogError("catalog is not open: call open() first")
        return self._sessions()

    def _check_schema_version(self) -> None:
        """Refuse a catalog this release cannot read: not Tubelet's, damaged, newer, or older and read-only
        (`open` upgrades a writable one, indexer/migrations)."""
        with self.session() as s:
            stored = migrations.stored_schema_version(s.connection())
        if stored is None:
            raise CatalogError(f"{self._where()} is read-only and holds no Tubelet catalog")
        if not stored.isdigit():
            raise CatalogDamaged(self._where(), f"its schema version is {stored!r}")
        version = int(stored)
        if version < SCHEMA_VERSION and self.read_only:
            raise CatalogError(
                f"catalog {self._where()} has schema {version} and is read-only; open it once with write "
                f"access (e.g. `run.py status`) to upgrade it to schema {SCHEMA_VERSION}"
            )
        if version != SCHEMA_VERSION:
            raise CatalogError(
                f"catalog {self._where()} has schema {version}; this Tubelet reads schema {SCHEMA_VERSION}"
            )

    def run_lock(self, lock_file: Path) -> RunLock:
        """The one-index-run-at-a-time lock: an advisory lock in a PostgreSQL catalog (runs on other
        machines are excluded too), else the file lock `lock_file` beside the data."""
        if self._engine is None:
            raise CatalogError("catalog is not open: call open() first")
        if self._engine.dialect.name == "postgresql":
            return AdvisoryLock(self._engine, self._where())
        return IndexLock(lock_file)

    def get_meta(self, key: str) -> str | None:
        with self.session() as s:
            row = s.get(Meta, key)
            return None if row is None else row.value

    def set_meta(self, key: str, value: str) -> None:
        with self.session() as s, s.begin():
            s.merge(Meta(key=key, value=value))

    # -- vector sets ----------------------------------------------------------------------------
    def vector_set(self, name: str) -> VectorSetInfo | None:
        with self.session() as s:
            row = s.scalar(select(VectorSet).where(VectorSet.name == name))
            return _set_info(row) if row else None

    def ensure_vector_set(self, name: str, identity: dict, dim: int) -> VectorSetInfo:
        """The set for `identity`; a different identity under the same name is refused."""
        key = identity_key(identity)
        with self.session() as s, s.begin():
            row = s.scalar(select(VectorSet).where(VectorSet.name == name))
            if row is None:
                row = VectorSet(
                    name=name,
                    key=key,
                    identity=json.dumps(identity, sort_keys=True),
                    dim=dim,
                    version=0,
                    generation=new_generation(),
                )
                s.add(row)
                s.flush()
            elif row.key != key:
                raise IdentityMismatch(name, json.loads(row.identity), identity)
            return _set_info(row)

    def vector_sets(self) -> list[VectorSetInfo]:
        """Every vector set, whatever its role (indexer/set_roles.py), by id."""
        with self.session() as s:
            return [_set_info(row) for row in s.scalars(select(VectorSet).order_by(VectorSet.id))]

    def start_new_set(self, tower: str, identity: dict, dim: int) -> VectorSetInfo:
        """The set being built beside `tower`'s active one for `identity`, in one transaction: the unfinished
        one when it has this identity, else an old set of this identity (revived: its vectors are still
        right), else an empty one. An unfinished set of another identity is refused: its vectors are
        dropped only on request (`run.py drop-set new`)."""
        key = identity_key(identity)
        with self.session() as s, s.begin():
            building = s.scalar(select(VectorSet).where(VectorSet.name == new_name(tower)))
            if building is not None and building.key == key:
                return _set_info(building)
            if building is not None:
                raise NewSetInProgress(_set_info(building), _clips_lacking(s, building.id))
            row = next((r for r in self._old_rows(s, tower) if r.key == key), None)
            if row is None:
                row = VectorSet(key=key, identity=json.dumps(identity, sort_keys=True), dim=dim, version=0)
                row.generation = new_generation()
                s.add(row)
            row.name = new_name(tower)
            s.flush()
            return _set_info(row)

    def activate_new_set(self, tower: str) -> VectorSetInfo:
        """Make `tower`'s new set the active one, in one transaction: the active set becomes an old one
        (its vectors kept until dropped), so a reader sees either set whole, never a mix. Refused while
        a clip has no vector in the new set."""
        with self.session() as s, s.begin():
            new = s.scalar(select(VectorSet).where(VectorSet.name == new_name(tower)))
            if new is None:
                raise CatalogError(f"no new {tower} vector set is being built: `run.py status` shows the sets")
            lacking = _clips_lacking(s, new.id)
            if lacking:
                raise IncompleteSet(tower, lacking, s.scalar(select(func.count()).select_from(Clip)))
            active = s.scalar(select(VectorSet).where(VectorSet.name == tower))
            if active is not None:
                active.name = old_name(tower, active.id)
                s.flush()  # the tower's name is free before the new set takes it
            new.name = tower
            s.flush()
            return _set_info(new)

    def drop_sets(self, names: list[str]) -> int:
        """Delete sets that are not active, with their vectors, in one transaction; the vectors deleted."""
        if any(parse_set_name(name).role == "active" for name in names):
            raise CatalogError("an active vector set is never dropped: `index --rebuild` replaces it")
        with self.session() as s, s.begin():
            ids = s.scalars(select(VectorSet.id).where(VectorSet.name.in_(names))).all()
            count = s.scalar(select(func.count()).select_from(Vector).where(Vector.set_id.in_(ids)))
            _delete_sets(s, ids)
            return count

    @staticmethod
    def _old_rows(s: Session, tower: str) -> list[VectorSet]:
        rows = s.scalars(select(VectorSet).where(VectorSet.name.startswith(f"{tower}.old.", autoescape=True)))
        return list(rows)

    def reset_embeddings(self) -> None:
        """Forget every clip and vector (for re-embedding with another encoder); keep videos."""
        with self.session() as s, s.begin():
            s.execute(delete(Vector))
            s.execute(delete(Clip))
            s.execute(delete(VectorSet))
            s.execute(update(Video).where(Video.status != "failed").values(status="pending"))

    # -- paths and videos -----------------------------------------------------------------------
    def known_paths(self) -> dict[str, KnownPath]:
        query = select(
            VideoPath.path,
            VideoPath.video_id,
            VideoPath.size,
            VideoPath.mtime_ns,
            Video.fingerprint,
            Video.status,
            Video.error,
        ).join(Video)
        with self.session() as s:
            return {row.path: KnownPath(*row) for row in s.execute(query)}

    def videos_by_fingerprint(self) -> dict[str, tuple[int, str]]:
        with self.session() as s:
            rows = s.execute(select(Video.fingerprint, Video.id, Video.status))
            return {fp: (vid, status) for fp, vid, status in rows}

    def touch_paths(self, files: list[ScannedFile]) -> None:
        """Same content, new size/mtime metadata (e.g. a `touch`)."""
        with self.session() as s, s.begin():
            for f in files:
                s.execute(
                    update(VideoPath)
                    .where(VideoPath.path == str(f.path))
                    .values(size=f.size, mtime_ns=f.mtime_ns, seen_at=utcnow())
                )

    def add_paths(self, pairs: list[tuple[ScannedFile, int]], replacing: list[str]) -> None:
        """Point files at already known videos (moves and copies); drop `replacing` paths."""
        with self.session() as s, s.begin():
            if replacing:
                s.execute(delete(VideoPath).where(VideoPath.path.in_(replacing)))
            for f, video_id in pairs:
                _upsert_path(s, f, video_id)

    def remove_paths(self, paths: list[str]) -> int:
        """Forget paths; videos left without any path are deleted with their clips and vectors."""
        with self.session() as s, s.begin():
            for chunk in _chunks(paths, 500):
                s.execute(delete(VideoPath).where(VideoPath.path.in_(chunk)))
            return _delete_orphans(s)

    def record_failure(self, f: ScannedFile, fingerprint: str, error: str) -> None:
        with self.session() as s, s.begin():
            video = _video_for(s, fingerprint, f.size)
            _drop_clips(s, video.id)
            video.status, video.error, video.indexed_at = "failed", error, utcnow()
            _upsert_path(s, f, video.id)
            _delete_orphans(s)

    def store_video(
        self,
        f: ScannedFile,
        fingerprint: str,
        info: VideoInfo,
        stats: dict,
        windows: list[ClipWindow],
        vectors: dict[int, np.ndarray],
        thumbnails: list[str | None] | None = None,
    ) -> int:
        """Commit one video's clips, thumbnails and vectors (by set id) in one transaction."""
        with self.session() as s, s.begin():
            video = _video_for(s, fingerprint, f.size)
            _drop_clips(s, video.id)
            for key, value in _video_fields(info, stats).items():
                setattr(video, key, value)
            video.status, video.indexed_at = "indexed", utcnow()
            thumbnails = thumbnails or [None] * len(windows)
            rows = [
                {"video_id": video.id, "ordinal": w.ordinal, "start": w.start, "end": w.end, "thumbnail": thumb}
                for w, thumb in zip(windows, thumbnails)
            ]
            clip_ids = list(s.scalars(insert(Clip).returning(Clip.id, sort_by_parameter_order=True), rows))
            for set_id, matrix in vectors.items():
                _insert_vectors(s, set_id, clip_ids, matrix)
            _upsert_path(s, f, video.id)
            _delete_orphans(s)
            return len(clip_ids)

    def add_vectors(self, video_id: int, set_id: int, by_ordinal: dict[int, np.ndarray]) -> int:
        """Vectors of another set for a video's existing clips (matched by window number)."""
        with self.session() as s, s.begin():
            clip_ids = dict(s.execute(select(Clip.ordinal, Clip.id).where(Clip.video_id == video_id)).all())
            have = set(
                s.scalars(
                    select(Vector.clip_id).where(Vector.set_id == set_id, Vector.clip_id.in_(list(clip_ids.values())))
                )
            )
            todo = [(clip_ids[o], v) for o, v in by_ordinal.items() if o in clip_ids and clip_ids[o] not in have]
            if todo:
                _insert_vectors(s, set_id, [c for c, _ in todo], np.stack([v for _, v in todo]))
            return len(todo)

    def videos_missing_vectors(self, set_id: int) -> list[tuple[int, str, ScannedFile]]:
        """Indexed videos with clips that have no vector in `set_id`: (id, fingerprint, a path)."""
        with_vector = select(Vector.clip_id).where(Vector.set_id == set_id)
        lacking = select(Clip.video_id).where(Clip.id.not_in(with_vector)).distinct()
        query = (
            select(Video.id, Video.fingerprint, VideoPath.path, VideoPath.size, VideoPath.mtime_ns, VideoPath.root)
            .join(VideoPath)
            .where(Video.id.in_(lacking), Video.status == "indexed")
            .order_by(Video.id, VideoPath.path)
        )
        found: dict[int, tuple[int, str, ScannedFile]] = {}
        with self.session() as s:
            for vid, fp, path, size, mtime, root in s.execute(query):
                found.setdefault(vid, (vid, fp, ScannedFile(Path(path), size, mtime, Path(root))))
        return list(found.values())

    def videos_without_recorded(self) -> list[tuple[int, str]]:
        """Indexed videos whose recording start was never looked for (indexed before schema 5): (id, a path)."""
        query = (
            select(Video.id, func.min(VideoPath.path))
            .join(VideoPath)
            .where(Video.status == "indexed", Video.recorded_source.is_(None))
            .group_by(Video.id)
            .order_by(Video.id)
        )
        with self.session() as s:
            return [(vid, path) for vid, path in s.execute(query)]

    def set_recorded(self, found: dict[int, Recorded | None]) -> None:
        """Store recording starts by video id (None: looked, unknown), in one transaction."""
        with self.session() as s, s.begin():
            for video_id, recorded in found.items():
                s.execute(update(Video).where(Video.id == video_id).values(**_recorded_fields(recorded)))

    def set_thumbnail(self, video_id: int, ordinal: int, relative: str) -> None:
        with self.session() as s, s.begin():
            s.execute(update(Clip).where(Clip.video_id == video_id, Clip.ordinal == ordinal).values(thumbnail=relative))

    def live_fingerprints(self) -> set[str]:
        with self.session() as s:
            return set(s.scalars(select(Video.fingerprint)))

    # -- reading --------------------------------------------------------------------------------
    def load_vectors(self, set_id: int, dim: int, only: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of a set (all, or the clip ids in `only`): ids (n,) int64, matrix (n, dim) float32."""
        id_chunks, vector_chunks = [], []
        with self.session() as s:
            for query in _vector_queries(set_id, only):
                for rows in s.execute(query.execution_options(yield_per=20000)).partitions():
                    id_chunks.append(np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))
                    vector_chunks.append(np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4"))
        if not id_chunks:
            return np.empty(0, np.int64), np.empty((0, dim), np.float32)
        return np.concatenate(id_chunks), np.concatenate(vector_chunks).reshape(-1, dim)

    def iter_vectors(self, set_id: int, dim: int, chunk: int = 20000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All vectors of a set in clip-id order, `chunk` at a time: (ids (n,) int64, matrix (n, dim) float32).
        Holds one chunk in memory, for indexes larger than RAM."""
        with self.session() as s:
            for rows in s.execute(_vector_queries(set_id, None)[0].execution_options(yield_per=chunk)).partitions():
                ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                yield ids, np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(-1, dim)

    def vector_ids(self, set_id: int) -> np.ndarray:
        """Sorted clip ids that have a vector in the set."""
        with self.session() as s:
            rows = s.scalars(select(Vector.clip_id).where(Vector.set_id == set_id).order_by(Vector.clip_id)).all()
        return np.array(rows, dtype=np.int64)

    def vector_count(self, set_id: int) -> int:
        with self.session() as s:
            return s.scalar(select(func.count()).select_from(Vector).where(Vector.set_id == set_id))

    def clip_vector(self, set_id: int, clip_id: int) -> np.ndarray | None:
        with self.session() as s:
            data = s.scalar(select(Vector.data).where(Vector.set_id == set_id, Vector.clip_id == clip_id))
        return None if data is None else np.frombuffer(data, dtype=np.float32).copy()

    def clip_rows(self, clip_ids: list[int]) -> dict[int, ClipRow]:
        """Clips by id with one current path of their video (the first by path order)."""
        first_path = (
            select(VideoPath.video_id, func.min(VideoPath.path).label("path")).group_by(VideoPath.video_id).subquery()
        )
        query = (
            select(
                Clip.id,
                Clip.video_id,
                first_path.c.path,
                Clip.start,
                Clip.end,
                Clip.thumbnail,
                Video.recorded_at,
                Video.recorded_source,
            )
            .join(first_path, first_path.c.video_id == Clip.video_id)
            .join(Video, Video.id == Clip.video_id)
            .where(Clip.id.in_(clip_ids))
        )
        with self.session() as s:
            return {row[0]: ClipRow(*row[:6], _recorded(row[6], row[7])) for row in s.execute(query)}

    def video_rows(self) -> list[VideoRow]:
        query = (
            select(Video.id, Video.duration, Video.indexed_at, Video.recorded_at, VideoPath.path)
            .join(VideoPath)
            .where(Video.status == "indexed")
            .order_by(Video.id, VideoPath.path)
        )
        rows: dict[int, VideoRow] = {}
        with self.session() as s:
            for vid, duration, indexed_at, recorded_at, path in s.execute(query):
                row = rows.get(vid)
                paths = (row.paths if row else ()) + (path,)
                rows[vid] = VideoRow(vid, paths, duration, indexed_at, recorded_at)
        return list(rows.values())

    def clip_video_ids(self) -> tuple[np.ndarray, np.ndarray]:
        """(clip ids, their video ids) as int64 arrays, for turning video filters into clip ids."""
        ids, videos, _ = self.clip_times()
        return ids, videos

    def clip_times(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(clip ids, their video ids, their start seconds) as int64, int64 and float64 arrays, in one read: video
        filters and recording-time filters (video's recording start + clip start) become clip ids."""
        query = select(Clip.id, Clip.video_id, Clip.start).order_by(Clip.id)
        with self.session() as s:
            # Straight from the driver's cursor into one structured array: at 1M clips, making a Row per clip
            # and three lists of them took 2.3-3.8 s against 0.8-0.9 s (SQLite; the columns are plain
            # ints and floats on every backend, so no result processing is skipped).
            rows = np.fromiter(s.connection().execute(query).cursor, dtype=CLIP_TIMES)
        return rows["id"], rows["video"], rows["start"]

    def stats(self) -> dict:
        with self.session() as s:
            by_status = dict(s.execute(select(Video.status, func.count()).group_by(Video.status)).all())
            failures = [
                Failure(p, e or "")
                for p, e in s.execute(
                    select(VideoPath.path, Video.error)
                    .join(Video)
                    .where(Video.status == "failed")
                    .order_by(VideoPath.path)
                )
            ]
            return {
                "videos": by_status,
                "paths": s.scalar(select(func.count()).select_from(VideoPath)),
                "clips": s.scalar(select(func.count()).select_from(Clip)),
                "duration": s.scalar(select(func.sum(Video.duration)).where(Video.status == "indexed")) or 0.0,
                "failures": failures,
            }

    def video_summaries(self, folder: str | None = None, limit: int = 500) -> list[VideoSummary]:
        """Videos (first path of each) with a path under `folder` (whole components), by status then path."""
        query = _summaries().order_by(Video.status, func.min(VideoPath.path))
        if folder:
            under = VideoPath.path.startswith(folder_prefix(folder), autoescape=True)
            query = query.where(or_(under, VideoPath.path == folder.rstrip("/")))
        with self.session() as s:
            return [VideoSummary(*row) for row in s.execute(query.limit(limit))]

    def recently_indexed(self, limit: int = 10) -> list[VideoSummary]:
        """Indexed videos (first path of each), the most recently indexed first."""
        query = _summaries().where(Video.status == "indexed").order_by(Video.indexed_at.desc(), Video.id.desc())
        with self.session() as s:
            return [VideoSummary(*row) for row in s.execute(query.limit(limit))]

    def timeline(self, video_id: int) -> list[TimelineClip]:
        """A video's clips in window order."""
        query = select(Clip.id, Clip.start, Clip.end, Clip.thumbnail).where(Clip.video_id == video_id)
        with self.session() as s:
            return [TimelineClip(*row) for row in s.execute(query.order_by(Clip.ordinal))]

    def indexed_paths(self, video_id: int | None = None) -> list[IndexedPath]:
        """The paths of one indexed video, or of every indexed video (none of failed or pending ones)."""
        query = select(VideoPath.path, VideoPath.size, VideoPath.mtime_ns).join(Video).where(Video.status == "indexed")
        if video_id is not None:
            query = query.where(Video.id == video_id)
        with self.session() as s:
            return [IndexedPath(*row) for row in s.execute(query.order_by(VideoPath.path))]

    def clips_without_vector(self, set_id: int) -> int:
        with self.session() as s:
            return _clips_lacking(s, set_id)

    def clip_thumbnails(self) -> list[ClipThumbnail]:
        with self.session() as s:
            return [ClipThumbnail(*row) for row in s.execute(select(Clip.video_id, Clip.ordinal, Clip.thumbnail))]

    def video_files(self, video_id: int) -> VideoFiles | None:
        with self.session() as s:
            fingerprint = s.scalar(select(Video.fingerprint).where(Video.id == video_id))
            paths = s.scalars(select(VideoPath.path).where(VideoPath.video_id == video_id).order_by(VideoPath.id))
            return None if fingerprint is None else VideoFiles(fingerprint, tuple(paths))

    # -- runs -----------------------------------------------------------------------------------
    def start_run(self, roots: list[str]) -> int:
        with self.session() as s, s.begin():
            run = IndexRun(roots=json.dumps(roots))
            s.add(run)
            s.flush()
            return run.id

    def mark_interrupted_runs(self) -> int:
        with self.session() as s, s.begin():
            return s.execute(update(IndexRun).where(IndexRun.status == "running").values(status="interrupted")).rowcount

    def runs(self, limit: int = 20) -> list[dict]:
        with self.session() as s:
            rows = s.scalars(select(IndexRun).order_by(IndexRun.id.desc()).limit(limit)).all()
            return [
                {
                    "id": r.id,
                    "status": r.status,
                    "started_at": r.started_at.isoformat(timespec="seconds"),
                    "finished_at": r.finished_at.isoformat(timespec="seconds") if r.finished_at else None,
                    "roots": json.loads(r.roots),
                }
                for r in rows
            ]

    def last_runtime(self, vset: VectorSetInfo) -> str | None:
        """What ran the tower of vector set `vset` in the newest finished run that embedded into it, or None.
        Runs record it by set generation; runs from before that by set id (`set_runtimes`), and before that
        by the name the set had then."""
        with self.session() as s:
            rows = s.scalars(
                select(IndexRun.report).where(IndexRun.status.in_(("done", "cancelled"))).order_by(IndexRun.id.desc())
            )
            for report in rows:
                parsed = json.loads(report) if report else {}
                if "generation_runtimes" in parsed:
                    runtime = parsed["generation_runtimes"].get(vset.generation)
                elif "set_runtimes" in parsed:
                    runtime = parsed["set_runtimes"].get(str(vset.id))
                else:
                    runtime = parsed.get("runtimes", {}).get(vset.name)
                if runtime:
                    return runtime
        return None

    def finish_run(self, run_id: int, status: str, report: dict) -> None:
        with self.session() as s, s.begin():
            s.execute(
                update(IndexRun)
                .where(IndexRun.id == run_id)
                .values(status=status, finished_at=utcnow(), report=json.dumps(report))
            )


CLIP_TIMES = np.dtype([("id", np.int64), ("video", np.int64), ("start", np.float64)])  # Catalog.clip_times


class NewSetInProgress(CatalogError):
    def __init__(self, building: VectorSetInfo, lacking: int):
        super().__init__(
            f"a new {parse_set_name(building.name).tower} vector set is being built for {_describe(building.identity)} "
            f"({lacking} clips to go); finish it by indexing with that encoder, or abandon it (its vectors are "
            "deleted) with `run.py drop-set new`, then index with this one"
        )


class IncompleteSet(CatalogError):
    def __init__(self, tower: str, lacking: int, clips: int):
        self.lacking, self.clips = lacking, clips
        super().__init__(
            f"the new {tower} vector set covers {clips - lacking} of {clips} clips; searching it would miss "
            f"{lacking}: finish it with `run.py index PATH ...` (the same command resumes), then activate it"
        )


class IdentityMismatch(CatalogError):
    def __init__(self, name: str, stored: dict, requested: dict):
        self.stored, self.requested = stored, requested
        super().__init__(
            f"this data dir's {name!r} vectors were made with {_describe(stored)}, but "
            f"{_describe(requested)} was requested. Vectors from different encoders are never "
            "mixed: use the same --encoder/--weights/--window-frames/--frame-interval/--stride-frames"
            "/--change-threshold (or --every-window), "
            "another --data dir, or re-embed everything with `run.py index PATH --rebuild ...`."
        )


def _describe(identity: dict) -> str:
    sampling = identity.get("sampling", {})
    return (
        f"{identity.get('tower')} {identity.get('variant')} weights={identity.get('weights')} "
        f"(sha256 {str(identity.get('sha256'))[:12]}) sampling={sampling}"
    )


def _vector_queries(set_id: int, only: np.ndarray | None):
    base = select(Vector.clip_id, Vector.data).where(Vector.set_id == set_id).order_by(Vector.clip_id)
    if only is None:
        return [base]
    return [
        base.where(Vector.clip_id.in_(chunk.tolist()))
        for chunk in np.array_split(np.asarray(only), max(1, len(only) // 5000 + 1))
        if len(chunk)
    ]


def _set_info(row: VectorSet) -> VectorSetInfo:
    return VectorSetInfo(row.id, row.name, row.key, json.loads(row.identity), row.dim, row.version, row.generation)


def _video_for(s: Session, fingerprint: str, size: int) -> Video:
    video = s.scalar(select(Video).where(Video.fingerprint == fingerprint))
    if video is None:
        video = Video(fingerprint=fingerprint, size=size, status="pending")
        s.add(video)
        s.flush()
    return video


def _video_fields(info: VideoInfo, stats: dict) -> dict:
    return {
        "codec": info.codec,
        "width": info.width,
        "height": info.height,
        "fps": info.fps,
        "duration": stats.get("duration") or info.duration,
        "frames": stats.get("frames"),
        "error": stats.get("warning"),
        **_recorded_fields(info.recorded),
    }


def _recorded_fields(recorded: Recorded | None) -> dict:
    if recorded is None:
        return {"recorded_at": None, "recorded_source": "unknown"}
    return {"recorded_at": recorded.at, "recorded_source": recorded.source}


def _recorded(at: datetime | None, source: str | None) -> Recorded | None:
    return Recorded(at, source) if at is not None and source is not None else None


def _upsert_path(s: Session, f: ScannedFile, video_id: int) -> None:
    row = s.scalar(select(VideoPath).where(VideoPath.path == str(f.path)))
    if row is None:
        s.add(VideoPath(video_id=video_id, path=str(f.path), root=str(f.root), size=f.size, mtime_ns=f.mtime_ns))
    else:
        row.video_id, row.size, row.mtime_ns, row.seen_at = video_id, f.size, f.mtime_ns, utcnow()
    s.flush()


def _insert_vectors(s: Session, set_id: int, clip_ids: list[int], matrix: np.ndarray) -> None:
    matrix = np.ascontiguousarray(matrix, dtype="<f4")
    s.execute(
        insert(Vector),
        [{"set_id": set_id, "clip_id": cid, "data": row.tobytes()} for cid, row in zip(clip_ids, matrix)],
    )
    _bump(s, [set_id])


def _drop_clips(s: Session, video_id: int) -> None:
    clip_ids = s.scalars(select(Clip.id).where(Clip.video_id == video_id)).all()
    if not clip_ids:  # a new video: nothing to look for in the vectors
        return
    # Vectors by (set, clip), their primary key: a clip id alone has no index, and SQLite would scan every
    # vector for it (9.6 s per stored video at 1M clips, bench/catalog_ops.py).
    mine = Vector.set_id.in_(select(VectorSet.id)) & Vector.clip_id.in_(clip_ids)
    sets = s.scalars(select(Vector.set_id).where(mine).distinct()).all()
    s.execute(delete(Vector).where(mine))
    s.execute(delete(Clip).where(Clip.video_id == video_id))
    _bump(s, sets)


def _delete_orphans(s: Session) -> int:
    """Delete videos that no path points at any more, with their clips and vectors."""
    orphans = s.scalars(select(Video.id).where(~Video.paths.any())).all()
    for video_id in orphans:
        _drop_clips(s, video_id)
    if orphans:
        s.execute(delete(Video).where(Video.id.in_(orphans)))
    return len(orphans)


def _clips_lacking(s: Session, set_id: int) -> int:
    with_vector = select(Vector.clip_id).where(Vector.set_id == set_id)
    return s.scalar(select(func.count()).select_from(Clip).where(Clip.id.not_in(with_vector)))


def _delete_sets(s: Session, set_ids) -> None:
    if set_ids:
        s.execute(delete(Vector).where(Vector.set_id.in_(list(set_ids))))
        s.execute(delete(VectorSet).where(VectorSet.id.in_(list(set_ids))))


def _bump(s: Session, set_ids) -> None:
    """Mark sets whose vectors this transaction changes; their version steps once, at commit (`_apply_bumps`),
    however many videos or vectors the transaction holds."""
    s.info.setdefault("bumped_sets", set()).update(set_ids)


def _apply_bumps(s: Session) -> None:
    set_ids = s.info.pop("bumped_sets", None)
    if set_ids:
        s.execute(update(VectorSet).where(VectorSet.id.in_(sorted(set_ids))).values(version=VectorSet.version + 1))


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"
