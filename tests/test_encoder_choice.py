"""`index` without encoder flags uses the encoders the data dir records; flags name another encoder.

The rules (indexer/encoder_choice.py) are checked on settings alone, then once through the CLI on a real
data dir made with random weights: re-running `index` without the flags must not reach for the hub.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import ENCODER, cli_in_process

from app.demo import synthesize_video
from indexer.encoder_choice import EncoderFlags, choose_encoders
from indexer.settings import DataDir, EncoderSettings, ImageTextSettings, IndexSettings

DATA = DataDir(Path("/nowhere"))
BASE = IndexSettings(DATA, EncoderSettings(device="cpu", precision="fp32"), batch_size=2)
RECORDED = IndexSettings(
    DATA,
    EncoderSettings("vit-tiny", "random:0", "cpu", "fp32"),
    ImageTextSettings(True, "tubelet-tiny-clip", "random:0", 2),
    window_frames=8,
    frame_interval=2,
    stride_frames=None,
)
NO_IMAGE_TEXT = replace(RECORDED, image_text=ImageTextSettings(enabled=False))


def encoders(settings: IndexSettings) -> tuple:
    enc, it = settings.encoder, settings.image_text
    return (enc.variant, enc.weights, settings.window_frames, settings.frame_interval, settings.stride_frames), (
        (it.model, it.weights, it.frames_per_clip) if it.enabled else None
    )


def test_no_flags_mean_the_recorded_encoders():
    chosen = choose_encoders(BASE, EncoderFlags(), RECORDED)
    assert encoders(chosen) == encoders(RECORDED)
    assert (chosen.batch_size, chosen.encoder.device, chosen.encoder.precision) == (2, "cpu", "fp32")


def test_no_flags_and_no_record_mean_the_defaults():
    chosen = choose_encoders(BASE, EncoderFlags(), None)
    assert encoders(chosen) == (("vit-s", None, None, None, None), ("ViT-B-32-256", None, 4))


def test_another_architecture_gets_its_own_default_weights_never_the_recorded_random_ones():
    chosen = choose_encoders(BASE, EncoderFlags(variant="vit-s", image_text_model="ViT-B-32"), RECORDED)
    assert encoders(chosen) == (("vit-s", None, None, None, None), ("ViT-B-32", None, 4))


def test_other_weights_cut_the_recorded_clips_unless_a_flag_says_else():
    """A second vector set is built over the data dir's clips (indexer/switch.py)."""
    chosen = choose_encoders(BASE, EncoderFlags(weights="/w.pth"), RECORDED)
    assert encoders(chosen)[0] == ("vit-tiny", "/w.pth", 8, 2, None)
    chosen = choose_encoders(BASE, EncoderFlags(weights="/w.pth", frame_interval=3), RECORDED)
    assert encoders(chosen)[0] == ("vit-tiny", "/w.pth", 8, 3, None)
    chosen = choose_encoders(BASE, EncoderFlags(stride_frames=4), RECORDED)  # same weights: the recorded sampling
    assert encoders(chosen)[0] == ("vit-tiny", "random:0", 8, 2, 4)


def test_image_text_tower_is_added_only_when_a_flag_asks_and_dropped_by_no_image_text():
    assert encoders(choose_encoders(BASE, EncoderFlags(), NO_IMAGE_TEXT))[1] is None
    asked = choose_encoders(BASE, EncoderFlags(image_text_weights="random"), NO_IMAGE_TEXT)
    assert encoders(asked) == (encoders(RECORDED)[0], ("ViT-B-32-256", "random", 4))
    assert encoders(choose_encoders(BASE, EncoderFlags(no_image_text=True), RECORDED))[1] is None
    frames = choose_encoders(BASE, EncoderFlags(image_text_frames=3), RECORDED)
    assert encoders(frames)[1] == ("tubelet-tiny-clip", "random:0", 3)


@pytest.fixture(scope="module")
def random_data_dir(tmp_path_factory):
    """A data dir made with the tiny towers' random weights, one 2 s video in its library."""
    root = tmp_path_factory.mktemp("choice")
    synthesize_video(root / "lib" / "a.mp4", seed=3, seconds=2.0, width=160, height=120)
    cli_in_process("index", root / "lib", "--data", root / "data", *ENCODER, "--json")
    return root / "lib", root / "data"


def test_index_again_without_flags_uses_the_recorded_random_weights(random_data_dir):
    """Base behaviour: the default VideoMAE v2 weights were asked of the hub (and failed offline)."""
    lib, data = random_data_dir
    synthesize_video(lib / "b.mp4", seed=4, seconds=2.0, width=160, height=120)
    report = json.loads(cli_in_process("index", lib, "--data", data, "--json").stdout)
    assert report["files"]["new"] == 1 and report["files"]["unchanged"] == 1
    assert report["vectors_embedded"] == {"video": 1, "image": 1}  # one clip per 2 s video
    status = json.loads(cli_in_process("status", "--data", data, "--json").stdout)
    assert status["towers"]["video"]["vectors"] == status["towers"]["image"]["vectors"] == 2


def test_index_with_other_weights_and_other_clips_is_refused(random_data_dir):
    """Other weights build a second vector set over the same clips (tests/test_encoder_switch.py): other
    clips are refused."""
    lib, data = random_data_dir
    done = cli_in_process("index", lib, "--data", data, "--weights", "random:1", "--frame-interval", "3", expect=2)
    assert "cuts clips differently" in done.stderr and "--rebuild" in done.stderr
