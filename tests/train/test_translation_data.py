"""The translation datasets (`unpaired`, `isbi_membrane`) and the segmentation metrics."""

from __future__ import annotations

import pytest
import torch

from engine.train.data import build_dataset
from engine.train.evaluation.metrics import dice, iou, pixel_accuracy
from tests.conftest import SHARED_DATA, skip_without

needs_isbi = skip_without("isbi2012_membrane")
needs_digits = skip_without("mnist", "usps")


def isbi(split: str, **args):
    return build_dataset("isbi_membrane", SHARED_DATA, split, 0, None, args)


# ---- isbi_membrane ------------------------------------------------------------------------

@needs_isbi
def test_membrane_splits_shapes_and_ranges():
    train, val, test = isbi("train", crop=64), isbi("val"), isbi("test")
    assert (len(train), len(val), len(test)) == (25, 5, 5)
    image, mask = train[0]
    assert image.shape == (1, 64, 64) and image.dtype == torch.float32
    assert mask.shape == (64, 64) and mask.dtype == torch.long
    image, mask = test[0]
    assert image.shape == (1, 512, 512) and mask.shape == (512, 512)
    assert 0 <= image.min() and image.max() <= 1 and set(mask.unique().tolist()) == {0, 1}
    assert 0.1 < mask.float().mean() < 0.4  # membrane (label 0 in the PNGs) is ~22% of pixels
    assert isbi("test", eval_crop=128)[0][0].shape == (1, 128, 128)
    assert len(isbi("train", repeat=3)) == 75


@needs_isbi
def test_membrane_mask_is_black_in_the_label_png():
    import numpy as np
    from PIL import Image
    with Image.open(SHARED_DATA / "isbi2012_membrane/train/label/25.png") as img:
        label = torch.from_numpy(np.asarray(img.convert("L")).copy())
    _, mask = isbi("test")[0]  # held-out item 0 is section 25
    assert torch.equal(mask, (label == 0).long())


@needs_isbi
def test_val_and_test_are_the_held_out_sections_25_to_29():
    from engine.train.data.isbi import _load
    images, _ = _load(str(SHARED_DATA / "isbi2012_membrane"))
    for k in range(5):
        assert torch.equal(isbi("val")[k][0], images[25 + k].float() / 255)
        assert torch.equal(isbi("test")[k][0], isbi("val")[k][0])


def _locate(crop: torch.Tensor, full: torch.Tensor) -> list[tuple[int, int]]:
    """Where `crop` [h, w] occurs in `full` [H, W] (exact match)."""
    h, w = crop.shape
    # candidates: the places whose corner pixel matches; each is then compared whole (comparing
    # every window at once costs half a billion comparisons per call)
    corners = (full[:full.shape[0] - h + 1, :full.shape[1] - w + 1] == crop[0, 0]).nonzero().tolist()
    return [(i, j) for i, j in corners if torch.equal(full[i:i + h, j:j + w], crop)]


def _undo(image, mask, full_image):
    """The crop's place in the full section after undoing its flips/rotation, and the mask so
    undone: tries the 16 candidate transforms (flip_rotate is its own inverse up to turns)."""
    from engine.train.data.isbi import flip_rotate
    for h in (False, True):
        for v in (False, True):
            for turns in range(4):
                x, m = flip_rotate(image, mask, h, v, turns)
                where = _locate(x[0], full_image[0])
                if where:
                    return where[0], m
    return None, None


@needs_isbi
def test_crops_flips_and_rotations_keep_image_and_mask_aligned():
    from engine.train.data.isbi import _load
    images, masks = _load(str(SHARED_DATA / "isbi2012_membrane"))
    train = isbi("train", crop=48, flip=True)
    for seed in range(12):
        torch.manual_seed(seed)
        image, mask = train[3]
        (top, left), m = _undo(image, mask, images[3].float() / 255)
        # the mask, undone the same way, is the full mask at the image's place
        assert torch.equal(masks[3][top:top + 48, left:left + 48], m), seed


@needs_isbi
def test_flip_rotate_moves_image_and_mask_alike():
    from engine.train.data.isbi import flip_rotate
    image, mask = isbi("test", eval_crop=64)[1]
    for h, v, turns in [(True, False, 0), (False, True, 1), (True, True, 3)]:
        x, m = flip_rotate(image, mask, h, v, turns)
        # the same transform of the stacked pair: image and mask stay one picture
        both, _ = flip_rotate(torch.cat([image, mask[None].float()]), mask, h, v, turns)
        assert torch.equal(x, both[:1]) and torch.equal(m.float(), both[1])


def test_missing_isbi_folder_is_a_located_error(tmp_path):
    from engine.compiler.ir import SpecError
    with pytest.raises(SpecError) as err:
        build_dataset("isbi_membrane", tmp_path, "train", 0, None, {})
    assert "no train/image/" in str(err.value) and "isbi2012_membrane" in str(err.value)


# ---- unpaired -----------------------------------------------------------------------------

@needs_digits
def test_unpaired_items_concatenate_two_resized_domains():
    data = build_dataset("unpaired", SHARED_DATA, "test", 0, None,
                         {"a": "mnist", "b": "usps", "size": 32})
    mnist = build_dataset("mnist", SHARED_DATA, "test", 0)
    usps = build_dataset("usps", SHARED_DATA, "test", 0)
    assert len(data) == max(len(mnist), len(usps))
    images, labels = data[0]
    assert images.shape == (2, 32, 32) and labels.shape == (2,) and labels.dtype == torch.long
    assert 0 <= images.min() and images.max() <= 1
    assert int(labels[0]) == mnist[0][1]
    want = torch.nn.functional.interpolate(mnist[0][0][None], size=(32, 32), mode="bilinear",
                                           antialias=True)[0].clamp(0, 1)
    torch.testing.assert_close(images[:1], want)


@needs_digits
def test_unpaired_b_is_drawn_by_a_seeded_permutation_independent_of_a():
    args = {"a": "mnist", "b": "usps", "size": 16}
    data = build_dataset("unpaired", SHARED_DATA, "test", 0, None, args)
    usps = build_dataset("usps", SHARED_DATA, "test", 0)
    n = 200
    b_labels = torch.stack([data[i][1] for i in range(n)])
    plain = torch.tensor([usps[i][1] for i in range(n)])
    assert not torch.equal(b_labels[:, 1], plain)           # not B in its own order
    assert (b_labels[:, 0] == b_labels[:, 1]).float().mean() < 0.3  # labels unrelated (~0.1)
    again = build_dataset("unpaired", SHARED_DATA, "test", 0, None, args)
    assert torch.equal(again[5][0], data[5][0])             # the seed fixes the pairing
    other = build_dataset("unpaired", SHARED_DATA, "test", 1, None, args)
    assert not torch.equal(torch.stack([other[i][0][1] for i in range(20)]),
                           torch.stack([data[i][0][1] for i in range(20)]))
    assert sorted(data.perm.tolist()) == list(range(len(usps)))  # every B image once


def test_unpaired_without_domains_is_a_located_error():
    from engine.compiler.ir import SpecError
    with pytest.raises(SpecError) as err:
        build_dataset("unpaired", SHARED_DATA, "train", 0, None, {"a": "mnist"})
    assert "data.args.a and data.args.b" in str(err.value)
    with pytest.raises(SpecError) as err:
        build_dataset("unpaired", SHARED_DATA, "train", 0, None, {"a": "mnist", "b": "uspz"})
    assert "names no dataset" in str(err.value)


# ---- metrics ------------------------------------------------------------------------------

def test_dice_iou_and_pixel_accuracy_by_hand():
    target = torch.tensor([[[1, 1, 0, 0]], [[0, 0, 0, 0]], [[1, 0, 1, 0]]])
    pred = torch.tensor([[[1, 0, 1, 0]], [[0, 0, 0, 0]], [[0, 1, 0, 1]]])
    # image 0: |P and T| = 1, |P| = 2, |T| = 2 -> Dice 2/4, IoU 1/3; image 1: both empty -> 1
    # image 2: no overlap -> 0
    torch.testing.assert_close(dice(pred, target), torch.tensor([0.5, 1.0, 0.0]))
    torch.testing.assert_close(iou(pred, target), torch.tensor([1 / 3, 1.0, 0.0]))
    torch.testing.assert_close(pixel_accuracy(pred, target), torch.tensor([0.5, 1.0, 0.0]))
    logits = torch.stack([1 - pred, pred], dim=1).float()  # logits [B, 2, H, W] give the same
    torch.testing.assert_close(dice(logits, target), dice(pred, target))
    torch.testing.assert_close(iou(logits, target), iou(pred, target))


def test_soft_dice_loss_is_zero_for_a_confident_perfect_prediction():
    from engine.train.procedures.segment import soft_dice_loss
    target = torch.tensor([[[1, 0], [0, 1]]])
    logits = torch.stack([1 - target, target], dim=1).float() * 50
    assert float(soft_dice_loss(logits, target)) < 1e-3
    assert float(soft_dice_loss(-logits, target)) > 0.6
