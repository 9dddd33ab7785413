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


def test_appearance_jitter_keeps_the_channel_order_unless_asked_to_permute():
    clips = torch.rand(4, 3, 2, 3, 3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(appearance_jitter(clips, torch.Generator().manual_seed(1), strength=0.0), clips)
    permuted = appearance_jitter(clips, torch.Generator().manual_seed(1), strength=0.0, permute=True)
    assert not torch.equal(permuted, clips)  # some clip of the four had its channels reordered
    for b in range(4):  # ...and every clip's channels are its own, reordered
        rows = sorted(tuple(c.flatten().tolist()) for c in permuted[b])
        assert rows == sorted(tuple(c.flatten().tolist()) for c in clips[b])


def test_mae_plus_nce_is_the_reconstruction_loss_plus_the_weighted_contrastive_term():
    from encoder.contrastive import clip_contrastive_loss
    from encoder.masking import MaskSpec, make_masks
    from encoder.pretrain_objective import MAE, Objective, objective_loss
    from encoder.pretrain_step import normalize_input, pretrain_loss
    from encoder.videomae2_pretrain import VideoMAE2Pretrain, pretrain_config

    torch.manual_seed(0)
    model = VideoMAE2Pretrain(pretrain_config("vit-tiny")).init_random_(0).eval()
    clips = torch.rand(3, 3, 16, 64, 64, generator=torch.Generator().manual_seed(1))
    hidden, decoded = make_masks(MaskSpec(), model.cfg.grid, 3, torch.Generator().manual_seed(2))
    mae = pretrain_loss(model, clips, hidden, decoded)

    def embed(x):
        return model.encoder.forward_features(normalize_input(x, model.cfg))

    nce = clip_contrastive_loss(embed, clips, torch.Generator().manual_seed(5))
    both = objective_loss(model, clips, hidden, decoded, Objective("mae+nce", 0.5), torch.Generator().manual_seed(5))
    assert abs(both.item() - (mae.item() + 0.5 * nce.item())) < 1e-5
    assert nce.item() > 0.1  # a real term, not a zero that would make the sum trivially equal
    assert objective_loss(model, clips, hidden, decoded, MAE, None).item() == mae.item()
    both.backward()  # differentiable through the encoder's pooled embedding
    assert model.encoder.patch_embed.proj.weight.grad is not None
