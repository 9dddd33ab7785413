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
    alone = objective_loss(model, clips, hidden, decoded, Objective("nce"), torch.Generator().manual_seed(5))
    assert alone.item() == nce.item()  # `nce`: the contrastive term, no reconstruction


def test_a_tubelet_kept_to_change_only_embeds_what_stands_still_as_nothing():
    """After `keep_only_change_` a still clip (every frame alike) embeds to the bias alone, whatever it
    shows; a moving one does not; and the kernel that does it is an ordinary one."""
    from encoder.videomae2 import VideoMAE2, variant_config

    embed = VideoMAE2(variant_config("vit-tiny")).init_random_(0).patch_embed
    still = [
        torch.rand(1, 3, 1, 64, 64, generator=torch.Generator().manual_seed(s)).expand(1, 3, 16, 64, 64) for s in (1, 2)
    ]
    assert (embed(still[0]) - embed(still[1])).abs().max() > 0.1  # before: the look of a still clip shows
    embed.keep_only_change_()
    bias = embed.proj.bias.expand(1, 128, -1)
    for clip in still:
        torch.testing.assert_close(embed(clip), bias, atol=1e-5, rtol=0)
    moving = torch.rand(1, 3, 16, 64, 64, generator=torch.Generator().manual_seed(3))
    assert (embed(moving) - bias).abs().max() > 0.1
    weight = embed.proj.weight
    torch.testing.assert_close(weight[:, :, 1], -weight[:, :, 0], atol=1e-8, rtol=0)  # tubelet 2: minus the first


def test_the_tubelet_difference_constraint_holds_after_every_step_and_only_when_asked():
    from encoder.masking import MaskSpec, make_masks
    from encoder.pretrain_objective import Objective
    from encoder.pretrain_optim import MicroBatch, build_optimizer, train_step
    from encoder.videomae2_pretrain import VideoMAE2Pretrain, pretrain_config

    clips = torch.rand(2, 3, 16, 64, 64, generator=torch.Generator().manual_seed(1))
    for tied in (True, False):
        model = VideoMAE2Pretrain(pretrain_config("vit-tiny")).init_random_(0)
        optimizer = build_optimizer(model)
        for step in range(2):
            hidden, decoded = make_masks(MaskSpec(), model.cfg.grid, 2, torch.Generator().manual_seed(step))
            batch = MicroBatch(clips, hidden, decoded, torch.Generator().manual_seed(10 + step))
            train_step(model, optimizer, [batch], 1e-3, 1.0, None, Objective("mae+nce", tubelet_difference=tied))
            over_time = model.encoder.patch_embed.proj.weight.sum(dim=2).abs().max().item()
            assert (over_time < 1e-6) == tied, (tied, step, over_time)
