"""The translation recipes end to end on CI-sized runs: train, gradients, eval, sample."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.utils.data import default_collate

from engine.cli import main
from tests.conftest import needs_data as skip_unless_data

# each recipe, CI-sized: a few steps of a narrow network on small crops (seconds)
CI_SIZED = {
    "unet_membrane": ["spec.set.widths=[4,8,16]", "spec.set.image_size=32", "data.args.crop=32",
                      "data.args.eval_crop=64"],
    "pix2pix_membrane": ["spec.set.depth=3", "spec.set.ngf=4", "spec.set.ndf=4",
                         "spec.set.image_size=32", "data.args.crop=32", "data.args.eval_crop=64"],
    "pix2pix_l1_membrane": ["spec.set.depth=3", "spec.set.ngf=4", "spec.set.ndf=4",
                            "spec.set.image_size=32", "data.args.crop=32",
                            "data.args.eval_crop=64"],
    "cyclegan_mnist_usps": ["spec.set.ngf=4", "spec.set.ndf=4", "spec.set.res_blocks=1",
                            "spec.set.image_size=16", "data.args.size=16",
                            "data.eval_batch_size=500"],
}
STEPS = ["epochs=null", "steps=3", "data.batch_size=2", "eval.every_epochs=0"]
FOLDERS = {"unet_membrane": ["isbi2012_membrane"], "pix2pix_membrane": ["isbi2012_membrane"],
           "pix2pix_l1_membrane": ["isbi2012_membrane"], "cyclegan_mnist_usps": ["mnist", "usps"]}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is fastest


def needs_data(name: str) -> None:
    skip_unless_data(*FOLDERS[name])


def sets(items) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def train(name: str, out: Path, extra=()) -> Path:
    argv = ["train", name, "--device", "cpu", "--output", str(out),
            *sets([*STEPS, *CI_SIZED[name], *extra])]
    assert main(argv) == 0
    (folder,) = [p for p in out.iterdir() if p.name.startswith(name + "-")]
    return folder


def last_row(folder: Path) -> dict:
    with (folder / "metrics.csv").open() as f:
        return list(csv.DictReader(f))[-1]


def one_step(name: str, tmp_path: Path, extra=()):
    """A run's procedure after one train step on two items, and the values it returned."""
    from engine.train.recipe import load_recipe
    from engine.train.runner import Run
    recipe = load_recipe(name, [*STEPS, *CI_SIZED[name], *extra])
    run = Run(recipe, tmp_path / "grad", "cpu")
    run.procedure.train_mode()
    batch = default_collate([run.train_set[i] for i in range(2)])
    return run.procedure, run.procedure.train_step(batch)


@pytest.fixture(scope="module")
def judge(tmp_path_factory) -> Path:
    """A CI-sized unet_membrane checkpoint: the FCN-score judge of the pix2pix tests."""
    skip_unless_data("isbi2012_membrane")
    folder = train("unet_membrane", tmp_path_factory.mktemp("judge"))
    return folder / "checkpoints" / "last.pt"


@pytest.mark.parametrize("name", sorted(CI_SIZED))
def test_every_parameter_of_every_network_gets_a_gradient(name, tmp_path):
    needs_data(name)
    procedure, values = one_step(name, tmp_path)
    assert all(math.isfinite(v) for v in values.values()), values
    trained = procedure.unwrapped
    if name == "pix2pix_l1_membrane":  # the L1 baseline trains no discriminator
        assert "discriminator" not in procedure.optimizers
        trained = procedure.network("generator")
    for key, p in trained.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), key
        if key.endswith("weight"):  # (a bias just before instance norm has a zero gradient)
            assert p.grad.abs().sum() > 0, key


def _png(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        img.load()
        return img.size


def test_unet_membrane_trains_evaluates_and_draws(judge, tmp_path, capsys):
    assert math.isfinite(float(last_row(judge.parent.parent)["train_loss"]))
    assert main(["eval", "unet_membrane", "--checkpoint", str(judge), "--split", "test",
                 *sets(CI_SIZED["unet_membrane"])]) == 0
    out = capsys.readouterr().out
    assert "dice" in out and "iou" in out and "pixel_accuracy" in out
    grid = tmp_path / "unet.png"
    assert main(["sample", "unet_membrane", "--checkpoint", str(judge), "-n", "2", "-o",
                 str(grid), *sets([*CI_SIZED["unet_membrane"], "procedure.figure=grid"])]) == 0
    assert _png(grid) == (2 * 66 + 2, 3 * 66 + 2)  # 2 columns, 3 rows of 64 px + 2 px padding


@pytest.mark.parametrize("name", ["pix2pix_membrane", "pix2pix_l1_membrane"])
def test_pix2pix_trains_evaluates_with_the_fcn_score_and_draws(name, judge, tmp_path, capsys):
    folder = train(name, tmp_path)
    row = last_row(folder)
    assert math.isfinite(float(row["train_loss"]))
    checkpoint = str(folder / "checkpoints" / "last.pt")
    extra = sets([*CI_SIZED[name], f"procedure.judge={judge}"])
    assert main(["eval", name, "--checkpoint", checkpoint, "--split", "test", *extra]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "samples against test: " in ln)
    values = dict(part.rsplit(" ", 1) for part in line.split(": ", 1)[1].split("  "))
    for key in ("fcn_dice", "fcn_dice_real", "fcn_dice_untrained", "fcn_pixel_accuracy"):
        assert 0 <= float(values[key]) <= 1, key
    for key in ("texture_ratio", "texture_ratio_untrained"):  # realism beside the FCN-score
        assert float(values[key]) > 0, key
    grid = tmp_path / "p2p.png"
    assert main(["sample", name, "--checkpoint", checkpoint, "-n", "2", "-o", str(grid),
                 *extra]) == 0
    assert _png(grid) == (3 * 66 + 2, 2 * 66 + 2)  # rows of mask, generated, real


def test_high_frequency_energy_is_the_mean_absolute_laplacian():
    from engine.train.evaluation.metrics import high_frequency_energy
    flat = torch.full((1, 1, 8, 8), 0.3)
    ramp = torch.arange(8.0).expand(1, 1, 8, 8) / 8  # linear: the Laplacian vanishes
    checker = ((torch.arange(8)[:, None] + torch.arange(8)) % 2).float().expand(1, 1, 8, 8)
    energy = high_frequency_energy(torch.cat([flat, ramp, checker]))
    assert torch.allclose(energy, torch.tensor([0.0, 0.0, 4.0]))  # |4 neighbours - 4 x centre|


def test_pix2pix_without_a_judge_says_what_to_train(tmp_path, capsys):
    needs_data("pix2pix_membrane")
    folder = train("pix2pix_membrane", tmp_path)
    code = main(["eval", "pix2pix_membrane", "--checkpoint", str(folder / "checkpoints/last.pt"),
                 *sets([*CI_SIZED["pix2pix_membrane"], "procedure.judge=nowhere/*.pt"])])
    err = capsys.readouterr().err
    assert code == 1 and "matches no file" in err and "unet_membrane" in err


def test_cyclegan_trains_evaluates_and_draws(tmp_path, capsys):
    needs_data("cyclegan_mnist_usps")
    folder = train("cyclegan_mnist_usps", tmp_path)
    row = last_row(folder)
    assert math.isfinite(float(row["train_loss"])) and math.isfinite(float(row["train_d_loss"]))
    checkpoint = folder / "checkpoints" / "last.pt"
    assert "pools" in torch.load(checkpoint, weights_only=True)["procedure"]  # the histories
    extra = sets([*CI_SIZED["cyclegan_mnist_usps"], "eval.sample_metrics=[]"])
    assert main(["eval", "cyclegan_mnist_usps", "--checkpoint", str(checkpoint), "--split", "val",
                 *extra]) == 0
    assert "cycle_aba" in capsys.readouterr().out
    grid = tmp_path / "cyclegan.png"
    assert main(["sample", "cyclegan_mnist_usps", "--checkpoint", str(checkpoint), "-n", "4",
                 "-o", str(grid), *extra]) == 0
    assert _png(grid) == (4 * 34 + 2, 6 * 34 + 2)  # 6 rows of 16 px digits enlarged x2


def test_cyclegan_class_kept_reports_both_ways_with_floor_and_ceiling(tmp_path, monkeypatch):
    """class_kept with a stand-in judge that reads every image as a 3 (the real judges train
    for minutes): each figure is then the fraction of 3s among the labels it is checked on."""
    needs_data("cyclegan_mnist_usps")
    from engine.train.evaluation.digit_fd import Judgement
    from engine.train.runner import Run, open_checkpoint
    seen = []

    class Threes:
        def __init__(self, dataset):
            self.dataset, self.identity = dataset, f"threes-{dataset}@sha256:0"

        def judge(self, images):
            seen.append((self.dataset, tuple(images.shape[1:])))
            probs = torch.zeros(len(images), 10)
            probs[:, 3] = 1
            return Judgement(torch.zeros(len(images), 2).numpy(), probs)

    monkeypatch.setattr(Run, "digit_judge", lambda run, dataset, root=None: Threes(dataset))
    folder = train("cyclegan_mnist_usps", tmp_path)
    run = open_checkpoint("cyclegan_mnist_usps", CI_SIZED["cyclegan_mnist_usps"],
                          str(folder / "checkpoints/last.pt"), "cpu")
    values, notes = run.procedure.evaluate_samples(run, "val", ["class_kept"], 0)
    domain_a, domain_b = run.procedure.domains(run, "val")
    threes_a = float((run.procedure.stack(domain_a)[1] == 3).float().mean())
    threes_b = float((run.procedure.stack(domain_b)[1] == 3).float().mean())
    assert values["class_kept_ab"] == values["class_kept_ab_floor"] == pytest.approx(threes_a)
    assert values["class_kept_ab_ceiling"] == pytest.approx(threes_b)
    assert values["class_kept_ba"] == values["class_kept_ba_floor"] == pytest.approx(threes_b)
    assert values["class_kept_ba_ceiling"] == pytest.approx(threes_a)
    # every digit but 3 is lost to 3: the two most numerous are named first
    counts = sorted((-int((run.procedure.stack(domain_a)[1] == d).sum()), d) for d in range(10) if d != 3)
    assert values["class_kept_ab_lost"] == "; ".join(f"{d}: 0% kept (100% read as 3)" for _, d in counts[:2])
    digits = run.procedure.stack(domain_a)[1].unique().tolist()
    each = ", ".join(f"{d}: {100 if d == 3 else 0}%" for d in digits)
    assert values["class_kept_ab_by_digit"] == values["class_kept_ab_floor_by_digit"] == each
    # each figure names the judge that made it (a retrained judge makes other figures)
    assert (values["judge_ab"], values["judge_ba"]) == ("threes-usps@sha256:0", "threes-mnist@sha256:0")
    # each judge sees images at its own size: USPS 16x16, MNIST 28x28
    assert ("usps", (1, 16, 16)) in seen and ("mnist", (1, 28, 28)) in seen
    assert notes


def test_image_pool_mixes_old_and_new_fakes():
    from engine.train.procedures.cyclegan import ImagePool
    torch.manual_seed(0)
    pool = ImagePool(4)
    first = torch.arange(4.0).reshape(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: every new image is shown
    new = torch.full((200, 1, 1, 1), 9.0)
    shown = pool.query(new)
    old = (shown != 9).float().mean()
    assert 0.0 < float(old) < 0.1  # only the 4 first images can come back, each once
    assert ImagePool(0).query(new) is new


def test_lost_classes_names_the_digits_that_lose_most_and_what_they_become():
    from engine.train.procedures.cyclegan import by_digit, lost_classes
    labels = torch.tensor([7, 7, 7, 7, 1, 1, 1, 1, 1, 1, 2])
    read = torch.tensor([7, 9, 9, 7, 1, 4, 4, 4, 1, 1, 2])
    # 1s lose 3 of 6 (to 4), 7s 2 of 4 (to 9), 2s none
    assert lost_classes(read, labels) == "1: 50% kept (50% read as 4); 7: 50% kept (50% read as 9)"
    assert lost_classes(read, labels, count=1) == "1: 50% kept (50% read as 4)"
    assert lost_classes(labels, labels) == "none"
    assert by_digit(read, labels) == "1: 50%, 2: 100%, 7: 50%"
