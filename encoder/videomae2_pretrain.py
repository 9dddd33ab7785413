"""VideoMAE v2 dual-masking pretraining model: encoder over the visible tokens, a small decoder.

Follows the official OpenGVLab/VideoMAEv2 `models/modeling_pretrain.py` (`PretrainVisionTransformer`):
- the encoder is Tubelet's own `VideoMAE2` run over the visible tokens only; its final LayerNorm
  (`fc_norm`, which pools at inference) is applied per token, the official `encoder.norm`;
- `encoder_to_decoder` is a Linear without bias; `mask_token` is learned (trunc-normal 0.02);
- the decoder input is `[visible + position, mask_token + position of each decoded token]`, with the
  decoder's own sinusoid table; 4 blocks by default; it predicts `tubelet * patch^2 * 3` pixels for the
  decoded tokens only (the last ones of its input).

Plain tensors in and out: no files, no catalog. Checkpoints: `encoder/pretrain_checkpoint.py`; the
loss and its target: `encoder/pretrain_step.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
import torch.nn as nn

from encoder.errors import ConfigError
from encoder.videomae2 import Attention, Block, VideoMAE2, VideoMAE2Config, keep_tokens, sinusoid_table, variant_config

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PretrainConfig:
    encoder: VideoMAE2Config  # the encoder architecture, exactly the one `index` loads afterwards
    decoder_dim: int = 384  # decoder token width (official: 192 for S, 384 for B, 512 for L/H/g)
    decoder_heads: int = 6  # decoder attention heads (official: 3 / 6 / 8)
    decoder_depth: int = 4  # decoder blocks (official `--decoder_depth` default)
    decoder_mlp_ratio: float = 4.0  # decoder MLP width / token width (official: the encoder's ratio)
    # Normalise each tubelet's target pixels per channel (official `--normlize_target`, on by default).
    normalize_target: bool = True
    mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)  # input normalisation the encoder expects
    std: tuple[float, float, float] = field(default=IMAGENET_STD)

    @property
    def grid(self) -> tuple[int, int, int]:
        return self.encoder.grid

    @property
    def patch_pixels(self) -> int:
        """Values the head predicts per token: tubelet * patch^2 * channels."""
        e = self.encoder
        return e.tubelet_size * e.patch_size * e.patch_size * e.in_chans


# Decoder per encoder variant (official `pretrain_videomae_*`); "vit-tiny" (tests) and "vit-mini" (CPU
# benchmarks) are Tubelet's own: half the encoder's width, 2 blocks.
DECODERS: dict[str, dict] = {
    "vit-tiny": dict(decoder_dim=32, decoder_heads=2, decoder_depth=2),
    "vit-mini": dict(decoder_dim=64, decoder_heads=2, decoder_depth=2),
    "vit-s": dict(decoder_dim=192, decoder_heads=3),
    "vit-b": dict(decoder_dim=384, decoder_heads=6),
    "vit-l": dict(decoder_dim=512, decoder_heads=8),
    "vit-h": dict(decoder_dim=512, decoder_heads=8),
    "vit-g": dict(decoder_dim=512, decoder_heads=8),
}


def pretrain_config(variant: str, **overrides) -> PretrainConfig:
    """The pretraining model for encoder `variant`. Overrides name PretrainConfig fields, or
    VideoMAE2Config fields (e.g. `drop_path_rate`), which apply to the encoder."""
    if variant not in DECODERS:
        raise ConfigError(f"no pretraining decoder for VideoMAE v2 {variant!r}; valid: {', '.join(DECODERS)}")
    encoder_fields = {k: overrides.pop(k) for k in list(overrides) if k in VideoMAE2Config.__dataclass_fields__}
    base = PretrainConfig(encoder=variant_config(variant, **encoder_fields), **DECODERS[variant])
    unknown = set(overrides) - set(PretrainConfig.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"unknown pretraining settings: {', '.join(sorted(unknown))}")
    return replace(base, **overrides)


class PretrainDecoder(nn.Module):
    """Official `PretrainVisionTransformerDecoder`: blocks, a final LayerNorm, a pixel head."""

    def __init__(self, cfg: PretrainConfig):
        super().__init__()
        eps = cfg.encoder.norm_eps
        dim = cfg.decoder_dim
        self.blocks = nn.ModuleList(
            Block(dim, cfg.decoder_heads, cfg.decoder_mlp_ratio, eps) for _ in range(cfg.decoder_depth)
        )
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.head = nn.Linear(dim, cfg.patch_pixels)

    def forward(self, x: torch.Tensor, num_predicted: int) -> torch.Tensor:
        """x: (B, V + M, C) decoder input -> pixels (B, M, P) for its last `num_predicted` = M tokens."""
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x[:, x.shape[1] - num_predicted :]))


class VideoMAE2Pretrain(nn.Module):
    """Encoder + decoder. `.encoder` is a plain `VideoMAE2`: what `index` uses after pretraining."""

    def __init__(self, cfg: PretrainConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = VideoMAE2(cfg.encoder)
        self.encoder_to_decoder = nn.Linear(cfg.encoder.embed_dim, cfg.decoder_dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.decoder_dim))
        self.decoder = PretrainDecoder(cfg)
        # Fixed and never in checkpoints, like the encoder's table.
        table = sinusoid_table(cfg.encoder.num_tokens, cfg.decoder_dim)
        self.register_buffer("decoder_pos_embed", table, persistent=False)

    def forward(self, clips: torch.Tensor, hidden: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        """clips: (B, 3, T, H, W) normalised; hidden / decoded: bool (B, N), True = hidden from the encoder
        / predicted by the decoder, equal counts per clip -> predicted pixels (B, M, P) of the M decoded
        tokens in token order, in the normalised-target space (see `pretrain_step.pixel_targets`)."""
        visible = self.encoder_to_decoder(self.encoder.forward_visible(clips, hidden))  # (B, V, C)
        B = visible.shape[0]
        positions = self.decoder_pos_embed.to(visible.dtype).expand(B, -1, -1)
        queries = self.mask_token.to(visible.dtype) + keep_tokens(positions, decoded)  # (B, M, C)
        x = torch.cat([visible + keep_tokens(positions, ~hidden), queries], dim=1)
        return self.decoder(x, queries.shape[1])

    @torch.no_grad()
    def init_random_(self, seed: int) -> VideoMAE2Pretrain:
        """Official pretraining initialisation, seeded: Xavier-uniform linears, zero biases, unit
        LayerNorms, PyTorch's default for the tubelet Conv3d, mask_token trunc-normal 0.02 in ±0.02."""
        generator = torch.Generator().manual_seed(seed)
        init_modules_(self.encoder, generator)
        self.init_decoder_(generator)
        return self

    @torch.no_grad()
    def init_decoder_(self, generator: torch.Generator) -> None:
        """A fresh decoder side (encoder_to_decoder, mask_token, decoder): for warm starts from an
        encoder-only checkpoint."""
        init_modules_(self.encoder_to_decoder, generator)
        init_modules_(self.decoder, generator)
        nn.init.trunc_normal_(self.mask_token, std=0.02, a=-0.02, b=0.02, generator=generator)


def init_modules_(root: nn.Module, generator: torch.Generator) -> None:
    for module in root.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight, generator=generator)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, Attention):
            nn.init.zeros_(module.q_bias)
            nn.init.zeros_(module.v_bias)
        elif isinstance(module, nn.Conv3d):
            bound = 1 / math.sqrt(module.weight[0].numel())
            nn.init.uniform_(module.weight, -bound, bound, generator=generator)
            nn.init.uniform_(module.bias, -bound, bound, generator=generator)
