"""Which frames reach which tower: each tower gets clips at its own input size, from the source."""

from __future__ import annotations

import json
import shutil

import numpy as np
import open_clip
import pytest

from encoder.clip import CONFIG_DIR
from indexer.catalog import Catalog
from indexer.decode import ClipDecoder, probe
from indexer.pipeline import run_index
from indexer.records import IMAGE_SET, VIDEO_SET
from indexer.settings import ClipSettings, DataDir, EncoderSettings, IndexSettings
from indexer.towers import resolve_towers

NAMES = [VIDEO_SET, IMAGE_SET]


@pytest.fixture(scope="module")
def clip_96(tmp_path_factory) -> str:
    """A tiny CLIP taking 96 px, so the two towers' input sizes differ (the video one takes 64)."""
    config = json.loads((CONFIG_DIR / "tubelet-tiny-clip.json").read_text())
    config["vision_cfg"]["image_size"] = 96
    path = tmp_path_factory.mktemp("clip-config") / "tubelet-tiny-clip-96.json"
    path.write_text(json.dumps(config))
    open_clip.add_model_config(path)
    return "tubelet-tiny-clip-96"


def settings(root, clip_model: str) -> IndexSettings:
    return IndexSettings(DataDir(root), EncoderSettings("vit-tiny", "random", "cpu", "fp32"),
                         ClipSettings(True, clip_model, "random"))


def alone(path, towers, size: int) -> np.ndarray:
    """The clips of `path` decoded at one size only."""
    return np.stack([c.frames for c in ClipDecoder(path, probe(path), towers.sampling, size).clips()])


def test_each_tower_embeds_frames_decoded_at_its_own_size(tmp_path, demo_videos, clip_96):
    towers = resolve_towers(settings(tmp_path, clip_96))
    assert towers.input_sizes() == (96, 64) and towers.input_sizes([VIDEO_SET]) == (64,)

    path = demo_videos[0]
    clips = list(towers.clip_decoder(path, probe(path)).clips())
    assert [sorted(c.by_size()) for c in clips] == [[64, 96]] * 4
    assert clips[0].full_frames[0].shape == (96, 128, 3)  # thumbnails from the largest size
    got = towers.embed(NAMES, {size: np.stack([c.by_size()[size] for c in clips]) for size in (64, 96)})
    np.testing.assert_allclose(got[VIDEO_SET], towers.encoder(VIDEO_SET).embed(alone(path, towers, 64)), atol=1e-6)
    np.testing.assert_allclose(got[IMAGE_SET], towers.encoder(IMAGE_SET).embed(alone(path, towers, 96)), atol=1e-6)
    # Not what resizing the 96 px squares in torch gives: the route matters.
    resized_in_torch = towers.embed([VIDEO_SET], alone(path, towers, 96))
    assert not np.allclose(got[VIDEO_SET], resized_in_torch[VIDEO_SET], atol=1e-4)


def test_indexing_stores_the_vectors_of_each_towers_own_size(tmp_path, demo_videos, clip_96):
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(demo_videos[1], lib / "a.mp4")
    report = run_index(settings(tmp_path / "data", clip_96), [lib])
    assert report.clips_embedded == 4

    catalog = Catalog(DataDir(tmp_path / "data").catalog).open()
    towers = resolve_towers(settings(tmp_path / "data", clip_96))
    sets = {name: catalog.vector_set(name).id for name in NAMES}
    stored = {name: np.stack([catalog.clip_vector(sets[name], clip_id) for clip_id in range(1, 5)])
              for name in NAMES}
    catalog.close()
    path = lib / "a.mp4"
    np.testing.assert_allclose(stored[VIDEO_SET], towers.encoder(VIDEO_SET).embed(alone(path, towers, 64)), atol=1e-5)
    np.testing.assert_allclose(stored[IMAGE_SET], towers.encoder(IMAGE_SET).embed(alone(path, towers, 96)), atol=1e-5)
