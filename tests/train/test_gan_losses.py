"""The GAN objectives and regularisers of `engine.train.losses.gan` against closed forms and hand
computations of the input-gradient norms (WGAN-GP, WGAN-div), and EBGAN's pulling-away term."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from engine.train.losses import gan as gan_losses


@pytest.fixture
def scores():
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 1, generator=g), torch.randn(16, 1, generator=g)


def test_bce_is_the_sigmoid_cross_entropy_and_the_generator_is_non_saturating(scores):
    real, fake = scores
    expected = F.binary_cross_entropy(torch.sigmoid(real), torch.ones_like(real)) + \
        F.binary_cross_entropy(torch.sigmoid(fake), torch.zeros_like(fake))
    torch.testing.assert_close(gan_losses.d_loss("bce", real, fake), expected)
    torch.testing.assert_close(gan_losses.g_loss("bce", fake),
                               -torch.log(torch.sigmoid(fake)).mean())
    # non-saturating: a confident discriminator (D(G(z)) -> 0) still gives a large gradient
    very_fake = torch.full((4, 1), -20.0, requires_grad=True)
    gan_losses.g_loss("bce", very_fake).backward()
    assert very_fake.grad.abs().min() > 0.2


def test_least_squares_hinge_and_wasserstein_match_their_formulas(scores):
    real, fake = scores
    torch.testing.assert_close(gan_losses.d_loss("least_squares", real, fake),
                               0.5 * (F.mse_loss(real, torch.ones_like(real)) +
                                      F.mse_loss(fake, torch.zeros_like(fake))))
    torch.testing.assert_close(gan_losses.g_loss("least_squares", fake),
                               0.5 * F.mse_loss(fake, torch.ones_like(fake)))
    torch.testing.assert_close(gan_losses.d_loss("hinge", real, fake),
                               torch.clamp(1 - real, min=0).mean() +
                               torch.clamp(1 + fake, min=0).mean())
    torch.testing.assert_close(gan_losses.g_loss("hinge", fake), -fake.mean())
    torch.testing.assert_close(gan_losses.d_loss("wasserstein", real, fake),
                               fake.mean() - real.mean())


def test_unknown_objective_names_the_known_ones(scores):
    with pytest.raises(ValueError, match="least_squares"):
        gan_losses.d_loss("lsq", *scores)


def test_gradient_penalty_equals_the_hand_computed_norm_for_a_quadratic_critic():
    """D(x) = sum(a * x^2): grad D(x_hat) = 2 a x_hat, with x_hat = e x + (1 - e) G(z) and the
    same e the function draws (same generator seed)."""
    real, fake = torch.randn(6, 1, 4, 4), torch.randn(6, 1, 4, 4)
    a = torch.rand(1, 1, 4, 4) + 0.5

    def critic(x):
        return (a * x.pow(2)).flatten(1).sum(1, keepdim=True)

    penalty = gan_losses.gradient_penalty(critic, real, fake, torch.Generator().manual_seed(3))
    e = torch.rand(6, 1, 1, 1, generator=torch.Generator().manual_seed(3))
    x_hat = e * real + (1 - e) * fake
    norms = (2 * a * x_hat).flatten(1).norm(dim=1)
    torch.testing.assert_close(penalty, ((norms - 1) ** 2).mean())


def test_gradient_penalty_of_a_linear_critic_is_its_weight_norm_minus_one():
    w = torch.randn(1, 3, 5, 5)
    penalty = gan_losses.gradient_penalty(lambda x: (w * x).flatten(1).sum(1),
                                          torch.randn(4, 3, 5, 5), torch.randn(4, 3, 5, 5))
    torch.testing.assert_close(penalty, (w.norm() - 1) ** 2)


def test_gradient_penalty_matches_finite_differences_for_a_network_critic():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Tanh(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 3 * 3, 1)).double()
    real, fake = torch.randn(3, 1, 5, 5).double(), torch.randn(3, 1, 5, 5).double()
    penalty = gan_losses.gradient_penalty(net, real, fake, torch.Generator().manual_seed(1))
    e = torch.rand(3, 1, 1, 1, generator=torch.Generator().manual_seed(1)).double()
    x_hat = e * real + (1 - e) * fake
    h, norms = 1e-6, []
    for x in x_hat:  # central differences, one input pixel at a time
        flat = x.flatten()
        grad = torch.zeros_like(flat)
        for j in range(len(flat)):
            up, down = flat.clone(), flat.clone()
            up[j] += h
            down[j] -= h
            grad[j] = (net(up.view(1, 1, 5, 5)) - net(down.view(1, 1, 5, 5))).item() / (2 * h)
        norms.append(grad.norm())
    expected = ((torch.stack(norms) - 1) ** 2).mean()
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-6)


def test_gradient_penalty_trains_the_critic_through_the_gradient():
    net = torch.nn.Linear(8, 1)
    penalty = gan_losses.gradient_penalty(net, torch.randn(4, 8), torch.randn(4, 8))
    penalty.backward()
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    w = net.weight.detach()
    torch.testing.assert_close(net.weight.grad, 2 * (w.norm() - 1) * w / w.norm())


def test_divergence_penalty_equals_the_hand_computation():
    """D(x) = sum(a * x^2): ||grad||^p = (sum (2 a x)^2)^(p/2) at the real and fake images."""
    real, fake = torch.randn(5, 1, 3, 3), torch.randn(5, 1, 3, 3)
    a = torch.rand(1, 1, 3, 3)

    def critic(x):
        return (a * x.pow(2)).flatten(1).sum(1)

    k, p = 2.0, 6.0
    got = gan_losses.divergence_penalty(critic, real, fake, k, p)
    sq = [(2 * a * x).flatten(1).pow(2).sum(1) for x in (real, fake)]
    torch.testing.assert_close(got, (sq[0] ** (p / 2) + sq[1] ** (p / 2)).mean() * k / 2)


def test_r1_penalty_equals_the_hand_computation_and_trains_the_critic():
    """D(x) = sum(a * x^2): R1 = E ||2 a x||^2 at the real images only; its gradient reaches a
    (d/da of mean sum 4 a^2 x^2 = mean 8 a x^2)."""
    real = torch.randn(5, 1, 3, 3)
    a = torch.rand(1, 1, 3, 3, requires_grad=True)

    def critic(x):
        return (a * x.pow(2)).flatten(1).sum(1)

    got = gan_losses.r1_penalty(critic, real)
    torch.testing.assert_close(got, (2 * a * real).flatten(1).pow(2).sum(1).mean())
    got.backward()
    torch.testing.assert_close(a.grad, (8 * a * real.pow(2)).mean(0, keepdim=True).detach())


def test_energies_and_the_pulling_away_term():
    recon, images = torch.randn(4, 1, 3, 3), torch.randn(4, 1, 3, 3)
    torch.testing.assert_close(gan_losses.energy(recon, images),
                               ((recon - images) ** 2).flatten(1).mean(1))
    torch.testing.assert_close(gan_losses.l1_energy(recon, images),
                               (recon - images).abs().flatten(1).mean(1))
    codes = torch.randn(5, 7)
    total, n = 0.0, len(codes)
    for i in range(n):
        for j in range(n):
            if i != j:
                total += (codes[i] @ codes[j] / (codes[i].norm() * codes[j].norm())) ** 2
    assert gan_losses.pull_away(codes).item() == pytest.approx(float(total) / (n * (n - 1)), rel=1e-5)
    # orthogonal codes are maximally "pulled away": the term is 0
    assert gan_losses.pull_away(torch.eye(4)).item() == pytest.approx(0.0, abs=1e-7)
    assert math.isclose(gan_losses.pull_away(torch.ones(3, 2)).item(), 1.0, rel_tol=1e-6)
