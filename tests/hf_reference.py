"""transformers' VideoMAE as an independent reference implementation of the same network."""

from __future__ import annotations

import torch
from transformers import VideoMAEConfig, VideoMAEForPreTraining, VideoMAEForVideoClassification

from encoder.videomae2 import VideoMAE2Config

BLOCK_KEYS = {
    "norm1.weight": "layernorm_before.weight",
    "norm1.bias": "layernorm_before.bias",
    "norm2.weight": "layernorm_after.weight",
    "norm2.bias": "layernorm_after.bias",
    "attn.q_bias": "attention.attention.query.bias",
    "attn.v_bias": "attention.attention.value.bias",
    "attn.proj.weight": "attention.output.dense.weight",
    "attn.proj.bias": "attention.output.dense.bias",
    "mlp.fc1.weight": "intermediate.dense.weight",
    "mlp.fc1.bias": "intermediate.dense.bias",
    "mlp.fc2.weight": "output.dense.weight",
    "mlp.fc2.bias": "output.dense.bias",
}


def hf_model(cfg: VideoMAE2Config) -> VideoMAEForVideoClassification:
    model = VideoMAEForVideoClassification(
        VideoMAEConfig(
            image_size=cfg.img_size,
            patch_size=cfg.patch_size,
            num_frames=cfg.num_frames,
            tubelet_size=cfg.tubelet_size,
            hidden_size=cfg.embed_dim,
            num_hidden_layers=cfg.depth,
            num_attention_heads=cfg.num_heads,
            intermediate_size=cfg.mlp_hidden,
            layer_norm_eps=1e-6,
            use_mean_pooling=True,
            qkv_bias=True,
            num_labels=2,
        )
    )
    model.fc_norm.eps = 1e-6
    return model.eval()


def to_hf_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        if key.startswith("blocks."):
            _, i, rest = key.split(".", 2)
            prefix = f"videomae.encoder.layer.{i}."
            if rest == "attn.qkv.weight":
                for name, part in zip(("query", "key", "value"), value.chunk(3)):
                    out[f"{prefix}attention.attention.{name}.weight"] = part
            else:
                out[prefix + BLOCK_KEYS[rest]] = value
        elif key.startswith("patch_embed.proj."):
            out[key.replace("patch_embed.proj", "videomae.embeddings.patch_embeddings.projection")] = value
        else:
            out[key] = value
    return out


@torch.no_grad()
def hf_pooled(model: VideoMAEForVideoClassification, x: torch.Tensor) -> torch.Tensor:
    """The same pooled feature as VideoMAE2.forward_features; x is (B, 3, T, H, W)."""
    tokens = model.videomae(x.permute(0, 2, 1, 3, 4)).last_hidden_state
    return model.fc_norm(tokens.mean(1))


def hf_pretraining_model(cfg) -> VideoMAEForPreTraining:
    """transformers' VideoMAE pretraining model with the shapes of a `PretrainConfig` and every LayerNorm
    at eps 1e-6 (its decoder's final norm defaults to 1e-5; the official one is 1e-6)."""
    e = cfg.encoder
    model = VideoMAEForPreTraining(
        VideoMAEConfig(
            image_size=e.img_size,
            patch_size=e.patch_size,
            num_frames=e.num_frames,
            tubelet_size=e.tubelet_size,
            hidden_size=e.embed_dim,
            num_hidden_layers=e.depth,
            num_attention_heads=e.num_heads,
            intermediate_size=e.mlp_hidden,
            layer_norm_eps=1e-6,
            use_mean_pooling=False,  # the pretraining encoder ends in a per-token LayerNorm
            decoder_hidden_size=cfg.decoder_dim,
            decoder_num_hidden_layers=cfg.decoder_depth,
            decoder_num_attention_heads=cfg.decoder_heads,
            decoder_intermediate_size=int(cfg.decoder_dim * cfg.decoder_mlp_ratio),
            norm_pix_loss=cfg.normalize_target,
        )
    )
    model.decoder.norm.eps = 1e-6
    return model.eval()


def to_hf_pretrain_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`VideoMAE2Pretrain.state_dict()` keys -> `VideoMAEForPreTraining` keys."""
    encoder = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
    out = {k: v for k, v in to_hf_state(encoder).items() if not k.startswith("fc_norm.")}
    out["videomae.layernorm.weight"] = encoder["fc_norm.weight"]
    out["videomae.layernorm.bias"] = encoder["fc_norm.bias"]
    for key, value in state.items():
        if key.startswith("decoder.blocks."):
            _, _, i, rest = key.split(".", 3)
            prefix = f"decoder.decoder_layers.{i}."
            if rest == "attn.qkv.weight":
                for name, part in zip(("query", "key", "value"), value.chunk(3)):
                    out[f"{prefix}attention.attention.{name}.weight"] = part
            else:
                out[prefix + BLOCK_KEYS[rest]] = value
        elif not key.startswith("encoder."):
            out[key] = value  # decoder.norm, decoder.head, encoder_to_decoder, mask_token
    return out
