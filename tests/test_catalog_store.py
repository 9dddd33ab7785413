"""The catalog (a real SQLite file, and a real PostgreSQL database, through SQLAlchemy) and the FAISS
indexes derived from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer import store
from indexer.catalog import Catalog, CatalogBackendError, IdentityMismatch
from indexer.records import ClipWindow, ScannedFile, VideoInfo

INFO = VideoInfo(0, "h264", 320, 240, 30.0, 8.0, 0, "mov,mp4")
IDENTITY = {
    "tower": "videomae2",
    "variant": "vit-tiny",
    "weights": "random:0",
    "sha256": "ab" * 32,
    "sampling": {"num_frames": 16, "frame_interval": 4, "stride_frames": 64},
}


@pytest.fixture
def catalog(catalog_url):
    cat = Catalog(catalog_url).open()
    yield cat
    cat.close()


def unit_rows(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def add_video(catalog, vset, name: str, n: int, seed: int):
    f = ScannedFile(Path(f"/lib/{name}"), 1000 + seed, seed, Path("/lib"))
    windows = [ClipWindow(i, 2.0 * i, 2.0 * i + 2) for i in range(n)]
    vectors = unit_rows(n, seed=seed)
    catalog.store_video(f, f"fp-{name}", INFO, {"duration": 2.0 * n, "frames": 60 * n}, windows, {vset.id: vectors})
    return vectors


def test_store_and_read_back(catalog):
    vset = catalog.ensure_vector_set("video", IDENTITY, 8)
    a = add_video(catalog, vset, "a.mp4", 3, seed=1)
    b = add_video(catalog, vset, "b.mp4", 2, seed=2)
    ids, matrix = catalog.load_vectors(vset.id, 8)
    assert ids.tolist() == [1, 2, 3, 4, 5] and np.array_equal(matrix, np.concatenate([a, b]))
    rows = catalog.clip_rows([2, 5])
    assert (rows[2].path, rows[2].start, rows[2].end) == ("/lib/a.mp4", 2.0, 4.0)
    assert rows[5].path == "/lib/b.mp4" and rows[5].video_id != rows[2].video_id
    assert catalog.vector_set("video").version == 2
    stats = catalog.stats()
    assert stats["videos"] == {"indexed": 2} and stats["clips"] == 5 and stats["duration"] == 10.0
    ids, videos, starts = catalog.clip_times()
    assert (ids.dtype, videos.dtype, starts.dtype) == (np.int64, np.int64, np.float64)
    assert ids.tolist() == [1, 2, 3, 4, 5] and starts.tolist() == [0.0, 2.0, 4.0, 0.0, 2.0]
    assert videos.tolist() == [rows[2].video_id] * 3 + [rows[5].video_id] * 2


def test_reembedding_a_video_replaces_its_clips(catalog):
    vset = catalog.ensure_vector_set("video", IDENTITY, 8)
    add_video(catalog, vset, "a.mp4", 3, seed=1)
    add_video(catalog, vset, "a.mp4", 2, seed=1)  # same path and content, embedded again
    assert catalog.vector_count(vset.id) == 2 and catalog.stats()["clips"] == 2


def test_removing_the_last_path_deletes_clips_and_vectors(catalog):
    vset = catalog.ensure_vector_set("video", IDENTITY, 8)
    add_video(catalog, vset, "a.mp4", 3, seed=1)
    add_video(catalog, vset, "b.mp4", 2, seed=2)
    assert catalog.remove_paths(["/lib/a.mp4"]) == 1
    ids, _ = catalog.load_vectors(vset.id, 8)
    assert ids.tolist() == [4, 5] and catalog.stats()["clips"] == 2


def test_failure_is_recorded_with_its_reason(catalog):
    f = ScannedFile(Path("/lib/bad.mp4"), 10, 1, Path("/lib"))
    catalog.record_failure(f, "fp-bad", "cannot open as media: Invalid data")
    [(path, known)] = catalog.known_paths().items()
    assert (path, known.status, known.error) == ("/lib/bad.mp4", "failed", "cannot open as media: Invalid data")


def test_another_encoder_is_refused_with_the_command_to_reindex(catalog):
    catalog.ensure_vector_set("video", IDENTITY, 8)
    with pytest.raises(IdentityMismatch, match=r"vit-tiny.*vit-s.*--rebuild"):
        catalog.ensure_vector_set("video", {**IDENTITY, "variant": "vit-s"}, 384)


def test_index_file_round_trip_and_rebuild(catalog, tmp_path):
    vset = catalog.ensure_vector_set("video", IDENTITY, 8)
    vectors = np.concatenate([add_video(catalog, vset, "a.mp4", 3, 1), add_video(catalog, vset, "b.mp4", 4, 2)])
    vset = catalog.vector_set("video")
    index_dir = tmp_path / "index"
    loaded = store.open_index(catalog, vset, index_dir, 1 << 30)
    assert not loaded.from_file and loaded.index.ntotal == 7  # no file yet: built from the catalog
    loaded.save(index_dir)
    assert sorted(p.name for p in index_dir.iterdir()) == [  # index, score statistics, no temp files
        f"video-{vset.key}-{vset.generation}-v2.faiss",
        f"video-{vset.key}-{vset.generation}-v2.stats.npz",
    ]
    reopened = store.open_index(catalog, vset, index_dir, 1 << 30)
    assert reopened.from_file
    scores, ids = reopened.index.search(vectors[4:5], 3)
    assert ids[0, 0] == 5 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    catalog.remove_paths(["/lib/b.mp4"])
    stale = catalog.vector_set("video")
    assert not store.index_path(index_dir, stale).exists()  # version moved on: file is stale
    assert store.open_index(catalog, stale, index_dir, 1 << 30).index.ntotal == 3


def test_index_file_that_disagrees_with_the_catalog_is_rebuilt(catalog, tmp_path):
    vset = catalog.ensure_vector_set("video", IDENTITY, 8)
    add_video(catalog, vset, "a.mp4", 3, 1)
    vset = catalog.vector_set("video")
    wrong = store.build_index(np.array([1], np.int64), unit_rows(1), store.IndexSpec("Flat"))
    store.LoadedIndex(wrong, vset, store.ScoreStats.of(unit_rows(1)), store.IndexSpec("Flat"), False).save(tmp_path)
    loaded = store.open_index(catalog, vset, tmp_path, 1 << 30)
    assert not loaded.from_file and loaded.index.ntotal == 3


def test_index_type_is_a_pure_function_of_count_dim_and_budget():
    gib = 1 << 30
    assert store.choose_index_spec(10_000, 384, gib).factory == "Flat"
    assert store.choose_index_spec(1_000_000, 384, 4 * gib) == store.IndexSpec("HNSW32", ef_search=store.HNSW_EF_SEARCH)
    assert store.choose_index_spec(1_000_000, 768, 4 * gib).factory == "HNSW32"  # 3.3 GB
    assert store.choose_index_spec(1_000_000, 768, 2 * gib).factory == "HNSW32,SQ8"
    small = store.choose_index_spec(10_000_000, 768, 2 * gib)
    assert small == store.IndexSpec("IVF4096_HNSW32,PQ96,RFlat", nprobe=store.ONDISK_NPROBE)  # on disk
    assert store.index_bytes(small, 10_000_000, 768) <= 2 * gib
    assert store.choose_index_spec(10_000_000, 384, 2 * gib).factory == "IVF4096_HNSW32,PQ48,RFlat"
    assert store.choose_index_spec(30_000, 64, 1 << 20).factory == "IVF128_HNSW32,PQ8,RFlat"
    assert store.choose_index_spec(1_000_000, 384, gib).factory == "HNSW32,SQ8"  # 0.7 GB still fits in RAM
    for count, dim, budget in [(5, 8, 1), (30_000, 384, gib), (2_000_000, 1408, 8 * gib)]:
        spec = store.choose_index_spec(count, dim, budget)
        assert spec == store.choose_index_spec(count, dim, budget)


def test_stale_index_catches_up_incrementally(catalog, tmp_path):
    vset = catalog.ensure_vector_set("video", IDENTITY, 8)
    add_video(catalog, vset, "a.mp4", 3, 1)
    first = store.open_index(catalog, catalog.vector_set("video"), tmp_path, 1 << 30)
    first.save(tmp_path)
    add_video(catalog, vset, "b.mp4", 4, 2)
    catalog.remove_paths(["/lib/a.mp4"])
    now = catalog.vector_set("video")
    caught = store.open_index(catalog, now, tmp_path, 1 << 30)
    rebuilt = store.build_from_catalog(catalog, now, 1 << 30)
    assert not caught.from_file and caught.ids.tolist() == rebuilt.ids.tolist() == [4, 5, 6, 7]
    assert caught.stats.count == 4
    assert np.allclose(caught.stats.mean, rebuilt.stats.mean) and np.allclose(caught.stats.cov, rebuilt.stats.cov)


def test_hnsw_index_and_exact_search_inside_narrow_filters():
    rng = np.random.default_rng(3)
    vectors = unit_rows(30_000, dim=16, seed=3)
    ids = np.arange(1, 30_001, dtype=np.int64)
    spec = store.choose_index_spec(30_000, 16, 1 << 30)
    assert spec.factory == "HNSW32"
    from indexer.catalog import VectorSetInfo

    loaded = store.LoadedIndex(
        store.build_index(ids, vectors, spec),
        VectorSetInfo(1, "video", "k", {}, 16, 1),
        store.ScoreStats.of(vectors),
        spec,
        from_file=False,
    )
    query = vectors[123]
    scores, found = loaded.search(query, 10)
    assert found[0] == 124 and scores[0] == pytest.approx(1.0, abs=1e-5)
    allowed = rng.choice(ids, 500, replace=False)
    scores, found = loaded.search(query, 10, allowed)
    exact = allowed[np.argsort(-(vectors[allowed - 1] @ query))[:10]]
    assert found.tolist() == exact.tolist()


def test_the_views_read_the_catalog_through_its_query_methods(catalog):
    """What the Library view, serving and `status --check` ask the catalog, as plain records."""
    vset = catalog.ensure_vector_set("video", IDENTITY, 8)
    image = catalog.ensure_vector_set("image", {**IDENTITY, "tower": "openclip"}, 8)
    add_video(catalog, vset, "b/one.mp4", 3, seed=1)
    add_video(catalog, vset, "a/two.mp4", 2, seed=2)
    catalog.add_paths([(ScannedFile(Path("/lib/a/copy.mp4"), 1001, 1, Path("/lib")), 1)], [])
    catalog.record_failure(ScannedFile(Path("/lib/a/bad.mp4"), 10, 1, Path("/lib")), "fp-bad", "no stream")
    catalog.add_vectors(2, image.id, {0: unit_rows(1)[0]})
    catalog.set_thumbnail(1, 1, "thumbs/x/00001.jpg")

    summaries = catalog.video_summaries()
    assert [(v.path, v.status, v.clips, v.error) for v in summaries] == [
        ("/lib/a/bad.mp4", "failed", 0, "no stream"),
        ("/lib/a/copy.mp4", "indexed", 3, None),
        ("/lib/a/two.mp4", "indexed", 2, None),
    ]
    assert [v.video_id for v in catalog.video_summaries("/lib/b/")] == [1]
    assert [v.video_id for v in catalog.video_summaries("/lib/b")] == [1]  # a folder, with or without "/"
    assert [v.path for v in catalog.video_summaries("/lib/a/two")] == []  # whole components, not "/lib/a/two.mp4"
    assert [v.path for v in catalog.video_summaries("/lib/a/two.mp4")] == ["/lib/a/two.mp4"]  # the file itself
    assert catalog.video_summaries(limit=1)[0].status == "failed"
    assert [(c.start, c.end, c.thumbnail) for c in catalog.timeline(1)] == [
        (0.0, 2.0, None),
        (2.0, 4.0, "thumbs/x/00001.jpg"),
        (4.0, 6.0, None),
    ]
    assert [(p.path, p.size) for p in catalog.indexed_paths(1)] == [("/lib/a/copy.mp4", 1001), ("/lib/b/one.mp4", 1001)]
    assert [p.path for p in catalog.indexed_paths()] == ["/lib/a/copy.mp4", "/lib/a/two.mp4", "/lib/b/one.mp4"]
    assert catalog.indexed_paths(3) == []  # the failed video
    assert (catalog.clips_without_vector(vset.id), catalog.clips_without_vector(image.id)) == (0, 4)
    assert sorted((c.video_id, c.ordinal) for c in catalog.clip_thumbnails() if c.thumbnail) == [(1, 1)]
    files = catalog.video_files(1)
    assert (files.fingerprint, files.paths) == ("fp-b/one.mp4", ("/lib/b/one.mp4", "/lib/a/copy.mp4"))
    assert catalog.video_files(99) is None


def test_a_server_database_is_a_url_with_no_files_and_no_password_shown():
    from indexer import engine

    url = "postgresql+psycopg://tubelet:secret@db.example/tubelet"
    assert engine.describe_url(url) == "postgresql+psycopg://tubelet:***@db.example/tubelet"
    assert engine.file_identity(url) is None and engine.file_identity("sqlite://") is None
    with engine.companions_kept(url):  # nothing to keep aside, and nothing to connect to
        pass


def test_a_sqlite_catalog_that_cannot_be_written_opens_read_only_and_reads(tmp_path, monkeypatch):
    from indexer import engine

    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    writable = Catalog(url).open()
    writable.set_meta("note", "kept")
    writable.close()
    identity = engine.file_identity(url)
    assert identity.database == (tmp_path.stat().st_dev, (tmp_path / "catalog.db").stat().st_ino)
    monkeypatch.setattr(engine.os, "access", lambda path, mode: False)  # as a read-only mount answers
    catalog = Catalog(url).open()
    try:
        assert (catalog.read_only, catalog.read_only_reason) == (True, "it is read-only")
        assert catalog.get_meta("note") == "kept"
        with pytest.raises(CatalogBackendError, match="attempt to write a readonly database"):
            catalog.set_meta("note", "changed")
    finally:
        catalog.close()
    assert not engine.file_identity(url).replaced_since(identity)


def test_what_ran_a_set_is_never_read_from_the_runs_of_the_set_it_replaced(catalog):
    """SQLite gives a set made after `--rebuild` the id of the set it replaced; the old set's runs must not
    answer for the new one (status would say the new vectors were made by what made the old ones)."""
    old = catalog.ensure_vector_set("video", IDENTITY, 8)
    run = catalog.start_run(["/lib"])
    catalog.finish_run(run, "done", {"generation_runtimes": {old.generation: "openvino cpu bf16"}})
    assert catalog.last_runtime(old) == "openvino cpu bf16"
    catalog.reset_embeddings()  # what `index --rebuild` does first
    rebuilt = catalog.ensure_vector_set("video", IDENTITY, 8)
    assert rebuilt.generation != old.generation
    assert catalog.last_runtime(rebuilt) is None
    run = catalog.start_run(["/lib"])
    catalog.finish_run(run, "cancelled", {"generation_runtimes": {rebuilt.generation: "torch cpu fp32"}})
    assert catalog.last_runtime(rebuilt) == "torch cpu fp32"


def test_what_ran_a_set_is_read_from_runs_recorded_by_set_id_or_name(catalog):
    """Catalogs written before runs recorded sets by generation: by id (`set_runtimes`), or by set name."""
    vset = catalog.ensure_vector_set("video", IDENTITY, 8)
    catalog.finish_run(catalog.start_run(["/lib"]), "done", {"runtimes": {"video": "torch cpu fp32"}})
    assert catalog.last_runtime(vset) == "torch cpu fp32"
    catalog.finish_run(catalog.start_run(["/lib"]), "done", {"set_runtimes": {str(vset.id): "openvino cpu fp32"}})
    assert catalog.last_runtime(vset) == "openvino cpu fp32"
