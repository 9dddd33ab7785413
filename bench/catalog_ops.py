"""Catalog operations at 1M clips, SQLite vs PostgreSQL, in one run (issue 16 item 6, third bullet).

Both catalogs are bulk-filled with the same synthetic library (N videos of `--clips-per-video` clips, one
vector of `--dim` float32 per clip), then each operation runs `--repeat` times, the two backends
interleaved, and the median is reported:
- store: `Catalog.store_video` of a new video (its clips and vectors, one transaction), as an index run
  commits each video;
- known paths: `Catalog.known_paths()`, the scan's first read of every index run;
- filter selection: the rows a filtered search reads once per snapshot (`FilterRows.get()`: every indexed
  video's row and every clip's video id and start);
- store it again and remove it: a changed video (its old clips and vectors dropped, in the same
  transaction) and a deleted one (`Catalog.remove_paths`).

PostgreSQL is a throwaway server started here (tests/pg_server.py) with fsync and synchronous commit on,
as SQLite's synchronous=FULL: a commit is durable on both. Or pass `--postgres-url`.

    .venv/bin/python bench/catalog_ops.py [--clips 1000000] [--dim 384] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from app.search import FilterRows  # noqa: E402
from bench.machine import describe_machine  # noqa: E402
from indexer.catalog import Catalog  # noqa: E402
from indexer.records import ClipWindow, ScannedFile, VideoInfo  # noqa: E402

INFO = VideoInfo(0, "h264", 320, 240, 30.0, 8.0, 0, "mov,mp4")
IDENTITY = {"tower": "videomae2", "variant": "bench", "weights": "random:0", "sha256": "0" * 64, "sampling": {}}


def fill(catalog: Catalog, videos: int, per_video: int, dim: int) -> float:
    """Bulk-load the library (not a Tubelet operation: plain inserts, COPY on PostgreSQL); seconds taken."""
    started = time.perf_counter()
    vset = catalog.ensure_vector_set("video", IDENTITY, dim)
    rng = np.random.default_rng(0)
    engine = catalog._engine
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "postgresql":
            _fill_postgres(cursor, vset.id, videos, per_video, dim, rng)
        else:
            _fill_sqlite(cursor, vset.id, videos, per_video, dim, rng)
        raw.commit()
    finally:
        raw.close()
    return time.perf_counter() - started


def _video_rows(videos: int):
    for v in range(1, videos + 1):
        yield (v, f"fp{v:08d}", 1000, "indexed", 8.0, "2026-12-02 00:00:00", "unknown")


def _path_rows(videos: int):
    for v in range(1, videos + 1):
        yield (v, v, f"/lib/{v // 1000:03d}/video{v:08d}.mp4", "/lib", 1000, v, "2026-12-02 00:00:00")


def _clip_rows(v: int, per_video: int):
    base = (v - 1) * per_video
    for i in range(per_video):
        yield (base + i + 1, v, i, 2.0 * i, 2.0 * i + 2)


def _vectors(rng, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim), dtype=np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype("<f4")


def _fill_sqlite(cursor, set_id: int, videos: int, per_video: int, dim: int, rng) -> None:
    cursor.executemany(
        "INSERT INTO videos (id, fingerprint, size, status, duration, indexed_at, recorded_source) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        _video_rows(videos),
    )
    cursor.executemany(
        "INSERT INTO paths (id, video_id, path, root, size, mtime_ns, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        _path_rows(videos),
    )
    for v in range(1, videos + 1):
        clips = list(_clip_rows(v, per_video))
        cursor.executemany('INSERT INTO clips (id, video_id, ordinal, start, "end") VALUES (?, ?, ?, ?, ?)', clips)
        vectors = _vectors(rng, per_video, dim)
        cursor.executemany(
            "INSERT INTO vectors (set_id, clip_id, data) VALUES (?, ?, ?)",
            ((set_id, c[0], row.tobytes()) for c, row in zip(clips, vectors)),
        )


def _fill_postgres(cursor, set_id: int, videos: int, per_video: int, dim: int, rng) -> None:
    with cursor.copy(
        "COPY videos (id, fingerprint, size, status, duration, indexed_at, recorded_source) FROM STDIN"
    ) as copy:
        for row in _video_rows(videos):
            copy.write_row(row)
    with cursor.copy("COPY paths (id, video_id, path, root, size, mtime_ns, seen_at) FROM STDIN") as copy:
        for row in _path_rows(videos):
            copy.write_row(row)
    with cursor.copy('COPY clips (id, video_id, ordinal, start, "end") FROM STDIN') as copy:
        for v in range(1, videos + 1):
            for row in _clip_rows(v, per_video):
                copy.write_row(row)
    with cursor.copy("COPY vectors (set_id, clip_id, data) FROM STDIN") as copy:
        for v in range(1, videos + 1):
            for i, row in enumerate(_vectors(rng, per_video, dim)):
                copy.write_row((set_id, (v - 1) * per_video + i + 1, row.tobytes()))
    # SERIAL sequences start after the copied ids, as they would after inserts
    for table in ("videos", "paths", "clips"):
        cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    cursor.execute("ANALYZE")


def new_path(n: int) -> str:
    return f"/new/video{n:06d}.mp4"


def store_one(catalog: Catalog, n: int, per_video: int, dim: int, rng) -> None:
    f = ScannedFile(Path(new_path(n)), 2000 + n, n, Path("/new"))
    windows = [ClipWindow(i, 2.0 * i, 2.0 * i + 2) for i in range(per_video)]
    vset = catalog.vector_set("video")
    catalog.store_video(
        f, f"new{n:06d}", INFO, {"duration": 2.0 * per_video}, windows, {vset.id: _vectors(rng, per_video, dim)}
    )


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=1_000_000)
    parser.add_argument("--clips-per-video", type=int, default=100)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgres-url", help="an empty PostgreSQL database (default: start a throwaway server)")
    args = parser.parse_args()
    print(describe_machine())
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    videos = args.clips // args.clips_per_video
    server = None
    if args.postgres_url is None:
        from pg_server import PgServer

        server = PgServer.start(durable=True)
    work = Path(tempfile.mkdtemp(prefix="tubelet-catalog-ops-"))
    urls = {"sqlite": f"sqlite:///{work / 'catalog.db'}", "postgresql": args.postgres_url or server.new_database()}
    try:
        catalogs = {name: Catalog(url).open() for name, url in urls.items()}
        for name, catalog in catalogs.items():
            seconds = fill(catalog, videos, args.clips_per_video, args.dim)
            clips = videos * args.clips_per_video
            print(f"{name}: bulk-filled {videos} videos, {clips} clips, {args.dim}-d vectors in {seconds:.0f} s")
        rng = np.random.default_rng(1)
        times: dict[tuple[str, str], list[float]] = {}
        for r in range(args.repeat):
            for name, catalog in catalogs.items():
                ops = {
                    "store a video (clips + vectors)": lambda c=catalog, r=r: store_one(
                        c, r, args.clips_per_video, args.dim, rng
                    ),
                    "known-paths scan": catalog.known_paths,
                    "filter selection (video rows + clip times)": lambda c=catalog: FilterRows(c).get(),
                    "store it again (a changed video: its clips dropped first)": lambda c=catalog, r=r: store_one(
                        c, r, args.clips_per_video, args.dim, rng
                    ),
                    "remove it (a deleted video)": lambda c=catalog, r=r: c.remove_paths([new_path(r)]),
                }
                for op, fn in ops.items():
                    times.setdefault((op, name), []).append(timed(fn))
        print(f"load average at end: {os.getloadavg()[0]:.1f}")
        print(
            f"\n| operation ({args.clips:,} clips, median of {args.repeat}) | SQLite ms | PostgreSQL ms | PG / SQLite |"
        )
        print("|---|---|---|---|")
        for op in dict.fromkeys(op for op, _ in times):
            sqlite_ms, pg_ms = (statistics.median(times[op, name]) for name in ("sqlite", "postgresql"))
            print(f"| {op} | {sqlite_ms:.1f} | {pg_ms:.1f} | {pg_ms / sqlite_ms:.2f} |")
        for catalog in catalogs.values():
            catalog.close()
    finally:
        if server is not None:
            server.stop()
        for path in work.iterdir():
            path.unlink()
        work.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
