"""The Library view: indexed videos with their state, and one video's clip timeline."""

from __future__ import annotations

import os
from dataclasses import dataclass

from indexer.catalog import Catalog, IndexedPath, TimelineClip

__all__ = [
    "COLUMNS",
    "MAX_ROWS",
    "RECENT_COLUMNS",
    "IndexedPath",
    "LibraryRow",
    "TimelineClip",
    "indexed_paths",
    "library_rows",
    "recent_rows",
    "timeline",
]

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
    out = []
    for video in catalog.video_summaries(folder, limit):
        status = video.status
        if status == "indexed" and not os.path.exists(video.path):
            status = "missing"
        stamp = video.indexed_at.strftime("%Y-%m-%d %H:%M") if video.indexed_at else ""
        out.append(
            LibraryRow(video.video_id, video.path, status, video.clips, video.duration, stamp, video.error or "")
        )
    return out


RECENT_COLUMNS = ["indexed at (UTC)", "path", "clips", "duration s"]


def recent_rows(catalog: Catalog, limit: int = 10) -> list[list]:
    """The videos indexed most recently (by `index`, the Index tab or a watch), newest first."""
    return [
        [
            video.indexed_at.strftime("%Y-%m-%d %H:%M:%S") if video.indexed_at else "",
            video.path,
            video.clips,
            f"{video.duration:.1f}" if video.duration else "",
        ]
        for video in catalog.recently_indexed(limit)
    ]


def timeline(catalog: Catalog, video_id: int) -> list[TimelineClip]:
    return catalog.timeline(video_id)


def indexed_paths(catalog: Catalog, video_id: int) -> list[IndexedPath]:
    """The paths of an indexed video (none for a failed, pending or unknown id), by path order."""
    return catalog.indexed_paths(video_id)
