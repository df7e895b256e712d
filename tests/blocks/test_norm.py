"""The normalisation blocks (blocks/norm.py) against oracles: torch.nn.functional
equivalents and hand computations of the papers' formulas."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.blocks.norm import GroupNorm
from engine.blocks.registry import lookup


def _block(name, **args):
    return lookup(name).cls(**args)


def test_instance_norm_matches_functional():
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5, 6)
    norm = _block("instance_norm", in_size=4)
    assert list(norm.state_dict()) == []
    for mode in (norm.train(), norm.eval()):  # batch statistics in both modes
        torch.testing.assert_close(mode(x), F.instance_norm(x, eps=1e-5))


def test_instance_norm_affine_parameters():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 4)
    norm = _block("instance_norm", in_size=3, eps=1e-3, affine=True)
    assert sorted(n for n, _ in norm.named_parameters()) == ["bias", "weight"]
    assert not norm.track_running_stats
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 2.0, -1.0]))
        norm.bias.copy_(torch.tensor([0.0, 0.5, 3.0]))
    want = F.instance_norm(x, weight=norm.weight, bias=norm.bias, eps=1e-3)
    torch.testing.assert_close(norm(x), want)
    assert norm.label() == "instance norm"


def test_conditional_batchnorm_matches_hand_computation():
    torch.manual_seed(0)
    x, label = torch.randn(6, 3, 4, 4), torch.tensor([0, 1, 2, 1, 0, 2])
    block = _block("conditional_batchnorm", in_size=3, classes=3, eps=1e-3)
    torch.testing.assert_close(block.embed.weight[:, :3], torch.ones(3, 3))
    torch.testing.assert_close(block.embed.weight[:, 3:], torch.zeros(3, 3))
    with torch.no_grad():
        block.embed.weight.normal_()
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    normed = (x - mean) / torch.sqrt(var + 1e-3)
    gamma, beta = block.embed.weight[label, :3], block.embed.weight[label, 3:]
    want = gamma[:, :, None, None] * normed + beta[:, :, None, None]
    torch.testing.assert_close(block(x, label), want)
    assert block.label() == "cond. batch norm, 3 classes"


def test_conditional_batchnorm_starts_as_batchnorm_and_labels_differ_once_trained():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 2, 2)
    block = _block("conditional_batchnorm", in_size=3, classes=2)
    same = torch.zeros(4, dtype=torch.long)
    torch.testing.assert_close(block(x, same), F.batch_norm(x, None, None, training=True))
    torch.testing.assert_close(block(x, same), block(x, torch.ones(4, dtype=torch.long)))
    with torch.no_grad():
        block.embed.weight.add_(0.1 * torch.randn_like(block.embed.weight))
    assert not torch.allclose(block(x, same), block(x, torch.ones(4, dtype=torch.long)))


def test_conditional_batchnorm_reset_restores_identity_affine():
    block = _block("conditional_batchnorm", in_size=2, classes=4)
    with torch.no_grad():
        block.embed.weight.normal_()
    block.embed.reset_parameters()  # the engine's order: children, then the block
    block.reset_parameters()
    torch.testing.assert_close(block.embed.weight, torch.tensor([[1.0, 1, 0, 0]] * 4))


@pytest.mark.parametrize("shape", [(3, 5), (2, 4, 3, 3)])
def test_pixel_norm_matches_formula(shape):
    torch.manual_seed(0)
    x = torch.randn(shape)
    out = _block("pixel_norm")(x)
    want = x / torch.sqrt((x ** 2).mean(dim=1, keepdim=True) + 1e-8)
    torch.testing.assert_close(out, want)
    torch.testing.assert_close((out ** 2).mean(dim=1), torch.ones(out.shape[:1] + out.shape[2:]))


def test_group_norm_matches_functional():
    block = GroupNorm(in_size=8, groups=4, eps=1e-6)
    with torch.no_grad():
        block.weight.normal_()
        block.bias.normal_()
    x = torch.randn(3, 8, 5, 5)
    torch.testing.assert_close(block(x), F.group_norm(x, 4, block.weight, block.bias, 1e-6))
    assert block.label() == "group norm, 4 groups"


def test_lrn_matches_torch_and_the_papers_formula():
    torch.manual_seed(0)
    x = torch.randn(2, 7, 5, 5)
    block = _block("lrn")  # the defaults: size 5, alpha 1e-4, beta 0.75, k 2
    assert list(block.state_dict()) == [] and block.label() == "local response norm, size 5"
    torch.testing.assert_close(block(x), torch.nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0)(x))
    custom = _block("lrn", size=3, alpha=5e-4, beta=0.5, k=1.0)
    torch.testing.assert_close(custom(x), torch.nn.LocalResponseNorm(3, 5e-4, 0.5, 1.0)(x))
    # Krizhevsky et al.'s sum over the n = 5 channels around c (clipped at the ends), with
    # torch's alpha / n: b_c = a_c / (k + alpha / n * sum a_j^2) ** beta
    squares = F.pad(x.pow(2), (0, 0, 0, 0, 2, 2))
    window = sum(squares[:, j:j + 7] for j in range(5))
    torch.testing.assert_close(block(x), x / (2.0 + 1e-4 / 5 * window) ** 0.75)
