"""Build checkpoints in the official VideoMAE v2 file layouts from random values."""

from __future__ import annotations

import torch

from encoder.videomae2 import VideoMAE2, sinusoid_table


def finetune_layout(model: VideoMAE2, num_classes: int = 710) -> dict[str, torch.Tensor]:
    """Keys of modeling_finetune.VisionTransformer: our keys plus a classification head."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    generator = torch.Generator().manual_seed(1)
    state["head.weight"] = torch.randn(num_classes, model.embed_dim, generator=generator)
    state["head.bias"] = torch.zeros(num_classes)
    return state


def distill_file(model: VideoMAE2) -> dict:
    """The distilled S/B release: fp16 state under 'module', head included."""
    return {"module": {k: v.half() for k, v in finetune_layout(model).items()}, "epoch": 99}


def pretrain_file(model: VideoMAE2, decoder_dim: int = 192) -> dict:
    """A pretraining checkpoint: 'encoder.' prefix, per-token 'encoder.norm', a decoder."""
    state = {}
    for key, value in model.state_dict().items():
        key = key.replace("fc_norm.", "norm.")
        state[f"encoder.{key}"] = value.clone()
    generator = torch.Generator().manual_seed(2)
    state["encoder_to_decoder.weight"] = torch.randn(decoder_dim, model.embed_dim, generator=generator)
    state["mask_token"] = torch.zeros(1, 1, decoder_dim)
    state["decoder.blocks.0.norm1.weight"] = torch.ones(decoder_dim)
    state["decoder.norm.weight"] = torch.ones(decoder_dim)
    state["decoder.head.weight"] = torch.randn(1536, decoder_dim, generator=generator)
    state["pos_embed"] = sinusoid_table(model.cfg.num_tokens, model.embed_dim)[None]
    return {"model": state}
