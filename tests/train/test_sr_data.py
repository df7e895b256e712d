"""The super-resolution datasets `sr_benchmark` and `sr_patches` (engine/train/data/sr.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from engine.compiler.ir import SpecError
from engine.train.data import build_dataset, dataset_info
from tests.conftest import SHARED_DATA, skip_without

SR = SHARED_DATA / "sr_benchmarks"
needs_sr = skip_without("sr_benchmarks")


def bench(split="test", **args):
    return build_dataset("sr_benchmark", SHARED_DATA, split, 0, None, args)


def patches(split="train", **args):
    return build_dataset("sr_patches", SHARED_DATA, split, 0, None, args)


def _uint8(x: torch.Tensor) -> np.ndarray:
    """float [3, H, W] in [0, 1] (made from uint8) -> uint8 [H, W, 3], exactly."""
    return (x * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def _pil_bicubic(hr: np.ndarray, scale: int) -> np.ndarray:
    h, w = hr.shape[:2]
    return np.asarray(Image.fromarray(hr).resize((w // scale, h // scale), Image.BICUBIC))


# ---- sr_benchmark -----------------------------------------------------------------------------

@needs_sr
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_set5_is_modcropped_to_the_scale(scale):
    data = bench(set="Set5", scale=scale)
    assert len(data) == 5 and data.names == ["baby", "bird", "butterfly", "head", "woman"]
    sizes = {"baby": (512, 512), "bird": (288, 288), "butterfly": (256, 256), "head": (280, 280),
             "woman": (344, 228)}  # (H, W)
    for name, (lr, hr) in zip(data.names, data):
        h, w = sizes[name]
        assert hr.shape == (3, h - h % scale, w - w % scale)
        assert lr.shape == (3, h // scale, w // scale)
        assert lr.dtype == hr.dtype == torch.float32 and 0 <= hr.min() and hr.max() <= 1


@needs_sr
def test_butterfly_at_x3_and_its_lr_is_pil_bicubic_of_the_top_left_crop():
    lr, hr = bench(set="Set5", scale=3)[2]
    assert hr.shape == (3, 255, 255) and lr.shape == (3, 85, 85)
    with Image.open(SR / "Set5" / "butterfly.png") as img:
        full = np.asarray(img.convert("RGB"))
    assert np.array_equal(_uint8(hr), full[:255, :255])
    assert np.array_equal(_uint8(lr), _pil_bicubic(full[:255, :255].copy(), 3))


@needs_sr
def test_greyscale_bridge_gives_three_equal_channels():
    data = bench(set="Set14", scale=4)
    assert len(data) == 14
    lr, hr = data[data.names.index("bridge")]
    assert hr.shape == (3, 512, 512) and lr.shape == (3, 128, 128)
    assert torch.equal(hr[0], hr[1]) and torch.equal(hr[1], hr[2]) and torch.equal(lr[0], lr[2])


@needs_sr
def test_every_split_is_the_whole_set_and_batches_are_single_images():
    assert len(bench("train", set="CBSD68", scale=2)) == len(bench("val", set="CBSD68", scale=2)) == 68
    data = bench(set="Set5", scale=4)
    lr, hr = data.collate([data[1]])
    assert lr.shape == (1, 3, 72, 72) and hr.shape == (1, 3, 288, 288)
    with pytest.raises(ValueError, match="eval_batch_size: 1"):
        data.collate([data[0], data[1]])


def test_info_and_argument_errors(tmp_path):
    info = dataset_info("sr_benchmark", tmp_path, {"set": "Set5", "scale": 2})
    assert (info.channels, info.size, info.classes) == (3, None, [])
    if hasattr(info, "spec_params"):
        assert info.spec_params == {"scale": 2}
    with pytest.raises(SpecError, match="unknown set 'Set6'"):
        build_dataset("sr_benchmark", tmp_path, "test", 0, None, {"set": "Set6", "scale": 2})
    with pytest.raises(SpecError, match="data.set is required"):
        build_dataset("sr_benchmark", tmp_path, "test", 0, None, {"scale": 2})
    for bad in (5, 1, None):
        with pytest.raises(SpecError, match="data.scale"):
            build_dataset("sr_benchmark", tmp_path, "test", 0, None, {"set": "Set5", "scale": bad})
    with pytest.raises(SpecError, match="must be int"):
        build_dataset("sr_benchmark", tmp_path, "test", 0, None, {"set": "Set5", "scale": 2.0})
    with pytest.raises(SpecError, match="no Set5/"):
        build_dataset("sr_benchmark", tmp_path, "test", 0, None, {"set": "Set5", "scale": 2})
    with pytest.raises(SpecError, match="takes no data.transforms"):
        build_dataset("sr_benchmark", tmp_path, "test", 0, lambda x: x, {"set": "Set5", "scale": 2})


# ---- sr_patches -------------------------------------------------------------------------------

@needs_sr
def test_patch_split_sizes_and_shapes():
    train = patches(scale=4)
    assert len(train) == 60 * 16
    lr, hr = train[0]
    assert hr.shape == (3, 96, 96) and lr.shape == (3, 24, 24)
    assert len(patches(scale=2, repeat=3)) == 180
    val, test = patches("val", scale=3, patch=48), patches("test", scale=3, patch=48)
    assert len(val) == len(test) == 8
    assert len(patches("val", scale=2, val_images=4)) == 4
    assert len(patches(scale=2, val_images=4, repeat=1)) == 64
    lr, hr = val[0]
    assert hr.shape == (3, 48, 48) and lr.shape == (3, 16, 16)
    for (a, b), (c, d) in zip(val, test):  # val and test are the same held-out centre crops
        assert torch.equal(a, c) and torch.equal(b, d)
    batch = train.collate([train[i] for i in range(4)])
    assert batch[0].shape == (4, 3, 24, 24) and batch[1].shape == (4, 3, 96, 96)


@needs_sr
def test_held_out_images_are_the_last_of_the_sorted_list_centre_cropped():
    from engine.train.data.sr import load_set
    images = load_set(str(SR), "CBSD68")
    names = [n for n, _ in images]
    assert names == sorted(names)
    val = patches("val", scale=2, patch=64)
    for k, (_, image) in enumerate(images[-8:]):
        h, w = image.shape[:2]
        top, left = (h - 64) // 2, (w - 64) // 2
        assert np.array_equal(_uint8(val[k][1]), image[top:top + 64, left:left + 64])


def _at(patch: np.ndarray, image: np.ndarray) -> bool:
    """Whether `patch` [p, p, 3] is a window of `image` (candidates by the top-left pixel)."""
    p = patch.shape[0]
    tops, lefts = np.nonzero((image[: image.shape[0] - p + 1, : image.shape[1] - p + 1]
                              == patch[0, 0]).all(axis=2))
    return any(np.array_equal(image[t:t + p, u:u + p], patch) for t, u in zip(tops, lefts))


def _find(hr: np.ndarray, image: np.ndarray) -> bool:
    """Whether `hr`, undone by one of the 16 flips and turns, is a window of `image`."""
    from engine.train.data.sr import flip_rotate
    return any(_at(np.ascontiguousarray(flip_rotate(hr, h, v, turns)), image)
               for h in (False, True) for v in (False, True) for turns in range(4))


@needs_sr
@pytest.mark.parametrize("flip", [False, True])
def test_patches_are_aligned_crops_and_flips_are_joint(flip):
    from engine.train.data.sr import load_set
    images = [im for _, im in load_set(str(SR), "CBSD68")]
    train = patches(scale=4, patch=32, flip=flip, repeat=1)
    for seed in range(6):
        torch.manual_seed(seed)
        lr, hr = train[seed]
        hr8 = _uint8(hr)
        # the LR patch is the bicubic downscale of the (flipped) HR patch: aligned by construction
        assert np.array_equal(_uint8(lr), _pil_bicubic(hr8, 4))
        image = images[seed]
        if flip:
            assert _find(hr8, image)
        else:
            assert _at(hr8, image)
    # the draws come from torch's global generator: the same seed, the same patch
    torch.manual_seed(7)
    a = train[3]
    torch.manual_seed(7)
    b = train[3]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@needs_sr
def test_flips_happen():
    from engine.train.data.sr import load_set
    image = load_set(str(SR), "CBSD68")[0][1]
    train = patches(scale=2, patch=32, repeat=1)
    unflipped = []
    for seed in range(8):
        torch.manual_seed(seed)
        unflipped.append(_at(_uint8(train[0][1]), image))
    assert not all(unflipped)  # 15 of the 16 flips/turns move the patch


@needs_sr
def test_patch_argument_errors():
    with pytest.raises(SpecError, match="multiple of the scale"):
        patches(scale=3, patch=64)
    with pytest.raises(SpecError, match="larger than the smallest image side"):
        patches(scale=2, patch=400)
    with pytest.raises(SpecError, match="val_images"):
        patches(scale=2, val_images=68)
    with pytest.raises(SpecError, match="val_images"):
        patches(scale=2, set="Set5")  # 8 held-out images of 5
    with pytest.raises(SpecError, match="data.repeat"):
        patches(scale=2, repeat=0)
    with pytest.raises(SpecError, match="unknown set"):
        patches(scale=2, set="BSD100")


# ---- multi-scale sr_patches (VDSR, DRRN: one network for x2, x3 and x4) ----------------------

def _down_up(hr8: np.ndarray, scale: int) -> torch.Tensor:
    """PIL's bicubic downscale of a uint8 patch, then torch's bicubic upscale back."""
    from engine.train.data.sr import upscale_bicubic
    small = torch.from_numpy(_pil_bicubic(hr8, scale).copy()).permute(2, 0, 1).float() / 255
    return upscale_bicubic(small, scale)


@needs_sr
def test_multi_scale_patches_come_upscaled_and_draw_every_scale():
    train = patches(scale=[2, 3, 4], patch=24, repeat=1)
    assert len(train) == 60
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        lr, hr = train[seed]
        assert lr.shape == hr.shape == (3, 24, 24)  # one HR size: the LR comes upscaled
        hr8 = _uint8(hr)
        # exactly one scale's bicubic down-then-up gives this input
        matches = [s for s in (2, 3, 4) if torch.equal(lr, _down_up(hr8, s))]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == {2, 3, 4}
    batch = train.collate([train[i] for i in range(5)])  # mixed scales share a batch
    assert batch[0].shape == (5, 3, 24, 24)


@needs_sr
def test_multi_scale_val_holds_every_image_at_every_scale():
    from engine.train.data.sr import upscale_bicubic
    val = patches("val", scale=[2, 4], patch=48)
    single = {s: patches("val", scale=s, patch=48) for s in (2, 4)}
    assert len(val) == 16
    for k in range(16):
        s, i = (2, 4)[k // 8], k % 8
        lr, hr = single[s][i]
        assert torch.equal(val[k][1], hr)
        assert torch.equal(val[k][0], upscale_bicubic(lr, s))


@needs_sr
def test_multi_scale_argument_errors():
    with pytest.raises(SpecError, match=r"multiple of every scale \(12\)"):
        patches(scale=[2, 3, 4], patch=32)
    with pytest.raises(SpecError, match="distinct"):
        patches(scale=[2, 2], patch=24)
    with pytest.raises(SpecError, match="2, 3 or 4"):
        patches(scale=[2, 5], patch=24)
    with pytest.raises(SpecError, match="one scale here"):
        bench(set="Set5", scale=[2, 3])


def test_upscale_bicubic_by_one_is_the_identity():
    from engine.train.data.sr import upscale_bicubic
    x = torch.rand(2, 3, 7, 9)
    assert torch.allclose(upscale_bicubic(x, 1), x, atol=1e-6)
