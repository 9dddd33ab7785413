"""The image-text tower loads open_clip checkpoints: streamed when exact, converted otherwise."""

import logging

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from encoder.errors import CheckpointError
from encoder.image_text import load_image_text_weights, register_tubelet_configs

MODEL = "tubelet-tiny-clip"


@pytest.fixture(scope="module")
def reference():
    register_tubelet_configs()
    torch.manual_seed(3)
    return open_clip.create_model(MODEL, pretrained=None).eval()


def fresh():
    torch.manual_seed(99)  # different values from the reference
    return open_clip.create_model(MODEL, pretrained=None).eval()


def assert_same_weights(model, reference):
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


@pytest.mark.parametrize("group_bytes", [1 << 30, 4096])
def test_safetensors_checkpoint_is_streamed_exactly(reference, tmp_path, monkeypatch, group_bytes):
    monkeypatch.setattr("encoder.image_text.STREAM_BYTES", group_bytes)  # one group, or many reopenings
    path = tmp_path / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    model = fresh()
    load_image_text_weights(model, path)
    assert_same_weights(model, reference)


def test_training_checkpoint_with_module_prefix_loads(reference, tmp_path):
    path = tmp_path / "epoch_32.pt"
    torch.save({"epoch": 32, "state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, path)
    model = fresh()
    load_image_text_weights(model, path)
    assert_same_weights(model, reference)


def test_checkpoint_without_logit_bias_goes_through_open_clip_conversion(tmp_path):
    """A key set that differs from the model's (here: a SigLIP-style model missing its bias)
    is left to open_clip's converting loader rather than refused."""
    register_tubelet_configs()
    torch.manual_seed(5)
    source = open_clip.create_model(MODEL, pretrained=None).eval()
    path = tmp_path / "old.bin"
    torch.save(source.state_dict(), path)
    target = fresh()
    target.logit_bias = torch.nn.Parameter(torch.ones([]))
    load_image_text_weights(target, path)
    assert torch.equal(target.visual.conv1.weight, source.visual.conv1.weight)
    assert target.logit_bias.item() == 0.0  # open_clip's documented default for a missing bias


def test_a_checkpoint_of_another_architecture_is_a_clear_error(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"visual.proj": torch.zeros(4, 4), "text_projection": torch.zeros(4, 4)}, str(path))
    with pytest.raises(CheckpointError, match=r"other.safetensors does not fit"):
        load_image_text_weights(fresh(), path)


def test_the_empty_model_step_logs_no_random_init_warning(caplog):
    """open_clip warns "No pretrained weights loaded" for every empty model; Tubelet loads its own
    weights right after, so the warning (once per tower, breaking the progress line) is dropped."""
    from encoder.image_text import empty_open_clip_model

    register_tubelet_configs()
    caplog.set_level(logging.WARNING)
    open_clip.create_model("tubelet-tiny-clip", pretrained=None)
    assert any(r.getMessage().startswith("No pretrained weights loaded") for r in caplog.records)  # it does warn
    caplog.clear()
    model = empty_open_clip_model("tubelet-tiny-clip")
    assert isinstance(model, torch.nn.Module)
    assert not any(r.getMessage().startswith("No pretrained weights loaded") for r in caplog.records)
    assert logging.getLogger().filters == []  # the filter does not outlive the call
