"""Which frames reach which tower: each tower gets clips at its own input size, from the source."""

from __future__ import annotations

import json
import shutil

import numpy as np
import open_clip
import pytest

from encoder.errors import ConfigError, WeightsError
from encoder.image_text import CONFIG_DIR
from encoder.preprocess import VideoPreprocess
from encoder.registry import spec_from_identity
from indexer.catalog import Catalog
from indexer.decode import ClipDecoder, probe
from indexer.pipeline import run_index
from indexer.records import IMAGE_SET, VIDEO_SET, ClipSampling
from indexer.settings import DataDir, EncoderSettings, ImageTextSettings, IndexSettings
from indexer.towers import resolve_towers

NAMES = [VIDEO_SET, IMAGE_SET]


@pytest.fixture(scope="module")
def image_text_96(tmp_path_factory) -> str:
    """A tiny image-text tower taking 96 px, so the two towers' input sizes differ (the video one takes 64)."""
    config = json.loads((CONFIG_DIR / "tubelet-tiny-clip.json").read_text())
    config["vision_cfg"]["image_size"] = 96
    path = tmp_path_factory.mktemp("clip-config") / "tubelet-tiny-clip-96.json"
    path.write_text(json.dumps(config))
    open_clip.add_model_config(path)
    return "tubelet-tiny-clip-96"


def settings(root, image_text_model: str) -> IndexSettings:
    return IndexSettings(
        DataDir(root),
        EncoderSettings("vit-tiny", "random", "cpu", "fp32"),
        ImageTextSettings(True, image_text_model, "random"),
    )


def alone(path, towers, size: int) -> np.ndarray:
    """The clips of `path` decoded at one size only."""
    return np.stack([c.frames for c in ClipDecoder(path, probe(path), towers.sampling, size).clips()])


def test_each_tower_embeds_frames_decoded_at_its_own_size(tmp_path, demo_videos, image_text_96):
    towers = resolve_towers(settings(tmp_path, image_text_96))
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


def test_indexing_stores_the_vectors_of_each_towers_own_size(tmp_path, demo_videos, image_text_96):
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(demo_videos[1], lib / "a.mp4")
    report = run_index(settings(tmp_path / "data", image_text_96), [lib])
    assert report.clips_embedded == 4

    catalog = Catalog(DataDir(tmp_path / "data").catalog).open()
    towers = resolve_towers(settings(tmp_path / "data", image_text_96))
    sets = {name: catalog.vector_set(name).id for name in NAMES}
    stored = {name: np.stack([catalog.clip_vector(sets[name], clip_id) for clip_id in range(1, 5)]) for name in NAMES}
    catalog.close()
    path = lib / "a.mp4"
    np.testing.assert_allclose(stored[VIDEO_SET], towers.encoder(VIDEO_SET).embed(alone(path, towers, 64)), atol=1e-5)
    np.testing.assert_allclose(stored[IMAGE_SET], towers.encoder(IMAGE_SET).embed(alone(path, towers, 96)), atol=1e-5)


def test_both_towers_keep_the_one_tower_contract(tmp_path):
    """name, dim, identity and preprocessing come from the spec; embed gives (B, dim) unit vectors."""
    towers = resolve_towers(settings(tmp_path, "tubelet-tiny-clip"))
    clips = np.random.default_rng(0).integers(0, 256, (2, 16, 64, 64, 3), dtype=np.uint8)
    for name, spec in towers.specs().items():
        tower, identity = towers.encoder(name), spec.identity()
        assert tower.spec is spec and tower.name == spec.tower == identity["tower"]
        assert tower.identity() == identity and tower.dim == spec.dim == identity["dim"]
        assert tower.preprocess == spec.preprocess == spec.weights.preprocess
        assert tower.preprocess.size == towers.input_size(name) == identity["preprocess"]["size"] == 64
        vectors = tower.embed(clips)
        assert vectors.shape == (2, tower.dim)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_a_tower_rebuilt_from_its_stored_identity_is_the_same_tower(tmp_path):
    """One way back from a catalog's identity to either tower, recorded preprocessing included; the
    identities keep the keys (and their order) that existing data dirs store."""
    towers = resolve_towers(
        IndexSettings(
            DataDir(tmp_path),
            EncoderSettings("vit-tiny", "random:2", "cpu", "fp32"),
            ImageTextSettings(True, "tubelet-tiny-clip", "random:3", 2),
            window_frames=8,
            frame_interval=3,
        )
    )
    video, image = towers.video.identity(), towers.image.identity()
    assert list(video) == ["tower", "variant", "weights", "sha256", "preprocess", "dim"]
    assert list(image) == ["tower", "model", "weights", "sha256", "preprocess", "frames_per_clip", "dim"]
    assert (
        video["tower"],
        video["weights"],
        video["preprocess"]["num_frames"],
        video["preprocess"]["frame_interval"],
    ) == ("videomae2", "random:2", 8, 3)
    assert (image["tower"], image["weights"], image["frames_per_clip"]) == ("open_clip", "random:3", 2)
    for spec in (towers.video, towers.image):
        rebuilt = spec_from_identity(spec.identity(), DataDir(tmp_path).weights_dir)
        assert type(rebuilt) is type(spec) and rebuilt == spec and rebuilt.identity() == spec.identity()


def test_window_frames_are_stored_under_the_key_existing_data_dirs_hold():
    """`window_frames` is stored as "num_frames" (its former name) in the sampling and the preprocessing."""
    sampling = ClipSampling(window_frames=8, frame_interval=2, stride_frames=10)
    assert sampling.to_dict() == {"num_frames": 8, "frame_interval": 2, "stride_frames": 10}
    assert ClipSampling.from_dict({"num_frames": 8, "frame_interval": 2, "stride_frames": 10}) == sampling
    preprocess = VideoPreprocess(window_frames=8, frame_interval=2, size=64)
    stored = json.loads(json.dumps(preprocess.to_dict()))
    assert list(stored) == ["num_frames", "frame_interval", "size", "mean", "std"] and stored["num_frames"] == 8
    assert VideoPreprocess.from_dict(stored) == preprocess


def test_rebuilding_refuses_changed_weights_and_unknown_towers(tmp_path):
    towers = resolve_towers(settings(tmp_path, "tubelet-tiny-clip"))
    for identity in towers.identities().values():
        with pytest.raises(WeightsError, match=r"is damaged or was replaced: its sha256 is .* but this index's"):
            spec_from_identity({**identity, "sha256": "0" * 64}, DataDir(tmp_path).weights_dir)
    with pytest.raises(ConfigError, match="vectors made by an unknown tower 'nope'; known: videomae2, open_clip"):
        spec_from_identity({**towers.video.identity(), "tower": "nope"}, DataDir(tmp_path).weights_dir)
