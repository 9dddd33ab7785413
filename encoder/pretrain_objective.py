"""Which loss pretraining minimises: the masked reconstruction alone, or with the clip-level contrastive term.

`mae` is the official VideoMAE v2 objective (encoder/pretrain_step.py). `mae+nce` adds, with weight
`nce_weight`, InfoNCE on the pooled clip embedding that search uses (encoder/contrastive.py: two views of
each clip, the clip played backwards as a negative). bench/RESULTS.md ("Pretraining and k-NN retrieval")
has the measurements that chose the default. Plain tensors in, a loss out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from encoder.contrastive import DEFAULT_TEMPERATURE, clip_contrastive_loss
from encoder.errors import ConfigError
from encoder.pretrain_step import normalize_input, pretrain_loss
from encoder.videomae2_pretrain import VideoMAE2Pretrain

OBJECTIVES = ("mae", "mae+nce")


@dataclass(frozen=True)
class Objective:
    name: str = "mae"  # mae | mae+nce
    nce_weight: float = 1.0  # weight of the contrastive term beside the reconstruction loss
    temperature: float = DEFAULT_TEMPERATURE  # InfoNCE temperature

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
    """The step's loss: the reconstruction loss, plus the weighted contrastive term for `mae+nce` (its views
    drawn from `generator`, so a seeded step is reproducible)."""
    loss = pretrain_loss(model, clips_01, hidden, decoded)
    if objective.name == "mae+nce":

        def embed(clips: torch.Tensor) -> torch.Tensor:
            return model.encoder.forward_features(normalize_input(clips, model.cfg))

        nce = clip_contrastive_loss(embed, clips_01, generator, objective.temperature)
        loss = loss + objective.nce_weight * nce
    return loss
