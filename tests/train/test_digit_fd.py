"""Digit-FD against closed forms and scipy, its PCA-Gaussian baseline, and the cached judge."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

import engine
from engine.train.evaluation.digit_fd import (
    feature_fd,
    frechet_distance,
    gaussian_stats,
    pca_gaussian_samples,
)
from engine.train.judges import cached_weights
from engine.train.recipe import load_recipe
from engine.train.runner import train_recipe


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    rng = np.random.default_rng(0)
    mu_a, mu_b = rng.normal(size=5), rng.normal(size=5)
    sd_a, sd_b = rng.uniform(0.5, 2, size=5), rng.uniform(0.5, 2, size=5)
    got = frechet_distance(mu_a, np.diag(sd_a**2), mu_b, np.diag(sd_b**2))
    assert got == pytest.approx(((mu_a - mu_b) ** 2).sum() + ((sd_a - sd_b) ** 2).sum(), rel=1e-9)


def test_frechet_distance_equals_the_scipy_sqrtm_formula():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6)), rng.normal(size=(300, 6)) + 0.3
    (mu_a, cov_a), (mu_b, cov_b) = gaussian_stats(a), gaussian_stats(b)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real  # FID's reference computation
    want = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root)
    assert feature_fd(a, b) == pytest.approx(want, rel=1e-7)
    assert feature_fd(a, a) == pytest.approx(0, abs=1e-8)


def test_pca_gaussian_keeps_the_mean_and_the_leading_covariance():
    gen = torch.Generator().manual_seed(0)
    basis = torch.randn(3, 16, generator=gen)
    images = (torch.randn(2000, 3, generator=gen) * torch.tensor([3.0, 2.0, 1.0])) @ basis
    images = (images / images.abs().max() * 0.45 + 0.5).reshape(2000, 1, 4, 4)
    assert images.min() > 0 and images.max() < 1  # no clipping in this test
    samples = pca_gaussian_samples(images, 20000, torch.Generator().manual_seed(1), components=3)
    flat, got = images.reshape(2000, -1).double(), samples.reshape(20000, -1).double()
    torch.testing.assert_close(got.mean(0), flat.mean(0), atol=2e-3, rtol=0)
    torch.testing.assert_close(torch.cov(got.T), torch.cov(flat.T), atol=2e-4, rtol=0.05)
    # one component keeps only the leading direction: the rest of the variance is gone
    one = pca_gaussian_samples(images, 20000, torch.Generator().manual_seed(1), components=1)
    assert torch.cov(one.reshape(20000, -1).T.double()).trace() < 0.8 * torch.cov(flat.T).trace()


def test_the_judge_is_trained_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("ENGINE_CACHE", str(tmp_path))
    recipe = load_recipe("digits_cnn", ["epochs=1"])
    path = cached_weights(recipe, train_recipe)
    stamp = path.stat().st_mtime_ns
    assert cached_weights(load_recipe("digits_cnn", ["epochs=1"]), train_recipe) == path
    assert path.stat().st_mtime_ns == stamp  # read, not retrained
    assert not list(tmp_path.rglob("*-run"))  # the training folder is cleaned up
    assert cached_weights(load_recipe("digits_cnn", ["epochs=2"]), train_recipe) != path  # new settings


def test_concurrent_askers_train_a_judge_once(tmp_path, monkeypatch):
    """Two processes sharing a cache (two `engine eval`s, or pytest-xdist's workers; threads
    here, each with its own open lock file) train the judge once: the second waits on the lock,
    then finds the first's file."""
    import threading
    import time

    from engine.train import judges
    monkeypatch.setenv("ENGINE_CACHE", str(tmp_path))
    trained = []

    def slow_train_once(recipe, path, train):
        trained.append(path)
        time.sleep(0.5)  # long enough for the other asker to reach the lock
        torch.save({"w": torch.zeros(1)}, path)

    monkeypatch.setattr(judges, "_train_once", slow_train_once)
    recipe = load_recipe("digits_cnn", ["epochs=1"])
    found = []
    askers = [threading.Thread(target=lambda: found.append(cached_weights(recipe, train_recipe)))
              for _ in range(2)]
    for asker in askers:
        asker.start()
    for asker in askers:
        asker.join()
    assert len(trained) == 1 and found == [trained[0], trained[0]]


def test_judge_identity_names_the_recipe_and_changes_with_the_weights(tmp_path):
    from engine.train.judges import judge_identity
    weights = tmp_path / "w.pt"
    torch.save({"w": torch.zeros(3)}, weights)
    first = judge_identity("mnist_cnn", weights)
    assert first.startswith("mnist_cnn@sha256:") and len(first.split(":")[1]) == 16
    assert judge_identity("mnist_cnn", weights) == first
    torch.save({"w": torch.ones(3)}, weights)  # a retrained judge is told apart
    assert judge_identity("mnist_cnn", weights) != first


def test_judge_separates_real_digits_from_noise_and_the_baseline(digits_judge):
    from engine.train.data import build_dataset, data_root
    split = {s: build_dataset("digits", data_root(None), s, 0) for s in ("train", "val", "test")}
    images = {s: torch.stack([d[i][0] for i in range(len(d))]) for s, d in split.items()}
    labels = torch.tensor([split["test"][i][1] for i in range(len(split["test"]))])
    test = digits_judge.judge(images["test"])
    assert (test.predicted == labels).float().mean() > 0.9  # it is a digit classifier
    n = len(images["val"])
    real = feature_fd(digits_judge.judge(images["val"]).features, test.features)
    pca = pca_gaussian_samples(images["train"], n, torch.Generator().manual_seed(0))
    baseline = feature_fd(digits_judge.judge(pca).features, test.features)
    noise = feature_fd(digits_judge.judge(torch.rand(n, 1, 8, 8)).features, test.features)
    assert real < baseline < noise


def test_a_checkpoint_judge_gets_the_weights_the_run_evaluated(tmp_path):
    """Pix2Pix's judge comes from a run's checkpoint: its EMA copy where the run kept one
    (AveragedModel's `module.` prefix and step count dropped), else its trained weights."""
    from engine.train.checkpoint import save_checkpoint
    from engine.train.judges import checkpoint_judge
    model = engine.build("small_cnn")
    trained = model.state_dict()
    averaged = {k: v + 1 for k, v in trained.items()}
    ema = {"n_averaged": torch.tensor(3), **{f"module.{k}": v for k, v in averaged.items()}}
    for name, state, want in (("plain", {"model": trained, "ema": None}, trained),
                              ("ema", {"model": trained, "ema": ema}, averaged)):
        path = tmp_path / name / "checkpoints" / "last.pt"
        save_checkpoint({"procedure": state}, path)
        judge = checkpoint_judge(path, "digits_cnn", "cpu")
        assert not judge.training
        for key, value in judge.state_dict().items():
            torch.testing.assert_close(value, want[key], rtol=0, atol=0)
