"""The optimisation half of pretraining, as the official VideoMAE v2 recipe runs it: AdamW (0.9, 0.95)
with weight decay 0.05 on matrices only, a learning rate scaled by the total batch (lr x batch / 256),
linear warmup then cosine decay, gradient clipping, gradient accumulation.

Plain tensors in, a loss out: nothing here knows of files, catalogs or clocks, so the same `train_step`
runs on a CPU, on CUDA, or inside a distributed engine's worker.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch

from encoder.pretrain_objective import MAE, Objective, keep_constraint, objective_loss

REFERENCE_BATCH = 256  # the official code scales every learning rate by total batch / 256
BETAS = (0.9, 0.95)
EPS = 1e-8
WEIGHT_DECAY = 0.05
WARMUP_FRACTION = 0.1  # official: 20 warmup epochs of 200 (ViT-B/L/H/g hybrid pretraining)
MIN_LR = 1e-5  # official defaults, before scaling by batch
WARMUP_LR = 1e-6


class NonFiniteLoss(ArithmeticError):
    """The loss became NaN or infinite (the official code stops there too)."""


@dataclass(frozen=True)
class Schedule:
    """Learning rate per optimizer step: linear warmup from `warmup_lr`, then cosine from `lr` to `min_lr`."""

    lr: float  # peak, already scaled by batch
    min_lr: float
    warmup_lr: float
    total_steps: int
    warmup_steps: int

    def at(self, step: int) -> float:
        if step < self.warmup_steps:  # np.linspace(warmup_lr, lr, warmup_steps) in the official code
            if self.warmup_steps == 1:
                return self.warmup_lr
            return self.warmup_lr + (self.lr - self.warmup_lr) * step / (self.warmup_steps - 1)
        i, n = step - self.warmup_steps, max(1, self.total_steps - self.warmup_steps)
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * i / n))


def scaled_schedule(base_lr: float, total_batch: int, total_steps: int) -> Schedule:
    """The official schedule for `total_steps` steps of `total_batch` clips (batch size x accumulation)."""
    scale = total_batch / REFERENCE_BATCH
    warmup = min(total_steps - 1, round(total_steps * WARMUP_FRACTION)) if total_steps > 1 else 0
    return Schedule(base_lr * scale, MIN_LR * scale, WARMUP_LR * scale, total_steps, warmup)


def build_optimizer(model: torch.nn.Module, weight_decay: float = WEIGHT_DECAY) -> torch.optim.AdamW:
    """AdamW over two groups, as the official `get_parameter_groups`: biases, norms, 1-D parameters and
    the model's `no_weight_decay()` names (positions, mask token) are not decayed."""
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 or name.endswith(".bias") or name in skip else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=0.0, betas=BETAS, eps=EPS)


@dataclass(frozen=True)
class MicroBatch:
    """One forward/backward's worth: clips in [0, 1] and their masks, on the model's device."""

    clips: torch.Tensor  # float (B, 3, T, H, W) in [0, 1]
    hidden: torch.Tensor  # bool (B, N): True = hidden from the encoder
    decoded: torch.Tensor  # bool (B, N): True = reconstructed by the decoder
    generator: torch.Generator | None = None  # seeded per micro-batch: the contrastive term's views


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    micro_batches: list[MicroBatch],
    lr: float,
    clip_grad: float | None = None,
    autocast=None,
    objective: Objective = MAE,
) -> float:
    """One optimizer step over `micro_batches` (gradients accumulated, averaged); returns the mean loss.

    `autocast`: a context manager factory (e.g. `Runtime.autocast`) for the forward passes, or None."""
    model.train()
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    total = torch.zeros((), device=micro_batches[0].clips.device)
    for batch in micro_batches:
        with autocast() if autocast is not None else contextlib.nullcontext():
            loss = objective_loss(model, batch.clips, batch.hidden, batch.decoded, objective, batch.generator)
        (loss.float() / len(micro_batches)).backward()
        total += loss.detach().float()
    mean = float(total) / len(micro_batches)  # one device sync per step
    if not math.isfinite(mean):
        raise NonFiniteLoss(f"the loss is {mean}; lower --lr or use --precision fp32")
    if clip_grad:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
    optimizer.step()
    keep_constraint(model, objective)
    return mean
