"""The query side under concurrent use, as in the web server: searches in threads while an index run commits
new videos into the same data dir, and first searches racing to load a model.

Tiny registered encoders with random weights, in fp32 (as tests/test_reliability.py), indexing in-process.
"""

from __future__ import annotations

import functools
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from app.query import Query, SearchOptions, SearchRequest
from app.search import SearchResult, SearchService, Snapshot
from indexer.pipeline import run_index
from indexer.records import IMAGE_SET, VIDEO_SET
from indexer.settings import DataDir, EncoderSettings, ImageTextSettings, IndexSettings
from indexer.store import ScoreStats

EVERY_CLIP = SearchOptions(k=1000)  # more than the library's clips: an answer lists every clip it searched


def settings(data: Path) -> IndexSettings:
    return IndexSettings(
        DataDir(data),
        EncoderSettings("vit-tiny", "random", "cpu", "fp32"),
        ImageTextSettings(True, "tubelet-tiny-clip", "random"),
    )


def indexed_library(tmp_path: Path, videos: list[Path]) -> tuple[Path, Path]:
    lib, data = tmp_path / "lib", tmp_path / "data"
    lib.mkdir()
    for video in videos:
        shutil.copy(video, lib / video.name)
    assert not run_index(settings(data), [lib]).failures
    return lib, data


def test_searches_while_videos_are_committed_answer_from_one_consistent_state(tmp_path, demo_videos):
    lib, data = indexed_library(tmp_path, demo_videos[:2])
    service = SearchService(DataDir(data), "cpu", "fp32").load()
    first = service.snapshot
    requests = [
        SearchRequest(Query(text="a red circle"), options=EVERY_CLIP),
        SearchRequest(Query(like=int(first.indexes[VIDEO_SET].ids[0])), options=EVERY_CLIP),
    ]
    answers: list[tuple[SearchRequest, SearchResult]] = []
    errors: list[BaseException] = []
    indexing = threading.Event()
    indexing.set()

    def search_until_indexed(request: SearchRequest) -> None:
        try:
            while True:
                done = not indexing.is_set()  # one more search after the run, to see its last commit
                answers.append((request, service.ensure_ready().search(request)))
                if done:
                    return
                time.sleep(0.01)  # leave the indexer some of the 2 cores
        except BaseException as exc:  # reported below: a thread's exception would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=search_until_indexed, args=(r,)) for r in requests * 2]
    for thread in threads:
        thread.start()
    for video in demo_videos[2:]:
        shutil.copy(video, lib / video.name)
    try:
        report = run_index(settings(data), [lib])
    finally:
        indexing.clear()
        for thread in threads:
            thread.join(timeout=300)
    assert not errors, errors
    assert not report.failures
    snapshots = {id(result.snapshot): result.snapshot for _, result in answers}
    assert len(snapshots) >= 2, "no search saw a video committed while it ran"
    final = max(snapshots.values(), key=lambda s: len(s.indexes[VIDEO_SET].ids))
    assert len(final.indexes[VIDEO_SET].ids) == service.catalog.vector_count(final.indexes[VIDEO_SET].vset.id)
    assert len(final.indexes[VIDEO_SET].ids) > len(first.indexes[VIDEO_SET].ids)
    for snapshot in snapshots.values():
        assert_whole(snapshot)
    expected = {}
    for request, result in answers:
        key = (id(request), id(result.snapshot))
        if key not in expected:
            expected[key] = fresh_scores(service, result.snapshot, request.query)
        assert_answer_matches(result, expected[key])


def assert_whole(snapshot: Snapshot) -> None:
    """Each index of a snapshot still holds exactly the vectors it was made with: none added or dropped
    since (by a later catch-up), and its score statistics count the same vectors."""
    for loaded in snapshot.indexes.values():
        assert loaded.index.ntotal == len(loaded.ids) == loaded.stats.count, loaded.vset.name
        assert np.array_equal(np.sort(loaded.ids), loaded.ids)


def fresh_scores(service: SearchService, snapshot: Snapshot, query: Query) -> dict[int, float]:
    """Each clip's fused score for `query`, computed from the catalog's vectors of exactly the clips in
    `snapshot` (statistics from scratch, not the index's running sums): what a service loaded at that
    snapshot's version would answer."""
    catalog = service.catalog
    if query.text is not None:
        parts = {IMAGE_SET: snapshot.towers.encoder(IMAGE_SET).encode_text([query.text])[0]}
    else:
        parts = {name: catalog.clip_vector(loaded.vset.id, query.like) for name, loaded in snapshot.indexes.items()}
    ids = functools.reduce(np.intersect1d, [snapshot.indexes[name].ids for name in parts])  # as `rank` does
    fused = np.zeros(len(ids))
    for name, vector in parts.items():
        vset = snapshot.indexes[name].vset
        all_ids, vectors = catalog.load_vectors(vset.id, vset.dim, only=snapshot.indexes[name].ids)
        stats = ScoreStats.of(vectors)
        fused += stats.zscores(vector, vectors[np.searchsorted(all_ids, ids)] @ vector)
    return dict(zip(ids.tolist(), (fused / len(parts)).tolist()))


def assert_answer_matches(result: SearchResult, expected: dict[int, float]) -> None:
    answered = [c for m in result.moments for c in m.clip_ids]
    assert sorted(answered) == sorted(expected), "an answer lists other clips than its snapshot holds"
    for moment in result.moments:
        assert moment.score == pytest.approx(expected[moment.clip_id], rel=1e-4, abs=1e-4)


class CountingSpec:
    """A tower spec that counts its loads, and loads slowly, so that racing first searches overlap."""

    def __init__(self, spec):
        self.spec, self.loads = spec, 0

    def __getattr__(self, name):
        return getattr(self.spec, name)

    def load(self, *args):
        self.loads += 1
        time.sleep(0.3)
        return self.spec.load(*args)


def test_concurrent_first_searches_load_the_model_once(tmp_path, demo_videos):
    _, data = indexed_library(tmp_path, demo_videos[:1])
    service = SearchService(DataDir(data), "cpu", "fp32").load()
    towers = service.snapshot.towers
    towers.image = counting = CountingSpec(towers.image)
    start = threading.Barrier(6)
    results, errors = [], []

    def first_search() -> None:
        try:
            start.wait()
            results.append(service.search(SearchRequest(Query(text="a blue disc"), options=SearchOptions(k=3))))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=first_search) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert counting.loads == 1
    assert len(results) == 6
    assert len({tuple((m.clip_id, m.score) for m in r.moments) for r in results}) == 1


def test_a_new_catalog_opened_by_several_connections_at_once_is_created_once(tmp_path):
    """`index` and `serve` (or a watch) may open a data dir's catalog before it exists, at the same moment:
    each must get the one catalog, writable, with one schema row, never "no such table" or a read-only
    fallback."""
    from helpers import open_at_once

    from indexer.schema import SCHEMA_VERSION

    openers = 4
    for attempt in range(30):
        url = f"sqlite:///{tmp_path / f'catalog-{attempt}.db'}"
        catalogs, errors = open_at_once(url, openers)
        assert errors == []
        assert [c.read_only for c in catalogs] == [False] * openers
        assert {c.get_meta("schema_version") for c in catalogs} == {str(SCHEMA_VERSION)}
        for c in catalogs:
            c.close()
