"""VideoMAE v2 pretraining model: loss parity, the dual-masking path, checkpoints, reconstruction."""

from __future__ import annotations

import json

import pytest
import torch
from checkpoints import distill_file, finetune_layout, official_pretrain_file, pretrain_file
from helpers import cli_in_process
from hf_reference import hf_pretraining_model, to_hf_pretrain_state
from safetensors.torch import save_file

from app.demo import synthesize_video
from encoder.errors import CheckpointError, ConfigError
from encoder.masking import MaskSpec, make_masks
from encoder.pretrain_checkpoint import encoder_state, load_pretrain_state, save_pretrain_state
from encoder.pretrain_step import normalize_input, pixel_targets, pretrain_loss
from encoder.reconstruction import masked_input, reconstruct_pixels
from encoder.videomae2 import VideoMAE2, variant_config
from encoder.videomae2_pretrain import VideoMAE2Pretrain, pretrain_config

MEAN = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1, 1)
STD = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1, 1)


def random_pretrain_model(variant: str = "vit-tiny", seed: int = 0) -> VideoMAE2Pretrain:
    """Seeded official init, then non-trivial LayerNorm affines and biases so a wrong mapping shows."""
    model = VideoMAE2Pretrain(pretrain_config(variant)).init_random_(seed)
    generator = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("norm1.weight", "norm2.weight", "norm.weight")):
                param.copy_(1 + 0.1 * torch.randn(param.shape, generator=generator))
            elif name.endswith(("bias", "q_bias", "v_bias")):
                param.copy_(0.02 * torch.randn(param.shape, generator=generator))
    return model.eval()


def clips(batch: int = 2, seed: int = 0, side: int = 64) -> torch.Tensor:
    return torch.rand(batch, 3, 16, side, side, generator=torch.Generator().manual_seed(seed))


def masks(spec: MaskSpec, model: VideoMAE2Pretrain, batch: int = 2, seed: int = 0):
    return make_masks(spec, model.cfg.grid, batch, torch.Generator().manual_seed(seed))


def test_loss_matches_transformers_pretraining_with_decoder_ratio_zero():
    """With decoder ratio 0 the official dual-masking path is VideoMAE v1's, which transformers'
    VideoMAEForPreTraining implements independently. Agreement covers: the tubelet embedding and encoder
    positions, the encoder over the visible tokens only, its per-token final norm, encoder_to_decoder,
    mask tokens with the decoder's sinusoid positions after the visible tokens, the decoder blocks, norm
    and head over the last M tokens, the un-normalised target in (t h w)(p0 p1 p2 c) layout with per-
    tubelet unbiased-std normalisation, and the MSE. Not covered (transformers has no decoder masking):
    decoding a subset that includes visible tokens, and a loss over hidden-and-decoded tokens only;
    `test_loss_over_a_decoded_subset_equals_a_hand_computation` checks those directly."""
    model = random_pretrain_model()
    reference = hf_pretraining_model(model.cfg)
    reference.load_state_dict(to_hf_pretrain_state(model.state_dict()), strict=True)
    x = clips()
    hidden, decoded = masks(MaskSpec("tube", 0.9, 0.0), model)
    with torch.no_grad():
        ours = pretrain_loss(model, x, hidden, decoded)
        theirs = reference(((x - MEAN) / STD).permute(0, 2, 1, 3, 4), bool_masked_pos=hidden)
        predicted = model(normalize_input(x, model.cfg), hidden, decoded)
    assert predicted.shape == theirs.logits.shape == (2, 8 * 14, 2 * 16 * 16 * 3)
    assert (predicted - theirs.logits).abs().max().item() < 1e-5
    assert abs(ours.item() - theirs.loss.item()) < 1e-5
    assert ours.item() > 0.5  # a real reconstruction error, not a trivially small one


def tubelet_target(clip: torch.Tensor, t: int, h: int, w: int) -> torch.Tensor:
    """One token's target, by hand: its 2x16x16 pixels per channel, normalised, (p0 p1 p2) then c."""
    cube = clip[:, 2 * t : 2 * t + 2, 16 * h : 16 * h + 16, 16 * w : 16 * w + 16]  # (C, 2, 16, 16)
    values = cube.reshape(3, -1).T  # (512, C)
    return ((values - values.mean(0)) / (values.std(0, unbiased=True) + 1e-6)).flatten()


def test_loss_over_a_decoded_subset_equals_a_hand_computation():
    """Decoder ratio 0.5: the decoder input is the visible tokens, then a mask token for every decoded
    token (visible ones included) in token order; the loss averages only tokens hidden AND decoded."""
    model = random_pretrain_model()
    x = clips()
    hidden, decoded = masks(MaskSpec("tube", 0.75, 0.5), model)
    assert (decoded & ~hidden).any() and (hidden & ~decoded).any()  # the subset case is really exercised
    loss = pretrain_loss(model, x, hidden, decoded)

    t_, h_, w_ = model.cfg.grid
    pos = model.decoder_pos_embed
    with torch.no_grad():
        visible = model.encoder_to_decoder(model.encoder.forward_visible(normalize_input(x, model.cfg), hidden))
        total, count = 0.0, 0
        for b in range(2):
            shown = [i for i in range(t_ * h_ * w_) if not hidden[b, i]]
            wanted = [i for i in range(t_ * h_ * w_) if decoded[b, i]]
            rows = [visible[b, j] + pos[i] for j, i in enumerate(shown)]
            rows += [model.mask_token[0, 0] + pos[i] for i in wanted]
            out = model.decoder(torch.stack(rows)[None], len(wanted))[0]
            for row, i in zip(out, wanted):
                if hidden[b, i]:
                    t, rest = divmod(i, h_ * w_)
                    target = tubelet_target(x[b], t, *divmod(rest, w_))
                    total += (row - target).pow(2).mean().item()
                    count += 1
    assert count == int((hidden & decoded).sum())
    assert abs(loss.item() - total / count) < 1e-5

    loss.backward()  # every part of the model learns from it
    for part in (model.encoder.blocks[0].attn.qkv.weight, model.encoder_to_decoder.weight, model.mask_token):
        assert part.grad is not None and part.grad.abs().sum() > 0


def test_targets_are_given_for_decoded_tokens_and_counted_where_hidden():
    model = random_pretrain_model()
    hidden, decoded = masks(MaskSpec("random", 0.9, 0.5), model)
    targets, counted = pixel_targets(clips(), model.cfg, hidden, decoded)
    assert targets.shape == (2, 64, 1536) and targets.dtype == torch.float32
    assert torch.equal(counted, hidden[decoded].view(2, -1))


def test_step_runs_under_bf16_autocast():
    model = random_pretrain_model()
    hidden, decoded = masks(MaskSpec(), model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = pretrain_loss(model, clips(), hidden, decoded)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_decoder_variants_have_official_sizes():
    sizes = {
        v: (pretrain_config(v).decoder_dim, pretrain_config(v).decoder_heads, pretrain_config(v).decoder_depth)
        for v in ("vit-s", "vit-b", "vit-l", "vit-h", "vit-g")
    }
    assert sizes == {
        "vit-s": (192, 3, 4),
        "vit-b": (384, 6, 4),
        "vit-l": (512, 8, 4),
        "vit-h": (512, 8, 4),
        "vit-g": (512, 8, 4),
    }
    assert pretrain_config("vit-g").patch_pixels == 2 * 14 * 14 * 3
    model = VideoMAE2Pretrain(pretrain_config("vit-s"))
    assert model.encoder_to_decoder.bias is None
    assert pretrain_config("vit-tiny", drop_path_rate=0.1, decoder_depth=1).encoder.drop_path_rate == 0.1
    with pytest.raises(ConfigError, match="unknown pretraining settings: decoder_width"):
        pretrain_config("vit-tiny", decoder_width=8)


def test_mask_token_starts_truncated_normal():
    token = VideoMAE2Pretrain(pretrain_config("vit-tiny", decoder_dim=512)).init_random_(0).mask_token
    assert token.abs().max() <= 0.02 and 0.005 < token.std() < 0.02


def test_drop_path_acts_only_while_training():
    model = random_pretrain_model()
    dropping = VideoMAE2Pretrain(pretrain_config("vit-tiny", drop_path_rate=0.5))
    dropping.load_state_dict(model.state_dict())
    hidden, decoded = masks(MaskSpec(), model)
    x = normalize_input(clips(), model.cfg)
    with torch.no_grad():
        assert torch.equal(dropping.eval()(x, hidden, decoded), model(x, hidden, decoded))
        torch.manual_seed(0)
        assert not torch.equal(dropping.train()(x, hidden, decoded), model(x, hidden, decoded))


def test_official_pretraining_checkpoint_round_trip():
    cfg = pretrain_config("vit-tiny")
    checkpoint = official_pretrain_file(cfg)
    model, had_decoder = load_pretrain_state(checkpoint, "vit-tiny")
    assert had_decoder
    saved = save_pretrain_state(model)
    original = checkpoint["model"]
    assert sorted(saved) == sorted(original)
    assert all(torch.equal(saved[k], original[k]) for k in original)
    assert torch.equal(model.encoder.fc_norm.weight, original["encoder.norm.weight"])


def test_a_saved_model_reloads_to_the_same_loss():
    model = random_pretrain_model()
    again, had_decoder = load_pretrain_state({"model": save_pretrain_state(model)}, "vit-tiny", seed=5)
    hidden, decoded = masks(MaskSpec(), model)
    with torch.no_grad():
        assert had_decoder
        assert pretrain_loss(again.eval(), clips(), hidden, decoded) == pretrain_loss(model, clips(), hidden, decoded)


def test_a_checkpoint_with_a_wider_or_deeper_decoder_is_read_as_such():
    cfg = pretrain_config("vit-tiny", decoder_dim=48, decoder_depth=3)
    model, _ = load_pretrain_state(official_pretrain_file(cfg), "vit-tiny")
    assert (model.cfg.decoder_dim, model.cfg.decoder_depth) == (48, 3)


def test_warm_start_from_an_encoder_only_checkpoint_starts_a_fresh_decoder():
    source = VideoMAE2(variant_config("vit-tiny")).init_random_(3).eval()
    model, had_decoder = load_pretrain_state({"module": finetune_layout(source)}, "vit-tiny", seed=1)
    assert not had_decoder
    x = normalize_input(clips(), model.cfg)
    with torch.no_grad():
        assert torch.equal(model.encoder.eval().forward_features(x), source.forward_features(x))
    again, _ = load_pretrain_state(distill_file(source), "vit-tiny", seed=1)
    assert torch.equal(again.mask_token, model.mask_token) and model.mask_token.abs().sum() > 0
    assert torch.equal(again.decoder.head.weight, model.decoder.head.weight)


def test_a_partial_decoder_is_an_error_naming_the_keys():
    source = VideoMAE2(variant_config("vit-tiny")).init_random_(0)
    with pytest.raises(CheckpointError, match=r"decoder does not fit.*missing keys: decoder\.blocks\.0\.attn"):
        load_pretrain_state(pretrain_file(source, decoder_dim=32), "vit-tiny")


def test_encoder_state_loads_through_the_index_weights_path(tmp_path):
    from encoder.factory import load_videomae2

    model = random_pretrain_model()
    path = tmp_path / "adapted.safetensors"
    save_file(encoder_state(model), str(path))
    loaded = load_videomae2("vit-tiny", str(path), cache_dir=tmp_path / "cache")
    x = normalize_input(clips(), model.cfg)
    with torch.no_grad():
        assert torch.equal(loaded.forward_features(x), model.encoder.eval().forward_features(x))


def test_reconstruction_pastes_visible_tubelets_back_and_inverts_the_target():
    model = random_pretrain_model()
    x = clips()
    hidden, decoded = masks(MaskSpec("tube", 0.75, 0.5), model)
    picture = reconstruct_pixels(model, x, (hidden, decoded))
    assert picture.shape == x.shape and picture.min() >= 0 and picture.max() <= 1
    keep = masked_input(torch.zeros_like(x), hidden, model) == 0  # pixels of visible tubelets
    assert torch.equal(picture[keep], x[keep]) and keep.float().mean() > 0.2
    assert (picture[~keep] != 0.5).any() and (picture[~keep] == 0.5).any()  # filled, and skipped ones grey

    # A decoder that predicted the exact targets would, with each tubelet's own statistics, give the clip.
    perfect = lambda _x, h, d: pixel_targets(x, model.cfg, h, d)[0]  # noqa: E731
    model.forward = perfect
    exact = reconstruct_pixels(model, x, (hidden, hidden), statistics="own")
    assert (exact - x).abs().max() < 1e-5


@pytest.mark.slow
def test_index_accepts_the_encoder_file(tmp_path):
    path = tmp_path / "adapted.safetensors"
    save_file(encoder_state(random_pretrain_model()), str(path))
    synthesize_video(tmp_path / "lib" / "a.mp4", seed=1, seconds=2.0, width=160, height=120)
    done = cli_in_process(
        "index",
        tmp_path / "lib",
        "--data",
        tmp_path / "data",
        "--encoder",
        "vit-tiny",
        "--weights",
        path,
        "--no-image-text",
        "--json",
    )
    assert json.loads(done.stdout)["vectors_embedded"] == {"video": 1}
