"""The Library view: indexed videos with their state, and one video's clip timeline."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy import func, select

from indexer.catalog import Catalog
from indexer.schema import Clip, Video, VideoPath

MAX_ROWS = 500


@dataclass(frozen=True)
class LibraryRow:
    video_id: int
    path: str
    status: str  # indexed | failed | missing (indexed, but no path exists on disk any more)
    clips: int
    duration: float | None
    indexed_at: str
    error: str

    def as_list(self) -> list:
        duration = f"{self.duration:.1f}" if self.duration else ""
        return [self.video_id, self.path, self.status, self.clips, duration, self.indexed_at, self.error]


COLUMNS = ["id", "path", "status", "clips", "duration s", "indexed at (UTC)", "error / warning"]


def library_rows(catalog: Catalog, folder: str | None = None, limit: int = MAX_ROWS) -> list[LibraryRow]:
    """Videos (first path of each) whose path starts with `folder`, failures first."""
    clip_counts = select(Clip.video_id, func.count().label("n")).group_by(Clip.video_id).subquery()
    query = (select(Video.id, func.min(VideoPath.path), Video.status, func.coalesce(clip_counts.c.n, 0),
                    Video.duration, Video.indexed_at, Video.error)
             .join(VideoPath).outerjoin(clip_counts, clip_counts.c.video_id == Video.id)
             .group_by(Video.id, clip_counts.c.n).order_by(Video.status, func.min(VideoPath.path)))
    if folder:
        query = query.where(VideoPath.path.startswith(folder, autoescape=True))
    with catalog.session() as s:
        rows = s.execute(query.limit(limit)).all()
    out = []
    for vid, path, status, clips, duration, indexed_at, error in rows:
        if status == "indexed" and not os.path.exists(path):
            status = "missing"
        stamp = indexed_at.strftime("%Y-%m-%d %H:%M") if indexed_at else ""
        out.append(LibraryRow(vid, path, status, clips, duration, stamp, error or ""))
    return out


@dataclass(frozen=True)
class TimelineClip:
    clip_id: int
    start: float
    end: float
    thumbnail: str | None  # relative to the data dir


def timeline(catalog: Catalog, video_id: int) -> list[TimelineClip]:
    with catalog.session() as s:
        rows = s.execute(select(Clip.id, Clip.start, Clip.end, Clip.thumbnail)
                         .where(Clip.video_id == video_id).order_by(Clip.ordinal)).all()
    return [TimelineClip(*row) for row in rows]


@dataclass(frozen=True)
class IndexedPath:
    path: str
    size: int
    mtime_ns: int  # as scanned: a file changed since then is not the file the catalog indexed


def indexed_paths(catalog: Catalog, video_id: int) -> list[IndexedPath]:
    """The paths of an indexed video (none for a failed, pending or unknown id), by path order."""
    with catalog.session() as s:
        rows = s.execute(select(VideoPath.path, VideoPath.size, VideoPath.mtime_ns).join(Video)
                         .where(Video.id == video_id, Video.status == "indexed").order_by(VideoPath.path)).all()
    return [IndexedPath(*row) for row in rows]
