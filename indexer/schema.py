"""Catalog tables (SQLAlchemy ORM). The catalog is the source of truth; FAISS files derive from it.

A video is its content (fingerprint); paths are where that content currently lives, so a
move is a path update and a copy is a second path. Clips are the windows cut from a video.
Vectors are stored per (vector set, clip): a vector set is one encoder identity.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

SCHEMA_VERSION = 5  # 4: vector_sets.generation; 5: videos.recorded_at/recorded_source (catalog.py migrates 3, 4)


def new_generation() -> str:
    """A random id for a vector set's life: a rebuilt set restarts its version counter, never its id."""
    return secrets.token_hex(6)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Video(Base):
    __tablename__ = "videos"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)  # content hash
    size: Mapped[int] = mapped_column(BigInteger)  # bytes
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|indexed|failed
    error: Mapped[str | None] = mapped_column(Text)  # why it failed, or a warning when indexed
    codec: Mapped[str | None] = mapped_column(String(32))
    width: Mapped[int | None] = mapped_column(Integer)  # display width
    height: Mapped[int | None] = mapped_column(Integer)
    fps: Mapped[float | None] = mapped_column(Float)
    duration: Mapped[float | None] = mapped_column(Float)  # seconds, from decoding when indexed
    frames: Mapped[int | None] = mapped_column(Integer)  # frames decoded
    indexed_at: Mapped[datetime | None] = mapped_column()
    recorded_at: Mapped[datetime | None] = mapped_column()  # recording start, naive UTC (indexer/recorded.py)
    # "metadata" | "filename" (where recorded_at came from), "unknown" (looked, found none), or None: not looked
    # yet (a video indexed before schema 5; the next index run reads its tags and name).
    recorded_source: Mapped[str | None] = mapped_column(String(16))

    paths: Mapped[list[VideoPath]] = relationship(back_populates="video", cascade="all, delete-orphan")


class VideoPath(Base):
    __tablename__ = "paths"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(Text, unique=True)  # absolute, as scanned
    root: Mapped[str] = mapped_column(Text)  # the root it was found under
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)

    video: Mapped[Video] = relationship(back_populates="paths")


class Clip(Base):
    __tablename__ = "clips"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # also the FAISS id
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"))
    ordinal: Mapped[int] = mapped_column(Integer)  # window number within the video
    start: Mapped[float] = mapped_column(Float)  # seconds
    end: Mapped[float] = mapped_column(Float)  # seconds
    thumbnail: Mapped[str | None] = mapped_column(Text)  # JPEG path relative to the data dir

    # AUTOINCREMENT: a deleted clip's id is never reused, so an index file built before the
    # deletion can never point at a different clip.
    __table_args__ = (Index("ix_clips_video", "video_id", "ordinal", unique=True), {"sqlite_autoincrement": True})


class VectorSet(Base):
    __tablename__ = "vector_sets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)  # "video" (VideoMAE v2), "image" (image-text, open_clip)
    key: Mapped[str] = mapped_column(String(32))  # hash of `identity`
    identity: Mapped[str] = mapped_column(Text)  # JSON: encoder, weights checksum, sampling
    dim: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(BigInteger, default=0)  # bumped by every vector change
    # (generation, version) never repeats: `--rebuild` or a replaced catalog gets a new generation,
    # so an index file or a server's in-memory index of the old set can never pass for the new one.
    generation: Mapped[str] = mapped_column(String(32), default=new_generation)


class Vector(Base):
    __tablename__ = "vectors"

    set_id: Mapped[int] = mapped_column(ForeignKey("vector_sets.id", ondelete="CASCADE"), primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)  # float32 little-endian, L2-normalised

    # A deleted clip's vectors cascade by clip id, which the primary key (set, clip) cannot find alone.
    __table_args__ = (Index("ix_vectors_clip", "clip_id"),)


class IndexRun(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="running")  # running|done|failed|cancelled|interrupted
    roots: Mapped[str] = mapped_column(Text)  # JSON list
    report: Mapped[str | None] = mapped_column(Text)  # JSON IndexReport


class Meta(Base):
    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
