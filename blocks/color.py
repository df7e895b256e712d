"""Fixed colour maps of RGB images: EDSR's mean shift and the BT.601 luminance that
super-resolution papers train and evaluate on."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from engine.blocks.registry import register

# ITU-R BT.601 luma for RGB in [0, 1], as MATLAB's rgb2ycbcr (the SR papers' convention):
# Y = 16/255 + (65.481 R + 128.553 G + 24.966 B) / 255, in [16/255, 235/255].
# engine/train/evaluation/color.py holds the full conversion; blocks do not import the engine,
# so the row is repeated.
_Y_WEIGHTS = (65.481 / 255, 128.553 / 255, 24.966 / 255)
_Y_OFFSET = 16 / 255


@register("mean_shift", category="color", in_dim=1, same_shape=True,
          example={"args": {"sign": -1}, "inputs": [[2, 3, 4, 4]]})
class MeanShift(nn.Conv2d):
    """EDSR's mean shift (Lim et al., 2017): a frozen 1x1 conv that subtracts (`sign: -1`) or
    adds back (`sign: 1`) the dataset's RGB mean, scaled by `std`.

    [B, C, H, W] -> [B, C, H, W] with C = len(mean) (3 for RGB): channel c becomes
    (x_c + sign * range * mean_c) / std_c. `mean` defaults to DIV2K's, `range` is the pixel
    range (1 for images in [0, 1], EDSR's code uses 255). The state_dict is EDSR's MeanShift:
    `weight` [C, C, 1, 1] = eye / std and `bias` [C] = sign * range * mean / std, both with
    requires_grad false, so optimizers (which take trainable parameters) leave them alone and
    `reset_parameters` (run when materialising from the meta device) rewrites the fixed values.
    """

    def __init__(self, in_size: int, mean: list[float] = [0.4488, 0.4371, 0.4040],  # noqa: B006
                 std: list[float] = [1.0, 1.0, 1.0], sign: int = -1,  # noqa: B006
                 range: float = 1.0):  # named like EDSR's rgb_range
        if len(mean) != in_size or len(std) != in_size:
            raise ValueError(f"mean_shift: mean and std need one value per channel ({in_size}), got "
                             f"{len(mean)} and {len(std)}")
        if sign not in (-1, 1):
            raise ValueError(f"mean_shift: sign must be -1 (subtract the mean) or 1 (add it), got {sign}")
        if any(s == 0 for s in std):
            raise ValueError("mean_shift: std must not contain 0")
        # nn.Conv2d.__init__ calls reset_parameters, which needs these values
        self.shift = ([float(m) for m in mean], [float(s) for s in std], int(sign), float(range))
        super().__init__(in_size, in_size, 1)
        self.weight.requires_grad_(False)
        self.bias.requires_grad_(False)

    def reset_parameters(self) -> None:
        mean, std, sign, rng = self.shift
        with torch.no_grad():
            std_t = torch.tensor(std, dtype=self.weight.dtype, device=self.weight.device)
            mean_t = torch.tensor(mean, dtype=self.weight.dtype, device=self.weight.device)
            eye = torch.eye(len(std), dtype=self.weight.dtype, device=self.weight.device)
            self.weight.copy_((eye / std_t[:, None]).view_as(self.weight))
            self.bias.copy_(sign * rng * mean_t / std_t)

    def label(self) -> str:
        return "subtract mean" if self.shift[2] < 0 else "add mean"

    def extra_repr(self) -> str:
        mean, std, sign, rng = self.shift
        return f"mean={mean}, std={std}, sign={sign}, range={rng:g}"


@register("luminance", category="color", layout=True, example={"args": {}, "inputs": [[2, 3, 4, 5]]})
class Luminance(nn.Module):
    """The luma Y of ITU-R BT.601 (MATLAB's rgb2ycbcr), the channel SR papers (SRCNN, VDSR)
    train on and report PSNR / SSIM on.

    [B, 3, H, W] RGB in [0, 1] -> [B, 1, H, W]: Y = 16/255 + (65.481 R + 128.553 G + 24.966 B) / 255,
    in [16/255, 235/255]. No parameters; `engine.train.evaluation.color.rgb_to_ycbcr` gives all
    three channels.
    """

    def label(self) -> str:
        return "luminance (BT.601)"

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-3] != 3:
            raise ValueError(f"luminance: expects 3 RGB channels, got {x.shape[-3]}")
        r, g, b = x.unbind(-3)
        wr, wg, wb = _Y_WEIGHTS
        return (_Y_OFFSET + wr * r + wg * g + wb * b).unsqueeze(-3)
