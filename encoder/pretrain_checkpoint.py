"""Pretraining checkpoints in the official VideoMAE v2 layout, warm starts, and the encoder-only export.

The official `run_mae_pretraining.py` saves `{"model": state, ...}` with keys `encoder.*` (the per-token
final LayerNorm is `encoder.norm`), `encoder_to_decoder.weight`, `mask_token` and `decoder.*`; the
sinusoid tables are not saved. Tubelet's encoder names that LayerNorm `fc_norm` (it pools at
inference), so saving and loading rename it; everything else maps one to one.
"""

from __future__ import annotations

import torch

from encoder.errors import CheckpointError
from encoder.videomae2 import checkpoint_filter_fn, key_differences, load_filtered_state, unwrap_checkpoint
from encoder.videomae2_pretrain import VideoMAE2Pretrain, pretrain_config

DECODER_SIDE = ("decoder.", "encoder_to_decoder.", "mask_token")
WRAPPER_PREFIXES = ("_orig_mod.", "module.")  # torch.compile / DistributedDataParallel


def save_pretrain_state(model: VideoMAE2Pretrain) -> dict[str, torch.Tensor]:
    """The whole model in the official layout (bare; the official file nests it under "model")."""
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("encoder.fc_norm."):
            key = "encoder.norm." + key.removeprefix("encoder.fc_norm.")
        state[key] = value.detach().clone()
    return state


def encoder_state(model: VideoMAE2Pretrain) -> dict[str, torch.Tensor]:
    """The encoder alone in Tubelet's layout: a file of it is what `run.py index --weights PATH` loads."""
    return {key: value.detach().clone().contiguous() for key, value in model.encoder.state_dict().items()}


def load_pretrain_state(
    checkpoint: dict, variant: str, *, seed: int = 0, **overrides
) -> tuple[VideoMAE2Pretrain, bool]:
    """Build the pretraining model for `variant` from a checkpoint -> (model, had_decoder).

    `checkpoint`: an official pretraining file (wrapped or bare), a state from `save_pretrain_state`,
    or any encoder checkpoint Tubelet's `index` loads (distilled, fine-tuned, encoder-only). Without a
    decoder side, the decoder starts fresh (seeded by `seed`) and `had_decoder` is False: say so to the
    user. The decoder's width and depth are read from the checkpoint unless `overrides` name them.
    """
    state = {_strip(key): value for key, value in unwrap_checkpoint(checkpoint).items() if torch.is_tensor(value)}
    decoder_side = {key: value.float() for key, value in state.items() if key.startswith(DECODER_SIDE)}
    had_decoder = bool(decoder_side)
    if had_decoder:
        overrides = {**_decoder_shape(decoder_side), **overrides}
    model = VideoMAE2Pretrain(pretrain_config(variant, **overrides))
    load_filtered_state(model.encoder, checkpoint_filter_fn(state, model.cfg.encoder), variant)
    if had_decoder:
        _load_decoder_side(model, decoder_side, variant)
    else:
        model.init_decoder_(torch.Generator().manual_seed(seed))
    return model, had_decoder


def _strip(key: str) -> str:
    for prefix in WRAPPER_PREFIXES:
        while key.startswith(prefix):
            key = key[len(prefix) :]
    return key


def _decoder_shape(decoder_side: dict[str, torch.Tensor]) -> dict:
    shape = {}
    if "mask_token" in decoder_side:
        shape["decoder_dim"] = decoder_side["mask_token"].shape[-1]
    blocks = {key.split(".")[2] for key in decoder_side if key.startswith("decoder.blocks.")}
    if blocks:
        shape["decoder_depth"] = len(blocks)
    return shape


def _load_decoder_side(model: VideoMAE2Pretrain, decoder_side: dict[str, torch.Tensor], variant: str) -> None:
    own = {key: value for key, value in model.state_dict().items() if key.startswith(DECODER_SIDE)}
    differences = key_differences(own, decoder_side)
    if differences:
        cfg = model.cfg
        raise CheckpointError(
            f"pretraining checkpoint's decoder does not fit the {variant!r} decoder ({cfg.decoder_dim} wide,"
            f" {cfg.decoder_depth} blocks, {cfg.decoder_heads} heads): {differences}"
        )
    model.load_state_dict(decoder_side, strict=False)  # the decoder side only; its keys were checked above
