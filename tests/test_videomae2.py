"""VideoMAE v2: parity with an independent implementation, and every official checkpoint layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from checkpoints import distill_file, finetune_layout, pretrain_file
from hf_reference import hf_model, hf_pooled, to_hf_state

from encoder.errors import CheckpointError, ConfigError
from encoder.videomae2 import (
    VideoMAE2,
    checkpoint_filter_fn,
    infer_variant,
    load_filtered_state,
    sinusoid_table,
    variant_config,
)


def random_model(variant: str, seed: int = 0) -> VideoMAE2:
    model = VideoMAE2(variant_config(variant)).init_random_(seed).eval()
    with torch.no_grad():  # non-trivial LayerNorm affines and biases so a wrong mapping shows
        generator = torch.Generator().manual_seed(seed + 100)
        for name, param in model.named_parameters():
            if name.endswith(("norm1.weight", "norm2.weight", "fc_norm.weight")):
                param.copy_(1 + 0.1 * torch.randn(param.shape, generator=generator))
            elif name.endswith(("bias", "q_bias", "v_bias")):
                param.copy_(0.02 * torch.randn(param.shape, generator=generator))
    return model


def clip_batch(cfg, batch: int = 2, frames: int | None = None, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, frames or cfg.num_frames, cfg.img_size, cfg.img_size, generator=generator)


@pytest.mark.parametrize("variant", ["vit-tiny", "vit-s"])
def test_pooled_feature_matches_transformers_videomae(variant):
    model = random_model(variant)
    reference = hf_model(model.cfg)
    missing, unexpected = reference.load_state_dict(to_hf_state(model.state_dict()), strict=False)
    assert sorted(missing) == ["classifier.bias", "classifier.weight"] and not unexpected
    x = clip_batch(model.cfg)
    with torch.no_grad():
        ours = model.forward_features(x)
    theirs = hf_pooled(reference, x)
    assert ours.shape == (2, model.cfg.embed_dim)
    assert (ours - theirs).abs().max().item() < 1e-5


def test_sinusoid_table_equals_official_numpy_recipe():
    n, d = 1568, 384
    # The official get_sinusoid_encoding_table, written out: float64 numpy, then float32.
    angles = np.array([[pos / np.power(10000, 2 * (j // 2) / d) for j in range(d)] for pos in range(n)])
    angles[:, 0::2] = np.sin(angles[:, 0::2])
    angles[:, 1::2] = np.cos(angles[:, 1::2])
    assert torch.equal(sinusoid_table(n, d), torch.tensor(angles, dtype=torch.float))


def test_variants_have_official_sizes():
    sizes = {
        name: (variant_config(name).embed_dim, variant_config(name).depth, variant_config(name).num_heads)
        for name in ("vit-s", "vit-b", "vit-l", "vit-h", "vit-g")
    }
    assert sizes == {
        "vit-s": (384, 12, 6),
        "vit-b": (768, 12, 12),
        "vit-l": (1024, 24, 16),
        "vit-h": (1280, 32, 16),
        "vit-g": (1408, 40, 16),
    }
    assert variant_config("vit-g").num_tokens == 2048 and variant_config("vit-b").num_tokens == 1568
    with pytest.raises(ConfigError, match="valid: vit-tiny, vit-s"):
        variant_config("vit-xl")


def test_vit_s_parameter_count_is_22m():
    model = VideoMAE2(variant_config("vit-s"))
    assert round(sum(p.numel() for p in model.parameters()) / 1e6) == 22


def features_after_loading(checkpoint: dict, variant: str, x: torch.Tensor) -> torch.Tensor:
    model = VideoMAE2(variant_config(variant))
    load_filtered_state(model, checkpoint_filter_fn(checkpoint, model.cfg), variant)
    with torch.no_grad():
        return model.eval().forward_features(x)


def assert_same_features(checkpoint: dict, source: VideoMAE2) -> None:
    x = clip_batch(source.cfg)
    with torch.no_grad():
        expected = source.forward_features(x)
    assert torch.equal(features_after_loading(checkpoint, "vit-tiny", x), expected)


def prefixed(state: dict, prefix: str) -> dict:
    return {prefix + k: v for k, v in state.items()}


@pytest.mark.parametrize("layout", ["model", "module", "bare", "_orig_mod.", "module.", "backbone.", "model."])
def test_every_official_layout_loads_to_the_same_features(layout):
    source = random_model("vit-tiny")
    state = finetune_layout(source)
    checkpoint = (
        {"model": state}
        if layout == "model"
        else {"module": state}
        if layout == "module"
        else state
        if layout == "bare"
        else prefixed(state, layout)
    )
    assert_same_features(checkpoint, source)


def test_distilled_fp16_checkpoint_is_upcast():
    source = random_model("vit-tiny")
    checkpoint = distill_file(source)
    state = checkpoint_filter_fn(checkpoint, source.cfg)
    assert all(v.dtype == torch.float32 for v in state.values())
    assert "head.weight" not in state
    expected = source.state_dict()["blocks.0.attn.qkv.weight"].half().float()
    assert torch.equal(state["blocks.0.attn.qkv.weight"], expected)
    assert checkpoint["module"]["blocks.0.attn.qkv.weight"].dtype == torch.float16  # input untouched


def test_pretraining_checkpoint_uses_encoder_norm_as_fc_norm():
    source = random_model("vit-tiny")
    checkpoint = pretrain_file(source)
    state = checkpoint_filter_fn(checkpoint, source.cfg)
    assert not any(k.startswith(("decoder", "encoder_to_decoder", "mask_token", "norm.")) for k in state)
    assert torch.equal(state["fc_norm.weight"], source.state_dict()["fc_norm.weight"])
    assert_same_features(checkpoint, source)


def test_filter_is_pure():
    source = random_model("vit-tiny")
    checkpoint = prefixed(finetune_layout(source), "module.")
    keys = list(checkpoint)
    checkpoint_filter_fn(checkpoint, source.cfg)
    assert list(checkpoint) == keys


def test_missing_and_unexpected_keys_are_named():
    source = random_model("vit-tiny")
    state = finetune_layout(source)
    del state["blocks.1.mlp.fc2.bias"]
    state["blocks.0.attn.k_bias"] = torch.zeros(64)
    with pytest.raises(
        CheckpointError, match=r"missing keys: blocks\.1\.mlp\.fc2\.bias.*unexpected keys: blocks\.0\.attn\.k_bias"
    ):
        features_after_loading(state, "vit-tiny", clip_batch(source.cfg))


def test_wrong_variant_error_names_the_right_one():
    state = checkpoint_filter_fn(finetune_layout(VideoMAE2(variant_config("vit-s"))), variant_config("vit-s"))
    assert infer_variant(state) == "vit-s"
    model = VideoMAE2(variant_config("vit-b"))
    with pytest.raises(CheckpointError, match="looks like 'vit-s'"):
        load_filtered_state(model, state, "vit-b")


def test_learned_position_embedding_is_refused():
    source = random_model("vit-tiny")
    state = finetune_layout(source)
    state["pos_embed"] = torch.randn(1, source.cfg.num_tokens, source.embed_dim)
    with pytest.raises(CheckpointError, match="learned pos_embed"):
        checkpoint_filter_fn(state, source.cfg)


def test_fewer_frames_index_the_same_position_table():
    model = random_model("vit-tiny")
    x = clip_batch(model.cfg, frames=8)
    with torch.no_grad():
        pooled = model.forward_features(x)
    assert pooled.shape == (2, 64)
    with pytest.raises(ValueError, match="multiple of tubelet size"):
        model.forward_features(clip_batch(model.cfg, frames=7))


def test_raw_pixel_embedding_equals_embedding_of_normalised_pixels():
    model = random_model("vit-tiny")
    pixels = torch.randint(0, 256, (2, 3, 16, 64, 64), generator=torch.Generator().manual_seed(3)).float()
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    normalised = (pixels / 255 - torch.tensor(mean).view(1, 3, 1, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1, 1)
    with torch.no_grad():
        expected = model.patch_embed(normalised)
        got = model.patch_embed.for_raw_pixels(mean, std)(pixels)
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-5)
    assert expected.abs().mean() > 0.1  # not trivially small


def test_patch_embedding_equals_the_official_conv3d():
    model = random_model("vit-s")
    x = clip_batch(model.cfg, batch=1)
    with torch.no_grad():
        conv = model.patch_embed.proj(x).flatten(2).transpose(1, 2)  # official: Conv3d, then (B, N, D)
        torch.testing.assert_close(model.patch_embed(x), conv, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_encoder_on_raw_clips_equals_the_normalising_path(tmp_path, precision):
    from encoder.factory import resolve_video_encoder
    from encoder.preprocess import normalize_clips

    encoder = resolve_video_encoder("vit-tiny", "random", tmp_path).load("cpu", precision)
    clips = np.random.default_rng(4).integers(0, 256, (2, 16, 64, 64, 3), dtype=np.uint8)
    pre = encoder.preprocess
    with torch.inference_mode():
        x = normalize_clips(clips, pre.size, pre.mean, pre.std).to(next(encoder.model.parameters()).dtype)
        expected = torch.nn.functional.normalize(encoder.model.forward_features(x).float(), dim=-1).numpy()
    got = encoder.embed(clips)
    np.testing.assert_allclose(got, expected, atol=1e-5 if precision == "fp32" else 2e-2)
    assert (got * expected).sum(axis=1).min() > (0.99999 if precision == "fp32" else 0.999)
