"""The resampling blocks (blocks/resample.py) against F.interpolate, nn.PixelShuffle and a
hand rearrangement."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import engine
from engine.blocks.registry import lookup


def _block(name, **args):
    return lookup(name).cls(**args)


@pytest.mark.parametrize("args,size", [({"scale": 2}, (8, 10)), ({"scale": 0.5}, (2, 2)),
                                       ({"size": 7, "mode": "bilinear"}, (7, 7)),
                                       ({"size": [6, 9], "mode": "bicubic",
                                         "align_corners": True}, (6, 9))])
def test_upsample_equals_interpolate(args, size):
    from engine.blocks.resample import Upsample
    x = torch.randn(2, 3, 4, 5)
    out = Upsample(**args)(x)
    want = F.interpolate(x, size=args.get("size") if not isinstance(args.get("size"), list)
                         else tuple(args["size"]), scale_factor=args.get("scale"),
                         mode=args.get("mode", "nearest"), align_corners=args.get("align_corners"))
    assert out.shape[-2:] == size
    torch.testing.assert_close(out, want)


def test_upsample_rejects_both_or_neither_and_bad_modes():
    from engine.blocks.resample import Upsample
    for bad in ({}, {"scale": 2, "size": 4}, {"scale": 2, "mode": "linear"},
                {"scale": 2, "align_corners": True}):
        with pytest.raises(ValueError):
            Upsample(**bad)


def test_upsample_like_takes_the_size_of_its_second_input_at_run_time():
    # torchvision's segmentation heads: F.interpolate(x, size=image.shape[-2:])
    from engine.blocks.resample import Upsample
    up = Upsample(like=True, mode="bilinear", align_corners=False)
    x = torch.randn(2, 3, 4, 5)
    for size in ((9, 7), (16, 20)):
        ref = torch.randn(2, 1, *size)
        torch.testing.assert_close(up(x, ref), F.interpolate(x, size=size, mode="bilinear",
                                                             align_corners=False))
    with pytest.raises(ValueError, match="needs a second input"):
        up(x)
    with pytest.raises(ValueError, match="only with like: true"):
        Upsample(scale=2)(x, x)
    for bad in ({"like": True, "scale": 2}, {"like": True, "size": 4}):
        with pytest.raises(ValueError, match="exactly one"):
            Upsample(**bad)


def test_upsample_like_in_a_spec(spec_file):
    path = spec_file("""
        inputs: {image: [B, 3, 16, 12]}
        graph:
          down: {op: conv, out: 4, k: 3, stride: 4, pad: 1}
          up:   {op: upsample, in: [down, image], like: true, mode: bilinear}
    """)
    shaped = engine.analyze(path)
    assert shaped.nodes["up"].outputs[0].shape == (1, 4, 16, 12)
    model = engine.build(path)
    assert model(torch.randn(2, 3, 20, 8)).shape == (2, 4, 20, 8)  # the image's size, run time


def test_pixel_shuffle_equals_torch_and_a_hand_rearrangement():
    ps = _block("pixel_shuffle", scale=2)
    x = torch.randn(2, 12, 3, 5)
    torch.testing.assert_close(ps(x), F.pixel_shuffle(x, 2))
    assert ps(x).shape == (2, 3, 6, 10)
    # one output channel, r = 2: input channel i*2 + j fills the output pixels (2h + i, 2w + j)
    x = torch.arange(8.0).view(1, 4, 1, 2)  # channel k holds (2k, 2k + 1) at w = 0, 1
    want = torch.tensor([[0.0, 2.0, 1.0, 3.0],
                         [4.0, 6.0, 5.0, 7.0]]).view(1, 1, 2, 4)
    assert torch.equal(ps(x), want)
    with pytest.raises(ValueError, match="divisible"):
        ps(torch.randn(1, 6, 2, 2))
