"""The generative procedures end to end on CI-sized runs: train, eval, sample, and their math."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from engine.cli import main
from tests.conftest import REPO

# Each bundled generative recipe, made CI-sized: a few steps of a narrow network, 2 s or so.
CI_SIZED = {
    "ae_digits": [],
    "vae_digits": [],
    "cvae_digits": [],
    "cvae_linear_digits": [],
    "vqvae_digits": ["spec.set.dim=32", "spec.set.codes=16"],
    "ddpm_digits": ["spec.set.base=16", "spec.set.groups=4", "procedure.timesteps=20"],
    "ae_mnist": [],
    "ae_linear_mnist": [],
    "vae_mnist": [],
    "cvae_mnist": [],
    "cvae_linear_mnist": [],
    "vqvae_mnist": ["spec.set.dim=32", "spec.set.codes=16"],
    "ddpm_mnist": ["spec.set.base=16", "spec.set.groups=4", "procedure.timesteps=20"],
}
STEPS = ["epochs=null", "steps=3", "data.batch_size=16", "eval.every_epochs=0"]


def _eval_sets(name: str) -> list[str]:
    """Sample metrics on a few samples for the digits recipes (their judge trains in ~30 s);
    off for MNIST ones, whose judge would take minutes."""
    sets = ["eval.samples=20"] if name.endswith("_digits") else ["eval.sample_metrics=[]"]
    return [a for item in [*CI_SIZED[name], *sets] for a in ("--set", item)]


@pytest.fixture(autouse=True)
def _data(data_root_for):
    """MNIST: the shared test set, else tests/tiny_data.py's few digits (a fresh clone)."""
    data_root_for("mnist")


def _train(name: str, out: Path, extra: list[str] = ()) -> Path:
    argv = ["train", name, "--device", "cpu", "--output", str(out)]
    for item in [*STEPS, *CI_SIZED.get(name, []), *extra]:
        argv += ["--set", item]
    assert main(argv) == 0
    (folder,) = [p for p in out.iterdir() if p.name.startswith(name + "-")]
    return folder


def _rows(folder: Path) -> list[dict]:
    with (folder / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("name", sorted(CI_SIZED))
def test_recipe_trains_evaluates_and_draws_a_grid(name, tmp_path, capsys, digits_judge):
    folder = _train(name, tmp_path)
    assert math.isfinite(float(_rows(folder)[-1]["train_loss"]))
    checkpoint = str(folder / "checkpoints" / "last.pt")
    sets = _eval_sets(name)
    assert main(["eval", name, "--checkpoint", checkpoint, "--split", "val", *sets]) == 0
    out = capsys.readouterr().out
    assert "loss" in out and ("psnr" in out or name.startswith("ddpm"))
    if name.endswith("_digits") and "vqvae" not in name and "ae_" not in name:
        assert "digit_fd_pca_gaussian" in out  # a generator: judged by digit-FD
    grid = tmp_path / "grid.png"
    assert main(["sample", name, "--checkpoint", checkpoint, "-n", "16", "-o", str(grid),
                 *sets]) == 0
    with Image.open(grid) as img:  # cells of 28 px (8x8 digits are enlarged) and 2 px padding
        assert min(img.size) >= 2 * 30 and img.mode in ("RGB", "L")


def test_plain_autoencoder_draws_a_reconstruction_grid(tmp_path, capsys):
    folder = _train("ae_digits", tmp_path)
    assert main(["sample", "ae_digits", "--checkpoint", str(folder / "checkpoints/last.pt"),
                 "-n", "16", "-o", str(tmp_path / "r.png")]) == 0
    assert "reconstructions" in capsys.readouterr().out
    with Image.open(tmp_path / "r.png") as img:  # 4 rows: 2 of originals, 2 of reconstructions
        assert img.size == (8 * 34 + 2, 4 * 34 + 2)  # 8x8 digits enlarged x4, 2 px padding


def test_label_on_an_unconditional_model_is_a_clear_error(tmp_path, capsys):
    folder = _train("vae_digits", tmp_path)
    code = main(["sample", "vae_digits", "--checkpoint", str(folder / "checkpoints/last.pt"),
                 "--label", "3", "-o", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 1 and "--label needs a class-conditional model" in err
    assert "Traceback" not in err


def test_vae_loss_terms_equal_torch_distributions():
    from torch.distributions import Normal, kl_divergence

    from engine.train.procedures.reconstruct import VAE
    mean, logvar = torch.randn(4, 3), torch.randn(4, 3)
    images, recon = torch.rand(4, 1, 2, 2), torch.rand(4, 1, 2, 2)

    class Stub(VAE):  # the procedure's arithmetic on fixed encoder/decoder outputs
        options = {"reconstruction": "bce"}
        conditional = False
        takes = staticmethod(lambda module, argument: False)

        def __init__(self):
            pass

        def network(self, name, model=None):
            return (lambda x: {"mean": mean, "logvar": logvar, "z": mean}) \
                if name == "encoder" else (lambda z: recon)

    rec, kl, _ = Stub().terms(None, images, None)
    want_kl = kl_divergence(Normal(mean, (0.5 * logvar).exp()), Normal(0, 1)).sum(1)
    torch.testing.assert_close(kl, want_kl)
    bernoulli = torch.distributions.Bernoulli(probs=recon, validate_args=False)  # soft targets
    torch.testing.assert_close(rec, -bernoulli.log_prob(images).flatten(1).sum(1))


def test_vqvae_prior_stage_trains_only_the_prior_on_frozen_codes(tmp_path):
    stage1 = _train("vqvae_digits", tmp_path)
    weights = torch.load(stage1 / "checkpoints/last.pt", weights_only=True)
    before = weights["procedure"]["model"]
    stage2 = _train("vqvae_prior_digits", tmp_path, [
        "spec.set.dim=32", "spec.set.codes=16", "spec.set.prior_blocks=2",
        f"procedure.autoencoder={stage1}/checkpoints/*.pt"])
    after = torch.load(stage2 / "checkpoints/last.pt", weights_only=True)["procedure"]["model"]
    for key, value in before.items():
        if not key.startswith("prior."):  # encoder, codebook, decoder: loaded and untouched
            torch.testing.assert_close(after[key], value, msg=key)
    changed = [k for k in after if k.startswith("prior.") and k in before
               and after[k].is_floating_point() and not torch.equal(after[k], before[k])]
    assert changed


def test_vqvae_prior_without_a_stage_one_checkpoint_says_what_to_do(tmp_path, capsys):
    code = main(["train", "vqvae_prior_digits", "--output", str(tmp_path), "--set",
                 "procedure.autoencoder=nowhere/*.pt", *[a for s in STEPS for a in ("--set", s)]])
    err = capsys.readouterr().err
    assert code == 1 and "matches no file" in err and "engine train vqvae_mnist" in err


def test_ddim_reuses_the_ddpm_checkpoint_and_eta_zero_is_deterministic(tmp_path):
    folder = _train("ddpm_digits", tmp_path)
    checkpoint = str(folder / "checkpoints/last.pt")
    sets = [a for s in CI_SIZED["ddpm_digits"] for a in ("--set", s)]

    def draw(seed: int, name: str) -> bytes:
        path = tmp_path / f"{name}.png"
        assert main(["sample", "ddim_digits", "--checkpoint", checkpoint, "-n", "9", "--seed",
                     str(seed), "-o", str(path), *sets, "--set", "procedure.steps=5"]) == 0
        return path.read_bytes()

    assert draw(1, "a") == draw(1, "b")
    assert draw(1, "c") != draw(2, "d")


def test_sample_metrics_compare_with_the_real_floor_and_pca_baseline(tmp_path, capsys,
                                                                    digits_judge):
    folder = _train("cvae_digits", tmp_path)
    assert main(["eval", "cvae_digits", "--checkpoint", str(folder / "checkpoints/last.pt"),
                 "--set", "eval.samples=100"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "samples against test: " in ln)
    values = dict(part.rsplit(" ", 1) for part in line.split(": ", 1)[1].split("  "))
    assert float(values["digit_fd_real"]) < float(values["digit_fd_pca_gaussian"])
    assert 0 <= float(values["label_accuracy"]) <= 1 and values["samples"] == "100"
    assert "classes of the samples" in out


def test_every_generative_recipe_is_ci_sized_here():
    generative = {p.stem for p in (REPO / "recipes").glob("*.yaml")
                  if p.stem.split("_")[0] in ("ae", "vae", "cvae", "vqvae", "ddpm")
                  and "prior" not in p.stem}
    assert generative <= set(CI_SIZED)


@pytest.mark.parametrize("procedure, message, hint", [
    ("{name: diffusion, schedul: cosine}", "unknown option 'schedul' of procedure 'diffusion'",
     "did you mean 'schedule'?"),
    ("{name: diffusion, sampler: ddim2}", "procedure 'diffusion' has no sampler 'ddim2'",
     "write one of ddpm, ddim"),
    ("{name: vqvae, stage: priors}", "procedure 'vqvae' has no stage 'priors'",
     "write one of autoencoder, prior"),
])
def test_procedure_options_are_checked_where_they_are_written(tmp_path, procedure, message, hint):
    from engine.compiler.ir import SpecError
    from engine.train.recipe import load_recipe
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\nspec: {REPO / 'specs' / 'ddpm_unet.yaml'}\n"
                      f"data: {{dataset: digits}}\nprocedure: {procedure}\n"
                      "optimizer: {name: adam, lr: 0.001}\nepochs: 1\n")
    with pytest.raises(SpecError) as err:
        load_recipe(recipe)
    (d,) = err.value.diagnostics
    assert d.message == message and d.hint == hint and d.loc.line == 4
