"""VideoMAE v2 video transformer (encoder only), one readable file.

Architecture follows the official OpenGVLab/VideoMAEv2 `models/modeling_finetune.py`
(`VisionTransformer` with mean pooling): a Conv3d tubelet embedding, a fixed 1-D sinusoid
position table, pre-norm ViT blocks whose attention has a bias on q and v but not on k, and a
pooled feature `fc_norm(tokens.mean(1))`. Classification heads are not part of Tubelet: the
pooled feature is the embedding. The forward is embed -> blocks -> pool; pretraining
(`encoder/videomae2_pretrain.py`) runs the same blocks over the visible tokens only (`forward_visible`)
and shares `Block` with its decoder.

Which architecture (`VARIANTS`) and which weights (`encoder/weights.py`) are separate things;
`checkpoint_filter_fn` maps every official checkpoint layout onto this module's keys.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from encoder.errors import CheckpointError, ConfigError


@dataclass(frozen=True)
class VideoMAE2Config:
    img_size: int = 224  # input height = width in pixels; fixed by the position table length
    patch_size: int = 16  # spatial side of one tubelet (14 for ViT-g)
    tubelet_size: int = 2  # frames per tubelet (temporal kernel = stride of the embedding)
    # Frames per clip the released models were trained with. Tubelet calls this `window_frames` everywhere
    # else; here it keeps the official VideoMAE v2 / transformers config name, so configs map one to one.
    num_frames: int = 16
    in_chans: int = 3  # RGB
    embed_dim: int = 768  # D, token width
    depth: int = 12  # number of transformer blocks
    num_heads: int = 12  # attention heads; head_dim = D / heads
    mlp_ratio: float = 4.0  # hidden width of the MLP relative to D (ViT-g: 48/11)
    norm_eps: float = 1e-6  # every LayerNorm in the released models uses 1e-6
    # Stochastic depth of the deepest block while training (linear from 0 at the first block, as the
    # official code); 0 = off, and always off in eval mode, so inference never depends on it.
    drop_path_rate: float = 0.0

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (T', H', W') for a clip of `num_frames` frames."""
        side = self.img_size // self.patch_size
        return self.num_frames // self.tubelet_size, side, side

    @property
    def num_tokens(self) -> int:
        t, h, w = self.grid
        return t * h * w

    @property
    def mlp_hidden(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)


# Named architectures as overrides of the defaults (ViT-B). Widths/depths/heads are the
# official ones; "vit-tiny" is Tubelet's own small variant for tests and benchmarks only.
VARIANTS: dict[str, dict] = {
    "vit-tiny": dict(img_size=64, embed_dim=64, depth=2, num_heads=2),
    "vit-s": dict(embed_dim=384, depth=12, num_heads=6),
    "vit-b": dict(embed_dim=768, depth=12, num_heads=12),
    "vit-l": dict(embed_dim=1024, depth=24, num_heads=16),
    "vit-h": dict(embed_dim=1280, depth=32, num_heads=16),
    "vit-g": dict(patch_size=14, embed_dim=1408, depth=40, num_heads=16, mlp_ratio=48 / 11),
    # Tubelet's own, for CPU pretraining benchmarks: vit-tiny's input, twice as wide and deep.
    "vit-mini": dict(img_size=64, embed_dim=128, depth=4, num_heads=4),
}


def variant_config(name: str, **overrides) -> VideoMAE2Config:
    if name not in VARIANTS:
        raise ConfigError(f"unknown VideoMAE v2 variant {name!r}; valid: {', '.join(VARIANTS)}")
    return replace(VideoMAE2Config(**VARIANTS[name]), **overrides)


def sinusoid_table(num_positions: int, dim: int) -> torch.Tensor:
    """Fixed position table (num_positions, dim): sin on even channels, cos on odd ones.

    Built in float64 like the official numpy code, so the float32 cast is bit-identical.
    """
    position = torch.arange(num_positions, dtype=torch.float64)[:, None]
    channel = torch.arange(dim, dtype=torch.float64)
    angle = position / torch.pow(10000.0, 2 * torch.div(channel, 2, rounding_mode="floor") / dim)
    table = torch.empty(num_positions, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle[:, 0::2])
    table[:, 1::2] = torch.cos(angle[:, 1::2])
    return table.float()


class TubeletEmbed(nn.Module):
    """(B, 3, T, H, W) -> (B, N, D) with N = T/2 * H/16 * W/16 tokens in (t, h, w) order."""

    def __init__(self, cfg: VideoMAE2Config):
        super().__init__()
        kernel = (cfg.tubelet_size, cfg.patch_size, cfg.patch_size)
        self.proj = nn.Conv3d(cfg.in_chans, cfg.embed_dim, kernel_size=kernel, stride=kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The kernel equals the stride, so the convolution is one matmul over flattened tubelets:
        # about 3x faster than conv3d on the CPU in bf16 (bench/RESULTS.md), the same sums.
        B, C, T, H, W = x.shape
        t, p = self.proj.kernel_size[0], self.proj.kernel_size[1]
        if T % t:
            raise ValueError(f"frame count {T} is not a multiple of tubelet size {t}")
        tubelets = (
            x.reshape(B, C, T // t, t, H // p, p, W // p, p)
            .permute(0, 2, 4, 6, 1, 3, 5, 7)  # (B, T/t, H/p, W/p, C, t, p, p)
            .reshape(B, -1, C * t * p * p)
        )  # (B, N, C*t*p*p), same order as the kernel
        return F.linear(tubelets, self.proj.weight.flatten(1), self.proj.bias)

    @torch.no_grad()
    def keep_only_change_(self) -> TubeletEmbed:
        """Make each tubelet's kernel sum to zero over its frames (its mean over time taken out), so a
        tubelet whose frames are all alike embeds to the bias alone: the embedding sees what changed within
        a tubelet and nothing that stayed still. For tubelet 2: the second frame's weights = minus the
        first's. A constraint some pretraining runs keep after every step (encoder/pretrain_objective.py);
        the result is an ordinary kernel that inference loads as any other."""
        self.proj.weight.sub_(self.proj.weight.mean(dim=2, keepdim=True))
        return self

    @torch.no_grad()
    def for_raw_pixels(self, mean, std, scale: float = 255.0) -> TubeletEmbed:
        """The same embedding for raw pixels (0..`scale`), the per-channel normalisation
        ((x / scale - mean) / std) folded into the kernel: the embedding is linear, so
        W((x/s - m)/r) + b = (W / (s r)) x + (b - W m / r). Saves a float pass over every frame."""
        weight = self.proj.weight.float()  # (D, C, t, p, p)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=weight.device).view(1, -1, 1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32, device=weight.device).view(1, -1, 1, 1, 1)
        folded = copy.deepcopy(self)
        folded.proj.weight.copy_(weight / (scale * std_t))
        folded.proj.bias.copy_(self.proj.bias.float() - (weight * mean_t / std_t).flatten(1).sum(1))
        return folded


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv matrix; q and v have a bias, k has none."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"width {dim} is not a multiple of {num_heads} heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)  # rows: q | k | v
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias)  # (B, N, 3D)
        q, k, v = qkv.view(B, N, 3, self.num_heads, D // self.num_heads).permute(2, 0, 3, 1, 4)
        # scale defaults to head_dim^-0.5, exactly the official one
        x = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, head_dim)
        return self.proj(x.transpose(1, 2).reshape(B, N, D))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact erf GELU, as in the official code
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DropPath(nn.Module):
    """Stochastic depth: while training, drop a residual branch for a whole sample with probability
    `p` and scale the kept ones by 1/(1-p). The identity in eval mode."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Block(nn.Module):
    """Pre-norm transformer block, shared by the encoder and the pretraining decoder.

    Layer scale is off in every released model (encoder and decoder alike), so absent here.
    """

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float = 4.0, norm_eps: float = 1e-6, drop_path: float = 0.0
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        # Identity when off: no parameters, and the residual sums stay exactly the inference ones.
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def drop_path_rates(rate: float, depth: int) -> list[float]:
    """The official stochastic depth decay rule: linear from 0 (first block) to `rate` (last)."""
    return [x.item() for x in torch.linspace(0, rate, depth)]


def keep_tokens(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """x: (B, N, D), keep: bool (B, N) with the same count per row -> (B, K, D) in token order."""
    B, _, D = x.shape
    return x[keep].reshape(B, -1, D)


class VideoMAE2(nn.Module):
    """VideoMAE v2 encoder with mean pooling; `forward` returns the pooled feature (B, D)."""

    def __init__(self, cfg: VideoMAE2Config):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = TubeletEmbed(cfg)
        # Not a parameter and never in checkpoints: rebuilt from the config.
        self.register_buffer("pos_embed", sinusoid_table(cfg.num_tokens, cfg.embed_dim), persistent=False)
        self.blocks = nn.ModuleList(
            Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, cfg.norm_eps, rate)
            for rate in drop_path_rates(cfg.drop_path_rate, cfg.depth)
        )
        self.fc_norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)

    @property
    def embed_dim(self) -> int:
        return self.cfg.embed_dim

    def _position_table(self, num_tokens: int) -> torch.Tensor:
        # Clips with fewer/more frames than the training length index the same 1-D table further.
        if num_tokens == self.pos_embed.shape[0]:
            return self.pos_embed
        return sinusoid_table(num_tokens, self.cfg.embed_dim).to(self.pos_embed.device)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, T, H, W) normalised pixels, H = W = img_size, T a multiple of tubelet_size."""
        return self.pool(self.forward_blocks(self.embed(x)))

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, N, D) tubelet embeddings in (t, h, w) order -> pooled feature (B, D)."""
        return self.pool(self.forward_blocks(self.add_positions(x)))

    def forward_visible(self, x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """The pretraining encoder: x (B, 3, T, H, W) normalised pixels, `hidden` bool (B, N) with the
        same count per clip (True = hidden) -> the visible tokens after every block and the final
        LayerNorm, per token (B, N_visible, D), in token order (official `forward_features(x, mask)`)."""
        return self.fc_norm(self.forward_blocks(keep_tokens(self.embed(x), ~hidden)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) normalised pixels -> tubelet tokens with their positions, (B, N, D)."""
        _B, _C, _T, H, W = x.shape
        if self.cfg.img_size != H or self.cfg.img_size != W:
            raise ValueError(f"expected {self.cfg.img_size}x{self.cfg.img_size} frames, got {H}x{W}")
        return self.add_positions(self.patch_embed(x))

    def add_positions(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) tubelet embeddings -> the same plus each token's fixed sinusoid position."""
        return x + self._position_table(x.shape[1]).to(x.dtype)

    def forward_blocks(self, x: torch.Tensor) -> torch.Tensor:
        """(B, K, D) positioned tokens, all N of a clip or any subset of them -> (B, K, D)."""
        for block in self.blocks:
            x = block(x)
        return x

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """(B, K, D) block outputs -> the embedding fc_norm(mean over tokens), (B, D)."""
        return self.fc_norm(x.mean(dim=1))

    forward = forward_features

    @torch.no_grad()
    def init_random_(self, seed: int) -> VideoMAE2:
        """Official initialisation (trunc-normal 0.02 linears, unit LayerNorms), seeded."""
        generator = torch.Generator().manual_seed(seed)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02, generator=generator)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Conv3d):
                bound = 1 / math.sqrt(module.weight[0].numel())
                nn.init.uniform_(module.weight, -bound, bound, generator=generator)
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)
        return self


# ----------------------------------------------------------------------------------------------
# Checkpoint remapping

WRAPPER_KEYS = ("model", "module", "state_dict")  # official files nest the weights under one
PREFIXES = ("_orig_mod.", "module.", "encoder.", "backbone.", "model.")
DROPPED_PREFIXES = ("head.", "decoder.", "encoder_to_decoder.", "mask_token", "head_dropout.")


def unwrap_checkpoint(obj: dict) -> dict[str, torch.Tensor]:
    """Return the state dict inside an official checkpoint file's top-level dict."""
    for key in WRAPPER_KEYS:
        if key in obj and isinstance(obj[key], dict):
            return obj[key]
    return obj


def _strip_prefixes(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def checkpoint_filter_fn(checkpoint: dict, cfg: VideoMAE2Config) -> dict[str, torch.Tensor]:
    """Map an official VideoMAE v2 checkpoint onto `VideoMAE2` keys. Pure: inputs are untouched.

    - unwraps `'model'` / `'module'` / `'state_dict'`, strips wrapper prefixes;
    - drops classification heads, the pretraining decoder, `encoder_to_decoder` and `mask_token`;
    - casts fp16/bf16 tensors to float32;
    - pretraining checkpoints end in a per-token `norm` and have no `fc_norm`: that final
      LayerNorm is loaded as `fc_norm` (applied to the token mean), so the pooled feature uses
      the encoder's own learned output normalisation instead of an untrained one;
    - `pos_embed`, when present, must be the fixed sinusoid table (it is not loaded).
    """
    state: dict[str, torch.Tensor] = {}
    for key, value in unwrap_checkpoint(checkpoint).items():
        if not torch.is_tensor(value):
            continue
        key = _strip_prefixes(key)
        if key.startswith(DROPPED_PREFIXES):
            continue
        state[key] = value.float() if value.is_floating_point() else value

    if "fc_norm.weight" not in state and "norm.weight" in state:
        state["fc_norm.weight"] = state.pop("norm.weight")
        state["fc_norm.bias"] = state.pop("norm.bias")

    pos = state.pop("pos_embed", None)
    if pos is not None:
        expected = sinusoid_table(cfg.num_tokens, cfg.embed_dim)
        pos = pos.reshape(-1, pos.shape[-1])
        if pos.shape != expected.shape or not torch.allclose(pos, expected, atol=1e-4):
            raise CheckpointError(
                "checkpoint has a learned pos_embed; only the fixed sinusoid table of the "
                "released VideoMAE v2 models is supported"
            )
    return state


def infer_variant(state: dict[str, torch.Tensor]) -> str | None:
    """Name the registered variant whose shapes match a filtered state dict, if any."""
    weight = state.get("patch_embed.proj.weight")
    if weight is None:
        return None
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    for name in VARIANTS:
        cfg = variant_config(name)
        if (cfg.embed_dim, cfg.patch_size, cfg.depth) == (weight.shape[0], weight.shape[-1], depth):
            return name
    return None


def load_filtered_state(model: VideoMAE2, state: dict[str, torch.Tensor], variant: str) -> None:
    """Strict load with an error that names the missing/unexpected keys and the likely variant."""
    differences = key_differences(model.state_dict(), state)
    if differences:
        guess = infer_variant(state)
        hint = f" The checkpoint looks like {guess!r}." if guess and guess != variant else ""
        raise CheckpointError(f"checkpoint does not fit VideoMAE v2 {variant!r}.{hint} {differences}")
    model.load_state_dict(state, strict=True)


def key_differences(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str | None:
    """None when `state` has exactly `own`'s keys and shapes; else what is missing, unexpected, mismatched."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if not (missing or unexpected or mismatched):
        return None
    return (
        f"missing keys: {_preview(missing)}; unexpected keys: {_preview(unexpected)};"
        f" shape mismatches: {_preview(mismatched)}"
    )


def _preview(keys: list[str], limit: int = 8) -> str:
    if not keys:
        return "none"
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more
