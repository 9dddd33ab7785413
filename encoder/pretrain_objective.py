"""Which loss pretraining minimises, and under which constraint. Plain tensors in, a loss out.

- `mae`: the official VideoMAE v2 objective (encoder/pretrain_step.py), masked reconstruction.
- `mae+nce`: plus, with weight `nce_weight`, InfoNCE on the pooled clip embedding that search uses
  (encoder/contrastive.py: two views of each clip, the clip played backwards as a negative).
- `nce`: that contrastive term alone (the decoder is not trained).
- `tubelet_difference` (with any of them): the tubelet embedding is kept, after every optimizer step, to
  one that sees only what changes between a tubelet's frames (`TubeletEmbed.keep_only_change_`): what
  stands still in a clip (background, a parked car) then cannot tell clips apart, what moves has to.

bench/RESULTS.md ("Pretraining and k-NN retrieval") has the measurements that chose the default.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from encoder.contrastive import DEFAULT_TEMPERATURE, clip_contrastive_loss
from encoder.errors import ConfigError
from encoder.pretrain_step import normalize_input, pretrain_loss
from encoder.videomae2_pretrain import VideoMAE2Pretrain

OBJECTIVES = ("mae", "mae+nce", "nce")


@dataclass(frozen=True)
class Objective:
    name: str = "mae"  # mae | mae+nce | nce
    nce_weight: float = 1.0  # weight of the contrastive term beside the reconstruction loss
    temperature: float = DEFAULT_TEMPERATURE  # InfoNCE temperature
    tubelet_difference: bool = False  # keep the tubelet embedding seeing only change (`keep_constraint`)

    def __post_init__(self):
        if self.name not in OBJECTIVES:
            raise ConfigError(f"objective {self.name!r}; valid: {', '.join(OBJECTIVES)}")
        if self.nce_weight < 0 or self.temperature <= 0:
            raise ConfigError(f"nce weight {self.nce_weight} must be >= 0 and temperature {self.temperature} > 0")


MAE = Objective("mae")  # the official objective alone


def objective_loss(
    model: VideoMAE2Pretrain,
    clips_01: torch.Tensor,
    hidden: torch.Tensor,
    decoded: torch.Tensor,
    objective: Objective,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """The step's loss: the reconstruction loss (`mae`, `mae+nce`), plus the weighted contrastive term
    (`mae+nce`, `nce`; its views drawn from `generator`, so a seeded step is reproducible)."""
    loss = pretrain_loss(model, clips_01, hidden, decoded) if objective.name != "nce" else torch.zeros(())
    if objective.name in ("mae+nce", "nce"):
        inner = getattr(model, "module", model)  # the model itself, or its DistributedDataParallel wrapper

        def embed(clips: torch.Tensor) -> torch.Tensor:
            return inner.encoder.forward_features(normalize_input(clips, inner.cfg))

        nce = clip_contrastive_loss(embed, clips_01, generator, objective.temperature)
        loss = loss.to(nce.device) + objective.nce_weight * nce
    return loss


def keep_constraint(model: torch.nn.Module, objective: Objective) -> None:
    """Put the weights back inside the objective's constraint (after each optimizer step, and once before
    the first): a projection, so the run optimises within it and every checkpoint satisfies it."""
    if objective.tubelet_difference:
        getattr(model, "module", model).encoder.patch_embed.keep_only_change_()
