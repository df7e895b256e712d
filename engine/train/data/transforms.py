"""Image transforms a recipe lists, each registered by name in `engine.train.registry.TRANSFORMS`.

An entry is a name (`horizontal_flip`), a name with its main argument (`resize: 32`,
`center_crop: 24`, `pad: 2`), or a name with a mapping of arguments
(`{random_crop: {size: 28, padding: 2}}`, `{normalize: {mean: [0.5], std: [0.5]}}`).
They are built on torchvision.transforms.v2 and work on float image tensors [C, H, W].
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode

from engine.compiler.ir import Diagnostic, Loc, SpecError
from engine.train.registry import TRANSFORMS


@dataclass
class TransformDef:
    """A registered transform: `factory(**args)` builds it; a bare value fills `primary`."""

    name: str
    factory: Callable[..., Callable]
    primary: str | None
    doc: str

    def params(self) -> dict[str, inspect.Parameter]:
        return dict(inspect.signature(self.factory).parameters)

    def usage(self) -> str:
        parts = []
        for p in self.params().values():
            parts.append(p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}")
        return f"{self.name}({', '.join(parts)})"


class ArgError(ValueError):
    """A bad transform argument (the message says which and why)."""


def _register(name: str, primary: str | None = None) -> Callable:
    def wrap(fn: Callable) -> Callable:
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        TRANSFORMS.add(name, TransformDef(name, fn, primary, doc))
        return fn

    return wrap


def transform_names() -> list[str]:
    return TRANSFORMS.names()


def transform_usage(name: str) -> str:
    """e.g. "random_crop(size, padding=None, ...)" for messages and docs."""
    return TRANSFORMS.get(name).usage()


# ---------------------------------------------------------------------------------------------
# building


def build_transform(items: list | None, loc_hint: str = "transforms") -> Callable | None:
    """The composed transform of a recipe's list (None for an empty list); SpecError on mistakes."""
    transform, diagnostics = _build(items, loc_hint)
    if diagnostics:
        raise SpecError(diagnostics)
    return transform


def check_transforms(items: list | None, loc_hint: str = "transforms") -> list[Diagnostic]:
    """The errors of a transform list, without raising (for the validator)."""
    return _build(items, loc_hint)[1]


def _build(items: Any, loc_hint: str) -> tuple[Callable | None, list[Diagnostic]]:
    loc = Loc(str(loc_hint))
    if items is None:
        return None, []
    if isinstance(items, (str, dict)):
        items = [items]
    if not isinstance(items, (list, tuple)):
        msg = f"transforms must be a list of entries, got {type(items).__name__}"
        return None, [Diagnostic(msg, loc, hint="write e.g. [horizontal_flip, {resize: 32}]")]
    built, diagnostics = [], []
    for i, item in enumerate(items):
        try:
            built.append(_build_one(item))
        except ArgError as e:
            name = _entry_name(item)
            hint = f"usage: {transform_usage(name)}" if name in TRANSFORMS else ""
            hint = getattr(e, "hint", hint)
            diagnostics.append(Diagnostic(str(e), loc, path=f"transforms[{i}]", hint=hint))
    if diagnostics:
        return None, diagnostics
    if not built:
        return None, []
    return v2.Compose(built), []


def _entry_name(item: Any) -> Any:
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and len(item) == 1:
        return next(iter(item))
    return None


def _arg_error(message: str, hint: str = "") -> ArgError:
    # an ArgError, not a SpecError: _build collects one per list entry and locates it there
    e = ArgError(message)
    if hint:
        e.hint = hint  # type: ignore[attr-defined]
    return e


def _build_one(item: Any) -> Callable:
    if isinstance(item, str):
        name, value = item, None
    elif isinstance(item, dict) and len(item) == 1:
        name, value = next(iter(item.items()))
    else:
        raise _arg_error(
            f"a transform entry is a name or a one-key mapping, got {item!r}",
            hint="write e.g. `- horizontal_flip`, `- resize: 32`, `- {random_crop: {size: 28, padding: 2}}`",
        )
    if not isinstance(name, str) or name not in TRANSFORMS:
        raise _arg_error(f"unknown transform {name!r}", hint=TRANSFORMS.hint(str(name)))
    spec: TransformDef = TRANSFORMS.get(name)
    params = spec.params()
    if value is None:
        kwargs = {}
    elif isinstance(value, dict):
        kwargs = dict(value)
    elif spec.primary is not None:
        kwargs = {spec.primary: value}
    else:
        raise _arg_error(
            f"transform {name!r} takes its arguments as a mapping, got {value!r}",
            hint=f"write {{{name}: {{{', '.join(p + ': ...' for p in params)}}}}}",
        )
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        raise _arg_error(
            f"transform {name!r} has no argument {', '.join(repr(str(k)) for k in unknown)}",
            hint=f"arguments: {', '.join(params)}; usage: {spec.usage()}",
        )
    missing = [p for p, v in params.items() if v.default is inspect.Parameter.empty and p not in kwargs]
    if missing:
        raise _arg_error(f"transform {name!r} needs {', '.join(missing)}", hint=f"usage: {spec.usage()}")
    try:
        return spec.factory(**kwargs)
    except ArgError as e:
        raise _arg_error(f"transform {name!r}: {e}", hint=f"usage: {spec.usage()}") from None
    except (TypeError, ValueError) as e:  # torchvision's own checks
        raise _arg_error(f"transform {name!r}: {e}", hint=f"usage: {spec.usage()}") from None


# ---------------------------------------------------------------------------------------------
# argument checks


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _number(value: Any, arg: str, low: float | None = None, high: float | None = None) -> float:
    if not _is_num(value):
        raise ArgError(f"{arg} must be a number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ArgError(f"{arg} must be in [{low}, {high}], got {value!r}")
    return value


def _numbers(value: Any, arg: str, lengths: tuple[int, ...], low: float | None = None) -> list:
    if not isinstance(value, (list, tuple)) or len(value) not in lengths:
        n = " or ".join(str(k) for k in lengths)
        raise ArgError(f"{arg} must be a list of {n} numbers, got {value!r}")
    return [_number(v, f"{arg} item", low) for v in value]


def _size(value: Any, arg: str = "size") -> int | list[int]:
    """A positive int, or [h, w]."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if (
        isinstance(value, (list, tuple))
        and len(value) in (1, 2)
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        return list(value)
    raise ArgError(f"{arg} must be a positive int or [height, width], got {value!r}")


def _padding(value: Any) -> int | list[int]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if (
        isinstance(value, (list, tuple))
        and len(value) in (1, 2, 4)
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        return list(value)
    raise ArgError(
        f"padding must be an int >= 0, [left/right, top/bottom] or [left, top, right, bottom], got {value!r}"
    )


def _fill(value: Any) -> float | list[float]:
    if _is_num(value):
        return value
    return _numbers(value, "fill", (1, 3))


def _bool(value: Any, arg: str) -> bool:
    if not isinstance(value, bool):
        raise ArgError(f"{arg} must be true or false, got {value!r}")
    return value


INTERPOLATIONS = {m.value: m for m in InterpolationMode if m.value in ("nearest", "nearest-exact", "bilinear",
                                                                       "bicubic")}  # fmt: skip


def _interpolation(value: Any) -> InterpolationMode:
    key = str(value).replace("_", "-")
    if key not in INTERPOLATIONS:
        raise ArgError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {value!r}")
    return INTERPOLATIONS[key]


PADDING_MODES = ("constant", "edge", "reflect", "symmetric")


def _padding_mode(value: Any) -> str:
    if value not in PADDING_MODES:
        raise ArgError(f"padding_mode must be one of {', '.join(PADDING_MODES)}, got {value!r}")
    return value


def _range(value: Any, arg: str, low: float = 0.0) -> list[float]:
    lo, hi = _numbers(value, arg, (2,), low)
    if lo > hi:
        raise ArgError(f"{arg} must be [low, high] with low <= high, got {value!r}")
    return [lo, hi]


# ---------------------------------------------------------------------------------------------
# the transforms


@_register("resize", primary="size")
def resize(size, interpolation="bilinear", max_size=None, antialias=True):
    """Resize: an int sets the shorter side (keeping the aspect), [h, w] the exact size."""
    if max_size is not None:
        max_size = int(_number(max_size, "max_size", 1))
    return v2.Resize(_size(size), _interpolation(interpolation), max_size, _bool(antialias, "antialias"))


@_register("center_crop", primary="size")
def center_crop(size):
    """Crop the centre (zero-padding when the image is smaller)."""
    return v2.CenterCrop(_size(size))


@_register("random_crop", primary="size")
def random_crop(size, padding=None, pad_if_needed=False, fill=0, padding_mode="constant"):
    """Crop at a random place, after optional padding."""
    return v2.RandomCrop(
        _size(size),
        None if padding is None else _padding(padding),
        _bool(pad_if_needed, "pad_if_needed"),
        _fill(fill),
        _padding_mode(padding_mode),
    )


@_register("random_resized_crop", primary="size")
def random_resized_crop(
    size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), interpolation="bilinear", antialias=True
):
    """Crop a random area (fraction `scale`, aspect `ratio`) and resize it to `size`."""
    return v2.RandomResizedCrop(
        _size(size),
        tuple(_range(scale, "scale")),
        tuple(_range(ratio, "ratio", 1e-6)),
        _interpolation(interpolation),
        _bool(antialias, "antialias"),
    )


@_register("horizontal_flip", primary="p")
def horizontal_flip(p=0.5):
    """Flip left-right with probability p."""
    return v2.RandomHorizontalFlip(_number(p, "p", 0, 1))


@_register("vertical_flip", primary="p")
def vertical_flip(p=0.5):
    """Flip upside-down with probability p."""
    return v2.RandomVerticalFlip(_number(p, "p", 0, 1))


def _degrees(degrees: Any, arg: str = "degrees") -> float | list[float]:
    if _is_num(degrees):
        if degrees < 0:
            raise ArgError(f"{arg} must be >= 0 (or [min, max]), got {degrees!r}")
        return degrees
    return _numbers(degrees, arg, (2,))


@_register("random_affine", primary="degrees")
def random_affine(degrees, translate=None, scale=None, shear=None, interpolation="nearest", fill=0):
    """Random rotation (+-degrees), translation (fractions [x, y]), scale [min, max] and shear."""
    if translate is not None:
        translate = _numbers(translate, "translate", (2,), 0)
        if max(translate) > 1:
            raise ArgError(f"translate fractions must be in [0, 1], got {translate!r}")
    if scale is not None:
        scale = _range(scale, "scale", 1e-6)
    if shear is not None:
        shear = _degrees(shear, "shear") if _is_num(shear) else _numbers(shear, "shear", (2, 4))
    return v2.RandomAffine(
        _degrees(degrees), translate, scale, shear, _interpolation(interpolation), _fill(fill)
    )


@_register("random_rotation", primary="degrees")
def random_rotation(degrees, interpolation="nearest", expand=False, fill=0):
    """Rotate by a random angle in [-degrees, degrees] (or [min, max])."""
    return v2.RandomRotation(_degrees(degrees), _interpolation(interpolation), _bool(expand, "expand"),
                             None, _fill(fill))  # fmt: skip


@_register("pad", primary="padding")
def pad(padding, fill=0, padding_mode="constant"):
    """Pad the borders: an int for all sides, [x, y], or [left, top, right, bottom]."""
    return v2.Pad(_padding(padding), _fill(fill), _padding_mode(padding_mode))


@_register("grayscale", primary="channels")
def grayscale(channels=1):
    """Convert to greyscale with 1 (or 3 identical) channels; a 1-channel image stays as it is."""
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ArgError(f"channels must be 1 or 3, got {channels!r}")
    return v2.Grayscale(channels)


@_register("rgb")
def rgb():
    """Make 3 channels: greyscale images are repeated, RGB images kept."""
    return v2.RGB()


@_register("normalize")
def normalize(mean, std):
    """(x - mean) / std per channel; one value applies to every channel."""
    mean = [mean] if _is_num(mean) else _numbers(mean, "mean", (1, 2, 3, 4))
    std = [std] if _is_num(std) else _numbers(std, "std", (1, 2, 3, 4))
    if any(s <= 0 for s in std):
        raise ArgError(f"std must be > 0, got {std!r}")
    if len(mean) != len(std) and 1 not in (len(mean), len(std)):
        raise ArgError(f"mean and std need the same length, got {len(mean)} and {len(std)}")
    if len(mean) != len(std):
        n = max(len(mean), len(std))
        mean, std = mean * (n // len(mean)), std * (n // len(std))
    return v2.Normalize(mean, std)


@_register("color_jitter")
def color_jitter(brightness=None, contrast=None, saturation=None, hue=None):
    """Random brightness, contrast, saturation (factors, e.g. 0.4) and hue (<= 0.5)."""
    def check(v, arg, high=None):
        if v is None:
            return None
        return _number(v, arg, 0, high) if _is_num(v) else _range(v, arg)

    return v2.ColorJitter(check(brightness, "brightness"), check(contrast, "contrast"),
                          check(saturation, "saturation"), check(hue, "hue", 0.5))  # fmt: skip


@_register("gaussian_blur", primary="kernel_size")
def gaussian_blur(kernel_size, sigma=(0.1, 2.0)):
    """Blur with a random sigma in [min, max] (odd kernel size)."""
    sizes = _size(kernel_size, "kernel_size")
    if any(k % 2 == 0 for k in ([sizes] if isinstance(sizes, int) else sizes)):
        raise ArgError(f"kernel_size must be odd, got {kernel_size!r}")
    sigma = _number(sigma, "sigma", 1e-6) if _is_num(sigma) else _range(sigma, "sigma", 1e-6)
    return v2.GaussianBlur(sizes, sigma)


@_register("random_erasing", primary="p")
def random_erasing(p=0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0.0):
    """Erase a random rectangle (area fraction `scale`) with `value`, with probability p."""
    return v2.RandomErasing(_number(p, "p", 0, 1), _range(scale, "scale"), _range(ratio, "ratio", 1e-6),
                            _number(value, "value"))  # fmt: skip
