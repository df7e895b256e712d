"""Diffusion math against closed forms: schedules, q(x_t | x_0), the DDPM posterior (Ho et al.
2020, eq. 6-7), DDIM's deterministic path (Song et al. 2021, eq. 12), and end-to-end sampling
with an oracle noise model for a one-point data distribution."""

from __future__ import annotations

import math

import pytest
import torch

from engine.train.evaluation.diffusion import Schedule, ddim_timesteps, make_betas, sample

T = 1000


@pytest.fixture(scope="module")
def sched() -> Schedule:
    return Schedule(make_betas("linear", T))


def ref_alpha_bars(betas: torch.Tensor) -> list[float]:
    """alpha_bar_t = prod_{s <= t} (1 - beta_s), recomputed in Python floats (not torch.cumprod)."""
    out, acc = [], 1.0
    for b in betas.tolist():
        acc *= 1 - b
        out.append(acc)
    return out


def true_pair(sched: Schedule, t: int, shape=(4, 3, 5, 5), seed: int = 1):
    """(x0, eps, x_t) in float64 with x_t = sqrt(ab_t) x0 + sqrt(1-ab_t) eps, computed here."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(shape, generator=g, dtype=torch.float64)
    ab = ref_alpha_bars(sched.betas)[t]
    return x0, eps, math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps


# --- schedules -------------------------------------------------------------------------------

def test_linear_schedule_endpoints_and_length():
    betas = make_betas("linear", 1000)
    assert betas.dtype == torch.float64 and betas.shape == (1000,)
    assert betas[0].item() == pytest.approx(1e-4, abs=1e-15)
    assert betas[-1].item() == pytest.approx(0.02, abs=1e-15)
    assert bool((betas[1:] > betas[:-1]).all())
    short = make_betas("linear", 10, beta_start=0.1, beta_end=0.5)
    assert short.tolist() == pytest.approx([0.1 + 0.4 * i / 9 for i in range(10)], abs=1e-15)


def test_cosine_schedule_matches_closed_form():
    steps, s = 200, 0.008
    betas = make_betas("cosine", steps, cosine_s=s)
    assert betas.shape == (steps,) and bool((betas > 0).all()) and bool((betas <= 0.999).all())
    f = [math.cos((i / steps + s) / (1 + s) * math.pi / 2) ** 2 for i in range(steps + 1)]
    # alpha_bar after step t (0-based) is f(t+1)/f(0); the final step is clipped to beta = 0.999
    ab = ref_alpha_bars(betas)
    for t in range(steps - 1):
        assert ab[t] == pytest.approx(f[t + 1] / f[0], rel=1e-9), t
        assert betas[t].item() == pytest.approx(1 - f[t + 1] / f[t], rel=1e-9, abs=1e-15)
    assert betas[-1].item() == pytest.approx(0.999)
    assert Schedule(betas).alpha_bars.tolist() == pytest.approx(ab, rel=1e-12)


def test_unknown_schedule_names_the_known_ones():
    with pytest.raises(ValueError, match="linear.*cosine"):
        make_betas("quadratic", 10)
    with pytest.raises(ValueError):
        make_betas("linear", 0)
    with pytest.raises(ValueError):
        Schedule(torch.tensor([0.1, 1.5]))


# --- forward process ---------------------------------------------------------------------------

def test_q_sample_equals_formula_per_sample_t(sched):
    g = torch.Generator().manual_seed(2)
    x0, noise = torch.randn(4, 3, 2, 2, generator=g), torch.randn(4, 3, 2, 2, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    ab = ref_alpha_bars(sched.betas)
    want = torch.stack([math.sqrt(ab[k]) * x0[i].double() + math.sqrt(1 - ab[k]) * noise[i].double()
                        for i, k in enumerate(t.tolist())])
    got = sched.q_sample(x0, t, noise)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-6)
    assert sched.q_sample(x0.half(), t, noise.half()).dtype == torch.float16


def test_q_sample_moments(sched):
    g = torch.Generator().manual_seed(3)
    n, t = 200_000, 300
    x0 = torch.full((n,), 0.7, dtype=torch.float64)
    xt = sched.q_sample(x0, torch.full((n,), t), torch.randn(n, generator=g, dtype=torch.float64))
    ab = ref_alpha_bars(sched.betas)[t]
    # 5 standard errors: mean s.e. = sqrt((1-ab)/n), variance s.e. ~ (1-ab) sqrt(2/n)
    assert xt.mean().item() == pytest.approx(math.sqrt(ab) * 0.7, abs=5 * math.sqrt((1 - ab) / n))
    assert xt.var().item() == pytest.approx(1 - ab, abs=5 * (1 - ab) * math.sqrt(2 / n))


@pytest.mark.parametrize("t", [0, 1, 250, 999])
def test_predict_x0_inverts_q_sample(sched, t):
    x0, eps, _ = true_pair(sched, t)
    tt = torch.full((x0.shape[0],), t)
    torch.testing.assert_close(sched.predict_x0(sched.q_sample(x0, tt, eps), tt, eps), x0)
    torch.testing.assert_close(sched.predict_eps(sched.q_sample(x0, tt, eps), tt, x0), eps)


# --- reverse steps -----------------------------------------------------------------------------

@pytest.mark.parametrize("t", [0, 1, 37, 500, 999])
def test_ddpm_step_with_true_eps_is_the_posterior(sched, t):
    x0, eps, xt = true_pair(sched, t)
    betas = sched.betas.tolist()
    ab = ref_alpha_bars(sched.betas)
    b, a, abt = betas[t], 1 - betas[t], ab[t]
    abp = ab[t - 1] if t > 0 else 1.0
    # q(x_{t-1} | x_t, x0): mean (Ho et al. eq. 7) and variance beta tilde
    post_mean = (math.sqrt(abp) * b / (1 - abt)) * x0 + (math.sqrt(a) * (1 - abp) / (1 - abt)) * xt
    post_std = math.sqrt(b * (1 - abp) / (1 - abt))
    mean = sched.ddpm_step(xt, t, eps, torch.zeros_like(xt))
    torch.testing.assert_close(mean, post_mean, rtol=1e-9, atol=1e-9)
    spread = sched.ddpm_step(xt, t, eps, torch.ones_like(xt)) - mean
    torch.testing.assert_close(spread, torch.full_like(xt, post_std), rtol=1e-9, atol=1e-12)
    if t == 0:
        assert post_std == 0.0  # and the step returns x0 itself
        torch.testing.assert_close(mean, x0)


@pytest.mark.parametrize("t,t_prev", [(999, 979), (500, 400), (20, 0), (5, -1), (0, -1)])
def test_ddim_eta0_follows_q_deterministic_path(sched, t, t_prev):
    x0, eps, xt = true_pair(sched, t)
    ab = ref_alpha_bars(sched.betas)
    abp = ab[t_prev] if t_prev >= 0 else 1.0
    want = math.sqrt(abp) * x0 + math.sqrt(1 - abp) * eps
    got = sched.ddim_step(xt, t, t_prev, eps, 0.0, torch.randn_like(xt))
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("t", [1, 10, 500, 999])
def test_ddim_eta1_one_step_is_ddpm(sched, t):
    x0, eps, xt = true_pair(sched, t)
    ab = ref_alpha_bars(sched.betas)
    post_std = math.sqrt(sched.betas[t].item() * (1 - ab[t - 1]) / (1 - ab[t]))
    zero, one = torch.zeros_like(xt), torch.ones_like(xt)
    base = sched.ddim_step(xt, t, t - 1, eps, 1.0, zero)
    spread = sched.ddim_step(xt, t, t - 1, eps, 1.0, one) - base
    torch.testing.assert_close(spread, torch.full_like(xt, post_std), rtol=1e-9, atol=1e-12)
    # Song et al. sec. 4.1: eta = 1 is DDPM, for any eps (not only the true one) and any noise
    other_eps, noise = torch.randn_like(xt), torch.randn_like(xt)
    torch.testing.assert_close(sched.ddim_step(xt, t, t - 1, other_eps, 1.0, noise),
                               sched.ddpm_step(xt, t, other_eps, noise), rtol=1e-9, atol=1e-9)


def test_steps_keep_input_dtype(sched):
    x = torch.randn(2, 3, dtype=torch.bfloat16)
    assert sched.ddpm_step(x, 10, x, x).dtype == torch.bfloat16
    assert sched.ddim_step(x, 10, 0, x, 0.5, x).dtype == torch.bfloat16
    assert sched.predict_x0(x, torch.tensor([10, 20]), x).dtype == torch.bfloat16


# --- timesteps and sampling --------------------------------------------------------------------

def test_ddim_timesteps():
    assert ddim_timesteps(100, 1000) == list(range(990, -1, -10))
    assert ddim_timesteps(1000, 1000) == list(range(999, -1, -1))
    assert ddim_timesteps(1, 1000) == [0]
    assert ddim_timesteps(3, 10) == [6, 3, 0]
    for bad in (0, -5, 1001):
        with pytest.raises(ValueError, match="steps"):
            ddim_timesteps(bad, 1000)


def oracle(sched: Schedule, c: torch.Tensor):
    """The exact eps model for the data distribution that is the single point c."""
    ab = torch.tensor(ref_alpha_bars(sched.betas), dtype=torch.float64)

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        assert t.dtype == torch.long and t.shape == (x.shape[0],)
        a = ab[t].view(-1, *([1] * (x.dim() - 1)))
        return ((x.double() - a.sqrt() * c) / (1 - a).sqrt()).to(x.dtype)

    return model


C = torch.linspace(-0.9, 0.9, 3 * 4 * 4, dtype=torch.float64).reshape(3, 4, 4)


def test_ddim_sampling_recovers_the_point(sched):
    seen = []
    out = sample(oracle(sched, C), sched, (5, 3, 4, 4), sampler="ddim", steps=10,
                 generator=torch.Generator().manual_seed(0), progress=seen.append)
    assert out.shape == (5, 3, 4, 4) and out.dtype == torch.float32
    torch.testing.assert_close(out, C.float().expand_as(out), rtol=0, atol=1e-5)
    assert seen == list(range(1, 11))


def test_ddpm_sampling_recovers_the_point():
    sched = Schedule(make_betas("linear", 50, beta_end=0.2))
    out = sample(oracle(sched, C), sched, (5, 3, 4, 4), sampler="ddpm",
                 generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, C.float().expand_as(out), rtol=0, atol=1e-4)


@pytest.mark.parametrize("clip", [False, True])
def test_sampling_is_reproducible_from_the_seed(clip):
    sched = Schedule(make_betas("cosine", 50))

    def model(x, t):  # an imperfect model, so the noise actually matters
        return 0.5 * x + 0.01 * t.float().view(-1, 1, 1, 1)

    def run(sampler, seed, **kw):
        return sample(model, sched, (3, 2, 4, 4), sampler=sampler, clip_x0=clip,
                      generator=torch.Generator().manual_seed(seed), **kw)

    assert torch.equal(run("ddim", 7, steps=10), run("ddim", 7, steps=10))
    assert torch.equal(run("ddim", 7, steps=10, eta=0.5), run("ddim", 7, steps=10, eta=0.5))
    assert torch.equal(run("ddpm", 7), run("ddpm", 7))
    assert not torch.allclose(run("ddpm", 7), run("ddpm", 8))
    if clip:  # the final DDIM step lands on the (clipped) x0 prediction
        assert run("ddim", 7, steps=10).abs().max() <= 1


def test_ddim_eta0_is_deterministic_given_x_T(sched):
    """Same x_T, different generators for everything after it: eta = 0 ignores the latter."""
    model = oracle(sched, C)
    a = sample(model, sched, (2, 3, 4, 4), sampler="ddim", steps=5,
               generator=torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    x_T = torch.randn((2, 3, 4, 4), generator=g)
    x = x_T
    times = ddim_timesteps(5, T)
    for i, t in enumerate(times):
        eps = model(x, torch.full((2,), t))
        x = sched.ddim_step(x, t, times[i + 1] if i + 1 < len(times) else -1, eps, 0.0, None)
    torch.testing.assert_close(a, x)


def test_sample_rejects_bad_arguments(sched):
    def model(x, t):
        return torch.zeros_like(x)

    with pytest.raises(ValueError, match="ddpm.*ddim"):
        sample(model, sched, (1, 2), sampler="euler")
    with pytest.raises(ValueError, match="steps"):
        sample(model, sched, (1, 2), sampler="ddim", steps=2000)
    with pytest.raises(ValueError, match="ddim"):
        sample(model, sched, (1, 2), sampler="ddpm", steps=10)
    with pytest.raises(ValueError, match="eta"):
        sample(model, sched, (1, 2), sampler="ddim", eta=-1.0)


def test_schedule_to_same_device_is_identity(sched):
    assert sched.to("cpu") is sched and sched.to(None) is sched
    assert sched.timesteps == T
