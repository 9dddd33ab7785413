"""The clip-level contrastive term (encoder/contrastive.py): exact loss values, views that keep the motion."""

from __future__ import annotations

import math

import torch

from encoder.contrastive import appearance_jitter, info_nce, reverse_time


def _hand_nce(a: torch.Tensor, p: torch.Tensor, n: torch.Tensor, temperature: float) -> float:
    """InfoNCE written out term by term: -log(exp(s_ii / t) / sum_j exp(s_ij / t)), both directions."""
    a, p, n = (torch.nn.functional.normalize(x.double(), dim=-1) for x in (a, p, n))
    total = 0.0
    for x, y in ((a, p), (p, a)):
        for i in range(len(x)):
            candidates = [x[i] @ y[j] for j in range(len(y))] + [x[i] @ n[k] for k in range(len(n))]
            denominator = sum(math.exp(c / temperature) for c in candidates)
            total += -math.log(math.exp((x[i] @ y[i]) / temperature) / denominator)
    return total / (2 * len(a))


def test_info_nce_matches_the_hand_computed_loss_with_shared_negatives():
    g = torch.Generator().manual_seed(0)
    a, p, n = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g), torch.randn(3, 8, generator=g)
    assert abs(info_nce(a, p, n, temperature=0.2).item() - _hand_nce(a, p, n, 0.2)) < 1e-5
    no_negatives = _hand_nce(a, p, torch.empty(0, 8), 0.2)
    assert abs(info_nce(a, p, None, temperature=0.2).item() - no_negatives) < 1e-5


def test_a_reversed_clip_equal_to_its_anchor_is_a_hard_negative():
    # An embedding that ignores the arrow of time maps a clip and its reversal to the same point:
    # the loss must then be higher than when the reversal is told apart.
    a = torch.eye(4)
    blind = info_nce(a, a, negatives=a.clone(), temperature=0.1)  # own reversal as similar as the positive
    aware = info_nce(a, a, negatives=-a, temperature=0.1)
    e = math.exp(10)
    assert abs(blind.item() - -math.log(e / (2 * e + 6))) < 1e-5  # ~log 2: it cannot pick its pair
    assert abs(aware.item() - -math.log(e / (e + 6 + 1 / e))) < 1e-5


def test_reverse_time_plays_the_clip_backwards():
    clips = torch.arange(2 * 3 * 4 * 1 * 1, dtype=torch.float32).view(2, 3, 4, 1, 1)
    backwards = reverse_time(clips)
    assert torch.equal(backwards[:, :, 0], clips[:, :, -1])
    assert torch.equal(backwards[:, :, 3], clips[:, :, 0])
    assert torch.equal(reverse_time(backwards), clips)


def test_appearance_jitter_is_the_same_for_every_frame_and_seeded():
    g = torch.Generator().manual_seed(1)
    frame = torch.rand(2, 3, 1, 5, 5, generator=g)
    still = frame.expand(2, 3, 6, 5, 5).contiguous()  # a clip with no motion at all
    out = appearance_jitter(still, torch.Generator().manual_seed(7))
    assert torch.equal(out, out[:, :, :1].expand_as(out))  # no frame differs: no motion was made up
    assert not torch.allclose(out, still)  # but the appearance changed
    assert torch.equal(out, appearance_jitter(still, torch.Generator().manual_seed(7)))
    assert out.min() >= 0 and out.max() <= 1
