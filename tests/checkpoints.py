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


def official_block_shapes(dim: int, mlp_ratio: float = 4.0) -> dict[str, tuple[int, ...]]:
    """Parameters of one official `modeling_finetune.Block` (qkv_bias=True, no layer scale), by name."""
    hidden = int(dim * mlp_ratio)
    return {
        "norm1.weight": (dim,),
        "norm1.bias": (dim,),
        "attn.qkv.weight": (3 * dim, dim),
        "attn.q_bias": (dim,),
        "attn.v_bias": (dim,),
        "attn.proj.weight": (dim, dim),
        "attn.proj.bias": (dim,),
        "norm2.weight": (dim,),
        "norm2.bias": (dim,),
        "mlp.fc1.weight": (hidden, dim),
        "mlp.fc1.bias": (hidden,),
        "mlp.fc2.weight": (dim, hidden),
        "mlp.fc2.bias": (dim,),
    }


def official_pretrain_file(cfg, seed: int = 0) -> dict:
    """A checkpoint as the official run_mae_pretraining.py saves it, from random values:
    {"model": PretrainVisionTransformer.state_dict(), "optimizer": ..., "epoch": ...}. `cfg` is a
    PretrainConfig; the key names are written out from the official modules, not from Tubelet's."""
    e, d = cfg.encoder, cfg.decoder_dim
    shapes = {
        "encoder.patch_embed.proj.weight": (e.embed_dim, e.in_chans, e.tubelet_size, e.patch_size, e.patch_size),
        "encoder.patch_embed.proj.bias": (e.embed_dim,),
        "encoder.norm.weight": (e.embed_dim,),
        "encoder.norm.bias": (e.embed_dim,),
        "encoder_to_decoder.weight": (d, e.embed_dim),
        "mask_token": (1, 1, d),
        "decoder.norm.weight": (d,),
        "decoder.norm.bias": (d,),
        "decoder.head.weight": (cfg.patch_pixels, d),
        "decoder.head.bias": (cfg.patch_pixels,),
    }
    for i in range(e.depth):
        shapes.update(
            {f"encoder.blocks.{i}.{k}": s for k, s in official_block_shapes(e.embed_dim, e.mlp_ratio).items()}
        )
    for i in range(cfg.decoder_depth):
        shapes.update(
            {f"decoder.blocks.{i}.{k}": s for k, s in official_block_shapes(d, cfg.decoder_mlp_ratio).items()}
        )
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        value = 0.05 * torch.randn(shape, generator=generator)
        state[key] = value + 1 if key.endswith(("norm.weight", "norm1.weight", "norm2.weight")) else value
    return {"model": state, "optimizer": {"state": {}, "param_groups": []}, "epoch": 3}
