"""Text, image and combined queries: image-text vectors, calibrated fusion, filters, moments.

Tiny registered encoders with random weights, in fp32 so scores can be recomputed exactly.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from helpers import ENCODER, cli_in_process, search

from app.demo import synthesize_video
from app.query import Filters, Query, SearchOptions
from app.search import SearchService
from encoder.image_text import frame_picks, register_tubelet_configs
from indexer.catalog import Catalog
from indexer.decode import ClipDecoder, probe
from indexer.records import ClipSampling
from indexer.settings import DataDir

FP32 = ["--precision", "fp32"]


def index(data, *paths, extra=()):
    done = cli_in_process("index", "--data", data, *paths, *ENCODER, *FP32, *extra, "--json")
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def library(tmp_path_factory, demo_videos):
    """Four videos indexed without image-text vectors, then three more added with them (backfilling the four)."""
    lib, data = tmp_path_factory.mktemp("lib"), tmp_path_factory.mktemp("data")
    for video in demo_videos[:4]:
        shutil.copy(video, lib / video.name)
    first = index(data, lib, extra=["--no-clip"])
    time.sleep(1.1)
    cutoff = datetime.now(UTC).replace(tzinfo=None)
    time.sleep(1.1)
    for video in demo_videos[4:]:
        shutil.copy(video, lib / video.name)
    synthesize_video(lib / "sub" / "short.mp4", seed=7, seconds=4.0)
    second = index(data, lib)
    return lib, data, first, second, cutoff


def service(data) -> SearchService:
    return SearchService(DataDir(data), device="cpu", precision="fp32").load()


def test_adding_image_text_later_computes_no_videomae_vectors(library):
    lib, data, first, second, _ = library
    assert first["clips_embedded"] == 16 and first["vectors_embedded"] == {"video": 16}
    assert second["files"] == {**second["files"], "new": 3, "unchanged": 4}
    assert second["clips_embedded"] == 4 + 4 + 2
    assert second["vectors_embedded"] == {"video": 10, "image": 16 + 10}  # old videos: image-text only
    status = json.loads(cli_in_process("status", "--data", data, "--json").stdout)
    assert status["towers"]["image"]["vectors"] == status["towers"]["video"]["vectors"] == 26
    again = index(data, lib)
    assert again["vectors_embedded"] == {"video": 0, "image": 0}


def reference_image_text_vectors(data: Path, clip_ids: list[int]) -> np.ndarray:
    """Image-text vectors recomputed outside Tubelet's towers: open_clip on the clip's frames."""
    register_tubelet_configs()
    weights = data / "weights" / "random-openclip-tubelet-tiny-clip-seed0.safetensors"
    model = open_clip.create_model("tubelet-tiny-clip", pretrained=str(weights)).eval()
    catalog = Catalog(f"sqlite:///{data / 'catalog.db'}").open()
    rows = catalog.clip_rows(clip_ids)
    sampling = ClipSampling.from_dict(catalog.vector_set("video").identity["sampling"])
    out = []
    for clip_id in clip_ids:
        row = rows[clip_id]
        path = Path(row.path)
        clip = next(
            c for c in ClipDecoder(path, probe(path), sampling, 64).clips() if abs(c.window.start - row.start) < 1e-6
        )
        frames = torch.tensor(clip.frames[frame_picks(16, 4)]).permute(0, 3, 1, 2).float() / 255
        mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
        with torch.no_grad():
            images = torch.nn.functional.normalize(model.encode_image((frames - mean) / std), dim=-1)
        pooled = images.mean(0)
        out.append((pooled / pooled.norm()).numpy())
    catalog.close()
    return np.stack(out), model


def test_text_scores_match_an_independent_open_clip_computation(library):
    _lib, data, *_ = library
    moments = search(data, "--text", "a red ball rolling on grass", "-k", "4", *FP32)
    assert len(moments) == 4 and all(m["thumbnail"] and Path(m["thumbnail"]).is_file() for m in moments)
    clip_ids = [m["clip_id"] for m in moments]
    vectors, model = reference_image_text_vectors(data, clip_ids)
    with torch.no_grad():
        tokens = open_clip.get_tokenizer("tubelet-tiny-clip")(["a red ball rolling on grass"])
        text = torch.nn.functional.normalize(model.encode_text(tokens), dim=-1)[0].numpy()
    expected = vectors @ text
    reported = np.array([m["scores"]["text"] for m in moments])
    assert np.abs(reported - expected).max() < 1e-5


def test_image_of_one_frame_finds_the_moment_containing_it(library, tmp_path):
    lib, data, *_ = library
    import av

    source = lib / "scene_05.mp4"
    with av.open(str(source)) as container:
        frame = next(f for f in container.decode(video=0) if f.time >= 5.0)  # frame 150
    photo = tmp_path / "frame.jpg"
    frame.to_image().save(photo, quality=92)
    [top, *_] = search(data, "--image", photo, "-k", "3", *FP32)
    assert top["path"] == str(source) and top["start"] <= 5.0 < top["end"]


def test_filtered_search_equals_brute_force_over_the_filtered_set(library):
    _lib, data, *_ = library
    svc = service(data)
    filters = Filters(path_glob="*scene_0[1-4].mp4")
    parts = svc.query_parts(Query(text="a dark blue gradient"), SearchOptions())
    ranked = svc.rank(parts, svc.allowed_clip_ids(filters), k=10)

    catalog = svc.catalog
    ids, vectors = catalog.load_vectors(catalog.vector_set("image").id, 32)
    rows = catalog.clip_rows(ids.tolist())
    keep = np.array(
        [Path(rows[int(i)].path).name in {"scene_01.mp4", "scene_02.mp4", "scene_03.mp4", "scene_04.mp4"} for i in ids]
    )
    scores = vectors[keep] @ parts[0].vector
    order = np.argsort(-scores, kind="stable")
    assert [c.clip_id for c, _ in ranked] == ids[keep][order].tolist()  # all 16 filtered clips
    assert np.allclose([raw["text"] for _, raw in ranked], scores[order], atol=1e-6)


def test_filters_through_the_cli(library):
    lib, data, *_, cutoff = library
    sub = search(data, "--text", "anything", "--path-prefix", str(lib / "sub"), "-k", "5", *FP32)
    assert {m["path"] for m in sub} == {str(lib / "sub" / "short.mp4")}
    long_only = search(data, "--text", "anything", "--min-duration", "5", "-k", "50", *FP32)
    assert "short.mp4" not in {Path(m["path"]).name for m in long_only}
    assert {Path(m["path"]).name for m in long_only} == {f"scene_{i:02d}.mp4" for i in range(6)}  # not vacuous
    recent = search(data, "--text", "anything", "--indexed-after", cutoff.isoformat() + "+00:00", "-k", "50", *FP32)
    assert {Path(m["path"]).name for m in recent} == {"scene_04.mp4", "scene_05.mp4", "short.mp4"}
    nothing = cli_in_process("search", "--data", data, "--text", "x", "--max-duration", "1", "--json")
    assert json.loads(nothing.stdout) == [] and "nothing indexed passes the filters" in nothing.stderr


def test_combined_query_score_is_the_documented_fusion(library):
    lib, data, *_ = library
    svc = service(data)
    query = Query(video=lib / "scene_02.mp4", start=2.0, end=4.5, text="a spinning disc", negative="darkness")
    options = SearchOptions(k=5, weights={"text": 2.0})
    parts = {p.name: p for p in svc.query_parts(query, options)}
    assert set(parts) == {"video", "appearance", "text", "negative"}
    result = svc.search(query, options=options)
    top = result.moments[0]
    assert top.path == str(lib / "scene_02.mp4") and top.start < 4.5 and top.end > 2.0

    def z(name):
        stats = svc.indexes["video" if name == "video" else "image"].stats
        return stats.zscores(parts[name].vector, np.array([top.scores[name]]))[0]

    expected = (z("video") + z("appearance") + 2.0 * z("text") - z("negative")) / (1 + 1 + 2.0)
    assert top.score == pytest.approx(expected, abs=1e-4)


def test_no_good_match_is_explicit(library):
    _lib, data, *_ = library
    done = cli_in_process("search", "--data", data, "--text", "a cat", "--min-score", "50", "--json")
    assert json.loads(done.stdout) == [] and "No good match: the best score is" in done.stderr
    human = cli_in_process("search", "--data", data, "--text", "a cat", "--min-score", "50")
    assert "No good match" in human.stdout


def test_group_by_video(library):
    _lib, data, *_ = library
    groups = search(data, "--text", "stripes", "--group", "video", "-k", "3", *FP32)
    assert len(groups) == 3 and len({g["video_id"] for g in groups}) == 3
    assert all(g["moments"] and all(m["video_id"] == g["video_id"] for m in g["moments"]) for g in groups)
    assert [g["score"] for g in groups] == sorted((g["score"] for g in groups), reverse=True)


def test_text_search_needs_image_text_vectors(tmp_path, demo_videos):
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(demo_videos[0], lib / "a.mp4")
    index(tmp_path / "data", lib, extra=["--no-clip"])
    done = cli_in_process("search", "--data", tmp_path / "data", "--text", "a dog", expect=2)
    assert "needs image-text vectors (open_clip)" in done.stderr and "--image-text-weights default" in done.stderr


def test_bad_query_combinations_are_clear_errors(library):
    _lib, data, *_ = library
    assert "nothing to search for" in cli_in_process("search", "--data", data, expect=2).stderr
    assert (
        "k must be between 1 and 1000"
        in cli_in_process("search", "--data", data, "--text", "x", "-k", "5000", expect=2).stderr
    )
    assert (
        "unknown weight"
        in cli_in_process("search", "--data", data, "--text", "x", "--weight", "colour=2", expect=2).stderr
    )
    assert "nothing to search for" in cli_in_process("search", "--data", data, "--negative", "x", expect=2).stderr
    assert (
        "weight text=0 leaves this query nothing to search for: a weight is 0 or more"
        in cli_in_process(
            "search", "--data", data, "--text", "x", "--negative", "y", "--weight", "text=0", expect=2
        ).stderr
    )
