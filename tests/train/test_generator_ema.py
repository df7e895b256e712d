"""A recipe's `ema` averages the generator of a two-optimizer procedure (gan, pix2pix,
cyclegan), not only a one-optimizer model: the averaged copy, which `engine sample` and the
sample metrics use, follows torch's EMA rule over the generator's weights after each of its
steps. (Before this, such a copy never moved from the untrained weights.)"""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import default_collate

from engine.train.recipe import load_recipe
from engine.train.runner import Run
from tests.conftest import recipe_folders

from . import test_gan_training as gans
from . import test_translation_training as translation

DECAY = 0.75
# recipe -> (its CI-sized settings, the networks its generator optimizer trains)
CASES = {
    "dcgan_mnist": (gans.STEPS, ("generator",)),
    "pix2pix_membrane": ([*translation.STEPS, *translation.CI_SIZED["pix2pix_membrane"]],
                         ("generator",)),
    "cyclegan_mnist_usps": ([*translation.STEPS, *translation.CI_SIZED["cyclegan_mnist_usps"]],
                            ("gen_ab", "gen_ba")),
}

pytestmark = pytest.mark.usefixtures("one_thread")


def _generator_weights(procedure, networks, model=None) -> dict[str, torch.Tensor]:
    """The generator networks' parameters (of `model`, else of the trained model), copied."""
    return {f"{net}.{key}": p.detach().clone() for net in networks
            for key, p in procedure.network(net, model).named_parameters()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_ema_follows_the_generator_steps(name, tmp_path, data_root_for):
    settings, networks = CASES[name]
    data_root_for(*recipe_folders(name))  # the shared data, else tests/tiny_data.py's (a fresh clone)
    run = Run(load_recipe(name, [*settings, f"ema={{decay: {DECAY}}}"]), tmp_path, "cpu")
    procedure = run.procedure
    procedure.train_mode()
    batch = default_collate([run.train_set[i] for i in range(2)])
    initial = _generator_weights(procedure, networks)
    procedure.train_step(batch)
    first = _generator_weights(procedure, networks)
    procedure.train_step(batch)
    second = _generator_weights(procedure, networks)
    averaged = procedure.eval_model()
    assert averaged is not procedure.unwrapped
    moved = 0
    for key, value in _generator_weights(procedure, networks, averaged).items():
        # torch's rule: the first update copies, each later one is decay * avg + (1 - decay) * new
        expected = DECAY * first[key] + (1 - DECAY) * second[key]
        torch.testing.assert_close(value, expected, msg=key)
        moved += not torch.equal(value, initial[key])
    assert moved > 0, "the averaged generator never left its initial weights"

