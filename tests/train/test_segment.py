"""The `segment` procedure on the command line: `engine infer` (label-map and overlay PNGs at the
input's own size, padded by reflection and cropped back) and `engine sample` (the overlay and
error-map figure), on a tiny U-Net trained six steps on a fake ISBI folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from engine.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

# widths [4, 8, 16]: sides must divide by 4, so 21 x 19 is padded to 24 x 20 and cropped back
# (a constant lr for 6 steps: enough for a map of both classes, so the oracle check bites)
TINY = ["spec.set.widths=[4,8,16]", "spec.set.image_size=16", "data.args.crop=16",
        "data.args.eval_crop=32", "data.args.repeat=1", "epochs=null", "steps=6",
        "data.batch_size=2", "eval.every_epochs=0", "scheduler=null", "optimizer.lr=0.01"]


def sets(items) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def fake_isbi(root: Path) -> None:
    """30 sections of 512 x 512 noise; the label is black (membrane) where the image is dark
    (half the pixels)."""
    rng = np.random.default_rng(0)
    for kind in ("image", "label"):
        (root / "isbi2012_membrane" / "train" / kind).mkdir(parents=True)
    for i in range(30):
        image = (rng.random((512, 512)) * 255).astype(np.uint8)
        label = np.where(image < 128, 0, 255).astype(np.uint8)
        Image.fromarray(image).save(root / "isbi2012_membrane" / "train" / "image" / f"{i}.png")
        Image.fromarray(label).save(root / "isbi2012_membrane" / "train" / "label" / f"{i}.png")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(checkpoint, overrides) of unet_membrane trained 6 steps on the fake folder."""
    base = tmp_path_factory.mktemp("segment")
    fake_isbi(base / "data")
    overrides = [*TINY, f"data.root={base / 'data'}"]
    assert main(["train", "unet_membrane", "--device", "cpu", "--output", str(base / "runs"),
                 *sets(overrides)]) == 0
    (folder,) = (base / "runs").iterdir()
    return folder / "checkpoints" / "last.pt", overrides


def infer(checkpoint, overrides, *inputs, output=None) -> int:
    argv = ["infer", "unet_membrane", "--checkpoint", str(checkpoint), "--device", "cpu",
            *sets(overrides), *map(str, inputs)]
    return main([*argv, "-o", str(output)] if output else argv)


def oracle(checkpoint, overrides, path: Path) -> np.ndarray:
    """The mask PNG expected of an image file: the model run directly on the image padded by
    reflection to sides divisible by 4, its argmax cropped back; membrane (1) 0, else 255."""
    from engine.train.runner import open_checkpoint
    run = open_checkpoint("unet_membrane", overrides, str(checkpoint), "cpu")
    with Image.open(path) as img:
        x = torch.from_numpy(np.asarray(img.convert("L"), dtype=np.float32) / 255)[None, None]
    h, w = x.shape[-2:]
    padded = F.pad(x, (0, -w % 4, 0, -h % 4), mode="reflect")
    assert padded.shape[-2] % 4 == 0 and padded.shape[-1] % 4 == 0
    model = run.procedure.eval_model().eval()
    with torch.no_grad(), run.procedure.autocast():
        labels = model(padded).float().argmax(1)[0, :h, :w]
    return np.where(labels.numpy() == 1, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("size", [(32, 32), (21, 19)])  # (width, height)
def test_infer_writes_mask_and_overlay_at_the_input_size(trained, tmp_path, capsys, size):
    checkpoint, overrides = trained
    image = tmp_path / "section.png"
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random(size[::-1]) * 255).astype(np.uint8)).save(image)
    out = tmp_path / "out"
    assert infer(checkpoint, overrides, image, output=out) == 0
    line = capsys.readouterr().out.strip()
    assert "section_mask.png" in line and "section_overlay.png" in line
    assert f"{size[0]}x{size[1]}" in line and "membrane" in line and "% of pixels" in line
    with Image.open(out / "section_mask.png") as mask:
        assert mask.size == size and mask.mode == "L"
        pixels = np.asarray(mask)
    with Image.open(out / "section_overlay.png") as overlay:
        assert overlay.size == size and overlay.mode == "RGB"
    assert set(np.unique(pixels)) == {0, 255}  # both classes predicted
    np.testing.assert_array_equal(pixels, oracle(checkpoint, overrides, image))


def test_infer_writes_beside_the_input_without_output(trained, tmp_path):
    checkpoint, overrides = trained
    image = tmp_path / "a.png"
    Image.fromarray(np.full((16, 20, 3), 128, np.uint8)).save(image)  # RGB: read as grey
    assert infer(checkpoint, overrides, image) == 0
    assert (tmp_path / "a_mask.png").is_file() and (tmp_path / "a_overlay.png").is_file()


def test_infer_missing_file_is_a_clear_error(trained, tmp_path, capsys):
    checkpoint, overrides = trained
    assert infer(checkpoint, overrides, tmp_path / "nope.png") == 1
    err = capsys.readouterr().err
    assert "cannot read the image" in err and "nope.png" in err


def test_pad_to_multiple_reflects_and_crops_back():
    from engine.train.procedures.segment import mask_pixels, pad_to_multiple
    x = torch.arange(2 * 3 * 5, dtype=torch.float32).reshape(1, 2, 3, 5)
    padded = pad_to_multiple(x, 4)
    assert padded.shape == (1, 2, 4, 8)
    assert torch.equal(padded[..., :3, :5], x)
    assert torch.equal(padded[..., 3, :5], x[..., 1, :])  # reflection: row 3 mirrors row 1
    assert pad_to_multiple(x, 1) is x
    assert pad_to_multiple(torch.zeros(1, 1, 2, 2), 8).shape == (1, 1, 8, 8)  # replicate
    labels = torch.tensor([[0, 1], [1, 0]])
    assert mask_pixels(labels, 2).tolist() == [[255, 0], [0, 255]]
    assert mask_pixels(torch.tensor([[0, 1, 2]]), 3).tolist() == [[0, 127, 254]]


def test_sample_draws_the_overlay_figure(trained, tmp_path, capsys):
    checkpoint, overrides = trained
    picture = tmp_path / "unet.png"
    assert main(["sample", "unet_membrane", "--checkpoint", str(checkpoint), "-n", "2", "-o",
                 str(picture), *sets(overrides)]) == 0
    said = capsys.readouterr().out
    assert "2 held-out test images" in said and "Dice" in said
    with Image.open(picture) as img:
        img.load()
        assert img.size[0] > 300 and img.size[1] > 300
    grid = tmp_path / "grid.png"  # the older grid stays an option
    assert main(["sample", "unet_membrane", "--checkpoint", str(checkpoint), "-n", "2", "-o",
                 str(grid), *sets([*overrides, "procedure.figure=grid"])]) == 0
    with Image.open(grid) as img:
        assert img.size == (2 * 34 + 2, 3 * 34 + 2)


def test_constant_baselines_are_one_class_everywhere():
    from engine.train.procedures.segment import constant_baselines
    masks = torch.zeros(2, 4, 4, dtype=torch.long)
    masks[0, :1] = 1          # a quarter membrane
    masks[1] = 1              # all membrane
    out = constant_baselines(masks)
    # background everywhere: right on the background pixels
    assert torch.allclose(out["baseline_accuracy"], torch.tensor([0.75, 0.0]))
    # membrane everywhere: Dice = 2|T| / (N + |T|)
    assert torch.allclose(out["baseline_dice"], torch.tensor([2 * 4 / (16 + 4), 1.0]))
